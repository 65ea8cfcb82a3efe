"""PadChest, VinBigData and RSNA: synthetic images at the paths of a sample of real rows; labels equal the file's."""

from __future__ import annotations

import ast
import gzip
import shutil

import numpy as np
import pandas as pd
import pytest

from cxrlab.data.boxes import read_boxes
from cxrlab.data.build_index import build_index

from .helpers import write_dicom, write_image


def _read(shared, rel):
    path = shared / "label-files" / rel
    if not path.exists():
        pytest.skip(f"{rel} absent")
    with gzip.open(path, "rt") as f:
        return pd.read_csv(f, dtype=str, keep_default_na=False, na_values=[""])


def test_padchest_real_rows(shared_data, tmp_path):
    real = _read(shared_data, "padchest/PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz")
    sample = real.iloc[:3000].sample(40, random_state=0)
    root = tmp_path / "padchest"
    root.mkdir()
    sample.to_csv(root / "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv", index=False)
    for i, r in enumerate(sample.itertuples()):
        write_image(root / str(r.ImageDir) / r.ImageID, seed=i, bits=16)
    index, report = build_index(root, "padchest", tmp_path / "idx", hash_files=False)
    frontal = sample[sample["Projection"].str.upper().isin(["PA", "AP", "AP_HORIZONTAL"])]
    assert len(index) + report["counts"]["excluded"].get("no label", 0) == len(frontal)
    f = index.frame.set_index("image_id")
    for r in frontal.itertuples():
        if r.ImageID not in f.index:
            continue
        terms = {t.strip() for t in ast.literal_eval(r.Labels)} - {""}
        terms = {"No Finding" if t == "normal" else t for t in terms}
        assert {c for c in index.classes if f.loc[r.ImageID, c] == 1} == terms
        assert f.loc[r.ImageID, "patient_id"] == r.PatientID
        assert f.loc[r.ImageID, "age"] == int(r.StudyDate_DICOM[:4]) - round(float(r.PatientBirth))


def test_vinbigdata_real_rows(shared_data, tmp_path):
    real = _read(shared_data, "vinbigdata/train.csv.gz")
    ids = real["image_id"].drop_duplicates().sample(12, random_state=0)
    sample = real[real["image_id"].isin(ids)]
    root = tmp_path / "vindr"
    root.mkdir()
    sample.to_csv(root / "train.csv", index=False)
    first = write_dicom(root / "train" / f"{ids.iloc[0]}.dicom")
    for image_id in ids.iloc[1:]:
        shutil.copy(first, root / "train" / f"{image_id}.dicom")
    index, _ = build_index(root, "vindr", tmp_path / "idx", hash_files=False)
    f = index.frame.set_index("image_id")
    for image_id, rows in sample.groupby("image_id"):
        readers = rows["rad_id"].nunique()
        votes = rows.drop_duplicates(["class_name", "rad_id"])["class_name"].value_counts()
        want = {("No Finding" if c == "No finding" else c) for c, v in votes.items() if v > readers / 2}
        assert {c for c in index.classes if f.loc[image_id, c] == 1} == want
    boxes = read_boxes(tmp_path / "idx" / "boxes.csv")
    assert len(boxes) == int(sample["x_min"].notna().sum())


def test_rsna_real_rows(shared_data, tmp_path):
    real = _read(shared_data, "rsna-pneumonia/stage_2_train_labels.csv.gz")
    positive = real.loc[real["Target"] == "1", "patientId"].drop_duplicates().iloc[:10]
    negative = real.loc[real["Target"] == "0", "patientId"].drop_duplicates().iloc[:10]
    sample = real[real["patientId"].isin(set(positive) | set(negative))]
    root = tmp_path / "rsna"
    root.mkdir()
    sample.to_csv(root / "stage_2_train_labels.csv", index=False)
    first = write_dicom(root / "stage_2_train_images" / f"{positive.iloc[0]}.dcm")
    for pid in [*positive.iloc[1:], *negative]:
        shutil.copy(first, root / "stage_2_train_images" / f"{pid}.dcm")
    index, _ = build_index(root, "rsna", tmp_path / "idx", hash_files=False)
    f = index.frame.set_index("image_id")
    assert f.loc[list(positive), "Pneumonia"].eq(1).all() and f.loc[list(negative), "Pneumonia"].eq(0).all()
    boxes = read_boxes(tmp_path / "idx" / "boxes.csv")
    assert len(boxes) == int((sample["Target"] == "1").sum())
    assert np.allclose(boxes["w"].to_numpy(), sample.loc[sample["Target"] == "1", "width"].astype(float).to_numpy())
