"""A tiny trained run on phantom data, shared by the explain/uncertainty/pseudo tests of this folder."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(run_dir, index_dir): cnn_gap trained 1 epoch on 40 phantom images at 32 px (a few seconds)."""
    import torch

    from cxrlab.config import load_config
    from cxrlab.data.phantom import make_phantom_index
    from cxrlab.data.splits import patient_level_split, write_split
    from cxrlab.train import fit

    root = tmp_path_factory.mktemp("tiny_run")
    index = make_phantom_index(root / "ph", n=40, size=32, seed=0)
    write_split(patient_level_split(index, 0.2, 0.2, seed=0), root / "split.csv", "patient", 0, index)
    cfg = load_config(None, [f"data.index={root / 'ph' / 'index'}", f"data.split={root / 'split.csv'}",
                             "data.image_size=32", "data.cache_size=32", "model.name=cnn_gap", "train.epochs=1",
                             "train.batch_size=16", "augment.policy=none", "train.device=cpu", "train.threads=1"])
    threads = torch.get_num_threads()
    run = fit(cfg, root / "run")
    torch.set_num_threads(threads)
    return run, root / "ph" / "index"
