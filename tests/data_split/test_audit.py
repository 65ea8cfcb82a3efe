"""Leakage audit: planted patient leaks, duplicate files, class counts; the split and audit verbs."""

from __future__ import annotations

import shutil

import pandas as pd
from split_helpers import make_index

from cxrlab.cli import main
from cxrlab.data.audit import audit, audit_index, format_audit
from cxrlab.data.splits import patient_level_split
from cxrlab.utils import read_json


def _leaky_split(index):
    """A clean patient split, then one image of patient P0000 moved to test: a planted leak."""
    split = patient_level_split(index, 0.2, 0.3, seed=0)
    first = index.frame.index[index.frame["patient_id"] == "P0000"]
    other = "test" if split.loc[first[0], "split"] != "test" else "train"
    split.loc[first[0], "split"] = other
    return split


def test_audit_clean_split_is_ok(image_index):
    result = audit(image_index, patient_level_split(image_index, 0.2, 0.3, seed=0))
    assert result["verdict"] == "ok"
    assert result["patient_leaks"] == [] and result["duplicate_files"] == []
    assert sum(v["images"] for v in result["splits"].values()) == len(image_index)
    assert result["class_counts"]["train"]["A"]["known"] == result["splits"]["train"]["images"]


def test_audit_finds_planted_patient_leak(image_index):
    result = audit(image_index, _leaky_split(image_index))
    assert result["verdict"] == "leakage"
    assert [p["patient_id"] for p in result["patient_leaks"]] == ["P0000"]
    assert sum(result["patient_leaks"][0]["split"].values()) == 2
    assert "P0000" in format_audit(result)


def test_audit_finds_identical_files_across_splits(image_index):
    split = patient_level_split(image_index, 0.2, 0.3, seed=0)
    paths = image_index.absolute_paths()
    a = split.index[split["split"] == "train"][0]
    b = split.index[split["split"] == "test"][0]
    shutil.copyfile(paths[a], paths[b])  # the same picture filed under two patients
    result = audit(image_index, split)
    assert result["verdict"] == "leakage" and not result["patient_leaks"]
    (group,) = result["duplicate_files"]
    assert set(group["images"]) == {split["image_id"][a], split["image_id"][b]}
    assert (image_index.path.parent / "file_sha256.csv").is_file()  # hashes cached for the next audit


def test_audit_counts_missing_ids_and_flags_rare_classes(image_index):
    split = patient_level_split(image_index, 0.2, 0.3, seed=0)
    split = pd.concat([split, pd.DataFrame({"image_id": ["ghost.png"], "split": ["test"]})], ignore_index=True)
    result = audit(image_index, split, hash_files=False, min_positives=5)
    assert result["missing_from_index"] == {"count": 1, "examples": ["ghost.png"]}
    rare = {(r["split"], r["class"]) for r in result["too_few_positives"]}
    assert ("val", "Rare") in rare and ("test", "Rare") in rare
    assert not any(s == "train" for s, _ in rare)


def test_audit_index_uses_given_split_column(tmp_path):
    given = ["train", "valid", "test"] * 6  # each patient's 3 images in 3 splits: all leak
    index = make_index(tmp_path, n_patients=6, per_patient=3, extra={"given_split": given})
    result = audit_index(index, hash_files=False)
    assert result["source"] == "index column given_split"
    assert len(result["patient_leaks"]) == 6 and set(result["splits"]) == {"train", "val", "test"}


def test_cli_audit_exit_codes(image_index, tmp_path, capsys):
    index_csv = str(image_index.path)
    leaky = tmp_path / "leaky.csv"
    _leaky_split(image_index).rename(columns={"image_id": "Image Index"}).to_csv(leaky, index=False)
    assert main(["data", "audit", index_csv, "--split", str(leaky), "--json", str(tmp_path / "a.json")]) == 1
    assert "P0000" in capsys.readouterr().out
    assert read_json(tmp_path / "a.json")["verdict"] == "leakage"
    clean = tmp_path / "clean.csv"
    assert main(["data", "split", index_csv, "--out", str(clean), "--val", "0.2", "--test", "0.3"]) == 0
    assert "SPLIT AUDIT: OK" in capsys.readouterr().out.upper()
    assert read_json(tmp_path / "clean.json")["audit"]["verdict"] == "ok"
    assert main(["data", "audit", index_csv, "--split", str(clean)]) == 0
    assert main(["data", "audit", index_csv]) == 0  # no split: duplicate-file report only


def test_cli_bad_input_is_one_line_exit_2(image_index, tmp_path, capsys):
    index_csv = str(image_index.path)
    assert main(["data", "audit", index_csv, "--split", str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("file,fold\na.png,1\n")
    assert main(["data", "audit", index_csv, "--split", str(bad)]) == 2
    assert "lacks column(s) image_id, split" in capsys.readouterr().err
    assert main(["data", "split", index_csv, "--out", str(tmp_path / "s.csv"), "--official"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "official_split" in err and len(err.strip().splitlines()) == 1
    assert main(["data", "split", str(tmp_path / "missing"), "--out", str(tmp_path / "s.csv")]) == 2
