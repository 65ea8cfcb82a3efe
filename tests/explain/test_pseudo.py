import json
import shutil

import numpy as np
import pandas as pd
import pytest

from cxrlab.cli import main
from cxrlab.data.index import Index, load_index, write_index
from cxrlab.data.phantom import make_phantom_index
from cxrlab.data.splits import load_split
from cxrlab.errors import CxrlabError
from cxrlab.pseudo import pseudo_label, select


def test_select_thresholds_and_quota():
    p = np.array([[0.95, 0.05], [0.6, 0.4], [0.03, 0.97]])
    ml = select(p, "multilabel", np.array([0.9, 0.9]), None)
    assert ml[0].tolist() == [1, 0] and np.isnan(ml[1]).all() and ml[2].tolist() == [0, 1]
    mc = select(p, "multiclass", np.array([0.9, 0.99]), None)  # class-aware: class 1 needs 0.99
    assert mc[0].tolist() == [1, 0] and np.isnan(mc[2]).all()
    q = select(p, "multiclass", None, 1)
    assert q[0].tolist() == [1, 0] and q[2].tolist() == [0, 1] and np.isnan(q[1]).all()
    mlq = select(p, "multilabel", None, 1)  # per class: the most likely image positive, the least likely negative
    assert mlq[0].tolist() == [1, 0] and mlq[2].tolist() == [0, 1] and np.isnan(mlq[1]).all()
    two = select(np.array([[0.9], [0.8], [0.7]]), "multilabel", None, 2)  # too few images: positives first
    assert two[:, 0].tolist() == [1, 1, 0]


def test_pool_with_test_images_is_refused(tiny_run, tmp_path, capsys):
    run, index_dir = tiny_run
    with pytest.raises(CxrlabError, match="test images"):
        pseudo_label(run, pool=index_dir, out=tmp_path / "p")  # the run's own index holds its test split
    split = load_split(run / "split.csv")
    test_id = split.loc[split["split"] == "test", "image_id"].iloc[0]
    folder = tmp_path / "pool"
    folder.mkdir()
    idx = load_index(index_dir)
    shutil.copy(idx.absolute_paths()[idx.image_ids.index(test_id)], folder / test_id)
    assert main(["pseudo", str(run), "--pool", str(folder), "--out", str(tmp_path / "q")]) == 2
    assert "never come from the test split" in capsys.readouterr().err


def test_pseudo_index_split_and_accuracy(tiny_run, tmp_path):
    run, index_dir = tiny_run
    pool = make_phantom_index(tmp_path / "pool", n=16, size=32, seed=5)
    frame = pool.frame.copy()
    frame["image_id"] = "pool_" + frame["image_id"]
    frame["patient_id"] = "pool_" + frame["patient_id"]
    write_index(Index(frame, pool.task, pool.classes, pool.root), tmp_path / "pool_index")
    report = pseudo_label(run, pool=tmp_path / "pool_index", out=tmp_path / "out", quota=3, weight=0.5)
    assert report["labels_known"] and report["pool_images"] == 16
    merged = load_index(tmp_path / "out" / "index")
    pseudo_rows = merged.frame[merged.frame["image_id"].str.startswith("pool_")]
    assert len(pseudo_rows) == report["selected"] and (pseudo_rows["weight"] == 0.5).all()
    split = load_split(tmp_path / "out" / "split.csv")
    assert set(split.loc[split["image_id"].str.startswith("pool_"), "split"]) <= {"train"}
    assert "data.index=" in json.loads((tmp_path / "out" / "pseudo.json").read_text())["retrain"]
    per = report["per_class"]
    assert sum(v["positive"] + v["negative"] for v in per.values()) > 0
    assert all(v.get("accuracy") is None or 0 <= v["accuracy"] <= 1 for v in per.values())
    assert isinstance(pd.read_csv(tmp_path / "out" / "pseudo.csv"), pd.DataFrame)
