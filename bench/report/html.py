"""A self-contained HTML report page: one file, inline CSS and JS, images as data: URIs.

The page makes no network request at all: every image is embedded, there is no external style
sheet, font or script, and a Content-Security-Policy meta tag forbids any load that is not a
``data:`` image (the one inline script is allowed by its sha256 hash, not by ``'unsafe-inline'``,
so even markup that slipped through escaping could not run script).

Building blocks return HTML strings; every piece of text that goes into them (method, dataset and
file names, captions, headings, cell texts, tooltips) is escaped with :func:`esc`. Strings passed
to :func:`section_html` and :func:`write_page` as *parts* are trusted HTML, i.e. the output of the
functions here.

Tables made by :func:`table_html` are sortable in the browser: each header is a button; a click
sorts ascending, a second click descending (``aria-sort`` follows). The first column sorts as text,
the others by each cell's ``data-sort`` value (numbers numerically); cells without a sort value go
last in both directions, and equal values keep their order (stable sort). A table may carry a
group row above the sortable header (e.g. each dataset spanning its scales); the buttons are in
the last header row, whose columns match the body's.

Layout: a cell may have a second, smaller line (``Cell.sub``, e.g. a confidence interval under the
mean); cells never wrap, and a table wider than the page scrolls sideways inside its frame.
Sections (``<h2>``) may hold subsections (``<h3>``, :func:`subsection_html`); the table of contents
lists both. Figures can be laid out in a responsive grid (:func:`figure_grid_html`), and long
content can be folded away (:func:`details_html`). Preformatted blocks wrap long lines, so all of
their text is visible and copyable.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Cell", "esc", "table_html", "figure_html", "figure_grid_html", "section_html", "subsection_html",
           "details_html", "text_html", "pre_html", "page_html", "write_page", "CSP"]


def esc(text: object) -> str:
    """HTML-escape ``text`` (any object, through ``str``) for element content and quoted
    attribute values: ``& < > " '`` become entities."""
    return html.escape("" if text is None else str(text), quote=True)


@dataclass
class Cell:
    """One table cell. ``sort`` orders the column in the browser: a number sorts numerically, a
    string as text, ``None`` goes last in both directions. ``classes`` style the cell (``best``,
    ``significant``, ``circular``, ``unsupported``, ``failed``, ...); ``title`` is its tooltip;
    ``sub`` is an optional second, smaller line (e.g. the interval under the mean)."""

    text: str
    sort: float | str | None = None
    classes: tuple[str, ...] = ()
    title: str | None = None
    sub: str | None = None


_CLASS_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _classes(classes) -> list[str]:
    if isinstance(classes, str):
        classes = classes.split()
    out = []
    for c in classes:
        if not _CLASS_TOKEN.match(str(c)):
            raise ValueError(f"not a CSS class name: {c!r}")
        out.append(str(c))
    return out


def _sort_attr(value) -> tuple[str, bool] | None:
    """``(data-sort value, is_number)``; None when the cell has no sort value."""
    if value is None:
        return None
    if isinstance(value, str):
        return value, False
    if isinstance(value, bool):
        value = int(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"sort value must be a number, a string or None, not {type(value).__name__}") from None
    if math.isnan(x):
        return None
    if math.isinf(x):
        return ("Infinity" if x > 0 else "-Infinity"), True
    return repr(x), True


def _cell_html(cell: Cell | str, tag: str, *, text_column: bool) -> str:
    if not isinstance(cell, Cell):
        cell = Cell(str(cell), sort=str(cell) if text_column else None)
    attrs = []
    if tag == "th":
        attrs.append('scope="row"')
    classes = _classes(cell.classes)
    sort = _sort_attr(cell.sort)
    if sort is not None:
        value, numeric = sort
        attrs.append(f'data-sort="{esc(value)}"')
        if numeric and not text_column:
            classes.append("num")
    if cell.sub is not None:
        classes.append("two-line")
    if classes:
        attrs.append(f'class="{esc(" ".join(dict.fromkeys(classes)))}"')
    if cell.title is not None:
        attrs.append(f'title="{esc(cell.title)}"')
    open_tag = " ".join([tag, *attrs])
    if cell.sub is not None:
        return f'<{open_tag}><span class="v">{esc(cell.text)}</span><span class="sub">{esc(cell.sub)}</span></{tag}>'
    return f"<{open_tag}>{esc(cell.text)}</{tag}>"


