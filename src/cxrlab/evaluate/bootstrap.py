"""Moved to ``cxrlab.evaluate.stats.bootstrap``; these names stay importable only for ``cxrlab.study.scores``
(owned by another branch this change must not edit). New code imports from ``cxrlab.evaluate.stats``."""

from cxrlab.evaluate.stats.bootstrap import patient_weights, with_point

__all__ = ["patient_weights", "with_point"]
