"""The building blocks of NeuroFuse's HTML pages: one style sheet, sections with a table
of contents, tables, figures and a small text renderer for captions and methods.

Pages are self-contained (inline CSS, no script, no network) and deterministic: the
same inputs give the same bytes. Figures are *referenced* by a path relative to the
page, never embedded, so a report stays a few kilobytes and the results folder is the
unit that is shared. SVGs are referenced with ``<img>`` as well: matplotlib gives every
SVG the same glyph ids (``DejaVuSans-30`` …), so several inlined into one page would
clash.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from neurofuse import __version__
from neurofuse.errors import NeuroFuseError
from neurofuse.naming import parse_name

STYLE = """
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --accent: #0b5cad; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0; display: grid; grid-template-columns: 17rem minmax(0, 1fr); }
nav { position: sticky; top: 0; height: 100vh; overflow-y: auto; padding: 1.5rem 1rem;
      background: var(--soft); border-right: 1px solid var(--line); font-size: 0.9rem; }
nav ul { list-style: none; margin: 0; padding-left: 0.8rem; }
nav > ul { padding-left: 0; }
nav a { color: var(--ink); text-decoration: none; display: block; padding: 0.1rem 0; }
nav a:hover { color: var(--accent); }
main { padding: 1.5rem 2.5rem 4rem; max-width: 72rem; }
h1 { margin-top: 0; font-size: 1.8rem; }
h2 { border-bottom: 2px solid var(--line); padding-bottom: 0.2rem; margin-top: 2.5rem; }
h3 { margin-top: 2rem; color: var(--accent); }
.lead { color: var(--muted); }
a { color: var(--accent); }
table { border-collapse: collapse; font-size: 0.9rem; margin: 0.8rem 0; }
th, td { border: 1px solid var(--line); padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
thead th { background: var(--soft); position: sticky; top: 0; }
table.facts { max-width: 100%; }
table.facts th { background: var(--soft); font-weight: 600; white-space: nowrap; }
table.facts td { overflow-wrap: anywhere; }
table.facts table.facts { margin: 0; width: 100%; }
.pairs { display: grid; grid-template-columns: repeat(auto-fill, minmax(13rem, 1fr)); gap: 0 1rem; }
td ul { margin: 0; padding-left: 1.1rem; }
.summary h4 { margin: 1rem 0 0; }
.wide { overflow-x: auto; }
td > .wide { width: 0; min-width: 100%; }
.wide td { white-space: nowrap; }
figure { margin: 1.5rem 0; border: 1px solid var(--line); border-radius: 6px; padding: 0.8rem; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
figcaption { color: var(--ink); font-size: 0.92rem; margin-top: 0.6rem; }
figcaption p { margin: 0.3rem 0; }
figcaption .file { color: var(--muted); font-size: 0.8rem; }
code { background: var(--soft); padding: 0 0.2rem; border-radius: 3px; font-size: 0.88em; }
.warnings li { color: #8a4b00; }
dl.legend dt { font-weight: 600; float: left; clear: left; width: 12rem; }
dl.legend dd { margin-left: 13rem; }
footer { color: var(--muted); font-size: 0.8rem; margin-top: 3rem; }
@media (max-width: 60rem) { body { display: block; } nav { position: static; height: auto; border-right: 0;
                            border-bottom: 1px solid var(--line); } main { padding: 1rem; } }
@media print { body { display: block; } nav { display: none; } }
"""


@dataclass
class Section:
    """A titled part of a page; ``children`` are nested one heading level deeper."""

    anchor: str
    title: str
    body: str = ""
    children: list[Section] = field(default_factory=list)

    def render(self, level: int = 2) -> str:
        inner = "".join(child.render(level + 1) for child in self.children)
        heading = f"<h{level}>{escape(self.title)}</h{level}>"
        return f'<section id="{escape(self.anchor)}">{heading}\n{self.body}\n{inner}</section>\n'


def _toc(sections: Sequence[Section]) -> str:
    items = "".join(
        f'<li><a href="#{escape(s.anchor)}">{escape(s.title)}</a>{_toc(s.children) if s.children else ""}</li>'
        for s in sections
    )
    return f"<ul>{items}</ul>"


def page(title: str, lead: str, sections: Sequence[Section]) -> str:
    """A complete HTML document: table of contents on the left, the sections on the right."""
    body = "".join(s.render() for s in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{STYLE}</style></head><body>
<nav><strong>Contents</strong>{_toc(sections)}</nav>
<main>
<h1>{escape(title)}</h1>
<p class="lead">{lead}</p>
{body}<footer>Made by NeuroFuse {escape(__version__)}.</footer>
</main></body></html>
"""


def anchor(text: str) -> str:
    """An HTML id from free text: ``sub-01_task-rest`` stays as it is."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-").lower()


def _cell(value: str | list[str], raw: bool) -> str:
    if isinstance(value, list):
        return bullet_list(v if raw else escape(v) for v in value) if value else "none"
    return value if raw else escape(value)


def facts_table(rows: Iterable[tuple[str, str | list[str]]], *, raw: bool = False) -> str:
    """A two-column table of (quantity, value); a list value becomes a bullet list.

    Values are text (escaped here) unless ``raw``: then they are trusted HTML.
    """
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{_cell(v, raw)}</td></tr>" for k, v in rows)
    return f'<table class="facts">{cells}</table>'


def data_table(table: pd.DataFrame, titles: Mapping[str, str] | None = None) -> str:
    """A pandas table as HTML; ``titles`` are column tooltips."""
    titles = titles or {}
    head = "".join(f"<th title='{escape(titles.get(c, ''))}'>{escape(str(c))}</th>" for c in table.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(v))}</td>" for v in row) + "</tr>" for row in table.itertuples(index=False)
    )
    return f'<div class="wide"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def bullet_list(items: Iterable[str], css: str = "") -> str:
    """``<ul>`` of trusted HTML items."""
    cls = f' class="{css}"' if css else ""
    return f"<ul{cls}>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def nested_table(value: Any, *, top: bool = True) -> str:
    """Any JSON value as HTML: objects become two-column tables, nested to any depth.

    Below the top level, an object of plain values (hyper-parameters, one fold's figures)
    is written as a grid of ``key = value`` pairs, and a list of objects as one table with a
    row each: a table per object would nest tables three deep and push the page wider than
    the screen.
    """
    if isinstance(value, Mapping):
        if not value:
            return "<em>empty</em>"
        if not top and all(_plain(v) for v in value.values()):
            pairs = (f"<span class=\"pair\">{escape(str(k))} = {_plain_text(v)}</span>" for k, v in value.items())
            return '<span class="pairs">' + " ".join(pairs) + "</span>"
        return facts_table(((str(k), nested_table(v, top=False)) for k, v in value.items()), raw=True)
    if _plain(value):
        return _plain_text(value)
    if all(isinstance(v, Mapping) for v in value):
        # Records (one per fold, per run): a row each, columns in first-seen order.
        columns = list(dict.fromkeys(k for v in value for k in v))
        return data_table(pd.DataFrame([{c: _record_cell(v.get(c)) for c in columns} for v in value]))
    return bullet_list(nested_table(v, top=False) for v in value)


def _plain(value: Any) -> bool:
    """A scalar or a list of scalars: fits on one line."""
    items = value if isinstance(value, list) else [value]
    return all(not isinstance(v, (Mapping, list)) for v in items)


def _record_cell(value: Any) -> str:
    if isinstance(value, Mapping):
        return "; ".join(f"{k} = {_record_cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_record_cell(v) for v in value)
    return _scalar(value)


def _plain_text(value: Any) -> str:
    if isinstance(value, list):
        return escape(", ".join(_scalar(v) for v in value)) or "<em>empty</em>"
    return escape(_scalar(value))


def _scalar(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


_INLINE = [
    (re.compile(r"``(.+?)``|`(.+?)`"), lambda m: f"<code>{m[1] or m[2]}</code>"),
    (re.compile(r"\*\*(.+?)\*\*"), lambda m: f"<strong>{m[1]}</strong>"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), lambda m: f"<em>{m[1]}</em>"),
    (re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)"), lambda m: f'<a href="{m[2]}">{m[1]}</a>'),
]


def _inline(text: str) -> str:
    out = escape(text, quote=False)
    for pattern, repl in _INLINE:
        out = pattern.sub(repl, out)
    return out


def text_to_html(text: str, *, heading_level: int = 3) -> str:
    """Plain prose with a little Markdown (also valid reStructuredText for captions).

    Blocks are separated by blank lines: ``#`` headings (``#`` becomes
    ``<h{heading_level}>``), ``-``/``*`` bullet lists, otherwise paragraphs. Inline:
    ```code```/````code````, ``**bold**``, ``*italic*``, ``[text](url)``. Anything else is
    shown as text (HTML is escaped).
    """
    blocks = [b.strip() for b in re.split(r"\n\s*\n", text.strip()) if b.strip()]
    out = []
    for block in blocks:
        lines = [line.strip() for line in block.splitlines()]
        heading = re.match(r"^(#{1,4})\s+(.*)$", block)
        if heading and len(lines) == 1:
            level = min(6, heading_level + len(heading[1]) - 1)
            out.append(f"<h{level}>{_inline(heading[2])}</h{level}>")
        elif all(re.match(r"^[-*]\s+", line) for line in lines):
            out.append(bullet_list(_inline(re.sub(r"^[-*]\s+", "", line)) for line in lines))
        else:
            out.append(f"<p>{_inline(' '.join(lines))}</p>")
    return "\n".join(out)


def relative_src(path: str | os.PathLike, page_path: str | os.PathLike) -> str:
    """``path`` as seen from the folder of the page (POSIX separators, URL-safe)."""
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(Path(page_path).parent))
    return escape(Path(rel).as_posix())


def figure_html(path: str | os.PathLike, page_path: str | os.PathLike, title: str, caption_html: str) -> str:
    """A figure referenced relative to the page; a missing file is an error, not a broken image."""
    require_file(path, "figure")
    src = relative_src(path, page_path)
    return (
        f'<figure><a href="{src}"><img src="{src}" alt="{escape(title)}"></a>'
        f"<figcaption><p><strong>{escape(title)}.</strong></p>{caption_html}"
        f'<p class="file">File: <code>{escape(Path(path).name)}</code></p></figcaption></figure>'
    )


def require_file(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise NeuroFuseError(f"the {what} for the report is missing", path, "re-run the step that makes it")
    return path


def read_json(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """A JSON object, or a one-line :class:`NeuroFuseError` that names the file."""
    try:
        data = json.loads(require_file(path, what).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise NeuroFuseError(f"the {what} is not valid JSON ({err})", path, "re-run the step that writes it") from None
    if not isinstance(data, dict):
        raise NeuroFuseError(f"the {what} is not a JSON object", path, "re-run the step that writes it")
    return data


def read_caption(captions_dir: str | os.PathLike, name: str) -> str:
    """The caption ``<captions_dir>/<name>.rst`` (shared with ``snakemake --report``) as HTML."""
    return text_to_html(require_file(Path(captions_dir) / f"{name}.rst", "caption").read_text(encoding="utf-8"))


def name_key(path: str | os.PathLike) -> tuple[dict[str, str], str, str]:
    """``parse_name`` of a file given to a report, with a one-line error for a foreign name."""
    try:
        return parse_name(Path(path).name)
    except ValueError:
        raise NeuroFuseError("not a BIDS-derivative file name the report knows", path,
                             "pass only the workflow's outputs to the report") from None
