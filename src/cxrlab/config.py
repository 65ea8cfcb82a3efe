"""Training configuration: nested dataclasses loaded from YAML, with typed dotted ``--set`` overrides.

Config is data (litgpt ``args.py`` style): every field has a docstring, ``__post_init__`` validates it, and
unknown keys are errors that name the nearest valid key. ``load_config(path, ["train.epochs=2"])`` reads a
recipe, applies overrides parsed with YAML typing, and validates; ``save_config`` writes the resolved config
that goes into every run directory and checkpoint. The sections (``DataConfig`` ... ``TrainConfig``) live in
``cxrlab.config_sections`` and are re-exported here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cxrlab.config_sections import (  # noqa: F401 - re-exported: import the sections from cxrlab.config
    AMP_MODES,
    DEVICES,
    FREEZE_MODES,
    OPTIMIZERS,
    POLICIES,
    SAMPLERS,
    SCHEDULES,
    TRACKERS,
    AugmentConfig,
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    SamplerConfig,
    ScheduleConfig,
    TrainConfig,
)
from cxrlab.errors import CxrlabError
from cxrlab.schema import Schema, dataclass_from_dict, load_yaml, unknown_key, valid_keys


@dataclass
class Config:
    name: str = "run"
    """Short name of the recipe."""
    source: str = ""
    """Which paper or system the recipe follows, and the deviations we chose."""
    data: DataConfig = field(default_factory=DataConfig)
    """Where the images, labels and split are."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """What to train."""
    loss: LossConfig = field(default_factory=LossConfig)
    """The loss and its parameters."""
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    """How training images are drawn."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Augmentation of training images."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimiser."""
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    """Learning-rate schedule."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The loop: epochs, batch size, lr, seed, device, precision, averaging, stopping."""


# --------------------------------------------------------------------------- building from plain data


CONFIG_SCHEMA = Schema(Config)


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """The config as plain nested dicts (what ``save_config`` writes)."""
    return dataclasses.asdict(cfg)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Build and validate a ``Config`` from nested dicts (unknown keys are errors)."""
    return dataclass_from_dict(CONFIG_SCHEMA, data)


# --------------------------------------------------------------------------- overrides and files


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` strings to nested dicts; values are parsed as YAML (``false``, ``[1, 2]``, ``2``)."""
    valid = set(valid_keys(CONFIG_SCHEMA))
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CxrlabError(f"--set {item!r}: expected key=value, e.g. train.epochs=2")
        parts = key.split(".")
        # free-form mappings (layer_lrs, params) accept any sub-key
        if key not in valid and ".".join(parts[:-1]) not in _FREE_MAPPINGS:
            raise unknown_key(CONFIG_SCHEMA, key)
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        node = data
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
    return data


_FREE_MAPPINGS = ("optim.layer_lrs", "loss.params", "data.source_weights")

# Recipes ship inside the package, so `configs/nih/vit_v1.yaml` works from any folder, not only a clone.
PACKAGED_CONFIGS = Path(__file__).parent / "configs"


def resolve_recipe(path: str | Path) -> Path:
    """A recipe path as given, else the packaged recipe it names (``configs/smoke.yaml``, ``nih/vit_v1``)."""
    path = Path(path)
    if path.exists():
        return path
    name = path.as_posix().removeprefix("configs/")
    for candidate in (PACKAGED_CONFIGS / name, PACKAGED_CONFIGS / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    packaged = sorted(p.relative_to(PACKAGED_CONFIGS).as_posix() for p in PACKAGED_CONFIGS.rglob("*.yaml"))
    raise CxrlabError(f"config file {path} does not exist; give a YAML file or one of the {len(packaged)} packaged "
                      f"recipes (configs/{', configs/'.join(packaged[:4])}, ...: every one is listed in "
                      "docs/training.md, section 'Recipes')")


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Read a YAML recipe (or start from defaults when ``path`` is None), apply overrides, validate."""
    data: dict[str, Any] = {}
    if path is not None:
        path = resolve_recipe(path)
        data = load_yaml(path) or {}  # a key written twice is an error naming it and its lines
        if not isinstance(data, dict):
            raise CxrlabError(f"{path}: a config must be a YAML mapping of sections (data, model, train, ...)")
    data = apply_overrides(data, list(overrides or []))
    try:
        return config_from_dict(data)
    except CxrlabError as exc:
        where = f"{path}: " if path is not None else ""
        raise CxrlabError(f"{where}{exc}") from None


def dump_config(cfg: Config) -> str:
    """The config as YAML text."""
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False)


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomically)."""
    from cxrlab.utils import atomic_write_text

    atomic_write_text(path, dump_config(cfg))
    return Path(path)
