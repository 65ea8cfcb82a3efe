"""The one exception type for bad user input, and the one-line wording of operating-system errors.

Library code raises ``CxrlabError`` with a one-line message that names the file, row or field and the fix;
the CLI prints it as ``error: ...`` and exits with status 2, never a traceback. An ``OSError`` that reaches the
CLI (permissions, a missing path, a full disk, a folder where a file was expected) is worded by
``os_error_message`` and exits 2 as well.
"""

from __future__ import annotations

import errno


class CxrlabError(Exception):
    """A problem with the user's input or environment, explained in one line.

    Raised in a DataLoader worker, it reaches the parent re-built by torch from a multi-line message ("Caught
    CxrlabError in DataLoader worker process 0." + the worker's traceback, ending "module.Class: message"): only
    the message on the last line is kept, so the CLI still prints one line.
    """

    def __init__(self, message: object = "", *args: object) -> None:
        text = str(message)
        if text.startswith("Caught ") and "\n" in text:
            text = text.rstrip().splitlines()[-1].split(": ", 1)[-1]
        super().__init__(text, *args)


_OS_FIXES = {
    errno.EACCES: "check its permissions or choose another path",
    errno.EPERM: "check its permissions or choose another path",
    errno.EROFS: "the file system is read-only; choose another path",
    errno.ENOSPC: "the disk is full; free some space or write somewhere else",
    errno.EDQUOT: "the disk quota is exceeded; free some space or write somewhere else",
    errno.ENOENT: "check the path",
    errno.EISDIR: "it is a folder; give a file path",
    errno.ENOTDIR: "part of the path is a file, not a folder",
    errno.ENOTEMPTY: "the folder is not empty",
    errno.EEXIST: "it already exists",
}


def os_error_message(exc: OSError) -> str:
    """One line for an ``OSError``: the path, what went wrong, and what to do."""
    path = exc.filename2 if exc.filename2 is not None and exc.errno == errno.EISDIR else exc.filename
    what = " ".join(str(exc.strerror or exc or type(exc).__name__).split())
    fix = _OS_FIXES.get(exc.errno or -1)
    return (f"{path}: " if path is not None else "") + what + (f"; {fix}" if fix else "")
