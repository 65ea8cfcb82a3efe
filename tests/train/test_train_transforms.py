"""Augmentation policies, CLAHE, mixup/cutmix with NaN multi-label targets, samplers and the double-correction
warning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrlab.data.sampling import build_sampler, rarity_weights, warn_if_double_correction
from cxrlab.data.transforms import POLICIES, build_transform, mix_batch
from cxrlab.errors import CxrlabError


def _image(size: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (1, size, size), dtype=torch.uint8, generator=g)
    x[:, :, : size // 4] = 255  # a bright left band: a horizontal flip would move it
    return x


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("in_chans", [1, 3])
def test_shapes_and_dtype(policy: str, in_chans: int):
    for train in (True, False):
        tf = build_transform(policy, train, 32, in_chans, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        y = tf(_image())
        assert y.shape == (in_chans, 32, 32) and y.dtype == torch.float32
        assert torch.isfinite(y).all()


@pytest.mark.parametrize("policy", POLICIES)
def test_eval_is_deterministic(policy: str):
    tf = build_transform(policy, False, 32, clahe=True)
    assert torch.equal(tf(_image()), tf(_image()))


def test_train_is_random_but_medical_never_flips():
    x = _image()
    tf = build_transform("medical", True, 48)
    outs = [tf(x) for _ in range(12)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])
    for o in outs:  # the bright band stays on the left
        assert o[0, :, :8].mean() > o[0, :, -8:].mean()
    assert all("Flip" not in type(t).__name__ for t in tf.transforms)
    paper = build_transform("paper", True, 48)
    assert any("HorizontalFlip" in type(t).__name__ for t in paper.transforms)


def test_normalisation_uses_given_stats():
    x = torch.full((1, 16, 16), 255, dtype=torch.uint8)
    y = build_transform("none", False, 16, 1, (0.5,), (0.25,))(x)
    assert torch.allclose(y, torch.full_like(y, 2.0))


def test_unknown_policy():
    with pytest.raises(CxrlabError, match="unknown augmentation policy 'flips'.*medical"):
        build_transform("flips", True, 32)


def test_mixup_keeps_nan_unknown_labels():
    np.random.seed(0)
    images = torch.rand(4, 1, 8, 8)
    targets = torch.tensor([[1.0, float("nan")], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    mixed_x, mixed_y = mix_batch(images, targets, "multilabel", 2, mixup=1.0)
    assert mixed_x.shape == images.shape
    # row 0 mixes with row 3 (flipped batch) and row 3 with row 0: the unknown stays unknown in both
    assert torch.isnan(mixed_y[0, 1]) and torch.isnan(mixed_y[3, 1])
    known = ~torch.isnan(mixed_y)
    assert ((mixed_y[known] >= 0) & (mixed_y[known] <= 1)).all()
    assert not torch.isnan(mixed_y[1]).any()


def test_cutmix_multiclass_soft_targets_sum_to_one():
    np.random.seed(1)
    images = torch.zeros(2, 1, 16, 16)
    images[1] = 1.0
    x, y = mix_batch(images, torch.tensor([0, 2]), "multiclass", 3, cutmix=1.0)
    assert y.shape == (2, 3) and torch.allclose(y.sum(1), torch.ones(2))
    lam = float(y[0, 0])
    assert x[0].mean().item() == pytest.approx(1 - lam, abs=1e-6)  # pasted area matches the target weight


def test_mixing_off_is_identity():
    x, t = torch.rand(2, 1, 4, 4), torch.tensor([0, 1])
    x2, t2 = mix_batch(x, t, "multiclass", 2)
    assert x2 is x and t2 is t


def test_balanced_sampler_equalises_classes():
    labels = np.eye(3, dtype=np.float32)[[0] * 90 + [1] * 9 + [2] * 1]
    g = torch.Generator().manual_seed(0)
    sampler = build_sampler("balanced", "multiclass", labels, num_samples=3000, generator=g)
    counts = np.bincount(labels.argmax(1)[list(sampler)], minlength=3)
    assert counts.min() > 800  # about 1000 each instead of 2700/270/30


def test_rarity_weights_follow_rarest_positive():
    labels = np.array([[1, 0], [1, 0], [1, 0], [1, 1], [0, 0], [np.nan, 0]], dtype=np.float32)
    w = rarity_weights(labels)
    assert w[3] == pytest.approx(1.0)  # the only positive of class 1
    assert w[0] == pytest.approx(0.25)  # class 0 has 4 positives
    assert w[4] == pytest.approx(0.5) and w[5] == pytest.approx(0.5)  # two rows with no known positive


def test_sampler_errors_and_none():
    assert build_sampler("none", "multiclass", np.eye(2)) is None
    with pytest.raises(CxrlabError, match="multi-label"):
        build_sampler("rarity", "multiclass", np.eye(2))


def test_double_correction_warning():
    with pytest.warns(UserWarning, match="corrected twice"):
        assert warn_if_double_correction("balanced", "ce", {"class_weights": "inverse_frequency"})
    with pytest.warns(UserWarning):
        warn_if_double_correction("rarity", "weighted_bce", {})
    assert warn_if_double_correction("none", "weighted_bce", {}) is None
    assert warn_if_double_correction("balanced", "focal", {"alpha": [1, 2]}) is None
