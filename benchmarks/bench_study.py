"""Benchmark the study machinery: (1) its overhead on a 4-run smoke study, (2) the report at NIH test size.

(1) A study of 2 arms x 2 seeds that indexes, splits, audits and caches a phantom dataset itself (``data.root``),
    trains, measures each arm's cost, and writes its report. The total is split into the runs' own ``fit`` (the
    training, with each run's predictions) and everything else, the overhead: planning and checks, the data
    steps (index, split, audit, cache), the cost measurement (once per arm) and the report. Each share is a
    percentage of the total. The same study is also run with ``cost: false`` (``study run --no-cost``),
    interleaved with the first over ``--repeats`` rounds. Target: planning and checks under 2% of the total.
(2) ``study report`` over 20 finished runs (5 arms x 4 seeds) holding synthetic predictions for 22,433 test
    images (NIH's official test size) x 14 classes, 1000 patient-bootstrap replicates. Target: under 60 s.
    Measured against the code before the fast bootstrap (``old_code``: AUROC via ``auc_ap``, probabilities via
    ``pd.to_numeric``, the test predictions parsed a second time for the guard, the hash lookup built per call),
    old and new alternating over ``--report-rounds`` rounds on the same study folder; their
    ``study_report.json`` must be identical.

    .venv/bin/python benchmarks/bench_study.py [--skip-overhead] [--skip-report] [--replicates 1000] [--quick]

With ``--skip-overhead`` (a full run) the stored (1) figures are kept from ``results/study.json``.

Writes ``benchmarks/results/study.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
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
from results_io import Figure, read_results, timed_calls, write_results  # noqa: E402

PHASES = ("fit", "data", "cost", "report")


def _study_file(root: Path, data_root: Path, size: int, epochs: int, cost: bool, bootstrap: int) -> Path:
    study = {"name": "bench", "data": {"root": str(data_root), "format": "csv", "val": 0.2, "test": 0.2,
                                       "cache_size": size},
             "base": {"recipe": "configs/smoke.yaml", "set": {"data.image_size": size, "train.device": "cpu",
                                                               "train.batch_size": 32}},
             "budget": {"epochs": epochs}, "arms": [{"name": "a"}, {"name": "b", "set": {"train.lr": 0.01}}],
             "seeds": [0, 1], "evaluate": {"bootstrap": bootstrap}, "cost": cost}
    path = root / f"study_cost_{cost}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def one_study(study: Path, out: Path) -> dict[str, float]:
    """Seconds of the whole study (report included) and of each timed phase; the rest is planning and checks."""
    import cxrlab.study.cost
    import cxrlab.study.data
    import cxrlab.study.report
    import cxrlab.train
    from cxrlab.study.runner import run_study

    spent = dict.fromkeys(PHASES, 0.0)
    patched = {"fit": (cxrlab.train, "fit"), "cost": (cxrlab.study.cost, "measure_cost"),
               "data": (cxrlab.study.data, "prepare_root"), "report": (cxrlab.study.report, "build_report")}
    with timed_calls(patched, spent):
        t0 = time.perf_counter()
        run_study(study, out, report=True)
        total = time.perf_counter() - t0
    return {"total": total, **spent, "plan_and_checks": total - sum(spent.values())}


def overhead(root: Path, n_images: int, size: int, epochs: int, repeats: int, bootstrap: int) -> dict[str, Figure]:
    from cxrlab.data.phantom import make_phantom

    data_root = make_phantom(root / "phantom", n=n_images, size=size, seed=0, workers=1)
    rounds: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    for r in range(repeats):
        for cost in (True, False):  # interleaved: the machine's load hits both alike
            study = _study_file(root, data_root, size, epochs, cost, bootstrap)
            rounds[cost].append(one_study(study, root / f"out_{r}_cost_{cost}"))
    figures = {}
    for cost, label in ((True, "with_cost"), (False, "no_cost")):
        runs = rounds[cost]
        figures[f"{label}_total_s"] = Figure.of([x["total"] for x in runs], unit="s")
        figures[f"{label}_overhead_pct"] = Figure.of([100 * (x["total"] - x["fit"]) / x["total"] for x in runs],
                                                     unit="%", note="everything but the runs' fit, of the total")
        for phase in ("plan_and_checks", "data", "cost", "report"):
            if phase == "cost" and not cost:
                continue
            figures[f"{label}_{phase}_pct"] = Figure.of([100 * x[phase] / x["total"] for x in runs], unit="%")
            figures[f"{label}_{phase}_s"] = Figure.of([x[phase] for x in runs], unit="s")
        figures[f"{label}_fit_s"] = Figure.of([x["fit"] for x in runs], unit="s", note="4 runs")
    figures["cost_s_per_arm"] = Figure.of([x["cost"] / 2 for x in rounds[True]], unit="s",
                                          note="measure_cost, once per arm (2 arms)")
    for key in ("with_cost_overhead_pct", "no_cost_overhead_pct", "with_cost_cost_pct", "with_cost_report_pct",
                "with_cost_data_pct", "with_cost_plan_and_checks_pct"):
        print(f"(1) {key}: {figures[key].median:.1f}%")
    return figures


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
    # stand-in file hashes (one per image), so the test-set guard can tell val from test images by content
    hashes = [hashlib.sha256(i.encode()).hexdigest() for i in ids]
    frame = pd.DataFrame({"image_id": ids, "path": ids, "patient_id": pids, "sha256": hashes, **labels})
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


@contextlib.contextmanager
def old_code():
    """The report's hot paths as they were before the fast bootstrap (same numbers, the old way)."""
    import cxrlab.evaluate.scoring as scoring
    import cxrlab.guards as guards
    import cxrlab.predictions as preds
    from cxrlab.evaluate import metrics as m
    from cxrlab.evaluate.stats.ranking import auc_ap

    def micro_auc(s, cols, weights):
        y, p = s.y[:, cols].ravel(), s.p[:, cols].ravel()
        owner, known = np.repeat(s.patients, len(cols)), ~np.isnan(y)
        return auc_ap(p[known], y[known], owner[known], weights)[0]

    def hashes_of(image_ids, index):
        if index is None or "sha256" not in index.frame.columns:
            return [None] * len(image_ids)
        table = dict(zip(index.frame["image_id"].astype(str), index.frame["sha256"]))
        return [guards._clean(table.get(str(i))) for i in image_ids]

    real = scoring.check_fitting_allowed
    patches = [(m, "class_auroc", lambda s, w: m.class_auc_ap(s, w)[0]), (m, "micro_auc", micro_auc),
               (guards, "hashes_of", hashes_of), (preds, "_plain_numbers", lambda cells: None),
               (scoring, "check_fitting_allowed", lambda *a, test_preds=None, **k: real(*a, **k))]
    saved = [(mod, name, getattr(mod, name)) for mod, name, _ in patches]
    for mod, name, value in patches:
        setattr(mod, name, value)
    try:
        yield
    finally:
        for mod, name, value in saved:
            setattr(mod, name, value)


