"""``cxrlab export RUN --out model.onnx``: ONNX with a dynamic batch axis, its contract, a parity check, an OOD gate.

Files written (``model.onnx`` standing for ``--out``):

- ``model.onnx``: input ``image`` (B, C, H, W) float32, outputs ``logits`` (B, K) and ``features`` (B, D) (the
  penultimate features the OOD gate reads); the contract JSON is also in its metadata (key ``cxrlab``).
- ``model.json``: the contract (schema ``cxrlab.deploy/1``): task, classes, model, preprocessing, operating
  thresholds and temperature chosen on validation, the parity check, the OOD gate's summary, file hashes.
- ``model.ood.safetensors``: the OOD gate's validation features and threshold.

Parity: ONNX Runtime and PyTorch on a batch of the run's validation images (a synthetic batch when the run's
images are not reachable, said in the contract); a max |probability difference| above 1e-4 is an error.

``--quantize int8`` (``cxrlab.deploy.quantize``): the FP32 graph is exported and parity-checked as above, then
quantized into ``model.onnx`` with validation images as calibration; an accuracy check on validation stands in
for parity (contract fields ``precision``, ``calibration``, ``accuracy``), and the OOD gate is fitted on the INT8
graph's own features. Inputs and outputs keep their names and shapes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cxrlab.deploy import runs
from cxrlab.deploy.features import WithFeatures, collect, first_batch, laterality_thumbnails
from cxrlab.deploy.ood import MIN_IMAGE_CHECK_IMAGES, OodGate
from cxrlab.deploy.operating import choose_operating_point, from_run
from cxrlab.deploy.quantize import Int8Options, quantize_export
from cxrlab.errors import CxrlabError
from cxrlab.predict import RunInfo
from cxrlab.tasks import probabilities

SCHEMA = "cxrlab.deploy/1"
DEFAULT_OPSET = 17
TOLERANCE = 1e-4


def sidecar_paths(onnx_path: str | Path) -> tuple[Path, Path]:
    """``(contract.json, ood.safetensors)`` beside an exported model."""
    p = Path(onnx_path)
    return p.with_suffix(".json"), p.with_suffix(".ood.safetensors")


def _operator(message: str) -> str:
    for pattern in (r"operator '?([\w:.]+)'?", r"(aten::\w+|prim::\w+|onnx::\w+)"):
        m = re.search(pattern, message)
        if m:
            return m.group(1)
    return "unknown operator"


@contextlib.contextmanager
def _quiet_native_output():
    """Silence file descriptors 1 and 2: on failure the exporter's C++ side dumps its whole IR graph there."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)


def to_onnx(model: nn.Module, example: torch.Tensor, out: Path, opset: int = DEFAULT_OPSET) -> Path:
    """Export ``WithFeatures(model)`` with a dynamic batch axis (TorchScript exporter: fast and robust).

    Any exporter failure becomes one line naming the operator that could not be exported.
    """
    from cxrlab.extras import require_extra

    require_extra("onnx", "onnx")  # torch's exporter needs it; say how to install it instead of a traceback
    out.parent.mkdir(parents=True, exist_ok=True)
    axes = {"image": {0: "batch"}, "logits": {0: "batch"}, "features": {0: "batch"}}
    try:
        with warnings.catch_warnings(), _quiet_native_output():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes are not the user's to fix
            torch.onnx.export(WithFeatures(model).eval(), (example,), str(out), dynamo=False, opset_version=opset,
                              input_names=["image"], output_names=["logits", "features"], dynamic_axes=axes)
    except Exception as exc:  # the exporter raises many types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CxrlabError(f"cannot export {getattr(model, 'model_name', type(model).__name__)} to ONNX opset {opset}: "
                          f"{_operator(str(exc))} is not exportable ({first}); try another --opset") from None
    return out


def parity(onnx_path: Path, model: nn.Module, batch: torch.Tensor, task: str) -> float:
    """Max |probability difference| between ONNX Runtime (CPU) and PyTorch on ``batch``."""
    from cxrlab.deploy.onnx_engine import OnnxEngine

    with torch.no_grad():
        expected = probabilities(model(batch).float().numpy(), task)
    got = probabilities(OnnxEngine(onnx_path, providers=["CPUExecutionProvider"]).logits(batch.numpy()), task)
    return float(np.abs(got - expected).max())


