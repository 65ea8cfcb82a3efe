"""Expand a study into its plan: arms (listed x swept), runs (arms x seeds) with resolved configs, shards.

Every run's config is resolved here, before anything trains, so a bad key or value anywhere in the study is
a one-line error up front. Resolution order (later wins): the arm's recipe (or the base recipe), ``base.set``,
the arm's ``set``, its swept values, the study's data paths, the budget, the seed, the command line's
``--set``, and finally ``--smoke`` (one epoch).
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

from cxrlab.config import Config, config_to_dict, load_config
from cxrlab.errors import CxrlabError
from cxrlab.study.spec import Study


@dataclass
class Arm:
    """One arm: its recipe and overrides (``key=value`` strings), and the swept values that made it."""

    name: str
    recipe: str | None
    overrides: list[str]
    swept: dict[str, Any] = field(default_factory=dict)
    listed: str | None = None  # the arm of ``arms`` it expands (None: the base)


@dataclass
class RunSpec:
    """One arm x seed: the run folder name and the resolved config."""

    name: str
    arm: str
    seed: int
    config: Config


@dataclass
class Plan:
    study: Study
    arms: list[Arm]
    runs: list[RunSpec]
    base: Config
    reference: str | None
    epochs_note: str

    def arm(self, name: str) -> Arm:
        return next(a for a in self.arms if a.name == name)

    def diff(self, run: RunSpec) -> dict[str, tuple[Any, Any]]:
        """Config keys where ``run`` differs from the base (seed and name left out): key -> (base, run)."""
        return config_diff(self.base, run.config)


def _as_overrides(values: dict[str, Any]) -> list[str]:
    # JSON is YAML: the value keeps its type through apply_overrides' YAML parsing
    return [f"{k}={json.dumps(v)}" for k, v in values.items()]


def _short_keys(keys: list[str]) -> dict[str, str]:
    """Readable sweep labels: the last part of each dotted key (``loss`` for ``loss.name``), the full key where
    two would collide."""
    last = [k.split(".")[-2] if k.endswith(".name") and "." in k else k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last)}


def _label(value: Any) -> str:
    text = "-".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", text)


def expand_arms(study: Study) -> list[Arm]:
    """Listed arms crossed with the sweep grid; names ``arm,key=value,key=value`` (or ``key=value,...``)."""
    listed = study.arms or [None]
    keys = list(study.sweep)
    short = _short_keys(keys)
    grid = list(itertools.product(*(study.sweep[k] for k in keys))) if keys else [()]
    base_set = _as_overrides(study.base.set)
    arms = []
    for arm in listed:
        for values in grid:
            swept = dict(zip(keys, values))
            parts = ([arm.name] if arm else []) + [f"{short[k]}={_label(v)}" for k, v in swept.items()]
            name = ",".join(parts) or "base"
            overrides = base_set + (_as_overrides(arm.set) if arm else []) + _as_overrides(swept)
            recipe = (arm.recipe if arm and arm.recipe else None) or study.base.recipe
            arms.append(Arm(name, recipe, overrides, swept, arm.name if arm else None))
    names = [a.name for a in arms]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CxrlabError(f"study arms: the sweep gives duplicate arm names {', '.join(dup)}; rename the arms")
    return arms


def data_overrides(data: dict[str, str | None]) -> list[str]:
    """``data.index/split/cache`` overrides from the study's (prepared) data paths."""
    return [f"data.{k}={json.dumps(v)}" for k, v in data.items() if v is not None]


def _budget(study: Study, n_train: int | None) -> tuple[list[str], str]:
    b = study.budget
    if b.epochs is not None:
        return [f"train.epochs={b.epochs}"], f"{b.epochs} epochs for every arm"
    if b.images is not None:
        if not n_train:
            return [], f"{b.images} training images seen per arm (epochs resolved once the split is known)"
        epochs = max(1, round(b.images / n_train))
        return [f"train.epochs={epochs}"], (f"{b.images} training images seen per arm = {epochs} epochs of "
                                            f"{n_train} images (a 2x batch size takes half the steps)")
    return [], "each recipe's own epochs (no common budget set)"


def _resolve(recipe: str | None, overrides: list[str], where: str) -> Config:
    try:
        cfg = load_config(recipe, overrides)
    except CxrlabError as exc:
        raise CxrlabError(f"{where}: {exc}") from None
    check_names(cfg, where)
    return cfg


