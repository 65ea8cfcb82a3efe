"""Benchmark: the wall time of the README's test command (``make test`` runs ``pytest -m "" -q``).

Runs the whole suite, slow end-to-end tests included, in a subprocess from the repository root and records its
wall time, the CPU time of the process tree, the pass/fail counts pytest prints and the machine's load before and
after (target: under 20 minutes on 2 idle cores). ``--quick`` times ``pytest tests/layers`` instead, so the fast
suite can check that this script still runs. Run: ``python benchmarks/bench_suite.py``.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import Figure, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run_suite(args: list[str]) -> dict[str, float]:
    """Seconds (wall and children's CPU) and pytest's counts for ``python -m pytest ARGS``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    tail = (done.stdout.strip().splitlines() or [""])[-1]
    counts = {k: float(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", tail)}
    print(tail)
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-2000:], sep="\n")
    return {"wall_s": wall, "cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
            "returncode": float(done.returncode), **counts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="time tests/layers only (seconds)")
    args = ap.parse_args()
    pytest_args = ["-q", "-p", "no:cacheprovider"] + (["tests/layers"] if args.quick else ["-m", ""])
    load = list(os.getloadavg())
    result = run_suite(pytest_args)
    figures = {"suite_wall_min": Figure.of([result["wall_s"] / 60], unit="min"),
               "suite_cpu_min": Figure.of([result["cpu_s"] / 60], unit="min", note="CPU time of the test processes")}
    for key in ("passed", "failed", "skipped"):
        figures[key] = Figure.of([result.get(key, 0.0)], unit="tests")
    write_results("suite", inputs={"command": "python -m pytest " +
                  " ".join(pytest_args)}, figures=figures, quick=args.quick, load_before=load)
    sys.exit(0 if result["returncode"] == 0 else 1)


if __name__ == "__main__":
    main()
