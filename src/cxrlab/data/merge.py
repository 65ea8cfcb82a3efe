"""Several indexes into one (``cxrlab data merge``): a ``source`` column, namespaced ids, harmonised findings.

Each member is a cxrlab multi-label index of any format. The merged index:

* has a ``source`` column (the member's name: ``NAME=IDX`` on the command line, else its format, or its
  root folder's name for the generic ``csv``/``folder`` formats);
* namespaces ``image_id``, ``patient_id`` and ``study_id`` as ``SOURCE/ID``: two datasets' patient "1" are
  different people (the member's own image id is kept in ``source_image_id``);
* harmonises findings through the shared findings table (``cxrlab.data.findings``): member classes that spell
  the same canonical finding become one column named after that finding. Approximate pairs (NIH
  ``Consolidation`` vs Google's ``Airspace opacity``) are merged only with ``approximate=True`` and are always
  listed in ``merge.json``;
* leaves a finding a source does not label **unknown** (empty, NaN), never 0: the masked losses ignore it, so
  a source's images give no gradient to findings that source never looked for;
* stores absolute image paths, so every row opens its member's file wherever the merged index lives;
* records each member's path and ``index_sha256`` in ``merge.json``; ``check_members`` (called when training
  loads a merged index) refuses members changed since the merge.

The per-source report (images, patients, prevalence, views, which findings are unknown) goes to
``merge.json`` and ``validation.md`` beside the index.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlab.data.findings import approximate_reason, canonical
from cxrlab.data.index import Index, load_index, write_index
from cxrlab.errors import CxrlabError
from cxrlab.utils import atomic_write_text, read_json, sha256_file, write_json

MERGE_JSON = "merge.json"
GENERIC_FORMATS = ("csv", "folder", None)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Member:
    """One index given to the merge and the source name its rows get."""

    name: str
    index: Index


@dataclass
class Column:
    """One merged finding column and, per source, the member class it comes from."""

    name: str
    members: dict[str, str] = field(default_factory=dict)  # source -> member class
    approximate: dict[str, str] = field(default_factory=dict)  # source -> why the approximate pair was merged


@dataclass
class SourceReport:
    """What one source brought: counts, prevalence per merged finding (None = unknown), views."""

    name: str
    index: str
    index_sha256: str
    format: str | None
    images: int
    patients: int
    labelled: list[str]
    unknown: list[str]
    prevalence: dict[str, float | None]
    views: dict[str, int]


def parse_member_args(items: list[str]) -> list[tuple[str | None, Path]]:
    """``["nih=idx/nih", "idx/chexpert"]`` -> ``[("nih", Path), (None, Path)]``."""
    out: list[tuple[str | None, Path]] = []
    for item in items:
        name, sep, path = item.partition("=")
        if sep and NAME_RE.match(name) and not Path(item).exists():
            out.append((name, Path(path)))
        else:
            out.append((None, Path(item)))
    return out


def default_name(index: Index) -> str:
    """The format for a dataset adapter (``nih``, ``chexpert`` ...); the root folder's name for csv/folder."""
    fmt = index.meta.get("format")
    name = Path(index.root).name if fmt in GENERIC_FORMATS else str(fmt)
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "source"


def load_members(items: list[tuple[str | None, Path]]) -> list[Member]:
    """Load each index and name it; duplicate or unusable names and multi-class members are one-line errors."""
    if len(items) < 2:
        raise CxrlabError("data merge needs at least two indexes (IDX IDX ... or NAME=IDX ...)")
    members = []
    for name, path in items:
        index = load_index(path)
        if index.task != "multilabel":
            raise CxrlabError(f"{path}: a {index.task} index; data merge combines multi-label indexes (findings)")
        name = name or default_name(index)
        if not NAME_RE.match(name):  # no '/': ids are namespaced as SOURCE/ID
            raise CxrlabError(f"source name {name!r} for {path}: use letters, digits and _.- (NAME=IDX)")
        members.append(Member(name, index))
    names = [m.name for m in members]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CxrlabError(f"two indexes would both be source {dup[0]!r}; name them on the command line: "
                          f"{dup[0]}_a=IDX {dup[0]}_b=IDX")
    return members


