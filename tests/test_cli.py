"""The CLI shell: one-line errors and warnings, help for every verb."""

from __future__ import annotations

import json
import warnings

import pytest

from cxrlab import cli
from cxrlab.errors import CxrlabError
from cxrlab.utils import read_json


def test_every_verb_has_help(capsys):
    for verb in (["data"], ["models"], ["train"], ["predict"], ["evaluate"], ["compare"], ["calibrate"],
                 ["explain"], ["ensemble"], ["uncertainty"], ["selective"], ["cv"], ["pseudo"], ["demo"],
                 ["data", "phantom"], ["data", "index"], ["data", "split"], ["data", "audit"],
                 ["data", "cache"], ["data", "preview"]):
        with pytest.raises(SystemExit) as exc:
            cli.main([*verb, "--help"])
        assert exc.value.code == 0
        assert "usage: cxrlab" in capsys.readouterr().out


def test_warnings_are_one_line(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    warnings.warn("something to know", UserWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert err.strip() == "warning: something to know"


def test_corrupt_json_is_a_one_line_error(tmp_path):
    bad = tmp_path / "index.json"
    bad.write_text("{bad")
    with pytest.raises(CxrlabError, match="index.json is not valid JSON"):
        read_json(bad)
    good = tmp_path / "ok.json"
    good.write_text(json.dumps({"a": 1}))
    assert read_json(good) == {"a": 1}
