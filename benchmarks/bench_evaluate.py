"""Benchmark: patient-level bootstrap + DeLong on an NIH-sized test set (22,433 images x 14 findings).

    .venv/bin/python benchmarks/bench_evaluate.py [--images 22433] [--replicates 1000] [--no-scaling]

Prints the end-to-end time of ``compare_runs`` on two predictions files (reading CSVs, matching, 1,000
patient bootstrap replicates of every per-class AUROC/AP, macro AUROC and macro F1 for both models, DeLong
for every class, Holm; no report) and of ``evaluate_predictions``, then how the core statistics scale with
the number of images and of replicates. Target: compare <= 10 s on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlab.data.index import Index, write_index
from cxrlab.evaluate.compare import compare_runs
from cxrlab.evaluate.evaluate import evaluate_predictions
from cxrlab.evaluate.stats.bootstrap import patient_weights, with_point
from cxrlab.evaluate.stats.delong import delong_test
from cxrlab.evaluate.stats.ranking import auc_ap
from cxrlab.predictions import Predictions, write_predictions

# NIH ChestX-ray14 prevalences (approximate, whole dataset)
PREVALENCE = {"Atelectasis": 0.103, "Cardiomegaly": 0.025, "Effusion": 0.119, "Infiltration": 0.177,
              "Mass": 0.052, "Nodule": 0.056, "Pneumonia": 0.013, "Pneumothorax": 0.047, "Consolidation": 0.042,
              "Edema": 0.021, "Emphysema": 0.022, "Fibrosis": 0.015, "Pleural_Thickening": 0.030, "Hernia": 0.002}
IMAGES_PER_PATIENT = 8  # NIH's test list: ~25,600 images from ~2,800 patients (many follow-ups)


def synthetic(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ids, patients, labels (n, 14), and two models' probabilities (one better than the other)."""
    rng = np.random.default_rng(seed)
    classes = list(PREVALENCE)
    y = (rng.random((n, len(classes))) < np.array(list(PREVALENCE.values()))).astype(float)
    patients = rng.integers(0, max(n // IMAGES_PER_PATIENT, 1), n)
    noise = rng.normal(size=y.shape)
    a = 1 / (1 + np.exp(-(1.6 * y - 2 + noise)))
    b = 1 / (1 + np.exp(-(1.3 * y - 2 + noise + 0.5 * rng.normal(size=y.shape))))
    ids = [f"{i:08d}_000.png" for i in range(n)]
    return ids, patients, y, np.round(a, 6), np.round(b, 6)


def write_inputs(root: Path, n: int) -> tuple[Path, Path, Path]:
    ids, patients, y, a, b = synthetic(n)
    classes = list(PREVALENCE)
    frame = pd.DataFrame({"image_id": ids, "path": ids, "patient_id": [f"p{p}" for p in patients]})
    frame[classes] = y
    write_index(Index(frame, "multilabel", classes, root), root / "index")
    pa = write_predictions(root / "a" / "test.csv", Predictions(ids, a, classes, {"split": "test", "model": "a"}))
    pb = write_predictions(root / "b" / "test.csv", Predictions(ids, b, classes, {"split": "test", "model": "b"}))
    return root / "index", pa, pb


def core_stats(n: int, replicates: int) -> float:
    """CPU seconds for the statistics alone: bootstrap AUROC/AP of 14 classes x 2 models + DeLong per class
    (CPU time, not wall time: the benchmark machine is shared, and this code is single-threaded)."""
    _, patients, y, a, b = synthetic(n)
    _, owner = np.unique(patients, return_inverse=True)
    start = time.process_time()
    w = with_point(patient_weights(int(owner.max()) + 1, replicates, seed=0))
    for c in range(y.shape[1]):
        auc_ap(a[:, c], y[:, c], owner, w)
        auc_ap(b[:, c], y[:, c], owner, w)
        delong_test(a[:, c], b[:, c], y[:, c])
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=22433)
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--no-scaling", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        index, pa, pb = write_inputs(Path(tmp), args.images)
        start, cpu = time.perf_counter(), time.process_time()
        compare_runs([pa, pb], labels=index, bootstrap=args.replicates, report=False, quiet=True)
        t_compare, c_compare = time.perf_counter() - start, time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        evaluate_predictions(pa, index, bootstrap=args.replicates, report=False, quiet=True)
        t_eval, c_eval = time.perf_counter() - start, time.process_time() - cpu
    print(f"{args.images} images x 14 classes, ~{args.images // IMAGES_PER_PATIENT} patients, "
          f"{args.replicates} patient bootstrap replicates")
    print(f"  compare (2 models, DeLong every class, paired bootstrap, Holm; CSV in, no report): "
          f"{t_compare:.2f} s wall, "
          f"{c_compare:.2f} s CPU  [target <= 10 s] {'OK' if t_compare <= 10 else 'SLOW'}")
    print(f"  evaluate (1 model, all metrics + CIs; CSV in, no report): {t_eval:.2f} s wall, {c_eval:.2f} s CPU")
    if args.no_scaling:
        return
    print("core statistics, CPU s (2 models: bootstrap AUROC+AP for 14 classes, DeLong per class):")
    base = core_stats(args.images, args.replicates)
    for n in (args.images // 4, args.images // 2, args.images, args.images * 2):
        t = base if n == args.images else core_stats(n, args.replicates)
        print(f"  images {n:>6}, replicates {args.replicates:>5}: {t:6.2f} s  ({t / base:4.2f}x)")
    for r in (args.replicates // 4, args.replicates // 2, args.replicates * 2):
        t = core_stats(args.images, r)
        print(f"  images {args.images:>6}, replicates {r:>5}: {t:6.2f} s  ({t / base:4.2f}x)")


if __name__ == "__main__":
    main()
