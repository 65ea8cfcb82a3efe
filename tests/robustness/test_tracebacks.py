"""Tracebacks: bad numbers, unusable --out paths, missing files and JSON of the wrong shape end in one
``error: ...`` line with exit status 2, for every verb."""

from __future__ import annotations

import errno
import os

import pytest

from cxrlab.errors import os_error_message

from .helpers import run


def _fill(world, tmp_path, argv):
    names = {"run": world.run, "idx": world.index, "val": world.val, "test": world.test, "tmp": tmp_path,
             "data": world.data, "split": world.split, "cache": world.cache, "cfg": world.run / "config.yaml"}
    return [a.format(**names) for a in argv]


BAD_NUMBERS = [
    (["predict", "{run}", "--out", "{tmp}/p.csv", "--batch-size", "0"], "--batch-size"),
    (["predict", "{run}", "--out", "{tmp}/p.csv", "--device", "bogus"], "--device"),
    (["predict", "{run}", "--out", "{tmp}/p.csv", "--device", "cuda:7"], "--device"),
    (["data", "split", "{idx}", "--out", "{tmp}/s.csv", "--seed", "-1"], "--seed"),
    (["data", "split", "{idx}", "--out", "{tmp}/s.csv", "--val", "1.5"], "--val"),
    (["data", "split", "{idx}", "--out", "{tmp}/s.csv", "--test", "x"], "--test"),
    (["data", "split", "{idx}", "--out", "{tmp}/s.csv", "--folds", "0"], "--folds"),
    (["pseudo", "{run}", "--pool", "{data}/images", "--out", "{tmp}/ps", "--thresholds", "abc"], "--thresholds"),
    (["pseudo", "{run}", "--pool", "{data}/images", "--out", "{tmp}/ps", "--thresholds", "0.9,,0.8"], "--thresholds"),
    (["pseudo", "{run}", "--pool", "{data}/images", "--out", "{tmp}/ps", "--thresholds", "1.5"], "--thresholds"),
    (["pseudo", "{run}", "--pool", "{data}/images", "--out", "{tmp}/ps", "--weight", "2"], "--weight"),
    (["pseudo", "{run}", "--pool", "{data}/images", "--out", "{tmp}/ps", "--quota", "0"], "--quota"),
    (["explain", "{run}", "--images", "{data}/images", "--out", "{tmp}/x", "--max-images", "0"], "--max-images"),
    (["explain", "{run}", "--images", "{data}/images", "--out", "{tmp}/x", "--top-k", "-2"], "--top-k"),
    (["explain", "{run}", "--images", "{data}/images", "--out", "{tmp}/x", "--threshold", "nan"], "--threshold"),
    (["evaluate", "{test}", "--labels", "{idx}", "--out", "{tmp}/e", "--bootstrap", "-1"], "--bootstrap"),
    (["evaluate", "{test}", "--labels", "{idx}", "--out", "{tmp}/e", "--seed", "1e3"], "--seed"),
    (["uncertainty", "{run}", "--out", "{tmp}/u.csv", "--samples", "0"], "--samples"),
    (["selective", "--val", "{val}", "--test", "{test}", "--labels", "{idx}", "--out", "{tmp}/s", "--coverage", "0"],
     "--coverage"),
    (["selective", "--val", "{val}", "--test", "{test}", "--labels", "{idx}", "--out", "{tmp}/s", "--coverage",
      "1.2"], "--coverage"),
    (["data", "phantom", "--out", "{tmp}/ph", "--n", "0"], "--n"),
    (["data", "phantom", "--out", "{tmp}/ph", "--size", "-32"], "--size"),
    (["data", "phantom", "--out", "{tmp}/ph", "--prevalence", "0"], "--prevalence"),
    (["data", "cache", "{idx}", "--out", "{tmp}/c", "--workers", "0"], "--workers"),
    (["data", "preview", "--index", "{idx}", "--out", "{tmp}/p.png", "--n", "0"], "--n"),
    (["cv", "--config", "{cfg}", "--out", "{tmp}/cv", "--folds", "0"], "--folds"),
    (["demo", "--out", "{tmp}/d", "--epochs", "0"], "--epochs"),
    (["export", "{run}", "--out", "{tmp}/m.onnx", "--opset", "0"], "--opset"),
    (["serve", "{run}", "--port", "70000"], "--port"),
    (["serve", "{run}", "--max-upload-mb", "-1"], "--max-upload-mb"),
    (["data", "preview", "--index", "{idx}", "--out", "{tmp}/p.png", "--image-size", "abc"], "--image-size"),
    (["predict", "{run}", "--out", "{tmp}/p.csv", "--batch-size", "1.5"], "--batch-size"),
]


@pytest.mark.parametrize("argv, option", BAD_NUMBERS, ids=[" ".join(a[:2]) + " " + o for a, o in BAD_NUMBERS])
def test_bad_numbers_are_usage_errors(world, tmp_path, capsys, all_inputs, argv, option):
    run(capsys, _fill(world, tmp_path, argv), inputs=all_inputs, says=(option,))


