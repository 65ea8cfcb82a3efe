"""cxrlab export --quantize int8: calibration on validation only, the accuracy check and its limits, and the INT8
model used by predict --engine onnx and serve."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cxrlab.cli import main
from cxrlab.deploy.onnx_engine import OnnxEngine
from cxrlab.deploy.quantize import AccuracyCheck, Int8Options, accuracy_check
from cxrlab.errors import CxrlabError
from cxrlab.predictions import read_predictions


@pytest.fixture(scope="module")
def int8_model(tiny_run, tmp_path_factory):
    """(onnx_path, contract) of ``tiny_run`` exported as INT8 through the CLI."""
    out = tmp_path_factory.mktemp("int8") / "m8.onnx"
    assert main(["export", str(tiny_run[0]), "--out", str(out), "--quantize", "int8"]) == 0
    return out, json.loads(out.with_suffix(".json").read_text())


def _val_ids(run) -> list[str]:
    split = pd.read_csv(run / "split.csv", dtype=str)
    return split.loc[split["split"] == "val", "image_id"].tolist()


def test_int8_contract_records_precision_calibration_and_check(tiny_run, int8_model):
    out, c = int8_model
    assert c["precision"] == "int8" and c["parity"]["passed"]  # parity: the FP32 graph it was made from
    ids = _val_ids(tiny_run[0])
    assert c["calibration"]["split"] == "val" and c["calibration"]["count"] == len(ids)
    assert c["calibration"]["ids_sha256"] == hashlib.sha256("\n".join(ids).encode()).hexdigest()
    a = c["accuracy"]
    assert a["passed"] and a["images"] == len(ids) and a["metric"] == "macro_auroc"
    assert a["max_auroc_drop"] == 0.01 and a["min_agreement"] == 0.95 and a["agreement"] >= 0.95
    assert c["ood"] is not None and out.with_suffix(".ood.safetensors").exists()
    assert not list(out.parent.glob("*tmp*"))  # the intermediate FP32 graph is gone
    assert OnnxEngine(out).metadata["precision"] == "int8"


def test_int8_graph_is_quantized_with_the_fp32_interface(int8_model, exported):
    import onnx

    q, f = onnx.load(str(int8_model[0])), onnx.load(str(exported[0]))
    ops = {n.op_type for n in q.graph.node}
    assert {"QLinearConv", "QuantizeLinear"} <= ops and "Conv" not in ops
    shapes = lambda g: [(v.name, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])  # noqa: E731
                        for v in list(g.input) + list(g.output)]
    assert shapes(q.graph) == shapes(f.graph)  # same names and shapes: engines and contract checks read both alike


def test_qdq_form(tiny_run, tmp_path):
    import onnx

    from cxrlab.deploy.export import export_run

    c = export_run(tiny_run[0], tmp_path / "qdq.onnx", int8=Int8Options(quant_format="qdq"))
    ops = {n.op_type for n in onnx.load(str(tmp_path / "qdq.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops and "QLinearConv" not in ops
    assert c["calibration"]["format"] == "qdq" and c["accuracy"]["passed"]


def test_predict_and_serve_use_the_int8_model(tiny_run, int8_model, tmp_path):
    run, (model, c) = str(tiny_run[0]), int8_model
    assert main(["predict", run, "--split", "val", "--out", str(tmp_path / "t.csv")]) == 0
    assert main(["predict", str(model), "--split", "val", "--out", str(tmp_path / "q.csv")]) == 0
    torch_p, int8_p = read_predictions(tmp_path / "t.csv"), read_predictions(tmp_path / "q.csv")
    assert int8_p.image_ids == torch_p.image_ids
    assert np.abs(int8_p.probs - torch_p.probs).max() < 0.05
    # the contract's INT8 AUROC, recomputed independently with scikit-learn from predict's own output
    labels = pd.read_csv(tiny_run[1] / "index.csv", dtype={"image_id": str}).set_index("image_id")
    y = labels.loc[int8_p.image_ids, int8_p.classes].to_numpy(dtype=float)
    aucs = [roc_auc_score(y[~np.isnan(y[:, k]), k], int8_p.probs[~np.isnan(y[:, k]), k])
            for k in range(y.shape[1]) if len(np.unique(y[~np.isnan(y[:, k]), k])) == 2]
    assert c["accuracy"]["int8"] == pytest.approx(np.mean(aucs), abs=1e-6)

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from cxrlab.serve.app import create_app
    from cxrlab.serve.model import ServedModel

    from .images import phantom_png

    client = TestClient(create_app(ServedModel(model)))
    assert client.get("/api/model").json()["engine"] == "onnx"
    r = client.post("/api/predict", files=[("files", ("a.png", phantom_png(tiny_run[1], 0), "image/png"))])
    assert r.status_code == 200 and r.json()["results"][0]["ood"] is not None


def test_accuracy_check_against_hand_counts():
    class Info:  # the attributes of RunInfo the check reads
        num_classes, task, classes = 2, "multilabel", ("a", "b")

    y = np.array([[0, 1], [1, 0], [0, 1], [1, 0], [1, np.nan]], dtype=float)
    fp32 = np.array([[-2, 2], [2, -2], [-1, 1], [1, -1], [3, 0]], dtype=float)  # both classes perfectly ranked
    int8 = fp32.copy()
    int8[2, 0] = 1.5  # image 2 now outranks image 1 for class a: AUROC a = 5/6 by hand; decision flips at 0.5
    op = {"thresholds": {"a": 0.5, "b": 0.5}, "temperature": None}
    check = accuracy_check(fp32, int8, y, Info(), op, Int8Options())
    assert check.fp32 == 1.0 and check.int8 == pytest.approx((5 / 6 + 1) / 2)
    assert check.drop == pytest.approx(1 / 12) and check.agreement == pytest.approx(9 / 10)
    assert not check.passed and "thresholds" in check.thresholds
    fields = {k: v for k, v in check.summary().items() if k not in ("passed", "source")}
    assert AccuracyCheck(**{**fields, "drop": 0.01, "agreement": 0.95}).passed  # the limits themselves pass
    assert not AccuracyCheck(**{**fields, "drop": 0.0101, "agreement": 1.0}).passed


def test_multiclass_check_uses_macro_f1_and_argmax_agreement():
    class Info:
        num_classes, task, classes = 3, "multiclass", ("x", "y", "z")

    targets = np.array([0, 1, 2, 0, -1])  # -1: unknown class, out of the metric, in the agreement
    fp32 = np.eye(3)[[0, 1, 2, 0, 1]] * 4.0
    int8 = np.eye(3)[[0, 1, 2, 2, 1]] * 4.0  # image 3 moves from class x to z
    check = accuracy_check(fp32, int8, targets, Info(), {"temperature": 1.0}, Int8Options())
    # by hand: F1 x = 2/3 (1 of 2 found), y = 1, z = 2/3 (1 of 2 predicted right) -> 7/9
    assert check.metric == "macro_f1" and check.fp32 == 1.0 and check.int8 == pytest.approx(7 / 9)
    assert check.agreement == pytest.approx(4 / 5) and check.thresholds == "arg-max" and not check.passed


def test_failed_check_is_one_line_and_leaves_no_model(tiny_run, tmp_path, monkeypatch, capsys):
    import cxrlab.deploy.quantize as quantize

    real = quantize.int8_outputs
    monkeypatch.setattr(quantize, "int8_outputs", lambda *a, **k: (lambda z, f: (-z, f))(*real(*a, **k)))
    out = tmp_path / "bad.onnx"
    assert main(["export", str(tiny_run[0]), "--out", str(out), "--quantize", "int8", "--min-agreement", "0.9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: INT8 accuracy check failed") and "0.9" in err[0]
    assert list(tmp_path.iterdir()) == []  # no model, no contract, no temporary FP32 graph


def test_limits_are_validated(tiny_run, tmp_path, capsys):
    for flag, value in (("--min-agreement", "1.5"), ("--max-auroc-drop", "-0.1")):
        assert main(["export", str(tiny_run[0]), "--out", str(tmp_path / "m.onnx"), "--quantize", "int8",
                     flag, value]) == 2
    assert main(["export", str(tiny_run[0]), "--out", str(tmp_path / "m.onnx"), "--min-agreement", "0.9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "--min-agreement 1.5" in err[0] and "--max-auroc-drop -0.1" in err[1]
    assert "--min-agreement only applies to INT8 exports; add --quantize int8" in err[2]


def test_int8_needs_the_runs_validation_images(tiny_run, tmp_path):
    from cxrlab.deploy.export import export_run

    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)
    (run / "split.csv").unlink()
    with pytest.raises(CxrlabError, match="validation images"):
        export_run(run, tmp_path / "m.onnx", int8=Int8Options())


def test_calibration_refuses_a_validation_image_that_is_a_test_image(tmp_path):
    """A validation image byte-identical to a test image (another id, another patient) is refused by content."""
    from cxrlab.config import load_config
    from cxrlab.data.build_index import build_index
    from cxrlab.data.phantom import make_phantom
    from cxrlab.data.splits import patient_level_split, write_split
    from cxrlab.deploy.export import export_run
    from cxrlab.train import fit

    ph = make_phantom(tmp_path / "ph", n=40, size=32, seed=0, workers=1)
    index, _ = build_index(ph, "csv", tmp_path / "index0")
    split = patient_level_split(index, 0.2, 0.2, seed=0)
    paths = dict(zip(index.frame["image_id"].astype(str), index.absolute_paths()))
    val_id = split.loc[split["split"] == "val", "image_id"].iloc[0]
    test_id = split.loc[split["split"] == "test", "image_id"].iloc[0]
    shutil.copyfile(paths[test_id], paths[val_id])
    index, _ = build_index(ph, "csv", tmp_path / "index")  # the same rows, with the copy's hash
    assert patient_level_split(index, 0.2, 0.2, seed=0).equals(split)
    write_split(split, tmp_path / "split.csv", "patient", 0, index)
    cfg = load_config(None, [f"data.index={tmp_path / 'index'}", f"data.split={tmp_path / 'split.csv'}",
                             "data.image_size=32", "data.cache_size=32", "model.name=cnn_gap", "train.epochs=1",
                             "train.batch_size=16", "augment.policy=none", "train.device=cpu", "train.threads=1"])
    run = fit(cfg, tmp_path / "run")
    with pytest.raises(CxrlabError, match="refusing to fit INT8 calibration ranges .*byte-identical"):
        export_run(run, tmp_path / "m.onnx", int8=Int8Options())
    assert not (tmp_path / "m.onnx").exists() and not (tmp_path / "m.json").exists()
