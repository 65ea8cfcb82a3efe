"""Patient-level splits: invariants, stratification, k-fold, official and given splits, split files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from split_helpers import make_index

from cxrlab.data.splits import (
    fold_view,
    given_split,
    kfold_split,
    load_split,
    official_split,
    patient_level_split,
    split_ids,
    write_split,
)
from cxrlab.errors import CxrlabError
from cxrlab.utils import read_json


def _patients_per_split(index, split):
    merged = split.merge(index.frame[["image_id", "patient_id"]], on="image_id")
    return merged.groupby("patient_id")["split"].nunique()


def test_patient_split_invariants(tmp_path):
    index = make_index(tmp_path, n_patients=200, per_patient=3)
    split = patient_level_split(index, val=0.1, test=0.2, seed=3)
    assert split["image_id"].tolist() == index.frame["image_id"].tolist()
    assert (_patients_per_split(index, split) == 1).all()
    frac = split["split"].value_counts(normalize=True)
    assert abs(frac["train"] - 0.7) < 0.03 and abs(frac["val"] - 0.1) < 0.03 and abs(frac["test"] - 0.2) < 0.03
    merged = split.merge(index.frame, on="image_id")
    assert (merged.groupby("split")["Rare"].sum() > 0).all()  # the rare class reaches every split
    # label prevalence stays close to the whole set's in every split
    for c in ("A", "B"):
        overall = index.frame[c].mean()
        assert (merged.groupby("split")[c].mean() - overall).abs().max() < 0.08


def test_split_is_deterministic_from_seed(small_index):
    a = patient_level_split(small_index, seed=1)
    b = patient_level_split(small_index, seed=1)
    c = patient_level_split(small_index, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert not a["split"].equals(c["split"])


def test_multiclass_split_stratifies_classes(tmp_path):
    index = make_index(tmp_path, n_patients=150, per_patient=1, task="multiclass", classes=("n", "b", "v", "c"))
    split = patient_level_split(index, 0.15, 0.2, seed=0)
    merged = split.merge(index.frame, on="image_id")
    counts = merged.groupby("split")[["n", "b", "v", "c"]].sum()
    assert (counts > 0).all().all()


def test_empty_val_is_a_clear_error(tmp_path):
    index = make_index(tmp_path, n_patients=3, per_patient=1)
    with pytest.raises(CxrlabError, match="val split came out empty.*larger --val"):
        patient_level_split(index, val=0.05, test=0.3)
    with pytest.raises(CxrlabError, match="leaves no training data"):
        patient_level_split(index, val=0.5, test=0.5)


def test_kfold_puts_each_patient_in_one_fold(tmp_path):
    index = make_index(tmp_path, n_patients=100, per_patient=2)
    split = kfold_split(index, k=4, test=0.2, seed=0)
    assert split["fold"][split["split"] == "test"].isna().all()
    assert sorted(split["fold"].dropna().unique()) == [0, 1, 2, 3]
    merged = split.merge(index.frame, on="image_id")
    assert (merged.groupby("patient_id")["fold"].nunique(dropna=False) == 1).all()
    assert (merged.groupby("patient_id")["split"].nunique() == 1).all()
    view = fold_view(split, 2)
    assert set(view.loc[split["fold"] == 2, "split"]) == {"val"}
    assert set(view.loc[split["fold"].isin([0, 1, 3]), "split"]) == {"train"}
    with pytest.raises(CxrlabError, match="valid folds"):
        fold_view(split, 9)


def test_official_lists_carve_val_by_patient(tmp_path):
    n_patients, per = 30, 2
    official = np.where(np.arange(n_patients * per) // per < 20, "train_val", "test")
    index = make_index(tmp_path, n_patients=n_patients, per_patient=per, extra={"official_split": official})
    split = official_split(index, val=0.2, seed=0)
    assert (split["split"] == "test").to_numpy().tolist() == (official == "test").tolist()
    assert (split["split"] == "val").sum() > 0
    assert (_patients_per_split(index, split) == 1).all()
    no_column = make_index(tmp_path / "plain", n_patients=5)
    with pytest.raises(CxrlabError, match="no official_split column"):
        official_split(no_column)


def test_given_split_keeps_folders_and_maps_aliases(tmp_path):
    given = ["train", "valid", "test"] * 10
    index = make_index(tmp_path, n_patients=10, per_patient=3, extra={"given_split": given})
    split = given_split(index)
    assert split["split"].tolist() == [{"valid": "val"}.get(g, g) for g in given]
    # without the column, the error names the flag that makes one (--keep-split), not just --format folder
    with pytest.raises(CxrlabError, match="--format folder --keep-split"):
        given_split(make_index(tmp_path / "plain", n_patients=5))


def test_write_and_load_split_round_trip(tmp_path, small_index):
    split = kfold_split(small_index, k=3, test=0.2, seed=5)
    path = write_split(split, tmp_path / "split.csv", "kfold", 5, small_index, {"test": 0.2}, 3, {"verdict": "ok"})
    meta = read_json(tmp_path / "split.json")
    assert meta["method"] == "kfold" and meta["seed"] == 5 and meta["folds"] == 3
    assert meta["index_sha256"] == small_index.sha256 and meta["audit"]["verdict"] == "ok"
    loaded = load_split(path)
    assert loaded["image_id"].tolist() == split["image_id"].tolist()
    assert loaded["fold"].tolist() == split["fold"].tolist()
    assert set(split_ids(loaded, "test")) == set(split.loc[split["split"] == "test", "image_id"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("image_id,split\na.png,train\nb.png,holdout\n", "row 3 has split 'holdout'"),
        ("image_id,part\na.png,train\n", "lacks column"),
        ("image_id,split\na.png,train\na.png,test\n", "row 3 repeats image_id a.png"),
        ("image_id,split,fold\na.png,train,x\n", "row 2 has fold 'x'"),
    ],
)
def test_load_split_rejects_bad_files(tmp_path, text, message):
    path = tmp_path / "split.csv"
    path.write_text(text)
    with pytest.raises(CxrlabError, match=message):
        load_split(path)


def test_load_split_accepts_nih_column_and_aliases(tmp_path):
    path = tmp_path / "other_tool.csv"
    path.write_text("Image Index,split\na.png,Train\nb.png,valid\nc.png,test\n")
    assert load_split(path)["split"].tolist() == ["train", "val", "test"]


def test_rows_without_patient_are_their_own_patient(tmp_path):
    index = make_index(tmp_path, n_patients=30, per_patient=2)
    frame = index.frame.copy()
    frame["patient_id"] = frame["patient_id"].astype(object)
    frame.loc[:9, "patient_id"] = None  # 10 images with no patient id must not become one big "nan" patient
    index.frame = frame
    split = patient_level_split(index, 0.2, 0.2, seed=0)
    assert split.loc[:9, "split"].nunique() > 1


def test_kfold_is_deterministic_and_recorded(tmp_path, small_index):
    a, b = kfold_split(small_index, 3, seed=4), kfold_split(small_index, 3, seed=4)
    pd.testing.assert_frame_equal(a, b)
    write_split(a, tmp_path / "f.csv", "kfold", 4, small_index, folds=3)
    counts = read_json(tmp_path / "f.json")["fold_images"]
    assert sum(counts.values()) == int(a["fold"].notna().sum()) and set(counts) == {"0", "1", "2"}



def test_rare_class_with_many_images_per_patient_reaches_val(shared_data, tmp_path):
    """pneumonia4: 11 'virus' patients hold 27 images; a 10% val once got none of them (greedy by images)."""
    from cxrlab.data.build_index import build_index

    index, _ = build_index(shared_data / "pneumonia4", "csv", tmp_path / "index")
    for seed in range(3):
        split = patient_level_split(index, 0.1, 0.2, seed=seed).merge(index.frame, on="image_id")
        for cls in index.classes:
            patients = split[split[cls] == 1].groupby("split")["patient_id"].nunique()
            assert all(patients.get(s, 0) >= 1 for s in ("train", "val", "test")), (seed, cls, patients.to_dict())
