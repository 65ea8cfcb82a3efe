"""Losses built by name for both task shapes.

``build_loss(name, task, num_classes, class_counts=None, **params)`` returns an ``nn.Module`` called as
``loss(logits, target, weight=None)``:

- multi-label (``task="multilabel"``): ``target`` is float (B, C) with NaN for unknown labels; unknown
  entries are masked and the loss is the mean over the known ones (torchxrayvision's masked BCE).
- multi-class (``task="multiclass"``): ``target`` is int64 (B,) class indices, or float (B, C) soft/one-hot
  rows (mixup, cutmix).
- ``weight`` is an optional per-sample weight (B,), e.g. 0.5 for pseudo-labelled rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cxrlab.errors import CxrlabError
from cxrlab.registry import Registry

LOSSES = Registry("loss")
MULTILABEL = "multilabel"
MULTICLASS = "multiclass"
# Which task each loss name supports (focal exists for both, with a different form).
_TASKS: dict[str, tuple[str, ...]] = {
    "bce": (MULTILABEL,),
    "weighted_bce": (MULTILABEL,),
    "asl": (MULTILABEL,),
    "ce": (MULTICLASS,),
    "focal": (MULTILABEL, MULTICLASS),
}


def inverse_frequency_weights(class_counts: Sequence[float]) -> torch.Tensor:
    """Class weights ``N / (C * n_c)`` (sklearn's "balanced"), so a balanced dataset gets all ones.

    Raises CxrlabError when a class has no examples (its weight would be infinite).
    """
    counts = torch.as_tensor(list(class_counts), dtype=torch.float64)
    if (counts <= 0).any():
        empty = [i for i, c in enumerate(counts.tolist()) if c <= 0]
        raise CxrlabError(f"class_counts has zero examples for class index {empty}; add training examples "
                          "of that class or drop the class-weighted loss")
    return (counts.sum() / (len(counts) * counts)).float()


def _reduce(per_sample: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Mean of (B,) per-sample losses, weighted when ``weight`` is given."""
    if weight is None:
        return per_sample.mean()
    weight = weight.to(per_sample.dtype).reshape(-1)
    return (per_sample * weight).sum() / weight.sum().clamp_min(1e-12)


class MaskedMultiLabelLoss(nn.Module):
    """Base for multi-label losses: subclasses give the element-wise loss; NaN targets are masked."""

    def elementwise(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        if target.shape != logits.shape:
            raise CxrlabError(f"multi-label loss needs targets shaped like the logits {tuple(logits.shape)}, got "
                              f"{tuple(target.shape)}; check that the index task is multilabel")
        logits = logits.float()  # AMP logits: compute the loss in float32
        target = target.to(logits.dtype)
        known = ~torch.isnan(target)  # (B, C)
        losses = self.elementwise(logits, torch.where(known, target, torch.zeros_like(target)))
        w = known.to(logits.dtype)
        if weight is not None:
            w = w * weight.to(logits.dtype).reshape(-1, 1)
        # Mean over known entries; a batch with no known label gives 0 and keeps the graph alive.
        return (losses * w).sum() / w.sum().clamp_min(1e-12)


class BCELoss(MaskedMultiLabelLoss):
    """Binary cross-entropy with logits, optionally with a per-class ``pos_weight`` (C,)."""

    def __init__(self, pos_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("pos_weight", pos_weight, persistent=False)

    def elementwise(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, target, pos_weight=self.pos_weight, reduction="none")


class BinaryFocalLoss(MaskedMultiLabelLoss):
    """Focal loss (Lin et al. 2017): ``-alpha_t (1 - p_t)^gamma log p_t``; ``alpha`` weighs positives."""

    def __init__(self, alpha: float | None = 0.25, gamma: float = 2.0) -> None:
        super().__init__()
        self.alpha, self.gamma = alpha, gamma

    def elementwise(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        p = torch.sigmoid(logits)
        p_t = p * target + (1 - p) * (1 - target)
        loss = ce * (1 - p_t) ** self.gamma
        if self.alpha is not None:
            loss = loss * (self.alpha * target + (1 - self.alpha) * (1 - target))
        return loss


class AsymmetricLoss(MaskedMultiLabelLoss):
    """Asymmetric loss (Ridnik et al. 2021): focusing ``gamma_pos``/``gamma_neg`` and probability ``clip``
    shifting on negatives, so easy negatives (most of the 14 findings) stop dominating."""

    def __init__(self, gamma_neg: float = 4.0, gamma_pos: float = 1.0, clip: float = 0.05, eps: float = 1e-8) -> None:
        super().__init__()
        self.gamma_neg, self.gamma_pos, self.clip, self.eps = gamma_neg, gamma_pos, clip, eps

    def elementwise(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = torch.sigmoid(logits)
        p_neg = (p - self.clip).clamp(min=0) if self.clip and self.clip > 0 else p  # shifted probability
        loss_pos = target * (1 - p) ** self.gamma_pos * torch.log(p.clamp(min=self.eps))
        loss_neg = (1 - target) * p_neg**self.gamma_neg * torch.log((1 - p_neg).clamp(min=self.eps))
        return -(loss_pos + loss_neg)


class CrossEntropyLoss(nn.Module):
    """Multi-class cross-entropy with optional class weights and label smoothing.

    Hard targets (B,) int64 or soft targets (B, C) (mixup/cutmix); smoothing is applied to both. With class
    weights, the loss is the mean of per-sample losses (each scaled by its target class weight) like
    ``torch.nn.functional.cross_entropy``'s weighted mean.
    """

    def __init__(self, class_weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("class_weight", class_weight, persistent=False)
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        logits = logits.float()  # AMP logits: compute the loss in float32
        soft = _soft_targets(logits, target, self.label_smoothing)  # (B, C)
        logp = F.log_softmax(logits, dim=1)
        cw = self.class_weight.to(logits.dtype) if self.class_weight is not None else torch.ones_like(logp[0])
        per_sample = -(soft * logp * cw).sum(dim=1)  # (B,)
        norm = (soft * cw).sum(dim=1)  # weight of each sample's target, 1 without class weights
        w = torch.ones_like(per_sample) if weight is None else weight.to(logits.dtype).reshape(-1)
        return (per_sample * w).sum() / (norm * w).sum().clamp_min(1e-12)


class MultiClassFocalLoss(nn.Module):
    """Multi-class focal loss ``-alpha_y (1 - p_y)^gamma log p_y`` with a per-class ``alpha`` list (S4)."""

    def __init__(self, alpha: torch.Tensor | None = None, gamma: float = 2.0, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("alpha", alpha, persistent=False)
        self.gamma, self.label_smoothing = gamma, float(label_smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        logits = logits.float()  # AMP logits: compute the loss in float32
        soft = _soft_targets(logits, target, self.label_smoothing)  # (B, C)
        logp = F.log_softmax(logits, dim=1)
        focal = (1 - logp.exp()) ** self.gamma
        per_class = -soft * focal * logp
        if self.alpha is not None:
            per_class = per_class * self.alpha.to(logits.dtype)
        return _reduce(per_class.sum(dim=1), weight)


def _soft_targets(logits: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
    """(B,) class indices or (B, C) soft rows -> (B, C) smoothed probabilities."""
    num_classes = logits.shape[1]
    if target.dim() == 1:
        if target.dtype.is_floating_point:
            target = target.long()
        if target.numel() and (target.min() < 0 or target.max() >= num_classes):
            raise CxrlabError(f"multi-class target outside 0..{num_classes - 1}; check the index class columns")
        soft = F.one_hot(target, num_classes).to(logits.dtype)
    elif target.shape == logits.shape:
        soft = target.to(logits.dtype)
    else:
        raise CxrlabError(f"multi-class loss needs (B,) class indices or (B, {num_classes}) soft targets, got "
                          f"{tuple(target.shape)}; check that the index task is multiclass")
    if smoothing:
        soft = soft * (1 - smoothing) + smoothing / num_classes
    return soft


def _check_length(name: str, values: Sequence[float] | None, num_classes: int) -> torch.Tensor | None:
    if values is None:
        return None
    tensor = torch.as_tensor(values, dtype=torch.float32).reshape(-1)
    if tensor.numel() != num_classes:
        raise CxrlabError(f"loss.{name} has {tensor.numel()} values but there are {num_classes} classes; "
                          f"give one value per class")
    return tensor


@LOSSES.register("bce")
def _bce(task: str, num_classes: int, class_counts=None, pos_weight=None) -> nn.Module:
    return BCELoss(_check_length("pos_weight", pos_weight, num_classes))


@LOSSES.register("weighted_bce")
def _weighted_bce(task: str, num_classes: int, class_counts=None, pos_weight=None, num_samples=None,
                  max_weight: float | None = None) -> nn.Module:
    """pos_weight = negatives / positives per class, from the train split.

    ``class_counts`` is either (2, C) ``[negatives, positives]``, or (C,) positives together with
    ``num_samples`` (train rows; unknown labels then count as negatives). An explicit ``pos_weight`` wins.
    """
    if pos_weight is None:
        neg, pos = _negatives_positives(class_counts, num_samples)
        if (pos <= 0).any():
            missing = [i for i, c in enumerate(pos.tolist()) if c <= 0]
            raise CxrlabError(f"weighted_bce: class index {missing} has no positive example in train; add "
                              "positives or use loss.name=bce")
        pos_weight = neg / pos
        if max_weight is not None:
            pos_weight = pos_weight.clamp(max=float(max_weight))
    return BCELoss(_check_length("pos_weight", pos_weight, num_classes))


def _negatives_positives(class_counts, num_samples) -> tuple[torch.Tensor, torch.Tensor]:
    if class_counts is None:
        raise CxrlabError("loss weighted_bce needs the train class counts (the trainer passes them) or an "
                          "explicit --set loss.pos_weight=[...]")
    counts = torch.as_tensor(class_counts, dtype=torch.float32)
    if counts.dim() == 2 and counts.shape[0] == 2:
        return counts[0], counts[1]
    if num_samples is None:
        raise CxrlabError("loss weighted_bce with per-class positive counts also needs num_samples (train rows)")
    return float(num_samples) - counts, counts


@LOSSES.register("asl")
def _asl(task: str, num_classes: int, class_counts=None, gamma_neg: float = 4.0, gamma_pos: float = 1.0,
         clip: float = 0.05) -> nn.Module:
    return AsymmetricLoss(gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip)


@LOSSES.register("focal")
def _focal(task: str, num_classes: int, class_counts=None, alpha=None, gamma: float = 2.0,
           label_smoothing: float = 0.0) -> nn.Module:
    """Multi-label: scalar ``alpha`` (default 0.25). Multi-class: per-class ``alpha`` list (default none)."""
    if task == MULTILABEL:
        if alpha is not None and not isinstance(alpha, (int, float)):
            raise CxrlabError("loss.alpha for multi-label focal is one number (the weight of positives), e.g. 0.25")
        return BinaryFocalLoss(alpha=0.25 if alpha is None else float(alpha), gamma=gamma)
    if isinstance(alpha, (int, float)):
        alpha = [float(alpha)] * num_classes
    return MultiClassFocalLoss(alpha=_check_length("alpha", alpha, num_classes), gamma=gamma,
                               label_smoothing=label_smoothing)


@LOSSES.register("ce")
def _ce(task: str, num_classes: int, class_counts=None, class_weights=None, label_smoothing: float = 0.0) -> nn.Module:
    """``class_weights``: a list, or ``"inverse_frequency"`` (from the train ``class_counts``)."""
    if isinstance(class_weights, str):
        if class_weights not in ("inverse_frequency", "balanced"):
            raise CxrlabError(f"loss.class_weights {class_weights!r} is not valid; use a list or 'inverse_frequency'")
        if class_counts is None:
            raise CxrlabError("loss.class_weights=inverse_frequency needs the train class counts (the trainer "
                              "passes them)")
        class_weights = inverse_frequency_weights(class_counts)
    if not 0.0 <= float(label_smoothing) < 1.0:
        raise CxrlabError(f"loss.label_smoothing must be in [0, 1), got {label_smoothing}")
    return CrossEntropyLoss(_check_length("class_weights", class_weights, num_classes), label_smoothing)


def loss_names(task: str | None = None) -> list[str]:
    """Registered loss names, optionally only those valid for ``task``."""
    return [n for n in LOSSES.names() if task is None or task in _TASKS.get(n, ())]


def build_loss(name: str, task: str, num_classes: int, class_counts: Sequence[float] | None = None,
               **params) -> nn.Module:
    """Build the loss ``name`` for ``task`` ("multilabel" or "multiclass").

    Args:
        name: a registered loss (``bce``, ``weighted_bce``, ``focal``, ``asl``, ``ce``).
        task: ``multilabel`` or ``multiclass``.
        num_classes: number of outputs.
        class_counts: train examples per class (positives for multi-label), for weighted losses.
        **params: loss options (``gamma``, ``alpha``, ``label_smoothing``, ``class_weights``, ...).
    """
    builder = LOSSES.get(name)
    if task not in (MULTILABEL, MULTICLASS):
        raise CxrlabError(f"unknown task {task!r}; valid: {MULTICLASS}, {MULTILABEL}")
    if task not in _TASKS[name]:
        raise CxrlabError(f"loss {name!r} is for {'/'.join(_TASKS[name])} tasks, not {task}; valid for {task}: "
                          f"{', '.join(loss_names(task))}")
    try:
        return builder(task, num_classes, class_counts=class_counts, **params)
    except TypeError as exc:
        raise CxrlabError(f"loss {name!r}: bad option ({exc}); check the loss.* keys of the config") from None
