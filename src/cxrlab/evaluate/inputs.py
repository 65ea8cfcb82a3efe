"""Where evaluation's inputs come from: labels files, run directories, and predictions paths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cxrlab.data.index import Index
from cxrlab.errors import CxrlabError
from cxrlab.predictions import run_predictions_path
from cxrlab.rundir import CONFIG, MANIFEST, RunDir


@dataclass
class Source:
    """One model's predictions: the test file, optionally its validation file and run directory."""

    test: Path
    val: Path | None = None
    run_dir: Path | None = None

    @property
    def name(self) -> str:
        if self.run_dir is not None:
            return self.run_dir.name
        if self.test.stem not in ("test", "predictions"):
            return self.test.stem
        folder = self.test.resolve().parent  # runs/NAME/predictions/test.csv -> NAME
        return folder.parent.name if folder.name == "predictions" else folder.name

    def manifest(self) -> dict:
        """The run's ``manifest.json`` (empty without a run directory, or for a folder of predictions)."""
        run = RunDir(self.run_dir) if self.run_dir else None
        return run.manifest() if run is not None and run.manifest_path.exists() else {}


def resolve_source(path: str | Path, val: str | Path | None = None) -> Source:
    """A predictions CSV, or a run directory (``predictions/test.csv`` + ``predictions/val.csv``)."""
    path = Path(path)
    if not path.exists():
        raise CxrlabError(f"{path} does not exist; pass a predictions CSV or a run directory")
    if path.is_dir():
        run = RunDir(path)  # a missing or garbled run file: the one error every verb gives, before any work
        run.check(need=(MANIFEST,) if run.is_training_run else ())  # scoring a run needs it finished
        test = run_predictions_path(path, "test")
        run_val = path / "predictions" / "val.csv"
        chosen = Path(val) if val else (run_val if run_val.exists() else None)
        return Source(test, chosen, path)
    return Source(path, Path(val) if val else None, _run_dir_of(path))


def _run_dir_of(csv_path: Path) -> Path | None:
    """``runs/NAME/predictions/test.csv`` belongs to ``runs/NAME`` (its files checked)."""
    run = RunDir.of_predictions(csv_path)
    return run.check().path if run is not None else None


def load_labels(path: str | Path | None, source: Source | None = None, task: str | None = None) -> Index:
    """Labels from an index (folder or index.csv), an NIH ``Data_Entry`` CSV or a labels CSV, validated once.

    Without ``path``, a run directory's config is asked for the index it was trained on. The task is never
    re-inferred against what the artifacts say: ``task`` (default: the ``task`` in the sidecar of
    ``source.test``) is how a plain labels CSV is read (a multi-label CSV where each image has at most one
    finding stays multi-label), and an index or NIH file whose own task differs is an error naming both.
    Duplicate image ids are merged when their rows agree and are an error naming the id when they conflict.
    """
    if path is None:
        path = _labels_from_run(source)
    path = Path(path)
    if not path.exists():
        raise CxrlabError(f"labels {path} do not exist; pass --labels INDEX_DIR, index.csv or Data_Entry CSV")
    from cxrlab.data.build_index import read_labels

    task = task or (sidecar_task(source.test) if source is not None else None)
    index = read_labels(path, task=task)  # a plain labels CSV is read as that task, never re-inferred
    if task is not None and index.task != task:
        raise CxrlabError(f"labels {path} are {index.task} but the predictions' sidecar says {task}; score "
                          "predictions against labels of the same task (or fix the sidecar's task)")
    return unique_labels(index, path)


def refuse_duplicates(paths: list[Path], option: str) -> None:
    """Refuse the same predictions given twice, found by content (sha256), not by name: a copy of one file
    compared with itself would make a copy "best" or an "internal" test set equal the external one."""
    from cxrlab.utils import sha256_file

    seen: dict[str, Path] = {}
    for path in paths:
        digest = sha256_file(path)
        if digest in seen:
            raise CxrlabError(f"{option}: {path} has the same content as {seen[digest]} (sha256 {digest[:12]}...); "
                              "give each predictions file once")
        seen[digest] = path


def sidecar_task(predictions: str | Path | None) -> str | None:
    """The ``task`` a predictions file's sidecar records (None without a sidecar or task)."""
    if predictions is None or not Path(predictions).is_file():
        return None
    from cxrlab.predictions import read_predictions_meta

    return read_predictions_meta(predictions).get("task")


def unique_labels(index: Index, path: str | Path) -> Index:
    """One row per image id: identical repeats are merged; conflicting ones are an error naming the id."""
    frame = index.frame
    dup = frame["image_id"].duplicated(keep=False)
    if not dup.any():
        return index
    cols = ["image_id", *index.classes]
    distinct = frame.loc[dup, cols].astype(str).drop_duplicates()
    clash = distinct["image_id"][distinct["image_id"].duplicated()]
    if len(clash):
        image_id = clash.iloc[0]
        n = int((frame["image_id"] == image_id).sum())
        raise CxrlabError(f"labels {path}: image {image_id!r} has {n} label rows that disagree"
                          f"{'' if len(clash) == 1 else f' ({len(clash)} such images)'}; keep one row per image")
    keep = ~frame["image_id"].duplicated()
    return Index(frame[keep].reset_index(drop=True), index.task, list(index.classes), index.root, dict(index.meta),
                 index.path)


def _labels_from_run(source: Source | None) -> Path:
    hint = "pass --labels INDEX_DIR (or an NIH Data_Entry CSV / labels CSV)"
    if source is None or source.run_dir is None:
        raise CxrlabError(f"no labels given; {hint}")
    run = RunDir(source.run_dir)
    index = run.data_path("index") if run.config_path.exists() else None  # relative to the run, never the cwd
    if index is not None and index.exists():
        return index
    raise CxrlabError(f"run {source.run_dir} does not name an index that exists here ({CONFIG}: data.index "
                      f"{str(index) if index else None!r}); {hint}")
