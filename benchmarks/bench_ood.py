"""Measure the OOD gate of ``cxrlab serve``: flag rates on a run's own test images vs images it should refuse.

Every image goes through the service's own path (bytes -> content sniffing and decoding -> preprocessing ->
features -> gate), with the gate calibrated on the run's validation images only: the Mahalanobis feature distance
(``--method knn`` for the k-NN cosine distance), the orientation/negative check of ``cxrlab.deploy.orientation``
(with its left-right laterality network, ``cxrlab.deploy.laterality_net``, also trained on the run's training
images) and the tone check of
``cxrlab.deploy.tones``, their thresholds chosen jointly so that at most 3% of the validation images (scored
out of fold) are flagged. Kinds (``--n`` images each):

- ``test``: the run's own test split (in distribution: target <= 5% flagged).
- ``other_cxr``: frontal chest X-rays from another collection (../shared/data/pneumonia4; in ``--quick``, phantom
  films of other patients): a dataset shift, reported, no target.
- ``rotated_90``, ``rotated_180``, ``rotated_270``, ``flipped_lr``, ``flipped_ud``, ``inverted``: the test images
  turned, mirrored or as negatives.
- ``lateral``, ``hand``, ``knee``: phantom radiographs of other views and body parts (``cxrlab.data.phantom_views``).
- ``ct_like``: synthetic axial slices; ``photos_colour``/``photos_gray``: crops of scikit-learn's two sample
  photographs; ``documents``: text pages; ``noise``: uniform and smoothed Gaussian noise.
  Target for every kind but ``test`` and ``other_cxr``: >= 95% flagged.

Writes ``benchmarks/results/ood.json`` (``ood_cnn.json`` with ``--laterality cnn``; ``results/quick/`` with
``--quick``): per kind the share flagged by the whole gate and by each check alone. ``--dev`` compares the
laterality models (the cnn scored by its fold nets or by a refit, and the linear one) on NIH films of patients
the run never saw (``ood_dev.json``; neither split is read). ``--validation`` writes ``ood_validation.json`` from
the run's validation images alone (out of fold; the test split is not read): the cnn's laterality weight, the tone
bins, and the laterality alternatives tried (the network with and without the training images, other training
lengths and fold counts with their fit times, the linear model). Run:
``python benchmarks/bench_ood.py RUN_DIR`` (a run trained on ../shared/data, e.g. the NIH sample), or
``python benchmarks/bench_ood.py --quick`` (trains a tiny phantom run in a temporary folder; seconds).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from results_io import Figure, write_results

from cxrlab.data.phantom_views import render_view
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


def documents(n: int, seed: int = 0) -> list[bytes]:
    """Gray pages of black text lines (a scanned report or letter)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h, w = int(rng.integers(500, 800)), int(rng.integers(380, 600))
        img = np.full((h, w), int(rng.integers(225, 256)), np.uint8)
        for y in range(40, h - 30, int(rng.integers(22, 34))):
            words = " ".join("".join(chr(97 + int(c)) for c in rng.integers(0, 26, rng.integers(2, 9)))
                             for _ in range(int(rng.integers(4, 10))))
            cv2.putText(img, words, (30, y), cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.45, 0.7)), 20, 1)
        out.append(_png(img))
    return out


TRANSFORMS = {"rotated_90": lambda a: np.rot90(a, 1), "rotated_180": lambda a: np.rot90(a, 2),
              "rotated_270": lambda a: np.rot90(a, 3), "flipped_lr": lambda a: a[:, ::-1],
              "flipped_ud": lambda a: a[::-1], "inverted": lambda a: 255 - a}


def transformed(pngs: list[bytes], kind: str) -> list[bytes]:
    out = []
    for data in pngs:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        out.append(_png(np.ascontiguousarray(TRANSFORMS[kind](img))))
    return out


def flag_rates(served: ServedModel, pngs: list[bytes]) -> dict[str, float]:
    """Shares flagged by the whole gate and by each of its checks (feature distance, orientation, tones)."""
    counts = {"gate": 0, "distance": 0, "orientation": 0, "tones": 0}
    for data in pngs:
        d = decode_upload(data, 100_000_000)
        ood = served.predict([d.gray], [d.raw])[0]["ood"]
        counts["gate"] += int(ood["flagged"])
        counts["distance"] += int(ood["score"] is not None and ood["score"] > ood["threshold"])
        counts["orientation"] += int(any(r.startswith("looks ") for r in ood["reasons"]))
        counts["tones"] += int(any(r.startswith("tones ") for r in ood["reasons"]))
    return {k: v / len(pngs) for k, v in counts.items()}


