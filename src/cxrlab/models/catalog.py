"""The table behind ``cxrlab models list``: parameter counts (15 classes, 3 channels, 224) built on the meta
device, so even Swin-L and EfficientNetV2-L cost no memory and no weight initialisation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cxrlab.models.factory import count_parameters, list_models, meta_model

# Which of our models can start from hub weights, and from where.
OUR_PRETRAINED = {"resnet34_scratch": "tv ImageNet (resnet34)", "vit_multiscale": "timm ViT-B/16 + B/32"}


def _pretrained(name: str) -> tuple[str, int]:
    """(where pretrained weights come from or "-", the backbone's native image size)."""
    if name.startswith("timm:"):
        import timm

        cfg = timm.models.get_pretrained_cfg(name[5:])
        tag = getattr(cfg, "hf_hub_id", None) or "-" if cfg is not None else "-"
        return tag, int(cfg.input_size[-1]) if cfg is not None else 224
    if name.startswith("tv:"):
        import torchvision

        weights = torchvision.models.get_model_weights(name[3:]).DEFAULT
        return str(weights).split(".", 1)[0] + "." + weights.name, int(weights.transforms().crop_size[0])
    if name.startswith("xrv:"):
        from cxrlab.models.xrv import XRV_NATIVE_SIZE

        return "torchxrayvision file (model.weights)", XRV_NATIVE_SIZE[name[4:]]
    return OUR_PRETRAINED.get(name, "-"), 224


def model_row(name: str, verbose: bool = False) -> dict[str, Any]:
    """One row of the models table."""
    gray_only = name.startswith("xrv:")  # torchxrayvision's networks take 1 channel, like its weights
    model = meta_model(name, num_classes=15, in_chans=1 if gray_only else 3, img_size=224)
    pretrained, native = _pretrained(name)
    row = {"name": name, "params": count_parameters(model), "in_chans": "1" if gray_only else "1,3", "img_size": native,
           "source": model.source, "pretrained": pretrained}
    if verbose:
        row.update({"cam_layer": model.cam_layer, "mean": model.data_config["mean"], "std": model.data_config["std"],
                    "dropout": model.has_dropout})
    return row


def model_table(names: Sequence[str] | None = None, verbose: bool = False) -> list[dict[str, Any]]:
    """Rows for ``names`` (default: every listed model)."""
    return [model_row(n, verbose) for n in (names or list_models())]


def format_table(rows: list[dict[str, Any]]) -> str:
    """Plain aligned text, parameters in millions."""
    if not rows:
        return ""
    cols = list(rows[0])
    cells = [[_cell(c, r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _cell(col: str, value: Any) -> str:
    if col == "params":
        return f"{value / 1e6:.2f}M"
    if isinstance(value, tuple):
        return "(" + ", ".join(f"{v:.3f}" for v in value) + ")"
    return str(value)
