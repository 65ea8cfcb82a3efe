"""Pick the ``cpu_small`` recipe by measurement: patient-grouped 3-fold CV on ../shared/data/nih-sample.

Each candidate trains on two folds and is scored on the third (macro AUROC of the LAST epoch's weights on the
held-out fold, read from metrics.csv, so no checkpoint is selected on the data it is scored on). One torch
thread (the machine is shared); training seconds are scaled to 400 images and 2 cores in the summary.

    .venv/bin/python benchmarks/select_cpu_small.py --out /tmp/cpu_small_cv [--only NAME ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nih-sample"
COMMON = ["train.device=cpu", "train.threads=1", "data.num_workers=0", "data.require_positives=false"]
CANDIDATES = {
    "smoke": ("configs/smoke.yaml", []),
    "demo_cnn_baseline": (None, ["model.name=cnn_baseline", "train.lr=0.0003", "data.image_size=112",
                                 "train.epochs=6", "augment.policy=medical"]),
    "demo_resnet34_scratch": (None, ["model.name=resnet34_scratch", "train.lr=0.001", "data.image_size=112",
                                     "train.epochs=6", "augment.policy=medical"]),
    "demo_vit_v1": (None, ["model.name=vit_v1", "train.lr=0.001", "data.image_size=112", "train.epochs=6",
                           "augment.policy=medical"]),
    "gap_long": ("configs/smoke.yaml", ["train.epochs=20", "optim.weight_decay=0.05", "schedule.warmup_epochs=1"]),
    "resnet18_128": (None, ["model.name=timm:resnet18", "data.image_size=128", "train.epochs=12", "train.lr=0.001",
                            "optim.weight_decay=0.05", "schedule.warmup_epochs=1", "augment.policy=medical"]),
    "resnet18_128_e20": (None, ["model.name=timm:resnet18", "data.image_size=128", "train.epochs=20", "train.lr=0.001",
                                "optim.weight_decay=0.05", "schedule.warmup_epochs=1", "augment.policy=medical"]),
    "resnet18_128_asl": (None, ["model.name=timm:resnet18", "data.image_size=128", "train.epochs=12",
                                "train.lr=0.001", "optim.weight_decay=0.05", "schedule.warmup_epochs=1",
                                "augment.policy=medical", "loss.name=asl"]),
}


def prepare(out: Path) -> dict[str, str]:
    from cxrlab.data.build_index import build_index
    from cxrlab.data.cache import build_cache
    from cxrlab.data.splits import make_split

    if not (out / "split.csv").exists():
        index, _ = build_index(DATA, "nih", out / "index", workers=1)
        make_split(index, out / "split.csv", folds=3, test=0.0, seed=0)
        build_cache(index, out / "cache", size=128, workers=1, progress=False)
    return {"data.index": str(out / "index"), "data.split": str(out / "split.csv"), "data.cache": str(out / "cache")}


def run(out: Path, only: list[str] | None) -> dict:
    import pandas as pd

    from cxrlab.config import load_config
    from cxrlab.train import fit

    torch.set_num_threads(1)
    data = prepare(out)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for name, (recipe, sets) in CANDIDATES.items():
        if only and name not in only:
            continue
        for fold in range(3):
            key = f"{name}/fold{fold}"
            if key in results:
                continue
            cfg = load_config(recipe, [f"{k}={v}" for k, v in data.items()] + sets + COMMON + [f"data.fold={fold}"])
            run_dir = out / "runs" / name / f"fold{fold}"
            t0, c0 = time.perf_counter(), time.process_time()
            fit(cfg, run_dir, resume=(run_dir / "checkpoints" / "last_state.pt").exists())
            metrics = pd.read_csv(run_dir / "metrics.csv")
            results[key] = {"last_val_auroc": float(metrics["val_metric"].iloc[-1]),
                            "best_val_auroc": float(metrics["val_metric"].max()),
                            "train_seconds": float(metrics["seconds"].sum()), "wall_seconds": time.perf_counter() - t0,
                            "cpu_seconds": time.process_time() - c0,
                            "train_images": int(metrics.shape[0] and round(metrics["images_per_s"].iloc[-1]
                                                                             * metrics["seconds"].iloc[-1])),
                            "epochs": int(metrics.shape[0])}
            results_path.write_text(json.dumps(results, indent=1))
            print(key, results[key], flush=True)
    return results


def summary(results: dict) -> str:
    import numpy as np

    lines = ["| candidate | macro AUROC, last epoch (mean ± sd over 3 folds) | train s / fold (1 thread) | "
             "est. min for 400 images on 2 cores |", "|---|---:|---:|---:|"]
    for name in CANDIDATES:
        rows = [results[f"{name}/fold{k}"] for k in range(3) if f"{name}/fold{k}" in results]
        if len(rows) < 3:
            continue
        auc = np.array([r["last_val_auroc"] for r in rows])
        secs = np.mean([r["wall_seconds"] for r in rows])
        per_image = np.mean([r["train_seconds"] / max(r["train_images"] * r["epochs"], 1) for r in rows])
        epochs = rows[0]["epochs"]
        # 400 images x epochs at the 1-thread rate, assuming 2 threads give 1.6x (measured ratio on this box varies)
        est = 400 * epochs * per_image / 1.6 / 60
        lines.append(f"| {name} | {auc.mean():.3f} ± {auc.std(ddof=1):.3f} | {secs:.0f} | {est:.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--out", type=Path, default=Path("/tmp/cpu_small_cv"))
    p.add_argument("--only", nargs="*")
    a = p.parse_args()
    print(summary(run(a.out, a.only)))
