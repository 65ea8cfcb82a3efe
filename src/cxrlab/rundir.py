"""The one reader of a run directory: ``RunDir`` knows the layout ``cxrlab.train`` writes, resolves the paths a
run records relative to the run (never the current directory), and reports every damaged or missing file the
same way: one ``CxrlabError`` line naming the file, what is wrong with it, and the fix.

Layout (written by ``cxrlab.train.run`` and ``cxrlab.provenance``)::

    RUN/config.yaml          the resolved recipe (data paths absolute, or relative to RUN)
    RUN/split.csv            the split actually used (image_id, split[, fold])
    RUN/inputs.json          sha256 of the split and index at training (provenance)
    RUN/metrics.csv          one row per epoch
    RUN/checkpoints/         {best,last,swa}.safetensors + .json
    RUN/predictions/         {val,test}.csv + .json sidecars
    RUN/manifest.json        written last: its presence (with predictions/test.csv) means the run finished

A *training run* is a folder holding ``config.yaml``, ``split.csv`` or ``checkpoints/``; a folder holding only
``predictions/`` (another tool's output) is read as predictions alone. ``RunDir.check`` parses every file that
is there, so every verb refuses a garbled file with the same line before doing any work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxrlab.errors import CxrlabError
from cxrlab.utils import recorded_path

CONFIG = "config.yaml"
SPLIT = "split.csv"
INPUTS = "inputs.json"
METRICS = "metrics.csv"
MANIFEST = "manifest.json"
CHECKPOINTS = "checkpoints"
PREDICTIONS = "predictions"
FIX = "restore it from a copy of the run, or retrain the run with `cxrlab train`"
UNFINISHED = "the run has not finished: resume it with `cxrlab train --resume`, or retrain it"


def run_file_error(path: Path, problem: str, fix: str = FIX) -> CxrlabError:
    """The one error for a run's own file: ``RUN/FILE: problem; fix``."""
    return CxrlabError(f"{path}: {problem}; {fix}")


# manifest.json field -> the spellings read for it (ours first; then other tools' manifests), in one place
MANIFEST_FIELDS: dict[str, tuple[str, ...]] = {
    "model": ("model", "model_name"),
    "parameters": ("parameters", "params", "n_params", "num_params"),
    "wall_seconds": ("wall_seconds", "wall_time_s", "train_seconds", "seconds", "wall_time"),
    "images_per_s": ("images_per_s", "images_per_second", "throughput"),
}


@dataclass(frozen=True)
class RunManifest:
    """What ``manifest.json`` says about a finished run, typed (``cxrlab.train.run.write_manifest`` writes it;
    the spellings of ``MANIFEST_FIELDS`` are read as ours). Every field is None where the manifest lacks it."""

    config: str | None = None  # the recipe's name
    model: str | None = None
    parameters: int | None = None
    wall_seconds: float | None = None
    images_per_s: float | None = None
    device: str | None = None
    seed: int | None = None
    git_commit: str | None = None
    cxrlab_version: str | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunManifest:
        def first(name: str, kind: type | tuple[type, ...]) -> Any:
            names = MANIFEST_FIELDS.get(name, (name,))
            return next((d[n] for n in names if isinstance(d.get(n), kind) and not isinstance(d.get(n), bool)),
                        None)

        number = (int, float)
        return cls(config=first("config", str), model=first("model", str), parameters=first("parameters", number),
                   wall_seconds=first("wall_seconds", number), images_per_s=first("images_per_s", number),
                   device=first("device", str), seed=first("seed", int), git_commit=first("git_commit", str),
                   cxrlab_version=first("cxrlab_version", str))


