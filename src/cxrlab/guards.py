"""The test-split guard: does a set of predictions or images overlap a test set, by what the data *is*?

Anything fitted from data (thresholds, temperatures, ensemble weights, stacking models, selective thresholds,
pseudo-labels) must be fitted on data that is not the test set, or the reported test numbers are optimistic.
Names and sidecars are not enough: a copy of ``test.csv`` without its sidecar, or a renamed copy of a test
image indexed as a new dataset, looks like anything else. So the guard compares image ids *and* file content
hashes, read from every index it can reach (``Reach``: the ``--labels`` index, the index each predictions
sidecar records, the index each run's config names) against every test set it can reach (the test predictions,
the test split of every run named). ``check_fitting`` is the one decision every fitting verb calls: a match is
refused (``allow``: ``--allow-test-fitting`` lets it through, loudly); a check that cannot be completed (an
index without hashes, a recorded path that cannot be read, images with no known hash) is refused too, unless
``allow_unverified`` (``--allow-unverified``). Either escape returns a record the verb writes into its output.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cxrlab.errors import CxrlabError
from cxrlab.rundir import CONFIG, RunDir


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
    import pandas as pd

    table = pd.Series(index.frame["sha256"].to_numpy(dtype=object), index=index.frame["image_id"].astype(str))
    table = table[~table.index.duplicated(keep="last")]  # a repeated id: the last row, as a dict would keep
    return [_clean(h) for h in table.reindex([str(i) for i in image_ids]).to_numpy(dtype=object)]


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


def labels_index(path: str | Path | None) -> Any | None:
    """The index at ``path`` when it is one (for its per-image hashes); None for other labels files."""
    if path is None:
        return None
    try:
        from cxrlab.data.index import load_index

        return load_index(path)
    except (CxrlabError, OSError, ValueError):
        return None


def test_set_from_split(split: Any, index: Any | None, source: str) -> TestSet:
    """The ``split == "test"`` rows of a split table, with their hashes from ``index`` when it has them."""
    ids = split.loc[split["split"].astype(str) == "test", "image_id"].astype(str).tolist()
    hashes = {h for h in hashes_of(ids, index) if h}
    return TestSet(frozenset(ids), frozenset(hashes), source)


class Reach:
    """Everything the guard can reach from the inputs of one fitting verb: indexes (for per-image sha256), the
    test sets (test predictions, the test splits of the runs they name), and what it could not check.

    Paths recorded in artifacts (a sidecar's ``index`` and ``run_dir``, a run config's ``data.index``) are
    resolved relative to the artifact (``utils.recorded_path``), never the current directory."""

    def __init__(self) -> None:
        self.indexes: list[Any] = []
        self.tests: list[TestSet] = []
        self.problems: list[str] = []
        self._seen: set[str] = set()

    def add_index(self, index: Any | None, what: str) -> None:
        """An index the guard reads hashes from; one without hashes (``--no-hash``) is a problem."""
        if index is None or self._once(f"index:{index.path}"):
            return
        self.indexes.append(index)
        if not any(hashes_of(index.image_ids, index)):
            self.problems.append(f"{what} {index.path} records no file hashes (built with --no-hash), so renamed "
                                 "copies of test images cannot be told apart: rebuild it without --no-hash")

    def add_labels(self, labels: Any | None) -> None:
        """The ``--labels`` of the verb: an index (object or path) gives hashes; a plain labels CSV gives none."""
        if labels is None:
            return
        if not hasattr(labels, "frame"):
            labels = labels_index(labels)
        if labels is not None and labels.meta.get("index_sha256"):  # a cxrlab index, not a labels CSV read as one
            self.add_index(labels, "the labels index")
        elif labels is not None and "sha256" in labels.frame.columns:
            self.indexes.append(labels)

    def add_recorded_index(self, value: str | Path, base: Path, what: str) -> Any | None:
        """The index a file records (resolved relative to it); unreadable is a problem, never a silent skip."""
        from cxrlab.data.index import load_index
        from cxrlab.utils import recorded_path

        path = recorded_path(value, base)
        try:
            index = load_index(path)
        except (CxrlabError, OSError, ValueError) as exc:
            if not self._once(f"bad:{path}"):
                self.problems.append(f"{what} {path} cannot be read ({str(exc).splitlines()[0][:160]})")
            return None
        self.add_index(index, what)
        return index

    def add_predictions(self, preds: Any, what: str | None = None) -> None:
        """A predictions file's recorded index and run (from its sidecar): read for hashes and test splits;
        with ``what``, its own images are a test set too."""
        base = Path(preds.path).parent if preds.path is not None else Path(".")
        if preds.meta.get("index"):
            self.add_recorded_index(preds.meta["index"], base, f"the index recorded in {preds.path}'s sidecar,")
        if preds.meta.get("run_dir"):
            self.add_run(preds.meta["run_dir"], base, f"{preds.path}'s sidecar")
        if what is not None:
            ids = [str(i) for i in preds.image_ids]
            self.tests.append(TestSet(frozenset(ids), frozenset(h for h in self.hashes(ids) if h), what))

    def add_run(self, run_dir: str | Path, base: Path = Path("."), named_by: str = "the inputs") -> None:
        """A run's test split (``RUN/split.csv``) with hashes from the index its config names."""
        from cxrlab.utils import recorded_path

        run = recorded_path(run_dir, base)
        if self._once(f"run:{run.resolve()}"):
            return
        rundir = RunDir(run)
        if not rundir.split_path.is_file() and not rundir.config_path.is_file():
            return  # a folder of predictions (another tool's "run"), not a training run: no split to check
        if not rundir.split_path.is_file():
            self.problems.append(f"the run {run} named by {named_by} has no split.csv here, so its test split "
                                 "cannot be checked")
            return
        split = rundir.split()  # damaged: the one run-file error
        from cxrlab.provenance import check_run_files

        check_run_files(run)  # a changed byte in RUN/split.csv could move test images out of the test split
        index = self._run_index(run)
        self.tests.append(test_set_from_split(split, index, f"the test split of run {run}"))

    def _run_index(self, run: Path) -> Any | None:
        rundir = RunDir(run)
        index = rundir.data_path("index") if rundir.config_path.is_file() else None  # garbled: the one error
        if index is None:
            self.problems.append(f"{rundir.config_path} names no data.index here, so the hashes of the run's test "
                                 "images are unknown")
            return None
        return self.add_recorded_index(str(index), run, f"the index of run {run} ({CONFIG}: data.index),")

    def hashes(self, image_ids: Sequence[str]) -> list[str | None]:
        """sha256 of each image id from the first reached index that records it (None where none does)."""
        out: list[str | None] = [None] * len(image_ids)
        for index in self.indexes:
            for k, h in enumerate(hashes_of(image_ids, index)):
                out[k] = out[k] or h
        return out

    def _once(self, key: str) -> bool:
        seen = key in self._seen
        self._seen.add(key)
        return seen


