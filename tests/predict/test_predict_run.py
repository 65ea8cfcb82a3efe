"""load_run and predict_run: one loader, one preprocessing, every image source; damaged checkpoints are one-line
errors; predict --index predicts another index (external validation)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cxrlab.cli import main
from cxrlab.errors import CxrlabError
from cxrlab.predict import (
    ImageSetDataset,
    dataset_logits,
    eval_transform,
    images_from_run,
    load_run,
    predict_dataset,
    predict_run,
    preprocess_image,
    probabilities,
)
from cxrlab.predictions import read_predictions


def test_load_run_gives_typed_info(small_run):
    run, _ = small_run
    model, info = load_run(run)
    assert not model.training and info.model_name == "cnn_gap" and info.run_dir == Path(run)
    assert info.checkpoint == Path(run) / "checkpoints" / "best.safetensors" and info.which == "best"
    assert info.split_csv == Path(run) / "split.csv" and info.weights_sha256
    model2, info2 = load_run(Path(run) / "checkpoints" / "last.json", which="best")  # a checkpoint file
    assert info2.which == "last"


def test_split_predictions_match_training_and_the_engine_is_any_callable(small_run):
    run, _ = small_run
    preds = predict_run(run, split="val")
    saved = read_predictions(Path(run) / "predictions" / "val.csv")
    assert preds.image_ids == saved.image_ids and preds.patient_ids
    np.testing.assert_allclose(preds.probs, saved.probs, atol=1e-5)
    model, info = load_run(run)
    dataset = ImageSetDataset(images_from_run(info, "val"), info)
    plain = predict_dataset(lambda x: model(x), info, dataset, batch_size=3)  # a callable, not a module
    np.testing.assert_allclose(plain.probs, preds.probs, atol=1e-6)
    out = dataset_logits(model, dataset, batch_size=5)
    assert out.targets is not None and out.targets.shape == out.logits.shape
    np.testing.assert_allclose(probabilities(out.logits, info.task), preds.probs, atol=1e-6)


def test_preprocess_image_equals_the_dataset(small_run):
    from cxrlab.data.images import read_image

    run, _ = small_run
    _, info = load_run(run)
    images = images_from_run(info, "test")
    x = ImageSetDataset(images, info)[0][0]
    assert torch.equal(preprocess_image(read_image(images.paths[0]), info), x)
    assert torch.equal(preprocess_image(read_image(images.paths[0]), info, eval_transform(info)), x)


def test_predict_index_all_and_its_split_column(small_run, tmp_path, capsys):
    from cxrlab.data.index import load_index, write_index

    run, phantom = small_run
    other = load_index(phantom / "index")
    other.frame["official_split"] = ["test" if i % 3 == 0 else "train" for i in range(len(other.frame))]
    write_index(other, tmp_path / "external")
    out = tmp_path / "all.csv"
    assert main(["predict", str(run), "--index", str(tmp_path / "external"), "--out", str(out)]) == 0
    every = read_predictions(out)
    assert len(every.image_ids) == 30 and every.meta["split"] == "index" and every.meta["index"]
    out = tmp_path / "test.csv"
    assert main(["predict", str(run), "--index", str(tmp_path / "external"), "--split", "test",
                 "--out", str(out)]) == 0
    assert len(read_predictions(out).image_ids) == 10
    assert main(["predict", str(run), "--index", str(phantom / "index"), "--split", "test",
                 "--out", str(tmp_path / "own.csv")]) == 0  # the run's own index: its split.csv
    own = pd.read_csv(tmp_path / "own.csv")["image_id"].tolist()
    assert own == pd.read_csv(Path(run) / "predictions" / "test.csv")["image_id"].tolist()
    capsys.readouterr()
    assert main(["predict", str(run), "--index", str(phantom / "index"), "--split", "test", "--split-csv",
                 str(tmp_path / "none.csv"), "--out", str(tmp_path / "x.csv")]) == 2
    assert "none.csv not found" in capsys.readouterr().err


def _copy_run(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "run"
    shutil.copytree(run, dst)
    return dst


@pytest.mark.parametrize("damage, words", [
    (lambda ck: ck.write_bytes(b""), "empty"),
    (lambda ck: ck.write_bytes(ck.read_bytes()[:100]), "does not match"),
    (lambda ck: ck.with_suffix(".json").write_text("{not json"), "not valid JSON"),
    (lambda ck: ck.with_suffix(".json").write_text(json.dumps({"task": "multilabel"})), "classes"),
])
def test_damaged_checkpoint_is_one_line(small_run, tmp_path, damage, words):
    run = _copy_run(small_run[0], tmp_path)
    damage(run / "checkpoints" / "best.safetensors")
    with pytest.raises(CxrlabError, match=words) as err:
        load_run(run)
    assert "\n" not in str(err.value)


def test_missing_run_and_loose_checkpoint(small_run, tmp_path):
    with pytest.raises(CxrlabError, match="not found"):
        load_run(tmp_path / "nowhere")
    loose = tmp_path / "loose"
    loose.mkdir()
    for f in ("best.safetensors", "best.json"):
        shutil.copy(Path(small_run[0]) / "checkpoints" / f, loose / f)
    _, info = load_run(loose / "best.safetensors")
    assert info.run_dir is None
    with pytest.raises(CxrlabError, match="not inside a run directory"):
        predict_run(loose / "best.safetensors", split="test")


def test_decoded_files_are_checked_against_the_index_hashes(small_run):
    from dataclasses import replace

    run, _ = small_run
    _, info = load_run(run)
    images = images_from_run(info, "test")
    assert images.sha256 and all(images.sha256)  # the phantom index records every file's sha256
    ImageSetDataset(images, info)[0]  # unchanged files pass
    changed = replace(images, sha256=["0" * 64] * len(images))
    with pytest.raises(CxrlabError, match="changed after indexing"):
        ImageSetDataset(changed, info)[0]


def test_cache_of_another_index_is_not_used(small_run, tmp_path, caplog):
    from cxrlab.data.index import load_index, write_index
    from cxrlab.predict import open_run_cache

    run, phantom = small_run
    _, info = load_run(run)
    other = load_index(phantom / "index")
    other.frame["sha256"] = "f" * 64  # same ids, other files (by hash)
    write_index(other, tmp_path / "other")
    from cxrlab.predict import images_from_index

    images = images_from_index(tmp_path / "other", info.classes)
    assert open_run_cache(info, images) is None and "not reading from the run's cache" in caplog.text
    assert open_run_cache(info, images_from_run(info, "test")) is not None
