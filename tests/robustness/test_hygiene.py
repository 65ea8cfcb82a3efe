"""Test-set hygiene walked around: the guard looks at what the data is (image ids, file hashes), not its name."""

from __future__ import annotations

import json
import shutil

import pandas as pd

from cxrlab.data.index import load_index, write_index

from .helpers import run


def _bare_copy(src, dest):
    """A copy of a predictions CSV without its sidecar (the sidecar used to be all the guard looked at)."""
    shutil.copyfile(src, dest)
    return dest


def test_copy_of_test_predictions_refused_by_every_fitting_verb(world, tmp_path, capsys, all_inputs):
    copy = _bare_copy(world.test, tmp_path / "my_val.csv")
    says = ("refusing to fit", "my_val.csv", "test")
    run(capsys, ["evaluate", world.test, "--labels", world.index, "--val-predictions", copy, "--out", tmp_path / "e",
                 "--bootstrap", "0"], inputs=[*all_inputs, copy], says=says)
    run(capsys, ["calibrate", copy, world.test, "--labels", world.index, "--out", tmp_path / "c.csv"],
        inputs=[*all_inputs, copy], says=says)
    run(capsys, ["selective", "--val", copy, "--test", world.test, "--labels", world.index, "--out",
                 tmp_path / "s"], inputs=[*all_inputs, copy], says=says)
    run(capsys, ["ensemble", world.test, world.test, "--method", "weighted", "--val", copy, copy, "--labels",
                 world.index, "--out", tmp_path / "ens.csv"], inputs=[*all_inputs, copy], says=says)


def test_the_run_knows_its_test_split_even_for_other_test_files(world, tmp_path, capsys, all_inputs):
    # fitting on the run's test images while "evaluating" a subset of them that shares no row with the val file
    test = pd.read_csv(world.test)
    half = len(test) // 2
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    test.iloc[:half].to_csv(a, index=False)
    test.iloc[half:].to_csv(b, index=False)
    meta = json.loads(world.test.with_suffix(".json").read_text())
    meta.pop("split")  # the sidecar no longer says "test"; run_dir still names the run
    b.with_suffix(".json").write_text(json.dumps(meta))
    run(capsys, ["calibrate", b, a, "--labels", world.index, "--out", tmp_path / "c.csv"], inputs=all_inputs,
        says=("refusing to fit", "test split of run"))


def test_renamed_copy_of_a_test_image_matched_by_hash(world, tmp_path, capsys, all_inputs):
    # an index where one validation row is a byte-identical copy of a test image under another name
    index = load_index(world.index)
    test_id = pd.read_csv(world.test)["image_id"].iloc[0]
    row = index.frame[index.frame["image_id"] == test_id].copy()
    row["image_id"], row["patient_id"] = "renamed_copy.png", "P_other"
    index.frame = pd.concat([index.frame, row], ignore_index=True)
    write_index(index, tmp_path / "idx")
    val = pd.read_csv(world.val)
    extra = pd.read_csv(world.test).iloc[[0]].assign(image_id="renamed_copy.png", patient_id="P_other")
    pd.concat([val, extra]).to_csv(tmp_path / "val.csv", index=False)
    run(capsys, ["evaluate", world.test, "--labels", tmp_path / "idx", "--val-predictions", tmp_path / "val.csv",
                 "--out", tmp_path / "e", "--bootstrap", "0"], inputs=all_inputs,
        says=("byte-identical", "renamed_copy.png", "sha256"))


def test_pseudo_refuses_renamed_copies_of_test_images(world, tmp_path, capsys, all_inputs):
    index = load_index(world.index)
    split = pd.read_csv(world.split)
    test_id = split.loc[split["split"] == "test", "image_id"].iloc[0]
    src = index.absolute_paths()[index.image_ids.index(test_id)]
    pool = tmp_path / "pool"
    pool.mkdir()
    shutil.copyfile(src, pool / "holiday_photo.png")
    run(capsys, ["pseudo", world.run, "--pool", pool, "--out", tmp_path / "ps"], inputs=[*all_inputs, pool],
        says=("refusing to fit pseudo-labels", "byte-identical"))


def test_allow_test_fitting_is_loud_and_recorded(world, tmp_path, capsys, all_inputs):
    copy = _bare_copy(world.test, tmp_path / "my_val.csv")
    err = run(capsys, ["evaluate", world.test, "--labels", world.index, "--val-predictions", copy, "--out",
                       tmp_path / "e", "--bootstrap", "0", "--no-report", "--allow-test-fitting"],
              inputs=[*all_inputs, copy], expect=0)
    assert "WARNING" in err and "TEST" in err
    assert any("BIASED" in n for n in json.loads((tmp_path / "e" / "metrics.json").read_text())["notes"])
    run(capsys, ["calibrate", copy, world.test, "--labels", world.index, "--out", tmp_path / "c.csv",
                 "--allow-test-fitting"], inputs=[*all_inputs, copy], expect=0)
    assert json.loads((tmp_path / "c.json").read_text())["fitted_on_test"]["fitted_on_test"] is True
    run(capsys, ["ensemble", world.test, world.test, "--method", "weighted", "--val", copy, copy, "--labels",
                 world.index, "--out", tmp_path / "ens.csv", "--allow-test-fitting"], inputs=[*all_inputs, copy],
        expect=0)
    assert json.loads((tmp_path / "ens.json").read_text())["fitted_on_test"] is True


def test_validation_predictions_are_still_accepted(world, tmp_path, capsys, all_inputs):
    import hashlib

    run(capsys, ["evaluate", world.run, "--out", tmp_path / "e", "--bootstrap", "0", "--no-report"],
        inputs=all_inputs, expect=0)
    inputs = json.loads((tmp_path / "e" / "metrics.json").read_text())["inputs"]  # recorded by content too
    assert inputs["predictions_sha256"] == hashlib.sha256(world.test.read_bytes()).hexdigest()
    assert inputs["val_predictions_sha256"] == hashlib.sha256(world.val.read_bytes()).hexdigest()
    run(capsys, ["calibrate", world.val, world.test, "--labels", world.index, "--out", tmp_path / "c.csv"],
        inputs=all_inputs, expect=0)


def test_compare_guards_each_models_validation_file(world, tmp_path, capsys, all_inputs):
    runc = world.copy_run(tmp_path / "run")
    (runc / "predictions" / "val.csv").write_bytes(world.test.read_bytes())  # "val" that is the test set
    (runc / "predictions" / "val.json").unlink()
    test = pd.read_csv(runc / "predictions" / "test.csv")  # another model: not a copy of the same file
    test.iloc[0, 2] = 0.5
    test.to_csv(runc / "predictions" / "test.csv", index=False)
    argv = ["compare", world.run, runc, "--out", tmp_path / "c", "--bootstrap", "0", "--no-report"]
    run(capsys, argv, inputs=[*all_inputs, runc], says=("refusing to fit thresholds", "val.csv"))
    run(capsys, [*argv, "--allow-test-fitting"], inputs=[*all_inputs, runc], expect=0)
    rows = json.loads((tmp_path / "c" / "comparison.json").read_text())["models"]
    assert any(r.get("fitted_on_test") for r in rows)
