"""Helpers for the hostile-input suite: run a verb, check its one-line error, and prove no input changed."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cxrlab.cli import main
from cxrlab.outputs import is_output_path

OUT_OPTIONS = ("--out", "--report")  # the options that name what a verb writes


def snapshot(*roots: str | Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (files or folders), by path: taken before and after a command."""
    out: dict[str, str] = {}
    for root in roots:
        root = Path(root)
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []
        for f in files:
            out[str(f)] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def run(capsys, argv: list[str], *, inputs: list[str | Path] = (), expect: int = 2,
        says: tuple[str, ...] | str = (), missing: str | Path | None = None, outs: list[str | Path] = ()) -> str:
    """Run ``cxrlab argv`` in-process; assert the exit status, a one-line ``error: ...`` (when failing) that
    contains every string of ``says``, no traceback, that no file under ``inputs`` changed and that no new file
    appeared under them other than the command's own outputs (the output policy's rule 5,
    ``cxrlab.outputs.is_output_path``: its ``--out``/``--report``, their sidecars, inside an ``--out`` folder;
    ``outs`` adds a default output such as ``explain``'s RUN/explain). ``missing``: the input that does not
    exist, which the error must name. Returns stderr followed by stdout."""
    says = (says,) if isinstance(says, str) else tuple(says)
    if missing is not None:  # a missing input: the one error line must name it
        says = (*says, Path(missing).name)
    before = snapshot(*inputs)
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err and "Traceback" not in captured.out, err
    assert code == expect, f"exit {code}, expected {expect}; stderr:\n{err}"
    if expect == 2:
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, f"expected one 'error:' line, got:\n{err}"
        assert "\n" not in errors[0]
        for s in says:
            assert s in errors[0], f"{s!r} not in {errors[0]!r}"
    after = snapshot(*inputs)
    changed = [p for p in before if before[p] != after.get(p)]
    assert not changed, f"inputs changed or removed: {changed[:5]}"
    written = [*outs, *(argv[i + 1] for i, a in enumerate(argv[:-1]) if str(a) in OUT_OPTIONS)]
    added = [p for p in after if p not in before and not any(is_output_path(p, o) for o in written)]
    assert not added, f"new files written into an input folder (not the command's --out): {added[:5]}"
    return err + captured.out
