"""Splits of a merged index: per source and finding, a held-out source, members' official test lists."""

from __future__ import annotations

import pandas as pd
import pytest

from cxrlab.cli import main
from cxrlab.data.build_index import build_index
from cxrlab.data.index import load_index
from cxrlab.data.merge import merge_indexes
from cxrlab.data.splits import load_split, make_split
from cxrlab.errors import CxrlabError
from cxrlab.utils import read_json


def _joined(index, split):
    return index.frame.merge(split, on="image_id")


def test_every_source_is_in_every_split_and_patients_stay_whole(merged, tmp_path):
    index, _ = merged
    split, audit = make_split(index, tmp_path / "s.csv", val=0.2, test=0.3, seed=1)
    rows = _joined(index, split)
    assert audit["verdict"] == "ok"
    assert (rows.groupby("patient_id")["split"].nunique() == 1).all()
    counts = rows.groupby(["source", "split"]).size().unstack(fill_value=0)
    assert (counts[["train", "val", "test"]] > 0).all().all(), counts
    share = counts["test"] / counts.sum(axis=1)  # each source's test share near 0.3, not one source's images
    assert share.between(0.15, 0.45).all(), share
    for source, finding in (("nih", "Nodule"), ("chexpert", "Lung Opacity"), ("padchest", "Nodule")):
        pos = rows[(rows["source"] == source) & (rows[finding] == 1)]
        assert pos["split"].nunique() >= 2, (source, finding)  # positives of each source's findings spread


def test_hold_out_source_puts_the_whole_source_in_test(merged, tmp_path):
    index, _ = merged
    out = tmp_path / "h.csv"
    assert main(["data", "split", str(index.path), "--out", str(out), "--hold-out-source", "padchest",
                 "--test", "0"]) == 0
    rows = _joined(index, load_split(out))
    assert (rows.loc[rows["source"] == "padchest", "split"] == "test").all()
    assert set(rows.loc[rows["source"] != "padchest", "split"]) == {"train", "val"}
    assert read_json(tmp_path / "h.json")["method"] == "hold_out:padchest"
    with pytest.raises(CxrlabError, match="not a source"):
        make_split(index, tmp_path / "x.csv", hold_out_source="vindr")


def test_official_lists_of_one_member_are_honoured(sources, tmp_path):
    root = load_index(sources["nih"]).root
    entries = pd.read_csv(root / "Data_Entry_2017.csv")
    test_names = entries.loc[entries["Patient ID"] <= 4, "Image Index"].tolist()
    nih_root = tmp_path / "nih"
    import shutil

    shutil.copytree(root, nih_root)
    (nih_root / "test_list.txt").write_text("\n".join(test_names) + "\n")
    (nih_root / "train_val_list.txt").write_text("\n".join(sorted(set(entries["Image Index"]) - set(test_names))))
    build_index(nih_root, "nih", tmp_path / "nih_idx", hash_files=False)
    index, _ = merge_indexes([(None, tmp_path / "nih_idx"), (None, sources["padchest"])], tmp_path / "m")
    split, audit = make_split(index, tmp_path / "o.csv", val=0.2, test=0.3, official=True)
    rows = _joined(index, split)
    nih_test = rows.loc[(rows["source"] == "nih") & (rows["split"] == "test"), "source_image_id"]
    assert sorted(nih_test) == sorted(test_names)
    assert set(rows.loc[rows["source"] == "padchest", "split"]) == {"train", "val", "test"}  # stratified
    assert read_json(tmp_path / "o.json")["method"] == "official_by_source:nih=official,padchest=stratified"
    assert audit["verdict"] == "ok"
