"""The one output policy of every verb: an ``--out`` never clobbers an input or someone else's folder.

Rules (each a one-line ``CxrlabError`` naming both paths and the fix):

1. ``--out`` must have the extension the verb writes (``predict --out p.json`` would write its sidecar over
   the predictions: refused, the verb writes ``.csv`` + ``.json``).
2. An ``--out`` file, or the ``.json`` sidecar written beside it, must not be an input of the command, an
   input's sidecar, or one of the artifacts inside an input folder (a run's checkpoints, config, split and
   predictions; an index's ``index.csv``/``index.json``; a cache's ``meta.json``/``images.u8``), nor a file an
   input index was built from (its labels CSV and metadata, recorded in ``index.json``). Paths are compared
   resolved, and with ``os.path.samefile`` so a link or a second name of the same file is caught.
3. An ``--out`` file whose existing sidecar belongs to another kind of artifact (an index, split, cache or
   checkpoint sidecar) is refused unless ``--force``.
4. An ``--out`` folder must not hold an input (``--out .`` beside the data) and must be new, empty, or made
   by the same verb: a small marker file ``.cxrlab-output.json`` names the verb that made it. A non-empty
   folder made by anything else is refused unless ``--force`` (which writes into it, replacing files of the
   same names; nothing else is deleted). The marker is written first (atomically, before the verb writes
   anything), so a folder left by ``kill -9`` or a pre-empted job is still recognised as the verb's and a rerun
   continues there. Folders made before the marker existed are recognised by the files their verb always
   writes (``metrics.json`` for ``evaluate``, ``index.json`` for ``data index``, ...); the marker always wins.

5. Inside an input folder (a run, an index, a cache, a dataset or image folder) an output may be a *new* path,
   as ``evaluate RUN --out RUN/eval`` or ``data index DATA --out DATA/index`` are (rule 2 refuses what exists
   there); nothing else is ever added to an input folder. A verb writes only at its ``--out``: the file, the
   files beside it sharing its stem (its sidecars), or inside the folder (``is_output_path``, which the
   hostile-input suite applies to every file a command adds under its inputs).

Writes themselves go through ``cxrlab.utils.atomic_write_*`` (temporary file + rename), so a kill or a full
disk never leaves a half-written artifact.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from cxrlab import rundir
from cxrlab.errors import CxrlabError
from cxrlab.locks import LOCK_NAME

MARKER = ".cxrlab-output.json"

# Files that, inside an input folder of a given kind, are that input's own artifacts (never an output target).
PROTECTED: dict[str, tuple[str, ...]] = {
    "run": (rundir.CONFIG, rundir.SPLIT, rundir.MANIFEST, rundir.METRICS, rundir.INPUTS, "predictions/val.csv",
            "predictions/val.json", "predictions/test.csv", "predictions/test.json", "checkpoints/best.safetensors",
            "checkpoints/best.json", "checkpoints/last.safetensors", "checkpoints/last.json",
            "checkpoints/swa.safetensors", "checkpoints/swa.json", "checkpoints/last_state.pt"),
    "index": ("index.csv", "index.json", "boxes.csv", "validation.md", "validation.json"),
    "cache": ("meta.json", "images.u8", "done.u8"),
    "dataset": ("labels.csv", "phantom.json", "BBox_List_2017.csv"),
}


def _folder_kinds(folder: Path) -> list[str]:
    """What an input folder is (a run, an index, a cache, a dataset), from the files that make it one."""
    marks = {"run": (rundir.CHECKPOINTS, rundir.CONFIG), "index": ("index.json",), "cache": ("meta.json",),
             "dataset": ("labels.csv", "phantom.json")}
    return [kind for kind, names in marks.items() if any((folder / n).exists() for n in names)]


# Files only a given verb writes: recognise its folders made before the marker existed. Order matters: the
# first match wins, so a verb whose folder holds another verb's files (the demo holds a study) comes first.
SIGNATURES: dict[str, tuple[str, ...]] = {
    "data phantom": ("phantom.json",),
    "data index": ("index.json",),
    "data cache": ("meta.json",),
    "train": ("checkpoints", "config.yaml"),
    "evaluate": ("metrics.json",),
    "compare": ("comparison.json",),
    "selective": ("selective.json",),
    "explain": ("localization.json", "gallery.html", "peaks.json"),
    "select": ("select.json", "select_settings.json"),  # before "cv": a select folder also holds fold0/
    "cv": ("cv.json", "fold0"),
    "pseudo": ("pseudo.json",),
    "demo": ("demo_study.yaml", "comparison"),  # before "study run": a demo folder also holds a study
    "study run": ("plan.json", "study.json", "study.yaml"),
    "data report": ("data_report.json",),
}


def _same(a: Path, b: Path) -> bool:
    """The same file or folder: equal resolved paths, or one file under two names (links)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _inside(child: Path, parent: Path) -> bool:
    return child.resolve().is_relative_to(parent.resolve())


