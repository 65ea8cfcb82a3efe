"""``predict_run``: a trained run's probabilities on a split of its data, another index, or image files."""

from __future__ import annotations

from pathlib import Path

from cxrlab.errors import CxrlabError
from cxrlab.predict.engine import predict_dataset
from cxrlab.predict.info import RunInfo
from cxrlab.predict.load import load_run
from cxrlab.predict.sources import (
    ImageSet,
    ImageSetDataset,
    images_from_files,
    images_from_index,
    images_from_run,
    open_run_cache,
)
from cxrlab.predict.tta import with_tta
from cxrlab.predictions import Predictions
from cxrlab.provenance import check_run_files


def choose_images(info: RunInfo, *, split: str | None = None, index: str | Path | None = None,
                  images: str | Path | None = None, split_csv: str | Path | None = None) -> ImageSet:
    """The images a verb means: ``images`` (file or folder), ``index`` (all rows, or its ``split``), else
    ``split`` (default test) of the run's own data.

    A split of an index comes from ``split_csv`` when given; else, when the index is the one the run was
    trained on, from the run's own split.csv; else from the index's own split column (external data sets).
    """
    if images is not None and index is not None:
        raise CxrlabError("give either --images or --index, not both")
    if images is not None:
        return images_from_files(images)
    if index is not None:
        if split is not None and split_csv is None and _same_index(index, info.index):
            split_csv = info.split_csv
            check_run_files(info.run_dir, info.index)  # the run's split and index, as trained on
        return images_from_index(index, info.classes, split=split, split_csv=split_csv)
    check_run_files(info.run_dir, info.index)
    return images_from_run(info, split or "test")


def _same_index(a: str | Path, b: str | Path | None) -> bool:
    """Whether two index paths (folders or index.csv files) name the same index."""
    if b is None:
        return False

    def csv(p: str | Path) -> Path:
        p = Path(p)
        return (p / "index.csv" if p.is_dir() else p).resolve()

    return csv(a) == csv(b)


def predict_run(run: str | Path, *, split: str | None = "test", index: str | Path | None = None,
                images: str | Path | None = None, split_csv: str | Path | None = None, which: str = "best",
                batch_size: int = 64, device: str = "cpu", tta: str = "none") -> Predictions:
    """Predict with a run's ``which`` checkpoint on ``images``, on ``index`` (another dataset: all of it, or its
    ``split``), or on ``split`` of the run's own data; see ``cxrlab.predict.sources`` for how images are read.
    ``tta``: prediction-time augmentation (``cxrlab.predict.tta``; ``shifts`` or ``none``)."""
    model, info = load_run(run, which=which, device=device)
    preds = predict_images(with_tta(model, tta), info, split=split, index=index, images=images, split_csv=split_csv,
                           batch_size=batch_size, device=device)
    preds.meta["checkpoint"] = which
    if tta != "none":
        preds.meta["tta"] = tta
    return preds


def predict_images(engine, info: RunInfo, *, split: str | None = "test", index: str | Path | None = None,
                   images: str | Path | None = None, split_csv: str | Path | None = None, batch_size: int = 64,
                   device: str = "cpu") -> Predictions:
    """``engine`` (a model, or any callable from a batch to logits, e.g. ONNX Runtime) on the images a verb
    means (``choose_images``), read through the run's cache when it holds them; the sidecar says what was read."""
    chosen = choose_images(info, split=split, index=index, images=images, split_csv=split_csv)
    dataset = ImageSetDataset(chosen, info, cache=open_run_cache(info, chosen))
    preds = predict_dataset(engine, info, dataset, batch_size=batch_size, device=device)
    preds.meta.update(split=chosen.name, checkpoint=info.which, images_from_cache=dataset.n_from_cache)
    if info.run_dir is not None:
        preds.meta["run_dir"] = str(info.run_dir.resolve())
    if chosen.index is not None and index is not None:
        preds.meta["index"] = str(Path(chosen.index).resolve())
    preds.patient_ids = chosen.patient_ids
    return preds
