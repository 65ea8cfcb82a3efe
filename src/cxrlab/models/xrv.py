"""torchxrayvision weights (DenseNet-121, ResNet-50) from a local file: key mapping, class mapping, normalisation.

torchxrayvision's models (Cohen et al. 2022) take one channel at 224 px with pixels scaled to [-1024, 1024]
and predict 18 findings in ``XRV_CLASSES`` order. A weights file is taken for theirs when its stem takes one
channel and its classifier has 18 rows, unless a cxrlab checkpoint JSON sits beside it. Given such a state
dict as ``model.weights`` (safetensors or
a plain state dict: a file saved with ``torch.save(model.state_dict(), path)``; a pickled module is refused, as
cxrlab never unpickles arbitrary objects), ``convert`` makes it fit a cxrlab model:

* **keys**: the DenseNet's ``features.*`` / ``classifier.*`` are torchvision's and timm's own names
  (``timm:densenet121``, ``tv:densenet121``); the ResNet's ``model.*`` prefix is kept for ``tv:resnet50`` and
  dropped for ``timm:resnet50`` (``weights._match_keys``); ``op_threshs`` (calibration thresholds) is dropped;
* **classes**: each of the model's classes that names an xrv finding (``XRV_SPELLINGS``: the other datasets'
  spellings, the same as the shared findings table's, which ``models`` may not import; a test checks they agree)
  gets that row of xrv's classifier, so NIH ``Effusion``, CheXpert ``Pleural Effusion`` and PadChest
  ``pleural effusion`` all take xrv's ``Effusion`` row; the others keep their fresh initialisation;
* **channels**: the one-channel first convolution is repeated (divided by 3) for ``model.in_chans=3``;
* **normalisation**: the model's ``data_config`` becomes mean 0.5, std 0.5/1024, which maps [0, 1] images to
  xrv's [-1024, 1024]; training and inference read it from there (and checkpoints record it).
"""

from __future__ import annotations

import re

import torch
from torch import nn

XRV_CLASSES = ["Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema", "Fibrosis",
               "Effusion", "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass", "Hernia",
               "Lung Lesion", "Fracture", "Lung Opacity", "Enlarged Cardiomediastinum"]
XRV_MEAN, XRV_STD = (0.5,), (0.5 / 1024,)
HEADS = {"densenet": "classifier", "resnet": "model.fc"}
# Other datasets' spellings of xrv's findings (compared lower-case, with _ - / read as spaces).
XRV_SPELLINGS = {"Effusion": ("Pleural Effusion",), "Pleural_Thickening": ("Pleural Thickening",),
                 "Infiltration": ("infiltrates",), "Edema": ("pulmonary edema",), "Fibrosis": ("pulmonary fibrosis",),
                 "Hernia": ("hiatal hernia",), "Mass": ("pulmonary mass",)}


def _key(name: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[_\-/]", " ", str(name))).strip().lower()


def detect(state: dict[str, torch.Tensor]) -> str | None:
    """``densenet`` or ``resnet`` for a torchxrayvision state dict (one-channel stem, 18-finding head), else None."""
    stem = {"densenet": "features.conv0.weight", "resnet": "model.conv1.weight"}
    for kind, key in stem.items():
        head = state.get(HEADS[kind] + ".weight")
        if key in state and state[key].shape[1] == 1 and head is not None and head.shape[0] == len(XRV_CLASSES):
            return kind
    return None


def _target_head(model: nn.Module, in_features: int) -> str | None:
    """The key (without ``.weight``) of the model's classifier: the head Linear taking ``in_features``."""
    heads = tuple(getattr(model, "head_prefixes", ()))
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and (name + ".").startswith(heads) and module.in_features == in_features:
            return name
    return None


def class_rows(classes: list[str]) -> dict[int, int]:
    """{model class position: xrv row} for the classes that name an xrv finding (any known spelling)."""
    xrv = {}
    for i, c in enumerate(XRV_CLASSES):
        for name in (c, *XRV_SPELLINGS.get(c, ())):
            xrv[_key(name)] = i
    return {j: xrv[_key(c)] for j, c in enumerate(classes) if _key(c) in xrv}


def convert(state: dict[str, torch.Tensor], model: nn.Module
            ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(body, head) of a torchxrayvision state dict made to fit ``model`` (see the module docstring): the body
    still in the file's key names, the head already in the model's. Other files: ``(state, {})``."""
    kind = detect(state)
    if kind is None:
        return state, {}
    state = {k: v for k, v in state.items() if k != "op_threshs"}
    weight, bias = state.pop(HEADS[kind] + ".weight"), state.pop(HEADS[kind] + ".bias")
    target = model.state_dict()
    stem = "features.conv0.weight" if kind == "densenet" else "model.conv1.weight"
    like = next((v for k, v in target.items() if k.endswith(stem.removeprefix("model."))), None)
    if like is not None and like.shape[1] == 3:
        state[stem] = state[stem].repeat(1, 3, 1, 1) / 3  # the gray filter applied to each of R, G, B
    head = _target_head(model, weight.shape[1])
    rows = class_rows(list(getattr(model, "class_names", [])))
    mapped = {}
    if head is not None and rows:
        new_w, new_b = target[head + ".weight"].clone(), target[head + ".bias"].clone()
        for j, i in rows.items():
            new_w[j], new_b[j] = weight[i], bias[i]
        mapped = {head + ".weight": new_w, head + ".bias": new_b}
    model.data_config = {**getattr(model, "data_config", {}), "mean": XRV_MEAN, "std": XRV_STD}
    model.xrv_classes = {model.class_names[j]: XRV_CLASSES[i] for j, i in rows.items()}
    return state, mapped