def expand_inputs(inputs: Iterable[str | Path | None]) -> list[Path]:
    """Every path an output must not overwrite: each input, its ``.json`` sidecar, and for a folder the
    artifacts that make it what it is (``PROTECTED``: a run's checkpoints, an index's index.csv, ...)."""
    out: list[Path] = []
    for item in inputs:
        if item is None:
            continue
        p = Path(item)
        out.append(p)
        if p.is_dir():
            out += [p / name for kind in _folder_kinds(p) for name in PROTECTED[kind] if (p / name).exists()]
            out += index_sources(p / "index.json")
        elif p.suffix.lower() != ".json":
            out.append(p.with_suffix(".json"))
            out += index_sources(p.with_suffix(".json"))
    return out


def index_sources(index_json: Path) -> list[Path]:
    """The files an index was built from (its labels CSV, metadata, boxes; ``index.json`` ``source_files``), and
    for an index from before that record, the dataset files under its ``root``: an output never replaces them."""
    if not index_json.is_file() or artifact_kind(index_json) != "index":
        return []
    from cxrlab.utils import recorded_path

    meta = json.loads(index_json.read_text(encoding="utf-8"))
    files = [recorded_path(f, index_json.parent) for f in meta.get("source_files") or [] if isinstance(f, str)]
    root = recorded_path(str(meta.get("root")), index_json.parent)
    return files + [root / name for name in PROTECTED["dataset"] if (root / name).exists()]


def is_output_path(path: str | Path, out: str | Path) -> bool:
    """Whether ``path`` is one of the files a verb with ``--out out`` may write (rule 5): ``out`` itself, a file
    in ``out``'s folder named with ``out``'s stem and another suffix (``p.json`` beside ``p.csv``; ``model.json``
    and ``model.ood.safetensors`` beside ``model.onnx``), or anything inside the ``out`` folder."""
    path, out = Path(path).absolute(), Path(out).absolute()
    beside = path.parent == out.parent and path.name.startswith(out.stem + ".") and out.suffix != ""
    return path == out or path.is_relative_to(out) or beside


def _named(hit: Path, inputs: Iterable[str | Path | None]) -> str:
    """How a clash names the input it hit: an index's source file says which index it built."""
    for item in inputs:
        if item is not None:
            p = Path(item)
            if any(_same(hit, f) for f in index_sources(p / "index.json" if p.is_dir() else p.with_suffix(".json"))):
                return f"{hit}, a file the input index {item} was built from"
    return f"the input {hit} of this command"


def _clash(target: Path, inputs: list[Path]) -> Path | None:
    for i in inputs:
        if _same(target, i) or (target.exists() and target.is_dir() and i.exists() and _inside(i, target)):
            return i
    return None


def artifact_kind(json_path: Path) -> str | None:
    """What a ``.json`` sidecar describes: index, cache, checkpoint, split, predictions, export contract (None:
    unknown or unreadable)."""
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict):
        return None
    if str(meta.get("schema", "")).startswith("cxrlab.deploy/"):
        return "export contract"
    if "weights_sha256" in meta:
        return "checkpoint"
    if "image_ids" in meta and "size" in meta:
        return "cache"
    if "root" in meta and "task" in meta:
        return "index"
    if "fractions" in meta or ("audit" in meta and "method" in meta):
        return "split"
    if "verb" in meta and json_path.name == MARKER:
        return "marker"
    return "predictions" if "classes" in meta else None


