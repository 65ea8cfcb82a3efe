"""One process at a time per folder: an advisory ``flock`` on a lock file that holds the holder's PID and host.

``study run`` holds ``DIR/.cxrlab-lock`` (one per shard / arm selection) and every run it trains holds
``runs/<name>/.cxrlab-lock``; ``train`` (``fit``) holds its run directory's. A second process gets a one-line
``CxrlabError`` naming the holder's PID. The kernel drops a ``flock`` when its process dies (``kill -9``
included), so a lock file left by a dead process is simply taken over: its PID is rewritten. The lock file
itself is never deleted (deleting it would let two processes lock two different files of the same name).

Locks are re-entrant inside one process (``fit`` called by ``study run`` takes the run's lock it already holds),
and ``SIGTERM`` (what Slurm sends on pre-emption) becomes ``KeyboardInterrupt`` inside ``terminate_as_interrupt``
so a run stops the way Ctrl-C stops it: status recorded, checkpoints intact, resumable.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cxrlab.errors import CxrlabError

LOCK_NAME = ".cxrlab-lock"

_held: dict[str, list[int]] = {}  # resolved lock path -> [fd, depth]: re-entrant within one process


class Busy(CxrlabError):
    """The folder is locked by another live process (``pid``, ``host``, ``path`` say which)."""

    def __init__(self, message: str, pid: str, path: Path) -> None:
        super().__init__(message)
        self.pid, self.path = pid, path


def holder(path: Path) -> str:
    """What the lock file says about its holder (``PID on HOST``), or ``unknown``."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return "unknown"
    return text or "unknown"


def _acquire(path: Path, what: str) -> int:
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        who = holder(path)
        raise Busy(f"{what} is in use by process {who} (lock {path}); wait for it to finish or stop it, "
                   "then rerun", who.split()[0], path) from None
    os.ftruncate(fd, 0)  # a dead holder's PID is replaced by ours
    os.write(fd, f"{os.getpid()} on {socket.gethostname()}\n".encode())
    os.fsync(fd)
    return fd


@contextmanager
def folder_lock(folder: str | Path, what: str | None = None, name: str = LOCK_NAME) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder`` (created if needed) for the ``with`` block; ``Busy`` when another
    process holds it. ``what`` names the folder in the error (default: the folder's path)."""
    path = Path(folder) / name
    key = str(path.resolve())
    if key in _held:
        _held[key][1] += 1
    else:
        _held[key] = [_acquire(path, what or str(folder)), 1]
    try:
        yield path
    finally:
        _held[key][1] -= 1
        if _held[key][1] == 0:
            os.close(_held.pop(key)[0])  # closing the descriptor drops the flock


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Inside the block, ``SIGTERM`` raises ``KeyboardInterrupt`` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
