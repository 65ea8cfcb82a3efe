"""The index artifact: ``index.csv`` (one row per image) + ``index.json`` (task, classes, root, hashes).

Columns of ``index.csv``: ``image_id`` (unique), ``path`` (relative to the dataset root, or absolute),
``patient_id``, one column per class, then optional metadata (``view``, ``age``, ``sex``, ``follow_up``,
``source``, ``weight``). Multi-label class cells hold 1, 0 or empty (unknown, read as NaN); multi-class rows
hold exactly one 1.

``index.json`` keys: ``task`` ("multilabel" | "multiclass"), ``classes`` (ordered), ``root`` (absolute
dataset root), ``format`` (source format), ``counts`` (dict), ``boxes`` (file name of a boxes table beside
the index, NIH ``BBox_List_2017.csv`` column layout, or null), ``index_sha256`` (hash of index.csv),
``inputs_sha256`` (hash of the source inputs), ``source_files`` (the label/metadata files it was built from,
absolute: the output policy never writes over them), ``warnings`` (list of strings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlab.errors import CxrlabError
from cxrlab.utils import atomic_write_text, read_json, recorded_path, sha256_bytes, write_json

TASKS = ("multilabel", "multiclass")
REQUIRED_COLUMNS = ("image_id", "path", "patient_id")
METADATA_COLUMNS = ("view", "age", "sex", "follow_up", "source", "weight")


@dataclass
class Index:
    """An indexed dataset: a table of images plus what the table means."""

    frame: pd.DataFrame
    task: str
    classes: list[str]
    root: Path
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None  # where index.csv lives, when loaded from disk

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise CxrlabError(f"index task {self.task!r} is not one of {', '.join(TASKS)}")
        missing = [c for c in (*REQUIRED_COLUMNS, *self.classes) if c not in self.frame.columns]
        if missing:
            where = f" in {self.path}" if self.path else ""
            raise CxrlabError(f"index{where} lacks column(s) {', '.join(missing)}; rebuild it with `cxrlab data index`")
        self.root = Path(self.root)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def image_ids(self) -> list[str]:
        return self.frame["image_id"].tolist()

    def labels(self) -> np.ndarray:
        """(N, C) float32: 1/0 per class, NaN where unknown (multi-label)."""
        return self.frame[self.classes].to_numpy(dtype=np.float32, na_value=np.nan)

    def class_indices(self) -> np.ndarray:
        """(N,) int64 class index per row (multi-class only)."""
        if self.task != "multiclass":
            raise CxrlabError("class_indices() is for multi-class indexes; this one is multi-label")
        return np.nanargmax(self.labels(), axis=1).astype(np.int64)

    def absolute_paths(self) -> list[Path]:
        return [p if p.is_absolute() else self.root / p for p in map(Path, self.frame["path"])]

    def weights(self) -> np.ndarray:
        """(N,) per-row sample weight (pseudo-labels carry < 1); 1.0 when the column is absent."""
        if "weight" not in self.frame.columns:
            return np.ones(len(self.frame), dtype=np.float32)
        return self.frame["weight"].fillna(1.0).to_numpy(dtype=np.float32)

    @property
    def sha256(self) -> str:
        return self.meta.get("index_sha256") or sha256_bytes(_to_csv(self.frame).encode())

    @property
    def boxes_path(self) -> Path | None:
        if not self.meta.get("boxes") or self.path is None:
            return None
        return self.path.parent / self.meta["boxes"]

    def subset(self, image_ids: list[str] | pd.Index) -> Index:
        """The rows for ``image_ids``, in that order."""
        frame = self.frame.set_index("image_id", drop=False).loc[list(image_ids)].reset_index(drop=True)
        return Index(frame, self.task, list(self.classes), self.root, dict(self.meta), self.path)


def _to_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, lineterminator="\n")


def write_index(index: Index, out_dir: str | Path, **extra_meta: Any) -> Path:
    """Write ``index.csv`` and ``index.json`` into ``out_dir``; returns the CSV path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = index.frame.copy()
    for c in index.classes:  # integers where known, empty where unknown
        frame[c] = frame[c].astype("Int64")
    text = _to_csv(frame)
    csv_path = out_dir / "index.csv"
    atomic_write_text(csv_path, text)
    meta = {
        **index.meta,
        **extra_meta,
        "task": index.task,
        "classes": list(index.classes),
        "root": str(Path(index.root).resolve()),
        "n_images": len(frame),
        "index_sha256": sha256_bytes(text.encode()),
    }
    write_json(out_dir / "index.json", meta)
    index.meta, index.path = meta, csv_path
    return csv_path


def load_index(path: str | Path) -> Index:
    """Load an index from its folder or its ``index.csv`` (``index.json`` must sit beside it)."""
    path = Path(path)
    csv_path = path / "index.csv" if path.is_dir() else path
    json_path = csv_path.with_suffix(".json")
    if not csv_path.exists():
        raise CxrlabError(f"{csv_path} does not exist; build an index with `cxrlab data index ROOT --out DIR`")
    not_index = (f"{csv_path} is not a cxrlab index; build one with `cxrlab data index ROOT --out DIR` and pass DIR "
                 "or DIR/index.csv")
    if not json_path.exists():
        if csv_path.name != "index.csv":
            raise CxrlabError(not_index + f" (no {json_path.name} beside it)")
        raise CxrlabError(f"{json_path} is missing beside {csv_path.name}; rebuild it with `cxrlab data index`")
    try:
        meta = read_json(json_path)
    except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
        raise CxrlabError(f"{json_path} is not valid JSON ({exc}); rebuild the index with `cxrlab data index`") from exc
    if not isinstance(meta, dict) or "task" not in meta or "classes" not in meta or "root" not in meta:
        # e.g. a split.csv (whose split.json sits beside it) passed where the index goes
        raise CxrlabError(not_index + f" ({json_path.name} has no task/classes/root)")
    frame = pd.read_csv(csv_path, dtype={"image_id": str, "path": str, "patient_id": str}, keep_default_na=True)
    _check_recorded_hash(csv_path, meta)
    root = recorded_path(meta["root"], csv_path.parent)  # a relative root is relative to the index, not the cwd
    return Index(frame, meta["task"], list(meta["classes"]), root, meta, csv_path)


def _check_recorded_hash(csv_path: Path, meta: dict[str, Any]) -> None:
    """An index.csv edited after ``cxrlab data index`` wrote it is used as it is now, never under its old hash
    (caches and runs compare that hash): say so once, and carry the true hash."""
    import warnings

    from cxrlab.utils import sha256_file

    recorded, actual = meta.get("index_sha256"), sha256_file(csv_path)
    if recorded and recorded != actual:
        warnings.warn(f"{csv_path} changed after `cxrlab data index` wrote it (sha256 {actual[:12]}..., "
                      f"{csv_path.with_suffix('.json').name} records {recorded[:12]}...); using it as it is now: "
                      "caches and splits made from the old file are checked against the new one", UserWarning,
                      stacklevel=3)
        meta["index_sha256_recorded"], meta["index_sha256"] = recorded, actual
