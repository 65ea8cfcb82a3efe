"""Training: ``fit(config, out_dir, resume=False)`` and the pieces it is made of (loop, optim, checkpoint)."""

from cxrlab.train.fitting import fit

__all__ = ["fit"]