def check_fitting(name: str | Path, image_ids: Sequence[str], reach: Reach, *, what: str, allow: bool,
                  allow_unverified: bool, hashes: Sequence[str | None] | None = None, require_hashes: bool = True,
                  **kwargs: Any) -> dict[str, Any] | None:
    """``check_not_test`` against everything ``reach`` holds, then refuse what could not be verified.

    ``hashes`` default to the candidate ids' hashes in the reached indexes. Images without a known hash, an
    index without hashes or an unreadable recorded path make the check incomplete: a one-line refusal unless
    ``allow_unverified`` (``--allow-unverified``), which is loud and returns ``{"unverified": True, ...}`` for the
    output's JSON. Keyword arguments go to ``check_not_test``."""
    ids = [str(i) for i in image_ids]
    hashes = list(hashes) if hashes is not None else reach.hashes(ids)  # (files hashed directly: require_hashes=False)
    record = check_not_test(name, ids, tests=reach.tests, what=what, allow=allow, hashes=hashes, **kwargs)
    if record is not None:
        return record
    problems = list(reach.problems)
    unknown = [i for i, h in zip(ids, hashes) if not h] if require_hashes else []
    if unknown:
        problems.append(f"{len(unknown)} of its images have no sha256 in any index the guard can reach (the labels "
                        f"index, its sidecar's index, the run's index; e.g. {unknown[0]!r})")
    if not problems:
        return None
    reason = problems[0] + (f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else "")
    if not allow_unverified:
        raise CxrlabError(f"cannot verify that {name} holds no test images before fitting {what}: {reason}; fix that, "
                          "or pass --allow-unverified to go ahead (recorded in the output)")
    print(f"WARNING: fitting {what} on {name} without a complete test-set check ({reason}); --allow-unverified "
          "was given (recorded in the output)", file=sys.stderr)
    return {"unverified": True, "what": what, "data": str(name), "reason": reason}


def record_fields(record: dict[str, Any] | None) -> dict[str, Any]:
    """The output-JSON fields of a guard record: ``fitted_on_test`` and ``unverified`` (each None or the record)."""
    record = record or {}
    return {"fitted_on_test": record if record.get("fitted_on_test") else None,
            "unverified": record if record.get("unverified") else None}


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
