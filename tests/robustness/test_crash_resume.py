"""``study run`` killed (SIGKILL, SIGTERM) at a few points then rerun ends with what an uninterrupted study
writes; two ``study run`` on one folder: one runs, the other is refused naming the holder's PID.

Compared byte for byte: each run's ``predictions/{val,test}.csv`` and ``checkpoints/best.safetensors``, and
``metrics.csv`` without its timing columns (``seconds``, ``images_per_s``). Left out as non-deterministic:
timestamps and wall times (manifest.json, status/*.json, the marker), and the absolute paths in sidecars.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cxrlab.cli import main

pytestmark = pytest.mark.slow

SRC = str(Path(__file__).parents[2] / "src")


def _study(tmp: Path) -> Path:
    """Two arms x 1 seed, 2 epochs each, of cnn_gap on a 48-image 32-px phantom (a few seconds per run)."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
    from train_helpers import make_tiny

    data = make_tiny(tmp / "data", 48, size=32)
    study = {"name": "crash", "base": {"recipe": "configs/smoke.yaml", "set": {
        "data.image_size": 32, "data.cache_size": 32, "train.batch_size": 16, "train.device": "cpu",
        "augment.policy": "none", "train.deterministic": True, "train.threads": 1, "data.require_positives": False}},
        "data": {k.removeprefix("data."): v for k, v in data.items()}, "budget": {"epochs": 2},
        "evaluate": {"bootstrap": 20}, "arms": [{"name": "a"}, {"name": "b", "set": {"train.lr": 0.01}}]}
    path = tmp / "s.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def _start(study: Path, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "cxrlab", "study", "run", str(study), "--out", str(out),
                             "--no-report"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen, path: Path, sig: int) -> None:
    deadline = time.time() + 240
    while not path.exists():
        assert proc.poll() is None, f"finished before {path} appeared: {proc.stderr.read().decode()[-2000:]}"
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    proc.send_signal(sig)
    proc.wait(timeout=120)


def _results(out: Path) -> dict[str, bytes]:
    got = {}
    for run in ("a-s0", "b-s0"):
        d = out / "runs" / run
        for name in ("predictions/val.csv", "predictions/test.csv", "checkpoints/best.safetensors"):
            got[f"{run}/{name}"] = (d / name).read_bytes()
        metrics = pd.read_csv(d / "metrics.csv").drop(columns=["seconds", "images_per_s"])
        got[f"{run}/metrics"] = metrics.to_csv(index=False).encode()
    return got


def test_killed_studies_rerun_to_the_uninterrupted_result_and_a_second_process_is_refused(tmp_path, capsys):
    study = _study(tmp_path)
    reference = tmp_path / "reference"
    proc = _start(study, reference)
    lock = reference / ".cxrlab-lock"
    _wait_locked(proc, lock)
    assert main(["study", "run", str(study), "--out", str(reference), "--no-report"]) == 2
    err = capsys.readouterr().err
    assert f"in use by process {proc.pid} on" in err and err.count("error:") == 1
    assert proc.wait(timeout=600) == 0, proc.stderr.read().decode()[-2000:]
    expected = _results(reference)

    # (a kill between two runs is covered in-process by tests/study/test_runner.py)
    for sig, point in ((signal.SIGKILL, "runs/a-s0/checkpoints/last_state.pt"),  # inside the first run
                       (signal.SIGTERM, "runs/b-s0/metrics.csv")):  # inside the second
        out = tmp_path / f"{sig.name}-{point.replace('/', '_')}"
        proc = _start(study, out)
        _kill_when(proc, out / point, sig)
        if sig == signal.SIGTERM:
            assert proc.returncode == 143, proc.stderr.read().decode()[-2000:]
        rerun = _start(study, out)  # a new process: the dead one's lock is taken over
        assert rerun.wait(timeout=600) == 0, rerun.stderr.read().decode()[-2000:]
        assert _results(out) == expected, f"{sig.name} at {point}"


def _wait_locked(proc: subprocess.Popen, lock: Path) -> None:
    deadline = time.time() + 120
    while not (lock.exists() and lock.read_text().startswith(f"{proc.pid} ")):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read().decode()[-2000:]
        time.sleep(0.05)
