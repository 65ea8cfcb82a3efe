"""INT8 static quantization of an exported model (``cxrlab export --quantize int8``), calibrated and checked on
the run's validation images.

- Calibration: ONNX Runtime ``quantize_static`` (MinMax ranges) fed by a ``CalibrationDataReader`` over the first
  ``calibration_images`` of the run's validation split, read through ``cxrlab.predict`` exactly as evaluation
  reads them (the run's cache, the eval transform). The test-split guard (``cxrlab.guards``) compares their ids
  and file hashes with the run's test split and refuses any overlap: nothing fitted touches test images.
- Format: unsigned 8-bit activations, signed 8-bit per-channel weights (U8S8; ORT's fast path on x86, where
  signed activations fall back to slow kernels), in the QOperator form (QLinearConv/QLinearMatMul) by default:
  measured fastest of the two with ORT on this CPU (benchmarks/bench_onnx.py). ``qdq`` is the portable form.
- Accuracy check (replacing the 1e-4 parity check, which quantization cannot meet): on the validation images,
  the macro AUROC (multi-label; macro-F1 for multi-class, the training metric) of the INT8 graph against the
  FP32 model's, and the share of decisions at the exported thresholds (multi-label: every (image, class) pair;
  multi-class: the arg-max) on which both agree. A drop above ``max_auroc_drop`` or an agreement below
  ``min_agreement`` is a one-line error and no model is left behind.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from cxrlab.errors import CxrlabError
from cxrlab.predict import RunInfo

QUANT_FORMATS = ("qoperator", "qdq")


@dataclass(frozen=True)
class Int8Options:
    """How ``cxrlab export --quantize int8`` quantizes and what it accepts."""

    max_auroc_drop: float = 0.01
    """Largest allowed drop of the validation macro AUROC (macro-F1 for multi-class), FP32 minus INT8."""
    min_agreement: float = 0.95
    """Smallest allowed share of decisions at the exported thresholds that INT8 and FP32 share."""
    calibration_images: int = 256
    """Validation images whose activation ranges set the quantization scales (the first N of the split)."""
    quant_format: str = "qoperator"
    """qoperator (QLinear* operators: fastest on ORT's CPU provider) or qdq (Quantize/DequantizeLinear pairs)."""

    def __post_init__(self) -> None:
        if not 0 <= self.max_auroc_drop <= 1:
            raise CxrlabError(f"--max-auroc-drop {self.max_auroc_drop} must be in [0, 1] (e.g. 0.01)")
        if not 0 <= self.min_agreement <= 1:
            raise CxrlabError(f"--min-agreement {self.min_agreement} must be in [0, 1] (e.g. 0.95)")
        if self.calibration_images < 1:
            raise CxrlabError(f"--calibration-images {self.calibration_images} must be >= 1")
        if self.quant_format not in QUANT_FORMATS:
            raise CxrlabError(f"--quant-format {self.quant_format!r} is not one of {', '.join(QUANT_FORMATS)}")


    def refuse_without_quantize(self) -> None:
        """An INT8 option given for an FP32 export is a mistake to report, not to ignore."""
        changed = [f"--{f.name.replace('_', '-')}" for f in fields(self) if getattr(self, f.name) != f.default]
        if changed:
            raise CxrlabError(f"{', '.join(changed)} only applies to INT8 exports; add --quantize int8 or drop it")


@dataclass(frozen=True)
class AccuracyCheck:
    """INT8 against FP32 on validation images: the metric both ways and the decision agreement."""

    images: int
    metric: str
    fp32: float
    int8: float
    drop: float
    agreement: float
    thresholds: str
    max_auroc_drop: float
    min_agreement: float

    @property
    def passed(self) -> bool:
        drop_ok = not np.isfinite(self.drop) or self.drop <= self.max_auroc_drop
        return bool(drop_ok and self.agreement >= self.min_agreement)

    def summary(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "source": "validation"}


def _require_quantization():
    from cxrlab.extras import require_extra

    require_extra("onnx", "onnxruntime")
    import onnxruntime.quantization as q

    return q


def calibration_rows(info: RunInfo, dataset: Any, n: int) -> list[int]:
    """The first ``n`` rows of the run's validation ``dataset``, refused if any is a test image (id or content) or
    if that cannot be verified: the deploy package's one check (``runs.not_test_rows``)."""
    from cxrlab.deploy.runs import not_test_rows

    return not_test_rows(info, dataset, n, "INT8 calibration ranges")


def calibration_record(dataset: Any, rows: list[int], options: Int8Options) -> dict[str, Any]:
    """What the contract says about the calibration set: split, count and a hash of the ordered ids."""
    ids = [str(dataset.image_ids[i]) for i in rows]
    return {"split": dataset.images.name, "count": len(ids),
            "ids_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(), "method": "minmax",
            "format": options.quant_format, "activations": "uint8", "weights": "int8 per channel"}


def _reader(dataset: Any, rows: list[int], input_name: str, batch_size: int = 16):
    q = _require_quantization()

    class ValidationReader(q.CalibrationDataReader):
        """Batches of preprocessed validation images, as ``{input_name: float32 (B, C, H, W)}``."""

        def __init__(self) -> None:
            self.starts = iter(range(0, len(rows), batch_size))

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = next(self.starts, None)
            if start is None:
                return None
            x = np.stack([dataset[i][0].numpy() for i in rows[start:start + batch_size]])
            return {input_name: x.astype(np.float32)}

    return ValidationReader()


def quantize_graph(fp32: Path, out: Path, dataset: Any, rows: list[int], options: Int8Options) -> Path:
    """``quant_pre_process`` (shape inference, BN folding) then ``quantize_static`` of ``fp32`` into ``out``."""
    q = _require_quantization()
    fmt = q.QuantFormat.QOperator if options.quant_format == "qoperator" else q.QuantFormat.QDQ
    with tempfile.TemporaryDirectory(prefix="cxrlab-int8-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            q.quant_pre_process(str(fp32), str(pre))
            q.quantize_static(str(pre), str(out), _reader(dataset, rows, "image"), quant_format=fmt,
                              per_channel=True, activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                              calibrate_method=q.CalibrationMethod.MinMax)
        except Exception as exc:  # onnxruntime and onnx raise many types
            out.unlink(missing_ok=True)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise CxrlabError(f"INT8 quantization of {fp32.name} failed ({first}); export FP32 instead "
                              "(drop --quantize) or try --quant-format qdq") from None
    return out


def _decisions(logits: np.ndarray, task: str, classes: list[str], operating: dict | None) -> tuple[np.ndarray, str]:
    from cxrlab.deploy.operating import apply_operating_point

    if task == "multiclass":
        return logits.argmax(axis=1), "arg-max"
    scored = apply_operating_point(logits, task, classes, operating)
    thr = scored["threshold"]
    if np.isnan(thr).all():
        return scored["probability"] >= 0.5, "0.5 (the run has no validation-chosen thresholds)"
    return scored["calibrated"] >= thr[None], "the exported validation-chosen thresholds"


def accuracy_check(fp32_logits: np.ndarray, int8_logits: np.ndarray, targets: np.ndarray, info: RunInfo,
                   operating: dict | None, options: Int8Options) -> AccuracyCheck:
    """Compare INT8 logits with FP32 logits of the same validation images (row-aligned)."""
    from cxrlab.tasks import probabilities
    from cxrlab.train.loop import metric_name, val_metric

    k, task, classes = info.num_classes, info.task, list(info.classes)
    labelled = np.asarray(targets)
    if task == "multiclass":  # -1: unknown class, left out of the metric (not of the agreement)
        keep = labelled.reshape(-1) >= 0
        score = lambda z: val_metric(task, probabilities(z[keep], task), labelled[keep], k)  # noqa: E731
    else:
        score = lambda z: val_metric(task, probabilities(z, task), labelled, k)  # noqa: E731
    before, after = score(fp32_logits), score(int8_logits)
    d32, how = _decisions(fp32_logits, task, classes, operating)
    d8, _ = _decisions(int8_logits, task, classes, operating)
    return AccuracyCheck(images=len(fp32_logits), metric=metric_name(task), fp32=float(before), int8=float(after),
                         drop=float(before - after), agreement=float((d32 == d8).mean()), thresholds=how,
                         max_auroc_drop=options.max_auroc_drop, min_agreement=options.min_agreement)


def int8_outputs(path: Path, dataset: Any, n: int, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """``(logits (n, K), features (n, D))`` of the INT8 graph on the first ``n`` images of ``dataset``."""
    from cxrlab.deploy.onnx_engine import OnnxEngine

    engine = OnnxEngine(path, providers=["CPUExecutionProvider"])
    logits, feats = [], []
    for start in range(0, n, batch_size):
        x = np.stack([dataset[i][0].numpy() for i in range(start, min(start + batch_size, n))])
        z, f = engine.run(x)
        logits.append(z)
        feats.append(f)
    return np.concatenate(logits), np.concatenate(feats)


def quantize_export(fp32: Path, out: Path, info: RunInfo, val: dict[str, Any], operating: dict | None,
                    options: Int8Options) -> tuple[dict[str, Any], np.ndarray]:
    """Quantize ``fp32`` into ``out`` and check it on validation; returns (contract fields, INT8 features).

    ``val`` is the export's validation pass: ``dataset`` and the FP32 ``logits``/``targets`` of its first rows.
    Raises ``CxrlabError`` (and removes ``out``) when the accuracy check fails.
    """
    dataset = val["dataset"]
    rows = calibration_rows(info, dataset, options.calibration_images)
    quantize_graph(fp32, out, dataset, rows, options)
    n = len(val["logits"])
    int8_logits, features = int8_outputs(out, dataset, n)
    check = accuracy_check(val["logits"], int8_logits, val["targets"], info, operating, options)
    if not check.passed:
        out.unlink(missing_ok=True)
        raise CxrlabError(
            f"INT8 accuracy check failed for {out.name} on {n} validation images: {check.metric} {check.fp32:.4f} -> "
            f"{check.int8:.4f} (drop {check.drop:.4f}, limit {options.max_auroc_drop:g}), decision agreement "
            f"{check.agreement:.3f} (limit {options.min_agreement:g}); the model was removed (export FP32, or "
            "relax --max-auroc-drop / --min-agreement)")
    return {"precision": "int8", "calibration": calibration_record(dataset, rows, options),
            "accuracy": check.summary()}, features


def accuracy_line(contract: dict[str, Any]) -> str:
    """One line for people: the INT8 accuracy check and the calibration set of an INT8 contract."""
    a, cal = contract["accuracy"], contract["calibration"]
    return (f"INT8: {a['metric']} {a['fp32']:.4f} -> {a['int8']:.4f} (drop {a['drop']:.4f} <= {a['max_auroc_drop']:g}),"
            f" decision agreement {a['agreement']:.3f} >= {a['min_agreement']:g} on {a['images']} validation images;"
            f" calibrated on {cal['count']} validation images ({cal['format']})")
