"""Pretrained weights: safe local loading, checks against the architecture, and a fast offline check.

A weights file is read with ``safetensors`` or ``torch.load(weights_only=True)`` (never an arbitrary pickle; a
whole model saved with ``torch.save(model)`` is read by ``module_file`` without running its code). Its keys are
matched to the model: a ``module.`` prefix from DDP is dropped, a Hugging Face DINOv2 file is renamed to timm's
keys (``key_maps``), a torchvision file is matched to our wrapped model. The first convolution is adapted to the
input channels, ViT position embeddings are resampled to the model's grid, and the classifier is kept fresh when
its shape differs. Anything else that does not fit is a one-line ``CxrlabError`` naming the first keys.
"""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import torch
from torch import nn

from cxrlab.errors import CxrlabError
from cxrlab.models.contract import adapt_conv_weight
from cxrlab.utils import sha256_file

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt")
HUB_HOSTS = {"timm": ("huggingface.co", 443), "tv": ("download.pytorch.org", 443)}
OFFLINE_ENV = ("CXRLAB_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def find_weights_file(path: str | Path) -> Path:
    """``path`` itself, or the single weights file inside a folder (``*.safetensors`` preferred)."""
    p = Path(path).expanduser()
    if p.is_file():
        return p
    if not p.is_dir():
        raise CxrlabError(f"model.weights: {p} does not exist; give a .safetensors/.pth/.bin file or a folder "
                          "holding one")
    for pattern in ("*.safetensors", "pytorch_model.bin", "*.pth", "*.bin", "*.pt"):
        found = sorted(p.glob(pattern))
        if found:
            return found[0]
    raise CxrlabError(f"model.weights: no *.safetensors, pytorch_model.bin or *.pth file in folder {p}")


def read_state_dict(path: str | Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Read a state dict safely; verify ``sha256`` when pinned."""
    file = find_weights_file(path)
    if sha256:
        actual = sha256_file(file)
        if actual.lower() != sha256.lower():
            raise CxrlabError(f"model.weights {file}: sha256 {actual[:16]}... does not match the pinned "
                              f"model.weights_sha256 {sha256[:16]}...; use the right file or update the pin")
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(file))
        else:
            state = _torch_load(file)
    except CxrlabError:
        raise
    except Exception as exc:  # corrupt or unsafe file: say which one, not a traceback
        raise CxrlabError(f"model.weights {file}: cannot read it safely ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:120]}); give a safetensors file or a plain state dict") from None
    for key in ("state_dict", "model", "model_state_dict", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]  # a training checkpoint that wraps the weights
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CxrlabError(f"model.weights {file}: not a state dict of tensors")
    return state


def _torch_load(file: Path):
    """A plain state dict (weights only), or the tensors of a whole pickled model read without running it."""
    import pickle

    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        from cxrlab.models.module_file import read_module_file

        return read_module_file(file)  # e.g. torchxrayvision's DenseNet files: torch.save(model)


def load_weights(model: nn.Module, path: str | Path, sha256: str | None = None) -> list[str]:
    """Load a weights file into ``model`` (in place); return the keys left at their fresh init (the head)."""
    state, mapped = _from_xrv(_match_keys(read_state_dict(path, sha256), model), model)
    target = model.state_dict()
    heads = tuple(getattr(model, "head_prefixes", ()))
    is_head = lambda k: k.startswith(heads)  # noqa: E731
    fresh, bad_shape, usable = [], [], {}
    for key, value in state.items():
        if key not in target:
            continue
        value = _adapt(key, value, target[key], model)
        if value.shape == target[key].shape:
            usable[key] = value
        elif is_head(key):
            fresh.append(key)
        else:
            bad_shape.append(f"{key} {tuple(value.shape)} vs {tuple(target[key].shape)}")
    missing = [k for k in target if k not in state and not is_head(k) and not _is_buffer_ok(k)]
    unexpected = [k for k in state if k not in target and not is_head(k)]
    problems = [("shape mismatch", bad_shape), ("missing", missing), ("unexpected", unexpected)]
    for label, keys in problems:
        if keys:
            name = getattr(model, "model_name", type(model).__name__)
            raise CxrlabError(f"model.weights {Path(path).name} does not fit {name}: {len(keys)} {label} keys "
                              f"({', '.join(keys[:3])}); use weights saved from this architecture")
    model.load_state_dict({**usable, **mapped}, strict=False)
    return [k for k in fresh + [k for k in target if k not in state and is_head(k)] if k not in mapped]


def _from_xrv(state: dict[str, torch.Tensor], model: nn.Module
              ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """For an ``xrv:`` model: the file without torchxrayvision's ``op_threshs`` (calibration thresholds, not
    weights), and its 18-output classifier mapped row by finding name onto the model's classes."""
    if getattr(model, "source", None) != "xrv":
        return state, {}
    from cxrlab.models.xrv import head_rows

    state = {k: v for k, v in state.items() if k != "op_threshs"}
    return state, head_rows(state, model)


def _is_buffer_ok(key: str) -> bool:
    # BatchNorm counters are absent from some exported files; their absence changes nothing at inference.
    return key.endswith("num_batches_tracked")


def _match_keys(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Drop a DDP ``module.`` prefix; rename a Hugging Face DINOv2 file to timm's keys; add ``model.`` when the
    file is a bare torchvision state dict."""
    from cxrlab.models.key_maps import hf_dinov2_to_timm, is_hf_dinov2

    state = {k.removeprefix("module."): v for k, v in state.items()}
    if is_hf_dinov2(state):
        state = hf_dinov2_to_timm(state)
    target = model.state_dict().keys()
    for prefix in ("model.",):
        if sum(k in target for k in state) < sum(prefix + k in target for k in state):
            return {prefix + k: v for k, v in state.items()}
    return state


def _adapt(key: str, value: torch.Tensor, like: torch.Tensor, model: nn.Module) -> torch.Tensor:
    """First-conv channel adaptation and ViT position-embedding resampling; other tensors unchanged."""
    if value.dim() == 4 and like.dim() == 4 and value.shape[1] != like.shape[1] \
            and value.shape[0] == like.shape[0] and value.shape[2:] == like.shape[2:] and value.shape[1] == 3:
        return adapt_conv_weight(value, like.shape[1])
    if key.endswith("pos_embed") and value.dim() == 3 and like.dim() == 3 and value.shape != like.shape \
            and value.shape[-1] == like.shape[-1]:
        return _resample_pos_embed(value, like, model, key)
    return value


def _resample_pos_embed(value: torch.Tensor, like: torch.Tensor, model: nn.Module, key: str) -> torch.Tensor:
    from timm.layers import resample_abs_pos_embed

    owner = model.get_submodule(key.rsplit(".", 1)[0]) if "." in key else model
    prefix = 0 if getattr(owner, "no_embed_class", False) else int(getattr(owner, "num_prefix_tokens", 0))
    n_new = like.shape[1] - prefix
    side = int(round(n_new**0.5))
    if side * side != n_new:
        return value  # not a square grid: let the shape check report it
    return resample_abs_pos_embed(value, new_size=[side, side], num_prefix_tokens=prefix)


def is_offline(source: str, timeout: float = 2.0) -> bool:
    """True when the weights hub for ``source`` ("timm" or "tv") cannot be reached.

    Checks the offline environment variables first, then a TCP connect with ``timeout`` seconds run in a
    daemon thread, so a slow DNS lookup cannot hang the caller either.
    """
    if any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in OFFLINE_ENV):
        return True
    host, port = HUB_HOSTS[source]
    result = {"ok": False}

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result["ok"] = True
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return not result["ok"]


def offline_error(name: str) -> CxrlabError:
    """The one-line error for pretrained weights that cannot be fetched."""
    return CxrlabError(f"model {name}: pretrained weights are not cached and the hub is unreachable (offline); "
                       "download them once and pass --set model.weights=PATH (file or folder), go online, or "
                       "train from scratch with --set model.pretrained=false")


def download_error(name: str, exc: BaseException) -> CxrlabError:
    """The one-line error for a hub download that started but failed."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
    return CxrlabError(f"model {name}: downloading pretrained weights failed ({type(exc).__name__}: {reason}); "
                       "pass --set model.weights=PATH (a local file or folder), retry online, or use "
                       "--set model.pretrained=false")


def timm_weights_cached(model_name: str) -> bool:
    """Whether timm's hub weights for ``model_name`` are already in the Hugging Face cache."""
    try:
        import timm
        from huggingface_hub import try_to_load_from_cache

        cfg = timm.models.get_pretrained_cfg(model_name)
        repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
        if not repo:
            return bool(cfg is not None and getattr(cfg, "file", None) and Path(cfg.file).is_file())
        return any(isinstance(try_to_load_from_cache(repo, f), str)
                   for f in ("model.safetensors", "open_clip_pytorch_model.bin", "pytorch_model.bin"))
    except Exception:
        return False


def tv_weights_cached(weights) -> bool:
    """Whether torchvision's weights enum entry is already in ``$TORCH_HOME/hub/checkpoints``."""
    filename = os.path.basename(str(weights.url))
    return (Path(torch.hub.get_dir()) / "checkpoints" / filename).is_file()
