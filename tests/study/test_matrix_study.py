"""The cross-dataset study end to end on three phantom sources (slow: four small trainings, about 2 minutes)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cxrlab.cli import main


@pytest.mark.slow
def test_cross_dataset_study_fills_the_matrix_and_shows_the_shift(tmp_path):
    ph, merged = tmp_path / "ph", tmp_path / "merged"
    assert main(["data", "phantom-sources", "--out", str(ph), "--n", "300", "--size", "48"]) == 0
    assert main(["data", "merge", *(str(ph / "index" / s) for s in ("nih", "chexpert", "padchest")),
                 "--out", str(merged)]) == 0
    assert main(["data", "split", str(merged), "--out", str(merged / "split.csv"), "--val", "0.2", "--test",
                 "0.3"]) == 0
    out = tmp_path / "study"
    sets = [f"data.index={merged}", f"data.split={merged / 'split.csv'}", "data.image_size=48", "data.cache_size=48",
            "train.device=cpu", "train.epochs=8", "train.batch_size=16"]
    assert main(["study", "matrix", "studies/cross_dataset.yaml", "--out", str(out), "--set", *sets]) == 0
    m = json.loads((out / "matrix.json").read_text())
    assert m["trains"] == ["chexpert", "nih", "padchest", "pooled"] and m["tests"] == ["chexpert", "nih", "padchest"]
    assert len(m["cells"]) == 12 and all(np.isfinite(c["macro"]) for c in m["cells"])  # every cell scored
    # CheXpert's exposure style (lifted, blurred, JPEG) is the shifted one: on its test images its own model
    # beats the models trained on the other sources, by a margin whose paired interval excludes zero.
    for other in ("nih", "padchest"):
        drop = next(d for d in m["drops"] if d["test"] == "chexpert" and d["external"] == other)
        assert drop["drop"] > 0.05 and drop["ci"][0] > 0, drop
    pooled = [c for c in m["cells"] if c["train"] == "pooled"]
    assert {c["test"] for c in pooled} == set(m["tests"])
    metrics = (out / "runs" / "pooled-s0" / "metrics.csv").read_text().splitlines()[0]
    assert "val_metric_chexpert" in metrics and "val_metric_padchest" in metrics
    assert (out / "report" / "report.html").stat().st_size > 10_000
    # rerunning keeps the finished runs
    assert main(["study", "matrix", "studies/cross_dataset.yaml", "--out", str(out), "--set", *sets]) == 0
