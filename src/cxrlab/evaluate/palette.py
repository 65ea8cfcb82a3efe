"""One qualitative palette for every per-class (and per-arm) plot: 15 colours a reader can tell apart.

matplotlib's default cycle has 10 colours, so NIH's 15 classes repeated five of them; tab20 pairs each hue with
a pale copy of itself. This list is tab10 plus five dark hues chosen to sit far from it: the smallest CIEDE2000
distance between any two is about 16 (tab20's is 12, between near-duplicates). Each class also gets its own
line style, so a class stays recognisable in greyscale and beyond 15 curves.
"""

from __future__ import annotations

COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#2f4f4f", "#006400", "#8b008b", "#808000", "#800000",
)
LINESTYLES = ("-", "--", "-.", ":")


def class_style(i: int) -> dict[str, str]:
    """Colour and line style of the ``i``-th class (or arm); distinct pairs for the first 60."""
    n = len(COLORS)
    return {"color": COLORS[i % n], "linestyle": LINESTYLES[(i % n + i // n) % len(LINESTYLES)]}