def table_html(header: list[str], rows: list[list[Cell | str]], *, caption: str | None = None,
               sortable: bool = True, table_id: str | None = None,
               groups: list[tuple[str, int]] | None = None) -> str:
    """A ``<table class="leaderboard sortable">``; the first column (the method) is a row header
    and sorts as text. A plain string cell is a cell without a sort value (in the first column:
    sorted by its text). ``groups``: ``(label, span)`` pairs for a header row above the columns
    after the first (spans adding up to ``len(header) - 1``), e.g. a dataset over its scales."""
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"row {i} has {len(row)} cells, the header {len(header)}")
    if groups is not None:
        spans = [int(n) for _, n in groups]
        if any(n < 1 for n in spans) or sum(spans) != len(header) - 1:
            raise ValueError(f"group spans {spans} do not cover the {len(header) - 1} columns after the first")
    classes = "leaderboard sortable" if sortable else "leaderboard"
    id_attr = f' id="{esc(table_id)}"' if table_id else ""
    out = [f'<div class="table-wrap"><table class="{classes}"{id_attr}>']
    if caption is not None:
        out.append(f"<caption>{esc(caption)}</caption>")
    group_row = ""
    if groups is not None:
        group_row = ('<tr class="groups"><td class="corner"></td>'
                     + "".join(f'<th scope="colgroup" colspan="{int(n)}">{esc(label)}</th>' for label, n in groups)
                     + "</tr>")
    heads = []
    for i, name in enumerate(header):
        kind = ' data-sort-type="text"' if i == 0 else ""
        if sortable:
            heads.append(f'<th scope="col" aria-sort="none"{kind}><button type="button" class="sort-button">'
                         f'{esc(name)}<span class="arrow" aria-hidden="true"></span></button></th>')
        else:
            heads.append(f'<th scope="col">{esc(name)}</th>')
    out.append("<thead>" + group_row + "<tr>" + "".join(heads) + "</tr></thead>")
    out.append("<tbody>")
    for row in rows:
        cells = [_cell_html(c, "th" if i == 0 else "td", text_column=i == 0) for i, c in enumerate(row)]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "\n".join(out)


