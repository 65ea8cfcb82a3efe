"""MIMIC-CXR-JPG, PadChest, VinDr-CXR and RSNA adapters on tiny fixtures in their real layouts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrlab.data.boxes import read_boxes
from cxrlab.data.build_index import build_index
from cxrlab.data.splits import official_split
from cxrlab.errors import CxrlabError

from .helpers import make_mimic, make_padchest, make_rsna, make_vindr, write_csv


def _cell(index, image_id, c):
    v = index.frame.set_index("image_id").loc[image_id, c]
    return None if pd.isna(v) else int(v)


def test_mimic_layout(tmp_path):
    root = make_mimic(tmp_path / "mimic")
    index, report = build_index(root, "mimic", tmp_path / "idx", hash_files=False)
    assert sorted(index.image_ids) == ["d1", "d3", "d4"]  # d2 lateral left out, d5 not downloaded
    assert report["counts"]["views_left_out"] == 1 and report["counts"]["missing_images"] == 1
    f = index.frame.set_index("image_id")
    assert f.loc["d1", "patient_id"] == "10000032" and f.loc["d3", "study_id"] == "53189527"
    assert f.loc["d1", "path"] == "files/p10/p10000032/s50414267/d1.jpg"
    assert _cell(index, "d1", "No Finding") == 1 and _cell(index, "d1", "Atelectasis") == 0
    assert _cell(index, "d3", "Atelectasis") is None  # -1, ignore
    assert _cell(index, "d4", "Cardiomegaly") == 1 and _cell(index, "d4", "Edema") is None
    assert f["official_split"].to_dict() == {"d1": "train_val", "d3": "train_val", "d4": "test"}
    split = official_split(index, val=0.5, seed=0)
    assert set(split.loc[split["image_id"] == "d4", "split"]) == {"test"}
    ones, _ = build_index(root, "mimic", tmp_path / "idx1", hash_files=False, uncertain="ones")
    assert _cell(ones, "d3", "Atelectasis") == 1 and _cell(ones, "d4", "Edema") == 1


def test_mimic_missing_files_and_duplicate_studies(tmp_path):
    with pytest.raises(CxrlabError, match="MIMIC-CXR-JPG needs mimic-cxr-2.0.0-chexpert.csv"):
        build_index(tmp_path, "mimic", tmp_path / "idx")
    root = make_mimic(tmp_path / "mimic")
    meta = pd.read_csv(root / "mimic-cxr-2.0.0-metadata.csv", dtype=str).drop(columns="ViewPosition")
    write_csv(root / "mimic-cxr-2.0.0-metadata.csv", meta)
    with pytest.raises(CxrlabError, match="expected column.*ViewPosition"):
        build_index(root, "mimic", tmp_path / "idx")


def test_padchest_layout(tmp_path):
    root = make_padchest(tmp_path / "pc")
    index, report = build_index(root, "padchest", tmp_path / "idx", hash_files=False)
    assert sorted(index.image_ids) == ["a.png", "c.png", "e.png"]  # b lateral, d no terms
    assert report["counts"]["views_left_out"] == 1 and report["counts"]["excluded"] == {"no label": 1}
    assert set(index.classes) == {"pneumonia", "infiltrates", "No Finding", "pleural effusion", "kyphosis"}
    assert _cell(index, "a.png", "pneumonia") == 1 and _cell(index, "a.png", "No Finding") == 0
    assert _cell(index, "c.png", "No Finding") == 1
    f = index.frame.set_index("image_id")
    assert f.loc["a.png", "age"] == 84 and f.loc["a.png", "sex"] == "F" and f.loc["c.png", "view"] == "AP_HORIZONTAL"
    assert f.loc["c.png", "label_method"] == "RNN_model" and report["counts"]["labelled_by_rnn_model"] == 1
    assert f.loc["a.png", "path"] == "0/a.png"
    shared, rep2 = build_index(root, "padchest", tmp_path / "idx2", hash_files=False, terms="findings")
    assert set(shared.classes) == {"Pneumonia", "Infiltration", "No Finding", "Pleural Effusion"}
    assert rep2["source"]["unknown_terms"] == {"kyphosis": 1}


def test_vindr_reader_rules_and_boxes(tmp_path):
    root = make_vindr(tmp_path / "vindr")
    index, report = build_index(root, "vindr", tmp_path / "idx", hash_files=False)
    assert index.meta["policies"] == {"readers": "majority"}
    assert _cell(index, "img1", "Cardiomegaly") == 1 and _cell(index, "img1", "Nodule/Mass") == 0
    assert _cell(index, "img1", "No Finding") == 0 and _cell(index, "img2", "No Finding") == 1
    boxes = read_boxes(tmp_path / "idx" / index.meta["boxes"])
    assert len(boxes) == 3 and index.meta["boxes_image_size"] == 1024
    first = boxes[boxes["label"] == "Cardiomegaly"].iloc[0]  # pixels (10, 20, 100, 200) of a 256x256 DICOM
    assert (first.x, first.y, first.w, first.h) == (40, 80, 400, 800)
    anyr, _ = build_index(root, "vindr", tmp_path / "idx2", hash_files=False, readers="any")
    assert _cell(anyr, "img1", "Nodule/Mass") == 1 and _cell(anyr, "img1", "No Finding") == 1
    with pytest.raises(CxrlabError, match="--readers 'all' is not one of majority, any"):
        build_index(root, "vindr", tmp_path / "idx3", readers="all")


def test_rsna_boxes_and_conflicts(tmp_path):
    root = make_rsna(tmp_path / "rsna")
    index, report = build_index(root, "rsna", tmp_path / "idx", hash_files=False)
    assert sorted(index.image_ids) == ["p1", "p2"] and report["counts"]["excluded"] == {"conflicting Target": 1}
    assert _cell(index, "p1", "Pneumonia") == 1 and _cell(index, "p2", "Pneumonia") == 0
    assert _cell(index, "p2", "No Finding") == 1 and _cell(index, "p1", "No Finding") == 0
    f = index.frame.set_index("image_id")  # sex, age, view from the DICOM headers
    assert f.loc["p1", ["sex", "age", "view"]].tolist() == ["M", 40, "PA"]
    assert f.loc["p2", ["sex", "age", "view"]].tolist() == ["F", 41, "AP"]
    boxes = read_boxes(tmp_path / "idx" / "boxes.csv")
    assert len(boxes) == 2 and index.meta["boxes_image_size"] == 1024
    assert np.allclose(boxes.iloc[0][["x", "y", "w", "h"]].to_numpy(float), [100, 150, 50, 60])


def test_wrong_dataset_file_names_expected_and_found_columns(tmp_path):
    root = make_rsna(tmp_path / "rsna")
    (root / "train.csv").write_text((root / "stage_2_train_labels.csv").read_text())
    with pytest.raises(CxrlabError, match=r"not a VinDr-CXR/VinBigData label file: expected column\(s\) image_id, "
                                          r"class_name, rad_id; .*found patientId"):
        build_index(root, "vindr", tmp_path / "idx")


def test_vindr_partial_download_and_no_images_at_all(tmp_path):
    from cxrlab.data.build_index import scan_source

    root = make_vindr(tmp_path / "vindr")
    (root / "train" / "img1.dicom").unlink()
    index, report = build_index(root, "vindr", tmp_path / "idx", hash_files=False)
    assert index.image_ids == ["img2"] and report["counts"]["missing_images"] == 1 and index.meta["boxes"] is None
    (root / "train" / "img2.dicom").unlink()
    table = scan_source(root, "vindr")  # label files alone (the benchmark's case): nothing found, no crash
    assert table.frame.empty and table.counts["missing_images"] == 2
