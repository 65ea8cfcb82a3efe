"""Overlay PNGs (image, heat map, probabilities, ground-truth box) and the ``gallery.html`` page."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from cxrlab.explain.localization import Box
from cxrlab.utils import atomic_write_text, write_json


def save_overlay(path: Path, image: np.ndarray, heat: np.ndarray, title: str, probs: dict[str, float],
                 boxes: list[Box] | None = None, peak: tuple[int, int] | None = None) -> Path:
    """Image (gray), heat map (jet, alpha 0.4), boxes (green), peak (cross), top probabilities under it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(3.2, 3.6), dpi=80)
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.imshow(heat, cmap="jet", alpha=0.4, vmin=0, vmax=1)
    for x, y, w, h in boxes or []:
        ax.add_patch(Rectangle((x, y), w, h, fill=False, edgecolor="lime", linewidth=1.5))
    if peak is not None:
        ax.plot([peak[0]], [peak[1]], marker="x", color="white", markersize=8, mew=2)
    ax.set_title(title, fontsize=7)
    top = sorted(probs.items(), key=lambda kv: -kv[1])[:3]
    ax.set_xlabel("  ".join(f"{k} {v:.2f}" for k, v in top), fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    import io

    from cxrlab.utils import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())  # a kill never leaves half a PNG
    return path


def write_gallery(out_dir: Path, sections: dict[str, list[dict[str, Any]]], summary: dict[str, Any]) -> Path:
    """``gallery.html``: a summary table and one section of overlay cards per case group; ``gallery.json``: the
    cards (overlay path relative to ``out_dir``, caption) per section."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>cxrlab explain</title>",
             "<style>body{font-family:sans-serif;margin:1em} .card{display:inline-block;margin:4px;"
             "vertical-align:top;font-size:12px;width:260px} img{width:256px} table{border-collapse:collapse}"
             " td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>",
             "<h1>Heat-map gallery</h1>", _summary_table(summary)]
    for title, cards in sections.items():
        if not cards:
            continue
        parts.append(f"<h2>{html.escape(title)} ({len(cards)})</h2>")
        for card in cards:
            rel = Path(card["png"]).relative_to(out_dir).as_posix()
            parts.append(f"<div class='card'><img src='{html.escape(rel)}' loading='lazy'><br>"
                         f"{html.escape(card['caption'])}</div>")
    parts.append("</body></html>")
    path = out_dir / "gallery.html"
    atomic_write_text(path, "\n".join(parts) + "\n")
    # the same cards as data, so `cxrlab evaluate RUN_DIR` can embed them in the run's report
    write_json(out_dir / "gallery.json", {title: [{"png": Path(c["png"]).relative_to(out_dir).as_posix(),
                                                   "caption": c["caption"]} for c in cards]
                                          for title, cards in sections.items() if cards})
    return path


def _summary_table(summary: dict[str, Any]) -> str:
    rows = ["<table><tr><th>method</th><th>finding</th><th>n</th><th>pointing game</th><th>IoU</th>"
            "<th>int/box</th></tr>"]
    for method, per in summary.get("methods", {}).items():
        for finding, s in per.items():
            cells = "".join(f"<td>{s[m]['mean']:.2f} [{s[m]['ci95'][0]:.2f}, {s[m]['ci95'][1]:.2f}]</td>"
                            for m in ("pointing", "iou", "iob"))
            rows.append(f"<tr><td>{html.escape(method)}</td><td>{html.escape(finding)}</td><td>{s['n']}</td>"
                        f"{cells}</tr>")
    rows.append("</table>")
    sanity = summary.get("sanity")
    if sanity:
        rows.append(f"<p>Model-randomisation check ({html.escape(sanity['method'])}): pointing game trained "
                    f"{sanity['trained_pointing']:.2f} vs re-initialised {sanity['random_pointing']:.2f}; "
                    f"map correlation {sanity['map_correlation']:.2f}: <b>{html.escape(sanity['verdict'])}</b></p>")
    if summary.get("chance_pointing") is not None:
        rows.append(f"<p>Chance pointing game (random peak): {summary['chance_pointing']:.2f}</p>")
    return "\n".join(rows)
