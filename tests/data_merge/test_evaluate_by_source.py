"""``evaluate --by source`` on merged labels: per-source macro over the findings each source labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from cxrlab.evaluate.evaluate import evaluate_predictions


def test_by_source_macro_is_over_the_findings_each_source_labels(merged, tmp_path):
    index, _ = merged
    rng = np.random.default_rng(1)
    y = index.labels()
    p = np.clip(np.nan_to_num(y, nan=0.5) * 0.4 + rng.random(y.shape) * 0.6, 0, 1)
    preds = pd.DataFrame(p, columns=index.classes)
    preds.insert(0, "image_id", index.frame["image_id"])
    preds.to_csv(tmp_path / "p.csv", index=False)
    result = evaluate_predictions(tmp_path / "p.csv", index, bootstrap=20, by="source", min_group=5, report=False)
    table = result["subgroups"]["source"]
    source = index.frame["source"].to_numpy()
    for name in ("nih", "chexpert", "padchest"):
        rows = source == name
        want = np.mean([roc_auc_score(y[rows, c], p[rows, c]) for c, name_c in enumerate(index.classes)
                        if name_c != "No Finding"  # evaluate's default --exclude
                        and not np.isnan(y[rows, c]).any() and len(set(y[rows, c])) == 2])
        assert table[name]["macro"]["auroc"] == pytest.approx(want, abs=1e-9)
    assert "Lung Opacity" in table["settings"]["not_labelled"]["padchest"]
    assert "not scored as negative" in table["settings"]["not_labelled_rule"]
