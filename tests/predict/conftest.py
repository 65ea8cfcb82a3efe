"""A tiny trained run shared by the inference tests (cnn_gap, 1 epoch, 30 phantom images at 32 px)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def small_run(tmp_path_factory):
    """(run_dir, phantom folder): a run trained from a cache of its index."""
    import torch

    from cxrlab.config import load_config
    from cxrlab.data.cache import build_cache
    from cxrlab.data.phantom import make_phantom_index
    from cxrlab.data.splits import patient_level_split, write_split
    from cxrlab.train import fit

    root = tmp_path_factory.mktemp("small_run")
    index = make_phantom_index(root / "ph", n=30, size=32, seed=3, workers=1)
    write_split(patient_level_split(index, 0.25, 0.25, seed=0), root / "split.csv", "patient", 0, index)
    build_cache(index, root / "cache", size=32, workers=1)
    cfg = load_config(None, [f"data.index={root / 'ph' / 'index'}", f"data.split={root / 'split.csv'}",
                             f"data.cache={root / 'cache'}", "data.image_size=32", "model.name=cnn_gap",
                             "train.epochs=1", "train.batch_size=16", "augment.policy=none", "train.device=cpu",
                             "train.threads=1"])
    threads = torch.get_num_threads()
    run = fit(cfg, root / "run")
    torch.set_num_threads(threads)
    return run, root / "ph"