OUT_UNDER_A_FILE = [
    ["predict", "{run}", "--out", "{tmp}/file/p.csv"],
    ["evaluate", "{test}", "--labels", "{idx}", "--out", "{tmp}/file/e", "--bootstrap", "0"],
    ["compare", "{test}", "{test}", "--labels", "{idx}", "--out", "{tmp}/file/c", "--bootstrap", "0"],
    ["calibrate", "{val}", "{test}", "--labels", "{idx}", "--out", "{tmp}/file/c.csv"],
    ["ensemble", "{test}", "{test}", "--out", "{tmp}/file/e.csv"],
    ["data", "split", "{idx}", "--out", "{tmp}/file/s.csv"],
    ["data", "cache", "{idx}", "--out", "{tmp}/file/c", "--size", "32", "--workers", "1"],
    ["data", "index", "{data}", "--format", "csv", "--out", "{tmp}/file/i"],
    ["data", "phantom", "--out", "{tmp}/file/ph", "--n", "2", "--size", "32", "--workers", "1"],
    ["data", "audit", "{idx}", "--json", "{tmp}/file/a.json"],
    ["data", "preview", "--index", "{idx}", "--out", "{tmp}/file/p.png", "--n", "2", "--image-size", "32"],
    ["selective", "--val", "{val}", "--test", "{test}", "--labels", "{idx}", "--out", "{tmp}/file/s"],
    ["uncertainty", "{run}", "--out", "{tmp}/file/u.csv", "--samples", "2"],
    ["train", "--config", "{cfg}", "--out", "{tmp}/file/r", "--set", "train.epochs=1"],
]


@pytest.mark.parametrize("argv", OUT_UNDER_A_FILE, ids=[" ".join(a[:2]) for a in OUT_UNDER_A_FILE])
def test_out_under_a_file_is_one_line(world, tmp_path, capsys, all_inputs, argv):
    (tmp_path / "file").write_text("I am a file, not a folder")
    run(capsys, _fill(world, tmp_path, argv), inputs=[*all_inputs, tmp_path / "file"], says=("file",))


FOLDER_AS_FILE = [
    ["predict", "{run}", "--out", "{tmp}/dir.csv"],
    ["calibrate", "{val}", "{test}", "--labels", "{idx}", "--out", "{tmp}/dir.csv"],
    ["data", "split", "{idx}", "--out", "{tmp}/dir.csv"],
    ["ensemble", "{test}", "{test}", "--out", "{tmp}/dir.csv"],
]


@pytest.mark.parametrize("argv", FOLDER_AS_FILE, ids=[a[0] if a[0] != "data" else "data split" for a in FOLDER_AS_FILE])
def test_a_folder_where_a_file_goes(world, tmp_path, capsys, all_inputs, argv):
    (tmp_path / "dir.csv").mkdir()
    run(capsys, _fill(world, tmp_path, argv), inputs=all_inputs, says=("dir.csv", "folder"))


MISSING = [
    ["predict", "{tmp}/no_run", "--out", "{tmp}/p.csv"],
    ["evaluate", "{tmp}/nothing.csv", "--labels", "{idx}", "--out", "{tmp}/e"],
    ["evaluate", "{test}", "--labels", "{tmp}/no_labels.csv", "--out", "{tmp}/e"],
    ["calibrate", "{tmp}/v.csv", "{test}", "--labels", "{idx}", "--out", "{tmp}/c.csv"],
    ["data", "split", "{tmp}/no_index", "--out", "{tmp}/s.csv"],
    ["data", "cache", "{tmp}/no_index", "--out", "{tmp}/c"],
    ["train", "--config", "{tmp}/no.yaml", "--out", "{tmp}/r"],
    ["explain", "{tmp}/no_run", "--images", "{data}/images", "--out", "{tmp}/x"],
    ["pseudo", "{run}", "--pool", "{tmp}/no_pool", "--out", "{tmp}/ps"],
    ["ensemble", "{tmp}/a.csv", "{test}", "--out", "{tmp}/e.csv"],
    ["selective", "--val", "{tmp}/v.csv", "--test", "{test}", "--labels", "{idx}", "--out", "{tmp}/s"],
    ["uncertainty", "{tmp}/no_run", "--out", "{tmp}/u.csv"],
]


@pytest.mark.parametrize("argv", MISSING, ids=[" ".join(a[:2]).replace("{tmp}/", "") for a in MISSING])
def test_missing_inputs(world, tmp_path, capsys, all_inputs, argv):
    filled = _fill(world, tmp_path, argv)
    gone = next(a for k, a in enumerate(filled) if str(a).startswith(str(tmp_path)) and filled[k - 1] != "--out")
    run(capsys, filled, inputs=all_inputs, missing=gone)


