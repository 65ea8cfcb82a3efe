"""predict --engine onnx: the same images, preprocessing and probabilities as --engine torch (to 1e-4)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cxrlab.cli import main
from cxrlab.predictions import read_predictions

from .conftest import make_run


def _same(a, b) -> None:
    pa, pb = read_predictions(a), read_predictions(b)
    assert pa.image_ids == pb.image_ids and pa.classes == pb.classes
    np.testing.assert_allclose(pa.probs, pb.probs, atol=1e-4, rtol=0)


def test_run_split_onnx_equals_torch(tiny_run, tmp_path):
    run = str(tiny_run[0])
    assert main(["predict", run, "--split", "test", "--out", str(tmp_path / "t.csv")]) == 0
    assert main(["predict", run, "--split", "test", "--engine", "onnx", "--out", str(tmp_path / "o.csv")]) == 0
    _same(tmp_path / "t.csv", tmp_path / "o.csv")
    assert json.loads((tmp_path / "o.json").read_text())["engine"] == "onnx"


def test_exported_file_on_images_equals_torch(tiny_run, exported, tmp_path):
    images = tiny_run[1].parent / "images"
    assert main(["predict", str(tiny_run[0]), "--images", str(images), "--out", str(tmp_path / "t.csv")]) == 0
    assert main(["predict", str(exported[0]), "--images", str(images), "--out", str(tmp_path / "o.csv")]) == 0
    _same(tmp_path / "t.csv", tmp_path / "o.csv")


def test_foreign_onnx_is_a_one_line_error(tmp_path, capsys):
    import torch

    torch.onnx.export(torch.nn.Linear(2, 2), (torch.zeros(1, 2),), str(tmp_path / "x.onnx"), dynamo=False)
    assert main(["predict", str(tmp_path / "x.onnx"), "--images", str(tmp_path), "--out",
                 str(tmp_path / "p.csv")]) == 2
    assert "no cxrlab contract" in capsys.readouterr().err


@pytest.fixture(scope="module")
def multiclass_run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("mc_run"), task="multiclass")


def test_multiclass_run_exports_and_predicts(multiclass_run, tmp_path):
    from cxrlab.deploy.export import export_run

    contract = export_run(multiclass_run[0], tmp_path / "mc.onnx")
    assert contract["parity"]["passed"] and contract["run"]["task"] == "multiclass"
    assert isinstance(contract["operating"]["temperature"], float) and contract["operating"]["thresholds"] is None
    assert main(["predict", str(multiclass_run[0]), "--split", "val", "--out", str(tmp_path / "t.csv")]) == 0
    assert main(["predict", str(tmp_path / "mc.onnx"), "--split", "val", "--out", str(tmp_path / "o.csv")]) == 0
    _same(tmp_path / "t.csv", tmp_path / "o.csv")
    np.testing.assert_allclose(read_predictions(tmp_path / "o.csv").probs.sum(axis=1), 1.0, atol=1e-5)


def test_multiclass_serve_shows_a_distribution(multiclass_run):
    pytest.importorskip("fastapi")
    from cxrlab.serve.model import ServedModel

    from .images import gray_of, phantom_png

    served = ServedModel(multiclass_run[0])
    gray = gray_of(phantom_png(multiclass_run[1], 0))
    rows = served.predict([gray], [gray])[0]["findings"]
    assert abs(sum(r["probability"] for r in rows) - 1.0) < 1e-5 and all(r["threshold"] is None for r in rows)
