"""How the evaluation's headline and intervals read in reports and on the terminal."""

from __future__ import annotations


def headline(result: dict) -> tuple[str, float | None, list | None]:
    """(name, value, ci) of the headline metric: macro AUROC (multi-label) or macro F1 (multi-class)."""
    key = "auroc" if result["task"] == "multilabel" else "f1"
    return f"macro {key.upper() if key == 'auroc' else 'F1'}", result["macro"][key], result["macro"][f"{key}_ci"]


def fmt_ci(value: float | None, ci: list | None, digits: int = 3) -> str:
    """``0.812 [0.790, 0.833]``; ``n/a`` for undefined values."""
    if value is None:
        return "n/a"
    if not ci or ci[0] is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
