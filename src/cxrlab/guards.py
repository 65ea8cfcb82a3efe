"""The test-split guard: does a set of predictions or images overlap a test set, by what the data *is*?

Anything fitted from data (thresholds, temperatures, ensemble weights, stacking models, selective thresholds,
pseudo-labels) must be fitted on data that is not the test set, or the reported test numbers are optimistic.
Names and sidecars are not enough: a copy of ``test.csv`` without its sidecar, or a renamed copy of a test
image, looks like anything else. So ``find_overlap`` compares image ids *and* file content hashes (the index
records a sha256 per image; image files are hashed directly), and ``check_not_test`` is the one decision every
fitting verb calls. ``allow=True`` (``--allow-test-fitting``) lets it through, loudly, and returns a record
the verb writes into its output.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrlab.errors import CxrlabError


@dataclass(frozen=True)
class TestSet:
    """Test images: their ids and their files' sha256 (empty when unknown), and where they come from."""

    image_ids: frozenset[str]
    hashes: frozenset[str] = frozenset()
    source: str = "the test set"


@dataclass
class Overlap:
    """Which candidate images are test images, by id and by content."""

    by_id: list[str] = field(default_factory=list)
    by_hash: list[str] = field(default_factory=list)
    marked: str | None = None  # a sidecar or the path itself says "test"

    def __bool__(self) -> bool:
        return bool(self.by_id or self.by_hash or self.marked)

    def reason(self, test: TestSet | None) -> str:
        src = test.source if test is not None else "the test set"
        if self.marked:
            return self.marked
        if self.by_id:
            return f"{len(self.by_id)} of its images are in {src} (e.g. {self.by_id[0]!r})"
        return (f"{len(self.by_hash)} of its images are byte-identical copies of images in {src} "
                f"(e.g. {self.by_hash[0]!r}, matched by sha256)")


def hashes_of(image_ids: Sequence[str], index: Any | None) -> list[str | None]:
    """sha256 of each image id from an index's ``sha256`` column (None where unknown)."""
    if index is None or "sha256" not in index.frame.columns:
        return [None] * len(image_ids)
    table = dict(zip(index.frame["image_id"].astype(str), index.frame["sha256"]))
    return [_clean(table.get(str(i))) for i in image_ids]


def _clean(value: Any) -> str | None:
    return value if isinstance(value, str) and len(value) == 64 else None


def hash_files(paths: Iterable[str | Path]) -> list[str | None]:
    """sha256 of each file (None for a file that cannot be read: the reader reports it later)."""
    from cxrlab.utils import sha256_file

    out: list[str | None] = []
    for p in paths:
        try:
            out.append(sha256_file(p))
        except OSError:
            out.append(None)
    return out


def test_set_from_split(split: Any, index: Any | None, source: str) -> TestSet:
    """The ``split == "test"`` rows of a split table, with their hashes from ``index`` when it has them."""
    ids = split.loc[split["split"].astype(str) == "test", "image_id"].astype(str).tolist()
    hashes = {h for h in hashes_of(ids, index) if h}
    return TestSet(frozenset(ids), frozenset(hashes), source)


def test_set_of_run(run_dir: str | Path | None) -> TestSet | None:
    """A run's test images (``RUN/split.csv`` + the index named in its config), or None when not a run."""
    if run_dir is None:
        return None
    run = Path(run_dir)
    split_csv = run / "split.csv"
    if not split_csv.is_file():
        return None
    import pandas as pd

    try:
        split = pd.read_csv(split_csv, dtype=str)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise CxrlabError(f"{split_csv} (the run's record of its split) is not a readable CSV "
                          f"({str(exc).splitlines()[0]}); restore it from the split the run was trained on") from None
    if "split" not in split.columns or "image_id" not in split.columns:
        return None
    return test_set_from_split(split, _run_index(run), f"the test split of run {run}")


def _run_index(run: Path) -> Any | None:
    """The run's index when its config names one that exists here (for hashes); None otherwise."""
    import yaml

    try:
        data = (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("data") or {}
        from cxrlab.data.index import load_index

        return load_index(data["index"]) if data.get("index") and Path(data["index"]).exists() else None
    except (OSError, ValueError, KeyError, AttributeError, yaml.YAMLError, CxrlabError):
        return None


def labels_index(path: str | Path | None) -> Any | None:
    """The index at ``path`` when it is one (for its per-image hashes); None for other labels files."""
    if path is None:
        return None
    try:
        from cxrlab.data.index import load_index

        return load_index(path)
    except (CxrlabError, OSError, ValueError):
        return None


def test_set_of_predictions(preds: Any, index: Any | None = None, source: str | None = None) -> TestSet:
    """The images of a test predictions file (what is being evaluated), with hashes from ``index``."""
    ids = [str(i) for i in preds.image_ids]
    hashes = {h for h in hashes_of(ids, index) if h}
    return TestSet(frozenset(ids), frozenset(hashes), source or f"the test predictions {preds.path}")


def find_overlap(image_ids: Sequence[str], tests: Iterable[TestSet | None],
                 hashes: Sequence[str | None] | None = None) -> tuple[Overlap, TestSet | None]:
    """The candidate images (ids, and their content hashes when known) that are in any of ``tests``."""
    hashes = hashes if hashes is not None else [None] * len(image_ids)
    for test in tests:
        if test is None:
            continue
        by_id = [i for i in image_ids if i in test.image_ids]
        by_hash = [i for i, h in zip(image_ids, hashes) if h and h in test.hashes and i not in test.image_ids]
        if by_id or by_hash:
            return Overlap(by_id, by_hash), test
    return Overlap(), None


def check_not_test(
    name: str | Path, image_ids: Sequence[str], *, tests: Iterable[TestSet | None], what: str, allow: bool,
    hashes: Sequence[str | None] | None = None, marked_split: str | None = None, same_file: bool = False,
    how: str = "validation predictions", escape: bool = True,
) -> dict[str, Any] | None:
    """Refuse fitting ``what`` on ``name`` when it is test data; the one decision every fitting verb makes.

    Args:
        name: the file or pool being fitted on (for the message).
        image_ids: its image ids; ``hashes``: their content sha256 where known.
        tests: the test sets to compare with (a run's split, the test predictions being evaluated, ...).
        marked_split: the ``split`` its sidecar records; ``same_file``: it is the test file itself.
        allow: ``--allow-test-fitting``: go ahead, loudly; ``escape``: the verb offers that option at all.

    Returns:
        None when the data is not test data; with ``allow``, a record ``{"fitted_on_test": True, "reason": ...}``
        for the verb to write into its output.
    """
    tests = list(tests)
    overlap, test = find_overlap(list(image_ids), tests, hashes)
    if same_file:
        overlap.marked = "it is the test file itself"
    elif marked_split == "test":
        overlap.marked = "its sidecar marks it split=test"
    if not overlap:
        return None
    reason = overlap.reason(test)
    if not allow:
        tail = (", or pass --allow-test-fitting to override (the reported test results are then biased)" if escape
                else "")
        raise CxrlabError(f"refusing to fit {what} on {name}: {reason}; fit on {how} instead{tail}")
    print(f"WARNING: fitting {what} on TEST data ({name}: {reason}); --allow-test-fitting was given, so the "
          "reported test results are optimistically biased (recorded in the output)", file=sys.stderr)
    return {"fitted_on_test": True, "what": what, "data": str(name), "reason": reason}
