"""torchxrayvision-layout weights from a local file: keys, classes, channels and normalisation, checked against
the reference torchvision forward pass on xrv's own pixel scale. The files are made here (nothing downloaded)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from cxrlab.data.findings import canonical
from cxrlab.errors import CxrlabError
from cxrlab.models import create_model
from cxrlab.models.xrv import XRV_CLASSES, XRV_SPELLINGS, detect


def _xrv_densenet() -> nn.Module:
    torch.manual_seed(0)
    m = torchvision.models.densenet121(num_classes=18)
    m.features.conv0 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    for mod in m.modules():  # non-trivial running statistics, so eval-mode BN is checked too
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


class _XrvResNet(nn.Module):  # torchxrayvision wraps torchvision's ResNet as ``self.model``
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.model = torchvision.models.resnet50(num_classes=18)
        self.model.conv1 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)


@pytest.fixture(scope="module")
def densenet_file(tmp_path_factory):
    ref = _xrv_densenet()
    path = tmp_path_factory.mktemp("xrv") / "xrv-densenet121.pt"
    torch.save({**ref.state_dict(), "op_threshs": torch.rand(18)}, path)
    return ref, path


def _xrv_pixels(x01: torch.Tensor) -> torch.Tensor:
    return (2 * x01 - 1) * 1024  # xrv.datasets.normalize(img, 255): [0, 255] -> [-1024, 1024]


def _ours(model: nn.Module, x01: torch.Tensor) -> torch.Tensor:
    mean, std = model.data_config["mean"][0], model.data_config["std"][0]
    return (x01 - mean) / std


@pytest.mark.parametrize("name", ["timm:densenet121", "tv:densenet121"])
def test_densenet_weights_give_xrv_outputs_for_the_mapped_classes(name, densenet_file):
    ref, path = densenet_file
    classes = ["Pleural Effusion", "Nodule", "Support Devices"]  # CheXpert / NIH spellings; one xrv lacks
    model = create_model(name, num_classes=3, in_chans=1, class_names=classes, weights=str(path), img_size=64).eval()
    assert model.xrv_classes == {"Pleural Effusion": "Effusion", "Nodule": "Nodule"}
    x01 = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        want, got = ref(_xrv_pixels(x01)), model(_ours(model, x01))
    rows = [XRV_CLASSES.index("Effusion"), XRV_CLASSES.index("Nodule")]
    torch.testing.assert_close(got[:, :2], want[:, rows], rtol=1e-4, atol=1e-3)
    assert not torch.allclose(got[:, 2], want[:, XRV_CLASSES.index("Lung Lesion")])


def test_three_channel_model_repeats_the_gray_stem(densenet_file):
    ref, path = densenet_file
    model = create_model("timm:densenet121", num_classes=18, in_chans=3, class_names=XRV_CLASSES,
                         weights=str(path), img_size=64).eval()
    x01 = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(_ours(model, x01).repeat(1, 3, 1, 1)), ref(_xrv_pixels(x01)), rtol=1e-4,
                                   atol=1e-3)


@pytest.mark.parametrize("name", ["timm:resnet50", "tv:resnet50"])
def test_resnet_weights_load_into_timm_and_torchvision(name, tmp_path):
    ref = _XrvResNet().eval()
    assert detect(ref.state_dict()) == "resnet"
    path = tmp_path / "xrv-resnet50.pt"
    torch.save(ref.state_dict(), path)
    model = create_model(name, num_classes=18, in_chans=1, class_names=XRV_CLASSES, weights=str(path),
                         img_size=64).eval()
    x01 = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(_ours(model, x01)), ref.model(_xrv_pixels(x01)), rtol=1e-4, atol=1e-3)


def test_spellings_agree_with_the_findings_table():
    for xrv_name in XRV_CLASSES:
        for other in XRV_SPELLINGS.get(xrv_name, ()):
            assert canonical(other) == canonical(xrv_name), (xrv_name, other)


def test_a_pickled_module_is_refused(tmp_path):
    path = tmp_path / "full.pt"
    torch.save(_XrvResNet(), path)
    with pytest.raises(CxrlabError, match="cannot read it safely"):
        create_model("tv:resnet50", num_classes=18, in_chans=1, weights=str(path), img_size=64)


def test_a_cxrlab_checkpoint_of_the_same_shape_is_not_taken_for_xrv(densenet_file, tmp_path):
    ref, _ = densenet_file
    path = tmp_path / "best.pt"
    torch.save(ref.state_dict(), path)
    (tmp_path / "best.json").write_text("{}")  # the JSON every cxrlab checkpoint has beside its weights
    model = create_model("timm:densenet121", num_classes=18, in_chans=1, weights=str(path), img_size=64)
    assert model.data_config["std"] != (0.5 / 1024,) and not hasattr(model, "xrv_classes")
