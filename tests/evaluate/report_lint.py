"""What every rendered report must satisfy, read from its Markdown: the checks a reader does at a glance."""

from __future__ import annotations

import re

P_CELL = re.compile(r"^(n/a(: .*)?|<=\d+(\.\d+)?|<0\.0001|\d\.\d{3,4})( \*)?$")
FLOAT = re.compile(r"(?<![\w.\-/])(\d+)\.(\d+)(?![\w]|\.\d)")


def _prose_and_tables(md: str) -> tuple[list[str], list[list[str]]]:
    """Prose lines (outside fenced code, tables and images) and the tables, each a list of lines."""
    prose, tables, fenced, in_table = [], [], False, False
    for line in md.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("!["):
            continue
        if line.startswith("|"):
            if not in_table:
                tables.append([])
            tables[-1].append(line)
        else:
            prose.append(line)
        in_table = line.startswith("|")
    return prose, tables


def _cells(row: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", row.strip())[1:-1]]


def significant_digits(integer: str, fraction: str) -> int:
    return len((integer + fraction).lstrip("0"))


def lint_report(md: str) -> None:
    """Headings nest with one h1; no raw float, JSON or empty literal in prose; every p column formatted one way."""
    prose, tables = _prose_and_tables(md)
    levels = [len(m.group(1)) for m in (re.match(r"^(#+) ", line) for line in prose) if m]
    assert levels and levels[0] == 1 and levels.count(1) == 1, levels
    for before, after in zip(levels, levels[1:]):
        assert after <= before + 1, f"heading jumps from h{before} to h{after}"
    text = "\n".join(prose)
    for m in FLOAT.finditer(text):
        context = text[max(0, m.start() - 80):m.end()]
        assert significant_digits(m.group(1), m.group(2)) <= 4, f"raw float {m.group(0)} in: {context}"
    for literal in ("[]", "{}", '{"', "{'"):
        assert literal not in text, f"{literal!r} in a report's prose"
    for word in ("None", "null", "nan", "NaN"):
        assert not re.search(rf"\b{word}\b", text), f"{word!r} in a report's prose"
    assert not re.search(r"(?<![\w.])\d+(\.\d+)?[eE][-+]?\d+(?!\w)", text), "scientific notation in prose"
    for table in tables:
        head = _cells(table[0])
        for row in table[2:]:
            cells = _cells(row)
            for name, cell in zip(head, cells):
                assert cell not in ("[]", "{}", "None", "null", "nan"), f"{cell!r} in column {name}"
                if name in ("p", "p (Holm)"):
                    assert P_CELL.match(cell), f"p-value {cell!r} formatted another way"
