"""Loading a trained run: a run directory or checkpoint file -> (model in eval mode, ``RunInfo``).

The model is rebuilt from the checkpoint's JSON with ``create_model`` (no unpickling) and its weights loaded
from the ``.safetensors`` file after checking them against the sha256 the JSON records. Every failure is a
one-line ``CxrlabError`` naming the file and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from cxrlab.errors import CxrlabError
from cxrlab.predict.info import RunInfo
from cxrlab.provenance import read_weights as read_checked
from cxrlab.rundir import RunDir
from cxrlab.train.checkpoint import load_tensors_into

CHECKPOINTS = ("best", "last", "swa")


def resolve_checkpoint(run_dir_or_checkpoint: str | Path, which: str = "best") -> Path:
    """The ``.safetensors`` file meant by a run directory (its ``checkpoints/WHICH``), a checkpoints folder, a
    ``.safetensors`` file or its ``.json``; both files must exist."""
    p = Path(run_dir_or_checkpoint)
    if which not in CHECKPOINTS:
        raise CxrlabError(f"checkpoint {which!r} is not one of {', '.join(CHECKPOINTS)}")
    if not p.exists():
        raise CxrlabError(f"run {p} not found; give a run directory from `cxrlab train` or a checkpoint file")
    if p.is_dir():
        p = (p / "checkpoints" if (p / "checkpoints").is_dir() else p) / f"{which}.safetensors"
    elif p.suffix == ".json":
        p = p.with_suffix(".safetensors")
    if not p.exists() or not p.with_suffix(".json").exists():
        raise CxrlabError(f"{p} (and its .json) not found; give a run directory from `cxrlab train` or a checkpoint")
    return p


def _run_dir_of(checkpoint: Path) -> Path | None:
    """The run directory holding ``checkpoints/NAME.safetensors`` (its files checked), or None for a loose
    checkpoint."""
    run = RunDir.of_checkpoint(checkpoint)
    return run.check().path if run is not None else None


def read_run_info(run_dir_or_checkpoint: str | Path, which: str = "best") -> RunInfo:
    """The run's ``RunInfo`` from its checkpoint JSON alone (no weights read)."""
    path = resolve_checkpoint(run_dir_or_checkpoint, which)
    meta = path.with_suffix(".json")
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CxrlabError(f"{meta} is not valid JSON ({exc}); the checkpoint is damaged: re-run `cxrlab train` "
                          "or use another checkpoint (--which)") from None
    run_dir = _run_dir_of(path)
    which_name = path.stem if path.stem in CHECKPOINTS else which
    return RunInfo.from_dict(data, where=str(meta), checkpoint=path, run_dir=run_dir, which=which_name)


def build_model(info: RunInfo) -> nn.Module:
    """The untrained architecture ``info`` describes (class names attached)."""
    from cxrlab.models import create_model  # timm: loaded only when a model is built

    return create_model(info.model_name, num_classes=info.num_classes, class_names=list(info.classes),
                        pretrained=False, **dict(info.model_kwargs))


def read_weights(info: RunInfo) -> dict:
    """The checkpoint's tensors, checked against the sha256 its JSON records (``cxrlab.provenance``); an empty,
    truncated or changed file is a one-line error."""
    return read_checked(info.checkpoint)


def load_run(run_dir_or_checkpoint: str | Path, which: str = "best", device: str = "cpu"
             ) -> tuple[nn.Module, RunInfo]:
    """(model in eval mode on ``device``, its ``RunInfo``) from a run directory or a checkpoint file."""
    info = read_run_info(run_dir_or_checkpoint, which)
    model = build_model(info)
    load_tensors_into(model, read_weights(info), info.checkpoint)
    return model.to(device).eval(), info
