"""Tensors out of a pickled ``nn.Module`` file, without running any of its code.

Some published weights are a whole model saved with ``torch.save(model)`` (torchxrayvision's DenseNets are).
``torch.load(weights_only=False)`` would execute whatever the pickle names; ``weights_only=True`` refuses the file.
Here every class the file names is first listed (``torch.serialization.get_unsafe_globals_in_checkpoint``, which
reads without unpickling), checked against the module families we accept (``torch.nn.modules.*`` and the model
packages in ``MODEL_PACKAGES``), and replaced by an inert stand-in that only stores the attributes pickle hands it.
The weights-only unpickler then rebuilds tensors as usual, and the state dict is read from the stand-ins'
``_parameters``, ``_buffers`` and ``_modules``: the keys ``model.state_dict()`` would have given.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cxrlab.errors import CxrlabError

MODEL_PACKAGES = ("torch.nn.modules.", "torchxrayvision.", "torchvision.models.", "timm.models.", "timm.layers.")


class _Inert:
    """Stands in for a module class named by the file: keeps its attributes, runs nothing."""

    def __init__(self, *args, **kwargs) -> None:  # a REDUCE call with arguments builds an empty stand-in
        pass

    def __setstate__(self, state) -> None:
        if isinstance(state, tuple):  # (dict, slots) form
            state = state[0]
        if isinstance(state, dict):
            self.__dict__.update(state)


def read_module_file(file: Path) -> dict[str, torch.Tensor]:
    """The state dict of a ``torch.save(model)`` file, read with stand-ins for its module classes."""
    from torch.serialization import get_unsafe_globals_in_checkpoint, safe_globals

    names = get_unsafe_globals_in_checkpoint(str(file))
    foreign = [n for n in names if not n.startswith(MODEL_PACKAGES)]
    if foreign:
        raise CxrlabError(f"model.weights {file}: the file pickles {', '.join(sorted(foreign)[:3])}, which is not a "
                          "network module; cxrlab reads only tensors: give a safetensors file or a plain state dict")
    stand_ins = [(type(n.rsplit(".", 1)[-1], (_Inert,), {}), n) for n in names]
    with safe_globals(stand_ins):
        root = torch.load(file, map_location="cpu", weights_only=True)
    if not isinstance(root, _Inert):
        raise CxrlabError(f"model.weights {file}: not a saved model or state dict")
    state = _collect(root, "")
    if not state:
        raise CxrlabError(f"model.weights {file}: the saved model holds no tensors")
    return state


def _collect(node: _Inert, prefix: str) -> dict[str, torch.Tensor]:
    """``state_dict()`` of a stand-in tree: parameters, persistent buffers, then children, depth first."""
    attrs = node.__dict__
    out: dict[str, torch.Tensor] = {}
    skip = attrs.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for key, value in (attrs.get(group) or {}).items():
            if isinstance(value, torch.Tensor) and key not in skip:
                out[prefix + key] = value.detach()
    for key, child in (attrs.get("_modules") or {}).items():
        if isinstance(child, _Inert):
            out.update(_collect(child, f"{prefix}{key}."))
    return out