def tiny_run(root: Path) -> tuple[Path, list[bytes]]:
    """(a 2-epoch cnn_gap run on 240 phantom films at 64 px, 40 phantom films of other patients as PNG)."""
    from cxrlab.config import load_config
    from cxrlab.data.phantom import make_phantom, make_phantom_index
    from cxrlab.data.splits import patient_level_split, write_split
    from cxrlab.train import fit

    index = make_phantom_index(root / "ph", n=240, size=64, seed=0)
    write_split(patient_level_split(index, 0.3, 0.2, seed=0), root / "split.csv", "patient", 0, index)
    cfg = load_config(None, [f"data.index={root / 'ph' / 'index'}", f"data.split={root / 'split.csv'}",
                             "data.image_size=64", "data.cache_size=64", "model.name=cnn_gap", "train.epochs=2",
                             "train.batch_size=32", "augment.policy=none", "train.device=cpu", "train.threads=1"])
    run = fit(cfg, root / "run")
    other = make_phantom(root / "other", n=40, size=64, seed=7)
    return run, _files(sorted((other / "images").glob("*.png")), 40)


def kinds(served: ServedModel, n: int, other_cxr: list[bytes]) -> dict[str, list[bytes]]:
    test = _files(images_from_run(served.info, "test").paths, 10_000)
    colour, gray = photos(n)
    sets = {"test": test, "other_cxr": other_cxr}
    sets.update({kind: transformed(test[:n], kind) for kind in TRANSFORMS})
    for view in ("lateral", "hand", "knee"):
        sets[view] = [_png(render_view(view, 256, seed)) for seed in range(n)]
    sets.update({"ct_like": ct_like(n), "photos_colour": colour, "photos_gray": gray, "documents": documents(n),
                 "noise": noise(n)})
    return sets


def _oof_auc(upright: np.ndarray, mirrored: np.ndarray, make, seed: int = 0) -> float:
    """Out-of-fold AUC (5 folds grouped by image) of a classifier of mirrored (1) vs upright (0) rows."""
    from sklearn.metrics import roc_auc_score

    n = len(upright)
    scores = np.empty((2, n))
    for held in np.array_split(np.random.default_rng(seed).permutation(n), 5):
        rest = np.setdiff1d(np.arange(n), held)
        clf = make().fit(np.r_[upright[rest], mirrored[rest]], np.r_[np.zeros(len(rest)), np.ones(len(rest))])
        scores[:, held] = clf.decision_function(upright[held]), clf.decision_function(mirrored[held])
    return float(roc_auc_score(np.r_[np.zeros(n), np.ones(n)], scores.ravel()))


def _pixel_antisymmetric(thumbs: np.ndarray) -> np.ndarray:
    t = thumbs.reshape(len(thumbs), 32, 2, 32, 2).mean(axis=(2, 4))
    t = (t - t.mean(axis=(1, 2), keepdims=True)) / np.maximum(t.std(axis=(1, 2), keepdims=True), 1e-6)
    return (t - t[:, :, ::-1])[:, :, :16].reshape(len(t), -1)


def _caught(upright: np.ndarray) -> tuple[float, float]:
    """% of mirrored images (scores -upright, antisymmetric) beyond the upright images' 97th percentile and max."""
    return 100 * float((-upright > np.quantile(upright, 0.97)).mean()), 100 * float((-upright > upright.max()).mean())


ALTERNATIVES = ((30, 2), (30, 5), (60, 5))  # (epochs, folds) of the network tried besides the shipped (60, 2)


