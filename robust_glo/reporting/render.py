"""A small document model and its two renderings: Markdown (figures linked) and self-contained HTML
(figures embedded as base64 PNG, no external resources)."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class Paragraph:
    text: str  # plain text; `code` spans, **bold** and [links](url) are rendered in both formats


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    frame: pd.DataFrame
    caption: str = ""
    nowrap: bool = False  # HTML: keep each cell on one line (tables of numbers); the table then scrolls


@dataclass
class Image:
    path: Path  # a PNG file
    caption: str = ""
    alt: str = ""


@dataclass
class Code:
    text: str
    language: str = ""


Block = Paragraph | Bullets | Table | Image | Code


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    anchor: str = ""

    def add(self, *blocks: Block) -> Section:
        self.blocks.extend(blocks)
        return self


@dataclass
class Document:
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def images(self) -> list[Image]:
        return [b for s in self.sections for b in s.blocks if isinstance(b, Image)]


def anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


# ------------------------------------------------------------------------------------------ Markdown


def _md_cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame) -> str:
    headers = [_md_cell(c) for c in frame.columns]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_md_cell(v) for v in row) + " |")
    return "\n".join(lines)


def to_markdown(doc: Document, base: Path) -> str:
    """Markdown with images linked relative to `base` (the folder report.md is written to)."""
    out = [f"# {doc.title}", ""]
    if doc.subtitle:
        out += [doc.subtitle, ""]
    out += ["Contents: " + " · ".join(f"[{s.title}](#{s.anchor or anchor(s.title)})" for s in doc.sections), ""]
    for section in doc.sections:
        # An explicit anchor: Markdown renderers derive heading ids from the text ("robust-accuracy-against-ε"),
        # which would not match the short ids the contents line and the report's own links use.
        out += [f'<a id="{section.anchor or anchor(section.title)}"></a>', "", f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Paragraph):
                out += [block.text, ""]
            elif isinstance(block, Bullets):
                out += [f"- {item}" for item in block.items] + [""]
            elif isinstance(block, Table):
                if block.caption:
                    out += [f"*{block.caption}*", ""]
                out += [markdown_table(block.frame), ""]
            elif isinstance(block, Image):
                rel = Path(block.path).resolve().relative_to(base.resolve()).as_posix()
                out += [f"![{block.alt or block.caption}]({rel})", ""]
                if block.caption:
                    out += [f"*{block.caption}*", ""]
            elif isinstance(block, Code):
                out += [f"```{block.language}", block.text.rstrip("\n"), "```", ""]
    return "\n".join(out).rstrip() + "\n"


# ------------------------------------------------------------------------------------------ HTML

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;max-width:1280px;margin:2em auto;
padding:0 1.5em;color:#1d1d1f;line-height:1.45}
h1{font-size:1.8em;margin-bottom:.2em}h2{border-bottom:2px solid #e3e3e3;padding-bottom:.2em;margin-top:2em}
.subtitle{color:#555;margin-top:0}nav{background:#f6f7f9;padding:.6em 1em;border-radius:6px}
nav a{margin-right:1em}table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.9em}
th,td{border:1px solid #d8d8d8;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f0f2f5}td{background:#fff}tr:nth-child(even) td{background:#fafbfc}
.table-block{margin:.6em 0 1.2em}.table-block .caption{font-style:italic;color:#444;margin:0 0 .3em}
.table-scroll{overflow-x:auto;max-width:100%}.table-scroll table{margin:0}
.table-scroll th:first-child,.table-scroll td:first-child{position:sticky;left:0;z-index:1}
table.nowrap td,td.nw{white-space:nowrap}
figure{margin:1em 0 1.6em}figure img{max-width:100%;
border:1px solid #eee}figcaption{font-style:italic;color:#444;font-size:.92em}
pre{background:#f6f7f9;padding:.8em;overflow-x:auto;font-size:.85em;border-radius:6px}
code{background:#f3f3f3;padding:0 .2em;border-radius:3px}
"""


def _inline(text: str) -> str:
    """Escape, then render `code`, **bold** and [links](url)."""
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    escaped = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


def html_table(frame: pd.DataFrame, caption: str = "", *, nowrap: bool = False) -> str:
    """A table as HTML inside a horizontally scrolling wrapper (`.table-scroll`, CSS overflow-x:auto), so a
    table wider than the page scrolls instead of being cut off, its first column staying in view; the
    caption stands above the wrapper. Cells of at most `SHORT_CELL` characters never wrap; `nowrap` keeps
    every cell on one line. Returns the HTML."""
    label = html.escape(re.sub(r"[`*]", "", caption.split(". ")[0]) or "table", quote=True)
    parts = ['<div class="table-block">']
    if caption:
        parts.append(f'<p class="caption">{_inline(caption)}</p>')
    parts.append(f'<div class="table-scroll" role="region" tabindex="0" aria-label="{label}">')
    parts.append('<table class="nowrap">' if nowrap else "<table>")
    parts.append(
        "<thead><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns) + "</tr></thead><tbody>"
    )
    for row in frame.itertuples(index=False):
        parts.append("<tr>" + "".join(_td(str(v)) for v in row) + "</tr>")
    parts.append("</tbody></table></div></div>")
    return "".join(parts)


SHORT_CELL = 24  # characters: a cell this short (a number with its interval, a budget) never wraps


def _td(text: str) -> str:
    nowrap = ' class="nw"' if len(text) <= SHORT_CELL else ""
    return f"<td{nowrap}>{html.escape(text)}</td>"


def image_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def to_html(doc: Document) -> str:
    """One self-contained HTML page: inline CSS, figures as base64 data URIs."""
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(doc.title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(doc.title)}</h1>",
    ]
    if doc.subtitle:
        out.append(f'<p class="subtitle">{_inline(doc.subtitle)}</p>')
    out.append(
        "<nav>"
        + "".join(f'<a href="#{s.anchor or anchor(s.title)}">{html.escape(s.title)}</a>' for s in doc.sections)
        + "</nav>"
    )
    for section in doc.sections:
        out.append(f'<section id="{section.anchor or anchor(section.title)}">')
        out.append(f"<h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Paragraph):
                out.append(f"<p>{_inline(block.text)}</p>")
            elif isinstance(block, Bullets):
                out.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>")
            elif isinstance(block, Table):
                out.append(html_table(block.frame, block.caption, nowrap=block.nowrap))
            elif isinstance(block, Image):
                alt = html.escape(block.alt or block.caption or Path(block.path).stem)
                cap = f"<figcaption>{_inline(block.caption)}</figcaption>" if block.caption else ""
                out.append(f'<figure><img src="{image_data_uri(block.path)}" alt="{alt}">{cap}</figure>')
            elif isinstance(block, Code):
                out.append(f"<pre><code>{html.escape(block.text)}</code></pre>")
        out.append("</section>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"
