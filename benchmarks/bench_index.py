"""Benchmark: rows per second of each dataset adapter on the real label files (images absent, no hashing).

For each adapter the label file is parsed, mapped (policies, views, reader aggregation, terms) and validated
(``scan_source`` + ``validate_table`` with ``hash_files=False``) at 25% and 100% of its rows, so the scaling
is visible (linear: the two rates are close). Images are absent, as in a partial download, so the figures are
the cost of the labels alone. Files: ``../shared/data/label-files`` (CheXpert 150,000 rows, PadChest
30,000, VinBigData 67,914, RSNA 30,227), NIH's ``Data_Entry_2017_v2020.csv`` (112,120 rows, with the 400
images of ``nih-sample``) and a synthetic MIMIC-CXR-JPG layout (PhysioNet's columns, ``--mimic-rows``
images). Run: ``python benchmarks/bench_index.py [--repeats 3]`` (``--quick``: the synthetic MIMIC layout
alone, 2,000 rows, once); writes ``benchmarks/results/index.json``.
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from cxrlab.data.build_index import scan_source
from cxrlab.data.sources.chexpert import CHEXPERT_CLASSES
from cxrlab.data.validate import validate_table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import Figure, write_results  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LABELS = SHARED / "label-files"
FILES = {  # adapter: (file in label-files, name the adapter looks for)
    "chexpert": ("chexpert/train.csv.gz", "train.csv"),
    "padchest": ("padchest/PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv.gz",
                 "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"),
    "vindr": ("vinbigdata/train.csv.gz", "train.csv"),
    "rsna": ("rsna-pneumonia/stage_2_train_labels.csv.gz", "stage_2_train_labels.csv"),
}


def _write_share(src: Path, dst: Path, share: float) -> int:
    """The first ``share`` of ``src``'s rows (VinBigData: of its images, all readers kept) as plain CSV."""
    with gzip.open(src, "rt") as f:
        frame = pd.read_csv(f, dtype=str, keep_default_na=False)
    if "rad_id" in frame.columns:
        keep = frame["image_id"].drop_duplicates()
        frame = frame[frame["image_id"].isin(set(keep.iloc[: int(len(keep) * share)]))]
    elif "patientId" in frame.columns:
        keep = frame["patientId"].drop_duplicates()
        frame = frame[frame["patientId"].isin(set(keep.iloc[: int(len(keep) * share)]))]
    else:
        frame = frame.iloc[: int(len(frame) * share)]
    dst.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(dst, index=False)
    return len(frame)


def _mimic(root: Path, n_images: int) -> int:
    """PhysioNet's three MIMIC-CXR-JPG CSVs for ``n_images`` images (2 per study, 3 studies per subject)."""
    rng = np.random.default_rng(0)
    n_studies = n_images // 2
    studies = pd.DataFrame({"subject_id": [str(10000000 + i // 3) for i in range(n_studies)],
                            "study_id": [str(50000000 + i) for i in range(n_studies)]})
    codes = rng.choice(["1.0", "0.0", "-1.0", ""], size=(n_studies, len(CHEXPERT_CLASSES)), p=[.1, .1, .05, .75])
    for i, c in enumerate(CHEXPERT_CLASSES):
        studies[c] = codes[:, i]
    root.mkdir(parents=True, exist_ok=True)
    studies.to_csv(root / "mimic-cxr-2.0.0-chexpert.csv", index=False)
    meta = studies[["subject_id", "study_id"]].loc[np.repeat(studies.index, 2)].reset_index(drop=True)
    meta.insert(0, "dicom_id", [f"d{i:08d}" for i in range(len(meta))])
    meta["ViewPosition"] = np.where(np.arange(len(meta)) % 2 == 0, "PA", "LATERAL")
    meta.to_csv(root / "mimic-cxr-2.0.0-metadata.csv", index=False)
    meta[["dicom_id", "study_id", "subject_id"]].assign(split="train").to_csv(root / "mimic-cxr-2.0.0-split.csv",
                                                                                index=False)
    return len(meta)


def _time(root: Path, fmt: str, repeats: int) -> tuple[float, int]:
    """Best wall time of scan + validate (no hashing) and the number of indexed rows."""
    best, indexed = float("inf"), 0
    for _ in range(repeats):
        start = time.perf_counter()
        table = scan_source(root, fmt)
        frame, _ = validate_table(table, root, hash_files=False, workers=1)
        best = min(best, time.perf_counter() - start)
        indexed = len(frame)
    return best, indexed


def run(repeats: int, mimic_rows: int, work: Path, real_files: bool = True) -> list[dict]:
    rows = []
    for fmt, (rel, name) in FILES.items() if real_files else ():
        src = LABELS / rel
        if not src.exists():
            print(f"{src} absent: {fmt} skipped")
            continue
        for share in (0.25, 1.0):
            root = work / f"{fmt}_{share}"
            n = _write_share(src, root / name, share)
            seconds, indexed = _time(root, fmt, repeats)
            rows.append({"adapter": fmt, "share": share, "rows": n, "seconds": seconds, "rows_per_s": n / seconds})
    for share in (0.25, 1.0):
        root = work / f"mimic_{share}"
        n = _mimic(root, int(mimic_rows * share))
        seconds, _ = _time(root, "mimic", repeats)
        rows.append({"adapter": "mimic (synthetic)", "share": share, "rows": n, "seconds": seconds,
                     "rows_per_s": n / seconds})
    nih = SHARED / "nih-sample"
    if real_files and (nih / "Data_Entry_2017_v2020.csv").exists():
        seconds, indexed = _time(nih, "nih", repeats)
        n = sum(1 for _ in open(nih / "Data_Entry_2017_v2020.csv")) - 1
        rows.append({"adapter": f"nih ({indexed} images present, header-checked)", "share": 1.0, "rows": n,
                     "seconds": seconds, "rows_per_s": n / seconds})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="best of N timings (default 3)")
    parser.add_argument("--mimic-rows", type=int, default=200_000, help="images in the synthetic MIMIC layout")
    parser.add_argument("--quick", action="store_true", help="synthetic MIMIC only, 2,000 rows, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.mimic_rows = 1, 2000
    load = list(os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="bench_index_"))
    try:
        rows = run(args.repeats, args.mimic_rows, work, real_files=not args.quick)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| adapter | share of rows | rows | seconds | rows/s |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['adapter']} | {100 * r['share']:.0f}% | {r['rows']:,} | {r['seconds']:.2f} | "
              f"{r['rows_per_s']:,.0f} |")
    figures = {}
    for r in rows:
        key = f"{r['adapter'].split()[0]}_{100 * r['share']:.0f}pct"
        figures[f"{key}_s"] = Figure.of([r["seconds"]], unit="s", note=f"{r['rows']} rows, best of {args.repeats}")
        figures[f"{key}_rows_per_s"] = Figure.of([r["rows_per_s"]], unit="rows/s", note=f"{r['rows']} rows")
    write_results("index", inputs={"repeats": args.repeats, "mimic_rows": args.mimic_rows, "share_pct": [25, 100],
                                   "rows": {f"{r['adapter'].split()[0]}_{100 * r['share']:.0f}pct": r["rows"]
                                            for r in rows}},
                  figures=figures, quick=args.quick, load_before=load)


if __name__ == "__main__":
    main()