def laterality_study(thumbs: np.ndarray, extra: np.ndarray | None, oof, quick: bool) -> dict[str, Figure]:
    """Out-of-fold laterality on validation: the shipped network (trained with the run's training images, as
    fitted), other training lengths and fold counts (not in --quick), the same network on validation images
    alone, the previous linear model on gradients."""
    from cxrlab.deploy.laterality import LateralityCheck
    from cxrlab.deploy.laterality_net import LateralityNet

    folds = np.array_split(np.random.default_rng(0).permutation(len(thumbs)), 5)  # as out_of_fold splits
    mirrored = thumbs.reshape(-1, 64, 64)[:, :, ::-1].reshape(len(thumbs), -1)
    variants, timing = np.stack([thumbs, mirrored]), {}
    upright = {"cnn_train_val": oof.lat_surprise[0] - oof.lat_surprise[4],  # softplus(z) - softplus(-z) = z
               "cnn_val_only": LateralityNet.fit(thumbs, folds, variants)[1][0],
               "gradients_32": LateralityCheck.fit(thumbs, folds, variants)[1][0]}
    for epochs, n_folds in () if quick else ALTERNATIVES:
        started = time.perf_counter()
        z = LateralityNet.fit(thumbs, folds, variants[:1], extra, epochs=epochs, n_folds=n_folds)[1][0]
        upright[f"cnn_train_val_epochs_{epochs}_folds_{n_folds}"] = z
        note = f"{n_folds} folds and the final fit, {epochs} epochs each; load average {os.getloadavg()[0]:.1f}"
        timing[f"laterality_fit_seconds_epochs_{epochs}_folds_{n_folds}"] = Figure.of(
            [time.perf_counter() - started], unit="s", note=note)
    figures = timing
    for name, z in upright.items():
        n = f"n={len(thumbs)} validation images" + (f" + {0 if extra is None else len(extra)} training images "
                                                     "(laterality fits only)" if "train_val" in name else "")
        figures[f"laterality_auc_{name}"] = Figure.of([_oof_auc(z[:, None], -z[:, None], _Identity)], note=n)
        at_97, at_max = _caught(z)
        figures[f"laterality_{name}_mirrored_caught_at_3pct"] = Figure.of([at_97], unit="% caught", note=n)
        figures[f"laterality_{name}_mirrored_caught_beyond_max"] = Figure.of([at_max], unit="% caught", note=n)
    return figures


def validation_study(served: ServedModel, quick: bool = False) -> tuple[dict[str, Figure], dict]:
    """Out-of-fold figures on the run's validation images only (the laterality network also trains on the run's
    training images, as at export): each variant caught at rank 1 without and with the laterality term, the
    laterality alternatives, the fit time, the tone grid."""
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from cxrlab.deploy import runs
    from cxrlab.deploy.features import laterality_thumbnails
    from cxrlab.deploy.orientation import TRANSFORMS, combined, out_of_fold, thumbnails
    from cxrlab.deploy.tones import choose_bins

    val = runs.split_dataset(served.info, "val")
    images = torch.stack([val[i][0] for i in range(len(val))])  # (N, C, H, W), the model inputs
    thumbs = thumbnails(images.numpy())
    started = time.perf_counter()
    extra = laterality_thumbnails(served.info)
    oof = out_of_fold(thumbs, extra=extra, laterality="cnn")  # the network's study (ood_validation.json)
    figures = {"orientation_fit_seconds": Figure.of([time.perf_counter() - started], unit="s",
                                                    note="out of fold, training-image thumbnails included")}
    for w in sorted({0.0, oof.weight}):
        s = combined(oof.surprise, oof.lat_surprise, w, oof.combine)  # the check's score, as the gate's
        for k, name in enumerate(TRANSFORMS[1:], 1):
            slug = name.split(" (")[0].replace(" ", "_").replace("-", "_")
            figures[f"{slug}_caught_weight_{w:g}"] = Figure.of([100 * float((s[k] > s[0].max()).mean())],
                                                               unit="% caught", note=f"n={len(val)}, rank 1")
    figures.update(laterality_study(thumbs, extra, oof, quick))
    no_intercept = lambda: LogisticRegression(C=0.1, fit_intercept=False, max_iter=5000)  # noqa: E731
    mirrored = images.flip(-1)
    pix = _pixel_antisymmetric(thumbs), _pixel_antisymmetric(thumbnails(mirrored.numpy()))
    figures["laterality_auc_pixels_32"] = Figure.of([_oof_auc(*pix, no_intercept)])
    feats = [served._forward(x)[1] for x in (images, mirrored)]
    scaled = lambda: make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000))  # noqa: E731
    figures["laterality_auc_backbone_features"] = Figure.of([_oof_auc(*feats, scaled)])
    figures["laterality_weight"] = Figure.of([oof.weight], unit="weight")
    bins, table = choose_bins(thumbs)
    for (i, e), caught in table.items():
        figures[f"tones_caught_{i}_intensity_{e}_edge_bins"] = Figure.of([100 * caught], unit="% caught")
    return figures, {"n_validation": len(val), "n_training_for_laterality": 0 if extra is None else len(extra),
                     "tones_bins_chosen": list(bins), "laterality_weight": oof.weight}


