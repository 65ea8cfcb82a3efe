"""What a trained run is, typed: ``RunInfo`` and its ``Preprocess``, parsed and validated once from the
checkpoint's JSON (written by ``cxrlab.train.checkpoint.save_weights``).

Every verb that loads a checkpoint for inference goes through ``RunInfo.from_dict`` (via
``cxrlab.predict.load_run``); only the writer (``cxrlab.train``) and the weights hash check
(``cxrlab.provenance.read_weights``) touch the JSON otherwise. A missing or ill-typed field is a one-line
``CxrlabError`` naming the file and the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cxrlab.errors import CxrlabError
from cxrlab.tasks import check_task

RESIZE_POLICIES = ("letterbox", "center_crop")  # cxrlab.data.images.RESIZE_POLICIES (data is not imported here)
AUGMENT_POLICIES = ("none", "paper", "medical", "lab_a", "lab_b")
_REFIT = "re-save it with `cxrlab train` (or pass the checkpoint's run directory)"


@dataclass(frozen=True)
class Preprocess:
    """How an image file becomes the model's input: ``read_image`` -> ``resize_image(cache_size, policy)``
    (the run's cache holds exactly that) -> the eval transform of ``augment_policy`` at ``image_size``
    (CLAHE first when ``clahe``; resize, centre crop where the policy crops; ``in_chans`` channels;
    normalised by ``mean``/``std``)."""

    image_size: int
    in_chans: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    cache_size: int
    policy: str = "letterbox"
    augment_policy: str = "none"
    clahe: bool = False
    index: str | None = None  # absolute path of the index the run was trained on
    cache: str | None = None  # absolute path of its preprocessing cache, when it had one

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**d, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: Any, where: str = "preprocess") -> Preprocess:
        if not isinstance(d, Mapping):
            raise CxrlabError(f"{where}: expected an object with image_size, in_chans, mean, std, cache_size; {_REFIT}")
        in_chans = _positive_int(d, "in_chans", where)
        return cls(
            image_size=_positive_int(d, "image_size", where),
            in_chans=in_chans,
            mean=_stats(d, "mean", where, in_chans, positive=False),
            std=_stats(d, "std", where, in_chans, positive=True),
            cache_size=_positive_int(d, "cache_size", where),
            policy=_choice(d, "policy", where, RESIZE_POLICIES, "letterbox"),
            augment_policy=_choice(d, "augment_policy", where, AUGMENT_POLICIES, "none"),
            clahe=_bool(d, "clahe", where),
            index=_optional_str(d, "index", where),
            cache=_optional_str(d, "cache", where),
        )


@dataclass(frozen=True)
class RunInfo:
    """A trained model's identity: what it predicts, how it is built, how its input is made, and where it
    came from. ``run_dir`` is None for a checkpoint file outside a run directory."""

    task: str
    classes: tuple[str, ...]
    model_name: str
    model_kwargs: Mapping[str, Any]
    preprocess: Preprocess
    weights_sha256: str | None = None
    checkpoint: Path | None = None  # the .safetensors file
    run_dir: Path | None = None
    which: str | None = None  # best | last | swa
    epoch: int | None = None
    metric: str | None = None
    val_metric: float | None = None
    thresholds: Mapping[str, float] | None = None  # operating thresholds per class, when the run has them
    temperature: float | tuple[float, ...] | None = None
    config: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def index(self) -> str | None:
        """The index the run was trained on (the checkpoint's, else its config's ``data.index``)."""
        return self._recorded(self.preprocess.index or _config_data(self.config).get("index"))

    @property
    def cache(self) -> str | None:
        """The run's preprocessing cache (the checkpoint's, else its config's ``data.cache``), or None."""
        return self._recorded(self.preprocess.cache or _config_data(self.config).get("cache"))

    def _recorded(self, value: str | None) -> str | None:
        """A path the run recorded: relative ones are relative to the run (or the checkpoint's folder)."""
        from cxrlab.utils import recorded_path

        base = self.run_dir if self.run_dir is not None else self.checkpoint.parent if self.checkpoint else None
        return str(recorded_path(value, base)) if value and base is not None else value

    @property
    def split_csv(self) -> Path | None:
        """``RUN_DIR/split.csv`` (the run's own split), or None for a loose checkpoint."""
        from cxrlab.rundir import RunDir

        return RunDir(self.run_dir).split_path if self.run_dir is not None else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the checkpoint JSON's keys plus ``checkpoint``, ``run_dir`` and ``which``."""
        out: dict[str, Any] = {
            "task": self.task, "classes": list(self.classes), "model_name": self.model_name,
            "model_kwargs": dict(self.model_kwargs), "preprocess": self.preprocess.to_dict(),
            "weights_sha256": self.weights_sha256,
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "run_dir": str(self.run_dir) if self.run_dir else None, "which": self.which,
            "epoch": self.epoch, "metric": self.metric, "val_metric": self.val_metric,
            "config": dict(self.config),
        }
        if self.thresholds is not None:
            out["thresholds"] = dict(self.thresholds)
        if self.temperature is not None:
            t = self.temperature
            out["temperature"] = list(t) if isinstance(t, tuple) else t
        return out

    @classmethod
    def from_dict(cls, d: Any, where: str = "checkpoint JSON", checkpoint: str | Path | None = None,
                  run_dir: str | Path | None = None, which: str | None = None) -> RunInfo:
        """Parse and validate ``d`` (a checkpoint JSON or ``to_dict()`` output); ``where`` names it in errors."""
        if not isinstance(d, Mapping):
            raise CxrlabError(f"{where}: expected a JSON object, got {type(d).__name__}; {_REFIT}")
        classes = _classes(d, where)
        kwargs = d.get("model_kwargs") or {}
        if not isinstance(kwargs, Mapping):
            raise CxrlabError(f"{where}: field 'model_kwargs' must be an object; {_REFIT}")
        config = d.get("config") or {}
        checkpoint = checkpoint if checkpoint is not None else d.get("checkpoint")
        run_dir = run_dir if run_dir is not None else d.get("run_dir")
        return cls(
            task=check_task(d.get("task"), f"{where}: field 'task'"),
            classes=classes,
            model_name=_str(d, "model_name", where),
            model_kwargs={k: v for k, v in kwargs.items() if k != "num_classes"},
            preprocess=Preprocess.from_dict(d.get("preprocess"), f"{where}: field 'preprocess'"),
            weights_sha256=_optional_str(d, "weights_sha256", where),
            checkpoint=Path(checkpoint) if checkpoint else None,
            run_dir=Path(run_dir) if run_dir else None,
            which=which if which is not None else d.get("which"),
            epoch=d.get("epoch") if isinstance(d.get("epoch"), int) else None,
            metric=d.get("metric") if isinstance(d.get("metric"), str) else None,
            val_metric=_finite_or_none(d.get("val_metric")),
            thresholds=_thresholds(d.get("thresholds"), classes, where),
            temperature=_temperature(d.get("temperature"), where),
            config=config if isinstance(config, Mapping) else {},
        )


# ----------------------------------------------------------------------------- field checks
def _config_data(config: Mapping[str, Any]) -> Mapping[str, Any]:
    data = config.get("data") if isinstance(config, Mapping) else None
    return data if isinstance(data, Mapping) else {}


def _str(d: Mapping, key: str, where: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v:
        raise CxrlabError(f"{where}: field '{key}' is missing or not a string; {_REFIT}")
    return v


def _optional_str(d: Mapping, key: str, where: str) -> str | None:
    v = d.get(key)
    if v is not None and not isinstance(v, str):
        raise CxrlabError(f"{where}: field '{key}' must be a string or null, got {v!r}")
    return v or None


def _positive_int(d: Mapping, key: str, where: str) -> int:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise CxrlabError(f"{where}.{key} must be a positive integer, got {v!r}; {_REFIT}")
    return v


def _bool(d: Mapping, key: str, where: str) -> bool:
    v = d.get(key, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise CxrlabError(f"{where}.{key} must be true or false, got {v!r}")
    return v


def _choice(d: Mapping, key: str, where: str, valid: tuple[str, ...], default: str) -> str:
    v = d.get(key) or default
    if v not in valid:
        raise CxrlabError(f"{where}.{key} is {v!r}; valid: {', '.join(valid)}")
    return v


def _stats(d: Mapping, key: str, where: str, in_chans: int, positive: bool) -> tuple[float, ...]:
    v = d.get(key)
    values = v if isinstance(v, (list, tuple)) else None
    ok = values is not None and len(values) in (1, in_chans) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and (x > 0 or not positive)
        for x in values)
    if not ok:
        rule = "positive numbers" if positive else "numbers"
        raise CxrlabError(f"{where}.{key} must be a list of 1 or {in_chans} finite {rule}, got {v!r}; {_REFIT}")
    return tuple(float(x) for x in values)


def _classes(d: Mapping, where: str) -> tuple[str, ...]:
    v = d.get("classes")
    if not isinstance(v, list) or not v or not all(isinstance(c, str) and c for c in v):
        raise CxrlabError(f"{where}: field 'classes' must be a non-empty list of class names; {_REFIT}")
    if len(set(v)) != len(v):
        dup = next(c for c in v if v.count(c) > 1)
        raise CxrlabError(f"{where}: class {dup!r} appears twice in 'classes'; {_REFIT}")
    return tuple(v)


def _finite_or_none(v: Any) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
        return float(v)
    return None


def _thresholds(v: Any, classes: tuple[str, ...], where: str) -> dict[str, float] | None:
    if v is None:
        return None
    if not isinstance(v, Mapping) or set(v) - set(classes) or not all(
            _finite_or_none(x) is not None and 0 <= x <= 1 for x in v.values()):
        raise CxrlabError(f"{where}: field 'thresholds' must map class names to numbers in [0, 1]")
    return {k: float(x) for k, x in v.items()}


def _temperature(v: Any, where: str) -> float | tuple[float, ...] | None:
    if v is None:
        return None
    values = v if isinstance(v, (list, tuple)) else [v]
    if not values or not all((_finite_or_none(x) or 0) > 0 for x in values):
        raise CxrlabError(f"{where}: field 'temperature' must be a positive number or a list of them, got {v!r}")
    return tuple(float(x) for x in values) if isinstance(v, (list, tuple)) else float(v)
