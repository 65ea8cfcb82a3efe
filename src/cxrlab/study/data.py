"""The study's data: given paths, or a dataset root indexed, split, audited and cached once into DIR/data.

Shards on several machines may start together: the first takes a lock file and prepares the data, the others
wait for its ``ready.json``. Either way the split is audited (patient leakage) before anything trains.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from cxrlab.errors import CxrlabError
from cxrlab.study.spec import Study
from cxrlab.utils import read_json, write_json

DATA_KEYS = ("index", "split", "cache")
LOCK_WAIT_S = 3600


def cli_data(cli_set: list[str]) -> dict[str, str | None]:
    """``data.index/split/cache`` given on the command line (they override the study's data)."""
    import yaml

    out: dict[str, str | None] = {}
    for item in cli_set:
        key, _, text = item.partition("=")
        if key.strip() in {f"data.{k}" for k in DATA_KEYS}:
            value = yaml.safe_load(text) if text.strip() else None
            out[key.strip()[5:]] = None if value is None else str(value)
    return out


def _absolute(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


def resolve_data(study: Study, out: Path, cli_set: list[str], prepare: bool = True) -> dict[str, str | None]:
    """The index, split and cache every arm uses (absolute paths); prepares them from ``data.root`` when asked.

    Raises a one-line error when the split's audit finds leakage.
    """
    check_data_present(study, out, cli_set)
    given = cli_data(cli_set)
    d = study.data
    if "index" in given or d.root is None:
        paths = {k: given.get(k, getattr(d, k)) for k in DATA_KEYS}
        if paths["index"] is None:
            return {}  # the recipes' own data paths (they usually come with --set)
        paths = {k: _absolute(v) for k, v in paths.items()}
    elif prepare:
        paths = prepare_root(study, out / "data")
    else:
        folder = out / "data"
        paths = {"index": str(folder / "index"), "split": str(folder / "split.csv"), "cache": str(folder / "cache")}
        return {k: _absolute(v) for k, v in paths.items()}
    if prepare:
        check_audit(paths, out)
    return paths


def check_data_present(study: Study, out: Path, cli_set: list[str]) -> None:
    """Every data path the study reads exists: checked for ``--dry-run`` and before a real run writes anything
    (a missing dataset must not leave an empty study folder behind)."""
    given = cli_data(cli_set)
    d = study.data
    where = f"relative paths are read from {Path.cwd()}"
    if "index" in given or d.root is None:
        for key in DATA_KEYS:
            value = given.get(key, getattr(d, key))
            if value is not None and not Path(value).expanduser().exists():
                raise CxrlabError(f"study data.{key} {value} does not exist ({where}); make it with `cxrlab data "
                                  f"{key}` or give --set data.{key}=PATH")
    elif not (out / "data" / "ready.json").exists() and not Path(d.root).expanduser().exists():
        raise CxrlabError(f"study data.root {d.root} does not exist ({where}); give a dataset folder, or "
                          "--set data.index=... data.split=... data.cache=... for prepared data")


def prepare_root(study: Study, folder: Path) -> dict[str, str | None]:
    """Index, split (+ audit) and cache ``data.root`` into ``folder`` once; other shards wait for it."""
    ready = folder / "ready.json"
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / ".lock"
    deadline = time.time() + LOCK_WAIT_S
    while not ready.exists():
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if time.time() > deadline:
                raise CxrlabError(f"{lock} has been held for an hour; if no study is preparing data, "
                                  "delete it") from None
            time.sleep(2)
            continue
        try:
            os.write(fd, str(os.getpid()).encode())
            _prepare(study, folder)
        finally:
            os.close(fd)
            lock.unlink(missing_ok=True)
    return read_json(ready)["paths"]


def _prepare(study: Study, folder: Path) -> None:
    from cxrlab.data.build_index import build_index
    from cxrlab.data.cache import build_cache
    from cxrlab.data.splits import make_split

    d = study.data
    if not Path(d.root).exists():
        raise CxrlabError(f"study data.root {d.root} does not exist; give a dataset folder (or data.index)")
    print(f"study data: indexing {d.root} ({d.format})", flush=True)
    index, _ = build_index(d.root, d.format, folder / "index", labels=d.labels)
    _, audit = make_split(index, folder / "split.csv", val=d.val, test=d.test, seed=d.split_seed)
    _raise_on_leak(audit, folder / "split.csv")
    print(f"study data: caching {len(index)} images at {d.cache_size} px", flush=True)
    build_cache(index, folder / "cache", size=d.cache_size, progress=False)
    paths = {"index": str((folder / "index").resolve()), "split": str((folder / "split.csv").resolve()),
             "cache": str((folder / "cache").resolve())}
    write_json(folder / "ready.json", {"paths": paths, "root": str(d.root), "format": d.format})


def _raise_on_leak(result: dict, split: str | Path) -> None:
    if result["verdict"] != "ok":
        n = len(result["patient_leaks"]) or len(result["fold_leaks"])
        raise CxrlabError(f"the split {split} failed its leakage audit ({n} patients or duplicate files in several "
                          f"splits); see `cxrlab data audit`, re-split by patient with `cxrlab data split`")


def check_audit(paths: dict[str, str | None], out: Path) -> None:
    """Audit the split once per split file (patients across splits); the verdict is cached in DIR."""
    from cxrlab.data.audit import audit_index
    from cxrlab.data.index import load_index
    from cxrlab.utils import sha256_file

    split = paths.get("split")
    if not split or not Path(split).is_file():
        raise CxrlabError(f"study data: split {split} does not exist; give data.split (or --set data.split=...)")
    key = sha256_file(split)
    cached = out / "data_audit.json"
    if cached.exists() and read_json(cached).get("split_sha256") == key:
        return
    result = audit_index(load_index(paths["index"]), split, hash_files=False)
    _raise_on_leak(result, split)
    out.mkdir(parents=True, exist_ok=True)
    write_json(cached, {"split_sha256": key, "verdict": result["verdict"],
                        "splits": json.loads(json.dumps(result["splits"]))})


def data_hashes(paths: dict[str, str | None]) -> dict[str, str | None]:
    """sha256 of the index.csv, split.csv and cache meta.json (the report's provenance)."""
    from cxrlab.utils import sha256_file

    def one(p: Path) -> str | None:
        return sha256_file(p) if p.is_file() else None

    idx = Path(paths["index"]) if paths.get("index") else None
    if idx is not None and idx.is_dir():
        idx = idx / "index.csv"
    return {"index_sha256": one(idx) if idx else None,
            "split_sha256": one(Path(paths["split"])) if paths.get("split") else None,
            "cache_meta_sha256": one(Path(paths["cache"]) / "meta.json") if paths.get("cache") else None}
