"""The fixed tiny run behind the regression test: train, predict, evaluate, and what of it is compared.

``run_pipeline(workdir)`` makes a 40-image phantom (48 px, multi-label and multi-class), trains ``cnn_gap``
for one deterministic CPU epoch on each through the CLI, predicts val and test (and a folder of files for the
multi-label run), runs MC-dropout and Grad-CAM (``explain --json``) on test, evaluates test with val's
thresholds, and returns ``{name: DataFrame}`` for the predictions and ``{name: float}`` for every number in the metrics.

Regenerate the expected files (only when a behaviour change is intended, and say so in the commit):
    .venv/bin/python tests/regression/make_expected.py
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

EXPECTED = Path(__file__).parent / "expected"
TOL = 1e-6

# metrics.json keys that hold run-specific paths or times, not results
_VOLATILE = ("seconds", "inputs", "definitions", "references", "notes", "name", "model")


def _overrides(data: Path, loss: str) -> list[str]:
    return [f"data.index={data / 'index'}", f"data.split={data / 'split.csv'}", f"data.cache={data / 'cache'}",
            "data.image_size=48", "data.cache_size=48", "data.num_workers=0", "model.name=cnn_gap",
            f"loss.name={loss}", "augment.policy=none", "train.epochs=1", "train.batch_size=8", "train.lr=0.003",
            "train.seed=0", "train.device=cpu", "train.deterministic=true",
            "train.amp=off",  # float32 everywhere: auto picks bf16 on CPUs that have it
            "train.threads=1"]  # one intra-op thread: float sums in the same order on every machine and test order


def _make_data(root: Path, task: str) -> Path:
    from cxrlab.data.cache import build_cache
    from cxrlab.data.phantom import make_phantom_index
    from cxrlab.data.splits import make_split

    index = make_phantom_index(root, n=40, task=task, size=48, seed=0, workers=1)
    make_split(index, root / "split.csv", val=0.25, test=0.25, seed=0)
    build_cache(index, root / "cache", size=48, workers=1)
    return root


def _cli(*argv: str) -> None:
    from cxrlab.cli import main

    code = main([str(a) for a in argv])
    if code != 0:
        raise RuntimeError(f"cxrlab {' '.join(map(str, argv))} exited {code}")


def flatten(obj, prefix: str = "") -> dict[str, float]:
    """Every number in a JSON tree, keyed by its path (``a.b.0.c``)."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}{i}."))
    elif isinstance(obj, bool):
        out[prefix[:-1]] = float(obj)
    elif isinstance(obj, (int, float)) and obj is not None:
        out[prefix[:-1]] = float(obj)
    return out


def _metrics(path: Path) -> dict[str, float]:
    data = json.loads(path.read_text())
    return flatten({k: v for k, v in data.items() if k not in _VOLATILE})


def run_pipeline(work: Path) -> tuple[dict[str, pd.DataFrame], dict[str, float]]:
    """Run the fixed pipeline under ``work``; (predictions by name, flattened metrics)."""
    import torch

    torch.set_num_threads(1)
    preds: dict[str, pd.DataFrame] = {}
    metrics: dict[str, float] = {}
    config = Path(__file__).resolve().parents[2] / "configs" / "smoke.yaml"
    for task, loss in (("multilabel", "bce"), ("multiclass", "ce")):
        data = _make_data(work / f"data_{task}", task)
        run = work / f"run_{task}"
        _cli("train", "--config", config, "--out", run, "--set", *_overrides(data, loss))
        for split in ("val", "test"):
            out = work / f"{task}_{split}.csv"
            _cli("predict", run, "--split", split, "--out", out, "--batch-size", 7)
            preds[f"{task}_{split}"] = pd.read_csv(out)
        _cli("evaluate", work / f"{task}_test.csv", "--labels", data / "index", "--val-predictions",
             work / f"{task}_val.csv", "--bootstrap", 50, "--seed", 0, "--no-report", "--out", work / f"eval_{task}")
        metrics.update({f"{task}.{k}": v for k, v in _metrics(work / f"eval_{task}" / "metrics.json").items()})
        if task == "multilabel":
            out = work / "multilabel_files.csv"
            _cli("predict", run, "--images", data / "images", "--out", out, "--batch-size", 16)
            preds["multilabel_files"] = pd.read_csv(out).head(12)
            out = work / "multilabel_mc.csv"
            _cli("uncertainty", run, "--split", "test", "--method", "mc_dropout", "--samples", 3, "--out", out)
            preds["multilabel_mc"] = pd.read_csv(out)
            ex = work / "explain"
            _cli("explain", run, "--index", data / "index", "--split", "test", "--json", "--max-images", 6,
                 "--bootstrap", 20, "--no-sanity", "--method", "gradcam", "--out", ex)
            preds["multilabel_explain"] = pd.read_csv(ex / "records.csv")
            loc = json.loads((ex / "localization.json").read_text())
            metrics.update({f"explain.{k}": v for k, v in flatten(loc.get("methods", loc)).items()})
    return preds, metrics


def write_expected(preds: dict[str, pd.DataFrame], metrics: dict[str, float]) -> None:
    EXPECTED.mkdir(parents=True, exist_ok=True)
    for name, frame in preds.items():
        frame.to_csv(EXPECTED / f"{name}.csv", index=False, float_format="%.9g")
    (EXPECTED / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