class _Identity:
    """A "classifier" whose decision function is its single input column (already out of fold)."""

    def fit(self, x, y):
        return self

    def decision_function(self, x):
        return x[:, 0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", help="run directory (trained on real chest X-rays); none with --quick")
    parser.add_argument("--n", type=int, default=60, help="images per synthetic, transformed or external kind")
    parser.add_argument("--method", choices=("mahalanobis", "knn"), default="mahalanobis")
    parser.add_argument("--quick", action="store_true", help="a tiny phantom run trained here, 12 images a kind")
    parser.add_argument("--laterality", choices=("linear", "cnn"), default="linear",
                        help="the gate's left-right model (export/serve --ood-laterality); cnn writes ood_cnn.json")
    parser.add_argument("--dev", action="store_true",
                        help="compare the laterality scorings on held-out NIH films (ood_dev.json); test not read")
    parser.add_argument("--validation", action="store_true",
                        help="the validation-only study (ood_validation.json) instead; the test split is not read")
    args = parser.parse_args(argv)
    load_before = list(os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="bench-ood-") as tmp:
        if args.quick:
            run, other = tiny_run(Path(tmp))
            args.n = min(args.n, 12)
        elif args.run is None:
            raise SystemExit("give a RUN directory, or --quick")
        else:
            run, folder = args.run, SHARED / "pneumonia4" / "images"
            other = _files(sorted(folder.iterdir()), args.n) if folder.is_dir() else []
        if args.dev:
            figures, study = dev_study(run, args.method, 300 if not args.quick else 12)
            write_results("ood_dev", inputs={"run": str(args.run or "tiny phantom run (quick)"), **study},
                          figures=figures, quick=args.quick, load_before=load_before,
                          notes="orientation check alone on NIH films of patients the run never saw "
                                "(nih-64px) and their turned/mirrored copies; the test split is not read")
            return
        served = _served(run, args.method, args.laterality)
        if args.validation:
            figures, study = validation_study(served, args.quick)
            write_results("ood_validation", inputs={"run": str(args.run or "tiny phantom run (quick)"), **study},
                          figures=figures, quick=args.quick, load_before=load_before,
                          notes="validation images only, out of fold (5 folds grouped by image); rank 1 = beyond "
                                "the largest out-of-fold score of the upright validation images")
            return
        sets = {k: v for k, v in kinds(served, args.n, other).items() if v}
        g = served.gate.summary()
        print(f"run {run}: {served.info.model_name}, gate {g['method']} threshold {g['threshold']:.4g} "
              f"({g['percentile']:g}th percentile of {g['n_reference']} validation images), orientation threshold "
              f"{g['orientation_threshold']}, tones threshold {g['tones_threshold']}; "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"{'kind':16s} {'n':>5s} {'gate':>7s} {'distance':>9s} {'orientation':>12s} {'tones':>7s}")
        figures = {}
        for name, pngs in sets.items():
            rates = flag_rates(served, pngs)
            print(f"{name:16s} {len(pngs):5d} {100 * rates['gate']:6.1f}% {100 * rates['distance']:8.1f}% "
                  f"{100 * rates['orientation']:11.1f}% {100 * rates['tones']:6.1f}%", flush=True)
            for part, rate in rates.items():
                figures[f"{name}_{part}"] = Figure.of([100 * rate], unit="% flagged", note=f"n={len(pngs)}")
    inputs = {"run": "tiny phantom run (quick)" if args.quick else str(args.run), "n": args.n,
              "model": served.info.model_name, "gate": g, "kinds": {k: len(v) for k, v in sets.items()}}
    inputs["laterality"] = args.laterality
    write_results("ood" if args.laterality == "linear" else "ood_cnn", inputs=inputs, figures=figures,
                  quick=args.quick, load_before=load_before,
                  notes="gate = distance OR orientation (with laterality) OR tones OR not-an-X-ray (colour/blank); "
                        "targets: test <= 5%, "
                        "every kind but test and other_cxr >= 95%")


def dev_films(served: ServedModel, n: int) -> list[bytes]:
    """Up to ``n`` NIH films from ../shared/data/nih-64px (a third party's 64 px copies, all its folders) whose
    patients hold no image of the run (train, validation or test; patients from NIH's metadata): a development set
    the gate never saw, for choices that must not be made on the test split."""
    import pandas as pd

    folder = SHARED / "nih-64px"
    entry = SHARED / "nih-sample" / "Data_Entry_2017_v2020.csv"
    if not folder.is_dir() or not entry.is_file():
        raise SystemExit(f"--dev needs {folder} and {entry}")
    patient = pd.read_csv(entry, usecols=["Image Index", "Patient ID"]).set_index("Image Index")["Patient ID"]
    seen = {patient.get(Path(f).name) for split in ("train", "val", "test")
            for f in images_from_run(served.info, split).paths}
    films = sorted(f for f in folder.rglob("*.png") if patient.get(f.name) is not None and patient[f.name] not in seen)
    if not films:
        raise SystemExit(f"--dev: no film of {folder} is of a patient outside the run (or none is an NIH image)")
    rng = np.random.default_rng(0)
    keep = sorted(rng.choice(len(films), min(n, len(films)), replace=False))
    return [_png(cv2.imread(str(films[i]), cv2.IMREAD_GRAYSCALE)) for i in keep]


DEV_KINDS = ("rotated_90", "rotated_180", "rotated_270", "flipped_lr")


def dev_study(run, method: str, n: int) -> tuple[dict[str, Figure], dict]:
    """The laterality network's scoring (``laterality_net.SCORING``: the fold nets averaged, or a refit on all)
    compared on the development set (``dev_films``): the orientation check alone, since the feature distance
    sees 64 px copies as out of distribution. Each variant's gate is fitted on validation as the service does."""
    from cxrlab.deploy import laterality_net

    figures, inputs = {}, {}
    for scoring in ("folds", "refit", "linear"):  # linear: the gradient model (validation images only)
        laterality = "linear" if scoring == "linear" else "cnn"
        laterality_net.SCORING = scoring if laterality == "cnn" else laterality_net.SCORING
        start = time.perf_counter()
        served = _served(run, method, laterality)
        fit_s = time.perf_counter() - start
        upright = dev_films(served, n)
        sets = {"dev_upright": upright, **{k: transformed(upright[: n // 2], k) for k in DEV_KINDS}}
        for name, pngs in sets.items():
            rate = flag_rates(served, pngs)["orientation"]
            figures[f"{scoring}_{name}_orientation"] = Figure.of([100 * rate], unit="% flagged", note=f"n={len(pngs)}")
            print(f"{scoring:6s} {name:12s} n={len(pngs):4d} orientation flags {100 * rate:5.1f}%", flush=True)
        figures[f"{scoring}_gate_fit"] = Figure.of([fit_s], unit="s", note="service start: model load + gate fit")
        inputs[scoring] = {"gate": served.gate.summary(), "kinds": {k: len(v) for k, v in sets.items()}}
    return figures, inputs


def _served(run, method: str, laterality: str = "linear") -> ServedModel:
    served = ServedModel(run, laterality=laterality)
    if served.gate is None:
        raise SystemExit("the run's validation images are not available: no gate to measure")
    if method != served.gate.method:  # the service's default is refitted with the other method
        from cxrlab.deploy import runs
        from cxrlab.deploy.features import collect, laterality_thumbnails
        from cxrlab.deploy.ood import OodGate

        val = collect(served.model, runs.split_dataset(served.info, "val"))
        served.gate = OodGate.fit(val["features"], method=method, thumbnails=val["thumbnails"], laterality=laterality,
                                  laterality_thumbnails=laterality_thumbnails(served.info) if laterality == "cnn"
                                  else None)
    return served


if __name__ == "__main__":
    main()
