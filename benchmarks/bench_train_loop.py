"""Training-loop overhead on CPU: full loop time per step / bare forward+backward+step time per step.

The full loop is cxrlab's own ``train_one_epoch`` over the DataLoader that ``fit`` builds (cache memmap ->
augmentation -> collate -> forward/backward/step -> loss bookkeeping and progress). The bare loop runs the same
model, loss and optimiser on the same batches, made beforehand and held in memory. Both are timed in one
process, alternating rounds; the ratio of the fastest rounds is printed (the minimum is the least disturbed
by other processes on a shared machine; target <= 1.10: the data path never limits).

    .venv/bin/python benchmarks/bench_train_loop.py [--images 640 --size 96 --batch 32 --workers 1] [--quick]

Writes ``benchmarks/results/train_loop.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import Figure, write_results  # noqa: E402


def make_data(root: Path, n: int, size: int) -> list[str]:
    from cxrlab.data.cache import build_cache
    from cxrlab.data.phantom import make_phantom_index
    from cxrlab.data.splits import make_split

    index = make_phantom_index(root, n=n, size=size, seed=0, workers=1)
    make_split(index, root / "split.csv", val=0.05, test=0.05, seed=0)
    build_cache(index, root / "cache", size=size, workers=1)
    return [f"data.index={root / 'index'}", f"data.split={root / 'split.csv'}", f"data.cache={root / 'cache'}"]


def bare_step_time(s, batches) -> float:
    """Seconds per step of forward + loss + backward + optimiser step on batches already in memory, at the same
    precision as the loop (bf16 autocast when ``train.amp`` chose it), so the ratio measures the loop alone."""
    model, eng = s.model, s.eng
    model.train()
    t0 = time.perf_counter()
    for images, targets in batches:
        with torch.autocast(eng.device.type, dtype=eng.amp_dtype, enabled=eng.amp_dtype is not None):
            logits = model(images)
        loss = eng.loss_fn(logits.float(), targets)
        loss.backward()
        eng.optimizer.step()
        eng.optimizer.zero_grad(set_to_none=True)
    return (time.perf_counter() - t0) / len(batches)


def loop_on_memory_step_time(s, batches) -> float:
    """Seconds per step of train_one_epoch fed the in-memory batches: the loop's own bookkeeping, no data path."""
    from cxrlab.train.loop import train_one_epoch

    t0 = time.perf_counter()
    train_one_epoch(s.model, batches, s.eng, epoch=1)
    return (time.perf_counter() - t0) / len(batches)


def full_step_time(s) -> float:
    """Seconds per step of cxrlab's train_one_epoch, DataLoader start-up included."""
    from cxrlab.train.loop import train_one_epoch

    t0 = time.perf_counter()
    train_one_epoch(s.model, s.loaders["train"], s.eng, epoch=1)
    return (time.perf_counter() - t0) / len(s.loaders["train"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=640)
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1, help="DataLoader workers (augmentation off the main core)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the model")
    ap.add_argument("--model", default="cnn_gap")
    ap.add_argument("--policy", default="medical")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--name", default="train_loop", help="results file name (benchmarks/results/NAME.json)")
    ap.add_argument("--quick", action="store_true", help="64 images at 32 px, batch 16, no workers, 1 round")
    args = ap.parse_args()
    if args.quick:
        args.images, args.size, args.batch, args.workers, args.rounds = 64, 32, 16, 0, 1
    load = list(os.getloadavg())

    from cxrlab.config import load_config
    from cxrlab.train.distributed import Dist
    from cxrlab.train.fitting import _build

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp), args.images, args.size)
        cfg = load_config(None, data + [
            f"model.name={args.model}", f"data.image_size={args.size}", f"train.batch_size={args.batch}",
            f"data.num_workers={args.workers}", f"augment.policy={args.policy}", "train.device=cpu",
            "schedule.name=none", "train.lr=1e-3",
        ])
        s = _build(cfg, Path(tmp) / "run", torch.device("cpu"), Dist())
        batches = [tuple(b[:3]) for b in s.loaders["train"]]  # the same kind of batches, made beforehand
        pairs = [b[:2] for b in batches]
        bare_step_time(s, pairs[:3])  # warm-up
        full, bare, memory = [], [], []
        for _ in range(args.rounds):
            bare.append(bare_step_time(s, pairs))
            memory.append(loop_on_memory_step_time(s, batches))
            full.append(full_step_time(s))
    f, b = min(full), min(bare)
    print(f"model {args.model} {args.size}px batch {args.batch} policy {args.policy} workers {args.workers} "
          f"threads {args.threads}: {len(batches)} steps/epoch")
    print(f"bare forward+backward+step: {b * 1000:.1f} ms/step ({args.batch / b:.0f} img/s)")
    print(f"train_one_epoch on in-memory batches: {min(memory) * 1000:.1f} ms/step")
    print(f"full loop (cache+augment+loader+step+bookkeeping): {f * 1000:.1f} ms/step ({args.batch / f:.0f} img/s)")
    median = statistics.median(full) / statistics.median(bare)
    print(f"ratio full/bare: {f / b:.3f} (target <= 1.10); ratio of medians {median:.3f}")
    write_results(args.name, inputs={"model": args.model, "images": args.images, "size": args.size,
                                        "batch": args.batch, "workers": args.workers, "threads": args.threads,
                                        "policy": args.policy, "rounds": args.rounds,
                                        "amp": str(s.eng.amp_dtype or "off").replace("torch.", "")},
                  figures={"full_loop_ms_per_step": Figure.of([x * 1000 for x in full], unit="ms"),
                           "bare_step_ms_per_step": Figure.of([x * 1000 for x in bare], unit="ms"),
                           "loop_on_memory_ms_per_step": Figure.of([x * 1000 for x in memory], unit="ms"),
                           "full_vs_bare_ratio": Figure.of([f / b], unit="x", note="fastest rounds"),
                           "full_vs_bare_ratio_of_medians": Figure.of([median], unit="x")},
                  quick=args.quick, load_before=load, notes="bare, in-memory and full loops interleaved per round")


if __name__ == "__main__":
    main()
