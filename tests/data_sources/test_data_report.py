"""`cxrlab data report`: numbers equal the index's, per split with the audit verdict, self-contained HTML that
renders in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cxrlab.cli import main
from cxrlab.data.build_index import build_index

from .helpers import make_chexpert


@pytest.fixture
def chexpert_index(tmp_path):
    root = make_chexpert(tmp_path / "chex")
    index, _ = build_index(root, "chexpert", tmp_path / "idx", hash_files=False, views=["AP", "PA", "LATERAL"])
    return index


def test_data_report_numbers_and_splits(chexpert_index, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["data", "report", str(chexpert_index.path), "--out", str(out)]) == 0
    assert "split audit: ok" in capsys.readouterr().out
    summary = json.loads((out / "data_report.json").read_text())
    f = chexpert_index.frame
    assert summary["all"]["images"] == len(f) == 5 and summary["all"]["patients"] == f["patient_id"].nunique()
    known = f["Lung Opacity"].notna()
    assert summary["all"]["prevalence"]["Lung Opacity"] == pytest.approx(f.loc[known, "Lung Opacity"].mean())
    assert summary["all"]["sex"] == {"F": 4, "M": 1} and summary["all"]["view"]["LATERAL"] == 1
    assert set(summary["splits"]) == {"train_val", "test"} and summary["audit"]["verdict"] == "ok"
    md = (out / "report.md").read_text()
    assert "Label co-occurrence" in md and "audit verdict OK" in md and "Split: test" in md
    html = (out / "report.html").read_text()
    assert "<script" not in html.lower() and not re.search(r"""(src|href)\s*=\s*['"](https?:|//)""", html)
    assert html.count("data:image/png;base64,") >= 8


@pytest.mark.slow
def test_data_report_with_a_leaking_split(chexpert_index, tmp_path):
    ids = chexpert_index.frame["image_id"].tolist()
    split = tmp_path / "split.csv"
    pd.DataFrame({"image_id": ids, "split": ["train", "test", "train", "val", "test"]}).to_csv(split, index=False)
    out = tmp_path / "r"
    assert main(["data", "report", str(chexpert_index.path), "--split", str(split), "--out", str(out)]) == 0
    summary = json.loads((out / "data_report.json").read_text())
    assert summary["audit"]["verdict"] == "leakage" and set(summary["splits"]) == {"train", "val", "test"}


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_data_report_renders_in_chromium(chexpert_index, tmp_path):
    out = tmp_path / "report"
    assert main(["data", "report", str(chexpert_index.path), "--out", str(out)]) == 0
    png = tmp_path / "shot.png"
    cmd = [shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", f"--screenshot={png}",
           "--window-size=1200,900", (out / "report.html").resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert not [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert pixels.shape == (900, 1200) and pixels.std() > 10
