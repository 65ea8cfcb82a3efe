"""Phantom generator: determinism, boxes inside the image and covering the planted finding, both tasks."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from cxrlab.data import phantom
from cxrlab.data.boxes import read_boxes
from cxrlab.data.phantom import make_phantom, make_phantom_index
from cxrlab.errors import CxrlabError


def _read_all(folder):
    labels = pd.read_csv(folder / "labels.csv")
    images = {f: cv2.imread(str(folder / "images" / f), cv2.IMREAD_UNCHANGED) for f in labels["filename"]}
    return labels, images, read_boxes(folder / "BBox_List_2017.csv")


def test_deterministic_and_parallel_equals_serial(tmp_path):
    make_phantom(tmp_path / "a", n=12, size=64, seed=3, workers=1)
    make_phantom(tmp_path / "b", n=12, size=64, seed=3, workers=2)
    make_phantom(tmp_path / "c", n=12, size=64, seed=4, workers=1)
    la, ia, ba = _read_all(tmp_path / "a")
    lb, ib, bb = _read_all(tmp_path / "b")
    lc, ic, _ = _read_all(tmp_path / "c")
    pd.testing.assert_frame_equal(la, lb)
    pd.testing.assert_frame_equal(ba, bb)
    assert all(np.array_equal(ia[k], ib[k]) for k in ia)
    assert not all(np.array_equal(ia[k], ic.get(k, ia[k] * 0)) for k in ia)


def test_multilabel_layout_boxes_and_patients(tmp_path):
    make_phantom(tmp_path, n=40, size=96, seed=0, prevalence=0.5)
    labels, images, boxes = _read_all(tmp_path)
    assert list(labels.columns) == ["filename", "patient_id", "follow_up", *phantom.MULTILABEL_CLASSES]
    assert all(img.shape == (96, 96) and img.dtype == np.uint8 for img in images.values())
    assert labels["patient_id"].nunique() < len(labels)  # follow-ups: several images per patient
    assert (boxes["x"] >= 0).all() and (boxes["y"] >= 0).all()
    assert ((boxes["x"] + boxes["w"]) <= 96).all() and ((boxes["y"] + boxes["h"]) <= 96).all()
    # every positive label has a box and every box a positive label
    positives = {(r.filename, c) for r in labels.itertuples() for c in phantom.MULTILABEL_CLASSES
                 if getattr(r, c) == 1}
    assert positives == set(zip(boxes["image_id"], boxes["label"]))


def test_box_tightly_covers_the_planted_finding(tmp_path):
    """Render the same image with and without its finding: all changed pixels lie in the box, and the box edge
    touches the change (tight)."""
    item = {"index": 0, "patient": 0, "image_id": "x.png", "size": 128, "seed": 7, "contrast": 1.0,
            "finding_scale": 1.0, "findings": ["Nodule"], "path": str(tmp_path / "with.png")}
    (box,) = phantom.render_image(item)
    phantom.render_image({**item, "findings": [], "path": str(tmp_path / "without.png")})
    diff = cv2.imread(str(tmp_path / "with.png"), 0).astype(int) - cv2.imread(str(tmp_path / "without.png"), 0)
    ys, xs = np.nonzero(diff > 5)
    _, label, x, y, w, h = box
    assert label == "Nodule" and len(ys) > 10
    assert xs.min() >= x and xs.max() < x + w and ys.min() >= y and ys.max() < y + h
    assert xs.min() - x <= 2 and (x + w - 1) - xs.max() <= 2


def test_multiclass_one_class_per_patient(tmp_path):
    index = make_phantom_index(tmp_path, n=24, task="multiclass", size=64, seed=1)
    assert index.task == "multiclass" and index.classes == phantom.MULTICLASS_CLASSES
    assert (index.labels().sum(axis=1) == 1).all()
    per_patient = index.frame.groupby("patient_id")[index.classes].nunique()
    assert (per_patient <= 1).all().all()
    assert index.meta["boxes"] == "boxes.csv" and index.meta["boxes_image_size"] == 64
    boxes = read_boxes(index.boxes_path)
    assert set(boxes["label"]) <= {"bacteria", "virus", "COVID-19"}


def test_bad_arguments(tmp_path):
    with pytest.raises(CxrlabError, match="multilabel, multiclass"):
        make_phantom(tmp_path, n=4, task="binary")
    with pytest.raises(CxrlabError, match="too small"):
        make_phantom(tmp_path, n=4, size=8)


def test_zone_controls_position(tmp_path):
    boxes = {}
    for zone in ("left", "upper", "lower"):
        make_phantom(tmp_path / zone, n=30, size=64, seed=0, prevalence=0.6, zone=zone)
        boxes[zone] = read_boxes(tmp_path / zone / "BBox_List_2017.csv")
    left = boxes["left"]
    assert len(left) > 10 and ((left["x"] + left["w"] / 2) < 32).all()
    upper, lower = (b[b["label"].isin(["Nodule", "Mass", "Opacity"])] for b in (boxes["upper"], boxes["lower"]))
    assert len(upper) > 5 and (upper["y"] + upper["h"] / 2).max() < (lower["y"] + lower["h"] / 2).max()
    assert (upper["y"] + upper["h"] / 2).mean() + 5 < (lower["y"] + lower["h"] / 2).mean()
    with pytest.raises(CxrlabError, match="zone"):
        make_phantom(tmp_path / "x", n=2, zone="middle")


def test_phantom_labels_do_not_depend_on_the_string_hash_seed(tmp_path):
    """Two processes with different PYTHONHASHSEED must plan the same labels (set order once leaked in)."""
    import os
    import subprocess
    import sys

    outs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"p{hash_seed}"
        code = f"from cxrlab.data.phantom import make_phantom; make_phantom({str(out)!r}, n=40, size=64)"
        subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONHASHSEED": hash_seed})
        outs.append((out / "labels.csv").read_text())
    assert outs[0] == outs[1]
