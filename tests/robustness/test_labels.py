"""Labels silently reshaped: a labels file that cannot be read as it claims is an error, never a dropped class;
the task comes from the sidecar or index; a class one model lacks is named."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from .helpers import run


def _labels_csv(world, path, edit=None):
    """The world's labels as a plain labels CSV (file, patient, one 0/1 column per class)."""
    index = pd.read_csv(world.index / "index.csv", dtype=str)
    classes = json.loads((world.index / "index.json").read_text())["classes"]
    frame = index[["image_id", "patient_id", *classes]].rename(columns={"image_id": "file"})
    if edit is not None:
        frame = edit(frame)
    frame.to_csv(path, index=False)
    return path, classes


@pytest.mark.parametrize("cell", ["2", "yes", "-1"])
def test_a_bad_cell_is_an_error_not_a_dropped_class(world, tmp_path, capsys, all_inputs, cell):
    def edit(frame):
        frame.loc[3, "Mass"] = cell
        return frame

    labels, _ = _labels_csv(world, tmp_path / "labels.csv", edit)
    run(capsys, ["evaluate", world.test, "--labels", labels, "--out", tmp_path / "e", "--bootstrap", "0"],
        inputs=[*all_inputs, labels], says=("labels.csv", "Mass"))


def test_conflicting_duplicate_label_rows_are_named(world, tmp_path, capsys, all_inputs):
    test_id = pd.read_csv(world.test)["image_id"].iloc[0]

    def edit(frame):
        row = frame[frame["file"] == test_id].copy()
        row["Mass"] = "1" if row["Mass"].iloc[0] == "0" else "0"
        return pd.concat([frame, row], ignore_index=True)

    labels, _ = _labels_csv(world, tmp_path / "labels.csv", edit)
    run(capsys, ["evaluate", world.test, "--labels", labels, "--out", tmp_path / "e", "--bootstrap", "0"],
        inputs=[*all_inputs, labels], says=(test_id,))


def test_one_finding_per_image_stays_multilabel_as_the_sidecar_says(world, tmp_path, capsys, all_inputs):
    # every image has at most one finding: inferred alone, this reads as multi-class (normals dropped, macro-F1)
    def edit(frame):
        classes = [c for c in frame.columns if c not in ("file", "patient_id")]
        for i in range(len(frame)):
            hot = [c for c in classes if frame.loc[i, c] == "1"]
            for c in hot[1:]:
                frame.loc[i, c] = "0"
        return frame

    labels, _ = _labels_csv(world, tmp_path / "labels.csv", edit)
    out = tmp_path / "e"
    run(capsys, ["evaluate", world.test, "--labels", labels, "--out", out, "--bootstrap", "0", "--no-report"],
        inputs=[*all_inputs, labels], expect=0)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["task"] == "multilabel" and metrics["counts"]["scored"] == len(pd.read_csv(world.test))


def test_index_of_another_task_than_the_sidecar_is_an_error(world, tmp_path, capsys, all_inputs):
    csv = tmp_path / "p.csv"
    csv.write_bytes(world.test.read_bytes())
    meta = json.loads(world.test.with_suffix(".json").read_text())
    csv.with_suffix(".json").write_text(json.dumps({**meta, "task": "multiclass"}))
    run(capsys, ["evaluate", csv, "--labels", world.index, "--out", tmp_path / "e", "--bootstrap", "0"],
        inputs=all_inputs, says=("multilabel", "multiclass"))


def test_compare_names_a_class_one_model_lacks(world, tmp_path, capsys, all_inputs):
    frame = pd.read_csv(world.test)
    frame.drop(columns=["Mass"]).to_csv(tmp_path / "b.csv", index=False)
    out = tmp_path / "cmp"
    err = run(capsys, ["compare", world.test, tmp_path / "b.csv", "--labels", world.index, "--out", out,
                       "--bootstrap", "0", "--no-report"], inputs=all_inputs, expect=0)
    notes = json.loads((out / "comparison.json").read_text())["notes"]
    assert any("Mass" in n and "b" in n for n in notes) and "Mass" in err


def test_an_index_or_split_given_as_predictions_is_refused(world, tmp_path, capsys, all_inputs):
    # the index's 0/1 class columns read as probabilities would score a perfect AUROC, silently
    run(capsys, ["evaluate", world.index / "index.csv", "--labels", world.index, "--out", tmp_path / "e",
                 "--bootstrap", "0"], inputs=all_inputs, says=("is an index", "cxrlab predict"))
    run(capsys, ["ensemble", world.split, world.test, "--out", tmp_path / "e.csv"], inputs=all_inputs,
        says="is a split")
