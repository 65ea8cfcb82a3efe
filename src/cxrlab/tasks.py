"""The two task kinds and how a model's logits become probabilities: the one place that happens.

Multi-label: an independent sigmoid per class. Multi-class: a softmax over the classes. ``probabilities`` takes
torch tensors (inference, training's validation) or NumPy arrays (predictions files holding logits) and
returns the same kind. It sits at the bottom of the package so that training (below ``cxrlab.predict``) and
evaluation (above it) share it; ``cxrlab.predict.probabilities`` is this function.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from cxrlab.errors import CxrlabError

TASKS = ("multilabel", "multiclass")

Array = TypeVar("Array")


def check_task(task: object, where: str = "task") -> str:
    """``task`` when it is one of ``TASKS``; else a one-line error naming ``where``."""
    if task not in TASKS:
        raise CxrlabError(f"{where}: task {task!r} is not one of {', '.join(TASKS)}")
    return str(task)


def probabilities(logits: Array, task: str) -> Array:
    """Sigmoid per class (multi-label) or softmax over the last axis (multi-class).

    ``logits``: a torch tensor (B, K) -> tensor of the same dtype and device, or anything NumPy reads
    -> float64 array.
    """
    check_task(task)
    if not isinstance(logits, np.ndarray) and hasattr(logits, "sigmoid"):  # a torch tensor (torch stays unimported)
        return logits.sigmoid() if task == "multilabel" else logits.softmax(dim=-1)
    z = np.asarray(logits, dtype=np.float64)
    if task == "multiclass":
        e = np.exp(z - z.max(axis=-1, keepdims=True))  # shifted: no overflow for large logits
        return e / e.sum(axis=-1, keepdims=True)
    return 1.0 / (1.0 + np.exp(-z))
