"""Benchmark: indexing, merging and splitting synthetic label-only rows stays linear in time and memory.

Three member indexes in the shapes of NIH (15 classes), CheXpert (14) and PadChest (a few dozen terms), with
1-4 images per patient, are written and loaded (the index stage: ``write_index`` + ``load_index``), merged
(``merge_indexes``) and split (``make_split``: stratified per source and finding, audited). Images are absent:
the figures are the cost of the tables. Each total size runs in a fresh process, so its peak RSS (minus the RSS
after imports) is the memory of that size alone; sizes are interleaved across repeats because the machine is
shared; CPU seconds (``*_cpu``) are reported beside wall seconds, as they suffer less from other jobs. Linear
scaling: time per row and memory per row stay flat across sizes (the ``*_per_row_ratio`` figures: the largest
size over the smallest, per row, about 1).

Run: ``python benchmarks/bench_merge.py [--repeats 2] [--quick]`` (quick: 3k-12k rows, seconds).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = (125_000, 250_000, 500_000)
QUICK_SIZES = (3_000, 6_000, 12_000)
SHAPES = {  # source: (class names, prevalence)
    "nih": (["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
             "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
             "No Finding"], 0.05),
    "chexpert": (["No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
                  "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
                  "Fracture", "Support Devices"], 0.1),
    "padchest": (["normal", "pleural effusion", "nodule", "mass", "pneumonia", "infiltrates", "cardiomegaly",
                  "atelectasis", "emphysema", "hiatal hernia"] + [f"term {k}" for k in range(20)], 0.03),
}


def _member(name: str, n: int, seed: int):
    import pandas as pd

    from cxrlab.data.index import Index

    classes, prevalence = SHAPES[name]
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(n), rng.integers(1, 5, n))[:n]  # 1-4 images per patient
    frame = pd.DataFrame({"image_id": [f"{i:08d}.png" for i in range(n)], "path": [f"images/{i:08d}.png" for i in
                                                                                  range(n)],
                          "patient_id": patients.astype(str)})
    labels = (rng.random((n, len(classes))) < prevalence).astype(np.int64)
    frame = pd.concat([frame, pd.DataFrame(labels, columns=classes)], axis=1)
    frame["view"] = "PA"
    return Index(frame, "multilabel", classes, Path("/data") / name, {"format": name})


def child(total: int, folder: str) -> dict:
    """One size in this process: seconds per stage and peak RSS growth (MiB) over the RSS after imports."""
    from cxrlab.data.index import load_index, write_index
    from cxrlab.data.merge import merge_indexes
    from cxrlab.data.splits import make_split

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out, t = Path(folder), {}

    def index_stage():
        members = {name: _member(name, total // 3, k) for k, name in enumerate(SHAPES)}
        for name, index in members.items():
            write_index(index, out / name)
        for name in members:
            load_index(out / name)

    stages = (("index", index_stage),
              ("merge", lambda: merge_indexes([(None, out / name) for name in SHAPES], out / "merged")),
              ("split", lambda: make_split(load_index(out / "merged"), out / "split.csv", val=0.1, test=0.2)))
    for name, stage in stages:
        t0, c0 = time.perf_counter(), time.process_time()
        stage()
        t[f"{name}_s"], t[f"{name}_cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
    t["rows"] = len(load_index(out / "merged"))
    t["rss_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024  # ru_maxrss: KiB on Linux
    return t


def _run_child(total: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        res = subprocess.run([sys.executable, __file__, "--child", str(total), "--folder", d], capture_output=True,
                             text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.folder)))
        return 0
    from results_io import Figure, write_results

    sizes = QUICK_SIZES if args.quick else SIZES
    runs: dict[int, list[dict]] = {s: [] for s in sizes}
    for _ in range(1 if args.quick else args.repeats):
        for size in sizes:  # interleaved: a load spike hits every size alike
            runs[size].append(_run_child(size))
            r = runs[size][-1]
            print(f"{r['rows']:>8} rows: index {r['index_s']:.2f} s (cpu {r['index_cpu_s']:.2f}), merge "
                  f"{r['merge_s']:.2f} s (cpu {r['merge_cpu_s']:.2f}), split {r['split_s']:.2f} s (cpu "
                  f"{r['split_cpu_s']:.2f}), peak RSS +{r['rss_mib']:.0f} MiB", flush=True)
    keys = ("index_s", "merge_s", "split_s", "index_cpu_s", "merge_cpu_s", "split_cpu_s", "rss_mib")
    figures = {}
    for size in sizes:
        for key in keys:
            unit = "MiB" if key == "rss_mib" else "s"
            figures[f"{key.removesuffix('_s').removesuffix('_mib')}_{size}"] = Figure.of([r[key] for r in runs[size]],
                                                                                        unit=unit)
    small, large = sizes[0], sizes[-1]
    for key in keys:
        per_row = [np.median([r[key] for r in runs[s]]) / s for s in (small, large)]
        figures[f"{key.removesuffix('_s').removesuffix('_mib')}_per_row_ratio"] = Figure.of(
            [per_row[1] / per_row[0]], unit="x", note=f"per-row cost at {large} rows / at {small} rows (1 = linear)")
    write_results("merge", inputs={"sizes": list(sizes), "repeats": len(runs[small]), "sources": list(SHAPES),
                                   "images": "absent (label-only rows)"}, figures=figures, quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
