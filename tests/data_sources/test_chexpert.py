"""CheXpert adapter: policies, patients and studies from paths, views, both layouts, the real label file."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from cxrlab.data.build_index import build_index
from cxrlab.errors import CxrlabError

from .helpers import CHEXPERT_HEADER, make_chexpert, write_csv, write_image


def _labels(index, image_id):
    row = index.frame.set_index("image_id").loc[image_id]
    return {c: (None if pd.isna(row[c]) else int(row[c])) for c in index.classes}


@pytest.mark.parametrize("inside", [True, False])
def test_chexpert_default_policies(tmp_path, inside):
    root = make_chexpert(tmp_path / "ds", inside=inside)
    index, report = build_index(root, "chexpert", tmp_path / "idx", hash_files=False)
    assert len(index) == 4  # 3 frontal train + 1 valid; the lateral is left out and counted
    assert report["counts"]["views_left_out"] == 1 and report["source"]["views_left_out"] == {"LATERAL": 1}
    frame = index.frame.set_index("image_id")
    a = "train/patient00002/study2/view1_frontal.jpg"
    assert frame.loc[a, "patient_id"] == "patient00002" and frame.loc[a, "study_id"] == "patient00002/study2"
    assert frame.loc[a, "view"] == "AP" and frame.loc[a, "sex"] == "F" and frame.loc[a, "age"] == 87
    got = _labels(index, a)
    assert got["Cardiomegaly"] is None and got["Edema"] is None  # -1 -> ignore (unknown)
    assert got["Lung Opacity"] == 1 and got["Pneumothorax"] == 0 and got["Fracture"] == 0  # blank -> negative
    assert frame["official_split"].value_counts().to_dict() == {"train_val": 3, "test": 1}
    assert index.meta["policies"] == {"uncertain": "ignore", "blank": "negative", "views": ["AP", "PA"]}
    cells = report["source"]["label_cells"]
    assert cells["Edema"]["uncertain"] == 2 and cells["Cardiomegaly"]["uncertain"] == 1
    md = (tmp_path / "idx" / "validation.md").read_text()
    assert "uncertain cells became: ignore" in md and "| Edema |" in md


@pytest.mark.parametrize("uncertain,blank,edema,fracture", [("ones", "negative", 1, 0), ("zeros", "unknown", 0, None),
                                                             ("ignore", "unknown", None, None)])
def test_chexpert_policies_map_cells(tmp_path, uncertain, blank, edema, fracture):
    root = make_chexpert(tmp_path / "ds")
    index, _ = build_index(root, "chexpert", tmp_path / "idx", hash_files=False, uncertain=uncertain, blank=blank)
    got = _labels(index, "train/patient00002/study2/view1_frontal.jpg")
    assert got["Edema"] == edema and got["Fracture"] == fracture
    assert index.meta["policies"]["uncertain"] == uncertain and index.meta["policies"]["blank"] == blank


def test_chexpert_views_option_keeps_laterals(tmp_path):
    root = make_chexpert(tmp_path / "ds")
    index, report = build_index(root, "chexpert", tmp_path / "idx", hash_files=False, views=["AP", "PA", "LATERAL"])
    assert len(index) == 5 and report["counts"]["views_left_out"] == 0
    assert "LATERAL" in set(index.frame["view"])


def test_chexpert_bad_input(tmp_path):
    root = make_chexpert(tmp_path / "ds")
    with pytest.raises(CxrlabError, match="--uncertain 'maybe' is not one of ignore, ones, zeros"):
        build_index(root, "chexpert", tmp_path / "idx", uncertain="maybe")
    with pytest.raises(CxrlabError, match="--blank"):
        build_index(root, "chexpert", tmp_path / "idx", blank="zero")
    bad = pd.read_csv(root / "train.csv", dtype=str)
    bad.loc[1, "Edema"] = "2"
    write_csv(root / "train.csv", bad)
    with pytest.raises(CxrlabError, match=r"train.csv: row 3, column 'Edema': value '2' is not 1, 0, -1 or blank"):
        build_index(root, "chexpert", tmp_path / "idx")
    nih = tmp_path / "nih"
    write_csv(nih / "train.csv", pd.DataFrame({"Image Index": ["a.png"], "Finding Labels": ["Mass"]}))
    with pytest.raises(CxrlabError, match="not a CheXpert label file: expected column.*found Image Index"):
        build_index(nih, "chexpert", tmp_path / "idx2")
    with pytest.raises(CxrlabError, match="--readers does not apply to --format chexpert"):
        build_index(root, "chexpert", tmp_path / "idx3", readers="any")


def test_chexpert_real_rows(shared_data, tmp_path):
    """Synthetic images at the paths of 40 real rows: labels equal the file's values under each policy."""
    src = shared_data / "label-files" / "chexpert" / "train.csv.gz"
    if not src.exists():
        pytest.skip("CheXpert label file absent")
    with gzip.open(src, "rt") as f:
        real = pd.read_csv(f, dtype=str, nrows=400)
    sample = real.sample(40, random_state=0).reset_index(drop=True)
    root = tmp_path / "CheXpert-v1.0-small"
    write_csv(root / "train.csv", sample[CHEXPERT_HEADER], gz=True)
    for i, p in enumerate(sample["Path"]):
        write_image(root / p.split("/", 1)[1], seed=i)
    for uncertain, blank in (("ignore", "negative"), ("ones", "unknown")):
        index, report = build_index(root, "chexpert", tmp_path / f"idx_{uncertain}", hash_files=False,
                                    uncertain=uncertain, blank=blank)
        frontal = sample[sample["Frontal/Lateral"] == "Frontal"]
        assert len(index) == len(frontal) and report["counts"]["views_left_out"] == len(sample) - len(frontal)
        frame = index.frame.set_index("image_id")
        for _, row in frontal.iterrows():
            image_id = row["Path"].split("/", 1)[1]
            assert frame.loc[image_id, "patient_id"] == image_id.split("/")[1]
            for c in index.classes:
                cell = row[c]
                want = {"1.0": 1.0, "0.0": 0.0, "-1.0": {"ignore": np.nan, "ones": 1.0}[uncertain]}.get(
                    cell, {"negative": 0.0, "unknown": np.nan}[blank]) if isinstance(cell, str) else \
                    {"negative": 0.0, "unknown": np.nan}[blank]
                got = frame.loc[image_id, c]
                assert (pd.isna(got) and np.isnan(want)) or got == want, (image_id, c, cell, got)


def test_chexpert_row_with_only_uncertain_labels_is_counted_not_silent(tmp_path):
    root = make_chexpert(tmp_path / "ds")
    index, report = build_index(root, "chexpert", tmp_path / "idx", hash_files=False, blank="unknown")
    assert "train/patient00003/study1/view1_frontal.jpg" not in set(index.frame["image_id"])
    assert report["counts"]["excluded"] == {"no label": 1}
