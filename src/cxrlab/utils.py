"""Small helpers shared by every stage: hashing, atomic writes, JSON."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: a kill never leaves a half-written file."""
    path = Path(path)
    if path.is_dir():  # os.replace would name the temporary file; name the user's path instead
        raise IsADirectoryError(errno.EISDIR, "is a folder, not a file", str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # name the file the user asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the user's usual mode
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(
    path: str | Path, kind: type | None = None, required: tuple[str, ...] = (), fix: str | None = None
) -> Any:
    """Load a JSON file; a corrupt or wrongly shaped one is a one-line ``CxrlabError`` naming it.

    Args:
        kind: the type the top-level value must have (``dict`` or ``list``), checked when given.
        required: keys a ``dict`` must hold.
        fix: what the user should do (default: rebuild it with the verb that wrote it).
    """
    from cxrlab.errors import CxrlabError

    fix = fix or "restore it or rebuild it with the verb that wrote it"
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CxrlabError(f"{path} is not valid JSON ({exc}); {fix}") from None
    if kind is not None and not isinstance(obj, kind):
        raise CxrlabError(f"{path} holds a JSON {type(obj).__name__}, expected a JSON "
                          f"{'object' if kind is dict else kind.__name__}; {fix}")
    missing = [k for k in required if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise CxrlabError(f"{path} lacks the key(s) {', '.join(missing)}; {fix}")
    return obj


def _json_default(obj: Any) -> Any:
    # numpy scalars and arrays, Paths
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (imported on first use: it is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig, dpi: int = 90) -> bytes:
    """A matplotlib figure as PNG bytes (tight bounding box); the figure is closed."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return buf.getvalue()


def recorded_path(value: str | Path, artifact_dir: str | Path) -> Path:
    """A path recorded inside an artifact (a run's config, a sidecar, split.json): absolute as written, relative
    to the folder of the artifact that recorded it, never to the current directory."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else Path(artifact_dir) / path


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask on Linux, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    """The 1-, 5- and 15-minute load averages (None where the OS has none): recorded beside timings so a loaded
    machine can be told from a slow tool."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def cpu_threads(workers: int = 0, processes: int = 1) -> int:
    """Torch intra-op threads per process such that threads and DataLoader ``workers`` of ``processes``
    processes together fit the available cores (at least 1): more threads than free cores spin-wait for each
    other and run many times slower on a shared machine. ``OMP_NUM_THREADS``, when set, is an upper bound."""
    free = max(1, available_cores() // max(processes, 1) - workers)
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    return min(free, int(limit)) if limit.isdigit() and int(limit) > 0 else free
