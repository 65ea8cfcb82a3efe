"""Artifacts that check each other: every reader compares the hashes an artifact recorded with what it is given.

- A cache against its index: the index's sha256 (or, for an index that merely adds rows, the per-image sha256
  of the rows it uses), and the image size and resize policy a run expects.
- An image file against the sha256 its index recorded, when the cache is built or a file is first decoded.
- ``train --resume`` against the run's recorded config and data (index, split).
- ``cv`` reruns against the settings that made its folds.
- A checkpoint's weights against the ``weights_sha256`` in its JSON; truncated or zero-byte checkpoints and
  states are one-line errors, never a library traceback.

A mismatch is one ``CxrlabError`` line naming both sides and the command that rebuilds.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from cxrlab.errors import CxrlabError
from cxrlab.rundir import INPUTS, RunDir
from cxrlab.utils import read_json, sha256_bytes, write_json

RUN_INPUTS = INPUTS  # cxrlab.rundir names every file of a run
CV_SETTINGS = "cv_settings.json"
# Config keys a resumed run may change: how long and where it runs, not what it learns from.
RESUMABLE = ("train.epochs", "train.device", "train.threads", "train.log_every", "data.num_workers",
             "train.early_stopping", "train.compile", "data.index", "data.split", "data.cache")
# A cv rerun may run elsewhere, not longer: finished folds are reused as they are.
CV_IGNORED = ("train.device", "train.threads", "train.log_every", "data.num_workers", "train.compile", "name")


def _short(digest: str | None) -> str:
    return (digest or "none")[:12]


# ----------------------------------------------------------------------------- caches and images
def check_cache(cache: Any, index: Any, image_ids: list[str] | None = None, size: int | None = None,
                policy: str | None = None) -> None:
    """Refuse a cache made from another index (by hashes), or of another size/policy than expected."""
    rebuild = (f"rebuild it: cxrlab data cache {shlex.quote(str(index.path or 'INDEX'))} --out "
               f"{shlex.quote(str(cache.dir))} --size {size or cache.size} --policy {policy or cache.policy} --force")
    if size is not None and int(cache.size) != int(size):
        raise CxrlabError(f"cache {cache.dir} holds {cache.size}-px images but {size}-px ones are expected; {rebuild}")
    if policy is not None and cache.policy != policy:
        raise CxrlabError(f"cache {cache.dir} was resized with policy {cache.policy!r}, expected {policy!r}; {rebuild}")
    built_from = cache.meta.get("index_sha256")
    if built_from is None or built_from == index.sha256:
        return
    wanted = [str(i) for i in (image_ids if image_ids is not None else index.frame["image_id"])]
    cached = cache.meta.get("image_sha256")
    if cached and "sha256" in index.frame.columns:  # an index that adds rows (pseudo-labels) keeps its images
        by_id = dict(zip(cache.image_ids, cached))
        now = dict(zip(index.frame["image_id"].astype(str), index.frame["sha256"]))
        if all(i in by_id and by_id[i] and by_id[i] == now.get(i) for i in wanted):
            return
    raise CxrlabError(f"cache {cache.dir} was built from another index (index sha256 {_short(built_from)}..., "
                      f"{index.path or 'this index'} is {_short(index.sha256)}...); {rebuild}")


def expected_hashes(index: Any) -> dict[str, str]:
    """image id -> sha256 recorded by the index (empty when it was built with --no-hash)."""
    if "sha256" not in index.frame.columns:
        return {}
    return {str(i): h for i, h in zip(index.frame["image_id"], index.frame["sha256"])
            if isinstance(h, str) and len(h) == 64}


def check_image_file(path: str | Path, expected: str | None, index_path: Any = None) -> None:
    """An image file must still be the file the index hashed; a changed file is a one-line error."""
    if not expected:
        return
    from cxrlab.utils import sha256_file

    actual = sha256_file(path)
    if actual != expected:
        where = shlex.quote(str(index_path)) if index_path else "INDEX"
        raise CxrlabError(f"{path} changed after indexing (sha256 {_short(actual)}..., the index {where} recorded "
                          f"{_short(expected)}...); re-index the dataset with `cxrlab data index` (then re-split and "
                          "re-cache), or restore the file")


def check_split_index(split_csv: str | Path, index: Any) -> None:
    """A split made from another index (its ``split.json`` records that index's sha256) is named in a warning:
    the ids may still match (an index rebuilt or edited by hand), so training goes on with what is there."""
    import warnings

    side = Path(split_csv).with_suffix(".json")
    if not side.is_file():
        return
    made_from = read_json(side, kind=dict, fix=f"restore it, or delete {side.name} (it only records provenance)"
                          ).get("index_sha256")
    if made_from and made_from != index.sha256:
        warnings.warn(f"{split_csv} was made from another index (sha256 {_short(made_from)}..., "
                      f"{index.path or 'this index'} is {_short(index.sha256)}...); re-split with `cxrlab data split "
                      f"{index.path or 'INDEX'} --out NEW_SPLIT.csv` unless the index was only rebuilt", UserWarning,
                      stacklevel=3)


# ----------------------------------------------------------------------------- checkpoints
def read_weights(path: str | Path) -> dict[str, Any]:
    """The tensors of a ``.safetensors`` checkpoint, checked against the ``weights_sha256`` in its JSON."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    data = path.read_bytes()
    fix = "restore it, or retrain (the run's other checkpoint may still be good: try --which last)"
    if not data:
        raise CxrlabError(f"checkpoint {path} is empty (0 bytes); {fix}")
    side = path.with_suffix(".json")
    if side.is_file():
        recorded = read_json(side, kind=dict, fix="restore it or retrain").get("weights_sha256")
        actual = sha256_bytes(data)
        if recorded and recorded != actual:
            raise CxrlabError(f"checkpoint {path} does not match its {side.name} (weights sha256 {_short(actual)}..., "
                              f"the JSON records {_short(recorded)}...): the file was changed or truncated; {fix}")
    try:
        return load(data)
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        first = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise CxrlabError(f"checkpoint {path} is not a readable safetensors file ({first}); {fix}") from None


def read_state(path: str | Path) -> dict[str, Any]:
    """A training state (``last_state.pt``) loaded safely; a truncated or corrupt one is a one-line error."""
    import pickle
    import zipfile

    import torch

    path = Path(path)
    fix = "it cannot be resumed: start a new run (another --out), or delete the run and train again"
    if path.stat().st_size == 0:
        raise CxrlabError(f"training state {path} is empty (0 bytes); {fix}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError) as exc:
        first = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise CxrlabError(f"training state {path} is corrupt or truncated ({first}); {fix}") from None
    if not isinstance(state, dict) or "epoch" not in state:
        raise CxrlabError(f"training state {path} is not a cxrlab training state; {fix}")
    return state


# ----------------------------------------------------------------------------- runs and resume
def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        out.update(_flat(v, f"{key}.") if isinstance(v, dict) else {key: v})
    return out


def data_hashes(data: Any) -> dict[str, Any]:
    """What a run learns from: the index's sha256, the split actually used (fold applied), the cache's index."""
    split_text = data.split.to_csv(index=False, lineterminator="\n")
    return {"index_sha256": data.index.sha256, "split_sha256": sha256_bytes(split_text.encode()),
            "cache_index_sha256": data.cache.meta.get("index_sha256") if data.cache is not None else None}


def record_run_inputs(out: str | Path, cfg: Any, data: Any) -> None:
    """``RUN/inputs.json``: the resolved config and data hashes a later ``--resume`` must match."""
    from cxrlab.config import config_to_dict

    write_json(Path(out) / RUN_INPUTS, {"config": config_to_dict(cfg), **data_hashes(data)})


def check_run_files(run: str | Path | None, index: str | Path | None = None) -> None:
    """A run's own ``split.csv`` (and, given, the index its images come from) against the sha256 that
    ``RUN/inputs.json`` recorded at training: a changed byte would silently move images between splits."""
    from cxrlab.utils import sha256_file

    old = RunDir(Path(run)).inputs() if run is not None else None
    if old is None:
        return  # a loose checkpoint, or a run from before the record existed
    run = Path(run)
    csv = Path(index) / "index.csv" if index is not None and Path(index).is_dir() else index
    for path, key, what in ((RunDir(run).split_path, "split_sha256", "the run's split"),
                            (csv, "index_sha256", "the index the run was trained on")):
        if path is None or not Path(path).is_file() or not old.get(key):
            continue
        actual = sha256_file(path)
        if actual != old[key]:
            raise CxrlabError(f"{path} ({what}) changed after training (sha256 {_short(actual)}..., "
                              f"{run / RUN_INPUTS} records {_short(old[key])}...); restore it, or retrain on it")


def check_resume(out: str | Path, cfg: Any, data: Any, config_path: str | None = None) -> None:
    """``train --resume`` must continue the same training: same data, same settings (epochs etc. may grow)."""
    from cxrlab.config import config_to_dict

    record = Path(out) / RUN_INPUTS
    if not record.is_file():
        return  # a run from before the record existed: the model/classes check in fitting still applies
    old = read_json(record, kind=dict, required=("config",), fix="restore it, or start a new run (another --out)")
    fix = (f"resume with the run's own settings (cxrlab train --config {shlex.quote(str(Path(out) / 'config.yaml'))} "
           f"--out {shlex.quote(str(out))} --resume), or start a new run with another --out")
    now = data_hashes(data)
    for key, label in (("index_sha256", "index"), ("split_sha256", "split"), ("cache_index_sha256", "cache")):
        if old.get(key) != now[key]:
            raise CxrlabError(f"--resume with different data: the run was trained on {label} sha256 "
                              f"{_short(old.get(key))}..., now {_short(now[key])}...; {fix}")
    before, after = _flat(old["config"]), _flat(config_to_dict(cfg))
    for key in sorted(set(before) & set(after)):  # a key only one side has: a newer cxrlab's default
        if key in RESUMABLE:
            continue  # data paths may move (their content is compared above); epochs may grow
        if before.get(key) != after.get(key):
            raise CxrlabError(f"--resume with a different setting: {key} was {before.get(key)!r}, now "
                              f"{after.get(key)!r}; {fix}")


# ----------------------------------------------------------------------------- cross-validation
def check_cv_settings(out: str | Path, cfg: Any, folds: int, protocol: dict[str, Any] | None = None) -> None:
    """A ``cv`` rerun into the same folder must use the settings that made its folds and fold runs
    (``protocol``: the cv's own settings, e.g. how checkpoints are selected; compared even when the record
    predates them, so a folder of another protocol is never reused)."""
    from cxrlab.config import config_to_dict

    out = Path(out)
    record = out / CV_SETTINGS
    settings = {k: v for k, v in _flat(config_to_dict(cfg)).items() if k not in CV_IGNORED}
    settings["folds"] = folds
    settings.update(protocol or {})
    if not record.is_file():
        write_json(record, settings)
        return
    old = read_json(record, kind=dict, fix="restore it, or run cv into a new --out")
    for key in sorted((set(old) & set(settings)) | {"folds"} | set(protocol or {})):
        if old.get(key) != settings.get(key):
            raise CxrlabError(f"{out} holds a cross-validation made with {key}={old.get(key)!r}, now "
                              f"{settings.get(key)!r}; its folds and fold runs do not fit these settings: run cv "
                              "into a new --out (or delete the folder to redo it)")
