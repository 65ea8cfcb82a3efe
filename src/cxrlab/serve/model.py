"""The model behind ``cxrlab serve``: a run (PyTorch, heat maps available) or an exported ONNX file.

Both paths preprocess with the run's own evaluation transform (resize like the cache, then the transform a
checkpoint was validated with), apply the validation-chosen operating point and temperature, and score the OOD
gate on the penultimate features (and its orientation and tone checks on thumbnails of the model input).
When the gate flags an image, its calls are withheld: probabilities are still returned, but no finding is
"above" threshold (``above`` is None, ``withheld`` True, and the result says why). For a run, the operating
point and gate are computed once from its validation images when the service starts (in memory: the service
writes nothing outside its temporary folders).
"""

from __future__ import annotations

import base64
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrlab.deploy import runs
from cxrlab.deploy.ood import OodGate, assess
from cxrlab.deploy.operating import apply_operating_point
from cxrlab.deploy.orientation import thumbnails
from cxrlab.errors import CxrlabError
from cxrlab.predict import RunInfo, eval_transform
from cxrlab.predict.preprocess import resize_for_run

DISCLAIMER = "Research use only: not a medical device and not a diagnosis."


def _png_base64(img: np.ndarray) -> str:
    import cv2

    ok, buf = cv2.imencode(".png", img)
    return base64.b64encode(buf.tobytes()).decode("ascii")


