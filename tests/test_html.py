"""bench.report.html: escaping, sort attributes, embedded images, CSP, self-containment, atomic write."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.report import html as H
from bench.report.html import Cell, esc, figure_html, pre_html, section_html, table_html, text_html, write_page

HOSTILE = [
    "<script>alert(1)</script>",
    "a & b",
    '"quoted" \'single\'',
    "<img src=x onerror=alert(2)>",
    "</table></section><script>x()</script>",
    "&lt;already escaped&gt;",
]
VOID = {"meta", "img", "br", "hr", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}


class Page(HTMLParser):
    """Elements (tag, attrs), text by enclosing tag, script bodies; checks nesting."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.stack: list[str] = []
        self.texts: list[tuple[str, str]] = []
        self.scripts: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag == "script":
            self.scripts.append("")
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-3:]}"
        self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] == "script":
            self.scripts[-1] += data
        self.texts.append((self.stack[-1] if self.stack else "", data))

    def text(self) -> str:
        return "".join(d for tag, d in self.texts if tag not in ("script", "style"))

    def find(self, tag, **attrs) -> list[dict]:
        return [a for t, a in self.elements if t == tag and all(a.get(k) == v for k, v in attrs.items())]


def _png(path: Path, w=48, h=32) -> bytes:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path.read_bytes()


def _hostile_page(tmp_path) -> tuple[str, Path, Path]:
    png = tmp_path / '<script>alert("png") & \'x\'.png'  # no "/" in a file name
    svg = tmp_path / 'fig "<b>" & \'x\'.svg'
    _png(png)
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>')
    rows = [[name, Cell(name, 1.0, ("best",), title=name), Cell(name, None, ("unsupported",))] for name in HOSTILE]
    body = [
        section_html(HOSTILE[0], table_html(["method", *HOSTILE[1:3]], rows, caption=HOSTILE[3], table_id="t1")),
        section_html(HOSTILE[4], text_html(HOSTILE[1]), pre_html(HOSTILE[2]),
                     figure_html(png, HOSTILE[0], svg_path=svg, alt=HOSTILE[3])),
    ]
    out = write_page(tmp_path / "site", HOSTILE[5], body, subtitle=HOSTILE[4])
    return out.read_text(encoding="utf-8"), png, svg


def test_esc():
    assert esc('<a href="x">&\'</a>') == "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;&lt;/a&gt;"
    assert esc(None) == "" and esc(3.5) == "3.5"
    assert esc("&amp;") == "&amp;amp;"  # text, not markup: escaped again


def test_hostile_text_never_becomes_markup(tmp_path):
    text, png, svg = _hostile_page(tmp_path)
    page = Page(text)
    assert not page.stack, f"unclosed elements {page.stack}"
    # exactly one script element: the page's own sort script
    assert [t for t, _ in page.elements].count("script") == 1
    assert page.scripts == [H._SCRIPT]
    tags = {t for t, _ in page.elements}
    assert tags <= {"html", "head", "meta", "title", "style", "body", "header", "h1", "p", "nav", "h2", "ol",
                    "li", "a", "main", "section", "div", "table", "caption", "thead", "tbody", "tr", "th",
                    "td", "button", "span", "pre", "figure", "img", "figcaption", "footer", "script"}, tags
    assert len(page.find("img")) == 1
    for tag, attrs in page.elements:
        assert not any(k.startswith("on") for k in attrs), (tag, attrs)
    # every hostile string survives as text, verbatim, wherever it went
    body_text = page.text()
    for s in HOSTILE:
        assert s in body_text, s
    assert [d for t, d in page.texts if t == "title"] == [HOSTILE[5]]
    assert [d for t, d in page.texts if t == "caption"] == [HOSTILE[3]]
    assert [d for t, d in page.texts if t == "pre"] == [HOSTILE[2]]
    assert {d for t, d in page.texts if t == "h2"} >= {HOSTILE[0], HOSTILE[4]}
    # attributes round-trip too: tooltips, alt text, the SVG's file name
    titles = [a["title"] for a in page.find("td") if "title" in a]
    assert titles == HOSTILE
    assert page.find("img")[0]["alt"] == HOSTILE[3]
    assert [a["download"] for a in page.find("a") if "download" in a] == [svg.name]
    # the page never names the PNG's file (it is embedded) and the raw text holds no live tag
    assert "<script>alert" not in text.replace(f"<script>{H._SCRIPT}</script>", "")
    assert "<img src=x" not in text


