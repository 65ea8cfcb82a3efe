"""A tiny trained run on phantom data and its ONNX export, shared by the deployment tests."""

from __future__ import annotations

import pytest


def make_run(root, model: str = "cnn_gap", task: str = "multilabel", n: int = 40, size: int = 32):
    """Train ``model`` 1 epoch on ``n`` phantom images at ``size`` px; returns (run_dir, index_dir)."""
    import torch

    from cxrlab.config import load_config
    from cxrlab.data.phantom import make_phantom_index
    from cxrlab.data.splits import patient_level_split, write_split
    from cxrlab.train import fit

    index = make_phantom_index(root / "ph", n=n, size=size, seed=0, task=task)
    write_split(patient_level_split(index, 0.2, 0.2, seed=0), root / "split.csv", "patient", 0, index)
    cfg = load_config(None, [f"data.index={root / 'ph' / 'index'}", f"data.split={root / 'split.csv'}",
                             f"data.image_size={size}", f"data.cache_size={size}", f"model.name={model}",
                             "train.epochs=1", "train.batch_size=16", "augment.policy=none", "train.device=cpu",
                             "train.threads=1"])
    threads = torch.get_num_threads()
    run = fit(cfg, root / "run")
    torch.set_num_threads(threads)
    return run, root / "ph" / "index"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(run_dir, index_dir): cnn_gap, 1 epoch, 40 phantom images at 32 px (a few seconds)."""
    return make_run(tmp_path_factory.mktemp("deploy_run"))


@pytest.fixture(scope="session")
def exported(tiny_run, tmp_path_factory):
    """(onnx_path, contract) of ``tiny_run``."""
    from cxrlab.deploy.export import export_run

    out = tmp_path_factory.mktemp("deploy_onnx") / "model.onnx"
    return out, export_run(tiny_run[0], out)
