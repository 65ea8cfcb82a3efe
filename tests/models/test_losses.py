"""Each loss against hand-computed values on tiny tensors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cxrlab.errors import CxrlabError
from cxrlab.losses import build_loss, inverse_frequency_weights, loss_names

LOG2 = math.log(2)
NAN = float("nan")


def close(a: torch.Tensor, b: float) -> bool:
    return abs(float(a.detach()) - b) < 1e-5


def test_bce_masks_nan_and_averages_known_entries():
    loss = build_loss("bce", "multilabel", 2)
    logits = torch.tensor([[0.0, 5.0], [2.0, -1.0]], requires_grad=True)
    target = torch.tensor([[1.0, NAN], [1.0, NAN]])
    value = loss(logits, target)
    assert close(value, (LOG2 + math.log1p(math.exp(-2))) / 2)
    value.backward()
    assert logits.grad[:, 1].abs().sum() == 0  # unknown labels give no gradient


def test_bce_all_unknown_gives_zero_with_graph():
    logits = torch.zeros(2, 3, requires_grad=True)
    value = build_loss("bce", "multilabel", 3)(logits, torch.full((2, 3), NAN))
    value.backward()
    assert float(value.detach()) == 0.0 and logits.grad is not None


def test_bce_per_sample_weight():
    loss = build_loss("bce", "multilabel", 1)
    logits, target = torch.tensor([[0.0], [2.0]]), torch.tensor([[1.0], [1.0]])
    l1, l2 = LOG2, math.log1p(math.exp(-2))
    assert close(loss(logits, target, weight=torch.tensor([1.0, 0.0])), l1)
    assert close(loss(logits, target, weight=torch.tensor([1.0, 3.0])), (l1 + 3 * l2) / 4)


def test_weighted_bce_pos_weight_from_counts():
    loss = build_loss("weighted_bce", "multilabel", 2, class_counts=[[3, 1], [1, 1]])  # (negatives, positives)
    value = loss(torch.zeros(1, 2), torch.tensor([[1.0, 1.0]]))
    assert close(value, (3 * LOG2 + LOG2) / 2)
    same = build_loss("weighted_bce", "multilabel", 2, class_counts=[1, 1], num_samples=4)  # positives + rows
    assert close(same(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])), (3 * LOG2 + LOG2) / 2)


def test_weighted_bce_rejects_class_without_positives():
    with pytest.raises(CxrlabError, match="no positive"):
        build_loss("weighted_bce", "multilabel", 2, class_counts=[[3, 4], [1, 0]])


def test_binary_focal():
    loss = build_loss("focal", "multilabel", 2, alpha=0.25, gamma=2.0)
    value = loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]))
    assert close(value, (0.25 * 0.25 * LOG2 + 0.75 * 0.25 * LOG2) / 2)


def test_asymmetric_loss():
    loss = build_loss("asl", "multilabel", 2, gamma_neg=4, gamma_pos=1, clip=0.05)
    value = loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]))
    pos = 0.5 * LOG2
    neg = -(0.45**4) * math.log(0.55)
    assert close(value, (pos + neg) / 2)


def test_asl_ignores_nan():
    loss = build_loss("asl", "multilabel", 2)
    a = loss(torch.zeros(1, 2), torch.tensor([[1.0, NAN]]))
    assert close(a, 0.5 * LOG2)


def test_ce_matches_torch_with_class_weights():
    logits = torch.tensor([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]])
    target = torch.tensor([0, 1])
    w = torch.tensor([1.0, 2.0, 3.0])
    loss = build_loss("ce", "multiclass", 3, class_weights=w.tolist())
    assert close(loss(logits, target), F.cross_entropy(logits, target, weight=w))


def test_ce_label_smoothing_matches_torch_and_soft_targets():
    logits = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    target = torch.tensor([0, 0])
    loss = build_loss("ce", "multiclass", 2, label_smoothing=0.1)
    assert close(loss(logits, target), F.cross_entropy(logits, target, label_smoothing=0.1))
    assert close(loss(logits, F.one_hot(target, 2).float()), float(loss(logits, target)))


def test_ce_inverse_frequency_and_weight():
    loss = build_loss("ce", "multiclass", 2, class_counts=[10, 30], class_weights="inverse_frequency")
    logits = torch.zeros(2, 2)
    assert close(loss(logits, torch.tensor([0, 1])), LOG2)
    assert close(loss(torch.tensor([[0.0, 0.0], [9.0, 0.0]]), torch.tensor([0, 0]), weight=torch.tensor([1.0, 0.0])),
                 LOG2)


def test_inverse_frequency_weights():
    w = inverse_frequency_weights([10, 30])
    assert torch.allclose(w, torch.tensor([2.0, 2.0 / 3.0]))
    with pytest.raises(CxrlabError, match="zero examples"):
        inverse_frequency_weights([10, 0])


def test_multiclass_focal_s4_alpha():
    loss = build_loss("focal", "multiclass", 4, gamma=3.5, alpha=[1.0, 1.5, 2.0, 12.0])
    value = loss(torch.zeros(1, 4), torch.tensor([3]))
    assert close(value, 12.0 * 0.75**3.5 * math.log(4))
    both = loss(torch.zeros(2, 4), torch.tensor([3, 0]), weight=torch.tensor([0.0, 1.0]))
    assert close(both, 1.0 * 0.75**3.5 * math.log(4))


def test_bad_names_and_tasks():
    with pytest.raises(CxrlabError, match="valid: asl, bce, ce, focal, weighted_bce"):
        build_loss("focl", "multilabel", 2)
    with pytest.raises(CxrlabError, match="valid for multiclass: ce, focal"):
        build_loss("bce", "multiclass", 2)
    with pytest.raises(CxrlabError, match="4 values but there are 3 classes"):
        build_loss("focal", "multiclass", 3, alpha=[1, 1, 1, 1])
    with pytest.raises(CxrlabError, match="bad option"):
        build_loss("bce", "multilabel", 2, gama=2)
    assert loss_names("multiclass") == ["ce", "focal"]


def test_shape_mismatch_is_one_line_error():
    with pytest.raises(CxrlabError, match="multilabel"):
        build_loss("bce", "multilabel", 2)(torch.zeros(2, 2), torch.zeros(2))
