"""``cxrlab explain``: heat maps for a run's model on a set of images, scored against boxes, with a gallery.

Outputs in ``out``: ``localization.json`` (per method and finding: pointing game, IoU, intersection-over-box
with bootstrap 95% intervals; chance level; the model-randomisation check; box bookkeeping),
``records.csv`` (one row per scored image-finding-method), ``peaks.json`` (every map's peak), and unless
``json_only``: ``overlays/*.png`` and ``gallery.html`` (boxed cases, most confident correct, most confident
wrong, most uncertain).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from cxrlab.data.boxes import read_boxes
from cxrlab.errors import CxrlabError
from cxrlab.explain.cam import ALL_METHODS, compute_cams, peak
from cxrlab.explain.gallery import save_overlay, write_gallery
from cxrlab.explain.localization import chance_pointing, input_to_original, scale_box, score_map, summarise
from cxrlab.explain.rollout import attention_blocks
from cxrlab.predict import (
    Geometry,
    ImageSet,
    ImageSetDataset,
    RunInfo,
    choose_images,
    display_image,
    geometry,
    iter_batches,
    load_run,
    probabilities,
)
from cxrlab.utils import atomic_write_text, write_json

log = logging.getLogger(__name__)
# NIH's box file says "Infiltrate" where Data_Entry (and so our classes) say "Infiltration"
BOX_LABEL_ALIASES = {"Infiltrate": "Infiltration"}


@dataclass(frozen=True)
class ExplainOptions:
    """What to explain and how; the ``cxrlab explain`` options one to one.

    Images: ``images`` (a file or folder) or ``index`` (all rows, or ``split`` of the run's split.csv).
    ``layer`` overrides the model's ``cam_layer`` (e.g. ``layer3`` of a ResNet for a finer map).
    """

    images: str | Path | None = None
    index: str | Path | None = None
    split: str | None = None
    methods: tuple[str, ...] = ("gradcam",)
    boxes: str | Path | None = None
    boxes_size: int | None = None
    classes: tuple[str, ...] | None = None
    top_k: int = 1
    max_images: int = 64
    threshold: float = 0.5
    sanity: bool = True
    json_only: bool = False
    n_boot: int = 1000
    batch_size: int = 8
    gallery_k: int = 4
    layer: str | None = None


@dataclass
class Pair:
    """One (image row, class) to map: why (``kind``: boxed, image, or a gallery case), its boxes on the model
    input, and the gallery sections it appears in."""

    row: int
    cls: int
    kind: str
    boxes: list = field(default_factory=list)
    cases: list[str] = field(default_factory=list)


def explain_run(run_dir: str | Path | None, *, out: str | Path, options: ExplainOptions = ExplainOptions(),
                model: nn.Module | None = None, info: RunInfo | Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Explain a run's model on images or an index split; see the module docstring for the outputs.

    ``model``/``info`` may be given instead of ``run_dir`` (tests, notebooks; ``info`` a ``RunInfo`` or its
    dict). Returns the summary that is written to ``localization.json``.
    """
    o = options
    if model is None:
        model, info = load_run(run_dir)
    elif not isinstance(info, RunInfo):
        info = RunInfo.from_dict(info, where="info")
    if o.layer:
        _set_layer(model, o.layer)
    methods = list(o.methods) or ["gradcam"]
    _check_methods(methods, model)
    out = Path(out)
    geo = geometry(info)
    model_classes = list(info.classes)
    wanted = _check_classes(o.classes, model_classes)
    imgs = _image_set(info, o)
    box_table, bookkeeping = _load_boxes(o.boxes, o.boxes_size, imgs, model_classes)
    imgs, bookkeeping["images_over_max"] = _select(imgs, box_table, o.max_images)
    x, probs, sizes = _forward(model, imgs, info, o.batch_size)
    cases = _gallery_cases(probs, imgs.labels, info.task, o.gallery_k)
    pairs = _pairs(imgs, probs, box_table, sizes, geo, wanted, model_classes, o.top_k, cases, bookkeeping)
    records, peaks, maps_by_method = _run_methods(model, x, pairs, methods, imgs.image_ids, model_classes,
                                                  o.threshold, o.batch_size)
    _add_original_peaks(peaks, pairs, sizes, geo)
    summary = _summary(records, pairs, geo, bookkeeping, o.n_boot, methods, o.threshold, imgs)
    if o.sanity and records:
        summary["sanity"] = randomisation_check(model, x, pairs, methods[0], maps_by_method[methods[0]],
                                                o.threshold, o.batch_size)
    _write(out, summary, records, peaks)
    if not o.json_only:
        sections = _overlays(out, imgs, x, probs, pairs, maps_by_method, info, model_classes)
        write_gallery(out, sections, summary)
    return summary


def _run_methods(model, x, pairs, methods, image_ids, classes, threshold, batch_size):
    """Maps of every pair for every method; (score records, peaks, maps by method)."""
    records, peaks, maps_by_method = [], [], {}
    for method in methods:
        maps = _maps(model, x, pairs, method, batch_size)
        maps_by_method[method] = maps
        for pair, m in zip(pairs, maps):
            image_id, label = image_ids[pair.row], classes[pair.cls]
            peaks.append({"image_id": image_id, "class": label, "method": method, "peak_xy": list(peak(m)),
                          "map_size": list(m.shape)})
            if pair.boxes:  # several boxes of one finding: the best-matching one counts
                best = max((score_map(m, b, threshold) for b in pair.boxes), key=lambda r: r["pointing"] + r["iou"])
                records.append({"image_id": image_id, "label": label, "method": method, **best})
    return records, peaks, maps_by_method


def _add_original_peaks(peaks: list[dict], pairs: list[Pair], sizes: list, geo: Geometry) -> None:
    """Each peak also in pixels of the original image file (``peak_xy_original``)."""
    for n, p in enumerate(peaks):
        pair = pairs[n % len(pairs)]  # peaks run method by method over the same pairs
        x, y = input_to_original((p["peak_xy"][0] + 0.5, p["peak_xy"][1] + 0.5), sizes[pair.row],
                                 geo.cache_size, geo.policy, geo.base, geo.image_size)
        p["peak_xy_original"] = [round(x, 1), round(y, 1)]
        p["original_hw"] = list(sizes[pair.row])


def _set_layer(model: nn.Module, layer: str) -> None:
    names = dict(model.named_modules())
    if layer not in names:
        near = [n for n in names if n and "." not in n][:12]
        raise CxrlabError(f"--layer {layer!r} is not a module of this model; top-level modules: {', '.join(near)}")
    model.cam_layer = layer


def _check_methods(methods: list[str], model: nn.Module) -> None:
    for m in methods:
        if m not in ALL_METHODS:
            raise CxrlabError(f"unknown --method {m!r}; valid: {', '.join(ALL_METHODS)}")
    if "rollout" in methods:
        attention_blocks(model)  # raises for CNNs and Swin, naming gradcam


def _check_classes(classes: tuple[str, ...] | None, model_classes: list[str]) -> list[int] | None:
    if not classes:
        return None
    bad = [c for c in classes if c not in model_classes]
    if bad:
        raise CxrlabError(f"--classes {bad} are not classes of this model; valid: {', '.join(model_classes)}")
    return [model_classes.index(c) for c in classes]


def _image_set(info: RunInfo, o: ExplainOptions) -> ImageSet:
    if o.images is None and o.index is None:
        raise CxrlabError("pass --images FILE_OR_FOLDER or --index INDEX [--split SPLIT]")
    return choose_images(info, split=o.split, index=o.index, images=o.images)


def _load_boxes(path, size, imgs: ImageSet, classes: list[str]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Boxes of images in the set, for the model's classes; the rest skipped and counted."""
    path = path or imgs.boxes_path
    empty = pd.DataFrame(columns=["image_id", "label", "x", "y", "w", "h"])
    if not path:
        return empty, {"boxes_file": None}
    table = read_boxes(path)
    table["label"] = table["label"].map(lambda v: v if v in classes else BOX_LABEL_ALIASES.get(v, v))
    in_set = table["image_id"].isin(set(imgs.image_ids))
    known = table["label"].isin(classes)
    ref = float(size or imgs.boxes_size or 1024)
    book = {"boxes_file": str(path), "boxes_size": ref, "boxes_total": int(len(table)),
            "boxes_skipped_image_not_in_set": int((~in_set).sum()),
            "boxes_skipped_class_not_in_model": int((in_set & ~known).sum())}
    if not (in_set & known).any():
        log.warning("none of the %d boxes in %s belongs to an image in this set", len(table), path)
    return table[in_set & known].reset_index(drop=True), book


def _select(imgs: ImageSet, boxes: pd.DataFrame, max_images: int) -> tuple[ImageSet, int]:
    """Boxed images first, then the others, at most ``max_images``."""
    boxed = set(boxes["image_id"])
    order = [i for i, k in enumerate(imgs.image_ids) if k in boxed] + \
            [i for i, k in enumerate(imgs.image_ids) if k not in boxed]
    return imgs.subset(order[:max_images]), max(0, len(order) - max_images)


@torch.no_grad()
def _forward(model, imgs: ImageSet, info: RunInfo, batch_size: int):
    """(inputs (N, C, S, S), probabilities (N, K), original sizes): every image decoded from its file, since the
    boxes need the original size (the cache does not keep it)."""
    xs, probs, sizes = [], [], []
    for batch in iter_batches(ImageSetDataset(imgs, info), batch_size):
        probs.append(probabilities(model(batch.x), info.task).numpy())
        xs.append(batch.x)
        sizes += batch.sizes
    return torch.cat(xs), np.concatenate(probs), sizes


def _pairs(imgs, probs, boxes, sizes, geo: Geometry, wanted, classes, top_k, cases, book) -> list[Pair]:
    """(image row, class) pairs to map: every boxed finding, else the chosen/top-k classes, plus gallery cases."""
    by_image = {k: g for k, g in boxes.groupby("image_id")}
    pairs: list[Pair] = []
    seen: dict[tuple[int, int], Pair] = {}
    ref = book.get("boxes_size", 1024)

    def add(row: int, cls: int, kind: str, bxs: list) -> None:
        if (row, cls) not in seen:
            seen[(row, cls)] = Pair(row, cls, kind, bxs)
            pairs.append(seen[(row, cls)])

    for row, image_id in enumerate(imgs.image_ids):
        if image_id in by_image:
            for label, g in by_image[image_id].groupby("label"):
                bxs = [scale_box((r.x, r.y, r.w, r.h), ref, sizes[row], geo.cache_size, geo.policy, geo.base,
                                 geo.image_size) for r in g.itertuples()]
                add(row, classes.index(label), "boxed", bxs)
        else:
            for cls in wanted or np.argsort(-probs[row])[:top_k].tolist():
                add(row, int(cls), "image", [])
    for kind, rows in cases.items():
        for row in rows:
            add(row, int(probs[row].argmax()), kind, [])
            seen[(row, int(probs[row].argmax()))].cases.append(kind)
    book["boxes_used"] = sum(len(p.boxes) for p in pairs)
    return pairs


def _maps(model, x: torch.Tensor, pairs: list[Pair], method: str, batch_size: int) -> np.ndarray:
    out = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        rows = torch.tensor([p.row for p in chunk])
        out.append(compute_cams(model, x[rows], [p.cls for p in chunk], method))
    return np.concatenate(out) if out else np.zeros((0, *x.shape[-2:]), dtype=np.float32)


def _gallery_cases(probs: np.ndarray, labels: np.ndarray | None, task: str, k: int) -> dict[str, list[int]]:
    """Rows of the most confident correct, most confident wrong and most uncertain images."""
    if labels is None or k <= 0:
        return {}
    top = probs.argmax(axis=1)
    conf = probs[np.arange(len(top)), top]
    hit = labels[np.arange(len(top)), top] == 1
    known = ~np.isnan(labels[np.arange(len(top)), top])
    margin = probs.max(axis=1) if task == "multiclass" else np.abs(2 * probs - 1).min(axis=1)
    order = np.argsort(-conf)
    return {"most confident correct": [int(i) for i in order if hit[i]][:k],
            "most confident wrong": [int(i) for i in order if known[i] and not hit[i]][:k],
            "most uncertain": np.argsort(margin)[:k].astype(int).tolist()}


def randomisation_check(model: nn.Module, x: torch.Tensor, pairs: list[Pair], method: str,
                        trained_maps: np.ndarray, threshold: float, batch_size: int) -> dict[str, Any]:
    """Adebayo et al.'s model-randomisation test: re-initialise every weight, map the same boxed pairs again.

    Maps that survive randomisation explain the image, not the model. ``verdict`` is ``pass`` when the
    trained model's pointing game beats the re-initialised one's by at least 0.1.
    """
    boxed = [i for i, p in enumerate(pairs) if p.boxes]
    random_model = reinitialise(model)
    rand_maps = _maps(random_model, x, [pairs[i] for i in boxed], method, batch_size)
    trained = [max(score_map(trained_maps[i], b, threshold)["pointing"] for b in pairs[i].boxes) for i in boxed]
    rand = [max(score_map(m, b, threshold)["pointing"] for b in pairs[i].boxes) for i, m in zip(boxed, rand_maps)]
    corr = [_corr(trained_maps[i], m) for i, m in zip(boxed, rand_maps)]
    t, r = float(np.mean(trained)), float(np.mean(rand))
    return {"method": method, "n": len(boxed), "trained_pointing": t, "random_pointing": r,
            "map_correlation": float(np.nanmean(corr)) if np.isfinite(corr).any() else float("nan"),
            "verdict": "pass" if t >= r + 0.1 else "FAIL: maps barely depend on the learned weights"}


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps; NaN when either is flat (nothing to correlate)."""
    if a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def reinitialise(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` with every layer re-initialised (its own init) and free parameters redrawn."""
    torch.manual_seed(seed)
    rnd = copy.deepcopy(model)
    for m in rnd.modules():
        if hasattr(m, "reset_parameters") and callable(m.reset_parameters):
            m.reset_parameters()
        for p in m.parameters(recurse=False):
            if not hasattr(m, "reset_parameters"):  # pos_embed, cls_token, layer scales
                nn.init.normal_(p, std=0.02)
    return rnd.eval()


def _summary(records, pairs, geo: Geometry, book, n_boot, methods, threshold, imgs) -> dict[str, Any]:
    frame = pd.DataFrame(records, columns=["image_id", "label", "method", "pointing", "iou", "iob"])
    all_boxes = [b for p in pairs for b in p.boxes]
    return {"methods": summarise(frame, n_boot) if records else {}, "methods_run": methods,
            "threshold": threshold, "n_images": len(imgs.image_ids), "n_maps_per_method": len(pairs),
            "n_scored_pairs": int(len(frame) // max(len(methods), 1)),
            "chance_pointing": chance_pointing(all_boxes, geo.image_size) if all_boxes else None,
            "image_size": geo.image_size, **book}


def _write(out: Path, summary: dict, records: list[dict], peaks: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "localization.json", summary)
    write_json(out / "peaks.json", peaks)
    frame = pd.DataFrame(records, columns=["image_id", "label", "method", "pointing", "iou", "iob"])
    atomic_write_text(out / "records.csv", frame.to_csv(index=False, lineterminator="\n"))


def _overlays(out, imgs, x, probs, pairs, maps_by_method, info: RunInfo, classes) -> dict[str, list[dict]]:
    sections: dict[str, list[dict]] = {}
    for method, maps in maps_by_method.items():
        for n, (pair, m) in enumerate(zip(pairs, maps)):
            image_id, cls = imgs.image_ids[pair.row], classes[pair.cls]
            png = out / "overlays" / f"{n:04d}_{Path(image_id).stem}_{_safe(cls)}_{_safe(method)}.png"
            p = {c: float(v) for c, v in zip(classes, probs[pair.row])}
            save_overlay(png, display_image(x[pair.row], info), m, f"{image_id}\n{cls} ({method})", p,
                         pair.boxes, peak(m))
            card = {"png": png, "caption": f"{image_id}: {cls} p={p[cls]:.2f} ({method})"}
            for title in [*pair.cases, {"boxed": "with ground-truth boxes"}.get(pair.kind, "other images")]:
                sections.setdefault(title, []).append(card)
    order = ["most confident correct", "most confident wrong", "most uncertain", "with ground-truth boxes"]
    return {k: sections[k] for k in [*order, "other images"] if k in sections}


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name)