def check_out_file(
    out: str | Path, *, verb: str, inputs: Iterable[str | Path | None] = (), suffix: str | tuple[str, ...] = ".csv",
    sidecar: str | None = "predictions", force: bool = False, option: str = "--out",
) -> Path:
    """Check a file ``--out`` (and the ``.json`` sidecar written beside it when ``sidecar`` names its kind).

    Returns the path; raises ``CxrlabError`` when the output would break a rule of this module's docstring.
    """
    out = Path(out)
    suffixes = (suffix,) if isinstance(suffix, str) else tuple(suffix)
    if out.suffix.lower() not in suffixes:
        also = " (its .json sidecar is written beside it)" if sidecar else ""
        raise CxrlabError(f"{option} {out}: `cxrlab {verb}` writes a {' or '.join(suffixes)} file{also}; "
                          f"give a path ending in {suffixes[0]}")
    if out.is_dir():
        raise CxrlabError(f"{option} {out} is a folder; `cxrlab {verb}` writes a {suffixes[0]} file: give a file path")
    inputs = list(inputs)
    expanded = expand_inputs(inputs)
    targets = [out] + ([out.with_suffix(".json")] if sidecar else [])
    for t in targets:
        hit = _clash(t, expanded)
        if hit is not None:
            what = "is" if t == out else f"would write {t.name}, which is"
            raise CxrlabError(f"{option} {out} {what} {_named(hit, inputs)}; write the output elsewhere")
    side = out.with_suffix(".json")
    if sidecar and side.is_file() and not force:
        kind = artifact_kind(side)
        if kind not in (None, sidecar):
            raise CxrlabError(f"{option} {out}: {side} beside it is {_a(kind)} sidecar, not {_a(sidecar)} file; "
                              "choose another path (or pass --force to replace both)")
    return out


