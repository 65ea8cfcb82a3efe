"""Benchmark: eager PyTorch vs ONNX Runtime FP32 vs ONNX Runtime INT8 on the CPU, interleaved, at 1 and 2 threads.

Speed: for each model (ResNet-18, DenseNet-121; random weights, 14 classes, 1 channel, 224 px), each thread count
and each batch size (1, 32), the engines run one call each per round, in a rotating order, for ``--repeats``
rounds after warm-up: eager PyTorch (``inference_mode``), the FP32 graph ``cxrlab export`` writes, and that graph
quantized by ``cxrlab.deploy.quantize`` in both forms (QOperator, the default, and QDQ). Calibration for the
speed models is synthetic (random weights have no data to be calibrated on; ranges do not change the speed).
Figures: per-call milliseconds and the per-round ratios (median, min, max over rounds), so a loaded machine
shows as spread rather than as a biased ratio. The load average is recorded before and after.

Accuracy: a trained run (``--run``: e.g. a ``configs/cpu_small.yaml`` run on NIH images) exported FP32 and
``--quantize int8`` through ``export_run``; the INT8 accuracy check's validation macro AUROC both ways and the
decision agreement. Without ``--run``, a 1-epoch phantom run is trained for it (said in the results).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_onnx.py [--quick] [--run RUN] [--repeats 20]
"""

from __future__ import annotations

import os

# Threads wait passively (no spinning) in both engines: with more runnable threads than cores (a shared machine),
# a spinning OpenMP thread steals the core its sibling needs, which once made 2-thread eager PyTorch look 15x slow.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from results_io import Figure, write_results  # noqa: E402

from cxrlab.deploy.export import to_onnx  # noqa: E402
from cxrlab.deploy.quantize import Int8Options, quantize_graph  # noqa: E402
from cxrlab.models import create_model  # noqa: E402

MODELS = ("timm:resnet18", "timm:densenet121")
ENGINES = ("eager", "ort_fp32", "ort_int8", "ort_int8_qdq")


def build_engines(name: str, size: int, threads: int, work: Path) -> dict:
    """The four engines of one model: callables taking a float32 numpy batch."""
    torch.manual_seed(0)
    model = create_model(name, 14, in_chans=1, img_size=size).eval()
    stem = work / name.replace(":", "_")
    fp32 = stem.with_suffix(".onnx")
    if not fp32.exists():
        to_onnx(model, torch.randn(2, 1, size, size), fp32)
        calib = [(torch.randn(1, size, size),) for _ in range(8)]
        for fmt in ("qoperator", "qdq"):
            quantize_graph(fp32, work / f"{stem.name}.{fmt}.onnx", calib, list(range(8)),
                           Int8Options(quant_format=fmt))

    def eager(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x))

    ort = {k: _session(p, threads) for k, p in
           (("ort_fp32", fp32), ("ort_int8", work / f"{stem.name}.qoperator.onnx"),
            ("ort_int8_qdq", work / f"{stem.name}.qdq.onnx"))}
    return {"eager": eager, **ort}


def _session(path: Path, threads: int):
    """``OnnxEngine``'s CPU session, threads fixed and not spinning (see the top of this file)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda x: session.run(None, {"image": x})[0]


def time_interleaved(engines: dict, x: np.ndarray, repeats: int, warmup: int = 2
                     ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and process-CPU seconds per call of each engine, one call each per round, the order rotating."""
    names = list(engines)
    for _ in range(warmup):
        for n in names:
            engines[n](x)
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for n in names[r % len(names):] + names[:r % len(names)]:
            t, c = time.perf_counter(), time.process_time()
            engines[n](x)
            wall[n].append(time.perf_counter() - t)
            cpu[n].append(time.process_time() - c)
    return wall, cpu


def speed_figures(name: str, threads: int, batch: int, t: dict[str, list[float]], cpu: dict[str, list[float]]
                  ) -> dict[str, Figure]:
    key = f"{name.split(':')[-1]}_t{threads}_b{batch}"
    figs = {f"{key}_{n}_ms": Figure.of([1000 * s for s in v], unit="ms per call", note="wall clock")
            for n, v in t.items()}
    # CPU seconds of the process: not inflated by waiting for a core on a loaded machine (at 1 thread it is the
    # latency an idle core would give; at 2 threads it sums both threads, spinning included)
    figs.update({f"{key}_{n}_cpu_ms": Figure.of([1000 * s for s in v], unit="CPU ms per call", note="process time")
                 for n, v in cpu.items()})
    pairs = {"ort_vs_eager": ("eager", "ort_fp32"), "int8_vs_ort_fp32": ("ort_fp32", "ort_int8"),
             "int8_qdq_vs_ort_fp32": ("ort_fp32", "ort_int8_qdq"), "int8_vs_eager": ("eager", "ort_int8")}
    for label, (slow, fast) in pairs.items():
        if fast not in t:
            continue
        figs[f"{key}_{label}"] = Figure.of([a / b for a, b in zip(t[slow], t[fast])], unit="x",
                                           note=f"speed-up: {slow} time / {fast} time, per round")
        figs[f"{key}_{label}_cpu"] = Figure.of([a / b for a, b in zip(cpu[slow], cpu[fast])], unit="x",
                                               note=f"speed-up in process CPU time: {slow} / {fast}, per round")
    return figs


