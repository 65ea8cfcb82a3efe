"""Inputs destroyed: no verb may write over its own inputs, their sidecars, or a folder another verb made."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from cxrlab.outputs import folder_maker

from .helpers import run, snapshot


def test_split_over_its_own_index_is_refused(world, capsys, all_inputs):
    # the example: it used to overwrite index.csv and, through the split's sidecar, index.json (exit 0)
    idx = world.index / "index.csv"
    run(capsys, ["data", "split", idx, "--out", idx], inputs=all_inputs, says=("--out", "is the input", "index.csv"))
    run(capsys, ["data", "split", world.index, "--out", idx], inputs=all_inputs, says="index.csv")


def test_split_whose_sidecar_would_hit_an_input(world, tmp_path, capsys, all_inputs):
    # --out X.csv writes X.json: here that is the index's sidecar, although X.csv itself is a new name
    (tmp_path / "index.json").write_text((world.index / "index.json").read_text())
    other = tmp_path / "idx"
    other.mkdir()
    for name in ("index.csv", "index.json"):
        (other / name).write_bytes((world.index / name).read_bytes())
    before = snapshot(other)
    run(capsys, ["data", "split", other, "--out", other / "index.csv"], inputs=all_inputs, says="is the input")
    assert snapshot(other) == before


def test_split_needs_a_csv_out(world, tmp_path, capsys, all_inputs):
    run(capsys, ["data", "split", world.index, "--out", tmp_path / "split.json"], inputs=all_inputs,
        says=("writes a .csv file", "split.json"))


def test_phantom_over_an_existing_dataset_is_refused(world, tmp_path, capsys, all_inputs):
    # into the world's dataset with other settings: it used to overwrite part of it
    run(capsys, ["data", "phantom", "--out", world.data, "--n", "5", "--size", "32"], inputs=all_inputs,
        says=("other settings", "n 40 there, 5 now"))
    # into a folder that is not a phantom dataset at all (the index)
    run(capsys, ["data", "phantom", "--out", world.index, "--n", "5", "--size", "32"], inputs=all_inputs,
        says=("non-empty folder", "made by `cxrlab data index`", "--force"))


def test_predict_out_json_would_write_its_sidecar_over_itself(world, tmp_path, capsys, all_inputs):
    run(capsys, ["predict", world.run, "--out", tmp_path / "p.json"], inputs=all_inputs,
        says=("writes a .csv file", "sidecar"))
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("target", ["predictions/test.csv", "predictions/val.csv", "split.csv"])
def test_predict_over_the_runs_own_artifacts(world, capsys, all_inputs, target):
    run(capsys, ["predict", world.run, "--out", world.run / target], inputs=all_inputs, says="is the input")


def test_predict_over_an_index_through_its_sidecar_kind(world, tmp_path, capsys, all_inputs):
    run(capsys, ["predict", world.run, "--out", world.index / "index.csv"], inputs=all_inputs,
        says=("index sidecar", "--force"))
    run(capsys, ["predict", world.run, "--out", world.split], inputs=all_inputs, says="split sidecar")


def test_output_through_a_link_to_an_input(world, tmp_path, capsys, all_inputs):
    link = tmp_path / "fresh.csv"
    os.symlink(world.test, link)
    run(capsys, ["calibrate", world.val, world.test, "--labels", world.index, "--out", link], inputs=all_inputs,
        says="is the input")
    hard = tmp_path / "hard.csv"
    os.link(world.val, hard)  # one file, two names
    run(capsys, ["calibrate", hard, world.test, "--labels", world.index, "--out", world.val], inputs=all_inputs,
        says="is the input")


def test_calibrate_and_ensemble_over_their_inputs(world, capsys, all_inputs):
    run(capsys, ["calibrate", world.val, world.test, "--labels", world.index, "--out", world.test],
        inputs=all_inputs, says="is the input")
    run(capsys, ["ensemble", world.run, world.run, "--out", world.val], inputs=all_inputs, says="is the input")
    run(capsys, ["ensemble", world.test, world.test, "--out", world.test], inputs=all_inputs, says="is the input")


@pytest.mark.parametrize("verb", ["evaluate", "compare"])
def test_folder_outputs_over_inputs(world, capsys, all_inputs, monkeypatch, verb):
    inputs = [world.run] if verb == "evaluate" else [world.run, world.run]
    run(capsys, [verb, *inputs, "--out", world.run, "--bootstrap", "0"], inputs=all_inputs, says="holds the input")
    run(capsys, [verb, *inputs, "--out", world.run / "predictions", "--bootstrap", "0"], inputs=all_inputs,
        says="holds the input")
    monkeypatch.chdir(world.root)  # `--out .` beside the data
    run(capsys, [verb, *inputs, "--out", ".", "--bootstrap", "0"], inputs=all_inputs, says="holds the input")


def test_folder_made_by_another_verb(world, tmp_path, capsys, all_inputs):
    run(capsys, ["data", "cache", world.index, "--out", world.index, "--size", "32"], inputs=all_inputs,
        says="holds the input")
    run(capsys, ["data", "index", world.data, "--format", "csv", "--out", world.data], inputs=all_inputs,
        says="holds the input")
    run(capsys, ["evaluate", world.test, "--labels", world.index, "--out", world.cache, "--bootstrap", "0"],
        inputs=all_inputs, says=("made by `cxrlab data cache`", "--force"))
    run(capsys, [*world.train_args(world.cache, "train.epochs=1")], inputs=all_inputs, says="holds the input")
    run(capsys, [*world.train_args(tmp_path / "r", "train.epochs=1"), ], inputs=all_inputs, expect=0)
    run(capsys, ["evaluate", world.test, "--labels", world.index, "--out", tmp_path / "r", "--bootstrap", "0"],
        inputs=all_inputs, says="made by `cxrlab train`")


def test_same_verb_may_rerun_and_force_writes_into_a_foreign_folder(world, tmp_path, capsys, all_inputs):
    out = tmp_path / "eval"
    argv = ["evaluate", world.test, "--labels", world.index, "--out", out, "--bootstrap", "0", "--no-report"]
    run(capsys, argv, inputs=all_inputs, expect=0)
    run(capsys, argv, inputs=all_inputs, expect=0)  # rerun into its own folder
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "mine.txt").write_text("keep me")
    run(capsys, [*argv[:5], foreign, *argv[6:]], inputs=all_inputs, says="not made by cxrlab")
    run(capsys, [*argv[:5], foreign, *argv[6:], "--force"], inputs=all_inputs, expect=0)
    assert (foreign / "mine.txt").read_text() == "keep me" and (foreign / "metrics.json").is_file()
    assert folder_maker(foreign) == "evaluate"  # a later evaluate may rerun there without --force


def test_audit_outputs_over_inputs(world, capsys, all_inputs):
    run(capsys, ["data", "audit", world.index, "--split", world.split, "--json", world.split.with_suffix(".json")],
        inputs=all_inputs, says=("--json", "is the input"))
    run(capsys, ["data", "audit", world.index, "--report", world.index / "index.csv"], inputs=all_inputs,
        says=("--report", ".md"))


def test_preview_needs_a_png(world, capsys, all_inputs):
    run(capsys, ["data", "preview", "--index", world.index, "--out", world.index / "index.csv"], inputs=all_inputs,
        says="writes a .png file")


OVER_THE_RUN = [
    ["pseudo", "{run}", "--pool", "{data}/images", "--out", "{run}"],
    ["uncertainty", "{run}", "--out", "{run}/predictions/test.csv", "--samples", "2"],
    ["selective", "--val", "{val}", "--test", "{test}", "--labels", "{idx}", "--out", "{run}"],
    ["explain", "{run}", "--images", "{data}/images", "--out", "{run}/predictions"],
    ["explain", "{run}", "--images", "{data}/images", "--out", "{run}/checkpoints"],
    ["cv", "--config", "{run}/config.yaml", "--out", "{idx}", "--folds", "2"],
    ["export", "{run}", "--out", "{run}/checkpoints/best.onnx"],
    ["data", "index", "{data}", "--format", "csv", "--out", "{run}"],
    ["train", "--config", "{run}/config.yaml", "--out", "{data}"],
]


@pytest.mark.parametrize("argv", OVER_THE_RUN, ids=[" ".join(a[:2]) for a in OVER_THE_RUN])
def test_verbs_never_write_into_a_run_or_dataset(world, capsys, all_inputs, argv):
    names = {"run": world.run, "idx": world.index, "val": world.val, "test": world.test, "data": world.data}
    err = run(capsys, [a.format(**names) for a in argv], inputs=all_inputs)
    assert "--out" in err


def test_a_failed_verb_leaves_its_folder_rerunnable(world, tmp_path, capsys, all_inputs):
    # the first try fails after creating the folder; the same verb may write there again, another may not
    out = tmp_path / "e"
    bad = tmp_path / "bad.csv"
    bad.write_text("image_id,Mass\nnot_in_labels.png,0.5\n")
    run(capsys, ["evaluate", bad, "--labels", world.index, "--out", out, "--bootstrap", "0"], inputs=all_inputs)
    run(capsys, ["evaluate", world.test, "--labels", world.index, "--out", out, "--bootstrap", "0", "--no-report"],
        inputs=all_inputs, expect=0)


def test_documented_reruns_still_work(world, tmp_path, capsys, all_inputs):
    # `data index` suggests `data split IDX/index.csv --out IDX/split.csv`: a second split there replaces the first
    import shutil

    idx = tmp_path / "idx"
    shutil.copytree(world.index, idx)
    for seed in ("0", "1"):
        run(capsys, ["data", "split", idx, "--out", idx / "split.csv", "--seed", seed], inputs=all_inputs, expect=0)
    run(capsys, ["data", "split", idx / "index.csv", "--out", idx / "split.csv"], inputs=all_inputs, expect=0)
    # explain's default --out is RUN/explain; evaluate may write beside the run's files
    runc = world.copy_run(tmp_path / "run")
    run(capsys, ["evaluate", runc, "--out", runc / "evaluation", "--bootstrap", "0", "--no-report"],
        inputs=all_inputs, expect=0)
    run(capsys, ["evaluate", runc, "--out", runc / "evaluation", "--bootstrap", "0", "--no-report"],
        inputs=all_inputs, expect=0)


def test_data_report_over_its_inputs(world, tmp_path, capsys, all_inputs):
    run(capsys, ["data", "report", world.index, "--out", world.index], inputs=all_inputs, says="holds the input")
    run(capsys, ["data", "report", world.index, "--out", world.run], inputs=all_inputs, says="made by `cxrlab train`")


def test_split_over_the_labels_an_index_was_built_from(world, tmp_path, capsys, all_inputs):
    # the world's index (built before index.json recorded source_files): the dataset files under its root
    run(capsys, ["data", "split", world.index, "--out", world.data / "labels.csv"], inputs=all_inputs,
        says=("--out", "labels.csv", "a file the input index", "was built from"))
    # an index that records its sources: a labels file of any name, anywhere
    ds = tmp_path / "ds"
    shutil.copytree(world.data / "images", ds / "images")
    shutil.copyfile(world.data / "labels.csv", tmp_path / "my_labels.csv")
    run(capsys, ["data", "index", ds, "--format", "csv", "--labels", tmp_path / "my_labels.csv", "--out",
                 tmp_path / "idx"], inputs=all_inputs, expect=0)
    assert json.loads((tmp_path / "idx" / "index.json").read_text())["source_files"] == [
        str((tmp_path / "my_labels.csv").resolve())]
    run(capsys, ["data", "split", tmp_path / "idx", "--out", tmp_path / "my_labels.csv"],
        inputs=[*all_inputs, tmp_path / "my_labels.csv"], says=("--out", "my_labels.csv", "was built from"))
