"""``Evaluation``: one whole ``metrics.json`` as a frozen object; pure data, no I/O (``evaluate.read_evaluation``
reads the file). The typed body is ``results`` (``stats.evaluation``); the blocks other modules own (inputs,
datasets, matching, options, subgroups, internal_vs_external, uncertainty, definitions, references) stay JSON
objects, written back unchanged, in the schema's key order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cxrlab.evaluate.stats.evaluation import Results, results_from_dict
from cxrlab.evaluate.stats.fields import Fields
from cxrlab.evaluate.stats.results import Metric

SCHEMA = "cxrlab.metrics/1"
BLOCKS = ("inputs", "datasets", "matching", "bootstrap", "options")  # between the header and the results
OPTIONAL = ("subgroups", "internal_vs_external", "uncertainty")  # after the results, when present


@dataclass(frozen=True)
class Evaluation:
    """The evaluation of one predictions file: who and what was scored, and the typed ``results``."""

    task: str
    classes: tuple[str, ...]
    counts: dict[str, Any]
    notes: tuple[str, ...]
    model: str
    name: str
    results: Results
    inputs: dict[str, Any]
    datasets: dict[str, Any]
    matching: dict[str, Any]
    bootstrap: dict[str, Any]
    options: dict[str, Any]
    definitions: dict[str, str]
    references: dict[str, Any]
    seconds: float
    subgroups: dict[str, Any] | None = None
    internal_vs_external: dict[str, Any] | None = None
    uncertainty: dict[str, Any] | None = None
    schema: str = SCHEMA

    def headline(self) -> tuple[str, Metric]:
        """("macro AUROC", metric) for multi-label, ("macro F1", metric) for multi-class."""
        return self.results.headline()

    @property
    def title(self) -> str:
        return self.name or self.model

    def to_dict(self) -> dict:
        """Exactly the ``metrics.json`` object (key order included)."""
        out = {"schema": self.schema, "task": self.task, "classes": list(self.classes), "counts": self.counts,
               "notes": list(self.notes), "model": self.model, "name": self.name}
        out |= {k: getattr(self, k) for k in BLOCKS}
        out |= self.results.to_dict()
        out |= {k: getattr(self, k) for k in OPTIONAL if getattr(self, k) is not None}
        return out | {"definitions": self.definitions, "references": self.references, "seconds": self.seconds}

    @classmethod
    def from_dict(cls, obj: Any, file: str = "metrics.json") -> Evaluation:
        """The typed evaluation of a ``metrics.json`` object; a malformed one is a one-line ``CxrlabError``."""
        f = Fields(obj, file)
        if f.text("schema") != SCHEMA:
            f.fail(f"is {obj['schema']!r}, expected {SCHEMA!r}", "schema")
        notes = f.raw("notes")
        if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
            f.fail("is not a list of strings", "notes")
        blocks = {k: f.block(k).obj for k in (*BLOCKS, "counts", "definitions", "references")}
        optional = {k: f.block(k).obj for k in OPTIONAL if f.has(k)}
        return cls(task=f.text("task"), classes=f.names("classes"), notes=tuple(notes), model=f.text("model"),
                   name=f.text("name"), results=results_from_dict(obj, file), seconds=f.number("seconds"),
                   **blocks, **optional)