def _one_report(out: Path, old: bool) -> tuple[float, float, dict]:
    from cxrlab.study.report import build_report

    with old_code() if old else contextlib.nullcontext():
        t0, c0 = time.perf_counter(), time.process_time()
        build_report(out)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, json.loads((out / "report" / "study_report.json").read_text())


def report_time(root: Path, n: int, replicates: int, rounds: int) -> dict[str, Figure]:
    """Old and new report alternating (the order flips each round) on one study folder; equal JSON required."""
    from cxrlab.utils import read_json

    synthetic_study(root, n, arms=5, seeds=4, val_n=n // 2)
    plan = read_json(root / "out" / "plan.json")
    plan["evaluate"]["bootstrap"] = replicates
    write_json(root / "out" / "plan.json", plan)
    wall: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    load: list[float] = []
    for r in range(rounds):
        results = {}
        for old in ((True, False) if r % 2 == 0 else (False, True)):
            load.append(os.getloadavg()[0])
            w, c, results[old] = _one_report(root / "out", old)
            wall[old].append(w)
            cpu[old].append(c)
            print(f"(2) round {r + 1} {'old' if old else 'new'}: {w:.1f} s wall, {c:.1f} s CPU, load {load[-1]:.1f}")
        if results[True] != results[False]:
            raise SystemExit("the fast report's study_report.json differs from the old code's")
    ratio = [o / w for o, w in zip(wall[True], wall[False])]
    median = Figure.of(wall[False]).median
    print(f"(2) report for 20 runs (5 arms x 4 seeds) x {n} test images x 14 classes, {replicates} replicates: "
          f"{median:.1f} s wall (old code {Figure.of(wall[True]).median:.1f} s, x{Figure.of(ratio).median:.2f}) "
          f"[target < 60 s] {'OK' if median < 60 else 'SLOW'}; study_report.json identical")
    return {"report_20_runs_s": Figure.of(wall[False], unit="s", note="CPU s: " + ", ".join(
                f"{c:.1f}" for c in cpu[False])),
            "report_20_runs_old_code_s": Figure.of(wall[True], unit="s", note="the code before the fast bootstrap; "
                                                   "CPU s: " + ", ".join(f"{c:.1f}" for c in cpu[True])),
            "report_20_runs_cpu_s": Figure.of(cpu[False], unit="s", note="CPU time of the process (2 threads)"),
            "report_20_runs_old_code_cpu_s": Figure.of(cpu[True], unit="s", note="CPU time, the old code"),
            "report_old_over_new": Figure.of(ratio, unit="x", note="old / new wall time, per round (interleaved)"),
            "report_load_1min": Figure.of(load, unit="", note="1-minute load average at the start of each report "
                                          "(2 cores)")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=22433)
    p.add_argument("--replicates", type=int, default=1000)
    p.add_argument("--phantom", type=int, default=300, help="phantom images of the overhead study")
    p.add_argument("--size", type=int, default=64, help="image size of the overhead study")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--repeats", type=int, default=2, help="rounds of the overhead study (with and without cost)")
    p.add_argument("--skip-overhead", action="store_true")
    p.add_argument("--skip-report", action="store_true")
    p.add_argument("--report-rounds", type=int, default=2, help="rounds of the report, old and new code each")
    p.add_argument("--quick", action="store_true", help="24 phantom images at 32 px, 1 epoch; report on 400 images")
    a = p.parse_args()
    if a.quick:
        a.phantom, a.size, a.epochs, a.repeats, a.images, a.replicates = 24, 32, 1, 1, 400, 20
        a.report_rounds = 1
    load, figures, notes = list(os.getloadavg()), {}, []
    if a.skip_overhead and not a.quick:  # keep the stored overhead figures: this run measures the report only
        stored = read_results("study")
        figures.update({k: Figure(**v) for k, v in stored["figures"].items() if not k.startswith("report_")})
        kept = [n for n in stored["notes"].split("; ") if n.startswith("(1) kept from")]  # kept again: same origin
        notes.append(kept[0] if kept else f"(1) kept from the run written {stored['written']} (load "
                     f"{stored['machine']['load_average'][0]:.1f})")
    with tempfile.TemporaryDirectory() as tmp:
        if not a.skip_overhead:
            figures.update(overhead(Path(tmp) / "overhead", a.phantom, a.size, a.epochs, a.repeats,
                                    bootstrap=20 if a.quick else 200))
        if not a.skip_report:
            figures.update(report_time(Path(tmp) / "report", a.images, a.replicates, a.report_rounds))
            notes.append("(2) old and new code interleaved, same study folder, identical study_report.json")
    write_results("study", inputs={"phantom_images": a.phantom, "size": a.size, "epochs": a.epochs,
                                   "arms": 2, "seeds": 2, "repeats": a.repeats, "model": "cnn_gap (smoke recipe)",
                                   "report_images": a.images, "report_replicates": a.replicates,
                                   "report_runs": 20, "classes": 14, "report_rounds": a.report_rounds},
                  figures=figures, quick=a.quick, load_before=load,
                  notes="; ".join(["with-cost and no-cost studies interleaved; shared 2-core machine (load recorded)",
                                   *notes]))


if __name__ == "__main__":
    main()
