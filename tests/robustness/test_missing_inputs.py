"""Every verb that marks its --out folder first: a missing input is one error line naming it, and no output folder
is left behind (no folder holding only the marker, no parent folder made for it). The verbs that write a file
--out leave neither the file nor a folder for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import run


def _cases(w, gone: Path, out: Path) -> dict[str, list]:
    cfg = w.run / "config.yaml"
    return {
        "train": ["train", "--config", cfg, "--set", f"data.index={gone}", "--out", out],
        "cv": ["cv", "--config", cfg, "--set", f"data.index={gone}", "--out", out],
        "data index": ["data", "index", gone, "--format", "csv", "--out", out],
        "data report": ["data", "report", gone, "--out", out],
        "data cache": ["data", "cache", gone, "--out", out],
        "data merge": ["data", "merge", w.index, gone, "--out", out],
        "evaluate": ["evaluate", gone, "--labels", w.index, "--out", out],
        "compare": ["compare", w.test, gone, "--labels", w.index, "--out", out],
        "selective": ["selective", "--val", w.val, "--test", gone, "--labels", w.index, "--out", out],
        "explain": ["explain", w.run, "--images", gone, "--out", out],
        "pseudo": ["pseudo", w.run, "--pool", gone, "--out", out],
        "study run": ["study", "run", gone, "--out", out],
        "study matrix": ["study", "matrix", gone, "--out", out],
        "demo": ["demo", "--data", gone, "--out", out],
    }


VERBS = [
    "train", "cv", "data index", "data report", "data cache", "data merge", "evaluate", "compare", "selective",
    "explain", "pseudo", "study run", "study matrix", "demo"]


@pytest.mark.parametrize("verb", VERBS)
def test_a_missing_input_leaves_no_output_folder(world, tmp_path, capsys, verb):
    gone = tmp_path / "nowhere" / ("study.yaml" if verb.startswith("study") else "missing")
    out = tmp_path / "new" / "out"
    run(capsys, _cases(world, gone, out)[verb], inputs=[world.root], missing=gone)
    assert not (tmp_path / "new").exists(), sorted(p.name for p in (tmp_path / "new").rglob("*"))


def test_an_existing_empty_out_folder_is_left_empty(world, tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    gone = tmp_path / "missing.csv"
    run(capsys, ["evaluate", gone, "--labels", world.index, "--out", out], inputs=[world.root], missing=gone)
    assert out.is_dir() and not any(out.iterdir())


FILE_VERBS = ["predict", "calibrate", "ensemble", "uncertainty", "data split", "data audit", "data preview", "export"]


def _file_cases(w, gone: Path, out: Path) -> dict[str, list]:
    return {
        "predict": ["predict", w.run, "--images", gone, "--out", out / "p.csv"],
        "calibrate": ["calibrate", w.val, gone, "--labels", w.index, "--out", out / "p.csv"],
        "ensemble": ["ensemble", w.test, gone, "--out", out / "p.csv"],
        "uncertainty": ["uncertainty", gone, "--out", out / "p.csv"],
        "data split": ["data", "split", gone, "--out", out / "split.csv"],
        "data audit": ["data", "audit", gone, "--report", out / "audit.md"],
        "data preview": ["data", "preview", "--index", gone, "--out", out / "grid.png"],
        "export": ["export", gone, "--out", out / "model.onnx"],
    }


@pytest.mark.parametrize("verb", FILE_VERBS)
def test_a_file_verb_with_a_missing_input_writes_nothing(world, tmp_path, capsys, verb):
    gone = tmp_path / "nowhere" / "missing"
    out = tmp_path / "new" / "out"
    run(capsys, _file_cases(world, gone, out)[verb], inputs=[world.root], missing=gone)
    assert not (tmp_path / "new").exists(), sorted(p.name for p in (tmp_path / "new").rglob("*"))


def test_output_folder_keeps_what_a_failed_verb_wrote_and_removes_only_what_it_made(tmp_path):
    from cxrlab.errors import CxrlabError
    from cxrlab.outputs import MARKER, folder_maker, output_folder

    for name, write in [("bare", None), ("wrote", "part.json")]:
        out = tmp_path / name / "a" / "b"
        with pytest.raises(CxrlabError), output_folder(out, verb="evaluate"):
            (out / "sub").mkdir()  # an empty folder made before failing goes too
            if write:
                (out / write).write_text("{}")
            raise CxrlabError("bad input")
        if write:  # a file was written: the folder is the verb's output, marked so a rerun continues it
            assert (out / write).is_file() and folder_maker(out) == "evaluate"
        else:
            assert not (tmp_path / name).exists()
    mine = tmp_path / "mine"
    (mine / "keep").mkdir(parents=True)  # the user's empty folder inside an empty --out: not ours to delete
    with pytest.raises(CxrlabError), output_folder(mine / "keep", verb="evaluate"):
        raise CxrlabError("bad input")
    assert (mine / "keep").is_dir() and not (mine / "keep" / MARKER).exists()
