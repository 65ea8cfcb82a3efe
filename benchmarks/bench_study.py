"""Benchmark the study machinery: (1) its overhead on a 4-run smoke study, (2) the report at NIH test size.

(1) A study of 2 arms x 2 seeds on a phantom dataset; the time of ``run_study`` (without the report) is split
    into the runs' own ``fit`` time and everything else (plan, config checks, status files, cost measurement).
    Target: the machinery adds under 2% to the sum of the runs' times.
(2) ``study report`` over 20 finished runs (5 arms x 4 seeds) holding synthetic predictions for 22,433 test
    images (NIH's official test size) x 14 classes, 1000 patient-bootstrap replicates. Target: under 60 s.

    .venv/bin/python benchmarks/bench_study.py [--skip-overhead] [--skip-report] [--replicates 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from cxrlab.data.index import Index, write_index
from cxrlab.predictions import Predictions, write_predictions
from cxrlab.utils import write_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_evaluate import IMAGES_PER_PATIENT, PREVALENCE  # noqa: E402


def overhead(root: Path, n_images: int, epochs: int) -> None:
    import cxrlab.train
    from cxrlab.data.cache import build_cache
    from cxrlab.data.phantom import make_phantom_index
    from cxrlab.data.splits import make_split
    from cxrlab.study.runner import run_study

    index = make_phantom_index(root / "data", n=n_images, size=64, seed=0, workers=1)
    make_split(index, root / "split.csv", val=0.2, test=0.2, seed=0)
    build_cache(index, root / "cache", size=64, workers=1, progress=False)
    study = {"name": "bench", "data": {"index": str(root / "data" / "index"), "split": str(root / "split.csv"),
                                       "cache": str(root / "cache")},
             "base": {"recipe": "configs/smoke.yaml", "set": {"data.image_size": 64, "train.device": "cpu",
                                                               "train.batch_size": 32}},
             "budget": {"epochs": epochs}, "arms": [{"name": "a"}, {"name": "b", "set": {"train.lr": 0.01}}],
             "seeds": [0, 1], "evaluate": {"bootstrap": 200}}
    path = root / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    import cxrlab.study.cost

    real_fit, fit_seconds = cxrlab.train.fit, []
    real_cost, cost_seconds = cxrlab.study.cost.measure_cost, []

    def timed_cost(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return real_cost(*args, **kwargs)
        finally:
            cost_seconds.append(time.perf_counter() - t0)

    def timed_fit(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return real_fit(*args, **kwargs)
        finally:
            fit_seconds.append(time.perf_counter() - t0)

    cxrlab.train.fit = timed_fit
    cxrlab.study.cost.measure_cost = timed_cost
    try:
        t0 = time.perf_counter()
        run_study(path, root / "out", report=False)
        total = time.perf_counter() - t0
    finally:
        cxrlab.train.fit = real_fit
        cxrlab.study.cost.measure_cost = real_cost
    from cxrlab.study.report import build_report

    t0 = time.perf_counter()
    build_report(root / "out")
    report = time.perf_counter() - t0
    runs, cost = sum(fit_seconds), sum(cost_seconds)
    machinery = total - runs - cost
    share = machinery / runs
    print(f"(1) 4-run smoke study ({n_images} phantom images at 64 px, {epochs} epochs per run): study {total:.2f} s; "
          f"sum of the runs' fit {runs:.2f} s; cost measurement (once per arm: FLOPs, CPU latency) {cost:.2f} s = "
          f"{100 * cost / runs:.1f}%; machinery (plan, checks, audit, status files) {machinery:.2f} s = "
          f"{100 * share:.1f}% [target < 2%] {'OK' if share < 0.02 else 'OVER'}; report afterwards {report:.1f} s")


def synthetic_study(root: Path, n: int, arms: int, seeds: int, val_n: int) -> None:
    """A finished-looking study folder: index, plan.json, and per run predictions, manifest, metrics, cost."""
    rng = np.random.default_rng(0)
    classes = list(PREVALENCE)
    total = n + val_n
    y = (rng.random((total, len(classes))) < np.array(list(PREVALENCE.values()))).astype(int)
    patients = np.concatenate([rng.integers(0, n // IMAGES_PER_PATIENT, n),
                               n // IMAGES_PER_PATIENT + rng.integers(0, val_n // IMAGES_PER_PATIENT, val_n)])
    ids = [f"{i:08d}_000.png" for i in range(total)]
    pids = [f"p{p}" for p in patients]
    labels = {c: y[:, i] for i, c in enumerate(classes)}
    frame = pd.DataFrame({"image_id": ids, "path": ids, "patient_id": pids, **labels})
    write_index(Index(frame, "multilabel", classes, root), root / "index")
    runs = []
    for a in range(arms):
        for s in range(seeds):
            name = f"arm{a}-s{s}"
            runs.append({"name": name, "arm": f"arm{a}", "seed": s, "config_sha256": "x"})
            folder = root / "out" / "runs" / name
            noise = rng.normal(size=y.shape)
            p = np.round(1 / (1 + np.exp(-((1.0 + 0.1 * a) * y - 2 + noise))), 6)
            meta = {"task": "multilabel", "classes": classes, "model": f"arm{a}"}
            for split, rows in (("test", slice(0, n)), ("val", slice(n, total))):
                write_predictions(folder / "predictions" / f"{split}.csv", Predictions(
                    ids[rows], p[rows], classes, {**meta, "split": split}, pids[rows]))
            write_json(folder / "manifest.json", {"parameters": 21_000_000, "wall_seconds": 3600.0, "device": "cuda"})
            pd.DataFrame({"epoch": range(1, 11), "train_loss": np.linspace(0.3, 0.1, 10), "val_loss": 0.2,
                          "val_metric": np.linspace(0.7, 0.8, 10), "lr": 1e-4, "seconds": 300.0,
                          "images_per_s": 300.0, "train_metric": np.linspace(0.7, 0.95, 10)}).to_csv(
                folder / "metrics.csv", index=False)
            write_json(folder / "cost.json", {"parameters": 21_000_000, "gflops_per_image": 3.6})
    write_json(root / "out" / "plan.json", {
        "study": "bench_report", "description": "", "study_sha256": "x", "smoke": False, "cli_set": [],
        "data": {"index": str(root / "index")}, "budget": "synthetic", "reference": "arm0", "sweep": [],
        "seeds": list(range(seeds)), "ensembles": [],
        "evaluate": {"bootstrap": 1000, "threshold_method": "youden", "split": "test", "external": [], "seed": 0},
        "arms": [{"name": f"arm{a}", "recipe": None, "listed": f"arm{a}", "swept": {}, "diff": {},
                  "freeze": "from scratch"} for a in range(arms)],
        "runs": runs})


def report_time(root: Path, n: int, replicates: int) -> None:
    from cxrlab.study.report import build_report
    from cxrlab.utils import read_json

    synthetic_study(root, n, arms=5, seeds=4, val_n=n // 2)
    plan = read_json(root / "out" / "plan.json")
    plan["evaluate"]["bootstrap"] = replicates
    write_json(root / "out" / "plan.json", plan)
    t0, c0 = time.perf_counter(), time.process_time()
    build_report(root / "out")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"(2) report for 20 runs (5 arms x 4 seeds) x {n} test images x 14 classes, {replicates} replicates: "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU [target < 60 s] {'OK' if wall < 60 else 'SLOW'}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=22433)
    p.add_argument("--replicates", type=int, default=1000)
    p.add_argument("--phantom", type=int, default=300, help="phantom images of the overhead study")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--skip-overhead", action="store_true")
    p.add_argument("--skip-report", action="store_true")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not a.skip_overhead:
            overhead(Path(tmp) / "overhead", a.phantom, a.epochs)
        if not a.skip_report:
            report_time(Path(tmp) / "report", a.images, a.replicates)


if __name__ == "__main__":
    main()