def test_data_sort_attributes():
    rows = [["m1", Cell("31.20", 31.2, ("best", "significant")), Cell("unsupported", None, ("unsupported",)),
             Cell("7", 7), Cell("x", "text key")],
            ["m2", Cell("inf", float("inf")), Cell("nan", float("nan")), Cell("-0.5", -0.5, title="t"), "plain"]]
    page = Page(table_html(["method", "a", "b", "c", "d"], rows, caption="cap", table_id="lb"))
    assert page.find("table")[0] == {"class": "leaderboard sortable", "id": "lb"}
    heads = page.find("th", scope="col")
    assert [h["aria-sort"] for h in heads] == ["none"] * 5
    assert heads[0].get("data-sort-type") == "text" and all("data-sort-type" not in h for h in heads[1:])
    assert len(page.find("button", type="button")) == 5
    # the first column is a row header sorted by its text
    assert [a["data-sort"] for a in page.find("th", scope="row")] == ["m1", "m2"]
    tds = page.find("td")
    assert [a.get("data-sort") for a in tds] == ["31.2", None, "7.0", "text key", "Infinity", None, "-0.5", None]
    assert float(tds[0]["data-sort"]) == 31.2 and float(tds[6]["data-sort"]) == -0.5
    assert tds[0]["class"] == "best significant num"
    assert tds[1]["class"] == "unsupported"
    assert tds[3].get("class") is None  # a text sort key is not a number
    assert tds[6]["title"] == "t"
    plain = table_html(["method", "a"], [["m", "1"]], sortable=False)
    assert 'class="leaderboard"' in plain and "button" not in plain and "aria-sort" not in plain


def test_table_rejects_bad_input():
    with pytest.raises(ValueError, match="row 0 has 1 cells"):
        table_html(["method", "a"], [["m"]])
    with pytest.raises(ValueError, match="CSS class"):
        table_html(["method", "a"], [["m", Cell("1", 1, ('best" onclick="x',))]])
    with pytest.raises(TypeError):
        table_html(["method", "a"], [["m", Cell("1", object())]])


def test_images_embed_and_decode(tmp_path):
    png_bytes = _png(tmp_path / "fig.png")
    svg_bytes = b'<svg xmlns="http://www.w3.org/2000/svg" width="2" height="2"/>'
    (tmp_path / "fig.svg").write_bytes(svg_bytes)
    page = Page(figure_html(tmp_path / "fig.png", "PSNR vs scale", svg_path=tmp_path / "fig.svg"))
    src = page.find("img")[0]["src"]
    assert src.startswith("data:image/png;base64,")
    assert base64.b64decode(src.split(",", 1)[1], validate=True) == png_bytes
    assert page.find("img")[0]["alt"] == "PSNR vs scale"  # alt defaults to the caption
    link = page.find("a")[0]
    assert link["download"] == "fig.svg"
    assert link["href"].startswith("data:image/svg+xml;base64,")
    assert base64.b64decode(link["href"].split(",", 1)[1], validate=True) == svg_bytes
    (tmp_path / "fake.png").write_bytes(b"<script>alert(1)</script>")
    with pytest.raises(ValueError, match="not a PNG"):
        figure_html(tmp_path / "fake.png", "x")