@dataclass(frozen=True)
class RunDir:
    """A run directory (``path``); every accessor validates what it reads, with the one error wording."""

    path: Path

    @classmethod
    def of_checkpoint(cls, checkpoint: str | Path) -> RunDir | None:
        """The run holding ``RUN/checkpoints/NAME.safetensors``, or None for a loose checkpoint."""
        parent = Path(checkpoint).parent
        run = cls(parent.parent)
        return run if parent.name == CHECKPOINTS and run.is_training_run else None

    @classmethod
    def of_predictions(cls, csv: str | Path) -> RunDir | None:
        """The run holding ``RUN/predictions/SPLIT.csv``, or None for predictions outside a run."""
        parent = Path(csv).resolve().parent
        run = cls(parent.parent)
        return run if parent.name == PREDICTIONS and (run.is_training_run or run.manifest_path.is_file()) else None

    # ------------------------------------------------------------------------------------------ layout
    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def split_path(self) -> Path:
        return self.path / SPLIT

    @property
    def inputs_path(self) -> Path:
        return self.path / INPUTS

    @property
    def metrics_path(self) -> Path:
        return self.path / METRICS

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS

    def predictions(self, split: str) -> Path:
        """``RUN/predictions/<split>.csv`` (it may not exist)."""
        return self.path / PREDICTIONS / f"{split}.csv"

    @property
    def is_training_run(self) -> bool:
        """Written by ``cxrlab train`` (config, split or checkpoints), not a bare folder of predictions."""
        return self.config_path.is_file() or self.split_path.is_file() or self.checkpoints.is_dir()

    @property
    def finished(self) -> bool:
        """``fit`` writes the manifest after the test predictions: both there means the run completed."""
        return self.manifest_path.is_file() and self.predictions("test").is_file()

    # ------------------------------------------------------------------------------------------ reading
    def check(self, need: tuple[str, ...] = ()) -> RunDir:
        """Parse every run file that is present (a garbled one is an error) and require those in ``need``
        (``CONFIG``, ``MANIFEST``, ``SPLIT``); the files a training run always has are required of one."""
        required = set(need) | ({CONFIG} if self.is_training_run else set())
        for name, read in ((CONFIG, self.config), (MANIFEST, self.manifest), (SPLIT, self.split_columns)):
            if name in required or (self.path / name).exists():
                read()
        return self

    def config(self) -> dict[str, Any]:
        """``config.yaml`` as a mapping (the resolved recipe the run was trained with)."""
        import yaml

        text = self._text(self.config_path)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise run_file_error(self.config_path, f"is not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(data, dict) or not isinstance(data.get("data", {}), dict):
            raise run_file_error(self.config_path, "is not a mapping of config sections (data, model, train, ...)")
        return data

    def data_path(self, key: str) -> Path | None:
        """The config's ``data.<key>`` (index, split, cache) resolved relative to the run; None when unset."""
        value = (self.config().get("data") or {}).get(key)
        if value is not None and not isinstance(value, str):
            raise run_file_error(self.config_path, f"data.{key} is {value!r}, not a path")
        return recorded_path(value, self.path) if value else None

    def manifest(self) -> dict[str, Any]:
        """``manifest.json`` (what finished: device, versions, times, parameters) as a mapping."""
        return self._json(self.manifest_path)

    def run_manifest(self) -> RunManifest:
        """``manifest.json`` typed (all fields None when the run has none: an unfinished run, another tool's)."""
        return RunManifest.from_dict(self.manifest() if self.manifest_path.exists() else {})

    def inputs(self) -> dict[str, Any] | None:
        """``inputs.json`` (sha256 of the split and index at training), or None for a run without one."""
        return self._json(self.inputs_path) if self.inputs_path.is_file() else None

    def split(self) -> Any:
        """``split.csv`` as a pandas DataFrame of strings with ``image_id`` and ``split`` columns."""
        import pandas as pd

        self._text(self.split_path)  # missing / unreadable / not text: the one wording
        try:
            frame = pd.read_csv(self.split_path, dtype=str)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise run_file_error(self.split_path, f"is not a readable CSV ({str(exc).splitlines()[0]})") from None
        if not {"image_id", "split"} <= set(frame.columns):
            raise run_file_error(self.split_path, "lacks the image_id and split columns")
        return frame

    def split_columns(self) -> list[str]:
        """The header of ``split.csv``, checked like ``split()`` but without reading every row."""
        import csv

        text = self._text(self.split_path, limit=1 << 16)
        header = next(csv.reader(text.splitlines()[:1]), [])
        if not {"image_id", "split"} <= set(header):
            raise run_file_error(self.split_path, "lacks the image_id and split columns (not a split CSV)")
        return header

    # ------------------------------------------------------------------------------------------ helpers
    def _text(self, path: Path, limit: int | None = None) -> str:
        if not path.is_file():
            if not self.path.is_dir():
                raise run_file_error(path, "the run does not exist", "give a run directory from `cxrlab train`")
            raise run_file_error(path, "is missing from the run", UNFINISHED if path.name == MANIFEST else FIX)
        try:
            with path.open("rb") as f:
                raw = f.read(limit) if limit else f.read()
            if limit and len(raw) == limit:
                raw = raw[: raw.rfind(b"\n") + 1] or raw  # whole lines only (the header is what is checked)
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise run_file_error(path, "is not UTF-8 text") from None
        except OSError as exc:
            raise run_file_error(path, f"cannot be read ({exc.strerror})") from None

    def _json(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(self._text(path))
        except json.JSONDecodeError as exc:
            raise run_file_error(path, f"is not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(data, Mapping):
            raise run_file_error(path, f"is a JSON {type(data).__name__}, not an object")
        return dict(data)
