"""Measure the OOD gate of ``cxrlab serve``: flag rates on a run's own test images vs images it should refuse.

Every image goes through the service's own path (bytes -> content sniffing and decoding -> preprocessing ->
features -> gate), with the gate calibrated on the run's validation images (99th percentile of the held-out
Mahalanobis distance, or of the k-NN cosine distance with ``--method knn``). Sets:

- ``test``: the run's own test split (in distribution: the flag rate should be near 1%).
- ``pneumonia4``, ``nih-64px``: other chest X-ray collections from ../shared/data (a dataset shift, not a
  different kind of image: reported, no target).
- ``photos``: crops of scikit-learn's two sample colour photographs, sent in colour and in gray.
- ``noise``: uniform and smoothed Gaussian noise.
- ``ct-like``: synthetic axial slices (an elliptical body, bright rim and spine, dark lungs, black outside).
- ``rotated``/``inverted``: the test images turned 90 degrees or flipped upside down (a stand-in for wrong
  orientations and lateral views, which the shared data does not hold), and photographic negatives.

Prints, per set, the share flagged by the feature distance alone and by the whole gate (distance, or the
model-free "not an X-ray" check on colour and blank images). Run:
``python benchmarks/bench_ood.py RUN_DIR [--method knn]`` (a run trained on ../shared/data, e.g. the NIH sample).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import cv2
import numpy as np

from cxrlab.predict import images_from_run
from cxrlab.serve.decode import decode_upload
from cxrlab.serve.model import ServedModel

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _png(img: np.ndarray) -> bytes:
    return cv2.imencode(".png", img)[1].tobytes()


def _files(paths, n: int) -> list[bytes]:
    return [Path(p).read_bytes() for p in list(paths)[:n]]


def photos(n: int, seed: int = 0) -> tuple[list[bytes], list[bytes]]:
    """(colour, gray) PNG crops of the two scikit-learn sample photographs."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(seed)
    colour, gray = [], []
    for k in range(n):
        img = load_sample_images().images[k % 2][:, :, ::-1]  # RGB -> BGR for cv2
        h, w = img.shape[:2]
        side = int(rng.integers(200, min(h, w)))
        y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
        crop = np.ascontiguousarray(img[y : y + side, x : x + side])
        colour.append(_png(crop))
        gray.append(_png(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)))
    return colour, gray


def noise(n: int, size: int = 512, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        if k % 2:
            img = rng.integers(0, 256, (size, size), dtype=np.uint8)
        else:
            g = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 8)
            img = np.clip(128 + 60 * g / g.std(), 0, 255).astype(np.uint8)
        out.append(_png(img))
    return out


def ct_like(n: int, size: int = 512, seed: int = 0) -> list[bytes]:
    """Axial-slice-like images: body ellipse, bright rim and spine, dark lungs, noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = np.zeros((size, size), np.uint8)
        c = (size // 2 + int(rng.integers(-20, 20)), size // 2 + int(rng.integers(-20, 20)))
        axes = (int(size * rng.uniform(0.36, 0.44)), int(size * rng.uniform(0.26, 0.34)))
        cv2.ellipse(img, c, axes, 0, 0, 360, 235, -1)
        cv2.ellipse(img, c, (axes[0] - 12, axes[1] - 12), 0, 0, 360, 110, -1)
        for dx in (-1, 1):
            cv2.ellipse(img, (c[0] + dx * axes[0] // 2, c[1] - 10), (axes[0] // 3, axes[1] // 2), 0, 0, 360, 25, -1)
        cv2.circle(img, (c[0], c[1] + axes[1] - 40), 22, 250, -1)  # vertebra
        cv2.circle(img, (c[0] + 15, c[1] + 5), 35, 150, -1)  # heart
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        out.append(_png(img))
    return out


def transformed(pngs: list[bytes], kind: str) -> list[bytes]:
    out = []
    for k, data in enumerate(pngs):
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        if kind == "rotated":
            img = np.ascontiguousarray(np.rot90(img, 1 + 2 * (k % 2)) if k % 3 else img[::-1])
        else:
            img = 255 - img
        out.append(_png(img))
    return out


def flag_rates(served: ServedModel, pngs: list[bytes]) -> tuple[float, float, int]:
    """(share flagged by distance, share flagged by the whole gate, n)."""
    by_distance = by_gate = 0
    for data in pngs:
        d = decode_upload(data, 100_000_000)
        ood = served.predict([d.gray], [d.raw])[0]["ood"]
        by_distance += int(ood["score"] > ood["threshold"])
        by_gate += int(ood["flagged"])
    return by_distance / len(pngs), by_gate / len(pngs), len(pngs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run directory (trained on real chest X-rays)")
    parser.add_argument("--n", type=int, default=60, help="images per synthetic or external set")
    parser.add_argument("--method", choices=("mahalanobis", "knn"), default="mahalanobis")
    args = parser.parse_args(argv)
    served = ServedModel(args.run)
    if served.gate is None:
        raise SystemExit("the run's validation images are not available: no gate to measure")
    if args.method != served.gate.method:  # the service's default is refitted with the other method
        from cxrlab.deploy import runs
        from cxrlab.deploy.features import collect
        from cxrlab.deploy.ood import OodGate

        val = collect(served.model, runs.split_dataset(served.info, "val"))
        served.gate = OodGate.fit(val["features"], method=args.method)
    test = _files(images_from_run(served.info, "test").paths, 10_000)
    sets = {"test (in distribution)": test}
    if (SHARED / "pneumonia4" / "images").is_dir():
        sets["pneumonia4 (other CXR source)"] = _files(sorted((SHARED / "pneumonia4" / "images").iterdir()), args.n)
    if (SHARED / "nih-64px" / "test").is_dir():
        sets["nih-64px thumbnails"] = _files(sorted((SHARED / "nih-64px" / "test").rglob("*.png")), args.n)
    colour, gray = photos(args.n)
    sets.update({"photos, colour": colour, "photos, gray": gray, "noise": noise(args.n), "ct-like": ct_like(args.n),
                 "rotated/flipped test": transformed(test, "rotated"),
                 "inverted test": transformed(test, "inverted")})
    g = served.gate.summary()
    print(f"run {args.run}: {served.info.model_name}, gate {g['method']} (k={g['k']}), threshold {g['threshold']:.4g} "
          f"({g['percentile']:g}th percentile of {g['n_reference']} validation images); load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"{'set':32s} {'n':>5s} {'flagged (distance)':>19s} {'flagged (gate)':>15s}")
    for name, pngs in sets.items():
        dist, gate, n = flag_rates(served, pngs)
        print(f"{name:32s} {n:5d} {100 * dist:18.1f}% {100 * gate:14.1f}%", flush=True)


if __name__ == "__main__":
    main()
