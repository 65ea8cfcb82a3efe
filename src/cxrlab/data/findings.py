"""One table of chest X-ray findings: canonical names, each dataset's spellings, and approximate relations.

A model trained on one dataset is scored on another by matching its classes to the other's labels through
this table. A pair is matched **exactly** when both names are spellings of the same canonical finding
(NIH ``Effusion`` = CheXpert ``Pleural Effusion`` = PadChest ``pleural effusion`` = VinDr ``Pleural effusion``),
and **approximately** when their findings overlap without being the same (NIH ``Consolidation`` vs Google's
``Airspace opacity``): approximate pairs are reported and scored only when asked (``--match approximate``).
Names are compared case-insensitively with ``_``, ``-`` and ``/`` read as spaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# canonical name -> {dataset: spellings}. Datasets: nih, chexpert (and mimic), padchest, vindr, rsna, google2019,
# phantom (cxrlab's synthetic data: Nodule, Mass, Effusion as NIH, Opacity).
FINDINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "No Finding": {"nih": ("No Finding",), "chexpert": ("No Finding",), "padchest": ("normal",),
                   "vindr": ("No finding",), "rsna": ("Normal",)},
    "Atelectasis": {"nih": ("Atelectasis",), "chexpert": ("Atelectasis",), "padchest": ("atelectasis",),
                    "vindr": ("Atelectasis",)},
    "Cardiomegaly": {"nih": ("Cardiomegaly",), "chexpert": ("Cardiomegaly",), "padchest": ("cardiomegaly",),
                     "vindr": ("Cardiomegaly",)},
    "Pleural Effusion": {"nih": ("Effusion",), "chexpert": ("Pleural Effusion",), "padchest": ("pleural effusion",),
                         "vindr": ("Pleural effusion",)},
    "Infiltration": {"nih": ("Infiltration",), "padchest": ("infiltrates",), "vindr": ("Infiltration",)},
    "Mass": {"nih": ("Mass",), "padchest": ("mass", "pulmonary mass")},
    "Nodule": {"nih": ("Nodule",), "padchest": ("nodule",)},
    "Nodule or Mass": {"vindr": ("Nodule/Mass",), "google2019": ("Nodule or mass",)},
    "Pneumonia": {"nih": ("Pneumonia",), "chexpert": ("Pneumonia",), "padchest": ("pneumonia",),
                  "rsna": ("Pneumonia", "Target")},
    "Pneumothorax": {"nih": ("Pneumothorax",), "chexpert": ("Pneumothorax",), "padchest": ("pneumothorax",),
                     "vindr": ("Pneumothorax",), "google2019": ("Pneumothorax",)},
    "Consolidation": {"nih": ("Consolidation",), "chexpert": ("Consolidation",), "padchest": ("consolidation",),
                      "vindr": ("Consolidation",)},
    "Edema": {"nih": ("Edema",), "chexpert": ("Edema",), "padchest": ("pulmonary edema",)},
    "Emphysema": {"nih": ("Emphysema",), "padchest": ("emphysema",)},
    "Fibrosis": {"nih": ("Fibrosis",), "padchest": ("pulmonary fibrosis",), "vindr": ("Pulmonary fibrosis",)},
    "Pleural Thickening": {"nih": ("Pleural_Thickening",), "padchest": ("pleural thickening",),
                           "vindr": ("Pleural thickening",)},
    "Hernia": {"nih": ("Hernia",), "padchest": ("hiatal hernia",)},
    "Lung Opacity": {"chexpert": ("Lung Opacity",), "vindr": ("Lung Opacity",), "phantom": ("Opacity",)},
    "Airspace Opacity": {"google2019": ("Airspace opacity",)},
    "Fracture": {"chexpert": ("Fracture",), "padchest": ("fracture",), "google2019": ("Fracture",)},
    "Enlarged Cardiomediastinum": {"chexpert": ("Enlarged Cardiomediastinum",)},
    "Lung Lesion": {"chexpert": ("Lung Lesion",)},
    "Pleural Other": {"chexpert": ("Pleural Other",)},
    "Support Devices": {"chexpert": ("Support Devices",)},
    "Aortic Enlargement": {"vindr": ("Aortic enlargement",)},
    "Calcification": {"vindr": ("Calcification",)},
    "Interstitial Lung Disease": {"vindr": ("ILD",)},
    "Interstitial Pattern": {"padchest": ("interstitial pattern",)},
    "Other Lesion": {"vindr": ("Other lesion",)},
}

# Overlapping but not the same finding: (a, b, why). Symmetric.
APPROXIMATE: tuple[tuple[str, str, str], ...] = (
    ("Consolidation", "Airspace Opacity", "consolidation is one kind of airspace opacity"),
    ("Lung Opacity", "Airspace Opacity", "CheXpert's lung opacity also covers interstitial opacities"),
    ("Pneumonia", "Airspace Opacity", "pneumonia is a clinical diagnosis; the image shows airspace opacity"),
    ("Infiltration", "Lung Opacity", "NIH's infiltration is an opacity label without a stated pattern"),
    ("Consolidation", "Lung Opacity", "consolidation is one kind of lung opacity"),
    ("Pneumonia", "Lung Opacity", "RSNA's target is an opacity suggestive of pneumonia"),
    ("Nodule", "Nodule or Mass", "a nodule is the smaller half of 'nodule or mass'"),
    ("Mass", "Nodule or Mass", "a mass is the larger half of 'nodule or mass'"),
    ("Nodule", "Lung Lesion", "CheXpert's lung lesion covers nodules and masses"),
    ("Mass", "Lung Lesion", "CheXpert's lung lesion covers nodules and masses"),
    ("Nodule or Mass", "Lung Lesion", "CheXpert's lung lesion also covers cavities and cysts"),
    ("Pleural Thickening", "Pleural Other", "CheXpert's pleural other includes thickening and plaques"),
    ("Fibrosis", "Interstitial Lung Disease", "fibrosis is one form of interstitial lung disease"),
    ("Interstitial Pattern", "Interstitial Lung Disease", "a radiographic pattern, not a diagnosis"),
)


def normalise(name: str) -> str:
    """Comparison key: lower case, ``_``/``-``/``/`` as spaces, single spaces."""
    return re.sub(r"\s+", " ", re.sub(r"[_\-/]", " ", str(name))).strip().lower()


_BY_SPELLING: dict[str, str] = {}
for _canon, _spellings in FINDINGS.items():
    _BY_SPELLING[normalise(_canon)] = _canon
    for _names in _spellings.values():
        for _n in _names:
            _BY_SPELLING.setdefault(normalise(_n), _canon)


def canonical(name: str) -> str | None:
    """The canonical finding a dataset's class name spells, or None when the table does not know it."""
    return _BY_SPELLING.get(normalise(name))


