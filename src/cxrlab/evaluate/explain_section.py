"""The "Explanations" section of a run's evaluation report, read from ``RUN_DIR/explain/`` (``cxrlab explain``).

``cxrlab evaluate RUN_DIR`` calls ``explain_section``: the localization scores table (pointing game, IoU,
intersection-over-box with 95% intervals), the model-randomisation check, and the gallery's overlays
(most confident correct, most confident wrong, most uncertain, boxed cases) embedded in the report, with a
relative link to the full ``gallery.html``. No torch import: the report stays cheap to write.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cxrlab.evaluate.formatting import fmt_value

GALLERY_ORDER = ("most confident correct", "most confident wrong", "most uncertain", "with ground-truth boxes")


def explain_section(doc: Any, explain_dir: Path, out: Path, per_section: int = 4) -> bool:
    """Add the section to ``doc`` (a ``cxrlab.evaluate.document.Document``); False when there is nothing."""
    loc = _read(explain_dir / "localization.json")
    if loc is None:
        return False
    doc.heading("Explanations (heat maps)")
    doc.bullets(_facts(loc))
    rows = localization_rows(loc)
    if rows:
        doc.table(["method", "finding", "n", "pointing game [95% CI]", "IoU [95% CI]", "int/box [95% CI]"], rows)
    else:
        doc.text("No map was scored against a ground-truth box (no boxes for these images).")
    gallery = _read(explain_dir / "gallery.json") or {}
    shown = 0
    for title in [t for t in GALLERY_ORDER if t in gallery] + [t for t in gallery if t not in GALLERY_ORDER]:
        cards = [c for c in gallery[title] if (explain_dir / c["png"]).is_file()][:per_section]
        if not cards:
            continue
        doc.heading(f"Gallery: {title}", 3)
        for card in cards:
            shown += 1
            doc.figure(f"explain_{shown:03d}", (explain_dir / card["png"]).read_bytes(), card["caption"])
    if (explain_dir / "gallery.html").is_file():
        href = Path(os.path.relpath(explain_dir / "gallery.html", out)).as_posix()
        doc.link("full heat-map gallery (every overlay)", href)
    return True


def localization_rows(loc: dict[str, Any]) -> list[list[Any]]:
    """One row per method and finding ("all" first): n and the three scores with their intervals."""
    rows = []
    for method, per in (loc.get("methods") or {}).items():
        for finding in ["all", *sorted(k for k in per if k != "all")]:
            if finding in per:
                s = per[finding]
                rows.append([method, finding, s["n"], *(_ci(s[m]) for m in ("pointing", "iou", "iob"))])
    return rows


def _facts(loc: dict[str, Any]) -> list[str]:
    facts = [f"methods: {fmt_value(loc.get('methods_run'))}; {fmt_value(loc.get('n_images'))} images, "
             f"{fmt_value(loc.get('n_maps_per_method'))} maps per method, {fmt_value(loc.get('n_scored_pairs'))} "
             f"scored against boxes; map threshold {fmt_value(loc.get('threshold'))}"]
    if loc.get("boxes_file"):
        facts.append(f"boxes: {loc['boxes_file']} ({loc.get('boxes_used', 0)} used; "
                     f"{loc.get('boxes_skipped_image_not_in_set', 0)} skipped, image not in the set; "
                     f"{loc.get('boxes_skipped_class_not_in_model', 0)} skipped, class not in the model)")
    if loc.get("chance_pointing") is not None:
        facts.append(f"chance pointing game (a random peak): {loc['chance_pointing']:.3f}")
    sanity = loc.get("sanity")
    if sanity:
        facts.append(f"model-randomisation check ({sanity['method']}): pointing game trained "
                     f"{sanity['trained_pointing']:.3f} vs re-initialised {sanity['random_pointing']:.3f}: "
                     f"{sanity['verdict']}")
    return facts


def _ci(m: dict[str, Any]) -> str:
    lo, hi = (m.get("ci95") or [None, None])[:2]
    return f"{m['mean']:.3f}" if lo is None else f"{m['mean']:.3f} [{lo:.3f}, {hi:.3f}]"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text()) if path.is_file() else None
    except (OSError, ValueError):
        obj = ""
    if obj is not None and not isinstance(obj, dict):  # damaged: the report goes on without it, and says so
        import warnings

        warnings.warn(f"{path} is not a JSON object as `cxrlab explain` writes it; the report leaves it out "
                      "(rerun `cxrlab explain` to restore it)", UserWarning, stacklevel=2)
        return None
    return obj
