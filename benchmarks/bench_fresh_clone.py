"""Benchmark the README's first command from a fresh clone: ``make demo`` (set-up, then the demo) timed apart.

Clones this repository's committed HEAD into a temporary folder, runs ``make setup`` there (a new virtual
environment, pip installing the package and its dev extra with torch from ``constraints.txt``) and then ``make
demo``, each timed on the wall clock, with the machine's load before and after (targets: the demo within 3
minutes and ``make demo`` with set-up within 6 minutes on 2 idle cores). pip's download cache is the machine's
own, so a machine that never installed these packages also pays their download.

    .venv/bin/python benchmarks/bench_fresh_clone.py [--keep DIR] [--quick]

``--quick``: the clone and ``make -n demo`` (what would run) only. Writes ``benchmarks/results/fresh_clone.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import Figure, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def timed(argv: list[str], cwd: Path) -> float:
    """Seconds ``argv`` took in ``cwd``; its output goes to this process's; a failure stops the benchmark."""
    t0 = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True)
    return time.perf_counter() - t0


def measure(folder: Path, quick: bool) -> dict[str, float]:
    clone = folder / "cxrlab"
    spent = {"clone": timed(["git", "clone", "--quiet", str(ROOT), str(clone)], folder)}
    if quick:
        plan = subprocess.run(["make", "-n", "demo"], cwd=clone, check=True, capture_output=True, text=True).stdout
        assert "cxrlab demo" in plan, plan
        return spent
    env_python = os.environ.get("PYTHON", "python3")
    spent["setup"] = timed(["make", "setup", f"PYTHON={env_python}"], clone)
    spent["demo"] = timed(["make", "demo"], clone)
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, default=None, help="clone into this new folder and leave it there")
    ap.add_argument("--quick", action="store_true", help="clone and `make -n demo` only")
    args = ap.parse_args()
    load = list(os.getloadavg())
    if args.keep is not None:
        args.keep.mkdir(parents=True)
        spent = measure(args.keep, args.quick)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            spent = measure(Path(tmp), args.quick)
    figures = {"clone_s": Figure.of([spent["clone"]], unit="s")}
    if not args.quick:
        figures |= {"setup_min": Figure.of([spent["setup"] / 60], unit="min", note="make setup in a fresh clone"),
                    "demo_min": Figure.of([spent["demo"] / 60], unit="min", note="make demo after the set-up"),
                    "make_demo_with_setup_min": Figure.of([(spent["setup"] + spent["demo"]) / 60], unit="min",
                                                          note="the README's first command on a fresh clone")}
    for name, seconds in spent.items():
        print(f"{name:>8}: {seconds:7.1f} s ({seconds / 60:.1f} min)")
    print(f"load before {load}, after {[round(x, 2) for x in os.getloadavg()]}")
    write_results("fresh_clone", inputs={"commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, text=True,
                                                                  capture_output=True).stdout.strip(),
                                         "pip_cache": "the machine's own"},
                  figures=figures, quick=args.quick, load_before=load,
                  notes="one run; make setup then make demo in a fresh clone of HEAD")


if __name__ == "__main__":
    main()
