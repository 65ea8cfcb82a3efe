"""The laterality network: its numpy forward against PyTorch's layers, exact sign symmetry, a fitted network
telling mirrored phantom films from upright ones, and the guard that keeps test images out of its training."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlab.deploy.laterality_net import POOL, WIDTHS, LateralityNet
from cxrlab.deploy.orientation import thumbnails

from .test_ood import _films


def _random_net(seed: int = 0) -> LateralityNet:
    rng = np.random.default_rng(seed)
    chans, weights = (1, *WIDTHS), {}
    for i in range(len(WIDTHS)):
        weights[f"conv{i}.weight"] = rng.normal(0, 0.4, (chans[i + 1], chans[i], 3, 3)).astype(np.float32)
        weights[f"conv{i}.bias"] = rng.normal(0, 0.1, chans[i + 1]).astype(np.float32)
    weights["head.weight"] = rng.normal(0, 1, (1, WIDTHS[-1])).astype(np.float32)
    weights["head.bias"] = np.zeros(1, np.float32)
    return LateralityNet([weights], 0)


def _torch_logit(net: LateralityNet, thumbs: np.ndarray) -> np.ndarray:
    """Independent: PyTorch's own convolution, ReLU and pooling layers on the z-scored 64x64 thumbnails."""
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(thumbs, dtype=torch.float64).reshape(-1, 1, 64, 64)
    t = (t - t.mean(dim=(2, 3), keepdim=True)) / t.std(dim=(2, 3), unbiased=False, keepdim=True)
    w = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in net.members[0].items()}

    def f(x):
        x = F.avg_pool2d(x, POOL) if POOL > 1 else x
        for i in range(len(WIDTHS)):
            x = F.max_pool2d(F.relu(F.conv2d(x, w[f"conv{i}.weight"], w[f"conv{i}.bias"], padding=1)), 2)
        return F.linear(x.mean(dim=(2, 3)), w["head.weight"], w["head.bias"])[:, 0]

    return (f(t.flip(-1)) - f(t)).numpy()


def test_numpy_forward_matches_torch_and_mirroring_negates_the_logit_exactly():
    thumbs = np.random.default_rng(1).random((4, 64 * 64)).astype(np.float32)
    thumbs[:2] = thumbnails(_films(2, seed=5))
    net = _random_net()
    z = net.logit(thumbs)
    np.testing.assert_allclose(z, _torch_logit(net, thumbs), rtol=1e-3, atol=1e-3 * np.abs(z).max())
    mirrored = thumbs.reshape(4, 64, 64)[:, :, ::-1].reshape(4, -1)
    assert np.array_equal(net.logit(mirrored), -z)  # f(flip x) - f(x): bit for bit, not approximately


def test_weights_round_trip_through_tensors():
    net = _random_net(2)
    loaded = LateralityNet.from_tensors({**net.tensors(), "orientation.coef": np.zeros(3)}, 7)
    assert loaded.n_images == 7 and [set(w) for w in loaded.members] == [set(w) for w in net.members]
    thumbs = thumbnails(_films(3, seed=6))
    np.testing.assert_array_equal(loaded.logit(thumbs), net.logit(thumbs))
    assert LateralityNet.from_tensors({"orientation.coef": np.zeros(3)}) is None


def test_a_fitted_network_flags_mirrored_phantom_films_and_passes_upright_ones():
    """Trained on 24 phantom films and their mirror images (plus 24 more as "training images"), scored on 20
    films of other patients; the out-of-fold logits come back for every variant asked for."""
    films = thumbnails(_films(48, seed=1))
    val, extra = films[:24], films[24:]
    folds = np.array_split(np.random.default_rng(0).permutation(24), 5)
    variants = np.stack([val, val.reshape(24, 64, 64)[:, :, ::-1].reshape(24, -1)])
    net, oof = LateralityNet.fit(val, folds, variants, extra)
    assert oof.shape == (2, 24) and net.n_images == 48
    np.testing.assert_allclose(oof[1], -oof[0], rtol=1e-5, atol=1e-5)  # out of fold, still antisymmetric
    test = thumbnails(_films(20, seed=2))
    mirrored = test.reshape(20, 64, 64)[:, :, ::-1].reshape(20, -1)
    assert (net.logit(test) < 0).mean() >= 0.9 and (net.logit(mirrored) > 0).mean() >= 0.9


def test_training_thumbnails_come_from_the_train_split_and_never_from_test(tiny_run, monkeypatch):
    from cxrlab.deploy import runs
    from cxrlab.deploy.features import laterality_thumbnails

    _, info = runs.load(tiny_run[0])
    thumbs = laterality_thumbnails(info)
    assert thumbs is not None and len(thumbs) == len(runs.split_dataset(info, "train"))
    real = runs.split_dataset
    monkeypatch.setattr(runs, "split_dataset", lambda i, split="val": real(i, "test"))  # a split that lies
    with pytest.warns(UserWarning, match="validation images only.*refusing to fit the laterality check"):
        assert laterality_thumbnails(info) is None


class _Rows:
    """A stand-in dataset: only ``images`` and its length are read by the guard."""

    def __init__(self, images):
        self.images = images

    def __len__(self) -> int:
        return len(self.images.image_ids)


def test_a_training_image_with_a_test_image_s_content_is_refused_under_any_name(tiny_run):
    from types import SimpleNamespace

    from cxrlab.deploy import runs
    from cxrlab.errors import CxrlabError
    from cxrlab.predict import images_from_run

    _, info = runs.load(tiny_run[0])
    test, train = images_from_run(info, "test"), images_from_run(info, "train")
    renamed = SimpleNamespace(image_ids=["renamed.png", train.image_ids[0]], sha256=[test.sha256[0], train.sha256[0]],
                              name="train")
    with pytest.raises(CxrlabError, match="refusing to fit the laterality check"):
        runs.not_test_rows(info, _Rows(renamed), 2, "the laterality check")
    assert runs.not_test_rows(info, runs.split_dataset(info, "train"), 3, "the laterality check") == [0, 1, 2]


def test_the_orientation_score_is_the_larger_surprise_for_the_network_and_the_sum_for_older_gates():
    """p = min(p9(upright), sigmoid(-z) ** w) with the network; p9 * sigmoid(-z) ** w as linear gates had it."""
    from dataclasses import replace

    from cxrlab.deploy.orientation import TRANSFORMS, OrientationCheck

    rng = np.random.default_rng(4)
    d = 16 * 16
    check = OrientationCheck(rng.normal(0, 0.1, (len(TRANSFORMS), d)).astype(np.float32),
                             rng.normal(0, 0.1, len(TRANSFORMS)).astype(np.float32), 0.1, _random_net(5), 1.5)
    thumbs = thumbnails(_films(6, seed=7))
    z = _torch_logit(check.laterality, thumbs)
    p9 = check.probabilities(thumbs)[:, 0]
    lat = (1 / (1 + np.exp(z))) ** 1.5
    np.testing.assert_allclose(check.upright(thumbs), np.minimum(p9, lat), rtol=1e-3)
    np.testing.assert_allclose(replace(check, combine="product").upright(thumbs), p9 * lat, rtol=1e-3)
