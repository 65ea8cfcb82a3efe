"""`cxrlab predict` throughput through the run's cache vs decoding the files, and that both give the same numbers.

    .venv/bin/python benchmarks/bench_predict.py [--n 200] [--size 256] [--rounds 3] [--quick]

Makes a phantom (N images at SIZE px), a patient split and a cache, trains cnn_gap for one epoch (smoke recipe,
CPU, one thread), then predicts every image of the index twice: with the run's cache, and with the cache moved
away (files decoded and hash-checked). Prints seconds, images/s (model loading included) and the largest
difference between the two predictions files (expected: 0). The two are interleaved over ``--rounds``
(the cache moved away and back). Writes ``benchmarks/results/predict.json``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import Figure, write_results  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="24 images at 48 px, one round")
    args = ap.parse_args()
    if args.quick:
        args.n, args.size, args.rounds = 24, 48, 1
    load = list(os.getloadavg())
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
        seconds: dict[str, list[float]] = {"cache": [], "files": []}
        for _ in range(args.rounds):
            for name in ("cache", "files"):
                if name == "files":
                    shutil.move(root / "cache", root / "cache_moved")
                start = time.perf_counter()
                cli(["predict", str(root / "run"), "--index", str(root / "index"), "--out", str(root / f"{name}.csv"),
                     "--force"])
                seconds[name].append(time.perf_counter() - start)
                if name == "files":
                    shutil.move(root / "cache_moved", root / "cache")
        a, b = (pd.read_csv(root / f"{k}.csv") for k in ("cache", "files"))
        classes = [c for c in a.columns if c not in ("image_id", "patient_id")]
        diff = float(np.abs(a[classes].to_numpy() - b[classes].to_numpy()).max())
    figures = {}
    for name, s in seconds.items():
        fig = Figure.of([args.n / x for x in s], unit="images/s", note="model loading included, 1 thread")
        figures[f"{name}_img_s"] = fig
        print(f"{name}: {args.n} images, median {fig.median:.0f} images/s (model loading included)")
    figures["max_abs_difference"] = Figure.of([diff], note="cache vs files predictions")
    print(f"largest difference between the two predictions files: {diff:.2e}")
    write_results("predict", inputs={"images": args.n, "size": args.size, "rounds": args.rounds, "threads": 1,
                                     "model": "cnn_gap (smoke recipe, 1 epoch)"},
                  figures=figures, quick=args.quick, load_before=load, notes="cache and files interleaved")


if __name__ == "__main__":
    main()
