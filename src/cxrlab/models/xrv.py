"""torchxrayvision's classifier architectures (``xrv:densenet121``, ``xrv:resnet50``), ready for its weights.

torchxrayvision (Cohen et al., 2022, "TorchXRayVision: A library of chest X-ray datasets and models", MIDL) trains
DenseNet-121 and ResNet-50 classifiers on merges of NIH, CheXpert, MIMIC-CXR, PadChest and others: 1-channel input,
18 outputs (``XRV_PATHOLOGIES``), pixels scaled to [-1024, 1024]. These builders reproduce the two networks with
the package's own state-dict keys, so one of its weights files loads without a key table:

- DenseNet-121: ``features.*`` (torchvision's DenseNet-121 features, 1-channel stem) and ``classifier.*``; the
  forward pass is torchvision's (ReLU, global average pool, Linear), which is the package's ``features2`` +
  ``classifier``. The package ships these weights as a pickled model; ``cxrlab.models.weights`` reads the tensors
  out of it without running its code.
- ResNet-50: torchvision's ResNet-50 with a 1-channel ``conv1``, held as ``model`` (the package saves
  ``self.model.state_dict()``, whose keys ``cxrlab.models.weights`` prefixes with ``model.``). Its published
  weights were trained at 512 px (``resnet50-res512-all``): use ``data.image_size=512`` to match them.

The package's normalisation, ``(2 * x / 255 - 1) * 1024``, is our preprocessing's ``(x / 255 - mean) / std``
with ``mean = 0.5`` and ``std = 1 / 2048``; it goes into the model's ``data_config`` and from there into every
checkpoint, so prediction, export and serving scale images as the weights expect. Our head replaces the 18
outputs when the run has other classes: each of the run's classes that names one of the package's findings (in any
dataset's spelling, ``XRV_SPELLINGS``: CheXpert's ``Pleural Effusion`` is its ``Effusion``) starts from that row of
its classifier (``head_rows``; the pairs are kept in ``model.xrv_classes``), the others from a fresh one.
"""

from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cxrlab.errors import CxrlabError
from cxrlab.models.contract import data_config

# The package's ``datasets.default_pathologies``: the output order of its 18-class models.
XRV_PATHOLOGIES = (
    "Atelectasis", "Consolidation", "Infiltration", "Pneumothorax", "Edema", "Emphysema", "Fibrosis", "Effusion",
    "Pneumonia", "Pleural_Thickening", "Cardiomegaly", "Nodule", "Mass", "Hernia", "Lung Lesion", "Fracture",
    "Lung Opacity", "Enlarged Cardiomediastinum",
)
# Other datasets' spellings of the package's findings (compared lower-case, with _ - / read as spaces); the same
# pairs as the shared findings table (cxrlab.data.findings, which models may not import: a test checks they agree).
XRV_SPELLINGS = {"Effusion": ("Pleural Effusion",), "Pleural_Thickening": ("Pleural Thickening",),
                 "Infiltration": ("infiltrates",), "Edema": ("pulmonary edema",), "Fibrosis": ("pulmonary fibrosis",),
                 "Hernia": ("hiatal hernia",), "Mass": ("pulmonary mass",)}
XRV_MEAN = (0.5,)
XRV_STD = (1.0 / 2048.0,)  # (x/255 - 0.5) * 2048 = (2 x/255 - 1) * 1024: the package's [-1024, 1024] scaling
XRV_NATIVE_SIZE = {"densenet121": 224, "resnet50": 512}


class XRVDenseNet(nn.Module):
    """torchxrayvision's DenseNet-121 with its keys (``features``, ``classifier``) and the timm-style contract."""

    def __init__(self, num_classes: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        import torchvision

        net = torchvision.models.densenet121(weights=None)
        net.features.conv0 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.features = net.features
        self.drop = nn.Dropout(drop_rate)  # no parameters: the package's keys are unchanged
        self.classifier = nn.Linear(net.classifier.in_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.features(x))
        return F.adaptive_avg_pool2d(out, (1, 1)).flatten(1)  # (B, 1024)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.drop(f))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class XRVResNet(nn.Module):
    """torchxrayvision's ResNet-50: torchvision's network with a 1-channel stem, held as ``model``."""

    def __init__(self, num_classes: int, drop_rate: float = 0.0) -> None:
        super().__init__()
        import torchvision

        self.model = torchvision.models.resnet50(weights=None, num_classes=num_classes)
        self.model.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.drop = nn.Dropout(drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
        return torch.flatten(m.avgpool(x), 1)  # (B, 2048)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.model.fc(self.drop(f))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def create_xrv(name: str, num_classes: int, in_chans: int, pretrained: bool, drop_rate: float | None,
               img_size: int) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``xrv:NAME`` (``densenet121`` or ``resnet50``); returns the model and its contract fields."""
    if name not in XRV_NATIVE_SIZE:
        raise CxrlabError(f"unknown torchxrayvision model xrv:{name}; valid: "
                          + ", ".join(f"xrv:{n}" for n in XRV_NATIVE_SIZE))
    if pretrained:
        raise CxrlabError(f"xrv:{name} weights are not downloaded by cxrlab: download torchxrayvision's file once "
                          "and pass --set model.weights=PATH (model.pretrained=false)")
    if in_chans != 1:
        raise CxrlabError(f"xrv:{name} takes 1-channel input, like torchxrayvision's weights; set model.in_chans=1")
    drop = 0.0 if drop_rate is None else float(drop_rate)
    if name == "densenet121":
        model: nn.Module = XRVDenseNet(num_classes, drop)
        cam_layer, heads = "features.norm5", ("classifier.",)
    else:
        model = XRVResNet(num_classes, drop)
        cam_layer, heads = "model.layer4", ("model.fc.",)
    return model, {"cam_layer": cam_layer, "cam_reshape": None,
                   "config": data_config(XRV_MEAN, XRV_STD, in_chans, img_size), "head_prefixes": heads}


def _spelling(name: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[_\-/]", " ", str(name))).strip().lower()


def class_rows(classes: list[str]) -> dict[int, int]:
    """{position of a model class: row of the package's classifier} for the classes that name one of its findings."""
    rows = {}
    for i, finding in enumerate(XRV_PATHOLOGIES):
        for name in (finding, *XRV_SPELLINGS.get(finding, ())):
            rows[_spelling(name)] = i
    return {j: rows[_spelling(c)] for j, c in enumerate(classes) if _spelling(c) in rows}


def head_rows(state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """An ``xrv:`` model's head built from a weights file's 18-output classifier, row by finding name.

    Returns the head tensors to load (``{}`` when the file's head already fits the model, or is not the package's
    18 outputs); the model's classes without a matching finding keep their fresh initialisation.
    """
    prefix = model.head_prefixes[0]
    weight, bias = state.get(prefix + "weight"), state.get(prefix + "bias")
    target = model.state_dict()
    if weight is None or bias is None or weight.shape[0] != len(XRV_PATHOLOGIES) \
            or weight.shape == target[prefix + "weight"].shape:
        return {}
    rows = class_rows(list(model.class_names))
    new_w, new_b = target[prefix + "weight"].clone(), target[prefix + "bias"].clone()
    for j, i in rows.items():
        new_w[j], new_b[j] = weight[i], bias[i]
    model.xrv_classes = {model.class_names[j]: XRV_PATHOLOGIES[i] for j, i in rows.items()}
    return {prefix + "weight": new_w, prefix + "bias": new_b} if rows else {}