def spellings(name: str) -> list[str]:
    """Every spelling of ``name``'s finding (``name`` itself first); ``[name]`` when unknown."""
    canon = canonical(name)
    if canon is None:
        return [name]
    out = [name, canon, *(n for names in FINDINGS[canon].values() for n in names)]
    return list(dict.fromkeys(out))


def approximate_reason(a: str, b: str) -> str | None:
    """Why findings ``a`` and ``b`` overlap (approximate match), or None."""
    ca, cb = canonical(a), canonical(b)
    if ca is None or cb is None:
        return None
    for x, y, why in APPROXIMATE:
        if {x, y} == {ca, cb}:
            return why
    return None


@dataclass(frozen=True)
class ClassMatch:
    """One model class matched to one label class."""

    model: str
    labels: str
    kind: str  # "same name" | "exact" (same canonical finding) | "approximate"
    finding: str | None = None
    reason: str | None = None


def match_classes(model: list[str], labels: list[str]) -> tuple[list[ClassMatch], list[ClassMatch], list[str],
                                                                 list[str]]:
    """Match model classes to label classes: (matched, approximate, model unmatched, labels unmatched).

    Each class is used at most once: the same name first, then the same canonical finding. Approximate
    candidates are listed for the classes left over (a model class may have several).
    """
    matched: list[ClassMatch] = []
    used_labels: set[str] = set()
    for m in model:
        if m in labels:
            matched.append(ClassMatch(m, m, "same name", canonical(m)))
            used_labels.add(m)
    label_canon = {lab: canonical(lab) for lab in labels if lab not in used_labels}
    for m in model:
        if any(x.model == m for x in matched):
            continue
        cm = canonical(m)
        hit = next((lab for lab, cl in label_canon.items() if cl is not None and cl == cm and lab not in used_labels),
                   None)
        if hit is not None:
            matched.append(ClassMatch(m, hit, "exact", cm))
            used_labels.add(hit)
    done = {x.model for x in matched}
    approx = [ClassMatch(m, lab, "approximate", canonical(lab), why)
              for m in model if m not in done for lab in labels if lab not in used_labels
              for why in [approximate_reason(m, lab)] if why]
    return (matched, approx, [m for m in model if m not in done], [lab for lab in labels if lab not in used_labels])


def table_markdown() -> str:
    """The findings table as Markdown (docs/datasets.md embeds it)."""
    datasets = ("nih", "chexpert", "padchest", "vindr", "rsna", "google2019")
    lines = ["| finding | " + " | ".join(datasets) + " |", "|---" * (len(datasets) + 1) + "|"]
    for canon, names in FINDINGS.items():
        lines.append(f"| {canon} | " + " | ".join(", ".join(names.get(d, ())) or "-" for d in datasets) + " |")
    return "\n".join(lines)
