"""Choose the ``cpu_small`` recipe honestly: nested 3-fold CV (``cxrlab select``) on ../shared/data/nih-sample.

For each outer fold, every candidate trains on the other two folds (epoch chosen on an inner validation set carved
from them), the candidate with the best inner macro AUROC wins, and only the winner's prediction of the outer fold
is scored: the outer scores are the honest estimate (mean ± sd over folds, and the pooled out-of-fold macro
AUROC). One torch thread per process, bf16 where the CPU has it (train.amp=auto); CPU seconds of each training are
measured (``cost.json``) and scaled to 400 images. The candidates are spelled out below in full (not relative to
the packaged ``cpu_small``, which this selection rewrites), so a rerun selects among the same recipes.

    .venv/bin/python benchmarks/select_cpu_small.py --data /tmp/select_nih --out /tmp/select_real [--fold K]
    .venv/bin/python benchmarks/select_cpu_small.py --quick      # phantom data, two tiny candidates: seconds

``--fold K`` trains outer fold K only (run the three folds as three processes); a run without it resumes every
finished training and writes ``benchmarks/results/select_cpu_small.json`` (``--quick``: results/quick/).
``--time-400`` instead trains the packaged ``cpu_small`` on the whole sample (a 10-fold patient split, fold 0 as
its validation set: 360 training images) with 2 threads and writes ``results/cpu_small_train400.json``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from results_io import Figure, write_results

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nih-sample"
# the cpu_small recipe as it was before this selection (ResNet-18 from scratch, 128 px, 20 epochs), from smoke
R18 = ["data.cache_size=128", "model.name=timm:resnet18", "model.in_chans=1", "optim.weight_decay=0.05",
       "schedule.warmup_epochs=1", "train.epochs=20", "train.lr=0.001", "train.device=cpu"]
CANDIDATES = {  # name: (recipe, overrides, tta)
    "r18_e20": ("smoke", R18, "none"),
    "r18_e20_tta": ("smoke", R18, "shifts"),
    "r10t_e20": ("smoke", [*R18, "model.name=timm:resnet10t"], "none"),
    "r10t_e20_tta": ("smoke", [*R18, "model.name=timm:resnet10t"], "shifts"),
    "gap_e20": ("smoke", ["train.epochs=20", "optim.weight_decay=0.05", "schedule.warmup_epochs=1"], "none"),
    "mnv3s_e20": ("smoke", [*R18, "model.name=timm:mobilenetv3_small_100"], "none"),
    "r18_e20_labb": ("smoke", [*R18, "augment.policy=lab_b"], "none"),
    "r18_e40": ("smoke", [*R18, "train.epochs=40"], "none"),
}
QUICK = {"gap_e1": ("smoke", ["train.epochs=1", "data.image_size=32"], "none"),
         "gap_e1_tta": ("smoke", ["train.epochs=1", "data.image_size=32"], "shifts"),
         "gap_e1_lr": ("smoke", ["train.epochs=1", "data.image_size=32", "train.lr=0.001"], "none")}
COMMON = ["train.device=cpu", "train.threads=1", "data.num_workers=0", "data.require_positives=false"]


def prepare(data: Path, quick: bool) -> list[str]:
    """Index, 3-fold patient-level split (no test rows: every image is an outer-fold image once) and cache."""
    from cxrlab.data.build_index import build_index
    from cxrlab.data.cache import build_cache
    from cxrlab.data.phantom import make_phantom_index
    from cxrlab.data.splits import make_split

    if not (data / "cache" / "meta.json").exists():
        if quick:
            index = make_phantom_index(data / "phantom", n=90, size=32, seed=0)
        else:
            index, _ = build_index(DATA, "nih", data / "index", workers=1)
        make_split(index, data / "split.csv", folds=3, test=0.0, seed=0)
        build_cache(index, data / "cache", size=32 if quick else 128, workers=1, progress=False)
    index_dir = data / ("phantom/index" if quick else "index")
    return [f"data.index={index_dir}", f"data.split={data / 'split.csv'}", f"data.cache={data / 'cache'}"]


def specs(table: dict) -> list[str]:
    """``--candidate`` specs (the CLI's syntax) for ``table``."""
    return [",".join([f"{name}={recipe}", *sets, *([f"tta={tta}"] if tta != "none" else [])])
            for name, (recipe, sets, tta) in table.items()]


def figures(summary: dict) -> dict[str, Figure]:
    out = {"outer_macro_auroc": Figure.of(summary["outer"]["values"], unit="AUROC",
                                          note="winner's outer-fold macro AUROC per fold (the honest estimate)"),
           "outer_mean": Figure.of([summary["outer"]["mean"]], unit="AUROC", note="mean over outer folds"),
           "outer_sd": Figure.of([summary["outer"]["sd"]], unit="AUROC", note="sd over outer folds"),
           "pooled_oof_macro_auroc": Figure.of([summary["outer"]["pooled_oof"]], unit="AUROC"),
           "plain_selection_best_mean": Figure.of([summary["plain_selection"]["best_mean"]], unit="AUROC",
                                                  note="NOT an estimate: best candidate's mean outer score")}
    for name in summary["candidates"]:
        out[f"inner_{name}"] = Figure.of([f["inner"][name] for f in summary["folds"]], unit="AUROC",
                                         note="inner-validation macro AUROC per fold")
        out[f"outer_all_{name}"] = Figure.of(summary["plain_selection"]["outer_by_candidate"][name], unit="AUROC",
                                             note="diagnostic: this candidate on the outer folds (chose nothing)")
        out[f"wins_{name}"] = Figure.of([summary["wins"][name]], unit="folds")
    runs = {f["fold"]: f for f in summary["folds"]}
    for name, cpu in _costs(summary).items():
        out[f"train_cpu_s_{name}"] = Figure.of(cpu, unit="s", note="CPU seconds of one fold's training, 1 thread")
        scaled = [s * 400 / runs[k]["n_train"] for k, s in enumerate(cpu)]
        out[f"train_cpu_s_400_{name}"] = Figure.of(scaled, unit="s", note="scaled to 400 training images")
    return out


def _costs(summary: dict) -> dict[str, list[float]]:
    """CPU seconds per training recipe and fold (recipes trained once per fold; TTA variants train nothing)."""
    names = {n for f in summary["folds"] for n in f["train_cpu_seconds"]}
    return {n: [f["train_cpu_seconds"][n] for f in summary["folds"] if n in f["train_cpu_seconds"]]
            for n in sorted(names)}


def time_400(data: Path, quick: bool) -> None:
    """Wall and CPU seconds of training the packaged ``cpu_small`` on all the sample's images, 2 threads."""
    import time

    import pandas as pd

    from cxrlab.config import load_config
    from cxrlab.data.index import load_index
    from cxrlab.data.splits import kfold_split, write_split
    from cxrlab.train import fit

    paths = prepare(data, quick)
    index_dir = data / ("phantom/index" if quick else "index")
    index = load_index(index_dir)
    split = data / "split10.csv"
    if not split.exists():
        write_split(kfold_split(index, 10, test=0.0, seed=0), split, "kfold", 0, index, folds=10)
    tiny = ["train.epochs=1", "data.image_size=32", "data.cache_size=32"] if quick else []
    sets = [*paths[:1], f"data.split={split}", paths[2], "data.fold=0", "train.threads=2", "data.num_workers=0",
            "data.require_positives=false", "train.device=cpu", *tiny]
    cfg = load_config("cpu_small", sets)
    run = data / "run400"
    load, c0, w0 = list(os.getloadavg()), time.process_time(), time.perf_counter()
    fit(cfg, run, resume=(run / "checkpoints" / "last_state.pt").exists())
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    n_train = int((pd.read_csv(split)["fold"] != 0).sum())
    write_results("cpu_small_train400", quick=quick, load_before=load,
                  inputs={"recipe": "cpu_small", "epochs": cfg.train.epochs, "threads": 2, "train_images": n_train,
                          "val_images": len(index.image_ids) - n_train},
                  figures={"wall_s": Figure.of([wall], unit="s", note="one training, 2 threads, loaded machine"),
                           "cpu_s": Figure.of([cpu], unit="s", note="CPU seconds of that training (all threads)")})


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, default=Path("/tmp/cpu_small_select"), help="prepared index/split/cache")
    p.add_argument("--out", type=Path, default=None, help="selection folder (default DATA/select)")
    p.add_argument("--fold", type=int, default=None, help="train outer fold K only (no results written)")
    p.add_argument("--time-400", action="store_true", help="time cpu_small on the whole sample (2 threads)")
    p.add_argument("--quick", action="store_true")
    a = p.parse_args()
    import torch

    if a.time_400:
        return time_400(a.data / "quick" if a.quick else a.data, a.quick)

    from cxrlab.selection import parse_candidate, run_selection

    torch.set_num_threads(1)
    data = a.data / "quick" if a.quick else a.data
    common = prepare(data, a.quick) + COMMON
    table = QUICK if a.quick else CANDIDATES
    candidates = [parse_candidate(s, common) for s in specs(table)]
    load = list(os.getloadavg())
    summary = run_selection(candidates, folds=3, out=a.out or data / "select", only_fold=a.fold,
                            progress=lambda line: print(line, flush=True))
    if a.fold is not None:
        return
    write_results("select_cpu_small", quick=a.quick, load_before=load, figures=figures(summary),
                  inputs={"candidates": specs(table), "common": COMMON, "folds": 3, "inner_val": 0.2,
                          "data": "nih-sample (400 images, 273 patients)" if not a.quick else "phantom",
                          "summary": summary},
                  notes="nested CV: the outer figures are the honest estimate; plain_selection and outer_all_* are "
                        "diagnostics computed after the choice. Three folds ran as three 1-thread processes on a "
                        "2-core machine shared with other jobs: CPU seconds, not wall time, measure the cost.")


if __name__ == "__main__":
    main()