def check_names(cfg: Config, where: str) -> None:
    """Model and loss names exist (the config itself does not know the registries)."""
    from cxrlab.losses import LOSSES
    from cxrlab.models.factory import MODELS
    from cxrlab.registry import unknown_name_message

    name = cfg.model.name
    if name.startswith("xrv:"):
        from cxrlab.models.xrv import XRV_NATIVE_SIZE

        if name[4:] not in XRV_NATIVE_SIZE:
            raise CxrlabError(f"{where}: unknown torchxrayvision model {name!r}; valid: "
                              + ", ".join(f"xrv:{n}" for n in XRV_NATIVE_SIZE))
    elif not name.startswith(("timm:", "tv:")) and name not in MODELS:
        raise CxrlabError(f"{where}: {unknown_name_message('model', name, MODELS.names())}")
    if name.startswith("timm:"):
        import timm

        if not timm.is_model(name[5:]):
            raise CxrlabError(f"{where}: timm has no model {name[5:]!r} (see `cxrlab models list`)")
    if cfg.loss.name != "auto" and cfg.loss.name not in LOSSES:
        raise CxrlabError(f"{where}: {unknown_name_message('loss', cfg.loss.name, ['auto', *LOSSES.names()])}")


def make_plan(study: Study, data: dict[str, str | None] | None = None, cli_set: list[str] | None = None,
              smoke: bool = False, n_train: int | None = None) -> Plan:
    """Expand ``study`` into arms and runs with resolved configs; raises on any bad key, value or name.

    Args:
        data: the study's data paths (``index``, ``split``, ``cache``) once prepared; None keeps the recipes'.
        cli_set: ``--set key=value`` strings applied to every run, after the study's own settings.
        smoke: one epoch per run and the first seed only (checks that every arm trains).
        n_train: training images per epoch, to turn an images-seen budget into epochs.
    """
    arms = expand_arms(study)
    names = [a.name for a in arms]
    if study.reference is not None and study.reference not in names:
        raise CxrlabError(f"study reference {study.reference!r} is not an arm; arms: {', '.join(names)}")
    for ens in study.ensembles:
        missing = [m for m in ens.members if m not in names]
        if missing:
            raise CxrlabError(f"study ensemble {ens.name}: {', '.join(missing)} not an arm; arms: {', '.join(names)}")
        if ens.name in names:
            raise CxrlabError(f"study ensemble {ens.name}: the name is already an arm's; rename the ensemble")
    budget, note = _budget(study, n_train)
    tail = data_overrides(data or {}) + budget
    after = list(cli_set or []) + (["train.epochs=1"] if smoke else [])
    base = _resolve(study.base.recipe, _as_overrides(study.base.set) + tail + after, "study base")
    seeds = study.seeds[:1] if smoke else study.seeds
    runs = []
    for arm in arms:
        _resolve(arm.recipe, arm.overrides + tail + after, f"study arm {arm.name}")  # one error per arm, early
        for seed in seeds:
            cfg = _resolve(arm.recipe, arm.overrides + tail + [f"train.seed={seed}", f"name={arm.name}"] + after,
                           f"study arm {arm.name}")
            name = f"{arm.name}-s{seed}" if study.seed_in_run_names else arm.name
            runs.append(RunSpec(name, arm.name, seed, cfg))
    if smoke:
        note += " (--smoke: 1 epoch, first seed only)"
    return Plan(study, arms, runs, base, study.reference, note)


def parse_shard(text: str | None) -> tuple[int, int]:
    """``"I/N"`` (1 <= I <= N) -> (I, N); None -> (1, 1)."""
    if text is None:
        return 1, 1
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise CxrlabError(f"--shard {text!r}: expected I/N, e.g. --shard 1/4 (shard 1 of 4)")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 1 <= i <= n:
        raise CxrlabError(f"--shard {text}: I must be between 1 and N (e.g. 1/{max(n, 1)} ... {max(n, 1)}/{max(n, 1)})")
    return i, n


def shard_runs(runs: list[RunSpec], shard: tuple[int, int]) -> list[RunSpec]:
    """The deterministic share of shard I of N: runs I-1, I-1+N, I-1+2N, ... of the plan's order."""
    i, n = shard
    return [r for k, r in enumerate(runs) if k % n == i - 1]


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def config_diff(base: Config, other: Config) -> dict[str, tuple[Any, Any]]:
    """Flattened keys whose values differ (``name``, ``source`` and ``train.seed`` left out)."""
    a, b = _flatten(config_to_dict(base)), _flatten(config_to_dict(other))
    keys = [k for k in dict.fromkeys([*a, *b]) if k not in ("name", "source", "train.seed")]
    return {k: (a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)}
