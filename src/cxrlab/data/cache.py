"""The preprocessing cache: every image decoded and resized once into a uint8 memmap (N, S, S).

Folder layout: ``images.u8`` (raw uint8, row i = ``meta["image_ids"][i]``), ``meta.json`` (size, policy,
index_sha256, image_ids, per-image status, complete) and ``done.u8`` (one byte per image, 1 when its row is
final). Workers write their rows straight into the memmap; the parent marks a chunk done only after the
worker has flushed it, so a killed build resumes where it stopped and ends byte-identical to a clean one.

Pixel checksums: a finished build records in the sealed ``meta.json`` the crc32 of every chunk of
``chunk_rows`` consecutive images (about 4 MiB each). ``Cache.read`` verifies a chunk the first time a process
(each DataLoader worker too) reads a row of it, so a flipped byte in ``images.u8`` stops training or prediction
with one line naming the file and chunk; the cost is one crc32 pass (~1.8 GB/s) over the chunks a process
touches. A cache built before the checksums existed is read with a one-line warning (once per process); rerunning
``cxrlab data cache`` with the same arguments adds them without decoding any image.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
import warnings
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrlab.data.images import RESIZE_POLICIES, looks_like_xray, read_image, resize_image
from cxrlab.data.index import Index
from cxrlab.errors import CxrlabError
from cxrlab.locks import LOCK_NAME
from cxrlab.outputs import MARKER
from cxrlab.provenance import check_image_file, expected_hashes
from cxrlab.utils import read_json, sha256_bytes, write_json

IMAGES_FILE, META_FILE, DONE_FILE = "images.u8", "meta.json", "done.u8"
MAX_CHUNK = 32  # images per task: small enough for an even load and frequent resume points
CHECK_BYTES = 4 << 20  # pixels per checksum chunk: one crc32 costs ~2 ms, small next to an epoch
_WARNED: set[str] = set()  # caches without checksums already warned about in this process


class CacheDamaged(CxrlabError):
    """A cache chunk whose pixels no longer match their recorded crc32 (one line even from a DataLoader worker:
    ``CxrlabError`` keeps the last line of torch's re-raised message)."""


@dataclass
class Cache:
    """An opened cache. ``images`` is opened lazily, so a Cache pickles cheaply into DataLoader workers."""

    dir: Path
    meta: dict[str, Any]
    image_ids: list[str]
    ok: np.ndarray  # (N,) bool: row holds a good image
    size: int
    policy: str
    _images: np.memmap | None = field(default=None, repr=False)
    _rows: dict[str, int] | None = field(default=None, repr=False)
    _verified: set[int] = field(default_factory=set, repr=False)  # chunks checked by process ``_pid``
    _pid: int = field(default=-1, repr=False)

    @property
    def images(self) -> np.memmap:
        """(N, S, S) uint8 read-only memmap."""
        if self._images is None:
            shape = (len(self.image_ids), self.size, self.size)
            self._images = np.memmap(self.dir / IMAGES_FILE, dtype=np.uint8, mode="r", shape=shape)
        return self._images

    def row(self, image_id: str) -> int:
        """Row of ``image_id`` in ``images``; CxrlabError when the cache does not hold it."""
        if self._rows is None:
            self._rows = {i: r for r, i in enumerate(self.image_ids)}
        try:
            return self._rows[image_id]
        except KeyError:
            raise CxrlabError(
                f"image {image_id} is not in the cache {self.dir}; rebuild it from this index with `cxrlab data cache`"
            ) from None

    def read(self, row: int) -> np.ndarray:
        """(S, S) uint8 copy of image ``row``, its chunk checked against the recorded crc32 first (once per
        process); ``CacheDamaged`` names the file and chunk when a byte changed since the build."""
        sums = self.meta.get("chunk_crc32")
        if sums is not None:
            if self._pid != os.getpid():  # a forked or unpickled DataLoader worker checks for itself
                self._verified, self._pid = set(), os.getpid()
            chunk = int(row) // int(self.meta["chunk_rows"])
            if chunk not in self._verified:
                self._verify(chunk, int(sums[chunk]))
                self._verified.add(chunk)
        return np.array(self.images[row])

    def _verify(self, chunk: int, expected: int) -> None:
        rows = int(self.meta["chunk_rows"])
        start, stop = chunk * rows, min((chunk + 1) * rows, len(self.image_ids))
        if zlib.crc32(self.images[start:stop]) != expected:
            raise CacheDamaged(
                f"{self.dir / IMAGES_FILE}: chunk {chunk} (images {start}..{stop - 1}) changed after `cxrlab data "
                f"cache` wrote it (its crc32 no longer matches {META_FILE}); rebuild the cache: cxrlab data cache "
                f"INDEX --out {self.dir} --force"
            )

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_images"] = None  # never pickle the array itself: each process maps the file
        state["_verified"], state["_pid"] = set(), -1  # and each process checks the chunks it reads
        return state


def open_cache(cache_dir: str | Path) -> Cache:
    """Open a finished cache folder."""
    cache_dir = Path(cache_dir)
    if not (cache_dir / META_FILE).is_file():
        raise CxrlabError(
            f"{cache_dir} is not a cache (no {META_FILE}); build one with `cxrlab data cache INDEX --out DIR`"
        )
    meta = _read_meta(cache_dir)
    if not meta.get("complete"):
        done = int(_open_done(cache_dir, len(meta["image_ids"])).astype(bool).sum())
        raise CxrlabError(
            f"cache {cache_dir} is unfinished ({done}/{len(meta['image_ids'])} images); "
            "rerun `cxrlab data cache` with the same arguments to resume it"
        )
    n, size = len(meta["image_ids"]), int(meta["size"])
    expected = n * size * size
    actual = (cache_dir / IMAGES_FILE).stat().st_size if (cache_dir / IMAGES_FILE).exists() else -1
    if actual != expected:
        raise CxrlabError(f"{cache_dir / IMAGES_FILE} has {actual} bytes, expected {expected}; rebuild with --force")
    if meta.get("chunk_crc32") is None and str(cache_dir) not in _WARNED:
        _WARNED.add(str(cache_dir))
        warnings.warn(f"cache {cache_dir} has no pixel checksums (built before cxrlab recorded them), so its "
                      f"pixels are not verified; rerun `cxrlab data cache INDEX --out {cache_dir}` with the same "
                      "arguments to add them (no image is decoded again)", UserWarning, stacklevel=2)
    ok = np.array([s == "ok" for s in meta["status"]], dtype=bool)
    return Cache(cache_dir, meta, list(meta["image_ids"]), ok, size, meta["policy"])


def _read_meta(cache_dir: Path) -> dict[str, Any]:
    """``meta.json``, checked for the keys a cache needs (a damaged one names the rebuild)."""
    fix = f"rebuild the cache: cxrlab data cache INDEX --out {cache_dir} --force"
    meta = read_json(cache_dir / META_FILE, kind=dict, required=("size", "policy", "image_ids"), fix=fix)
    if "meta_sha256" in meta and _sealed(dict(meta))["meta_sha256"] != meta["meta_sha256"]:
        raise CxrlabError(f"{cache_dir / META_FILE} changed after `cxrlab data cache` wrote it (its meta_sha256 no "
                          f"longer matches its content); {fix}")
    if not isinstance(meta["image_ids"], list) or not isinstance(meta["size"], int):
        raise CxrlabError(f"{cache_dir / META_FILE} has image_ids or size of the wrong type; {fix}")
    if meta.get("complete") and len(meta.get("status") or []) != len(meta["image_ids"]):
        raise CxrlabError(f"{cache_dir / META_FILE} lacks a status per image; {fix}")
    sums, rows = meta.get("chunk_crc32"), meta.get("chunk_rows")
    if sums is not None and not (isinstance(rows, int) and rows > 0 and isinstance(sums, list)
                                 and len(sums) == -(-len(meta["image_ids"]) // rows)):
        raise CxrlabError(f"{cache_dir / META_FILE} has chunk_rows or chunk_crc32 of the wrong shape; {fix}")
    return meta


def chunk_checksums(images_path: Path, n: int, size: int) -> tuple[int, list[int]]:
    """(rows per chunk, crc32 of each chunk) of a finished ``images.u8``: what ``Cache.read`` checks."""
    rows = max(1, CHECK_BYTES // (size * size))
    if n == 0:
        return rows, []
    images = np.memmap(images_path, dtype=np.uint8, mode="r", shape=(n, size, size))
    sums = [zlib.crc32(images[i : i + rows]) for i in range(0, n, rows)]
    del images
    return rows, sums


def _sealed(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta`` with ``meta_sha256``: the sha256 of its other fields (canonical JSON), so a changed byte is found."""
    import json

    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    meta["meta_sha256"] = sha256_bytes(json.dumps(body, sort_keys=True, separators=(",", ":")).encode())
    return meta


def _open_done(cache_dir: Path, n: int) -> np.memmap:
    path = cache_dir / DONE_FILE
    if not path.exists() or path.stat().st_size != n:
        np.zeros(n, dtype=np.uint8).tofile(path)
    return np.memmap(path, dtype=np.uint8, mode="r+", shape=(n,))


def _prepare(index: Index, cache_dir: Path, size: int, policy: str, force: bool) -> dict[str, Any]:
    """Check or (re)create the cache folder; returns the meta describing the build."""
    if policy not in RESIZE_POLICIES:
        raise CxrlabError(f"--policy {policy!r} is not one of {', '.join(RESIZE_POLICIES)}")
    if not 8 <= size <= 4096:
        raise CxrlabError(f"--size {size} is out of range; use 8..4096 (256 is typical)")
    image_ids = index.frame["image_id"].astype(str).tolist()
    meta = {"size": size, "policy": policy, "index_sha256": index.sha256, "image_ids": image_ids, "complete": False}
    hashes = expected_hashes(index)  # per image, so an index that only adds rows can reuse this cache
    meta["image_sha256"] = [hashes.get(i) for i in image_ids] if hashes else None
    meta_path = cache_dir / META_FILE
    if meta_path.is_file():
        old = read_json(meta_path, kind=dict, fix=f"pass --force to rebuild {cache_dir}")
        same = all(old.get(k) == meta[k] for k in ("size", "policy", "index_sha256", "image_ids"))
        if same and not force:
            return old
        if not force:
            raise CxrlabError(
                f"{cache_dir} holds a cache of another index/size/policy (size {old.get('size')}, policy "
                f"{old.get('policy')}); pass --force to rebuild it or choose another --out"
            )
        for name in (IMAGES_FILE, META_FILE, DONE_FILE):
            (cache_dir / name).unlink(missing_ok=True)
    elif cache_dir.exists() and any(p.name not in (MARKER, LOCK_NAME) for p in cache_dir.iterdir()) and not force:
        raise CxrlabError(f"--out {cache_dir} exists and is not a cache; choose an empty or new folder")
    cache_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(cache_dir).free
    if free < len(image_ids) * size * size:
        raise CxrlabError(f"not enough disk space in {cache_dir}: need {len(image_ids) * size * size >> 20} MiB")
    with open(cache_dir / IMAGES_FILE, "wb") as f:  # sparse zero file of the final size
        f.truncate(len(image_ids) * size * size)
    write_json(meta_path, _sealed(meta))
    return meta


def _cache_chunk(task: tuple) -> list[tuple[int, str | None]]:
    """Worker: decode + resize ``paths`` into ``rows`` of the memmap (each file checked against the sha256 its
    index recorded); returns (row, error or None)."""
    images_path, n, size, policy, rows, paths, hashes = task
    images = np.memmap(images_path, dtype=np.uint8, mode="r+", shape=(n, size, size))
    out = []
    for row, path, expected in zip(rows, paths, hashes):
        try:
            check_image_file(path, expected)
            img = read_image(path)
            ok, reason = looks_like_xray(img)  # constant or NaN: counted as failed, never trained on
            if not ok:
                raise CxrlabError(f"{path}: degenerate: {reason}")
            images[row] = resize_image(img, size, policy)
            out.append((row, None))
        except CxrlabError as exc:
            images[row] = 0  # a failed row is zero, whatever a previous attempt left
            out.append((row, str(exc)))
        except Exception as exc:  # a worker must report, never die, on one bad file
            images[row] = 0
            out.append((row, f"{path}: {type(exc).__name__}: {exc}"))
    images.flush()
    del images
    return out


def build_cache(
    index: Index,
    out_dir: str | Path,
    size: int = 256,
    policy: str = "letterbox",
    workers: int | None = None,
    force: bool = False,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Decode and resize every image of ``index`` once into ``out_dir`` (resumable, parallel).

    Args:
        index: the images to cache, in index order.
        out_dir: cache folder; an unfinished cache of the same index/size/policy is resumed.
        size: side of the square uint8 images.
        policy: ``letterbox`` or ``center_crop``.
        workers: processes (default: all available cores; 1 runs in this process).
        force: rebuild a cache made from another index, size or policy.
        limit: stop after this many images (an interruption, for tests and partial builds).
        progress: show a tqdm progress bar.

    Returns:
        report: n, ok, failed, pending, built, reused, errors {image_id: message}, seconds, complete.
    """
    from tqdm import tqdm

    start = time.perf_counter()
    cache_dir = Path(out_dir)
    meta = _prepare(index, cache_dir, size, policy, force)
    n = len(meta["image_ids"])
    images_path = cache_dir / IMAGES_FILE
    if not images_path.exists() or images_path.stat().st_size != n * size * size:
        with open(images_path, "wb") as f:  # missing or damaged data file: start over
            f.truncate(n * size * size)
        (cache_dir / DONE_FILE).unlink(missing_ok=True)
    done = _open_done(cache_dir, n)
    pending = np.flatnonzero(done == 0)
    reused = n - len(pending)
    todo = pending[:limit] if limit is not None else pending
    workers = max(1, workers or _available_cores())
    tasks = _tasks(index, images_path, n, size, policy, todo, workers)
    errors: dict[int, str] = {}
    with tqdm(total=len(todo), unit="img", desc="cache", disable=not progress or not len(todo)) as bar:
        for results in _run(tasks, workers):
            for row, err in results:
                if err is None:
                    done[row] = 1
                else:
                    errors[row] = err
            done.flush()  # after the worker flushed the rows: a kill now loses nothing
            bar.update(len(results))
    complete = len(todo) == len(pending)
    meta["status"] = ["ok" if d else errors.get(r, "pending") for r, d in enumerate(done)]
    meta["complete"] = complete
    if not complete:  # checksums describe a finished file only
        for key in ("chunk_rows", "chunk_crc32"):
            meta.pop(key, None)
    elif len(todo) or meta.get("chunk_crc32") is None:  # new rows, or a cache from before the checksums
        meta["chunk_rows"], meta["chunk_crc32"] = chunk_checksums(images_path, n, size)
    write_json(cache_dir / META_FILE, _sealed(meta))
    ok = int(done.astype(bool).sum())
    return {
        "n": n,
        "ok": ok,
        "failed": len(errors),
        "pending": n - ok - len(errors),
        "built": len(todo),
        "reused": reused,
        "errors": {meta["image_ids"][r]: msg for r, msg in errors.items()},
        "seconds": time.perf_counter() - start,
        "complete": complete,
        "workers": workers,
    }


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _tasks(index: Index, images_path: Path, n: int, size: int, policy: str, rows: np.ndarray, workers: int) -> list:
    paths = [str(p) for p in index.absolute_paths()]
    known = expected_hashes(index)
    hashes = [known.get(str(i)) for i in index.frame["image_id"]]
    chunk = int(max(1, min(MAX_CHUNK, -(-len(rows) // (workers * 4)))))
    return [
        (str(images_path), n, size, policy, rows[i : i + chunk].tolist(), [paths[r] for r in rows[i : i + chunk]],
         [hashes[r] for r in rows[i : i + chunk]])
        for i in range(0, len(rows), chunk)
    ]


def _run(tasks: list, workers: int):
    """Yield each task's results: in this process for one worker, else from a process pool as they finish."""
    if workers == 1 or len(tasks) <= 1:
        yield from map(_cache_chunk, tasks)
        return
    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), initializer=_ignore_sigint)
    try:
        for future in as_completed([pool.submit(_cache_chunk, t) for t in tasks]):
            yield future.result()
    finally:  # on Ctrl-C drop the queued chunks; finished ones are already marked done
        pool.shutdown(wait=True, cancel_futures=True)


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which stops cleanly (no traceback from every process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
