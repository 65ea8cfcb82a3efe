"""One tiny world for the hostile-input suite, built once per session (a few seconds): a 40-image 32-px phantom
dataset, its index, split and cache, a cnn_gap run trained for one epoch, and its val/test predictions.

Tests never write into the world; each copies what it damages into ``tmp_path``. Every CLI case checks that the
world's files are unchanged afterwards (``helpers.run(inputs=...)``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class World:
    root: Path
    data: Path  # the phantom dataset folder (images/, labels.csv)
    index: Path  # the index folder
    split: Path  # split.csv
    cache: Path
    run: Path  # trained run directory

    @property
    def val(self) -> Path:
        return self.run / "predictions" / "val.csv"

    @property
    def test(self) -> Path:
        return self.run / "predictions" / "test.csv"

    def train_args(self, out: Path, *sets: str) -> list[str]:
        """``cxrlab train`` arguments for a tiny run on this world (overrides appended)."""
        return ["train", "--config", str(self.run / "config.yaml"), "--out", str(out), "--set", *sets]

    def copy_run(self, dest: Path) -> Path:
        """A copy of the trained run to damage (its predictions' sidecars keep pointing at the original)."""
        shutil.copytree(self.run, dest)
        return dest


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    import torch

    from cxrlab.config import load_config
    from cxrlab.data.cache import build_cache
    from cxrlab.data.phantom import make_phantom_index
    from cxrlab.data.splits import make_split
    from cxrlab.train import fit

    root = tmp_path_factory.mktemp("world")
    index = make_phantom_index(root / "ph", n=40, size=32, seed=0, workers=1)
    make_split(index, root / "split.csv", val=0.25, test=0.25, seed=0)
    build_cache(index, root / "cache", size=32, workers=1, progress=False)
    cfg = load_config(None, [f"data.index={root / 'ph' / 'index'}", f"data.split={root / 'split.csv'}",
                             f"data.cache={root / 'cache'}", "data.image_size=32", "data.cache_size=32",
                             "model.name=cnn_gap", "train.epochs=1", "train.batch_size=16", "augment.policy=none",
                             "train.device=cpu", "train.threads=1", "data.require_positives=false"])
    threads = torch.get_num_threads()
    run = fit(cfg, root / "run")
    torch.set_num_threads(threads)
    return World(root, root / "ph", root / "ph" / "index", root / "split.csv", root / "cache", run)


@pytest.fixture
def all_inputs(world: World) -> list[Path]:
    """Every file of the world: no command may change any of them."""
    return [world.root]
