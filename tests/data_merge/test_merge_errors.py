"""Bad input to the merged-data verbs ends in one ``error:`` line, exit 2, never a traceback."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlab.cli import main
from cxrlab.data.phantom import make_phantom_index
from cxrlab.data.sampling import build_sampler
from cxrlab.errors import CxrlabError


def _one_line_error(capsys, argv, says):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and says in err, err


def test_merge_inputs(sources, tmp_path, capsys):
    mc = make_phantom_index(tmp_path / "mc", n=8, task="multiclass", size=32)
    _one_line_error(capsys, ["data", "merge", str(sources["nih"]), str(mc.path.parent), "--out", str(tmp_path / "a")],
                    "multi-label")
    _one_line_error(capsys, ["data", "merge", str(sources["nih"]), str(tmp_path / "nope"), "--out",
                             str(tmp_path / "b")], "does not exist")
    _one_line_error(capsys, ["data", "merge", "bad name=" + str(sources["nih"]), str(sources["chexpert"]), "--out",
                             str(tmp_path / "c")], "does not exist")
    _one_line_error(capsys, ["data", "phantom-sources", "--out", str(tmp_path / "p"), "--n", "0"], "--n")


def test_merged_only_options_on_a_single_dataset(sources, tmp_path, capsys):
    _one_line_error(capsys, ["data", "split", str(sources["nih"]), "--out", str(tmp_path / "s.csv"),
                             "--hold-out-source", "nih"], "merged index")
    _one_line_error(capsys, ["study", "matrix", "studies/cross_dataset.yaml", "--out", str(tmp_path / "m"), "--set",
                             f"data.index={sources['nih']}", f"data.split={tmp_path / 's.csv'}"], "merged index")
    with pytest.raises(CxrlabError, match="source column"):
        build_sampler("none", "multilabel", np.zeros((4, 2)), source_weights="balanced")
