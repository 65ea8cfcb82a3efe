"""An ONNX Runtime engine: a callable mapping a float32 batch (B, C, H, W) to logits (B, K), like a model.

It plugs into the same prediction code as a PyTorch model (one preprocessing path), and also returns the
penultimate features for the OOD gate. CPU execution provider by default; CUDA first when onnxruntime has it.
Only ``.onnx`` files are loaded (no pickle anywhere).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from cxrlab.errors import CxrlabError
from cxrlab.utils import cpu_threads


def _require_onnxruntime():
    from cxrlab.extras import require_extra

    return require_extra("onnx", "onnxruntime")


def default_providers() -> list[str]:
    """CUDA first when this onnxruntime build has it, then CPU."""
    available = _require_onnxruntime().get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class OnnxEngine:
    """``engine(batch) -> logits`` with ONNX Runtime; ``engine.run(batch) -> (logits, features)``.

    Args:
        path: an ``.onnx`` file written by ``cxrlab export``.
        providers: ONNX Runtime execution providers (default: CUDA when available, then CPU).
        threads: intra-op threads (default: ``CXRLAB_ORT_THREADS``, else the free cores: ``cxrlab.utils.cpu_threads``).
    """

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int | None = None) -> None:
        ort = _require_onnxruntime()
        self.path = Path(path)
        if self.path.suffix.lower() != ".onnx" or not self.path.is_file():
            raise CxrlabError(f"{self.path} is not an .onnx file; give a model written by `cxrlab export`")
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # ORT's own default counts the machine's physical cores, more than a container or taskset may allow
        options.intra_op_num_threads = threads or int(os.environ.get("CXRLAB_ORT_THREADS", "0") or 0) \
            or cpu_threads()
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers or default_providers())
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise CxrlabError(f"{self.path}: ONNX Runtime cannot load it ({str(exc).splitlines()[0][:160]})") from None
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.input_name = self.session.get_inputs()[0].name

    @property
    def metadata(self) -> dict[str, Any]:
        """The contract stored in the model (key ``cxrlab``), or {} for a foreign ONNX file."""
        raw = self.session.get_modelmeta().custom_metadata_map.get("cxrlab")
        return json.loads(raw) if raw else {}

    def run(self, batch) -> tuple[np.ndarray, np.ndarray | None]:
        """``(logits (B, K), features (B, D) or None)`` for a float32 batch (numpy or torch)."""
        x = batch.detach().cpu().numpy() if hasattr(batch, "detach") else np.asarray(batch)
        result = self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})
        named = dict(zip(self.outputs, result))
        return named.get("logits", result[0]), named.get("features")

    def logits(self, batch) -> np.ndarray:
        return self.run(batch)[0]

    def __call__(self, batch):
        """Logits as a torch tensor when given a torch tensor (so it drops in for an ``nn.Module``)."""
        z = self.logits(batch)
        if hasattr(batch, "detach"):
            import torch

            return torch.from_numpy(z)
        return z