def _a(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def folder_maker(folder: Path) -> str | None:
    """The verb that made ``folder``: from its marker, else from the files its verb always writes."""
    marker = folder / MARKER
    if marker.is_file():
        try:
            verb = json.loads(marker.read_text(encoding="utf-8")).get("verb")
        except (OSError, ValueError, AttributeError):
            verb = None
        if isinstance(verb, str):
            return verb
    for verb, names in SIGNATURES.items():
        if any((folder / n).exists() for n in names):
            return verb
    return None


def check_out_folder(
    out: str | Path, *, verb: str, inputs: Iterable[str | Path | None] = (), force: bool = False
) -> Path:
    """Check a folder ``--out`` without creating it; see the module docstring for the rules."""
    out, inputs = Path(out), list(inputs)
    if out.exists() and not out.is_dir():
        raise CxrlabError(f"--out {out} is a file; `cxrlab {verb}` writes a folder: give a new or empty folder")
    for i in expand_inputs(inputs):
        if _same(out, i) or (i.exists() and _inside(i, out)):
            raise CxrlabError(f"--out {out} holds {_named(i, inputs)}; write the outputs to another folder")
    if out.is_dir() and any(p.name not in (MARKER, LOCK_NAME) for p in out.iterdir()) and not force:
        maker = folder_maker(out)
        if maker != verb:
            by = f"made by `cxrlab {maker}`" if maker else "not made by cxrlab"
            raise CxrlabError(f"--out {out} is a non-empty folder {by}; `cxrlab {verb}` writes into a new or "
                              "empty folder or one it made: choose another --out (or pass --force to write into it)")
    return out


def mark_folder(out: str | Path, verb: str) -> None:
    """Record that ``verb`` made ``out``: a marker, unless the verb's own signature files already say so."""
    from cxrlab import __version__
    from cxrlab.utils import write_json

    out = Path(out)
    if out.is_dir() and folder_maker(out) != verb:  # its own signature files already say who made it
        write_json(out / MARKER, {"verb": verb, "cxrlab_version": __version__,
                                  "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})


def check_same_settings(record: str | Path, settings: dict, *, verb: str, force: bool = False) -> None:
    """Refuse to write into a folder that ``verb`` made with other ``settings`` (recorded in the JSON file
    ``record``): a rerun with other settings would overwrite part of the old output and keep the rest."""
    record = Path(record)
    if force or not record.is_file():
        return
    try:
        old = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    differ = [k for k in settings if isinstance(old, dict) and k in old and old[k] != settings[k]]
    if differ:
        k = differ[0]
        raise CxrlabError(f"--out {record.parent} was made by `cxrlab {verb}` with other settings ({k} "
                          f"{old[k]!r} there, {settings[k]!r} now); writing there would mix the two: choose a new "
                          "--out (or pass --force)")


def require_inputs(paths: Iterable[str | Path | None], *, verb: str) -> None:
    """Refuse a missing input before anything is written, for a verb whose library writes a file into its
    ``--out`` before it reads its inputs (``output_folder`` removes only a folder holding nothing but its marker)."""
    for p in paths:
        if p is not None and not Path(p).exists():
            raise CxrlabError(f"{p} does not exist (an input of `cxrlab {verb}`); check the path")


@contextmanager
def output_folder(
    out: str | Path, *, verb: str, inputs: Iterable[str | Path | None] = (), force: bool = False, create: bool = True
) -> Iterator[Path]:
    """Check ``out`` before the verb runs and mark it as the verb's *first* (``create``: making the folder), so
    a ``kill -9`` or a pre-empted job leaves a folder the same verb recognises and may continue; a folder
    written into with ``--force`` is marked afterwards (also after a failure that left files in it). A verb that
    fails before writing anything (a missing or unreadable input) leaves no trace: the marker this call wrote and
    the folders it created are removed, so the error is the only outcome::

        with output_folder(args.out, verb="evaluate", inputs=[args.predictions, args.labels], force=args.force):
            evaluate_predictions(...)
    """
    path = check_out_folder(out, verb=verb, inputs=inputs, force=force)
    marked = create and not _foreign(path, verb) and not (path / MARKER).exists()
    made = _first_missing(path)
    if create and not _foreign(path, verb):
        path.mkdir(parents=True, exist_ok=True)
        mark_folder(path, verb)
    try:
        yield path
    except BaseException:
        if marked:  # failed before writing anything (a missing or bad input): leave no folder holding only a marker
            _unmark(path, made)
        raise
    finally:
        if path.is_dir() and any(path.iterdir()):
            mark_folder(path, verb)


def _first_missing(path: Path) -> Path | None:
    """The topmost folder of ``path`` that does not exist yet (what ``mkdir(parents=True)`` creates), or None."""
    if path.exists():
        return None
    while not path.parent.exists() and path.parent != path:
        path = path.parent
    return path


def _unmark(path: Path, made: Path | None) -> None:
    """Undo ``output_folder``'s marking when the verb wrote no file: remove the marker, and when this call created
    the folder, the empty folders the verb made in it and the folders created for it (and its lock file, unless
    a live process holds it: then that process is using the folder, which stays)."""
    if not path.is_dir() or any(p.is_file() or p.is_symlink() for p in path.rglob("*")
                                if p.parent != path or p.name not in (MARKER, LOCK_NAME)):
        return  # the verb wrote a file: the folder is its output (resumable), kept
    (path / MARKER).unlink(missing_ok=True)
    if made is None or ((path / LOCK_NAME).exists() and not _remove_free_lock(path / LOCK_NAME)):
        return
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with suppress(OSError):
            sub.rmdir()  # empty folders the verb made before failing (a run's checkpoints/, predictions/)
    folder = path
    while folder.is_relative_to(made):
        try:
            folder.rmdir()
        except OSError:  # someone else wrote there meanwhile: keep it
            return
        folder = folder.parent


def _remove_free_lock(lock: Path) -> bool:
    """Delete ``lock`` if no process holds it (checked by taking it); False when it is held."""
    import fcntl

    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    lock.unlink(missing_ok=True)
    os.close(fd)
    return True


def _foreign(path: Path, verb: str) -> bool:
    """A non-empty folder that is not the verb's (written into with --force): its marker is replaced only
    once the verb has written there."""
    return path.is_dir() and any(p.name not in (MARKER, LOCK_NAME) for p in path.iterdir()) \
        and folder_maker(path) != verb
