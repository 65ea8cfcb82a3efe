"""Checkpoints: weights as safetensors + a JSON that rebuilds the model, and the training state for resume.

- ``checkpoints/{best,last}.safetensors``: the model's tensors only (no pickle).
- ``checkpoints/{best,last}.json``: ``model_name``, ``model_kwargs``, ``classes``, ``task``, ``preprocess``
  (``image_size``, ``in_chans``, ``mean``, ``std``, ``cache_size``, ``policy``, ``clahe``), epoch, metric, the
  resolved config and the weights' sha256.
- ``checkpoints/last_state.pt``: optimizer, scheduler, scaler, EMA/SWA, RNG states, epoch, best metric; plain
  tensors, numbers and lists only, so it loads with ``torch.load(weights_only=True)``.

Every file is written to a temporary file and renamed, so a kill never leaves a corrupt checkpoint. Reading a
checkpoint back for inference (JSON parsed and validated into ``RunInfo``, weights checked against their
sha256) is ``cxrlab.predict.load_run``.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cxrlab.errors import CxrlabError
from cxrlab.utils import atomic_write_bytes, sha256_bytes, write_json


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model under DDP and torch.compile wrappers."""
    model = getattr(model, "module", model)
    return getattr(model, "_orig_mod", model)


def _tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    # clone: safetensors refuses tensors that share storage (tied weights)
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in unwrap(model).state_dict().items()}


def save_weights(path: str | Path, model: nn.Module, info: dict[str, Any]) -> str:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar atomically; returns the weights' sha256."""
    from safetensors.torch import save

    path = Path(path)
    data = save(_tensors(model))
    atomic_write_bytes(path, data)
    digest = sha256_bytes(data)
    write_json(path.with_suffix(".json"), {**info, "weights_sha256": digest})
    return digest


def model_info(model: nn.Module, task: str, preprocess: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The JSON that rebuilds ``model`` with ``create_model`` (no unpickling)."""
    m = unwrap(model)
    kwargs = {k: v for k, v in dict(getattr(m, "model_kwargs", {})).items()
              if k not in ("pretrained", "weights", "weights_sha256", "class_names")}
    return {
        "model_name": getattr(m, "model_name", config.get("model", {}).get("name")),
        "model_kwargs": kwargs,
        "classes": list(getattr(m, "class_names", [])),
        "task": task,
        "preprocess": preprocess,
        "config": config,
    }


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` to memory, then an atomic write."""
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_state(path: str | Path) -> dict[str, Any]:
    """Load ``last_state.pt`` safely (``weights_only=True``)."""
    path = Path(path)
    if not path.exists():
        raise CxrlabError(f"{path} does not exist; nothing to resume (run without --resume to start fresh)")
    from cxrlab.provenance import read_state

    return read_state(path)  # a truncated or zero-byte state is a one-line error


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as tensors and lists (safe to load with weights_only)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what ``rng_state`` saved."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state(("MT19937", keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_weights_into(model: nn.Module, path: str | Path) -> None:
    """Load a safetensors file into ``model``; a file from another architecture is a one-line error."""
    from cxrlab.provenance import read_weights

    # checked against weights_sha256 in its JSON; a truncated or empty file is a one-line error
    load_tensors_into(model, read_weights(path), path)


def load_tensors_into(model: nn.Module, tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    """Load ``tensors`` (read from ``path``) into ``model``; tensors of another architecture are a one-line error."""
    target = unwrap(model)
    own = target.state_dict()
    missing = [k for k in own if k not in tensors]
    bad = [k for k in tensors if k not in own or tensors[k].shape != own[k].shape]
    if missing or bad:
        key = (bad or missing)[0]
        raise CxrlabError(
            f"{path} does not fit model {getattr(target, 'model_name', '?')} (e.g. tensor {key!r}); it is a "
            "checkpoint from another model or class list: use the matching config or start a fresh run dir"
        )
    target.load_state_dict(tensors)
