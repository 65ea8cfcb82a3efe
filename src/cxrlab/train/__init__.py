"""Training: ``fit(config, out_dir, resume=False)`` and the pieces it is made of (loop, optim, checkpoint)."""

from cxrlab.train.fit import fit

__all__ = ["fit"]