def test_csp_and_no_network_references(tmp_path):
    text, _, _ = _hostile_page(tmp_path)
    page = Page(text)
    metas = page.find("meta")
    assert metas[0] == {"charset": "utf-8"}
    csp = [m["content"] for m in metas if m.get("http-equiv") == "Content-Security-Policy"]
    assert csp == [H.CSP]
    policy = dict(d.strip().split(" ", 1) for d in csp[0].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["img-src"] == "data:"
    assert policy["style-src"] == "'unsafe-inline'"
    # the only script allowed is the page's own, by its hash
    digest = base64.b64encode(hashlib.sha256(page.scripts[0].encode()).digest()).decode()
    assert policy["script-src"] == f"'sha256-{digest}'"
    # the CSP comes before anything it governs
    assert text.index("Content-Security-Policy") < text.index("<style>") < text.index("<body>")
    refs = [(t, k, v) for t, a in page.elements for k, v in a.items() if k in ("src", "href", "srcset", "action")]
    assert refs
    for tag, key, value in refs:
        assert value.startswith(("data:", "#")), (tag, key, value[:60])
    assert not re.search(r"https?://", text)
    assert not page.find("link") and not page.find("iframe") and not page.find("object")


def test_toc_links_to_unique_sections(tmp_path):
    body = [section_html("PSNR (higher is better)", text_html("a")), section_html("PSNR (higher is better)"),
            section_html("Notes & caveats"), section_html("<>")]
    page = Page(write_page(tmp_path / "r.html", "t", body).read_text())
    ids = [a["id"] for a in page.find("section")]
    assert len(set(ids)) == 4
    assert [a["href"] for a in page.find("a") if a.get("href", "").startswith("#")] == [f"#{i}" for i in ids]
    toc = [d for t, d in page.texts if t == "a"]
    assert toc == ["PSNR (higher is better)", "PSNR (higher is better)", "Notes & caveats", "<>"]


def test_write_page_is_atomic_and_utf8(tmp_path, monkeypatch):
    out = write_page(tmp_path / "site", "Ergebnisse – 测试", [text_html("Größe ✓")], subtitle="ß")
    assert out == tmp_path / "site" / "index.html"
    assert os.listdir(out.parent) == ["index.html"]
    text = out.read_bytes().decode("utf-8")
    assert "Größe ✓" in Page(text).text() and "<title>Ergebnisse – 测试</title>" in text
    assert out.stat().st_mode & 0o777 == 0o644
    write_page(out.parent, "again", [])  # overwrite in place
    assert os.listdir(out.parent) == ["index.html"] and "<title>again</title>" in out.read_text()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(H.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_page(out, "never", [])
    assert os.listdir(out.parent) == ["index.html"]  # no temp file left, the old page intact
    assert "<title>again</title>" in out.read_text()


def test_two_line_cells_group_headers_and_folded_blocks(tmp_path):
    rows = [["m1", Cell(HOSTILE[0], 1.0, ("best",), sub=HOSTILE[3]), Cell("2", 2.0), Cell("x", None, ("failed",))]]
    text = table_html(["method", "x2", "x4", "x2"], rows, table_id="t", groups=[(HOSTILE[4], 2), ("set14", 1)])
    page = Page(text)
    assert not page.stack
    # the group row spans the columns after the first; the sortable row is the last header row
    groups = page.find("th", scope="colgroup")
    assert [g["colspan"] for g in groups] == ["2", "1"]
    assert [d for t, d in page.texts if t == "th"][:2] == [HOSTILE[4], "set14"]
    assert text.index('scope="colgroup"') < text.index('aria-sort="none"')
    assert len(page.find("button")) == 4
    # the interval is a second line inside the cell, escaped like the rest
    td = [a for t, a in page.elements if t == "td"][1]  # after the empty corner of the group row
    assert td["class"] == "best num two-line"
    spans = [(t, d) for t, d in page.texts if t == "span" and d in (HOSTILE[0], HOSTILE[3])]
    assert spans == [("span", HOSTILE[0]), ("span", HOSTILE[3])]
    assert '<span class="v">' in text and '<span class="sub">' in text and "<script>alert" not in text
    with pytest.raises(ValueError, match="group spans"):
        table_html(["method", "a", "b"], [["m", "1", "2"]], groups=[("d", 1)])
    # folded blocks, figure grids, subsections in the table of contents, the footer
    _png(tmp_path / "f.png")
    fig = figure_html(tmp_path / "f.png", "cap")
    body = [section_html("Leaderboards", H.subsection_html("PSNR", H.details_html(HOSTILE[0], pre_html("x"))),
                         H.subsection_html("SSIM")),
            section_html("Figures", H.figure_grid_html(fig, fig, columns=2)), section_html("Notes")]
    out = Page(write_page(tmp_path / "p.html", "t", body, footer=HOSTILE[1]).read_text())
    assert not out.stack
    assert [d for t, d in out.texts if t == "summary"] == [HOSTILE[0]]
    assert [a.get("class") for a in out.find("div") if "figure-grid" in (a.get("class") or "")] == ["figure-grid cols-2"]
    toc_links = [a["href"] for a in out.find("a") if a.get("href", "").startswith("#")]
    ids = [a["id"] for a in out.find("section")]
    assert toc_links == [f"#{i}" for i in ids] and len(set(ids)) == 5
    assert [d for t, d in out.texts if t == "h3"] == ["PSNR", "SSIM"]
    assert len(out.find("ul", **{"class": "sub"})) == 1  # the subsections nest under their section
    assert [d for t, d in out.texts if t == "footer"] == [HOSTILE[1]]
    default = write_page(tmp_path / "d.html", "t", []).read_text()
    assert "\u26a0" not in default.split("</style>")[1]  # no legend for marks the page may not have
    assert H.figure_grid_html() == ""
    # long preformatted lines wrap (all the LaTeX is visible and copyable) instead of being cut off
    assert re.search(r"pre\.code \{[^}]*white-space: pre-wrap", H._CSS)
    assert re.search(r"table\.leaderboard th, table\.leaderboard td \{[^}]*white-space: nowrap", H._CSS)
