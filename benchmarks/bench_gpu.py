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

Run: ``python benchmarks/bench_gpu.py [--models timm:resnet50 timm:densenet121] [--images 2048]``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def make_data(root: Path, n: int) -> list[str]:
    """A phantom index, split and 256 px cache; returns the config overrides pointing at them."""
    from cxrlab.data.sources.phantom import make_phantom_index

    from cxrlab.data.cache import build_cache
    from cxrlab.data.splits import patient_level_split, write_split

    index = make_phantom_index(root / "ph", n=n, size=256, seed=0)
    write_split(patient_level_split(index, 0.05, 0.05, seed=0), root / "split.csv", "patient", 0, index)
    build_cache(index, root / "cache", size=256)
    return [f"data.index={root / 'ph' / 'index'}", f"data.split={root / 'split.csv'}",
            f"data.cache={root / 'cache'}"]


def cxrlab_images_per_s(model: str, data: list[str], out: Path, batch: int, workers: int) -> float:
    from cxrlab.config import load_config
    from cxrlab.train import fit

    cfg = load_config(None, [*data, f"model.name={model}", "model.pretrained=false", "data.image_size=224",
                             "data.cache_size=256", f"data.num_workers={workers}", "train.epochs=2",
                             f"train.batch_size={batch}", "train.device=cuda", "train.amp=bf16",
                             "train.channels_last=true", "augment.policy=medical"])
    run = fit(cfg, out)
    with open(Path(run) / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["images_per_s"])


def reference_images_per_s(model: str, batch: int, steps: int = 50) -> float:
    """A bare loop: batches already on the GPU, bf16 autocast, channels_last, SGD."""
    import timm

    net = timm.create_model(model.removeprefix("timm:"), num_classes=15, in_chans=1).cuda()
    net = net.to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, 1, 224, 224, device="cuda").to(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch, 15), device="cuda").float()
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for i in range(steps + 10):
        if i == 10:  # warm-up done (cuDNN autotuning)
            torch.cuda.synchronize()
            t = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = loss_fn(net(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    torch.cuda.synchronize()
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


def inference(model: str, batch: int, work: Path, repeats: int = 20) -> tuple[float, float]:
    """(PyTorch bf16 channels_last images/s, ONNX Runtime CUDA images/s) at ``batch``."""
    from cxrlab.deploy.export import to_onnx
    from cxrlab.deploy.onnx_engine import OnnxEngine
    from cxrlab.models import create_model

    net = create_model(model, 15, in_chans=1, img_size=224).eval()
    path = to_onnx(net, torch.randn(2, 1, 224, 224), work / "m.onnx")
    net = net.cuda().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 1, 224, 224, device="cuda").to(memory_format=torch.channels_last)

    def torch_call():
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            net(x)
        torch.cuda.synchronize()

    engine = OnnxEngine(path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
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
    args = ap.parse_args(argv)
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this benchmark needs a GPU")
    torch.backends.cudnn.benchmark = True
    print(f"GPU {torch.cuda.get_device_name()}; torch {torch.__version__}; batch {args.batch}; {args.images} images")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = make_data(work, args.images)
        for model in args.models:
            ours = cxrlab_images_per_s(model, data, work / f"run_{model.replace(':', '_')}", args.batch, args.workers)
            ref = reference_images_per_s(model, args.batch)
            line = f"{model}: train cxrlab {ours:.0f} img/s, bare loop {ref:.0f} img/s, ratio {ours / ref:.2f}"
            if args.timm_train:
                theirs = timm_train_images_per_s(args.timm_train, model, image_folder(work), args.batch)
                theirs = theirs or float("nan")
                line += f"; timm train.py {theirs:.0f} img/s, ratio {ours / theirs:.2f}"
            torch_rate, ort_rate = inference(model, args.batch, work)
            print(f"{line}; inference b{args.batch}: torch bf16 {torch_rate:.0f} img/s, ORT CUDA {ort_rate:.0f} "
                  f"img/s (ratio ORT/torch {ort_rate / torch_rate:.2f})", flush=True)


if __name__ == "__main__":
    main()
