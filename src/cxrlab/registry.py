"""One small registry per kind of thing built by name (models, losses, ...).

Shaped like torchvision's ``models/_api.py``: a dict plus a decorator that rejects duplicates, and a ``get``
whose error lists the valid names.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any

from cxrlab.errors import CxrlabError


class Registry:
    """Maps names to builders for one kind of object."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = fn
            return fn

        return decorator

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            raise CxrlabError(unknown_name_message(self.kind, name, self.names()))
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def unknown_name_message(kind: str, name: str, valid: list[str]) -> str:
    """``unknown loss 'focl' (did you mean 'focal'?); valid: asl, bce, focal``."""
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {name!r}{hint}; valid: {', '.join(valid)}"
