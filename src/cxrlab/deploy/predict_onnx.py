"""``cxrlab predict ... --engine onnx``: the run's images through ONNX Runtime, on the same data path as PyTorch.

The images, the dataset (the run's cache or decoded files), the eval transform and ``predict_dataset`` are
``cxrlab.predict``'s: only the engine differs. The source is an exported ``.onnx`` (its contract gives the
``RunInfo``, after ``cxrlab.deploy.verify`` checked the file against it), or a run directory, exported first to a
temporary folder (parity-checked, then removed).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from cxrlab.predictions import Predictions


def predict_onnx(source: str | Path, *, split: str | None = "test", index: str | Path | None = None,
                 images: str | Path | None = None, split_csv: str | Path | None = None, which: str = "best",
                 batch_size: int = 64, threads: int | None = None) -> Predictions:
    """Predictions of ``source`` (an .onnx file or a run directory) with ONNX Runtime; see ``predict_run``."""
    from cxrlab.deploy.verify import open_verified
    from cxrlab.predict import RunInfo, predict_images

    source = Path(source)
    with tempfile.TemporaryDirectory(prefix="cxrlab-onnx-") as tmp:
        if source.suffix.lower() == ".onnx":
            path = source
        else:
            from cxrlab.deploy.export import export_run

            path = Path(tmp) / "model.onnx"
            export_run(source, path, which=which, max_val_images=0)
        engine, contract = open_verified(path, threads=threads)  # sha256, contract vs metadata vs graph
        info = RunInfo.from_dict(contract["run"], where=f"{path.name} contract: field 'run'")
        preds = predict_images(engine, info, split=split, index=index, images=images, split_csv=split_csv,
                               batch_size=batch_size)
    preds.meta.update(checkpoint=info.which or which, engine="onnx")
    return preds
