"""Invalid values laundered: out-of-range or non-finite numbers are errors naming row and column, never turned
into valid-looking outputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrlab.errors import CxrlabError
from cxrlab.predictions import Predictions, read_predictions, write_predictions

from .helpers import run


def _damaged(src, dest, value, row=0, extra_col=None):
    frame = pd.read_csv(src)
    col = extra_col or [c for c in frame.columns if c not in ("image_id", "patient_id")][1]
    if col not in frame.columns:
        frame[col] = 0.1
    frame[col] = frame[col].astype(object)
    frame.loc[row, col] = value
    frame.to_csv(dest, index=False)
    meta = src.with_suffix(".json")
    if meta.exists():
        dest.with_suffix(".json").write_text(meta.read_text())
    return dest, col


@pytest.mark.parametrize("value", ["1.3", "inf", "-0.2", "nan", "abc", ""])
def test_calibrate_refuses_out_of_range_inputs(world, tmp_path, capsys, all_inputs, value):
    bad, col = _damaged(world.test, tmp_path / "t.csv", value, row=3)
    run(capsys, ["calibrate", world.val, bad, "--labels", world.index, "--out", tmp_path / "c.csv"],
        inputs=[*all_inputs, bad], says=("t.csv row 5", repr(col)))
    assert not (tmp_path / "c.csv").exists()
    bad_val, _ = _damaged(world.val, tmp_path / "v.csv", value)
    run(capsys, ["calibrate", bad_val, world.test, "--labels", world.index, "--out", tmp_path / "c.csv"],
        inputs=[*all_inputs, bad_val], says=("v.csv row 2", repr(col)))


@pytest.mark.parametrize("value", ["1.3", "-inf", "nan"])
def test_evaluate_and_ensemble_refuse_invalid_probabilities(world, tmp_path, capsys, all_inputs, value):
    bad, col = _damaged(world.test, tmp_path / "t.csv", value, row=2)
    run(capsys, ["evaluate", bad, "--labels", world.index, "--out", tmp_path / "e", "--bootstrap", "0"],
        inputs=[*all_inputs, bad], says=("row 4", repr(col)))
    run(capsys, ["ensemble", world.test, bad, "--out", tmp_path / "ens.csv"], inputs=[*all_inputs, bad],
        says=("row 4", repr(col)))
    assert not (tmp_path / "ens.csv").exists()


def test_logits_are_accepted_when_declared(world, tmp_path, capsys, all_inputs):
    frame = pd.read_csv(world.test)
    cols = [c for c in frame.columns if c not in ("image_id", "patient_id")]
    p = frame[cols].to_numpy().clip(1e-4, 1 - 1e-4)
    frame[cols] = np.log(p / (1 - p))
    frame.to_csv(tmp_path / "logits.csv", index=False)
    run(capsys, ["evaluate", tmp_path / "logits.csv", "--labels", world.index, "--out", tmp_path / "e",
                 "--bootstrap", "0", "--no-report"], inputs=all_inputs, says="--logits")
    run(capsys, ["evaluate", tmp_path / "logits.csv", "--labels", world.index, "--out", tmp_path / "e",
                 "--bootstrap", "0", "--no-report", "--logits"], inputs=all_inputs, expect=0)


def test_selective_names_the_nan_row_instead_of_abstaining_on_everything(world, tmp_path, capsys, all_inputs):
    bad, col = _damaged(world.val, tmp_path / "v.csv", "nan", row=1)
    run(capsys, ["selective", "--val", bad, "--test", world.test, "--labels", world.index, "--out", tmp_path / "s"],
        inputs=[*all_inputs, bad], says=("v.csv row 3", repr(col)))
    std, _ = _damaged(world.val, tmp_path / "v2.csv", "nan", row=0, extra_col="std:Mass")
    run(capsys, ["selective", "--val", std, "--test", world.test, "--labels", world.index, "--out", tmp_path / "s"],
        inputs=[*all_inputs, std], says=("v2.csv row 2", "std:Mass"))


def test_duplicate_ids_and_missing_sidecar_classes(world, tmp_path, capsys, all_inputs):
    frame = pd.read_csv(world.test)
    pd.concat([frame, frame.iloc[[0]]]).to_csv(tmp_path / "dup.csv", index=False)
    run(capsys, ["evaluate", tmp_path / "dup.csv", "--labels", world.index, "--out", tmp_path / "e",
                 "--bootstrap", "0"], inputs=all_inputs, says=("repeats row 2", frame["image_id"][0]))
    frame.drop(columns=["Mass"]).to_csv(tmp_path / "lost.csv", index=False)
    (tmp_path / "lost.json").write_text(world.test.with_suffix(".json").read_text())
    run(capsys, ["evaluate", tmp_path / "lost.csv", "--labels", world.index, "--out", tmp_path / "e",
                 "--bootstrap", "0"], inputs=all_inputs, says=("'Mass'", "no such column"))


def test_sidecar_of_the_wrong_shape(world, tmp_path, capsys, all_inputs):
    for i, text in enumerate(['["a", "b"]', '{"task": "regression"}', '{"classes": "Mass"}', "{broken"]):
        csv = tmp_path / f"p{i}.csv"
        csv.write_bytes(world.test.read_bytes())
        csv.with_suffix(".json").write_text(text)
        run(capsys, ["evaluate", csv, "--labels", world.index, "--out", tmp_path / "e", "--bootstrap", "0"],
            inputs=all_inputs, says=f"p{i}.json")


def test_writers_refuse_invalid_probabilities(tmp_path):
    for value in (np.nan, 1.5, -0.1, np.inf):
        probs = np.array([[0.2, value]])
        with pytest.raises(CxrlabError, match="not a probability"):
            write_predictions(tmp_path / "p.csv", Predictions(["a"], probs, ["A", "B"], {"task": "multilabel"}))
    assert not (tmp_path / "p.csv").exists()
    write_predictions(tmp_path / "ok.csv", Predictions(["a"], np.array([[0.2, 1 + 1e-9]]), ["A", "B"], {}))
    assert read_predictions(tmp_path / "ok.csv").probs.max() == 1.0  # float noise clipped, not an error


def test_a_class_column_given_twice(world, tmp_path, capsys, all_inputs):
    lines = world.test.read_text().splitlines()
    lines[0] = lines[0].replace("Effusion", "Mass")
    (tmp_path / "twice.csv").write_text("\n".join(lines) + "\n")
    run(capsys, ["evaluate", tmp_path / "twice.csv", "--labels", world.index, "--out", tmp_path / "e",
                 "--bootstrap", "0"], inputs=all_inputs, says=("'Mass'", "twice"))


def test_calibrate_names_a_class_the_test_file_lacks_and_takes_logits(world, tmp_path, capsys, all_inputs):
    frame = pd.read_csv(world.test)
    frame.drop(columns=["Mass"]).to_csv(tmp_path / "t.csv", index=False)
    run(capsys, ["calibrate", world.val, tmp_path / "t.csv", "--labels", world.index, "--out", tmp_path / "c.csv"],
        inputs=all_inputs, says=("Mass", "t.csv"))
    for name in ("val", "test"):
        f = pd.read_csv(getattr(world, name))
        cols = [c for c in f.columns if c not in ("image_id", "patient_id")]
        p = f[cols].to_numpy().clip(1e-4, 1 - 1e-4)
        f[cols] = np.log(p / (1 - p))
        f.to_csv(tmp_path / f"{name}_logits.csv", index=False)
    argv = ["calibrate", tmp_path / "val_logits.csv", tmp_path / "test_logits.csv", "--labels", world.index, "--out",
            tmp_path / "c.csv"]
    run(capsys, argv, inputs=all_inputs, says="--logits")
    run(capsys, [*argv, "--logits"], inputs=all_inputs, expect=0)
    assert read_predictions(tmp_path / "c.csv").probs.max() <= 1


def test_selective_refuses_a_threshold_on_another_score(world, tmp_path, capsys, all_inputs):
    # val with MC-dropout std columns, test without: a std threshold applied to confidences abstained on everything
    frame = pd.read_csv(world.val)
    classes = [c for c in frame.columns if c not in ("image_id", "patient_id")]
    for c in classes:
        frame[f"std:{c}"] = 0.01
    frame.to_csv(tmp_path / "val_unc.csv", index=False)
    argv = ["selective", "--val", tmp_path / "val_unc.csv", "--test", world.test, "--labels", world.index, "--out",
            tmp_path / "s"]
    run(capsys, argv, inputs=all_inputs, says=("scored by std", "confidence"))
    run(capsys, [*argv, "--score", "confidence"], inputs=all_inputs, expect=0)
