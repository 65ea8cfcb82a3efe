"""The merge of three phantom sources, checked cell by cell against the member indexes."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from cxrlab.cli import main
from cxrlab.data.index import load_index
from cxrlab.data.merge import check_members, merge_indexes
from cxrlab.errors import CxrlabError
from cxrlab.utils import read_json

# Written by hand from the findings table (not from the code under test): member class -> merged column.
EXPECTED = {
    "nih": {"Effusion": "Pleural Effusion", "Nodule": "Nodule", "Mass": "Mass", "No Finding": "No Finding",
            "Pleural_Thickening": "Pleural Thickening", "Atelectasis": "Atelectasis"},
    "chexpert": {"Pleural Effusion": "Pleural Effusion", "Lung Opacity": "Lung Opacity", "No Finding": "No Finding"},
    "padchest": {"nodule": "Nodule", "pleural effusion": "Pleural Effusion", "No Finding": "No Finding"},
}


def test_every_cell_matches_its_member_or_is_unknown(sources, merged):
    index, _ = merged
    frame = index.frame.set_index("image_id")
    for name, path in sources.items():
        member = load_index(path)
        mapping = {c: EXPECTED[name].get(c) for c in member.classes}
        assert all(v is not None for k, v in mapping.items() if k in EXPECTED[name])
        labelled = {EXPECTED[name].get(c, c) for c in member.classes}
        rows = frame.loc[[f"{name}/{i}" for i in member.frame["image_id"]]]
        assert len(rows) == len(member) and (rows["source"] == name).all()
        for merged_class in index.classes:
            got = rows[merged_class].to_numpy(dtype=float)
            if merged_class not in labelled:  # not labelled by this source: unknown, never 0
                assert np.isnan(got).all(), (name, merged_class)
                continue
            own = next(c for c in member.classes if EXPECTED[name].get(c, c) == merged_class)
            want = member.frame[own].to_numpy(dtype=float)
            assert np.array_equal(got, want, equal_nan=True), (name, merged_class)


def test_unknown_cells_are_exactly_the_unlabelled_findings(merged):
    index, report = merged
    by_source = {s["name"]: s for s in report["sources"]}
    assert set(by_source["chexpert"]["labelled"]) == {"Pleural Effusion", "Lung Opacity", "No Finding"}
    assert set(by_source["padchest"]["labelled"]) == {"Nodule", "Pleural Effusion", "No Finding"}
    assert "Lung Opacity" in by_source["nih"]["unknown"] and "Nodule" not in by_source["nih"]["unknown"]
    assert index.frame.loc[index.frame["source"] == "padchest", "Mass"].isna().all()
    assert index.frame.loc[index.frame["source"] == "chexpert", "Nodule"].isna().all()


def test_patients_are_namespaced_by_source(sources, merged):
    index, _ = merged
    raw = {name: set(load_index(p).frame["patient_id"].astype(str)) for name, p in sources.items()}
    assert raw["nih"] & raw["padchest"]  # the members reuse patient ids (1, 2, ...): different people
    for name, ids in raw.items():
        got = set(index.frame.loc[index.frame["source"] == name, "patient_id"])
        assert got == {f"{name}/{p}" for p in ids}
    owners = index.frame.groupby("patient_id")["source"].nunique()
    assert (owners == 1).all()


def test_per_source_counts_and_hashes(sources, merged):
    index, report = merged
    side = read_json(index.path.parent / "merge.json")
    for s in side["sources"]:
        member = load_index(sources[s["name"]])
        assert s["images"] == len(member)
        assert s["patients"] == member.frame["patient_id"].nunique()
        assert s["index_sha256"] == member.sha256
        pos = member.frame[[c for c in member.classes if EXPECTED[s["name"]].get(c) == "Nodule"]]
        if len(pos.columns):
            assert s["prevalence"]["Nodule"] == pytest.approx(float(pos.iloc[:, 0].mean()))
    text = (index.path.parent / "validation.md").read_text()
    assert "unknown" in text and "| padchest |" in text


def test_paths_open_the_members_files(sources, merged):
    index, _ = merged
    for name, path in sources.items():
        member = load_index(path)
        first = member.absolute_paths()[0]
        row = index.frame.loc[index.frame["image_id"] == f"{name}/{member.frame['image_id'].iloc[0]}"]
        assert row["path"].iloc[0] == str(first.resolve())
        assert open(row["path"].iloc[0], "rb").read() == first.read_bytes()


def test_member_changed_after_the_merge_is_refused(sources, tmp_path):
    copies = {}
    for name, path in sources.items():
        copies[name] = tmp_path / name
        shutil.copytree(path, copies[name])
    index, _ = merge_indexes([(None, p) for p in copies.values()], tmp_path / "m")
    assert check_members(load_index(tmp_path / "m")) == []
    csv = copies["chexpert"] / "index.csv"
    csv.write_text(csv.read_text() + "\n")
    with pytest.raises(CxrlabError, match="changed after the merge"):
        check_members(load_index(tmp_path / "m"))
    shutil.rmtree(copies["chexpert"])
    notes = check_members(load_index(tmp_path / "m"))
    assert len(notes) == 1 and "not found" in notes[0]


def test_approximate_pairs_only_when_asked(sources, tmp_path):
    items = [(None, sources["nih"]), (None, sources["chexpert"])]
    plain, report = merge_indexes(items, tmp_path / "plain")
    assert {"Infiltration", "Lung Opacity"} <= set(plain.classes)
    pair = next(p for p in report["approximate_pairs"] if {p["a"], p["b"]} == {"Infiltration", "Lung Opacity"})
    assert not pair["merged"] and pair["reason"]
    approx, report = merge_indexes(items, tmp_path / "approx", approximate=True)
    assert len(approx.classes) == len(plain.classes) - 1
    merged_col = next(c for c in report["columns"] if c["approximate"])
    assert set(merged_col["members"]) == {"nih", "chexpert"}


def test_cli_merge_names_and_errors(sources, tmp_path, capsys):
    out = tmp_path / "m"
    args = ["data", "merge", f"a={sources['nih']}", f"b={sources['padchest']}", "--out", str(out)]
    assert main(args) == 0
    index = load_index(out)
    assert set(index.frame["source"]) == {"a", "b"} and index.frame["image_id"].str.startswith(("a/", "b/")).all()
    assert main(["data", "merge", str(sources["nih"]), "--out", str(tmp_path / "one")]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main(["data", "merge", str(sources["nih"]), str(sources["nih"]), "--out", str(tmp_path / "two")]) == 2
    assert "name them" in capsys.readouterr().err
