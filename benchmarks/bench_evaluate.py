"""Benchmark: patient-level bootstrap + DeLong on an NIH-sized test set (22,433 images x 14 findings).

    .venv/bin/python benchmarks/bench_evaluate.py [--images 22433] [--replicates 1000] [--repeats 3]
        [--no-scaling] [--quick]

Measures the end-to-end time of ``compare_runs`` on two predictions files (reading CSVs, matching, 1,000
patient bootstrap replicates of every per-class AUROC/AP, macro AUROC and macro F1 for both models, DeLong
for every class, Holm; no report), of ``evaluate_predictions``, and of ``evaluate_predictions`` with
``by=["sex", "age", "view"]`` (per-group AUROC with CIs and gaps; the subgroup columns are synthetic), the
three interleaved over ``--repeats`` rounds; then how the core statistics scale with the number of images and
of replicates. Target: compare <= 10 s on 2 cores. Writes ``benchmarks/results/evaluate.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import Figure, write_results  # noqa: E402

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
    rng = np.random.default_rng(1)  # subgroup columns for `evaluate --by sex,age,view` (one sex/age per patient)
    frame["sex"] = np.where(patients % 2 == 0, "F", "M")
    frame["age"] = 20 + (patients * 7919) % 70
    frame["view"] = rng.choice(["PA", "AP"], n)
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


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call."""
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def end_to_end(images: int, replicates: int, repeats: int) -> dict[str, list[float]]:
    """compare (2 models), evaluate and evaluate --by sex,age,view, interleaved over ``repeats`` rounds."""
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        index, pa, pb = write_inputs(Path(tmp), images)
        steps = {
            "compare_2_models": lambda: compare_runs([pa, pb], labels=index, bootstrap=replicates, report=False),
            "evaluate_1_model": lambda: evaluate_predictions(pa, index, bootstrap=replicates, report=False),
            "evaluate_by_sex_age_view": lambda: evaluate_predictions(pa, index, bootstrap=replicates, report=False,
                                                                     by=["sex", "age", "view"]),
        }
        for _ in range(repeats):
            for name, fn in steps.items():
                wall, cpu = _timed(fn)
                times.setdefault(f"{name}_s", []).append(wall)
                times.setdefault(f"{name}_cpu_s", []).append(cpu)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=22433)
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds of the end-to-end timings")
    parser.add_argument("--no-scaling", action="store_true")
    parser.add_argument("--quick", action="store_true", help="2,000 images, 50 replicates, 1 round, no scaling")
    args = parser.parse_args()
    if args.quick:
        args.images, args.replicates, args.repeats, args.no_scaling = 2000, 50, 1, True
    load = list(os.getloadavg())
    times = end_to_end(args.images, args.replicates, args.repeats)
    notes = {"compare_2_models_s": "compare, 2 models, DeLong every class, paired bootstrap, Holm; CSV in, no report",
             "evaluate_1_model_s": "evaluate, 1 model, all metrics + CIs; CSV in, no report",
             "evaluate_by_sex_age_view_s": "evaluate --by sex,age,view: per-group AUROC + CIs, gaps; no report"}
    figures = {k: Figure.of(v, unit="s", note=notes.get(k, "CPU time")) for k, v in times.items()}
    print(f"{args.images} images x 14 classes, ~{args.images // IMAGES_PER_PATIENT} patients, "
          f"{args.replicates} patient bootstrap replicates")
    for key, fig in figures.items():
        print(f"  {key}: median {fig.median:.2f} s (min {fig.min:.2f}, max {fig.max:.2f}, {fig.repeats} rounds)")
    if not args.no_scaling:
        print("core statistics, CPU s (2 models: bootstrap AUROC+AP for 14 classes, DeLong per class):")
        base = core_stats(args.images, args.replicates)
        for n in (args.images // 4, args.images // 2, args.images, args.images * 2):
            t = base if n == args.images else core_stats(n, args.replicates)
            figures[f"core_stats_images_{n}_cpu_s"] = Figure.of([t], unit="s", note=f"{args.replicates} replicates")
            print(f"  images {n:>6}, replicates {args.replicates:>5}: {t:6.2f} s  ({t / base:4.2f}x)")
        for r in (args.replicates // 4, args.replicates // 2, args.replicates * 2):
            t = core_stats(args.images, r)
            figures[f"core_stats_replicates_{r}_cpu_s"] = Figure.of([t], unit="s", note=f"{args.images} images")
            print(f"  images {args.images:>6}, replicates {r:>5}: {t:6.2f} s  ({t / base:4.2f}x)")
    write_results("evaluate", inputs={"images": args.images, "classes": 14, "replicates": args.replicates,
                                      "patients": args.images // IMAGES_PER_PATIENT, "repeats": args.repeats},
                  figures=figures, quick=args.quick, load_before=load,
                  notes="synthetic predictions; the three end-to-end steps interleaved per round; shared 2-core "
                        "machine (load average recorded)")


if __name__ == "__main__":
    main()
