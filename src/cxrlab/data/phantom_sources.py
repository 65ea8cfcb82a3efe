"""Three phantom datasets in three public layouts, for merged training and the cross-dataset study.

``make_phantom_sources(out_dir)`` writes, under ``out_dir``:

* ``nih/``: NIH ChestX-ray14 layout (``Data_Entry_2017.csv`` + ``images/``), findings Nodule, Mass and Effusion
  drawn; as in NIH, the 14 findings are all labelled (the undrawn ones are negatives). Plain phantom style.
* ``chexpert/``: CheXpert layout (``train.csv`` + ``train/patientNNNNN/studyN/view1_frontal.jpg``), labelling
  only ``No Finding``, ``Lung Opacity`` and ``Pleural Effusion`` (drawn Opacity and Effusion). Style: a lifted,
  low-contrast exposure (gamma 0.6), a slight blur and JPEG compression.
* ``padchest/``: PadChest layout (``PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv`` + ``0/*.png``, 16-bit
  PNG), terms ``nodule``, ``pleural effusion`` and ``normal``. Style: a dark, hard exposure (gamma 1.6) with
  strong noise.

Every pair of sources shares Effusion, so every cell of the generalisation matrix has a finding to score; the
three intensity styles make the domain shift real: a model trained on one source loses accuracy on the others.
Every source has its own patients (ids restart at 1 in each: the merge must namespace them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from cxrlab.data.phantom import render_image
from cxrlab.errors import CxrlabError


@dataclass(frozen=True)
class PhantomSource:
    """One phantom dataset: its layout, the phantom findings drawn, and its intensity style."""

    name: str
    drawn: tuple[str, ...]
    gamma: float
    noise: float
    blur: bool


SOURCES = (
    PhantomSource("nih", ("Nodule", "Mass", "Effusion"), 1.0, 0.0, False),
    PhantomSource("chexpert", ("Opacity", "Effusion"), 0.6, 0.01, True),
    PhantomSource("padchest", ("Nodule", "Effusion"), 1.6, 0.06, False),
)
NIH_NAMES = {"Nodule": "Nodule", "Mass": "Mass", "Effusion": "Effusion"}
CHEXPERT_NAMES = {"Opacity": "Lung Opacity", "Effusion": "Pleural Effusion"}
PADCHEST_NAMES = {"Nodule": "nodule", "Effusion": "pleural effusion"}
PADCHEST_FILE = "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv"


def _plan(src: PhantomSource, n: int, seed: int, prevalence: float) -> list[dict]:
    """Patients with 1-3 images each; every drawn finding present with ``prevalence`` per image."""
    r = np.random.default_rng(np.random.SeedSequence([seed, 3_000_000 + SOURCES.index(src)]))
    plan, pid = [], 1
    while len(plan) < n:
        for fu in range(min(int(r.integers(1, 4)), n - len(plan))):
            findings = [f for f in src.drawn if r.random() < prevalence]
            plan.append({"patient": pid, "follow_up": fu, "findings": findings, "index": len(plan)})
        pid += 1
    return plan


def _style(img: np.ndarray, src: PhantomSource, r: np.random.Generator) -> np.ndarray:
    """float image in [0, 1] in the source's exposure style."""
    out = np.clip(img, 0, 1) ** src.gamma
    if src.blur:
        out = cv2.GaussianBlur(out, (3, 3), 0.8)
    if src.noise:
        out = out + r.normal(0, src.noise, out.shape)
    return np.clip(out, 0, 1)


