"""The default phantom is learnable: a 4-layer CNN reaches validation macro AUROC > 0.9 in a few epochs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrlab.data.images import read_image
from cxrlab.data.phantom import make_phantom


def _tiny_cnn(num_classes: int):
    from torch import nn

    def block(i, o):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))

    return nn.Sequential(block(1, 16), block(16, 32), block(32, 64), block(64, 64), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(64, num_classes))


@pytest.mark.slow
def test_multilabel_phantom_is_learnable_at_64px(tmp_path):
    import torch
    from sklearn.metrics import roc_auc_score

    torch.manual_seed(0)
    out = make_phantom(tmp_path, n=900, size=64, seed=0)
    labels = pd.read_csv(out / "labels.csv")
    classes = list(labels.columns[3:])
    x = torch.tensor(np.stack([read_image(out / "images" / f) for f in labels["filename"]])[:, None] / 255.0,
                     dtype=torch.float32)
    y = torch.tensor(labels[classes].to_numpy(), dtype=torch.float32)
    val = torch.tensor(labels["patient_id"].str[1:].astype(int).to_numpy() % 4 == 0)  # patient-level split
    model, loss_fn = _tiny_cnn(len(classes)), torch.nn.BCEWithLogitsLoss()
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    xt, yt = x[~val], y[~val]
    for _ in range(8):
        model.train()
        for b in torch.randperm(len(xt)).split(64):
            opt.zero_grad()
            loss_fn(model(xt[b]), yt[b]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        p = torch.sigmoid(model(x[val])).numpy()
    aucs = [roc_auc_score(y[val][:, k].numpy(), p[:, k]) for k in range(len(classes))]
    assert np.mean(aucs) > 0.9, aucs
