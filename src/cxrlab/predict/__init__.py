"""The one inference path: a trained run (model + typed ``RunInfo``), its evaluation preprocessing, image sources
(a split of the run's data through its cache, an index, or files), batching and probabilities.

``predict``, ``explain``, ``uncertainty``, ``pseudo``, ``cv``, deployment (ONNX) and the service use it.

```python
from cxrlab.predict import load_run, predict_run, predict_dataset, probabilities, eval_transform
model, info = load_run("runs/smoke")                # info: RunInfo (frozen), info.preprocess: Preprocess
preds = predict_run("runs/smoke", split="test")     # -> cxrlab.predictions.Predictions
```
"""

from cxrlab.predict.engine import Engine, Outputs, dataset_logits, predict_dataset
from cxrlab.predict.info import Preprocess, RunInfo
from cxrlab.predict.load import build_model, load_run, read_run_info, resolve_checkpoint
from cxrlab.predict.preprocess import Geometry, display_image, eval_transform, geometry, preprocess_image
from cxrlab.predict.run import choose_images, predict_images, predict_run
from cxrlab.predict.sources import (
    IMAGE_SUFFIXES,
    Batch,
    ImageSet,
    ImageSetDataset,
    cached_rows,
    images_from_files,
    images_from_index,
    images_from_run,
    iter_batches,
    open_run_cache,
)
from cxrlab.tasks import probabilities

__all__ = [
    "IMAGE_SUFFIXES", "Batch", "Engine", "Geometry", "ImageSet", "ImageSetDataset", "Outputs", "Preprocess",
    "RunInfo", "build_model", "cached_rows", "choose_images", "dataset_logits", "display_image",
    "eval_transform", "geometry", "images_from_files", "images_from_index", "images_from_run", "iter_batches",
    "load_run", "open_run_cache", "predict_dataset", "predict_images", "predict_run", "preprocess_image",
    "probabilities", "read_run_info", "resolve_checkpoint",
]
