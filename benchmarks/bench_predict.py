"""`cxrlab predict` throughput through the run's cache vs decoding the files, and that both give the same numbers.

    .venv/bin/python benchmarks/bench_predict.py [--n 200] [--size 256]

Makes a phantom (N images at SIZE px), a patient split and a cache, trains cnn_gap for one epoch (smoke recipe,
CPU, one thread), then predicts every image of the index twice: with the run's cache, and with the cache moved
away (files decoded and hash-checked). Prints seconds, images/s (model loading included) and the largest
difference between the two predictions files (expected: 0).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from cxrlab.cli import main as cli
    from cxrlab.data.cache import build_cache
    from cxrlab.data.phantom import make_phantom_index
    from cxrlab.data.splits import make_split

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        index = make_phantom_index(root, n=args.n, size=args.size, seed=0, workers=1)
        make_split(index, root / "split.csv", val=0.2, test=0.2, seed=0)
        build_cache(index, root / "cache", size=args.size, workers=1)
        recipe = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
        cli(["train", "--config", str(recipe), "--out", str(root / "run"), "--set", f"data.index={root / 'index'}",
             f"data.split={root / 'split.csv'}", f"data.cache={root / 'cache'}", "train.epochs=1",
             "train.device=cpu", "train.threads=1"])
        seconds = {}
        for name in ("cache", "files"):
            if name == "files":
                shutil.move(root / "cache", root / "cache_moved")
            start = time.perf_counter()
            cli(["predict", str(root / "run"), "--index", str(root / "index"), "--out", str(root / f"{name}.csv")])
            seconds[name] = time.perf_counter() - start
        a, b = (pd.read_csv(root / f"{k}.csv") for k in ("cache", "files"))
        classes = [c for c in a.columns if c not in ("image_id", "patient_id")]
        diff = float(np.abs(a[classes].to_numpy() - b[classes].to_numpy()).max())
    for name, s in seconds.items():
        print(f"{name}: {args.n} images in {s:.2f} s ({args.n / s:.0f} images/s, model loading included)")
    print(f"largest difference between the two predictions files: {diff:.2e}")


if __name__ == "__main__":
    main()
