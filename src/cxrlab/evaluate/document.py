"""A tiny document model rendered twice: self-contained HTML (figures inlined as base64 PNG, no scripts, no
external resources) and Markdown (figures written as PNG files beside it)."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

from cxrlab.evaluate.formatting import fmt_metric, fmt_number
from cxrlab.utils import atomic_write_bytes, atomic_write_text

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #ccc;margin-top:1.8em}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.9em;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}td{white-space:nowrap}th{background:#f0f0f0}
td:first-child,th:first-child,td.t{text-align:left}
figure{display:inline-block;margin:0.5em}figcaption{font-size:0.85em;color:#555}
img{max-width:100%}.note{color:#7a4b00}.small{font-size:0.85em;color:#555}
pre{background:#f6f6f6;border:1px solid #ddd;padding:0.6em;overflow-x:auto;font-size:0.85em}
.warn{color:#8a1f11;font-weight:600}
"""


@dataclass
class Document:
    """Blocks in order: ("h", level, text), ("p", text), ("table", headers, rows), ("fig", name, png, caption),
    ("link", text, href), ("code", language, text), ("warn", items).

    The title is the only h1; headings nest (a heading is at most one level below the one before it)."""

    title: str
    blocks: list[tuple] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        """A section heading; never deeper than one below the heading before it (a skipped level is pulled up)."""
        self.blocks.append(("h", max(2, min(level, self._deepest() + 1)), text))

    def _deepest(self) -> int:
        return next((b[1] for b in reversed(self.blocks) if b[0] == "h"), 1)

    def code(self, text: str, language: str = "") -> None:
        """A fenced block (a study's YAML, a command), shown verbatim."""
        self.blocks.append(("code", language, text.rstrip("\n")))

    def warnings(self, items: list[str]) -> None:
        """Trouble in plain words, shown prominently (nothing when ``items`` is empty)."""
        if items:
            self.blocks.append(("warn", list(items)))

    def text(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(("ul", list(items)))

    def table(self, headers: list[str], rows: list[list]) -> None:
        self.blocks.append(("table", list(headers), [[_cell(v) for v in r] for r in rows]))

    def link(self, text: str, href: str) -> None:
        """A paragraph linking to ``href`` (relative to the report, e.g. a gallery beside it)."""
        self.blocks.append(("link", text, href))

    def figure(self, name: str, png: bytes | None, caption: str) -> None:
        if png:
            self.blocks.append(("fig", name, png, caption))

    def write(self, out: Path, stem: str = "report") -> tuple[Path, Path]:
        """Write ``out/<stem>.html`` and ``out/<stem>.md`` (+ ``out/figures/*.png``)."""
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / f"{stem}.html", self.html())
        atomic_write_text(out / f"{stem}.md", self.markdown(out))
        return out / f"{stem}.html", out / f"{stem}.md"

    def html(self) -> str:
        e = html.escape
        parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(self.title)}</title>",
                 f"<style>{CSS}</style></head><body><h1>{e(self.title)}</h1>"]
        for b in self.blocks:
            if b[0] == "h":
                parts.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                parts.append(f"<p>{e(b[1])}</p>")
            elif b[0] == "ul":
                parts.append("<ul>" + "".join(f"<li>{e(x)}</li>" for x in b[1]) + "</ul>")
            elif b[0] == "table":
                head = "".join(f"<th>{e(h)}</th>" for h in b[1])
                body = "".join("<tr>" + "".join(_td(c) for c in r) + "</tr>" for r in b[2])
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
            elif b[0] == "link":
                parts.append(f"<p><a href='{e(b[2])}'>{e(b[1])}</a></p>")
            elif b[0] == "code":
                parts.append(f"<pre><code>{e(b[2])}</code></pre>")
            elif b[0] == "warn":
                parts.append("<ul class='warn'>" + "".join(f"<li>{e(x)}</li>" for x in b[1]) + "</ul>")
            elif b[0] == "fig":
                data = base64.b64encode(b[2]).decode("ascii")
                parts.append(f"<figure><img alt='{e(b[3])}' src='data:image/png;base64,{data}'>"
                             f"<figcaption>{e(b[3])}</figcaption></figure>")
        parts.append("</body></html>\n")
        return "\n".join(parts)

    def markdown(self, out: Path) -> str:
        lines = [f"# {self.title}", ""]
        for b in self.blocks:
            if b[0] == "h":
                lines += ["#" * b[1] + " " + b[2], ""]
            elif b[0] == "p":
                lines += [b[1], ""]
            elif b[0] == "ul":
                lines += [f"- {x}" for x in b[1]] + [""]
            elif b[0] == "table":
                lines.append("| " + " | ".join(_md(h) for h in b[1]) + " |")
                lines.append("|" + "|".join("---" for _ in b[1]) + "|")
                lines += ["| " + " | ".join(_md(c) for c in r) + " |" for r in b[2]] + [""]
            elif b[0] == "link":
                lines += [f"[{b[1]}]({b[2]})", ""]
            elif b[0] == "code":
                lines += [f"```{b[1]}", b[2], "```", ""]
            elif b[0] == "warn":
                lines += [f"- **{x}**" for x in b[1]] + [""]
            elif b[0] == "fig":
                atomic_write_bytes(out / "figures" / f"{b[1]}.png", b[2])
                lines += [f"![{b[3]}](figures/{b[1]}.png)", ""]
        return "\n".join(lines)


def _cell(v) -> str:
    """A table cell: floats in [0, 1] as metrics (3 decimals), other floats to 3 significant digits."""
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return fmt_metric(v) if 0 <= v <= 1 else fmt_number(v)
    return str(v)


def _td(text: str) -> str:
    """Numbers (and intervals, n/a) right-aligned; words left-aligned."""
    numeric = text[:1].isdigit() or text[:1] in "+-<" or text == "n/a"
    return f"<td>{html.escape(text)}</td>" if numeric else f"<td class='t'>{html.escape(text)}</td>"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