def _render(src: PhantomSource, item: dict, path: Path, size: int, seed: int) -> None:
    """Render the phantom image, restyle it and save it in the source's file format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    render_image({"size": size, "contrast": 1.0, "seed": seed, "index": item["index"],
                  "patient": item["patient"] + 10_000 * SOURCES.index(src), "image_id": path.name,
                  "findings": item["findings"], "finding_scale": 1.0, "path": str(tmp)})
    raw = cv2.imread(str(tmp), cv2.IMREAD_GRAYSCALE)
    tmp.unlink()
    r = np.random.default_rng(np.random.SeedSequence([seed, item["index"], 7]))
    styled = _style(raw.astype(np.float32) / 255.0, src, r)
    if path.suffix == ".jpg":
        ok = cv2.imwrite(str(path), (styled * 255 + 0.5).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 80])
    elif src.name == "padchest":  # PadChest ships 16-bit PNGs
        ok = cv2.imwrite(str(path), (styled * 65535 + 0.5).astype(np.uint16))
    else:
        ok = cv2.imwrite(str(path), (styled * 255 + 0.5).astype(np.uint8))
    if not ok:
        raise CxrlabError(f"phantom sources: cannot write {path}; check the output folder is writable")


def _write_nih(root: Path, plan: list[dict], size: int, seed: int) -> None:
    rows = []
    for item in plan:
        name = f"{item['patient']:08d}_{item['follow_up']:03d}.png"
        _render(SOURCES[0], item, root / "images" / name, size, seed)
        labels = "|".join(NIH_NAMES[f] for f in item["findings"]) or "No Finding"
        rows.append({"Image Index": name, "Finding Labels": labels, "Follow-up #": item["follow_up"],
                     "Patient ID": item["patient"], "Patient Age": 50, "Patient Gender": "M", "View Position": "PA"})
    pd.DataFrame(rows).to_csv(root / "Data_Entry_2017.csv", index=False)


def _write_chexpert(root: Path, plan: list[dict], size: int, seed: int) -> None:
    rows = []
    for item in plan:
        rel = f"train/patient{item['patient']:05d}/study{item['follow_up'] + 1}/view1_frontal.jpg"
        _render(SOURCES[1], item, root / rel, size, seed)
        row = {"Path": f"CheXpert-v1.0-small/{rel}", "Sex": "Female", "Age": 60, "Frontal/Lateral": "Frontal",
               "AP/PA": "AP", "No Finding": 0.0 if item["findings"] else 1.0}
        row.update({CHEXPERT_NAMES[f]: (1.0 if f in item["findings"] else 0.0) for f in SOURCES[1].drawn})
        rows.append(row)
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)


def _write_padchest(root: Path, plan: list[dict], size: int, seed: int) -> None:
    rows = []
    for k, item in enumerate(plan):
        name = f"{item['patient']}_{item['follow_up']}.png"
        _render(SOURCES[2], item, root / "0" / name, size, seed)
        terms = [PADCHEST_NAMES[f] for f in item["findings"]] or ["normal"]
        rows.append({"": k, "ImageID": name, "ImageDir": "0", "StudyDate_DICOM": f"{2014 + item['follow_up']}0101",
                     "StudyID": f"s{item['patient']}_{item['follow_up']}",
                     "PatientID": f"{item['patient']:08d}",  # NIH's ids too: the merge must tell them apart
                     "PatientBirth": "1950.0", "PatientSex_DICOM": "F", "Projection": "PA",
                     "MethodLabel": "Physician", "Labels": str(terms)})
    pd.DataFrame(rows).to_csv(root / PADCHEST_FILE, index=False)


WRITERS = {"nih": _write_nih, "chexpert": _write_chexpert, "padchest": _write_padchest}


def make_phantom_sources(out_dir: str | Path, n: int = 120, size: int = 64, seed: int = 0,
                         prevalence: float = 0.4) -> dict[str, Path]:
    """Write the three phantom datasets into ``out_dir/{nih,chexpert,padchest}``; returns name -> folder.

    Index them with ``cxrlab data index DIR --format nih|chexpert|padchest`` (each in its own layout).
    """
    if n < 10 or size < 32:
        raise CxrlabError(f"phantom sources: n={n} and size={size} are too small; use n >= 10 and size >= 32")
    out = {}
    for src in SOURCES:
        root = Path(out_dir) / src.name
        root.mkdir(parents=True, exist_ok=True)
        WRITERS[src.name](root, _plan(src, n, seed, prevalence), size, seed)
        out[src.name] = root
    return out


def index_phantom_sources(out_dir: str | Path, **kwargs) -> dict[str, Path]:
    """``make_phantom_sources`` plus one index per source in ``out_dir/index/NAME``; returns name -> index folder."""
    from cxrlab.data.build_index import build_index

    folders = make_phantom_sources(out_dir, **kwargs)
    indexes = {}
    for name, root in folders.items():
        target = Path(out_dir) / "index" / name
        build_index(root, name, target, hash_files=False)
        indexes[name] = target
    return indexes
