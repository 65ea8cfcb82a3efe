"""GPU benchmark (UNMEASURED: written on a machine without a GPU; run it where one is available).

In one run, on the same synthetic phantom images (224 px crops of a 256 px cache):

1. Training images/s of ResNet-50 and DenseNet-121 at 224 with bf16 autocast and channels_last:
   (a) through ``cxrlab``'s own loop (``fit`` with ``train.amp=bf16 train.channels_last=true``; the second
   epoch's ``images_per_s`` from ``metrics.csv``, so start-up and cuDNN autotuning are excluded), and
   (b) a bare timm-style reference loop (``timm.create_model``, the same batches already on the GPU, bf16
   autocast, channels_last, SGD): the ceiling the model allows. timm's own ``train.py`` is not shipped in the
   ``timm`` wheel; pass ``--timm-train PATH/train.py`` to also time it on an ImageFolder copy of the images.
   Printed as the ratio cxrlab / reference (target >= 1.0 against timm's train.py; against the bare loop the
   ratio shows the data-path overhead).
2. Inference throughput, batch 64: PyTorch (bf16 autocast, channels_last) vs ONNX Runtime with the CUDA
   execution provider (fp32 export from ``cxrlab.deploy.export.to_onnx``).

Run: ``python benchmarks/bench_gpu.py [--models timm:resnet50 timm:densenet121] [--images 2048]``; writes
``benchmarks/results/gpu.json``. Without a CUDA device it says it was skipped and exits 0 (``make bench`` on a
CPU machine). ``--quick`` is a CPU dry run of the same code path (tiny phantom, a small model at 32 px, fp32,
no ORT CUDA) that the test suite runs, so the benchmark cannot rot where no GPU is at hand.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import Figure, write_results  # noqa: E402


def make_data(root: Path, n: int, size: int = 256) -> list[str]:
    """A phantom index, split and ``size`` px cache; returns the config overrides pointing at them."""
    from cxrlab.data.cache import build_cache
    from cxrlab.data.phantom import make_phantom_index
    from cxrlab.data.splits import make_split

    index = make_phantom_index(root / "ph", n=n, size=size, seed=0, workers=1)
    make_split(index, root / "split.csv", val=0.05 if n >= 200 else 0.2, test=0.05 if n >= 200 else 0.2, seed=0)
    build_cache(index, root / "cache", size=size, workers=1, progress=False)
    return [f"data.index={root / 'ph' / 'index'}", f"data.split={root / 'split.csv'}",
            f"data.cache={root / 'cache'}"]


def cxrlab_images_per_s(model: str, data: list[str], out: Path, batch: int, workers: int, size: int = 224,
                        device: str = "cuda") -> float:
    from cxrlab.config import load_config
    from cxrlab.train import fit

    gpu = device == "cuda"
    cfg = load_config(None, [*data, f"model.name={model}", "model.pretrained=false", f"data.image_size={size}",
                             f"data.cache_size={size + size // 7}", f"data.num_workers={workers}", "train.epochs=2",
                             f"train.batch_size={batch}", f"train.device={device}",
                             f"train.amp={'bf16' if gpu else 'off'}", f"train.channels_last={str(gpu).lower()}",
                             "augment.policy=medical", "data.require_positives=false"])
    run = fit(cfg, out)
    with open(Path(run) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["images_per_s"])


def reference_images_per_s(model: str, batch: int, steps: int = 50, size: int = 224, device: str = "cuda",
                           warmup: int = 10) -> float:
    """A bare loop: batches already on the device, bf16 autocast and channels_last on a GPU, SGD."""
    import timm

    gpu = device == "cuda"
    sync = torch.cuda.synchronize if gpu else (lambda: None)
    fmt = torch.channels_last if gpu else torch.contiguous_format
    net = timm.create_model(model.removeprefix("timm:"), num_classes=15, in_chans=1).to(device)
    net = net.to(memory_format=fmt).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 1, size, size, device=device).to(memory_format=fmt)
    y = torch.randint(0, 2, (batch, 15), device=device).float()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if gpu else contextlib.nullcontext()
    for i in range(steps + warmup):
        if i == warmup:  # warm-up done (cuDNN autotuning)
            sync()
            t = time.perf_counter()
        with amp:
            loss = loss_fn(net(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync()
    return steps * batch / (time.perf_counter() - t)


def image_folder(root: Path) -> Path:
    """The phantom PNGs as timm's ImageFolder layout (train/ and validation/, two classes), by symlinks."""
    out = root / "imagefolder"
    if not out.exists():
        for i, png in enumerate(sorted((root / "ph" / "images").glob("*.png"))):
            for split in ("train", "validation"):
                target = out / split / f"c{i % 2}"
                target.mkdir(parents=True, exist_ok=True)
                (target / png.name).symlink_to(png)
    return out


