"""What the report reads from a study folder: finished runs, val-fitted ensembles, costs and curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlab.rundir import RunDir
from cxrlab.study import status as st
from cxrlab.utils import read_json


def finished_runs(out: Path, plan: dict[str, Any]) -> list[dict[str, Any]]:
    """The plan's runs that finished, as ``{name, arm, seed, dir, kind}``."""
    return [{**r, "dir": str(out / "runs" / r["name"]), "kind": "arm"} for r in plan["runs"]
            if st.is_finished(out / "runs" / r["name"])]


def build_ensembles(out: Path, plan: dict[str, Any], runs: list[dict[str, Any]], labels: str) -> list[dict]:
    """For every ensemble and seed whose members all finished: ``cxrlab.ensemble`` fitted on val predictions,
    written as ``DIR/ensembles/<name>-s<seed>/predictions/{test,val}.csv`` (val combined with the same weights,
    so its F1 thresholds are chosen like an arm's)."""
    from cxrlab.ensemble import combine, ensemble_predictions
    from cxrlab.predictions import Predictions, read_predictions, write_predictions

    done = {(r["arm"], r["seed"]): r["dir"] for r in runs}
    made = []
    for ens in plan.get("ensembles", []):
        for seed in plan["seeds"]:
            members = [done.get((arm, seed)) for arm in ens["members"]]
            if not all(members):
                continue
            folder = out / "ensembles" / f"{ens['name']}-s{seed}"
            test = folder / "predictions" / "test.csv"
            ensemble_predictions(members, out=test, method=ens["method"], labels=labels)
            meta = read_json(test.with_suffix(".json"))
            vals = [read_predictions(Path(m) / "predictions" / "val.csv") for m in members]
            task = meta["task"]
            val_probs = combine(np.stack([v.probs for v in vals]), ens["method"], meta.get("params") or {}, task)
            write_predictions(folder / "predictions" / "val.csv", Predictions(
                vals[0].image_ids, val_probs, vals[0].classes, {**meta, "split": "val"}, vals[0].patient_ids))
            made.append({"name": f"{ens['name']}-s{seed}", "arm": ens["name"], "seed": seed, "dir": str(folder),
                         "kind": "ensemble", "members": ens["members"], "method": ens["method"]})
    return made


def run_cost(out: Path, run: dict[str, Any]) -> dict[str, Any]:
    """Measured cost of one run: cost.json, the manifest's parameters, wall time, and training images/s."""
    folder = Path(run["dir"])
    cost = read_json(folder / "cost.json", kind=dict) if (folder / "cost.json").exists() else {}
    manifest = RunDir(folder).run_manifest()
    status = st.read_status(out, run["name"])
    metrics = curves(folder)
    ips = metrics["images_per_s"].mean() if metrics is not None and "images_per_s" in metrics else None
    return {
        "parameters": cost.get("parameters", manifest.parameters),
        "gflops_per_image": cost.get("gflops_per_image"),
        "train_seconds": status.get("wall_seconds", manifest.wall_seconds),
        "train_images_per_s": None if ips is None or not np.isfinite(ips) else float(ips),
        "cpu_latency_ms_b1": cost.get("cpu_latency_ms_b1"),
        "cpu_images_per_s_b32": cost.get("cpu_images_per_s_b32"),
        "gpu_latency_ms_b1": cost.get("gpu_latency_ms_b1"),
        "gpu_images_per_s_b32": cost.get("gpu_images_per_s_b32"),
        "train_load": status.get("load_average_end"),
        "cost_load": (cost.get("load_average_after") or [None])[0],
        "device": manifest.device,
        "git_commit": manifest.git_commit,
        "cxrlab_version": manifest.cxrlab_version,
    }


def arm_costs(out: Path, runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per arm: the mean over its seeds of every numeric cost (the device and versions of the first)."""
    by_arm: dict[str, list[dict]] = {}
    for r in runs:
        if r["kind"] == "arm":
            by_arm.setdefault(r["arm"], []).append(run_cost(out, r))
    result = {}
    for arm, costs in by_arm.items():
        merged = dict(costs[0])
        for key in costs[0]:
            values = [c[key] for c in costs if isinstance(c.get(key), (int, float)) and not isinstance(c[key], bool)]
            if values:  # cost.json is measured once per arm; wall times and images/s once per seed
                merged[key] = float(np.mean(values))
        result[arm] = merged
    return result


def curves(run_dir: Path) -> pd.DataFrame | None:
    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        return None
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    return frame if "epoch" in frame.columns and not frame.empty else None


def arm_curves(runs: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """Per arm: metrics.csv columns averaged over seeds, by epoch."""
    by_arm: dict[str, list[pd.DataFrame]] = {}
    for r in runs:
        frame = curves(Path(r["dir"])) if r["kind"] == "arm" else None
        if frame is not None:
            by_arm.setdefault(r["arm"], []).append(frame)
    return {arm: pd.concat(frames).groupby("epoch").mean(numeric_only=True).reset_index()
            for arm, frames in by_arm.items()}
