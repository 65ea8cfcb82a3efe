"""``cxrlab data phantom`` / ``cxrlab data index`` through cxrlab.cli.main: outputs and one-line errors."""

from __future__ import annotations

import pytest

from cxrlab.cli import main
from cxrlab.data.index import load_index

from .helpers import write_data_entry, write_png


def test_phantom_then_index(tmp_path, capsys):
    assert main(["data", "phantom", "--out", str(tmp_path / "ph"), "--n", "10", "--size", "48", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "next: cxrlab data index" in out and "--format csv" in out
    assert main(["data", "index", str(tmp_path / "ph"), "--format", "csv", "--out", str(tmp_path / "idx")]) == 0
    out = capsys.readouterr().out
    assert "indexed 10 images" in out and "validation report" in out and "boxes: boxes.csv" in out
    index = load_index(tmp_path / "idx")
    assert len(index) == 10 and index.meta["boxes_image_size"] == 48


@pytest.mark.parametrize("argv, message", [
    (["data", "index", "{tmp}/missing", "--format", "nih", "--out", "{tmp}/o"], "does not exist"),
    (["data", "index", "{tmp}", "--format", "nih", "--out", "{tmp}/o"], "no Data_Entry_2017"),
    (["data", "index", "{tmp}", "--format", "csv", "--out", "{tmp}/o"], "pass --labels"),
    (["data", "index", "{tmp}", "--format", "folder", "--out", "{tmp}/o", "--keep-split"], "no split folders"),
    (["data", "phantom", "--out", "{tmp}/p", "--n", "0"], "not a valid number of images (1 to"),
    (["data", "index", "{tmp}/nih", "--format", "nih", "--out", "{tmp}/o"], "no images found"),
    (["data", "index", "{tmp}", "--format", "csv", "--labels", "{tmp}/nope.csv", "--out", "{tmp}/o"], "not found"),
])
def test_bad_input_one_line_exit_2(tmp_path, capsys, argv, message):
    write_png(tmp_path / "cls" / "a.png")
    (tmp_path / "x.csv").write_text("file,label\na.png,x\n")
    (tmp_path / "y.csv").write_text("file,label\na.png,x\n")
    write_data_entry(tmp_path / "nih" / "Data_Entry_2017.csv", [("a.png", "Mass", 0, 1)])
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err and "Traceback" not in err


def test_unknown_format_is_a_usage_error(tmp_path, capsys):
    assert main(["data", "index", str(tmp_path), "--format", "xray", "--out", str(tmp_path / "o")]) == 2
    assert "invalid choice: 'xray'" in capsys.readouterr().err
