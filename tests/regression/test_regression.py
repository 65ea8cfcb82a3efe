"""Behaviour users rely on stays the same: a fixed tiny run trained, predicted and evaluated through the CLI
matches the predictions and metrics recorded before the issue-8 refactor (to 1e-6).

If a change is meant to alter results, regenerate with ``.venv/bin/python tests/regression/make_expected.py``
and say why in the commit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from regression_run import EXPECTED, TOL, run_pipeline

# predictions CSVs hold 6 significant digits: a last-digit flip is 1e-6, plus float noise
_ATOL = TOL + 1e-9


@pytest.fixture(scope="module")
def produced(tmp_path_factory) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    return run_pipeline(tmp_path_factory.mktemp("regression"))


@pytest.mark.parametrize("name", sorted(p.stem for p in EXPECTED.glob("*.csv")))
def test_predictions_unchanged(produced, name: str):
    preds, _ = produced
    expected = pd.read_csv(EXPECTED / f"{name}.csv")
    got = preds[name]
    assert list(got.columns) == list(expected.columns), name
    assert got["image_id"].astype(str).tolist() == expected["image_id"].astype(str).tolist(), name
    text = [c for c in expected.columns if not pd.api.types.is_numeric_dtype(expected[c])]
    assert got[text].astype(str).equals(expected[text].astype(str)), name
    numeric = [c for c in expected.columns if c not in text]
    np.testing.assert_allclose(got[numeric].to_numpy(float), expected[numeric].to_numpy(float), rtol=0,
                               atol=_ATOL, err_msg=name)


def test_metrics_unchanged(produced):
    _, metrics = produced
    expected = json.loads((EXPECTED / "metrics.json").read_text())
    missing = sorted(set(expected) - set(metrics))  # new keys (features added since) are fine; lost ones are not
    assert not missing, missing
    bad = {k: (metrics[k], v) for k, v in expected.items()
           if not (np.isnan(v) and np.isnan(metrics[k])) and abs(metrics[k] - v) > _ATOL}
    assert not bad, bad


def test_expected_files_present():
    """The recorded baseline exists (fast: no training)."""
    assert (EXPECTED / "metrics.json").exists()
    assert len(list(Path(EXPECTED).glob("*.csv"))) >= 6
