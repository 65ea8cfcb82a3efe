"""Typed reads of a JSON object for the ``from_dict`` of the typed results: a missing or wrongly typed field is a
one-line ``CxrlabError`` naming the file, the entry and the field (never a ``KeyError`` traceback)."""

from __future__ import annotations

from typing import Any

from cxrlab.errors import CxrlabError

FIX = "restore the file or rebuild it with the verb that wrote it (cxrlab evaluate)"


class Fields:
    """One JSON object of ``file`` at ``path`` (e.g. ``per_class.Effusion``), read field by field."""

    def __init__(self, obj: Any, file: str, path: str = "") -> None:
        self.obj, self.file, self.path = obj, file, path
        if not isinstance(obj, dict):
            self.fail(f"is a JSON {type(obj).__name__}, expected an object")

    def fail(self, problem: str, key: str | None = None) -> None:
        where = ".".join(p for p in (self.path, key) if p) or "the top level"
        raise CxrlabError(f"{self.file}: {where} {problem}; {FIX}")

    def has(self, key: str) -> bool:
        return key in self.obj

    def raw(self, key: str) -> Any:
        if key not in self.obj:
            self.fail("is missing", key)
        return self.obj[key]

    def number(self, key: str) -> float | None:
        """A float (an int is taken as it is), or None for an undefined value."""
        value = self.raw(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            self.fail(f"is {value!r}, expected a number or null", key)
        return value

    def integer(self, key: str) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(f"is {value!r}, expected a whole number", key)
        return value

    def flag(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            self.fail(f"is {value!r}, expected true or false", key)
        return value

    def text(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str):
            self.fail(f"is {value!r}, expected a string", key)
        return value

    def ci(self, key: str) -> tuple[float | None, float | None] | None:
        """A ``[low, high]`` interval (either end may be null when undefined), or null."""
        value = self.raw(key)
        if value is None:
            return None
        ok = isinstance(value, list) and len(value) == 2 and all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in value)
        if not ok:
            self.fail(f"is {value!r}, expected [low, high] or null", key)
        return (value[0], value[1])

    def names(self, key: str) -> tuple[str, ...]:
        value = self.raw(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(f"is {value!r}, expected a list of class names", key)
        return tuple(value)

    def block(self, key: str) -> Fields:
        return Fields(self.raw(key), self.file, ".".join(p for p in (self.path, key) if p))

    def optional_block(self, key: str) -> Fields | None:
        return None if self.raw(key) is None else self.block(key)

    def numbers(self, key: str) -> dict[str, float | None]:
        """``{name: number or null}`` (per-class Brier, ECE, sensitivities ...)."""
        inner = self.block(key)
        return {k: inner.number(k) for k in inner.obj}

    def entries(self, key: str) -> list[tuple[str, Fields]]:
        """The entries of a ``{class: {...}}`` object, each as ``Fields``."""
        inner = self.block(key)
        return [(k, inner.block(k)) for k in inner.obj]
