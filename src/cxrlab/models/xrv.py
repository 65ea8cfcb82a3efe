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
outputs when the run has other classes (a fresh ``classifier`` / ``model.fc``); with the 18 classes in the
package's order it keeps the trained one.
"""

from __future__ import annotations

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
