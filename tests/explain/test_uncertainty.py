import json

import numpy as np
import pandas as pd
import pytest
import torch
from explain_helpers import make_labels_index, write_preds
from torch import nn

from cxrlab.cli import main
from cxrlab.errors import CxrlabError
from cxrlab.evaluate.selective import image_errors, risk_coverage
from cxrlab.uncertainty import dropout_modules, mc_dropout_samples, summarize, tta_samples, uncertainty_frame


def _net(p=0.5):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Dropout(p), nn.Linear(4, 3))


def test_mc_dropout_variance_zero_off_positive_on():
    net, x = _net(0.5), torch.randn(2, 1, 16, 16)
    net.eval()
    with torch.no_grad():
        off = torch.stack([net(x).sigmoid() for _ in range(5)])
    assert off.std(0).max() == 0  # dropout off: every pass identical
    running = net[1].running_mean.clone()
    on = mc_dropout_samples(net, x, 10)
    assert on.shape == (10, 2, 3) and on.std(0).max() > 0
    assert torch.equal(net[1].running_mean, running)  # BatchNorm stayed in eval mode
    assert not net.training and not net[5].training  # restored
    looped = mc_dropout_samples(net, x, 10, batched=False)
    assert looped.std(0).max() > 0


def test_mc_dropout_without_dropout_names_alternatives():
    net = _net(0.0)
    assert dropout_modules(net) == []
    with pytest.raises(CxrlabError, match="tta.*ensemble"):
        mc_dropout_samples(net, torch.randn(1, 1, 8, 8), 4)


def test_tta_views_shape_and_no_flip_by_default():
    net = _net(0.0).eval()
    x = torch.randn(2, 1, 16, 16)
    s = tta_samples(net, x, views=7)
    assert s.shape == (7, 2, 3)
    assert torch.allclose(s[0], net(x).sigmoid())  # first view is the identity


def test_summarize_entropy_and_mi():
    certain = np.full((5, 1, 2), 0.99)
    split = np.concatenate([np.full((5, 1, 2), 0.01), np.full((5, 1, 2), 0.99)])
    a, b = summarize(certain), summarize(split)
    assert a["std"].max() < 1e-9 and a["mi"].max() < 1e-6
    assert b["mi"].min() > 0.5 and b["entropy"].min() > a["entropy"].max()
    frame = uncertainty_frame(b, ["x", "y"])
    assert list(frame.columns) == ["std:x", "std:y", "entropy:x", "entropy:y", "mi:x", "mi:y"]


def test_risk_coverage_orders_by_uncertainty():
    err = np.array([0, 0, 0, 1, 1.0])
    good = risk_coverage(np.array([0.1, 0.2, 0.3, 0.8, 0.9]), err)
    bad = risk_coverage(np.array([0.9, 0.8, 0.7, 0.1, 0.2]), err)
    assert good["risk"][2] == 0 and good["aurc"] < bad["aurc"]
    assert good["risk_at_full"] == pytest.approx(0.4)
    y = np.array([[1, np.nan], [0, 1]])
    assert np.allclose(image_errors(np.array([[0.9, 0.9], [0.8, 0.8]]), y, "multilabel"), [0, 0.5])


def _selective_files(tmp_path, rng, n=200):
    classes = ["A", "B"]
    files = {}
    all_ids, all_y = [], []
    for split in ("val", "test"):
        ids = [f"{split}{i}" for i in range(n)]
        y = (rng.random((n, 2)) < 0.5).astype(float)
        noise = rng.random(n)  # per-image difficulty: noisy images are uncertain and often wrong
        probs = np.clip(np.where(y == 1, 0.9, 0.1) + (rng.normal(0, 1, (n, 2)) * noise[:, None] * 0.6), 0, 1)
        extra = pd.DataFrame({"std:A": noise * 0.3, "std:B": noise * 0.3})
        files[split] = write_preds(tmp_path / f"{split}.csv", ids, probs, classes, split, extra=extra)
        all_ids += ids
        all_y.append(y)
    labels = make_labels_index(tmp_path / "labels", all_ids, np.concatenate(all_y), classes)
    return files, labels


def test_selective_cli_threshold_from_val(tmp_path):
    files, labels = _selective_files(tmp_path, np.random.default_rng(0))
    out = tmp_path / "sel"
    argv = ["selective", "--val", str(files["val"]), "--test", str(files["test"]), "--labels", str(labels),
            "--coverage", "0.8", "--std-threshold", "0.15", "--out", str(out)]
    assert main(argv) == 0
    res = json.loads((out / "selective.json").read_text())
    assert res["score"] == "std"
    assert res["val"]["kept"]["coverage"] == pytest.approx(0.8, abs=0.02)
    assert res["test"]["kept"]["risk"] < res["test"]["all"]["risk"]
    assert (out / "risk_coverage.png").stat().st_size > 1000
    review = pd.read_csv(out / "review.csv")
    assert len(review) >= res["test"]["kept"]["n_abstained"] and (review["uncertainty"] > 0).all()


def test_selective_refuses_test_as_val(tmp_path, capsys):
    files, labels = _selective_files(tmp_path, np.random.default_rng(1), n=20)
    argv = ["selective", "--val", str(files["test"]), "--test", str(files["test"]), "--labels", str(labels),
            "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    assert "refusing to fit the abstention threshold" in capsys.readouterr().err


class _BackboneDropout(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4, 2)

    def forward_features(self, x):
        return self.body(x)

    def forward_head(self, f):
        return self.head(f)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


def test_head_only_sampling_used_only_when_backbone_is_deterministic():
    from cxrlab.models import create_model
    from cxrlab.uncertainty import _head_only, enable_mc_dropout

    torch.manual_seed(0)
    x = torch.randn(3, 1, 32, 32)
    gap = create_model("cnn_gap", 2, in_chans=1, img_size=32)
    deep = _BackboneDropout()
    for m, expected in ((gap, True), (deep, False)):
        enable_mc_dropout(m)
        with torch.no_grad():
            assert _head_only(m, x) is expected
        s = mc_dropout_samples(m, x, 8)
        assert s.shape == (8, 3, 2) and s.std(0).max() > 0
