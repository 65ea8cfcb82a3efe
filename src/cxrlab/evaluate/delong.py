"""Moved to ``cxrlab.evaluate.stats`` (``delong``, ``multiple``); ``holm_adjust`` stays importable here only for
``cxrlab.study.scores`` (owned by another branch this change must not edit)."""

from cxrlab.evaluate.stats.multiple import holm_adjust

__all__ = ["holm_adjust"]
