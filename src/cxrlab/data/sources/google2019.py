"""NIH ChestX-ray14 with Google's expert relabels (Majkowska et al., Radiology 2019): ``--labels-from google2019``.

Google's radiologists adjudicated four findings on 4,376 NIH images: ``Fracture``, ``Pneumothorax``,
``Airspace opacity`` and ``Nodule or mass`` (YES/NO). On the images that have them, these labels replace
NIH's text-mined ``Pneumothorax`` and fill three added classes (``Fracture``, ``Airspace opacity``,
``Nodule or mass``), which are unknown (empty, masked) on the other images. The image's Google set
(``test``/``validation``) is kept as ``relabel_set``. Files accepted: the combined
``google2019_nih-chest-xray-labels.csv`` (torchxrayvision's) or Google's ``four_findings_expert_labels_*.csv``,
in ROOT or given with ``--relabels``; ``.gz`` works too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxrlab.data.sources import SourceTable, read_table, require_columns
from cxrlab.errors import CxrlabError

SOURCES = ("google2019",)
FOUR = ("Fracture", "Pneumothorax", "Airspace opacity", "Nodule or mass")
FILES = ("google2019_nih-chest-xray-labels.csv", "google2019_nih-chest-xray-labels.csv.gz",
         "four_findings_expert_labels_test_labels.csv", "four_findings_expert_labels_validation_labels.csv")


def find_relabel_files(root: Path, relabels: str | Path | None) -> list[Path]:
    """``--relabels`` or the Google files in ROOT."""
    if relabels:
        path = Path(relabels) if Path(relabels).is_file() else root / relabels
        if not path.is_file():
            raise CxrlabError(f"--relabels {relabels}: file not found (looked as given and under {root})")
        return [path]
    found = [root / f for f in FILES if (root / f).is_file()]
    if not found:
        raise CxrlabError(f"{root}: --labels-from google2019 needs Google's relabel file ({FILES[0]} or "
                          f"{FILES[2]}) in ROOT; or pass --relabels FILE")
    return found[:1] if found[0].name.startswith("google2019") else found


def read_relabels(paths: list[Path]) -> pd.DataFrame:
    """image_id -> the four findings as 1/0 and ``relabel_set``; YES/NO cells checked row by row."""
    parts = []
    for path in paths:
        raw = read_table(path)
        require_columns(path, raw, ("Image Index", *FOUR), "Google 2019 NIH relabel")
        out = pd.DataFrame({"image_id": raw["Image Index"].str.strip()})
        for c in FOUR:
            text = raw[c].fillna("").str.strip().str.upper()
            bad = ~text.isin(["YES", "NO"])
            if bad.any():
                pos = int(bad.to_numpy().nonzero()[0][0])
                raise CxrlabError(f"{path}: row {pos + 2}, column {c!r}: value {raw[c].iloc[pos]!r} is not YES or NO")
            out[c] = (text == "YES").astype(np.float64)
        default = "test" if "test" in path.name else "validation" if "validation" in path.name else "yes"
        out["relabel_set"] = raw["Set Id"].fillna(default).str.strip() if "Set Id" in raw.columns else default
        parts.append(out)
    frame = pd.concat(parts, ignore_index=True)
    dup = frame.duplicated("image_id", keep=False)
    if dup.any() and frame[dup].drop_duplicates(["image_id", *FOUR]).duplicated("image_id").any():
        first = frame["image_id"][dup].iloc[0]
        raise CxrlabError(f"{paths[0]}: image {first} has conflicting relabel rows; keep one per image")
    return frame.drop_duplicates("image_id").set_index("image_id")


def apply_google2019(table: SourceTable, root: Path, source: str, relabels: str | Path | None) -> None:
    """Replace/extend ``table``'s labels with Google's on the relabelled images (in place, counted)."""
    if source not in SOURCES:
        raise CxrlabError(f"--labels-from {source!r} is not one of {', '.join(SOURCES)}")
    paths = find_relabel_files(root, relabels)
    google = read_relabels(paths)
    frame = table.frame
    hit = frame["image_id"].isin(google.index)
    rows = google.reindex(frame["image_id"])
    before = frame["Pneumothorax"].to_numpy(dtype=np.float64) if "Pneumothorax" in frame else np.full(len(frame),
                                                                                                       np.nan)
    after = np.where(hit, rows["Pneumothorax"].to_numpy(), before)
    changed = {"negative_to_positive": int(((before == 0) & (after == 1)).sum()),
               "positive_to_negative": int(((before == 1) & (after == 0)).sum())}
    for c in FOUR:
        frame[c] = after if c == "Pneumothorax" else rows[c].to_numpy()
    frame["relabel_set"] = rows["relabel_set"].to_numpy()
    table.classes = [*table.classes, *(c for c in FOUR if c not in table.classes)]
    table.inputs += paths
    table.counts["relabelled_images"] = int(hit.sum())
    table.details["labels_from"] = {"source": source, "files": [p.name for p in paths],
                                    "relabelled_images": int(hit.sum()), "relabel_rows": len(google),
                                    "pneumothorax_changed": changed,
                                    "rule": "Google's labels replace NIH's Pneumothorax and fill Fracture, Airspace "
                                            "opacity, Nodule or mass on relabelled images; unknown elsewhere"}
    table.extra_meta["labels_from"] = "google2019"
    table.warnings.append(f"--labels-from google2019: {int(hit.sum())} indexed image(s) relabelled; Pneumothorax "
                          f"changed on {sum(changed.values())}; the 3 added classes are unknown on the others")