def accuracy_figures(run: Path, work: Path) -> dict[str, Figure]:
    """The INT8 export's accuracy check on the run's validation images."""
    from cxrlab.deploy.export import export_run

    for _ in range(240):  # a run still training (started beside this benchmark): wait for its manifest
        if (run / "manifest.json").exists():
            break
        time.sleep(10)
    c = export_run(run, work / "int8.onnx", int8=Int8Options(max_auroc_drop=1.0, min_agreement=0.0))
    a = c["accuracy"]
    note = f"{a['images']} validation images, calibrated on {c['calibration']['count']}"
    return {"int8_val_auroc_fp32": Figure.of([a["fp32"]], unit=a["metric"], note=note),
            "int8_val_auroc_int8": Figure.of([a["int8"]], unit=a["metric"], note=note),
            "int8_val_auroc_drop": Figure.of([a["drop"]], unit=a["metric"], note="FP32 minus INT8"),
            "int8_decision_agreement": Figure.of([a["agreement"]], unit="share", note=a["thresholds"])}


def _phantom_run(work: Path) -> Path:
    from cxrlab.config import load_config
    from cxrlab.data.phantom import make_phantom_index
    from cxrlab.data.splits import make_split
    from cxrlab.train import fit

    index = make_phantom_index(work / "ph", n=60, size=32, seed=0, workers=1)
    make_split(index, work / "split.csv", val=0.3, test=0.2, seed=0)
    cfg = load_config(None, [f"data.index={work / 'ph' / 'index'}", f"data.split={work / 'split.csv'}",
                             "data.image_size=32", "data.cache_size=32", "model.name=cnn_gap", "train.epochs=2",
                             "train.batch_size=16", "augment.policy=none", "train.device=cpu"])
    return fit(cfg, work / "run")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="seconds: ResNet-18 at 32 px, 3 rounds, 1 thread")
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--repeats", type=int, default=20, help="interleaved rounds per (model, threads, batch)")
    p.add_argument("--run", type=Path, help="trained run for the INT8 accuracy check (default: a phantom run)")
    p.add_argument("--no-accuracy", action="store_true", help="speed only (e.g. one model in a parallel process)")
    p.add_argument("--name", default="onnx", help="results file name (default onnx: results/onnx.json)")
    args = p.parse_args(argv)
    if args.quick:
        args.models, args.size, args.threads, args.batches, args.repeats = ["timm:resnet18"], 32, [1], [1, 4], 3
    load_before = list(os.getloadavg())
    figures: dict[str, Figure] = {}
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        work = Path(tmp)
        for name in args.models:
            for threads in args.threads:
                torch.set_num_threads(threads)
                engines = build_engines(name, args.size, threads, work)
                for batch in args.batches:
                    x = np.random.default_rng(0).standard_normal((batch, 1, args.size, args.size), np.float32)
                    timed = engines if batch == 1 else {k: v for k, v in engines.items() if k != "ort_int8_qdq"}
                    t, cpu = time_interleaved(timed, x, args.repeats)
                    figures.update(speed_figures(name, threads, batch, t, cpu))
                    print(f"{name:18s} threads {threads} batch {batch:2d}: " + ", ".join(
                        f"{n} {1000 * statistics.median(v):.1f} ms ({1000 * statistics.median(cpu[n]):.1f} CPU)"
                        for n, v in t.items()), flush=True)
        if not args.no_accuracy:
            figures.update(accuracy_figures(args.run or _phantom_run(work / "phantom"), work))
    what = (f"run {args.run}" if args.run else "a 2-epoch cnn_gap run on 60 phantom images at 32 px (toy accuracy)")
    what = "none (--no-accuracy)" if args.no_accuracy else what
    inputs = {"models": args.models, "size": args.size, "threads": args.threads, "batches": args.batches,
              "repeats": args.repeats, "engines": list(ENGINES), "accuracy_model": what,
              "int8": "U8S8 per-channel static, MinMax; speed models calibrated on 8 synthetic images",
              "waiting": f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, ORT allow_spinning=0",
              "qdq_timed": "batch 1 only"}
    notes = ("Engines interleaved one call each per round (rotating order) on a shared machine; ratios are per round. "
             "Random weights for speed; the accuracy rows come from the INT8 export's own validation check.")
    write_results(args.name, inputs=inputs, figures=figures, quick=args.quick, notes=notes, load_before=load_before)
    print(f"load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