def test_json_artifacts_of_the_wrong_shape(world, tmp_path, capsys, all_inputs):
    import shutil

    idx = tmp_path / "idx"
    shutil.copytree(world.index, idx)
    (idx / "index.json").write_text('["not", "an", "index"]')
    run(capsys, ["data", "split", idx, "--out", tmp_path / "s.csv"], inputs=all_inputs, says="index.json")
    cache = tmp_path / "cache"
    shutil.copytree(world.cache, cache)
    (cache / "meta.json").write_text("[]")
    run(capsys, world.train_args(tmp_path / "r", "train.epochs=1", f"data.cache={cache}"), inputs=all_inputs,
        says="meta.json")
    (cache / "meta.json").write_text('{"complete": true}')
    run(capsys, world.train_args(tmp_path / "r2", "train.epochs=1", f"data.cache={cache}"), inputs=all_inputs,
        says="meta.json")


@pytest.mark.parametrize("name, text", [
    ("manifest.json", "[]"), ("config.yaml", "data: [1"), ("config.yaml", "- 1"),
    ("predictions/val.json", "[]"), ("predictions/test.json", '{"classes": 3}'),
])
def test_run_files_of_the_wrong_shape(world, tmp_path, capsys, all_inputs, name, text):
    runc = world.copy_run(tmp_path / "run")
    (runc / name).write_text(text)
    run(capsys, ["evaluate", runc, "--out", tmp_path / "e", "--bootstrap", "0"], inputs=[*all_inputs, runc],
        says=name.split("/")[-1])


def test_a_damaged_run_split_stops_the_guard(world, tmp_path):
    from cxrlab.errors import CxrlabError
    from cxrlab.guards import Reach

    runc = world.copy_run(tmp_path / "run")
    (runc / "split.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(CxrlabError, match="split.csv"):
        Reach().add_run(runc)


def test_a_damaged_localization_json_is_left_out_with_a_warning(world, tmp_path, capsys, all_inputs):
    runc = world.copy_run(tmp_path / "run")
    (runc / "explain").mkdir()
    (runc / "explain" / "localization.json").write_text("[1]")
    err = run(capsys, ["evaluate", runc, "--out", tmp_path / "e", "--bootstrap", "0"], inputs=[*all_inputs, runc],
              expect=0)
    assert "warning:" in err and "localization.json" in err


FOLDER_VERBS = [
    ["evaluate", "{test}", "--labels", "{idx}", "--out", "{tmp}/afile", "--bootstrap", "0"],
    ["compare", "{test}", "{test}", "--labels", "{idx}", "--out", "{tmp}/afile", "--bootstrap", "0"],
    ["selective", "--val", "{val}", "--test", "{test}", "--labels", "{idx}", "--out", "{tmp}/afile"],
    ["data", "cache", "{idx}", "--out", "{tmp}/afile"],
    ["data", "index", "{data}", "--format", "csv", "--out", "{tmp}/afile"],
    ["data", "phantom", "--out", "{tmp}/afile"],
    ["train", "--config", "{cfg}", "--out", "{tmp}/afile"],
    ["explain", "{run}", "--images", "{data}/images", "--out", "{tmp}/afile"],
    ["pseudo", "{run}", "--pool", "{data}/images", "--out", "{tmp}/afile"],
    ["cv", "--config", "{cfg}", "--out", "{tmp}/afile", "--folds", "2"],
    ["select", "--candidate", "a={cfg}", "--candidate", "b={cfg},train.epochs=2", "--out", "{tmp}/afile",
     "--folds", "2"],
    ["demo", "--out", "{tmp}/afile"],
]


@pytest.mark.parametrize("argv", FOLDER_VERBS, ids=[" ".join(a[:2]) for a in FOLDER_VERBS])
def test_a_file_where_a_folder_goes(world, tmp_path, capsys, all_inputs, argv):
    (tmp_path / "afile").write_text("not a folder")
    run(capsys, _fill(world, tmp_path, argv), inputs=[*all_inputs, tmp_path / "afile"], says=("afile", "is a file"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out(world, tmp_path, capsys, all_inputs):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        run(capsys, ["predict", world.run, "--out", ro / "p.csv"], inputs=all_inputs, says=("ro", "ermission"))
        run(capsys, ["evaluate", world.test, "--labels", world.index, "--out", ro / "e", "--bootstrap", "0"],
            inputs=all_inputs, says="ro")
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("code, says", [(errno.ENOSPC, "disk is full"), (errno.EACCES, "permissions"),
                                         (errno.EROFS, "read-only")])
def test_os_errors_while_writing_are_one_line(world, tmp_path, capsys, all_inputs, monkeypatch, code, says):
    import cxrlab.utils

    def fail(path, data):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(cxrlab.utils, "atomic_write_bytes", fail)
    run(capsys, ["data", "split", world.index, "--out", tmp_path / "s.csv"], inputs=all_inputs,
        says=("s.csv", says))
    run(capsys, ["calibrate", world.val, world.test, "--labels", world.index, "--out", tmp_path / "c.csv"],
        inputs=all_inputs, says=("c.csv", says))


def test_os_error_wording():
    msg = os_error_message(PermissionError(errno.EACCES, "Permission denied", "/x/y"))
    assert msg.startswith("/x/y: Permission denied") and "permissions" in msg
    assert "\n" not in os_error_message(OSError(errno.EIO, "I/O\nerror"))
