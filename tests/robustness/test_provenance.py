"""Provenance: artifacts check each other (cache vs index, files vs the index's hashes, resume vs the run,
cv reruns vs their folds, checkpoints vs the hash in their JSON); a mismatch names both sides and the fix."""

from __future__ import annotations

import shutil

import pytest

from cxrlab.config import load_config
from cxrlab.errors import CxrlabError
from cxrlab.provenance import check_cv_settings

from .helpers import run

TINY = ("train.epochs=1", "train.threads=1")


@pytest.fixture(scope="module")
def other_cache(world, tmp_path_factory):
    """A cache of another phantom dataset whose image ids are the same as the world's."""
    from cxrlab.data.cache import build_cache
    from cxrlab.data.phantom import make_phantom_index

    root = tmp_path_factory.mktemp("other")
    index = make_phantom_index(root / "ph", n=40, size=32, seed=7, workers=1)
    build_cache(index, root / "cache", size=32, workers=1, progress=False)
    return root / "cache"


def test_a_cache_of_another_index_is_refused(world, other_cache, tmp_path, capsys, all_inputs):
    run(capsys, world.train_args(tmp_path / "r", *TINY, f"data.cache={other_cache}"), inputs=[*all_inputs, other_cache],
        says=("built from another index", "cxrlab data cache", "--force"))


def test_a_cache_of_another_size_is_refused(world, tmp_path, capsys, all_inputs):
    from cxrlab.data.cache import open_cache
    from cxrlab.data.dataset import CachedImageDataset
    from cxrlab.data.index import load_index

    index = load_index(world.index)
    with pytest.raises(CxrlabError, match="32-px images but 64-px"):
        CachedImageDataset(index, index.image_ids[:4], open_cache(world.cache), size=64)


def test_an_image_changed_after_indexing(world, tmp_path, capsys, all_inputs):
    data = tmp_path / "ph"
    shutil.copytree(world.data, data)
    from cxrlab.data.index import load_index, write_index

    index = load_index(data / "index")
    index.root = data  # the copy's images
    write_index(index, data / "index")
    victim = data / index.frame["path"].iloc[0]
    victim.write_bytes((data / index.frame["path"].iloc[1]).read_bytes())  # another valid image: decodes fine
    # the cache build reports the image (and leaves it out); decoding from the files refuses to train
    out = run(capsys, ["data", "cache", data / "index", "--out", tmp_path / "cache", "--size", "32", "--workers", "1"],
              inputs=all_inputs, expect=0)
    assert "1 failed" in out and "changed after indexing" in out
    argv = world.train_args(tmp_path / "r", *TINY, f"data.index={data / 'index'}", "data.cache=null")
    run(capsys, argv, inputs=all_inputs, says=(str(victim.name), "changed after indexing", "cxrlab data index"))


def test_resume_with_another_learning_rate_or_data(world, tmp_path, capsys, all_inputs):
    runc = world.copy_run(tmp_path / "run")
    run(capsys, [*world.train_args(runc, "train.epochs=2", "train.lr=0.5"), "--resume"], inputs=all_inputs,
        says=("train.lr", "0.5", "--resume"))
    split = tmp_path / "split.csv"
    lines = world.split.read_text().splitlines(keepends=True)  # one val image leaves the split (moving it to
    lines.remove(next(line for line in lines if line.endswith(",val\n")))  # train would leak its patient)
    split.write_text("".join(lines))
    run(capsys, [*world.train_args(runc, "train.epochs=2", f"data.split={split}"), "--resume"], inputs=all_inputs,
        says=("different data", "split"))


def test_cv_rerun_with_other_settings(tmp_path, world):
    cfg = load_config(world.run / "config.yaml")
    check_cv_settings(tmp_path, cfg, 3)
    check_cv_settings(tmp_path, cfg, 3)  # same settings: fine
    with pytest.raises(CxrlabError, match="folds"):
        check_cv_settings(tmp_path, cfg, 4)
    other = load_config(world.run / "config.yaml", ["train.lr=0.1"])
    with pytest.raises(CxrlabError, match="train.lr"):
        check_cv_settings(tmp_path, other, 3)
    with pytest.raises(CxrlabError, match="inner_val=None"):  # a folder made before inner-val selection: not reused
        check_cv_settings(tmp_path, cfg, 3, {"selection": "inner_val", "inner_val": 0.2})
    check_cv_settings(tmp_path / "new", cfg, 3, {"selection": "inner_val", "inner_val": 0.2})
    with pytest.raises(CxrlabError, match="inner_val"):
        check_cv_settings(tmp_path / "new", cfg, 3, {"selection": "inner_val", "inner_val": 0.3})


