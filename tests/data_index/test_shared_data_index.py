"""Index the real data in ../shared/data (skipped when absent)."""

from __future__ import annotations

import pytest

from cxrlab.data.build_index import build_index, read_labels
from cxrlab.data.sources.nih import NIH_CLASSES

pytestmark = pytest.mark.shared


def test_nih_sample(shared_data, tmp_path):
    index, report = build_index(shared_data / "nih-sample", "nih", tmp_path / "nih")
    c = report["counts"]
    assert len(index) == 400 and c["missing_images"] == 111720 and c["patients"] == 273
    assert index.classes == NIH_CLASSES and index.meta["boxes_image_size"] == 1024
    assert int(index.frame["Pneumonia"].sum()) == 221 and int(index.frame["No Finding"].sum()) == 179


def test_pneumonia4_csv(shared_data, tmp_path):
    index, report = build_index(shared_data / "pneumonia4", "csv", tmp_path / "p4")
    assert len(index) == 609 and index.task == "multiclass"
    assert index.classes == ["normal", "bacteria", "virus", "COVID-19"]
    assert report["counts"]["excluded"] == {}  # tinted films are X-rays, not photos


def test_nih_64px_folder(shared_data, tmp_path):
    entry = shared_data / "nih-sample" / "Data_Entry_2017_v2020.csv"
    index, report = build_index(shared_data / "nih-64px", "folder", tmp_path / "f", keep_split=True,
                                patients_from=entry)
    assert len(index) == 944 and index.classes == ["0_normal", "1_abnormal"]
    assert set(index.frame["given_split"]) == {"train", "val", "test"}
    assert (index.frame["patient_id"] != index.frame["image_id"]).all()
    # the folder split leaks: some patient is in two given splits
    assert (index.frame.groupby("patient_id")["given_split"].nunique() > 1).any()


def test_read_labels_full_data_entry(shared_data):
    labels = read_labels(shared_data / "nih-sample" / "Data_Entry_2017_v2020.csv")
    assert len(labels) == 112120 and labels.task == "multilabel" and len(labels.classes) == 15
    assert labels.frame["patient_id"].nunique() == 30805
