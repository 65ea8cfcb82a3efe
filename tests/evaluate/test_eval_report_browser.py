"""The reports are self-contained and render in headless Chromium without console errors."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from cxrlab.evaluate.compare import compare_runs
from cxrlab.evaluate.evaluate import evaluate_predictions
from cxrlab.predictions import Predictions, read_predictions, write_predictions


def _assert_self_contained(html: str) -> None:
    assert "<script" not in html.lower() and "<link" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*['"](https?:|//)""", html)
    assert html.count("data:image/png;base64,") >= 3  # ROC, PR, reliability


def test_reports_are_self_contained(ml_data, mc_data, tmp_path):
    evaluate_predictions(ml_data["test"], ml_data["index"], out=tmp_path / "ml", bootstrap=20)
    evaluate_predictions(mc_data["test"], mc_data["index"], out=tmp_path / "mc", bootstrap=20)
    for sub in ("ml", "mc"):
        html = (tmp_path / sub / "report.html").read_text()
        _assert_self_contained(html)
        md = (tmp_path / sub / "report.md").read_text()
        assert "Metric definitions" in md and "Reference anchors" not in md  # NIH anchors only on NIH data
    assert "Confusion matrix" in (tmp_path / "mc" / "report.md").read_text()
    assert (tmp_path / "mc" / "figures" / "confusion.png").exists()


def _chromium(url: str, png, profile) -> str:
    cmd = [shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", f"--screenshot={png}",
           "--window-size=1200,900", url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    return done.stderr


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_reports_render_in_chromium(ml_data, tmp_path):
    src = read_predictions(ml_data["test"])
    other = tmp_path / "b" / "test.csv"
    noisy = np.clip(src.probs + np.random.default_rng(0).normal(0, 0.2, src.probs.shape), 0, 1)
    write_predictions(other, Predictions(src.image_ids, noisy, src.classes, {"split": "test"}))
    evaluate_predictions(ml_data["test"], ml_data["index"], out=tmp_path / "ev", bootstrap=20)
    compare_runs([ml_data["test"], other], labels=ml_data["index"], out=tmp_path / "cmp", bootstrap=20)
    for name in ("ev", "cmp"):
        page = tmp_path / name / "report.html"
        png = tmp_path / f"{name}.png"
        stderr = _chromium(page.resolve().as_uri(), png, tmp_path / f"profile_{name}")
        console = [line for line in stderr.splitlines() if ":CONSOLE" in line]
        assert not console, console
        pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
        assert pixels.shape == (900, 1200) and pixels.std() > 10  # not blank
