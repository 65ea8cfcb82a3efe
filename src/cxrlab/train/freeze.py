"""``model.freeze``: train the head only (linear probe), or unfreeze the backbone at a given epoch (gradual
unfreezing, S2's strategy 2).

The head is what the model contract names in ``head_prefixes`` (state-dict prefixes of the classifier); the
rest is the backbone. The optimiser is built over every parameter first, so parameters unfrozen later are
already in it (a frozen parameter has no gradient, and the optimisers skip it, weight decay included). Norm
layers of a frozen backbone stay in eval mode, so a linear probe does not drift their running statistics.
The state is recomputed from the epoch number, so a resumed run freezes exactly as an uninterrupted one.
"""

from __future__ import annotations

from torch import nn

from cxrlab.config import Config
from cxrlab.errors import CxrlabError

NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def _is_head(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name.startswith(p) for p in prefixes)


def backbone_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Every parameter outside the head; an error when the model names no head or the head is everything."""
    prefixes = tuple(getattr(model, "head_prefixes", ()) or ())
    named = list(model.named_parameters())
    head = [n for n, _ in named if _is_head(n, prefixes)]
    if not head or len(head) == len(named):
        raise CxrlabError(f"model.freeze: cannot tell the head of {getattr(model, 'model_name', 'this model')} from "
                          f"its backbone (head prefixes {list(prefixes)}); use model.freeze=none")
    return [p for n, p in named if not _is_head(n, prefixes)]


def frozen_at(cfg: Config, epoch: int) -> bool:
    """Whether the backbone is frozen during ``epoch`` (1-based)."""
    m = cfg.model
    return m.freeze == "backbone" and (m.unfreeze_epoch is None or epoch < m.unfreeze_epoch)


def apply_freeze(model: nn.Module, cfg: Config, epoch: int) -> list[nn.Module]:
    """Set ``requires_grad`` for ``epoch``; returns the backbone norm layers to keep in eval mode."""
    if cfg.model.freeze == "none":
        return []
    frozen = frozen_at(cfg, epoch)
    params = backbone_parameters(model)
    for p in params:
        p.requires_grad_(not frozen)
    if not frozen:
        return []
    prefixes = tuple(getattr(model, "head_prefixes", ()) or ())
    return [m for n, m in model.named_modules() if isinstance(m, NORMS) and not _is_head(n + ".", prefixes)]


def describe(cfg: Config) -> str:
    """The training strategy in words (for the report)."""
    m = cfg.model
    if m.freeze == "backbone":
        if m.unfreeze_epoch:
            return f"gradual unfreezing (head only, backbone from epoch {m.unfreeze_epoch})"
        return "linear probe (head only)"
    return "full fine-tuning" if m.pretrained or m.weights else "from scratch"
