"""Internal vs external results of one model: an unpaired comparison.

The internal test set (the training dataset's) and the external one (another hospital's) hold different images
and patients, so a paired test (DeLong, paired bootstrap) does not apply. Each side is resampled by its own
patients, independently (the patient bootstrap stratified by each patient's rarest positive class, as in
``evaluate`` and ``compare``: ``metrics.bootstrap_weights``); the difference of the two replicate arrays gives the
percentile interval of ``external - internal`` for each class scored on both sides and for their macro average.
"""

from __future__ import annotations

import numpy as np

from cxrlab.evaluate import metrics as m
from cxrlab.evaluate.matching import Scored, subset_scored
from cxrlab.evaluate.summary import est

METHOD = ("unpaired: internal and external test sets hold different images, so each is resampled by its own "
          "patients independently and the interval is that of the difference of the two bootstrap replicates; "
          "DeLong's paired test does not apply")


def _macro_and_classes(s: Scored, weights: np.ndarray, classes: list[str], exclude: tuple[str, ...]
                       ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(macro (R+1,), per class (R+1, C), classes in the macro) for ``classes`` of ``s``."""
    sub = subset_scored(s, list(s.image_ids), classes)
    if s.task == "multilabel":
        values = m.class_auroc(sub, weights)
        keep, _, _ = m.averaged_classes(sub, exclude)
    else:
        values = m.multiclass_from_confusion(m.confusion(sub, weights))["f1"]
        keep = list(range(len(classes)))
    return m.nanmean_rows(values[:, keep]) if keep else np.full(len(weights), np.nan), values, \
        [classes[i] for i in keep]


def internal_vs_external(external: Scored, internal: Scored, *, replicates: int, seed: int = 0,
                         exclude: tuple[str, ...] = ()) -> dict:
    """The ``internal_vs_external`` block of ``metrics.json`` (AUROC for multi-label, F1 for multi-class)."""
    classes = [c for c in external.classes if c in internal.classes]
    if not classes or internal.task != external.task:
        return {"method": METHOD, "classes": {}, "note": "no class scored on both sides with the same task"}
    w_ext = m.bootstrap_weights(external, replicates, seed)
    w_int = m.bootstrap_weights(internal, replicates, seed + 1)  # independent draws
    ext_macro, ext_cls, kept_ext = _macro_and_classes(external, w_ext, classes, exclude)
    int_macro, int_cls, kept_int = _macro_and_classes(internal, w_int, classes, exclude)
    metric = "auroc" if external.task == "multilabel" else "f1"
    per_class = {}
    for i, c in enumerate(classes):
        a, a_ci = est(int_cls[:, i])
        b, b_ci = est(ext_cls[:, i])
        d, d_ci = est(ext_cls[:, i] - int_cls[:, i])
        per_class[c] = {"internal": a, "internal_ci": a_ci, "external": b, "external_ci": b_ci,
                        "difference": d, "difference_ci": d_ci}
    same = kept_ext == kept_int
    a, a_ci = est(int_macro)
    b, b_ci = est(ext_macro)
    macro = {"internal": a, "internal_ci": a_ci, "external": b, "external_ci": b_ci, "classes": kept_ext}
    if same:
        d, d_ci = est(ext_macro - int_macro)
        macro |= {"difference": d, "difference_ci": d_ci}
    else:
        macro["note"] = ("the classes averaged differ between the sides (a class undefined on one side): "
                         f"internal {kept_int}, external {kept_ext}; no difference reported")
    return {"method": METHOD, "metric": metric, "replicates": int(replicates),
            "internal_images": len(internal.image_ids), "external_images": len(external.image_ids),
            "classes": per_class, "macro": macro}