class ServedModel:
    """``predict(gray_images, raw_images)`` -> per-image results; ``heatmap(gray, class)`` for runs."""

    def __init__(self, source: str | Path, which: str = "best", laterality: str | None = None) -> None:
        """``laterality``: the OOD gate's left-right model when the gate is fitted here (a run: ``linear`` by
        default, or ``cnn``); an exported model keeps the gate it was exported with."""
        source = Path(source)
        self.engine_name = "onnx" if source.suffix.lower() == ".onnx" else "torch"
        if self.engine_name == "onnx":
            if laterality is not None:
                raise CxrlabError(f"{source}: --ood-laterality applies when serving a run; an exported model keeps "
                                  "the gate it was exported with (`cxrlab export RUN --ood-laterality ...`)")
            self._init_onnx(source)
        elif source.is_dir() or source.suffix == ".safetensors":
            self._init_torch(source, which, laterality or "linear")
        else:
            raise CxrlabError(f"{source}: serve a run directory (safetensors weights) or an exported .onnx file; "
                              "other formats (pickles such as .pt/.pth) are never loaded")
        self.task, self.classes = self.info.task, list(self.info.classes)
        self.transform = eval_transform(self.info)
        self._lock = threading.Lock()  # heat maps hook the shared PyTorch model: forwards take turns

    def _init_onnx(self, path: Path) -> None:
        from cxrlab.deploy.export import sidecar_paths
        from cxrlab.deploy.verify import open_verified

        self.engine, contract = open_verified(path)  # sha256, contract vs metadata vs graph, before any image
        ood_path = sidecar_paths(path)[1]
        self.info = RunInfo.from_dict(contract["run"], where=f"{path.name} contract: field 'run'")
        self.operating = contract.get("operating")
        self.gate = OodGate.load(ood_path) if ood_path.exists() else None
        self.model, self.name = None, path.stem

    def _init_torch(self, source: Path, which: str, laterality: str) -> None:
        from cxrlab.deploy.features import WithFeatures

        model, self.info = runs.load(source, which)
        self.model, self.engine = model, WithFeatures(model).eval()
        self.name = self.info.run_dir.name if self.info.run_dir else source.stem
        self.operating, self.gate = _run_calibration(model, self.info, laterality)

    def describe(self) -> dict[str, Any]:
        """What ``GET /api/model`` returns: classes, preprocessing, operating point, gate, provenance."""
        p = self.info.preprocess.to_dict()
        return {"name": self.name, "engine": self.engine_name, "task": self.task, "classes": self.classes,
                "model_name": self.info.model_name, "weights_sha256": self.info.weights_sha256,
                "preprocess": {k: p.get(k) for k in ("image_size", "in_chans", "mean", "std", "cache_size",
                                                      "policy", "clahe")},
                "operating": self.operating, "ood": self.gate.summary() if self.gate else None,
                "heatmaps": self.model is not None, "disclaimer": DISCLAIMER}

    def preprocess(self, gray: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
        """(model input (C, H, W), the resized uint8 image the model sees) for one grayscale image."""
        small = resize_for_run(gray, self.info)
        return self.transform(torch.from_numpy(small)[None]), small

    def _forward(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        if self.model is None:
            return self.engine.run(batch)
        # one forward at a time: Grad-CAM's hooks would otherwise record another request's activations
        with self._lock, torch.no_grad():
            logits, feats = self.engine(batch)
        return logits.float().numpy(), feats.float().numpy()

    def predict(self, grays: list[np.ndarray], raws: list[np.ndarray], batch_size: int = 8) -> list[dict]:
        """Per image: sorted probabilities against thresholds, OOD verdict and a preview PNG (base64)."""
        results = []
        for start in range(0, len(grays), batch_size):
            pre = [self.preprocess(g) for g in grays[start : start + batch_size]]
            logits, feats = self._forward(torch.stack([x for x, _ in pre]))
            scored = apply_operating_point(logits, self.task, self.classes, self.operating)
            ood = assess(self.gate if feats is not None else None,
                         feats if feats is not None else np.zeros((len(pre), 1)), raws[start : start + batch_size],
                         thumbnails([x.numpy() for x, _ in pre]))
            for i, (_, small) in enumerate(pre):
                withheld = ood[i]["flagged"]
                results.append({"findings": self._rows(scored, i, withheld), "ood": ood[i],
                                "calls": "withheld" if withheld else "made",
                                "withheld_reason": _withheld_reason(ood[i]) if withheld else None,
                                "preview_png": _png_base64(small)})
        return results

    def _rows(self, scored: dict[str, np.ndarray], i: int, withheld: bool = False) -> list[dict]:
        rows = []
        for k, c in enumerate(self.classes):
            thr = scored["threshold"][k]
            prob = float(scored["calibrated"][i, k])
            call = None if np.isnan(thr) or withheld else bool(prob >= thr)
            rows.append({"class": c, "probability": prob, "uncalibrated": float(scored["probability"][i, k]),
                         "threshold": None if np.isnan(thr) else float(thr), "above": call, "withheld": withheld})
        return sorted(rows, key=lambda r: -r["probability"])

    def heatmap(self, gray: np.ndarray, class_name: str, method: str = "gradcam") -> str:
        """A colour heat map PNG (base64) of ``class_name``, aligned with the preview image."""
        import cv2

        from cxrlab.explain.cam import compute_cams

        if self.model is None:
            raise CxrlabError("heat maps need the run: serve the run directory instead of the ONNX file")
        if class_name not in self.classes:
            raise CxrlabError(f"unknown class {class_name!r}; valid: {', '.join(self.classes)}")
        x, small = self.preprocess(gray)
        with self._lock, torch.enable_grad():
            cam = compute_cams(self.model, x[None], [self.classes.index(class_name)], method)[0]
        cam = cv2.resize(cam, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_LINEAR)
        colour = cv2.applyColorMap((cam * 255).astype(np.uint8), cv2.COLORMAP_JET)
        rgba = np.dstack([colour, (cam * 180).astype(np.uint8)])  # transparent where nothing is highlighted
        return _png_base64(rgba)


def _withheld_reason(ood: dict) -> str:
    return ("calls withheld: the image is out of distribution for this model (" + "; ".join(ood["reasons"]) +
            "); the probabilities are shown for reference only")


def _run_calibration(model: torch.nn.Module, info: RunInfo, laterality: str = "linear"
                     ) -> tuple[dict | None, OodGate | None]:
    """Operating point and OOD gate of a run, computed in memory on its validation images at start-up.

    Nothing is written: the service keeps to its temporary folder (``cxrlab export`` stores both beside an
    exported model instead)."""
    from cxrlab.deploy.features import collect, laterality_thumbnails
    from cxrlab.deploy.operating import choose_operating_point, from_run

    recorded = from_run(info.thresholds, info.temperature, list(info.classes), info.task)
    try:
        val = collect(model, runs.split_dataset(info, "val"))
    except (CxrlabError, FileNotFoundError, KeyError):
        return recorded, None  # no validation images here: probabilities only, said on the page
    operating = recorded or choose_operating_point(val["logits"], val["targets"], info.task, list(info.classes))
    enough = len(val["thumbnails"]) >= 10
    wants = enough and laterality == "cnn"  # the cnn also trains on the training images (never test)
    return operating, OodGate.fit(val["features"], weights_sha256=info.weights_sha256,
                                  thumbnails=val["thumbnails"] if enough else None,
                                  laterality_thumbnails=laterality_thumbnails(info) if wants else None,
                                  laterality=laterality)