def harmonise(members: list[Member], approximate: bool = False) -> tuple[list[Column], list[dict[str, str]]]:
    """Merged columns (exact matches through the findings table) and the approximate pairs found.

    Returns ``(columns, approximate_pairs)``; each pair is ``{a, b, reason, merged}``.
    """
    columns: dict[str, Column] = {}
    for m in members:
        for c in m.index.classes:
            key = canonical(c) or c
            col = columns.setdefault(key, Column(key))
            if m.name in col.members:
                raise CxrlabError(f"source {m.name}: classes {col.members[m.name]!r} and {c!r} are the same finding "
                                  f"({key}); keep one of them in that index before merging")
            col.members[m.name] = c
    pairs = []
    names = list(columns)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if a not in columns or b not in columns:
                continue
            why = approximate_reason(a, b)
            if why is None:
                continue
            disjoint = not set(columns[a].members) & set(columns[b].members)
            merged = approximate and disjoint
            pairs.append({"a": a, "b": b, "reason": why, "merged": merged,
                          "note": "" if disjoint else "both labelled by one source: kept apart"})
            if merged:
                keep, drop = (a, b) if len(columns[a].members) >= len(columns[b].members) else (b, a)
                for src, cls in columns.pop(drop).members.items():
                    columns[keep].members[src] = cls
                    columns[keep].approximate[src] = f"{cls} ~ {keep}: {why}"
    return list(columns.values()), pairs


def _member_frame(m: Member, columns: list[Column]) -> pd.DataFrame:
    """The member's rows in merged form: namespaced ids, absolute paths, merged class columns (NaN unknown)."""
    src = m.index.frame
    paths = src["path"].astype(str)
    root = str(Path(m.index.root).resolve())  # index.json records it absolute; string joins keep 500k rows fast
    out = pd.DataFrame({"image_id": m.name + "/" + src["image_id"].astype(str),
                        "path": paths.where(paths.map(os.path.isabs), root + os.sep + paths)})
    ids = src["image_id"].astype(str)
    out["patient_id"] = m.name + "/" + src["patient_id"].astype("string").fillna(ids).astype(str)
    labels = m.index.labels()  # (N, C_member) NaN unknown
    position = {c: i for i, c in enumerate(m.index.classes)}
    for col in columns:
        cls = col.members.get(m.name)
        out[col.name] = labels[:, position[cls]] if cls is not None else np.nan
    out["source"] = m.name
    out["source_image_id"] = ids.to_numpy()
    skip = {"image_id", "path", "patient_id", "source", *m.index.classes}
    for c in src.columns:
        if c not in skip and c not in out.columns:
            out[c] = src[c].to_numpy()
    if "study_id" in out.columns:
        out["study_id"] = (m.name + "/" + out["study_id"].astype("string")).where(out["study_id"].notna())
    return out


def merge_frames(members: list[Member], columns: list[Column]) -> pd.DataFrame:
    """Rows of every member, in member order, with the merged columns."""
    frames = [_member_frame(m, columns) for m in members]
    frame = pd.concat(frames, ignore_index=True, sort=False)
    dup = frame["image_id"].duplicated()
    if dup.any():
        raise CxrlabError(f"image id {frame['image_id'][dup].iloc[0]} appears twice after namespacing; the member "
                          "index repeats an image id: rebuild it with `cxrlab data index`")
    return frame


def source_reports(members: list[Member], frame: pd.DataFrame, classes: list[str]) -> list[SourceReport]:
    """Per source: images, patients, prevalence of each merged finding it labels (None where unknown), views."""
    out = []
    for m in members:
        rows = frame[frame["source"] == m.name]
        labels = rows[classes].to_numpy(dtype=np.float64)
        known = ~np.isnan(labels)
        prevalence = {c: (float(np.nanmean(labels[:, i])) if known[:, i].any() else None)
                      for i, c in enumerate(classes)}
        views = rows["view"].fillna("missing").astype(str).value_counts().to_dict() if "view" in rows else {}
        out.append(SourceReport(
            name=m.name, index=str(m.index.path), index_sha256=m.index.sha256, format=m.index.meta.get("format"),
            images=len(rows), patients=int(rows["patient_id"].nunique()),
            labelled=[c for c in classes if prevalence[c] is not None],
            unknown=[c for c in classes if prevalence[c] is None], prevalence=prevalence,
            views={str(k): int(v) for k, v in views.items()}))
    return out


