"""The one test-split guard, walked around the way a hostile reviewer did: renamed byte-identical copies of the test
images indexed as a new dataset and predicted, indexes without hashes, recorded paths that cannot be read, relative
paths in a run's config, and the run's own test split behind ensemble members."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from cxrlab.cli import main

from .helpers import run


@dataclass(frozen=True)
class Copies:
    root: Path
    val: Path  # predictions of the renamed copies (sidecar: the copies' index, the run)
    labels: Path  # a plain labels CSV holding the world's labels and the copies' (no hashes)
    unhashed_val: Path  # the same, predicted from an index built with --no-hash


def _copy_test_images(world, dest: Path) -> None:
    split = pd.read_csv(world.split)
    test = set(split.loc[split["split"] == "test", "image_id"])
    labels = pd.read_csv(world.data / "labels.csv")
    labels = labels[labels["filename"].isin(test)].copy()
    (dest / "images").mkdir(parents=True)
    for name in labels["filename"]:
        shutil.copyfile(world.data / "images" / name, dest / "images" / f"copy_{name}")
    labels["filename"] = "copy_" + labels["filename"]
    labels["patient_id"] = "Q" + labels["patient_id"].astype(str)
    labels.to_csv(dest / "labels.csv", index=False)


@pytest.fixture(scope="module")
def copies(world, tmp_path_factory) -> Copies:
    root = tmp_path_factory.mktemp("copies")
    _copy_test_images(world, root / "ds")
    for name, extra in (("index", []), ("index_nohash", ["--no-hash"])):
        assert main(["data", "index", str(root / "ds"), "--format", "csv", "--out", str(root / name), *extra]) == 0
        out = root / f"val_{name}.csv"
        assert main(["predict", str(world.run), "--index", str(root / name), "--out", str(out)]) == 0
    cols = ["image_id", "patient_id", *json.loads((world.index / "index.json").read_text())["classes"]]
    both = [pd.read_csv(world.index / "index.csv")[cols], pd.read_csv(root / "index" / "index.csv")[cols]]
    pd.concat(both).to_csv(root / "labels.csv", index=False)
    return Copies(root, root / "val_index.csv", root / "labels.csv", root / "val_index_nohash.csv")


def test_renamed_copies_indexed_and_predicted_are_refused_by_every_fitting_verb(world, copies, tmp_path, capsys,
                                                                                 all_inputs):
    inputs = [*all_inputs, copies.root]
    says = ("refusing to fit", "byte-identical", "copy_", "sha256")
    run(capsys, ["evaluate", world.test, "--labels", copies.labels, "--val-predictions", copies.val, "--out",
                 tmp_path / "e", "--bootstrap", "0"], inputs=inputs, says=says)
    run(capsys, ["calibrate", copies.val, world.test, "--labels", copies.labels, "--out", tmp_path / "c.csv"],
        inputs=inputs, says=says)
    run(capsys, ["selective", "--val", copies.val, "--test", world.test, "--labels", copies.labels, "--out",
                 tmp_path / "s"], inputs=inputs, says=says)
    run(capsys, ["ensemble", world.test, world.test, "--method", "weighted", "--val", copies.val, copies.val,
                 "--labels", copies.labels, "--out", tmp_path / "ens.csv"], inputs=inputs, says=says)
    assert not (tmp_path / "ens.csv").exists() and not (tmp_path / "c.csv").exists()


def test_an_index_without_hashes_is_refused_unless_allow_unverified(world, copies, tmp_path, capsys, all_inputs):
    inputs = [*all_inputs, copies.root]
    argv = ["evaluate", world.test, "--labels", copies.labels, "--val-predictions", copies.unhashed_val, "--out",
            tmp_path / "e", "--bootstrap", "0", "--no-report"]
    run(capsys, argv, inputs=inputs, says=("cannot verify", "index_nohash", "--no-hash", "--allow-unverified"))
    err = run(capsys, [*argv, "--allow-unverified"], inputs=inputs, expect=0)
    assert "WARNING" in err
    notes = json.loads((tmp_path / "e" / "metrics.json").read_text())["notes"]
    assert any(n.startswith("UNVERIFIED") and "--no-hash" in n for n in notes)
    run(capsys, ["calibrate", copies.unhashed_val, world.test, "--labels", copies.labels, "--out",
                 tmp_path / "c.csv"], inputs=inputs, says=("cannot verify", "--allow-unverified"))
    run(capsys, ["calibrate", copies.unhashed_val, world.test, "--labels", copies.labels, "--out",
                 tmp_path / "c.csv", "--allow-unverified"], inputs=inputs, expect=0)
    assert json.loads((tmp_path / "c.json").read_text())["unverified"]["unverified"] is True


def test_an_unreadable_recorded_index_is_said_not_skipped(world, copies, tmp_path, capsys, all_inputs):
    val = tmp_path / "val.csv"
    shutil.copyfile(copies.val, val)
    meta = json.loads(copies.val.with_suffix(".json").read_text())
    meta["index"] = "gone/index.csv"  # relative: read beside the sidecar, never in the current directory
    val.with_suffix(".json").write_text(json.dumps(meta))
    run(capsys, ["selective", "--val", val, "--test", world.test, "--labels", copies.labels, "--out",
                 tmp_path / "s"], inputs=[*all_inputs, copies.root, val],
        says=("cannot verify", str(tmp_path / "gone" / "index.csv"), "--allow-unverified"))


def test_relative_paths_in_a_run_config_are_read_relative_to_the_run(world, tmp_path, capsys, all_inputs,
                                                                     monkeypatch):
    runc = world.copy_run(tmp_path / "deep" / "run")
    config = (runc / "config.yaml").read_text()
    rel = Path("..", "..", "..", *world.index.relative_to(world.root.parent).parts)  # from runc to the world index
    assert (runc / rel).resolve() == world.index.resolve()
    (runc / "config.yaml").write_text(config.replace(str(world.index), str(rel)))
    monkeypatch.chdir(tmp_path)  # the current directory must not matter
    for name in ("test", "val"):  # the sidecars name the copy
        meta = json.loads((runc / "predictions" / f"{name}.json").read_text())
        meta["run_dir"] = str(runc)
        (runc / "predictions" / f"{name}.json").write_text(json.dumps(meta))
    run(capsys, ["evaluate", runc, "--out", tmp_path / "e", "--bootstrap", "0", "--no-report"],
        inputs=[*all_inputs, runc], expect=0)
    (runc / "config.yaml").write_text(config.replace(str(world.index), "nowhere/index"))
    run(capsys, ["evaluate", runc, "--labels", world.index, "--out", tmp_path / "e2", "--bootstrap", "0"],
        inputs=[*all_inputs, runc], says=("cannot verify", str(runc / "nowhere" / "index")))


def test_ensemble_checks_the_runs_own_test_split(world, tmp_path, capsys, all_inputs):
    test = pd.read_csv(world.test)
    half = len(test) // 2
    members, val = tmp_path / "members.csv", tmp_path / "val.csv"
    test.iloc[:half].to_csv(members, index=False)
    members.with_suffix(".json").write_text(world.test.with_suffix(".json").read_text())  # names the run
    test.iloc[half:].to_csv(val, index=False)  # other test images of the run, no sidecar: not in the members
    run(capsys, ["ensemble", members, members, "--method", "weighted", "--val", val, val, "--labels", world.index,
                 "--out", tmp_path / "ens.csv"], inputs=[*all_inputs, members, val],
        says=("refusing to fit ensemble weights", "test split of run"))


def test_internal_must_be_another_file_and_internal_labels_needs_internal(world, tmp_path, capsys, all_inputs):
    copy = tmp_path / "copy.csv"
    shutil.copyfile(world.test, copy)
    base = ["evaluate", world.test, "--labels", world.index, "--out", tmp_path / "e", "--bootstrap", "0"]
    run(capsys, [*base, "--internal", copy], inputs=[*all_inputs, copy], says=("--internal", "same content"))
    run(capsys, [*base, "--internal", world.run], inputs=all_inputs, says=("--internal", "same content"))
    run(capsys, [*base, "--internal-labels", world.index], inputs=all_inputs, says=("--internal-labels", "--internal"))


def test_compare_refuses_one_file_twice_by_content(world, tmp_path, capsys, all_inputs):
    copy = tmp_path / "copy.csv"
    shutil.copyfile(world.test, copy)
    run(capsys, ["compare", world.test, copy, "--labels", world.index, "--out", tmp_path / "c", "--bootstrap", "0"],
        inputs=[*all_inputs, copy], says=("compare", "copy.csv", "same content"))
    assert not (tmp_path / "c" / "comparison.json").exists()


def test_pseudo_refuses_a_run_index_without_hashes_unless_allow_unverified(world, tmp_path, capsys):
    import hashlib

    from data_index.helpers import write_png

    root = tmp_path / "w"
    shutil.copytree(world.root, root)
    for f in root.rglob("*"):  # the copy's recorded paths name the copy
        if f.suffix in (".json", ".yaml") and f.parent.name != "cache" and str(world.root) in f.read_text():
            f.write_text(f.read_text().replace(str(world.root), str(root)))
    csv = root / "ph" / "index" / "index.csv"
    pd.read_csv(csv, dtype=str).drop(columns="sha256").to_csv(csv, index=False, lineterminator="\n")
    meta = json.loads(csv.with_suffix(".json").read_text())
    meta["index_sha256"] = hashlib.sha256(csv.read_bytes()).hexdigest()  # as `data index --no-hash` writes it
    csv.with_suffix(".json").write_text(json.dumps(meta))
    write_png(tmp_path / "pool" / "new.png", seed=99, size=32)
    argv = ["pseudo", root / "run", "--pool", tmp_path / "pool", "--out", tmp_path / "ps"]
    run(capsys, argv, inputs=[root, tmp_path / "pool"], says=("cannot verify", "--no-hash", "--allow-unverified"))
    run(capsys, [*argv, "--allow-unverified"], inputs=[root, tmp_path / "pool"], expect=0)
    assert json.loads((tmp_path / "ps" / "pseudo.json").read_text())["unverified"]["unverified"] is True
