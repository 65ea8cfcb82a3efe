"""--format csv: cells that are not 0/1/blank, conflicting duplicates, --task, and dataset files it must refuse."""

from __future__ import annotations

import pandas as pd
import pytest

from cxrlab.data.build_index import build_index, read_labels
from cxrlab.errors import CxrlabError

from .helpers import make_chexpert, make_padchest, write_image


def _csv(root, text, n=4):
    for i in range(n):
        write_image(root / f"{i}.png", seed=i)
    (root / "labels.csv").write_text(text)
    return root


@pytest.mark.parametrize("value", ["2", "yes", "0.5"])
def test_a_bad_cell_is_an_error_not_a_dropped_class(tmp_path, value):
    root = _csv(tmp_path, f"filename,patient_id,A,B\n0.png,p,1,0\n1.png,q,0,1\n2.png,r,{value},1\n3.png,s,0,0\n")
    with pytest.raises(CxrlabError, match=rf"row 4, column 'A': value '{value}' is not 0, 1 or blank"):
        build_index(root, "csv", tmp_path / "idx")


def test_bad_cell_in_named_classes_is_an_error(tmp_path):
    root = _csv(tmp_path, "filename,A,B\n0.png,1,0\n1.png,0,x\n2.png,1,1\n3.png,0,0\n")
    with pytest.raises(CxrlabError, match="row 3, column 'B'"):
        build_index(root, "csv", tmp_path / "idx", classes=["A", "B"])


def test_conflicting_duplicates_are_an_error_identical_ones_are_counted(tmp_path):
    root = _csv(tmp_path, "filename,patient_id,A,B\n0.png,p,1,0\n1.png,q,0,1\n0.png,p,0,1\n3.png,s,0,0\n")
    with pytest.raises(CxrlabError, match=r"image '0.png' has conflicting label rows \(rows \[2, 4\]\)"):
        build_index(root, "csv", tmp_path / "idx")
    (root / "labels.csv").write_text("filename,patient_id,A,B\n0.png,p,1,0\n1.png,q,0,1\n0.png,p,1,0\n3.png,s,1,1\n")
    index, report = build_index(root, "csv", tmp_path / "idx2")
    assert len(index) == 3 and report["counts"]["excluded"] == {"duplicate image id": 1}


def test_task_is_not_reinferred_against_the_option(tmp_path):
    root = _csv(tmp_path, "filename,patient_id,A,B\n0.png,p,1,0\n1.png,q,0,1\n2.png,r,0,0\n3.png,s,1,0\n")
    index, report = build_index(root, "csv", tmp_path / "idx", task="multilabel")
    assert index.task == "multilabel" and len(index) == 4  # the normal image (no finding) is kept
    labels = read_labels(root / "labels.csv", task="multilabel")
    assert labels.task == "multilabel"


def test_dataset_files_name_their_adapter(tmp_path):
    chex = make_chexpert(tmp_path / "chex")
    with pytest.raises(CxrlabError, match="is a chexpert label file; index it with --format chexpert"):
        build_index(chex / "train.csv", "csv", tmp_path / "idx")
    pad = make_padchest(tmp_path / "pad")
    with pytest.raises(CxrlabError, match="--format padchest"):
        build_index(pad, "csv", tmp_path / "idx")
    minus = _csv(tmp_path / "m", "filename,patient_id,A,B\n0.png,p,1,-1\n1.png,q,0,1\n2.png,r,0,0\n3.png,s,1,0\n")
    with pytest.raises(CxrlabError, match="column 'B' holds -1.*--format chexpert"):
        build_index(minus, "csv", tmp_path / "idx")
    lists = _csv(tmp_path / "l", "filename,patient_id,label\n0.png,p,\"['a', 'b']\"\n1.png,q,\"['a']\"\n", n=2)
    with pytest.raises(CxrlabError, match="Python-list strings.*--format padchest"):
        build_index(lists, "csv", tmp_path / "idx")
    paths = tmp_path / "p"
    frame = pd.DataFrame({"path": [f"train/patient0000{i}/study1/view1_frontal.png" for i in range(3)],
                          "A": [1, 0, 1]})
    for p in frame["path"]:
        write_image(paths / p)
    frame.to_csv(paths / "labels.csv", index=False)
    with pytest.raises(CxrlabError, match="patient is in the image paths.*--format chexpert"):
        build_index(paths, "csv", tmp_path / "idx")


def test_unlisted_files_are_named(tmp_path):
    root = _csv(tmp_path, "filename,patient_id,A,B\n0.png,p,1,0\n1.png,q,0,1\n2.png,r,1,1\n", n=4)
    write_image(root / "images" / "stray.png")
    index, report = build_index(root, "csv", tmp_path / "idx")
    assert report["files_not_in_csv"] == ["3.png", "images/stray.png"] and len(index) == 3
    md = (tmp_path / "idx" / "validation.md").read_text()
    assert "- 3.png" in md and "- images/stray.png" in md
