"""The OOD gate on synthetic features: calibration, flags, storage."""

from __future__ import annotations

import numpy as np
import pytest

from cxrlab.deploy.ood import OodGate, assess
from cxrlab.errors import CxrlabError


def _features(n: int, d: int = 32, shift: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.abs(rng.normal(1.0, 0.3, (1, d)))  # post-ReLU-like: positive, a common direction
    return (base + 0.1 * rng.normal(size=(n, d)) + shift * rng.normal(size=(1, d))).astype(np.float32)


@pytest.mark.parametrize("method", ["mahalanobis", "knn"])
def test_gate_flags_shifted_features_and_few_in_distribution(method, tmp_path):
    both = _features(400, seed=0)  # one distribution: calibrate on half, measure on the other
    val, test = both[:200], both[200:]
    gate = OodGate.fit(val, 99.0, method)
    assert (gate.score(test) > gate.threshold).mean() < 0.06  # about 1% by design, allow noise
    far = np.abs(_features(50, shift=1.0, seed=0))  # the same base, moved
    assert (gate.score(far) > gate.threshold).mean() > 0.9
    loaded = OodGate.load(gate.save(tmp_path / "g.safetensors"))
    np.testing.assert_allclose(loaded.score(far), gate.score(far), rtol=1e-6)
    assert loaded.summary() == gate.summary()


def test_assess_reports_reasons_and_colour_check():
    gate = OodGate.fit(_features(60, seed=3), 99.0)
    photo = np.zeros((64, 64, 3), np.uint8)
    photo[:32, :, 0], photo[32:, :, 1], photo[:, :20, 2] = 255, 200, 180
    gray = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))
    out = assess(gate, np.vstack([_features(1, seed=3), _features(1, shift=3.0, seed=3)]), [photo, gray])
    assert out[0]["flagged"] and any("colour" in r for r in out[0]["reasons"])
    assert out[1]["flagged"] and "distance" in out[1]["reasons"][0]
    assert assess(None, np.zeros((1, 4)))[0] == {"score": None, "threshold": None, "flagged": False, "reasons": []}


def test_gate_errors_are_one_line(tmp_path):
    with pytest.raises(CxrlabError, match="at least 4"):
        OodGate.fit(_features(3))
    with pytest.raises(CxrlabError, match="not one of"):
        OodGate.fit(_features(10), method="lof")
    (tmp_path / "bad.safetensors").write_bytes(b"junk")
    with pytest.raises(CxrlabError, match="not an OOD gate file"):
        OodGate.load(tmp_path / "bad.safetensors")
