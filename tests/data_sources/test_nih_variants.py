"""NIH's Kaggle random sample layout, NIH columns under another file name, Google's 2019 relabels."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from cxrlab.data.build_index import build_index
from cxrlab.errors import CxrlabError

from .helpers import write_csv, write_image

SAMPLE_HEADER = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
                 "OriginalImageWidth,OriginalImageHeight,OriginalImagePixelSpacing_x,OriginalImagePixelSpacing_y\n")


def _sample(root, name="sample_labels.csv"):
    rows = ["00000013_005.png,Emphysema|Infiltration|Pleural_Thickening|Pneumothorax,5,13,060Y,M,AP,3056,2544,0.139,"
            "0.139", "00000013_026.png,Cardiomegaly|Emphysema,26,13,057Y,M,AP,2500,2048,0.168,0.168",
            "00000017_001.png,No Finding,1,17,077Y,M,AP,2500,2048,0.168,0.168"]
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(SAMPLE_HEADER + "\n".join(rows) + "\n")
    for i, r in enumerate(rows):
        write_image(root / "sample" / "images" / r.split(",")[0], seed=i)
    write_image(root / "sample" / "images" / "stray.png", seed=9)
    return root


@pytest.mark.parametrize("name", ["sample_labels.csv", "my_metadata.csv"])
def test_nih_random_sample_layout(tmp_path, name):
    root = _sample(tmp_path / "nih", name)
    index, report = build_index(root, "nih", tmp_path / "idx", hash_files=False)
    assert len(index) == 3 and index.frame.set_index("image_id").loc["00000013_026.png", "age"] == 57
    assert index.frame["patient_id"].tolist() == ["00000013", "00000013", "00000017"]
    assert report["files_not_in_csv"] == ["sample/images/stray.png"]
    assert "- sample/images/stray.png" in (tmp_path / "idx" / "validation.md").read_text()


def _google_file(path, rows):
    head = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
            "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],Fracture,Pneumothorax,Airspace opacity,"
            "Nodule or mass,Set Id\n")
    path.write_text(head + "\n".join(rows) + "\n")


def test_nih_google2019_relabels(tmp_path):
    root = _sample(tmp_path / "nih")
    _google_file(root / "google2019_nih-chest-xray-labels.csv",
                 ["00000013_005.png,x,5,13,60,M,AP,3056,2544,0.139,0.139,NO,NO,YES,NO,test",
                  "00000017_001.png,x,1,17,77,M,AP,2500,2048,0.168,0.168,YES,NO,NO,YES,validation"])
    index, report = build_index(root, "nih", tmp_path / "idx", hash_files=False, labels_from="google2019")
    f = index.frame.set_index("image_id")
    assert f.loc["00000013_005.png", "Pneumothorax"] == 0  # NIH said yes; Google's adjudication says no
    assert f.loc["00000013_026.png", "Pneumothorax"] == 0 and pd.isna(f.loc["00000013_026.png", "Fracture"])
    assert f.loc["00000017_001.png", "Nodule or mass"] == 1 and f.loc["00000013_005.png", "Airspace opacity"] == 1
    assert f.loc["00000017_001.png", "relabel_set"] == "validation"
    assert index.classes[-3:] == ["Fracture", "Airspace opacity", "Nodule or mass"]
    assert report["source"]["labels_from"]["pneumothorax_changed"] == {"negative_to_positive": 0,
                                                                      "positive_to_negative": 1}
    with pytest.raises(CxrlabError, match="--labels-from 'google' is not one of google2019"):
        build_index(root, "nih", tmp_path / "idx2", labels_from="google")


def test_nih_google2019_missing_file_is_a_one_line_error(tmp_path):
    root = _sample(tmp_path / "nih")
    with pytest.raises(CxrlabError, match="needs Google's relabel file"):
        build_index(root, "nih", tmp_path / "idx", labels_from="google2019")


def test_nih_google2019_real_file(shared_data, tmp_path):
    src = shared_data / "label-files" / "nih-google-relabels" / "google2019_nih-chest-xray-labels.csv.gz"
    if not src.exists():
        pytest.skip("Google relabel file absent")
    with gzip.open(src, "rt") as f:
        google = pd.read_csv(f, dtype=str)
    sample = google.sample(30, random_state=1)
    root = tmp_path / "nih"
    cols = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender",
            "View Position"]
    write_csv(root / "Data_Entry_2017_v2020.csv", sample[cols])
    for i, name in enumerate(sample["Image Index"]):
        write_image(root / "images" / name, seed=i)
    index, report = build_index(root, "nih", tmp_path / "idx", hash_files=False, labels_from="google2019",
                                relabels=src)
    f = index.frame.set_index("image_id")
    for _, row in sample.iterrows():
        for c in ("Fracture", "Pneumothorax", "Airspace opacity", "Nodule or mass"):
            assert f.loc[row["Image Index"], c] == (row[c] == "YES")
    assert report["counts"]["relabelled_images"] == 30
