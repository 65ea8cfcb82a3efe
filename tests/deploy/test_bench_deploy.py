"""The deployment benchmarks in ``--quick`` mode: the burst of concurrent maximum-size uploads keeps the server's
memory within the stated bound and every answer is 200, 413 or 503; the OOD suite writes every kind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _run(script: str, *args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(BENCH.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_upload_burst_memory_stays_bounded(tiny_run):
    pytest.importorskip("uvicorn")
    out = _run("bench_serve_load.py", str(tiny_run[0]), "--quick", "--image", str(_first_png(tiny_run[1])))
    result = json.loads(out.strip().splitlines()[-1].removeprefix("RESULT "))
    assert result["burst_only_200_413_503"], result["burst_answers"]
    assert "503" in result["burst_answers"]  # 64 x 1 MB against a 4 MB budget: some must be turned away
    assert result["rss_peak_burst_mb"] <= result["rss_bound_mb"], result
    assert result["errors"] == 0


@pytest.mark.slow
def test_ood_suite_quick_writes_every_kind():
    out = _run("bench_ood.py", "--quick")
    path = Path(out.strip().splitlines()[-1].removeprefix("results: "))
    figures = json.loads(path.read_text())["figures"]
    kinds = {k.rsplit("_", 1)[0] for k in figures}
    assert {"test", "rotated_90", "flipped_lr", "inverted", "lateral", "hand", "knee", "documents", "noise"} <= kinds


def _first_png(index_dir: Path) -> Path:
    from .images import phantom_png

    path = index_dir.parent.parent / "first.png"
    path.write_bytes(phantom_png(index_dir, 0))
    return path
