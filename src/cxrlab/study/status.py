"""Per-run status files (``DIR/status/<run>.json``, written atomically) and the study folder's identity.

A run is *done* when its manifest and test predictions exist (``fit`` writes the manifest last), so a kill at
any moment loses no finished run: the status file only adds the error of a failed run, the attempts and the
wall time summed over them.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from cxrlab.errors import CxrlabError
from cxrlab.rundir import RunDir
from cxrlab.utils import read_json, sha256_file, write_json

STATES = ("done", "running", "failed", "interrupted", "to do")


def status_path(out: Path, name: str) -> Path:
    return out / "status" / f"{name}.json"


def read_status(out: Path, name: str) -> dict[str, Any]:
    path = status_path(out, name)
    try:
        status = read_json(path) if path.exists() else {}
    except (OSError, ValueError):
        return {}  # an unreadable status is as good as none: the run folder says what is finished
    return status if isinstance(status, dict) else {}  # so is one of the wrong shape


def is_main_process() -> bool:
    """False on the non-zero ranks of ``torchrun``: only rank 0 writes the study's bookkeeping."""
    return os.environ.get("RANK", "0") == "0"


def write_status(out: Path, name: str, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into the run's status file (atomic write; rank 0 only under torchrun)."""
    if not is_main_process():
        return read_status(out, name)
    st = {**read_status(out, name), **fields, "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_json(status_path(out, name), st)
    return st


def is_finished(run_dir: Path) -> bool:
    """``fit`` writes the manifest after the predictions: both there means the run completed."""
    return RunDir(run_dir).finished


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_state(out: Path, name: str) -> tuple[str, dict[str, Any]]:
    """(state, status) of one run: done, running (on this host, or another), failed, interrupted or to do."""
    st = read_status(out, name)
    if is_finished(out / "runs" / name):
        return "done", st
    state = st.get("state")
    if state == "running":
        here = st.get("host") == socket.gethostname()
        if here and not _alive(int(st.get("pid", -1))):
            return "interrupted", st
        return "running", st
    if state in ("failed", "interrupted"):
        return state, st
    return ("interrupted" if (out / "runs" / name / "checkpoints").exists() else "to do"), st


def running_fields() -> dict[str, Any]:
    return {"state": "running", "host": socket.gethostname(), "pid": os.getpid(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def check_study_folder(out: Path, study_path: str | Path) -> str:
    """Refuse a folder that holds another study (a different study file hash); returns this file's hash."""
    digest = sha256_file(study_path)
    marker = out / "study.json"
    if marker.exists():
        held = read_json(marker, kind=dict, fix=f"restore it, or delete {out} to start over")
        if held.get("study_sha256") != digest:
            raise CxrlabError(
                f"{out} holds study {held.get('name')!r} from another study file (sha256 "
                f"{str(held.get('study_sha256'))[:12]}..., this one is {digest[:12]}...); choose another --out, "
                f"or delete {out} to start over")
    return digest


def claim_study_folder(out: Path, study_path: str | Path, name: str, digest: str) -> None:
    """Record the study file and its hash in ``out`` (a copy travels with the results)."""
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "study.json").exists():
        write_json(out / "study.json", {"name": name, "study_sha256": digest, "study_file": str(study_path),
                                        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    copy = out / "study.yaml"
    if not copy.exists():
        from cxrlab.utils import atomic_write_bytes

        atomic_write_bytes(copy, Path(study_path).read_bytes())
