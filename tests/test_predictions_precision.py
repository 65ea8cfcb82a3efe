"""Predictions are written to float32 round-trip precision: a probability just below 1 stays below 1 (with six
significant digits it became 1.0 and tied with every other near-certain image, changing AUROC ranks)."""

from __future__ import annotations

import numpy as np

from cxrlab.predictions import Predictions, read_predictions, write_predictions


def test_float32_probabilities_survive_write_and_read(tmp_path):
    probs = np.array([[0.99999994], [0.9999999], [1.0000001e-7], [0.123456789]], dtype=np.float32)
    path = write_predictions(tmp_path / "p.csv", Predictions(["a", "b", "c", "d"], probs, ["Effusion"], {}))
    back = read_predictions(path).probs
    np.testing.assert_array_equal(back.astype(np.float32), probs)
    assert back[0, 0] < 1.0 and back[0, 0] != back[1, 0]
