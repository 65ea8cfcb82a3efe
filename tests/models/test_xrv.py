"""torchxrayvision's 18-output classifier mapped onto a run's own classes by finding name (any dataset's
spelling), checked against the source network's own forward pass on the package's pixel scale."""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from cxrlab.data.findings import canonical
from cxrlab.models import create_model
from cxrlab.models.xrv import XRV_PATHOLOGIES, XRV_SPELLINGS


def _xrv_densenet() -> nn.Module:
    """The package's DenseNet-121 layout: torchvision's network with a 1-channel stem and 18 outputs."""
    torch.manual_seed(0)
    m = torchvision.models.densenet121(num_classes=18)
    m.features.conv0 = nn.Conv2d(1, 64, 7, 2, 3, bias=False)
    for mod in m.modules():  # non-trivial running statistics, so eval-mode BN is checked too
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    return m.eval()


def test_run_classes_start_from_the_matching_xrv_rows(tmp_path):
    ref = _xrv_densenet()
    path = tmp_path / "xrv-densenet121.pt"
    torch.save({**ref.state_dict(), "op_threshs": torch.rand(18)}, path)  # op_threshs: calibration, not weights
    classes = ["Pleural Effusion", "Nodule", "Support Devices"]  # CheXpert / NIH spellings; one the package lacks
    model = create_model("xrv:densenet121", num_classes=3, in_chans=1, class_names=classes, weights=str(path),
                         img_size=64).eval()
    assert model.xrv_classes == {"Pleural Effusion": "Effusion", "Nodule": "Nodule"}
    x01 = torch.rand(2, 1, 64, 64)
    ours_in = (x01 - model.data_config["mean"][0]) / model.data_config["std"][0]
    with torch.no_grad():
        want, got = ref((2 * x01 - 1) * 1024), model(ours_in)  # the package's normalize(img, 255) scale
    rows = [XRV_PATHOLOGIES.index("Effusion"), XRV_PATHOLOGIES.index("Nodule")]
    torch.testing.assert_close(got[:, :2], want[:, rows], rtol=1e-4, atol=1e-3)
    assert not torch.allclose(got[:, 2], want[:, XRV_PATHOLOGIES.index("Lung Lesion")])


def test_spellings_agree_with_the_findings_table():
    for xrv_name in XRV_PATHOLOGIES:
        for other in XRV_SPELLINGS.get(xrv_name, ()):
            assert canonical(other) == canonical(xrv_name), (xrv_name, other)