def timm_train_images_per_s(script: Path, model: str, image_root: Path, batch: int) -> float | None:
    """timm's own train.py for one epoch on an ImageFolder; parses its last 'x img/s' (None if it fails)."""
    cmd = [sys.executable, str(script), str(image_root), "--model", model.removeprefix("timm:"), "--epochs", "1",
           "-b", str(batch), "--amp", "--amp-dtype", "bfloat16", "--channels-last", "--in-chans", "1",
           "--num-classes", "2", "--input-size", "1", "224", "224", "--log-interval", "10"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    rates = [float(w.split("/")[0]) for line in done.stdout.splitlines() + done.stderr.splitlines()
             for w in line.split() if w.endswith("/s") and w[0].isdigit() and "/" in w]
    return rates[-1] if rates else None


def inference(model: str, batch: int, work: Path, repeats: int = 20, size: int = 224,
              device: str = "cuda") -> tuple[float, float]:
    """(PyTorch images/s, ONNX Runtime images/s) at ``batch``: bf16 channels_last and ORT's CUDA provider on a
    GPU; fp32 and ORT's CPU provider on the CPU (the dry run)."""
    from cxrlab.deploy.export import to_onnx
    from cxrlab.deploy.onnx_engine import OnnxEngine
    from cxrlab.models import create_model

    gpu = device == "cuda"
    net = create_model(model, 15, in_chans=1, img_size=size).eval()
    path = to_onnx(net, torch.randn(2, 1, size, size), work / "m.onnx")
    fmt = torch.channels_last if gpu else torch.contiguous_format
    net = net.to(device).to(memory_format=fmt)
    x = torch.randn(batch, 1, size, size, device=device).to(memory_format=fmt)
    amp = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if gpu else contextlib.nullcontext

    def torch_call():
        with torch.inference_mode(), amp():
            net(x)
        if gpu:
            torch.cuda.synchronize()

    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if gpu else ["CPUExecutionProvider"]
    engine = OnnxEngine(path, providers=providers)
    xn = x.float().contiguous().cpu().numpy()
    rates = []
    for fn in (torch_call, lambda: engine.logits(xn)):
        for _ in range(3):
            fn()
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        rates.append(batch / statistics.median(times))
    return rates[0], rates[1]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["timm:resnet50", "timm:densenet121"])
    ap.add_argument("--images", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--timm-train", type=Path, help="path to timm's train.py (from the timm repository)")
    ap.add_argument("--quick", action="store_true", help="CPU dry run: 40 images, timm:resnet18 at 32 px, batch 8")
    args = ap.parse_args(argv)
    size, device, repeats = 224, "cuda", 20
    if args.quick:
        args.models, args.images, args.batch, args.workers = ["timm:resnet18"], 40, 8, 0
        size, device, repeats = 32, "cpu", 2
        torch.set_num_threads(1)
    elif not torch.cuda.is_available():
        print("bench_gpu: skipped, no CUDA device on this machine (run it where one is; --quick is its CPU dry run)")
        return
    else:
        torch.backends.cudnn.benchmark = True
        print(f"GPU {torch.cuda.get_device_name()}; torch {torch.__version__}; batch {args.batch}; "
              f"{args.images} images")
    load, figures = list(os.getloadavg()), {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = make_data(work, args.images, size + size // 7)
        for model in args.models:
            key = model.replace("timm:", "")
            ours = cxrlab_images_per_s(model, data, work / f"run_{key}", args.batch, args.workers, size, device)
            ref = reference_images_per_s(model, args.batch, size=size, device=device,
                                         steps=3 if args.quick else 50, warmup=1 if args.quick else 10)
            line = f"{model}: train cxrlab {ours:.0f} img/s, bare loop {ref:.0f} img/s, ratio {ours / ref:.2f}"
            figures[f"{key}_train_cxrlab_img_s"] = Figure.of([ours], unit="images/s", note="2nd epoch, fit()")
            figures[f"{key}_train_bare_img_s"] = Figure.of([ref], unit="images/s", note="bare loop, data on device")
            figures[f"{key}_train_ratio"] = Figure.of([ours / ref], unit="x", note="cxrlab / bare loop")
            if args.timm_train:
                theirs = timm_train_images_per_s(args.timm_train, model, image_folder(work), args.batch)
                theirs = theirs or float("nan")
                line += f"; timm train.py {theirs:.0f} img/s, ratio {ours / theirs:.2f}"
            torch_rate, ort_rate = inference(model, args.batch, work, repeats, size, device)
            figures[f"{key}_infer_torch_img_s"] = Figure.of([torch_rate], unit="images/s", note=f"batch {args.batch}")
            figures[f"{key}_infer_ort_img_s"] = Figure.of([ort_rate], unit="images/s", note=f"batch {args.batch}")
            print(f"{line}; inference b{args.batch}: torch {torch_rate:.0f} img/s, ORT {ort_rate:.0f} "
                  f"img/s (ratio ORT/torch {ort_rate / torch_rate:.2f})", flush=True)
    gpu = "CPU dry run" if args.quick else torch.cuda.get_device_name()
    write_results("gpu", inputs={"models": args.models, "images": args.images, "batch": args.batch, "size": size,
                                 "workers": args.workers, "device": gpu}, figures=figures, quick=args.quick,
                  load_before=load)


if __name__ == "__main__":
    main()
