"""Training on merged data: no gradient from unlabelled findings, source-balanced draws, per-source metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from cxrlab.config import load_config
from cxrlab.data.sampling import build_sampler, source_row_weights
from cxrlab.errors import CxrlabError
from cxrlab.losses import build_loss
from cxrlab.train.sources import per_source_metrics


@pytest.mark.parametrize("loss", ["bce", "weighted_bce", "focal", "asl"])
def test_unlabelled_finding_gets_no_gradient_from_that_source(merged, loss):
    index, _ = merged
    labels = torch.as_tensor(index.labels())  # (N, C) NaN where the source does not label the finding
    source = index.frame["source"].to_numpy()
    mass = index.classes.index("Mass")  # labelled by nih, not by padchest
    torch.manual_seed(0)
    features = torch.randn(len(index), 8)
    head = torch.nn.Linear(8, len(index.classes))
    known = ~torch.isnan(labels)
    counts = torch.stack([(known & (labels == 0)).sum(0), (labels == 1).sum(0)]).numpy().astype(float)
    counts[1] = counts[1].clip(min=1)  # weighted_bce refuses the NIH phantom's never-positive findings
    loss_fn = build_loss(loss, "multilabel", len(index.classes), class_counts=counts)
    pad = torch.as_tensor(source == "padchest")
    loss_fn(head(features[pad]), labels[pad]).backward()  # a batch of padchest images only
    assert torch.all(head.weight.grad[mass] == 0) and head.bias.grad[mass] == 0
    nodule = index.classes.index("Nodule")
    assert torch.any(head.weight.grad[nodule] != 0)  # padchest labels nodules: those do learn
    head.zero_grad()
    logits = head(features)
    logits.retain_grad()
    loss_fn(logits, labels).backward()  # a mixed batch: padchest rows still give mass nothing
    assert torch.all(logits.grad[pad, mass] == 0)
    assert torch.all(logits.grad[torch.as_tensor(source == "nih"), mass] != 0)


def test_balanced_sources_get_equal_draw_shares():
    sources = np.array(["a"] * 80 + ["b"] * 15 + ["c"] * 5)
    with pytest.warns(UserWarning, match="'c'"):  # c is drawn 1/3 of the time with 5% of the images
        w = source_row_weights(sources, "balanced")
    shares = {s: w[sources == s].sum() / w.sum() for s in "abc"}
    assert shares == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    w = source_row_weights(sources, {"a": 1, "b": 1, "c": 0.25})
    assert w[sources == "c"].sum() / w.sum() == pytest.approx(0.25 / 2.25)
    with pytest.raises(CxrlabError, match="give a weight for each"):
        source_row_weights(sources, {"a": 1, "b": 1})


def test_class_sampler_inside_source_shares_and_simulated_draws():
    sources = np.array(["a"] * 90 + ["b"] * 10)
    labels = np.zeros((100, 2), dtype=np.float32)
    labels[:5, 0] = 1  # a rare finding in source a
    labels[90:, 1] = np.nan  # b does not label finding 1
    gen = torch.Generator().manual_seed(0)
    sampler = build_sampler("rarity", "multilabel", labels, num_samples=20000, generator=gen, sources=sources,
                            source_weights="balanced")
    draws = np.array(list(sampler))
    assert abs(np.mean(draws >= 90) - 0.5) < 0.02  # simulation: half the draws from b
    assert np.mean(draws < 5) > 0.2  # within a, the rare positives are drawn far above their 5/90


def test_source_weights_config_and_override():
    cfg = load_config(None, ["data.source_weights.nih=2", "data.source_weights.chexpert=1"])
    assert cfg.data.source_weights == {"nih": 2.0, "chexpert": 1.0}
    assert load_config(None, ["data.source_weights=balanced"]).data.source_weights == "balanced"
    with pytest.raises(CxrlabError, match="data.source_weights"):
        load_config(None, ["data.source_weights=even"])


def test_per_source_metrics_match_sklearn_per_source(merged):
    index, _ = merged
    rng = np.random.default_rng(0)
    ids = index.frame["image_id"].tolist()
    targets = index.labels()
    probs = np.clip(np.nan_to_num(targets, nan=0.5) * 0.3 + rng.random(targets.shape) * 0.7, 0, 1)
    got = per_source_metrics(index, {"ids": ids, "probs": probs, "targets": targets}, "multilabel",
                             len(index.classes))
    assert set(got) == {"val_metric_nih", "val_metric_chexpert", "val_metric_padchest"}
    source = index.frame["source"].to_numpy()
    for name in ("nih", "chexpert", "padchest"):
        rows = source == name
        aucs = [roc_auc_score(targets[rows, c], probs[rows, c]) for c in range(targets.shape[1])
                if not np.isnan(targets[rows, c]).any() and len(set(targets[rows, c])) == 2]
        assert got[f"val_metric_{name}"] == pytest.approx(np.mean(aucs))