@pytest.mark.parametrize("damage", ["truncate", "empty", "flip", "json_list", "json_broken"])
def test_damaged_checkpoints(world, tmp_path, capsys, all_inputs, damage):
    runc = world.copy_run(tmp_path / "run")
    weights = runc / "checkpoints" / "best.safetensors"
    data = weights.read_bytes()
    if damage == "truncate":
        weights.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        weights.write_bytes(b"")
    elif damage == "flip":
        weights.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    elif damage == "json_list":
        weights.with_suffix(".json").write_text("[1, 2]")
    else:
        weights.with_suffix(".json").write_text("{not json")
    run(capsys, ["predict", runc, "--out", tmp_path / "p.csv"], inputs=[*all_inputs, runc], says="best")


@pytest.mark.parametrize("damage", ["empty", "truncate"])
def test_damaged_training_state(world, tmp_path, capsys, all_inputs, damage):
    runc = world.copy_run(tmp_path / "run")
    state = runc / "checkpoints" / "last_state.pt"
    state.write_bytes(b"" if damage == "empty" else state.read_bytes()[:100])
    run(capsys, [*world.train_args(runc, "train.epochs=2"), "--resume"], inputs=all_inputs,
        says=("last_state.pt", "start a new run"))


def test_an_index_edited_by_hand_is_used_under_its_true_hash(world, tmp_path, capsys, all_inputs):
    import warnings

    from cxrlab.data.index import load_index

    idx = tmp_path / "idx"
    shutil.copytree(world.index, idx)
    lines = (idx / "index.csv").read_text().splitlines(keepends=True)
    (idx / "index.csv").write_text("".join(lines[:-3]))  # three rows dropped by hand
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        index = load_index(idx)
    assert any("changed after `cxrlab data index`" in str(w.message) for w in caught)
    assert index.sha256 != load_index(world.index).sha256
    # the world's cache still fits: the rows left are the same images (per-image hashes)
    from cxrlab.data.cache import open_cache
    from cxrlab.data.dataset import CachedImageDataset

    assert len(CachedImageDataset(index, index.image_ids, open_cache(world.cache))) == len(index)


def test_empty_predictions_are_refused(world, tmp_path, capsys, all_inputs):
    header = world.test.read_text().splitlines()[0]
    (tmp_path / "empty.csv").write_text(header + "\n")
    run(capsys, ["calibrate", world.val, tmp_path / "empty.csv", "--labels", world.index, "--out",
                 tmp_path / "c.csv"], inputs=all_inputs, says=("empty.csv", "no rows"))


def test_a_split_of_another_index_is_named(world, other_cache, capsys, tmp_path, all_inputs):
    other_index = other_cache.parent / "ph" / "index"
    err = run(capsys, world.train_args(tmp_path / "r", *TINY, f"data.index={other_index}", "data.cache=null"),
              inputs=[*all_inputs, other_index], expect=0)
    assert "made from another index" in err and "cxrlab data split" in err


@pytest.mark.slow
def test_cv_rerun_with_other_settings_end_to_end(world, tmp_path, capsys, all_inputs):
    argv = ["cv", "--config", world.run / "config.yaml", "--out", tmp_path / "cv", "--folds", "2",
            "--no-test-ensemble", "--set", *TINY]
    run(capsys, argv, inputs=all_inputs, expect=0)
    run(capsys, [*argv, "train.lr=0.1"], inputs=[*all_inputs, tmp_path / "cv"], says=("train.lr", "new --out"))
    run(capsys, [*argv[:6], "3", *argv[7:]], inputs=[*all_inputs, tmp_path / "cv"], says="folds")


def test_resume_with_the_runs_own_config_works(world, tmp_path, capsys, all_inputs):
    # the command the resume errors suggest: --config RUN/config.yaml --out RUN --resume
    runc = world.copy_run(tmp_path / "run")
    run(capsys, ["train", "--config", runc / "config.yaml", "--out", runc, "--resume", "--set", "train.epochs=2"],
        inputs=all_inputs, expect=0)
    assert (runc / "metrics.csv").read_text().count("\n") == 3  # header + epochs 1 and 2
