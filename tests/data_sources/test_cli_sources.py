"""`cxrlab data index --format <dataset>` from the command line: summary, policies, one-line errors."""

from __future__ import annotations

import json

import pytest

from cxrlab.cli import main

from .helpers import make_chexpert, make_vindr


def test_cli_chexpert(tmp_path, capsys):
    root = make_chexpert(tmp_path / "chex")
    out = tmp_path / "idx"
    assert main(["data", "index", str(root), "--format", "chexpert", "--uncertain", "zeros", "--blank", "unknown",
                 "--views", "AP,PA", "--out", str(out), "--no-hash"]) == 0
    text = capsys.readouterr().out
    assert "indexed 4 images of 4 patients" in text and "left out (LATERAL: 1)" in text
    meta = json.loads((out / "index.json").read_text())
    assert meta["format"] == "chexpert" and meta["policies"]["uncertain"] == "zeros"


@pytest.mark.parametrize("argv,message", [
    (["--format", "chexpert", "--uncertain", "maybe"], "error: --uncertain 'maybe' is not one of ignore, ones, zeros"),
    (["--format", "vindr"], "error: "),
    (["--format", "chexpert", "--terms", "all"], "error: --terms does not apply to --format chexpert"),
])
def test_cli_bad_input_is_one_line(tmp_path, capsys, argv, message):
    root = make_chexpert(tmp_path / "chex")
    assert main(["data", "index", str(root), *argv, "--out", str(tmp_path / "idx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message), err


def test_cli_wrong_dataset_names_columns(tmp_path, capsys):
    root = make_vindr(tmp_path / "v")
    (root / "train.csv").rename(root / "valid.csv")
    assert main(["data", "index", str(root), "--format", "chexpert", "--labels", "valid.csv", "--out",
                 str(tmp_path / "idx")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a CheXpert label file" in err and "found image_id, class_name" in err
