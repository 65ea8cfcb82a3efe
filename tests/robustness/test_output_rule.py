"""One rule for new files inside input folders (the output policy's rule 5): an ``--out`` may be a new path inside
an input folder, and that output (its file, its sidecars, its folder) is all a verb adds there. The policy allows
exactly what the hostile-input helper accepts: both use ``cxrlab.outputs.is_output_path``."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrlab.outputs import is_output_path

from . import helpers
from .helpers import run


@pytest.mark.parametrize("path, out, ok", [
    ("r/p.csv", "r/p.csv", True),
    ("r/p.json", "r/p.csv", True),  # the predictions sidecar
    ("r/model.ood.safetensors", "r/model.onnx", True),  # export's files beside its model
    ("r/eval/report/report.html", "r/eval", True),  # inside an --out folder
    ("r/other.json", "r/p.csv", False),
    ("r/evaluation.json", "r/eval", False),  # a sibling that merely shares the folder name's start
    ("r/checkpoints/p.json", "r/p.csv", False),
])
def test_what_counts_as_a_verbs_output(path, out, ok):
    assert is_output_path(Path(path), Path(out)) is ok


@pytest.mark.parametrize("verb", ["evaluate", "export"])
def test_a_new_out_inside_an_input_run_is_all_that_appears_there(world, tmp_path, capsys, verb):
    run_dir = world.copy_run(tmp_path / "run")
    argv = (["evaluate", run_dir, "--out", run_dir / "eval", "--bootstrap", "0", "--no-report"] if verb == "evaluate"
            else ["export", run_dir, "--out", run_dir / "model.onnx", "--parity-images", "2"])
    run(capsys, argv, inputs=[run_dir, world.root], expect=0)
    assert (run_dir / ("eval/metrics.json" if verb == "evaluate" else "model.onnx")).is_file()


def test_the_helper_fails_a_stray_file_in_an_input_folder(world, tmp_path, capsys, monkeypatch):
    run_dir = world.copy_run(tmp_path / "run")

    def verb_that_strays(argv):  # writes its --out and one file it was not asked for
        Path(argv[-1]).write_text("ok")
        (run_dir / "stray.txt").write_text("!")
        return 0

    monkeypatch.setattr(helpers, "main", verb_that_strays)
    with pytest.raises(AssertionError, match="stray.txt"):
        run(capsys, ["predict", run_dir, "--out", run_dir / "p.csv"], inputs=[run_dir], expect=0)