def merge_indexes(items: list[tuple[str | None, Path]], out_dir: str | Path, approximate: bool = False
                  ) -> tuple[Index, dict[str, Any]]:
    """Merge member indexes into ``out_dir`` (index.csv, index.json, merge.json, validation.md).

    Args:
        items: ``(name or None, index path)`` per member (``parse_member_args``).
        out_dir: the merged index folder.
        approximate: also merge approximate pairs of findings (listed either way).
    Returns:
        ``(merged index, merge report)``.
    """
    members = load_members(items)
    columns, pairs = harmonise(members, approximate)
    classes = [c.name for c in columns]
    frame = merge_frames(members, columns)
    reports = source_reports(members, frame, classes)
    out_dir = Path(out_dir)
    report = {
        "sources": [asdict(r) for r in reports],
        "columns": [asdict(c) for c in columns],
        "approximate_pairs": pairs,
        "approximate": approximate,
        "unknown_rule": "a finding a source does not label is unknown (empty) for that source's images, never 0",
    }
    meta = {"format": "merge", "merge": MERGE_JSON, "counts": {"indexed": len(frame),
                                                              "patients": int(frame["patient_id"].nunique())},
            "sources": [r.name for r in reports], "warnings": [], "boxes": None}
    out_dir.mkdir(parents=True, exist_ok=True)
    index = Index(frame, "multilabel", classes, out_dir.resolve(), meta)
    write_index(index, out_dir)
    write_json(out_dir / MERGE_JSON, report)
    atomic_write_text(out_dir / "validation.md", merge_markdown(report, classes))
    return index, report


def merge_markdown(report: dict[str, Any], classes: list[str]) -> str:
    """The per-source table: images, patients, views, and prevalence per finding (``unknown`` where unlabelled)."""
    sources = report["sources"]
    lines = ["# Merged index", "", report["unknown_rule"] + ".", "",
             "| source | images | patients | views | index sha256 |", "|---|---|---|---|---|"]
    for s in sources:
        views = ", ".join(f"{k} {v}" for k, v in s["views"].items()) or "-"
        lines.append(f"| {s['name']} | {s['images']} | {s['patients']} | {views} | {s['index_sha256'][:12]} |")
    lines += ["", "Prevalence per finding (`unknown`: the source does not label it):", "",
              "| finding | " + " | ".join(s["name"] for s in sources) + " |", "|---" * (len(sources) + 1) + "|"]
    for c in classes:
        cells = [f"{s['prevalence'][c]:.3f}" if s["prevalence"][c] is not None else "unknown" for s in sources]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    if report["approximate_pairs"]:
        lines += ["", "Approximate pairs (merged only with `--approximate`):", ""]
        lines += [f"- {p['a']} ~ {p['b']}: {p['reason']} ({'merged' if p['merged'] else 'kept apart'}"
                  f"{'; ' + p['note'] if p['note'] else ''})" for p in report["approximate_pairs"]]
    return "\n".join(lines) + "\n"


def check_members(index: Index) -> list[str]:
    """For a merged index, refuse a member index changed since the merge; returns notes (members not found).

    A member that moved cannot be checked: that is noted, not an error (the merged index holds its own labels
    and absolute image paths).
    """
    if index.meta.get("format") != "merge" or index.path is None:
        return []
    path = index.path.parent / index.meta.get("merge", MERGE_JSON)
    if not path.is_file():
        raise CxrlabError(f"{path} is missing beside the merged index {index.path}; re-run `cxrlab data merge`")
    notes = []
    for s in read_json(path)["sources"]:
        member = Path(s["index"])
        if not member.is_file():
            notes.append(f"member index {member} of source {s['name']} not found: not checked")
            continue
        actual = sha256_file(member)
        if actual != s["index_sha256"]:
            raise CxrlabError(f"member index {member} (source {s['name']}) changed after the merge (sha256 "
                              f"{actual[:12]}..., {path.name} records {s['index_sha256'][:12]}...); re-run "
                              f"`cxrlab data merge` into {index.path.parent} (then re-split and re-cache)")
    return notes
