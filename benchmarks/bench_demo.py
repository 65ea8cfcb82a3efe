"""Benchmark ``cxrlab demo``: its wall time and where it goes, with the machine's load beside it.

Runs the demo's own steps (``cxrlab.demo``: data, train as a study, evaluate, compare, study report) with its
default settings (800 phantom images, 3 models, 6 epochs at 112 px) and times each phase; inside the training
phase the runs' ``fit`` and the cost measurement are timed apart; the demo folder's size on disk and the
process's peak memory are recorded too. The load average is recorded before and after:
on a shared machine the wall time is longer than on an idle one (target: ``make demo`` within 3 minutes on 2
idle cores).

    .venv/bin/python benchmarks/bench_demo.py [--n 800] [--epochs 6] [--quick]

``--quick``: 40 images at 64 px, 1 epoch, 20 bootstrap replicates. Writes ``benchmarks/results/demo.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import Figure, timed_calls, write_results  # noqa: E402


def run(settings, spent: dict[str, float]) -> None:
    """The demo's steps, as ``run_demo`` runs them, each timed into ``spent``."""
    import cxrlab.study.cost
    import cxrlab.train
    from cxrlab import demo
    from cxrlab.evaluate import compare, evaluate
    from cxrlab.study.report import build_report

    inner = {"fit": (cxrlab.train, "fit"), "cost": (cxrlab.study.cost, "measure_cost"),
             "evaluate": (evaluate, "evaluate_predictions"), "compare": (compare, "compare_runs")}
    with timed_calls(inner, spent):
        t0 = time.perf_counter()
        settings.out.mkdir(parents=True, exist_ok=True)
        data = demo.prepare_data(settings)
        spent["data"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        runs = demo.train_models(settings, *data)
        spent["train_step"] = time.perf_counter() - t1
        demo.evaluate_and_compare(settings, runs, data[0])
        t2 = time.perf_counter()
        build_report(settings.out)
        spent["study_report"] = time.perf_counter() - t2
        spent["total"] = time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=None, help="phantom images (default: the demo's)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs (default: the demo's)")
    ap.add_argument("--quick", action="store_true", help="40 images at 64 px, 1 epoch, 20 replicates")
    args = ap.parse_args()
    import torch

    from cxrlab.demo import DemoSettings

    load = list(os.getloadavg())
    with tempfile.TemporaryDirectory() as tmp:
        s = DemoSettings(out=Path(tmp) / "demo")
        if args.quick:
            s.n_images, s.epochs, s.image_size, s.cache_size, s.bootstrap = 40, 1, 64, 72, 20
        s.n_images, s.epochs = args.n or s.n_images, args.epochs or s.epochs
        spent: dict[str, float] = {}
        run(s, spent)
        disk_mb = sum(f.stat().st_size for f in s.out.rglob("*") if f.is_file()) / 2**20
        auroc = {}
        for model in s.models:  # the demo's test macro AUROC [95% CI] per model, from its metrics.json
            macro = json.loads((s.out / "runs" / model / "evaluation" / "metrics.json").read_text())["macro"]
            auroc[model] = [macro["auroc"], *macro["auroc_ci"]]
    spent["plan_checks_predict"] = spent["train_step"] - spent["fit"] - spent.get("cost", 0.0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    figures = {"total_min": Figure.of([spent["total"] / 60], unit="min", note="the demo's steps, one run"),
               "disk_MB": Figure.of([disk_mb], unit="MB", note="the demo folder at the end (checkpoints, cache)"),
               "peak_memory_MB": Figure.of([peak_mb], unit="MB", note="peak resident memory of the process")}
    for phase in ("data", "fit", "cost", "plan_checks_predict", "evaluate", "compare", "study_report"):
        figures[f"{phase}_s"] = Figure.of([spent.get(phase, 0.0)], unit="s")
        figures[f"{phase}_pct"] = Figure.of([100 * spent.get(phase, 0.0) / spent["total"]], unit="%")
        print(f"{phase:>20}: {spent.get(phase, 0.0):7.1f} s ({100 * spent.get(phase, 0.0) / spent['total']:4.1f}%)")
    for model, (point, low, high) in auroc.items():
        figures[f"{model}_test_macro_auroc"] = Figure.of([point], note="the demo's test split")
        figures[f"{model}_test_macro_auroc_ci_low"] = Figure.of([low], note="95% patient-bootstrap CI")
        figures[f"{model}_test_macro_auroc_ci_high"] = Figure.of([high], note="95% patient-bootstrap CI")
        print(f"{model:>20}: test macro AUROC {point:.3f} [{low:.3f}, {high:.3f}]")
    print(f"{'total':>20}: {spent['total']:7.1f} s ({spent['total'] / 60:.1f} min); load before {load}, "
          f"after {[round(x, 2) for x in os.getloadavg()]}")
    write_results("demo", inputs={"images": s.n_images, "epochs": s.epochs, "image_size": s.image_size,
                                  "models": list(s.models), "bootstrap": s.bootstrap,
                                  "torch_threads_at_end": torch.get_num_threads()},
                  figures=figures, quick=args.quick, load_before=load,
                  notes="one demo run on a machine shared with other work: see load_average_before/load_average; "
                        "an idle machine is faster")


if __name__ == "__main__":
    main()
