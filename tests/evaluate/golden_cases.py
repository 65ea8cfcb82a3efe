"""Fixed evaluations whose ``metrics.json`` was written by the dict-building code before the typed results
(``tests/evaluate/data/metrics_golden.json``): the typed ``to_dict()`` must reproduce it key for key, in order.

Regenerate only on a deliberate schema change: ``PYTHONPATH=src python -m tests.evaluate.golden_cases``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from cxrlab.data.index import load_index, write_index
from cxrlab.evaluate.evaluate import evaluate_predictions

from .conftest import make_dataset

GOLDEN = Path(__file__).parent / "data" / "metrics_golden.json"
VOLATILE = ("inputs", "datasets", "seconds")  # paths of the temporary folder and the wall time
OTHERS = ("matching", "options", "definitions", "references")  # blocks other modules own: their keys only


def _multilabel(root: Path) -> dict:
    """4 classes: Nodule never positive (undefined), Effusion on 4 patients (thin: no interval), sex groups."""
    data = make_dataset(root, "multilabel", n=240, seed=3)
    index = load_index(data["index"])
    f = index.frame
    patient = f["patient_id"].str[1:].astype(int)
    f["Nodule"] = 0.0
    f["Effusion"] = np.where(patient.isin([1, 5, 9, 13]) & (np.arange(len(f)) % 3 == 0), 1.0, 0.0)
    f.loc[f.index[7], "Atelectasis"] = np.nan  # one unknown label
    f["sex"] = np.where(patient % 2 == 0, "F", "M")
    write_index(index, data["index"])
    return data


CASES = {
    "multilabel_val_by_sex": (_multilabel, dict(val=True, bootstrap=40, seed=1, by="sex", min_group=10,
                                                exact_below=10)),
    "multilabel_no_val": (_multilabel, dict(val=False, bootstrap=30, seed=2, exclude=["No Finding"])),
    "multiclass_val": (lambda root: make_dataset(root, "multiclass", n=150, seed=4), dict(val=True, bootstrap=30)),
}


def run_case(name: str, root: Path, out: Path | None = None) -> dict:
    """The evaluation ``name`` on fresh data under ``root`` (written to ``out`` when given)."""
    build, kwargs = CASES[name]
    kwargs = dict(kwargs)
    data = build(root)
    val = data["val"] if kwargs.pop("val") else None
    return evaluate_predictions(data["test"], labels=data["index"], out=out, val_predictions=val, report=False,
                                **kwargs)


def stable(result: dict) -> dict:
    """The result without the keys that depend on the temporary folder or the clock, and with the blocks other
    modules own (and may change) reduced to a marker: their place in the key order is still compared."""
    return {k: "<not compared>" if k in OTHERS else v for k, v in result.items() if k not in VOLATILE}


def main() -> None:
    golden = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in CASES:
            golden[name] = stable(run_case(name, Path(tmp) / name))
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
