"""bf16 autocast vs float32 for CPU training: training images/s and validation macro AUROC over seeds.

1. Throughput: the ``cpu_small`` model (timm ResNet-18 from scratch, 1 channel, 128 px, batch 32, AdamW) on
   batches held in memory; fp32 and bf16 steps interleaved (fp32, bf16, fp32, ...) so both see the same load;
   images/s per step and the per-pair bf16/fp32 ratio (median, min, max).
2. Accuracy: ``configs/cpu_small.yaml`` trained with ``train.amp=off`` and ``train.amp=bf16`` for each seed on
   ../shared/data/nih-sample (patient split val 0.2 / test 0.2, seed 0; cache at 128 px), on a REDUCED schedule
   (``--epochs``, default 5 instead of the recipe's 20; same model, size, optimiser, augmentation), runs
   interleaved by seed; last-epoch and best validation macro AUROC. Skipped (said in the results) without the
   shared data.

One torch thread by default (the machine is shared; ``--threads``). ``--quick``: a few small steps and a 1-epoch
phantom run (seconds), written to results/quick/.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_bf16.py [--quick] [--seeds 0 1 2] [--epochs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from results_io import Figure, write_results

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "nih-sample"
RECIPE = Path(__file__).resolve().parents[1] / "configs" / "cpu_small.yaml"


def throughput(repeats: int, size: int, batch: int) -> dict[str, list[float]]:
    """Images/s of interleaved fp32 and bf16-autocast training steps on the same model and batch."""
    from cxrlab.models import create_model

    torch.manual_seed(0)
    model = create_model("timm:resnet18", 14, in_chans=1, img_size=size).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x, y = torch.randn(batch, 1, size, size), torch.randint(0, 2, (batch, 14)).float()

    def step(bf16: bool) -> float:
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss_fn(logits.float(), y).backward()  # the loss in float32, as train_one_epoch does
        opt.step()
        opt.zero_grad(set_to_none=True)
        return batch / (time.perf_counter() - t)

    for _ in range(2):  # warm-up: oneDNN primitive creation for both precisions
        step(False), step(True)
    out: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(repeats):
        out["fp32"].append(step(False))
        out["bf16"].append(step(True))
    return out


def _prepare_nih(work: Path) -> list[str]:
    from cxrlab.data.build_index import build_index
    from cxrlab.data.cache import build_cache
    from cxrlab.data.splits import make_split

    if not (work / "split.csv").exists():
        index, _ = build_index(DATA, "nih", work / "index", workers=1)
        make_split(index, work / "split.csv", val=0.2, test=0.2, seed=0)
        build_cache(index, work / "cache", size=128, workers=1, progress=False)
    return [f"data.index={work / 'index'}", f"data.split={work / 'split.csv'}", f"data.cache={work / 'cache'}",
            "data.require_positives=false"]


def _prepare_phantom(work: Path) -> list[str]:
    from cxrlab.data.phantom import make_phantom_index
    from cxrlab.data.splits import make_split

    index = make_phantom_index(work / "ph", n=40, size=32, seed=0, workers=1)
    make_split(index, work / "split.csv", val=0.2, test=0.2, seed=0)
    return [f"data.index={work / 'ph' / 'index'}", f"data.split={work / 'split.csv'}", "data.image_size=32",
            "data.cache_size=32", "train.batch_size=16", "augment.policy=none"]


def _wait_for(run: Path, minutes: float) -> None:
    """Wait for a run another process is training in the same --work (seeds trained in parallel processes)."""
    deadline = time.time() + 60 * minutes
    while run.exists() and not (run / "manifest.json").exists() and time.time() < deadline:
        time.sleep(15)


def accuracy(data: list[str], seeds: list[int], epochs: int, threads: int, work: Path,
             wait_minutes: float = 0) -> dict[str, dict]:
    """Validation macro AUROC (last epoch, best epoch) and training seconds per (precision, seed) run."""
    import pandas as pd

    from cxrlab.config import load_config
    from cxrlab.train import fit

    results: dict[str, dict] = {}
    for seed in seeds:
        for amp in ("off", "bf16"):  # interleaved by seed: both precisions see the same stretch of load
            sets = data + [f"train.epochs={epochs}", f"train.seed={seed}", f"train.amp={amp}",
                           f"train.threads={threads}", "train.device=cpu", "data.num_workers=0"]
            run = work / "runs" / f"{amp}-seed{seed}"
            _wait_for(run, wait_minutes)
            if not (run / "manifest.json").exists():  # a finished run in --work is reused; a broken-off one resumed
                fit(load_config(RECIPE, sets), run, resume=(run / "checkpoints" / "last_state.pt").exists())
            m = pd.read_csv(run / "metrics.csv")
            results[f"{amp}/seed{seed}"] = {"last_val_auroc": float(m["val_metric"].iloc[-1]),
                                            "best_val_auroc": float(m["val_metric"].max()),
                                            "train_seconds": float(m["seconds"].sum()),
                                            "images_per_s": float(m["images_per_s"].median())}
            print(f"{amp:4s} seed {seed}: {results[f'{amp}/seed{seed}']}", flush=True)
    return results


def figures_of(speed: dict[str, list[float]], runs: dict[str, dict], seeds: list[int]) -> dict[str, Figure]:
    figs = {
        "train_img_s_fp32": Figure.of(speed["fp32"], unit="images/s", note="in-memory batches, interleaved steps"),
        "train_img_s_bf16": Figure.of(speed["bf16"], unit="images/s", note="bf16 autocast, interleaved steps"),
        "train_speedup_bf16": Figure.of([b / f for f, b in zip(speed["fp32"], speed["bf16"])], unit="x",
                                        note="bf16 / fp32 images/s, per interleaved pair"),
    }
    for amp in ("off", "bf16") if runs else ():
        name = "fp32" if amp == "off" else "bf16"
        last = [runs[f"{amp}/seed{s}"]["last_val_auroc"] for s in seeds]
        figs[f"val_auroc_last_{name}"] = Figure.of(last, unit="macro AUROC", note="last epoch, one value per seed")
        figs[f"val_auroc_best_{name}"] = Figure.of([runs[f"{amp}/seed{s}"]["best_val_auroc"] for s in seeds],
                                                   unit="macro AUROC", note="best epoch, one value per seed")
        figs[f"fit_img_s_{name}"] = Figure.of([runs[f"{amp}/seed{s}"]["images_per_s"] for s in seeds],
                                              unit="images/s", note="whole training loop (metrics.csv), per seed")
    if runs:
        figs["val_auroc_last_bf16_minus_fp32"] = Figure.of(
            [runs[f"bf16/seed{s}"]["last_val_auroc"] - runs[f"off/seed{s}"]["last_val_auroc"] for s in seeds],
            unit="AUROC", note="paired by seed")
    return figs


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="seconds: small steps, a 1-epoch phantom run")
    p.add_argument("--repeats", type=int, default=20, help="interleaved step pairs timed")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=5, help="reduced schedule (the recipe has 20)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", type=Path, help="keep the runs here (default: a temporary folder)")
    p.add_argument("--wait-minutes", type=float, default=0,
                   help="wait this long for runs in --work that other processes are still training")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = list(os.getloadavg())
    if args.quick:
        args.repeats, args.seeds, args.epochs = 3, [0], 1
    speed = throughput(args.repeats, 32 if args.quick else 128, 8 if args.quick else 32)
    print(f"train images/s fp32 {statistics.median(speed['fp32']):.1f}, bf16 {statistics.median(speed['bf16']):.1f}")
    with tempfile.TemporaryDirectory(prefix="bench-bf16-") as tmp:
        work = args.work or Path(tmp)
        if args.quick:
            data, where = _prepare_phantom(work), "phantom, 40 images at 32 px"
        elif DATA.is_dir():
            data, where = _prepare_nih(work), f"{DATA.name}: 400 NIH images, patient split val 0.2 / test 0.2"
        else:
            data, where = [], f"skipped: {DATA} is absent"
        runs = accuracy(data, args.seeds, args.epochs, args.threads, work, args.wait_minutes) if data else {}
    inputs = {"model": "timm:resnet18 (configs/cpu_small.yaml), 1 channel", "size": 32 if args.quick else 128,
              "batch": 8 if args.quick else 32, "repeats": args.repeats, "threads": args.threads,
              "seeds": args.seeds, "epochs": args.epochs, "recipe_epochs": 20, "accuracy_data": where,
              "cpu_bf16": _cpu_flags()}
    notes = (f"Reduced schedule: {args.epochs} epochs instead of cpu_small's 20 (same model, image size, optimiser, "
             "schedule shape and augmentation); runs interleaved by seed, steps interleaved fp32/bf16, on a shared "
             "machine (load average recorded).")
    write_results("bf16", inputs=inputs, figures=figures_of(speed, runs, args.seeds), quick=args.quick, notes=notes,
                  load_before=load_before)


def _cpu_flags() -> list[str]:
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return []
    return sorted({f for f in flags if "bf16" in f})


if __name__ == "__main__":
    main()