def _synthetic_batch(info: RunInfo, n: int) -> torch.Tensor:
    p = info.preprocess
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, p.in_chans, p.image_size, p.image_size, generator=g)
    mean = torch.tensor(p.mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(p.std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x - mean) / std


def _validation(model: nn.Module, info: RunInfo, max_images: int) -> tuple[dict | None, str]:
    try:
        dataset = runs.split_dataset(info, "val")
    except (CxrlabError, FileNotFoundError, KeyError) as exc:
        return None, f"synthetic (the run's validation images are not available: {exc})"
    outputs = collect(model, dataset, max_images) if max_images > 0 else {}
    return {"dataset": dataset, **outputs}, "validation"


def _write_metadata(onnx_path: Path, contract: dict[str, Any]) -> None:
    from cxrlab.extras import require_extra

    onnx = require_extra("onnx", "onnx")
    proto = onnx.load(str(onnx_path))
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = "cxrlab", json.dumps(contract)
    onnx.save(proto, str(onnx_path))


def export_run(run: str | Path, out: str | Path, which: str = "best", opset: int = DEFAULT_OPSET,
               parity_images: int = 16, max_val_images: int = 2000, ood_percentile: float = 99.0,
               ood_method: str = "mahalanobis", ood_laterality: str = "linear",
               tolerance: float = TOLERANCE, int8: Int8Options | None = None) -> dict[str, Any]:
    """Export a run's ``which`` checkpoint to ``out`` (.onnx) with its contract; returns the contract.

    ``max_val_images=0`` skips the validation pass (no fitted thresholds, no OOD gate): parity only.
    ``ood_laterality``: the gate's left-right model (``linear`` or ``cnn``, ``cxrlab.deploy.orientation``).
    ``int8``: quantize (calibrated and accuracy-checked on the run's validation images, which it then needs).

    Raises ``CxrlabError`` when the export or the parity check fails (nothing is left half-written as valid:
    the contract JSON is written last).
    """
    from cxrlab.outputs import check_out_file
    from cxrlab.utils import sha256_file, write_json

    # the contract .json beside --out must never land on a checkpoint's or an input's own .json
    out = check_out_file(out, verb="export", inputs=[run], suffix=".onnx", sidecar="deploy contract")
    started = time.perf_counter()
    contract_path, ood_path = sidecar_paths(out)
    for stale in (contract_path, ood_path):  # never leave a previous export's sidecars beside a new model
        stale.unlink(missing_ok=True)
    model, info = runs.load(run, which)
    val, source = _validation(model, info, max_val_images)
    if int8 is not None and not (val and "logits" in val):
        raise CxrlabError(f"--quantize int8 calibrates and checks on the run's validation images, and {run} has none "
                          f"here ({source}); export FP32 or run it where the run's data is")
    batch = first_batch(val["dataset"], parity_images) if val else _synthetic_batch(info, min(parity_images, 8))
    graph = out if int8 is None else out.with_suffix(".fp32-tmp.onnx")  # the FP32 graph INT8 is made from
    try:
        contract = _export_checked(model, info, val, batch, graph, out, opset, source, tolerance, int8)
    finally:
        if graph != out:
            graph.unlink(missing_ok=True)
    if val and "features" in val:
        # the cnn also trains on the training images' thumbnails, when the image checks are fitted at all
        wants = ood_laterality == "cnn" and len(val.get("thumbnails", ())) >= MIN_IMAGE_CHECK_IMAGES
        gate = OodGate.fit(val["features"], ood_percentile, ood_method, weights_sha256=info.weights_sha256,
                           thumbnails=val.get("thumbnails"),  # the orientation and tone checks, as `serve RUN` has
                           laterality_thumbnails=laterality_thumbnails(info) if wants else None,
                           laterality=ood_laterality)
        gate.save(ood_path)
        contract["ood"] = {**gate.summary(), "file": ood_path.name}
    _write_metadata(out, contract)
    contract["files"] = {"onnx": out.name, "onnx_sha256": sha256_file(out)}
    contract["seconds"] = round(time.perf_counter() - started, 2)
    write_json(contract_path, contract)
    return contract


def _export_checked(model: nn.Module, info: RunInfo, val: dict | None, batch: torch.Tensor, graph: Path, out: Path,
                    opset: int, source: str, tolerance: float, int8: Int8Options | None) -> dict[str, Any]:
    """Export to ``graph``, check parity, add the operating point; with ``int8``, quantize ``graph`` into ``out``."""
    to_onnx(model, batch[:2], graph, opset)
    diff = parity(graph, model, batch, info.task)
    check = {"images": int(len(batch)), "source": source, "max_abs_prob_diff": diff, "tolerance": tolerance,
             "passed": diff <= tolerance}
    contract: dict[str, Any] = {"schema": SCHEMA, "run": runs.contract_info(info), "opset": opset,
                                "precision": "fp32", "inputs": {"image": ["batch", *first_batch_shape(batch)]},
                                "outputs": ["logits", "features"], "parity": check,
                                "operating": None, "ood": None}
    if not check["passed"]:
        graph.unlink(missing_ok=True)
        raise CxrlabError(f"ONNX parity check failed for {out}: max |prob diff| {diff:.2e} > {tolerance:g} on "
                          f"{len(batch)} {source} images; the export was removed (try another --opset)")
    classes = list(info.classes)
    contract["operating"] = from_run(info.thresholds, info.temperature, classes, info.task)
    if val and contract["operating"] is None and "logits" in val:
        contract["operating"] = choose_operating_point(val["logits"], val["targets"], info.task, classes)
    if int8 is not None:  # parity above is the FP32 graph's; the INT8 graph gets an accuracy check instead
        fields, val["features"] = quantize_export(graph, out, info, val, contract["operating"], int8)
        contract.update(fields)
    return contract


def first_batch_shape(batch: torch.Tensor) -> list[int]:
    """(C, H, W) of a batch, as a list for JSON."""
    return [int(s) for s in batch.shape[1:]]