_MIME = [(b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg")]


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def figure_html(png_path, caption: str, *, svg_path=None, alt: str | None = None) -> str:
    """A ``<figure>`` with the PNG embedded as a data: URI and the escaped caption; with
    ``svg_path`` also a download link holding the SVG as a data: URI."""
    png_path = Path(png_path)
    data = png_path.read_bytes()
    mime = next((m for magic, m in _MIME if data.startswith(magic)), None)
    if mime is None:
        raise ValueError(f"{png_path}: not a PNG (or JPEG) file")
    out = ['<figure class="figure">',
           f'<img src="{_data_uri(data, mime)}" alt="{esc(caption if alt is None else alt)}">',
           f"<figcaption>{esc(caption)}"]
    if svg_path is not None:
        svg_path = Path(svg_path)
        out.append(f' <a class="download" download="{esc(svg_path.name)}" '
                   f'href="{_data_uri(svg_path.read_bytes(), "image/svg+xml")}">SVG</a>')
    out.append("</figcaption></figure>")
    return "".join(out)


def figure_grid_html(*figures: str, columns: int = 2) -> str:
    """Trusted ``<figure>`` HTML laid out in a grid of ``columns`` columns (fewer on narrow
    windows)."""
    if not figures:
        return ""
    columns = max(1, min(4, int(columns)))
    return f'<div class="figure-grid cols-{columns}">' + "".join(figures) + "</div>"


def details_html(summary: str, *parts: str, open: bool = False, classes: tuple[str, ...] = ()) -> str:
    """A foldable ``<details>`` block: the escaped ``summary`` line, then the trusted ``parts``."""
    cls = _classes(classes)
    cls_attr = f' class="{esc(" ".join(cls))}"' if cls else ""
    return (f"<details{cls_attr}{' open' if open else ''}><summary>{esc(summary)}</summary>\n"
            + "\n".join(parts) + "\n</details>")


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:40].strip("-")
    return "sec-" + (slug or "section")


_SECTION = re.compile(r'<section class="report-(section|subsection)" id="(sec-[a-z0-9-]*)"><(h2|h3)>(.*?)</(?:h2|h3)>',
                      re.S)


def section_html(heading: str, *parts: str) -> str:
    """A ``<section>`` with an ``<h2>`` heading (escaped) and the trusted HTML ``parts``; the
    page's table of contents links to it."""
    return (f'<section class="report-section" id="{_slug(heading)}"><h2>{esc(heading)}</h2>\n'
            + "\n".join(parts) + "\n</section>")


def subsection_html(heading: str, *parts: str) -> str:
    """A ``<section>`` with an ``<h3>`` heading inside a :func:`section_html`; the table of contents
    lists it under its section."""
    return (f'<section class="report-subsection" id="{_slug(heading)}"><h3>{esc(heading)}</h3>\n'
            + "\n".join(parts) + "\n</section>")


def text_html(text: str) -> str:
    """An escaped paragraph."""
    return f"<p>{esc(text)}</p>"


def pre_html(text: str) -> str:
    """An escaped preformatted block (e.g. a LaTeX table to copy); long lines wrap, so nothing is
    cut off."""
    return f'<pre class="code">{esc(text)}</pre>'


_CSS = """
:root { color-scheme: light; --fg: #1b1f24; --muted: #6a737d; --line: #d0d7de; --head: #f3f5f7;
        --accent: #0b5cad; --best: #0b6b2e; --warn: #b35900; }
* { box-sizing: border-box; }
html { scroll-padding-top: .5rem; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); background: #fff; margin: 0 auto; max-width: 1320px; padding: 1.2rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; margin: 0 0 .2rem; }
h2 { font-size: 1.3rem; margin: 1.8rem 0 .5rem; border-bottom: 1px solid var(--line); padding-bottom: .2rem; }
h3 { font-size: 1.08rem; margin: 1.2rem 0 .4rem; }
.subtitle { color: var(--muted); margin: 0 0 .8rem; }
nav.toc { background: var(--head); border: 1px solid var(--line); border-radius: 6px; padding: .4rem 1rem; }
nav.toc h2 { font-size: 1rem; margin: .2rem 0; border: 0; }
nav.toc ol { margin: .2rem 0; padding-left: 1.4rem; columns: 2 22rem; column-gap: 2rem; }
nav.toc li { break-inside: avoid; }
nav.toc ul.sub { display: inline; margin: 0; padding: 0; }
nav.toc ul.sub li { display: inline; }
nav.toc ul.sub li::before { content: "\\00b7\\00a0"; color: var(--muted); padding-left: .4em; }
nav.toc ul.sub li:first-child::before { content: ":\\00a0"; padding-left: 0; }
a { color: var(--accent); }
.table-wrap { overflow-x: auto; margin: .5rem 0 .8rem; }
table.leaderboard { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.leaderboard caption { caption-side: top; text-align: left; font-weight: 600; padding: .3rem 0; }
table.leaderboard th, table.leaderboard td { border: 1px solid var(--line); padding: .2rem .55rem;
                                             white-space: nowrap; }
table.leaderboard thead th { background: var(--head); text-align: center; }
table.leaderboard thead tr.groups th { border-bottom-width: 2px; }
table.leaderboard thead td.corner { border: 0; background: none; }
table.leaderboard tbody th { text-align: left; font-weight: 600; }
table.leaderboard tbody tr:nth-child(even) { background: #fafbfc; }
table.leaderboard td.num { text-align: right; }
table.leaderboard td .v { display: block; }
table.leaderboard td .sub { display: block; font-size: .78em; color: var(--muted); line-height: 1.25; }
.sort-button { font: inherit; font-weight: 600; color: inherit; background: none; border: 0;
               padding: 0; cursor: pointer; }
.sort-button:focus-visible { outline: 2px solid var(--accent); outline-offset: 2px; }
.sort-button .arrow::after { content: "\\2195"; color: var(--muted); padding-left: .3em; font-size: .85em; }
table.sortable:not(:hover) th[aria-sort="none"] .arrow::after { visibility: hidden; }
th[aria-sort="ascending"] .arrow::after { content: "\\25B2"; color: var(--fg); }
th[aria-sort="descending"] .arrow::after { content: "\\25BC"; color: var(--fg); }
.best { font-weight: 700; color: var(--best); }
.best:not(.two-line)::after, .best.two-line .v::after { content: "\\00a0\\2605"; }
.best .sub { font-weight: 400; }
.significant { text-decoration: underline dotted; text-underline-offset: 3px; }
.circular { cursor: help; }
.circular:not(.two-line)::before, .circular.two-line .v::before { content: "\\26A0\\00a0"; color: var(--warn);
                                                                  font-style: normal; }
.unsupported, .failed, .unavailable, .missing { color: var(--muted); font-style: italic; }
.legend { color: var(--muted); font-size: .9rem; margin: .2rem 0 .6rem; }
details { margin: .3rem 0 .6rem; }
details > summary { cursor: pointer; color: var(--accent); }
figure.figure { margin: .6rem 0; min-width: 0; }
figure.figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: .85rem; }
figcaption .download { margin-left: .5rem; }
.figure-grid { display: grid; gap: .4rem 1rem; align-items: start; }
.figure-grid.cols-1 { grid-template-columns: minmax(0, 1fr); }
.figure-grid.cols-2 { grid-template-columns: repeat(auto-fit, minmax(min(100%, 30rem), 1fr)); }
.figure-grid.cols-3 { grid-template-columns: repeat(auto-fit, minmax(min(100%, 22rem), 1fr)); }
.figure-grid.cols-4 { grid-template-columns: repeat(auto-fit, minmax(min(100%, 16rem), 1fr)); }
pre.code { background: var(--head); border: 1px solid var(--line); border-radius: 6px; padding: .7rem;
           font-size: .82rem; white-space: pre-wrap; overflow-wrap: anywhere; }
footer { margin-top: 3rem; color: var(--muted); font-size: .85rem; }
"""

_SCRIPT = """
(function () {
  "use strict";
  var collator = new Intl.Collator(undefined, {numeric: true, sensitivity: "base"});
  function key(cell, text) {
    if (!cell) { return null; }
    var raw = cell.getAttribute("data-sort");
    if (text) {
      var t = raw !== null ? raw : cell.textContent.trim();
      return t === "" ? null : {num: false, v: t};
    }
    if (raw === null || raw === "") { return null; }
    var x = Number(raw);
    return isNaN(x) ? {num: false, v: raw} : {num: true, v: x};
  }
  function compare(a, b) {
    if (a.num && b.num) { return a.v < b.v ? -1 : (a.v > b.v ? 1 : 0); }
    if (a.num !== b.num) { return a.num ? -1 : 1; }
    return collator.compare(a.v, b.v);
  }
  function sortBy(table, th) {
    var col = th.cellIndex;
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    var text = th.getAttribute("data-sort-type") === "text";
    var heads = table.tHead ? table.tHead.rows[table.tHead.rows.length - 1].cells : [];
    for (var h = 0; h < heads.length; h++) { heads[h].setAttribute("aria-sort", "none"); }
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    for (var b = 0; b < table.tBodies.length; b++) {
      var body = table.tBodies[b];
      var rows = Array.prototype.map.call(body.rows, function (row, i) {
        return {row: row, k: key(row.cells[col], text), i: i};
      });
      rows.sort(function (p, q) {
        if (p.k === null || q.k === null) {
          if (p.k === null && q.k === null) { return p.i - q.i; }
          return p.k === null ? 1 : -1;
        }
        return dir * compare(p.k, q.k) || p.i - q.i;
      });
      var frag = document.createDocumentFragment();
      rows.forEach(function (r) { frag.appendChild(r.row); });
      body.appendChild(frag);
    }
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    if (!table.tHead) { return; }
    Array.prototype.forEach.call(table.tHead.rows[table.tHead.rows.length - 1].cells, function (th) {
      var button = th.querySelector("button");
      if (button) { button.addEventListener("click", function () { sortBy(table, th); }); }
    });
  });
})();
"""


def _csp_hash(code: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode("ascii") + "'"


#: The page's Content-Security-Policy: nothing may load except data: images, the inline style
#: sheet and the one inline script (by hash).
CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
       f"script-src {_csp_hash(_SCRIPT)}; base-uri 'none'; form-action 'none'; object-src 'none'")


def _number_sections(body: str) -> tuple[str, list[tuple[str, str, int]]]:
    """Make section ids unique; return the body and the (id, escaped heading, level) list
    (level 2: section, 3: subsection)."""
    used: set[str] = set()
    toc: list[tuple[str, str, int]] = []

    def fix(m: re.Match) -> str:
        kind, base, tag, heading = m.group(1), m.group(2), m.group(3), m.group(4)
        ident, n = base, 1
        while ident in used:
            n += 1
            ident = f"{base}-{n}"
        used.add(ident)
        toc.append((ident, heading, 3 if tag == "h3" else 2))
        return f'<section class="report-{kind}" id="{ident}"><{tag}>{heading}</{tag}>'

    return _SECTION.sub(fix, body), toc


def _toc_html(toc: list[tuple[str, str, int]]) -> str:
    items: list[str] = []
    subs: list[str] = []

    def close() -> None:
        if subs and items:
            items[-1] = items[-1][:-len("</li>")] + '<ul class="sub">' + "".join(subs) + "</ul></li>"
        subs.clear()

    for ident, heading, level in toc:
        link = f'<a href="#{ident}">{heading}</a>'
        if level == 3 and items:
            subs.append(f"<li>{link}</li>")
        else:
            close()
            items.append(f"<li>{link}</li>")
    close()
    return f'<nav class="toc" aria-label="Contents"><h2>Contents</h2><ol>{"".join(items)}</ol></nav>'


FOOTER = "Generated by srbench. Click a column header to sort; again to reverse."


def page_html(title: str, body: list[str], *, subtitle: str | None = None, footer: str | None = None) -> str:
    """The complete page as a string (see :func:`write_page`)."""
    content, toc = _number_sections("\n".join(body))
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">',
           '<meta name="referrer" content="no-referrer">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<meta name="generator" content="srbench">',
           f"<title>{esc(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
           f"<header><h1>{esc(title)}</h1>"]
    if subtitle:
        out.append(f'<p class="subtitle">{esc(subtitle)}</p>')
    out.append("</header>")
    if toc:
        out.append(_toc_html(toc))
    out += ["<main>", content, "</main>",
            f"<footer>{esc(FOOTER if footer is None else footer)}</footer>",
            f"<script>{_SCRIPT}</script>", "</body>", "</html>", ""]
    return "\n".join(out)


def write_page(path, title: str, body: list[str], *, subtitle: str | None = None, footer: str | None = None) -> Path:
    """Write the page atomically (temporary file + rename) and return its path. ``path`` is the
    HTML file, or a folder (anything not ending in .html/.htm) that gets ``index.html``.
    ``footer`` (plain text) replaces the default footer line."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        path = path / "index.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = page_html(title, body, subtitle=subtitle, footer=footer).encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path
