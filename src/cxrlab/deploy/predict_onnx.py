"""``cxrlab predict ... --engine onnx``: the run's images through ONNX Runtime, on the same data path as PyTorch.

The images, the dataset (the run's cache or decoded files), the eval transform and ``predict_dataset`` are
``cxrlab.predict``'s: only the engine differs. The source is an exported ``.onnx`` (its contract gives the
``RunInfo``), or a run directory, exported first to a temporary folder (parity-checked, then removed).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from cxrlab.errors import CxrlabError
from cxrlab.predictions import Predictions


def onnx_run_info(onnx_path: str | Path):
    """The ``RunInfo`` an exported model carries (its contract JSON, else its ONNX metadata)."""
    from cxrlab.deploy.export import sidecar_paths
    from cxrlab.deploy.onnx_engine import OnnxEngine
    from cxrlab.predict import RunInfo
    from cxrlab.utils import read_json

    contract_path = sidecar_paths(onnx_path)[0]
    contract = read_json(contract_path) if contract_path.exists() else OnnxEngine(onnx_path).metadata
    if not isinstance(contract, dict) or not contract.get("run"):
        raise CxrlabError(f"{onnx_path} has no cxrlab contract ({contract_path.name} or metadata); export it with "
                          "`cxrlab export`")
    return RunInfo.from_dict(contract["run"], where=f"{Path(onnx_path).name} contract: field 'run'")


def predict_onnx(source: str | Path, *, split: str | None = "test", index: str | Path | None = None,
                 images: str | Path | None = None, split_csv: str | Path | None = None, which: str = "best",
                 batch_size: int = 64, threads: int | None = None) -> Predictions:
    """Predictions of ``source`` (an .onnx file or a run directory) with ONNX Runtime; see ``predict_run``."""
    from cxrlab.deploy.onnx_engine import OnnxEngine
    from cxrlab.predict import predict_images

    source = Path(source)
    with tempfile.TemporaryDirectory(prefix="cxrlab-onnx-") as tmp:
        if source.suffix.lower() == ".onnx":
            path = source
        else:
            from cxrlab.deploy.export import export_run

            path = Path(tmp) / "model.onnx"
            export_run(source, path, which=which, max_val_images=0)
        info, engine = onnx_run_info(path), OnnxEngine(path, threads=threads)
        preds = predict_images(engine, info, split=split, index=index, images=images, split_csv=split_csv,
                               batch_size=batch_size)
    preds.meta.update(checkpoint=info.which or which, engine="onnx")
    return preds
