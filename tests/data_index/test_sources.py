"""Every source on tiny synthetic data: NIH layout, labels CSV (3 shapes), class folders; read_labels."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlab.data.boxes import read_boxes
from cxrlab.data.build_index import build_index, read_labels
from cxrlab.data.index import load_index
from cxrlab.data.sources.nih import NIH_CLASSES
from cxrlab.errors import CxrlabError

from .helpers import make_nih, write_data_entry, write_png


def test_nih_layout(tmp_path):
    root = make_nih(tmp_path / "nih")
    index, report = build_index(root, "nih", tmp_path / "out")
    assert len(index) == 4 and index.classes == NIH_CLASSES and index.task == "multilabel"
    assert report["counts"]["missing_images"] == 1 and report["counts"]["patients"] == 3
    f = index.frame.set_index("image_id")
    assert f.loc["00000001_001.png", "path"] == "images_001/images/00000001_001.png"
    assert f.loc["00000003_000.png", "path"] == "images_002/images/00000003_000.png"
    assert f.loc["00000001_001.png", ["Cardiomegaly", "Effusion", "No Finding"]].tolist() == [1, 1, 0]
    assert f.loc["00000001_000.png", "patient_id"] == "00000001" and f.loc["00000001_001.png", "follow_up"] == 1
    assert f.loc["00000003_000.png", "official_split"] == "test"
    assert f.loc["00000002_000.png", "official_split"] == "train_val"
    loaded = load_index(tmp_path / "out")
    assert loaded.meta["boxes_image_size"] == 1024 and loaded.meta["format"] == "nih"
    boxes = read_boxes(loaded.boxes_path)
    assert boxes.iloc[0].tolist() == ["00000003_000.png", "Mass", 100.5, 200.0, 50.0, 60.0]
    assert all(p.exists() for p in loaded.absolute_paths())
    assert (tmp_path / "out" / "validation.json").exists() and (tmp_path / "out" / "validation.md").exists()


def test_nih_drop_no_finding_and_unknown_label(tmp_path):
    root = tmp_path / "nih"
    write_data_entry(root / "Data_Entry_2017.csv", [("a.png", "No Finding", 0, 1), ("b.png", "Mass|Covid", 0, 2)])
    write_png(root / "images" / "a.png", 0)
    write_png(root / "b.png", 1)  # a flattened download: images in ROOT itself
    index, report = build_index(root, "nih", tmp_path / "out", drop_no_finding=True)
    assert sorted(index.frame["path"]) == ["b.png", "images/a.png"]
    assert "No Finding" not in index.classes and len(index.classes) == 14
    assert report["unknown_labels"] == {"Covid": 1}
    assert any("Covid" in w for w in report["warnings"])


def test_csv_onehot_multiclass(tmp_path):
    for i in range(4):
        write_png(tmp_path / "images" / f"{i}.png", i)
    (tmp_path / "labels.csv").write_text(
        "filename,patient_id,source,a,b\n0.png,p1,x,1,0\n1.png,p1,x,0,1\n2.png,p2,x,1,0\n3.png,,x,0,1\n")
    index, report = build_index(tmp_path, "csv", tmp_path / "out")
    assert index.task == "multiclass" and index.classes == ["a", "b"]
    assert index.class_indices().tolist() == [0, 1, 0, 1]
    assert index.frame["patient_id"].tolist() == ["p1", "p1", "p2", "3.png"]  # missing patient -> image
    assert any("leakage cannot be ruled out" in w for w in report["warnings"])


def test_csv_single_column_and_pipe_multilabel(tmp_path):
    for i in range(3):
        write_png(tmp_path / f"{i}.png", i)
    (tmp_path / "one.csv").write_text("file,label\n0.png,cat\n1.png,dog\n2.png,cat\n")
    index, _ = build_index(tmp_path, "csv", tmp_path / "o1", labels="one.csv")
    assert index.task == "multiclass" and index.classes == ["cat", "dog"]
    (tmp_path / "multi.csv").write_text("image,findings,patient\n0.png,A|B,p\n1.png,B,q\n2.png,C,q\n")
    index, _ = build_index(tmp_path, "csv", tmp_path / "o2", labels=tmp_path / "multi.csv")
    assert index.task == "multilabel" and index.classes == ["A", "B", "C"]
    np.testing.assert_array_equal(index.labels(), [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    index, _ = build_index(tmp_path, "csv", tmp_path / "o3", labels="one.csv", task="multilabel")
    assert index.task == "multilabel"


def test_csv_needs_labels_choice_and_reports_missing_files(tmp_path):
    write_png(tmp_path / "0.png")
    (tmp_path / "a.csv").write_text("file,label\n0.png,x\n1.png,y\n")
    (tmp_path / "b.csv").write_text("file,label\n0.png,x\n")
    with pytest.raises(CxrlabError, match="--labels"):
        build_index(tmp_path, "csv", tmp_path / "out")
    index, report = build_index(tmp_path, "csv", tmp_path / "out", labels="a.csv")
    assert len(index) == 1 and report["counts"]["missing_images"] == 1 and report["missing_images"] == ["1.png"]


def test_folder_with_splits_keep_split_and_patients(tmp_path):
    root = tmp_path / "folders"
    names = {("train", "0_normal"): "00000001_000.png", ("train", "1_abnormal"): "00000002_000.png",
             ("valid", "0_normal"): "00000001_001.png", ("test", "1_abnormal"): "00000003_000.png"}
    for i, ((split, cls), name) in enumerate(names.items()):
        write_png(root / split / cls / name, i)
    entry = write_data_entry(tmp_path / "de.csv", [("00000001_000.png", "No Finding", 0, 1),
                                                   ("00000001_001.png", "No Finding", 1, 1),
                                                   ("00000002_000.png", "Mass", 0, 2)])
    index, report = build_index(root, "folder", tmp_path / "out", keep_split=True, patients_from=entry)
    f = index.frame.set_index("image_id")
    assert index.classes == ["0_normal", "1_abnormal"] and index.task == "multiclass"
    assert f.loc["00000001_001.png", "given_split"] == "val" and f.loc["00000003_000.png", "given_split"] == "test"
    assert f.loc["00000001_001.png", "patient_id"] == "00000001"
    assert f.loc["00000003_000.png", "patient_id"] == "00000003_000.png"  # not in the CSV: own patient
    assert any("not found in de.csv" in w for w in report["warnings"])


def test_folder_plain_layout_and_bad_layouts(tmp_path):
    write_png(tmp_path / "d" / "yes" / "a.png", 0)
    write_png(tmp_path / "d" / "no" / "b.png", 1)
    index, _ = build_index(tmp_path / "d", "folder", tmp_path / "out")
    assert index.classes == ["no", "yes"] and "given_split" not in index.frame
    with pytest.raises(CxrlabError, match="no split folders"):
        build_index(tmp_path / "d", "folder", tmp_path / "out", keep_split=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CxrlabError, match="no sub-folders"):
        build_index(tmp_path / "empty", "folder", tmp_path / "out")


def test_read_labels_all_kinds(tmp_path):
    entry = write_data_entry(tmp_path / "Data_Entry_2017.csv", [("a.png", "Mass|Nodule", 0, 7), ("b.png", "", 0, 8)])
    idx = read_labels(entry)
    assert len(idx) == 2 and idx.classes == NIH_CLASSES and idx.frame["patient_id"].tolist() == ["00000007", "00000008"]
    assert idx.frame.loc[0, ["Mass", "Nodule"]].tolist() == [1, 1]
    (tmp_path / "l.csv").write_text("filename,normal,virus\nx.png,1,0\ny.png,0,1\n")
    idx = read_labels(tmp_path / "l.csv")
    assert idx.task == "multiclass" and idx.image_ids == ["x.png", "y.png"]
    root = make_nih(tmp_path / "nih")
    build_index(root, "nih", tmp_path / "out")
    assert len(read_labels(tmp_path / "out")) == 4 and len(read_labels(tmp_path / "out" / "index.csv")) == 4
    with pytest.raises(CxrlabError, match="not found"):
        read_labels(tmp_path / "nope.csv")


def test_read_labels_of_an_image_is_a_one_line_error(tmp_path):
    # `cxrlab evaluate P.csv --labels some.png` used to end in a UnicodeDecodeError traceback (NIH header sniff)
    with pytest.raises(CxrlabError, match="cannot parse labels CSV"):
        read_labels(write_png(tmp_path / "x.png"))


def test_load_index_of_a_split_or_labels_csv_is_a_one_line_error(tmp_path):
    # a split.csv (its split.json beside it) or a raw labels CSV passed where the index goes used to end in
    # KeyError: 'task' (split) or a "rebuild it" hint for a file that never was an index (labels.csv)
    (tmp_path / "split.csv").write_text("image_id,split\na.png,train\n")
    (tmp_path / "split.json").write_text('{"method": "patient_stratified"}')
    with pytest.raises(CxrlabError, match="split.csv is not a cxrlab index.*split.json has no task"):
        load_index(tmp_path / "split.csv")
    (tmp_path / "labels.csv").write_text("filename,normal,virus\nx.png,1,0\n")
    with pytest.raises(CxrlabError, match="labels.csv is not a cxrlab index.*no labels.json beside it"):
        load_index(tmp_path / "labels.csv")
    (tmp_path / "idx").mkdir()
    (tmp_path / "idx" / "index.csv").write_text("image_id,path,patient_id\n")
    (tmp_path / "idx" / "index.json").write_text("{truncated")
    with pytest.raises(CxrlabError, match="index.json is not valid JSON"):
        load_index(tmp_path / "idx")
