"""`cxrlab uncertainty` and `cxrlab pseudo` read the run's cache when it holds the images, else the files."""

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from cxrlab import predict as P
from cxrlab.cli import main
from cxrlab.predictions import read_predictions


@pytest.fixture(scope="module")
def cached_run(tmp_path_factory):
    """A run trained from a cache of a 40-image phantom whose index holds only 30 of them (the other 10 are an
    unlabeled pool the cache also holds); returns (run, pool index, phantom folder)."""
    from cxrlab.config import load_config
    from cxrlab.data.cache import build_cache
    from cxrlab.data.index import write_index
    from cxrlab.data.phantom import make_phantom_index
    from cxrlab.data.splits import patient_level_split, write_split
    from cxrlab.train import fit

    root = tmp_path_factory.mktemp("cached_run")
    full = make_phantom_index(root / "ph", n=40, size=32, seed=1)
    build_cache(full, root / "cache", size=32, workers=1)
    ids = full.frame["image_id"].astype(str).tolist()
    labelled = full.subset(ids[:30])
    write_index(labelled, root / "labelled")
    pool = full.subset(ids[30:])
    pool.frame[list(full.classes)] = np.nan  # unlabeled
    write_index(pool, root / "pool")
    write_split(patient_level_split(labelled, 0.2, 0.2, seed=0), root / "split.csv", "patient", 0, labelled)
    cfg = load_config(None, [f"data.index={root / 'labelled'}", f"data.split={root / 'split.csv'}",
                             f"data.cache={root / 'cache'}", "data.image_size=32", "model.name=cnn_gap",
                             "train.epochs=1", "train.batch_size=16", "augment.policy=none", "train.device=cpu",
                             "train.threads=1"])
    threads = torch.get_num_threads()
    run = fit(cfg, root / "run")
    torch.set_num_threads(threads)
    return run, root / "pool", root / "ph"


def test_cached_inputs_equal_decoded_inputs(cached_run):
    run, _, _ = cached_run
    _, info = P.load_run(run)
    images = P.images_from_run(info, "test")
    cache = P.open_run_cache(info, images)
    assert cache is not None and (P.cached_rows(images, cache) >= 0).all()
    decoded = next(P.iter_batches(P.ImageSetDataset(images, info), 64))
    cached = next(P.iter_batches(P.ImageSetDataset(images, info, cache=cache), 64))
    assert torch.allclose(decoded.x, cached.x) and decoded.sizes[0] == (32, 32) and cached.sizes[0] is None
    folder = P.ImageSet(images.image_ids, images.paths)  # file names from a folder are not matched
    assert P.open_run_cache(info, folder) is None
    other = replace(info, preprocess=replace(info.preprocess, cache_size=64))
    assert P.open_run_cache(other, images) is None  # a cache at another size than the run's is not used


def test_uncertainty_and_pseudo_read_the_cache_without_the_files(cached_run, tmp_path):
    run, pool, phantom = cached_run
    (phantom / "images").rename(phantom / "images_moved")  # the files are gone: only the cache can serve
    try:
        out = tmp_path / "u.csv"
        assert main(["uncertainty", str(run), "--split", "test", "--method", "tta", "--samples", "2",
                     "--out", str(out)]) == 0
        p = read_predictions(out)
        assert p.meta["images_from_cache"] == len(p.image_ids) > 0
        assert main(["pseudo", str(run), "--pool", str(pool), "--quota", "2", "--out", str(tmp_path / "ps")]) == 0
        report = json.loads((tmp_path / "ps" / "pseudo.json").read_text())
        assert report["images_from_cache"] == report["pool_images"] - report["dropped_labelled_or_heldout_patient"]
        assert report["images_from_cache"] > 0
    finally:
        (phantom / "images_moved").rename(phantom / "images")


def test_pseudo_pool_folder_is_decoded_from_files(cached_run, tmp_path):
    from cxrlab.data.index import load_index

    run, pool, _ = cached_run
    folder = tmp_path / "pool_images"
    folder.mkdir()
    for path in load_index(pool).absolute_paths():  # the same images, as a plain folder
        shutil.copy(path, folder)
    assert main(["pseudo", str(run), "--pool", str(folder), "--quota", "1", "--out", str(tmp_path / "ps")]) == 0
    report = json.loads((tmp_path / "ps" / "pseudo.json").read_text())
    assert report["images_from_cache"] == 0 and report["selected"] > 0
