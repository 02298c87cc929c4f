"""The HTML report in a real browser: headless Debian Chromium through selenium (marker ``browser``).

Skips with the reason when Chromium, chromedriver or selenium is missing
(``apt-get install chromium chromium-driver``, ``pip install selenium``). The page is opened from
a file:// URL; its CSP and the browser's flags keep Chromium off the network. Screenshots are kept
in ``reports/browser-test/`` (git-ignored) for humans to look at: ``screenshot.png`` (the test page),
``report.png`` (a small real report) and ``report-paper.png`` (the whole page of a report the size
of a paper's: 2 datasets x 4 scales x 3 methods x 4 metrics, at 1400 px).
"""

from __future__ import annotations

import io
import json
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from bench.report.html import Cell, figure_html, section_html, table_html, text_html, write_page
from tests import browser
from tests.conftest import REPO

pytestmark = pytest.mark.browser

INJECTED = "<script>alert(1)</script>"
EVIL_METHOD = "<img src=x onerror=alert(2)>"
SCREENSHOT = REPO / "reports" / "browser-test" / "screenshot.png"

# runs before any page script: records dialogs, uncaught errors and CSP violations
HOOKS = """
window.__alerts = []; window.__errors = []; window.__csp = [];
["alert", "confirm", "prompt"].forEach(function (name) {
  window[name] = function (m) { window.__alerts.push(name + ": " + String(m)); return null; };
});
window.addEventListener("error", function (e) { window.__errors.push(String(e.message)); }, true);
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + e.blockedURI);
});
"""

# method -> (set5 x2, set14 x4, urban100 x4); None = no number (unsupported / failed)
PSNR = {
    "bicubic": (33.66, 26.00, 23.14),
    "nearest": (30.43, None, 21.03),
    "Lanczos": (33.81, 26.12, None),
    EVIL_METHOD: (None, 24.50, 22.10),
    "craft-x4": (None, 28.72, 26.53),
    "bilinear": (32.21, 25.20, 22.50),
}
SSIM = {
    "bicubic": (0.9299, 0.7027),
    "nearest": (0.8741, 0.6405),
    "craft-x4": (None, 0.8053),
    "bilinear": (0.9143, 0.6793),
}


def _rows(scores: dict[str, tuple]) -> list[list]:
    columns = list(zip(*scores.values()))
    best = [max(v for v in col if v is not None) for col in columns]
    rows = []
    for method, values in scores.items():
        row = [method]
        for j, v in enumerate(values):
            if v is None:
                failed = method == EVIL_METHOD
                row.append(Cell("failed" if failed else "unsupported", None, ("failed" if failed else "unsupported",)))
            else:
                classes = ("best",) if v == best[j] else ()
                if method == "craft-x4" and j == 1:
                    classes += ("circular",)
                row.append(Cell(f"{v:.4f}" if v < 1 else f"{v:.2f}", v, classes,
                                "trained on DIV2K, which overlaps this set" if "circular" in classes else None))
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("html-report")
    y, x = np.mgrid[0:180, 0:320]
    img = np.stack([x * 255 // 319, y * 255 // 179, (x + y) % 256], axis=-1).astype(np.uint8)
    img[60:120, 100:220] = (20, 20, 20)
    Image.fromarray(img).save(folder / "psnr_vs_scale.png")
    (folder / "psnr_vs_scale.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><rect width="8" height="8"/></svg>')
    body = [
        section_html("PSNR-Y (higher is better)",
                     table_html(["method", "set5 x2", "set14 x4", "urban100 x4"], _rows(PSNR),
                                caption=f"Mean PSNR {INJECTED}", table_id="psnr")),
        section_html("SSIM-Y (higher is better)",
                     table_html(["method", "set5 x2", "set14 x4"], _rows(SSIM), table_id="ssim")),
        section_html("Figures", figure_html(folder / "psnr_vs_scale.png", f"PSNR vs scale {INJECTED}",
                                            svg_path=folder / "psnr_vs_scale.svg")),
        section_html("Notes", text_html("craft-x4 on set14 is circular: its training set overlaps.")),
    ]
    page = write_page(folder / "site", "srbench leaderboard", body, subtitle="browser test page")
    # a second page with markup that escaped into the trusted parts: the CSP must stop it
    rogue = write_page(folder / "rogue", "rogue", [
        '<script>window.__ran = 1;</script>',
        '<img id="remote" alt="remote" src="http://127.0.0.1:9/x.png">',
        '<button id="inline" onclick="window.__ran = 2">x</button>',
    ])
    return page, rogue


def require_chromium() -> None:
    reason = browser.chromium_available()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def driver():
    require_chromium()
    with browser.chromium() as d:
        d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": HOOKS})
        yield d


@pytest.fixture
def page(driver, site):
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get(site[0].as_uri())
    return driver


def _severe(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _column(driver, table_id: str, col: int) -> list[tuple[str, float | None]]:
    rows = driver.execute_script(
        "var col = arguments[1];"
        "return Array.from(document.querySelectorAll('#' + arguments[0] + ' tbody tr'))"
        ".map(function (r) { return [r.cells[0].textContent, r.cells[col].getAttribute('data-sort')]; });",
        table_id, col)
    return [(name, None if v is None else float(v)) for name, v in rows]


def _click_header(driver, table_id: str, col: int) -> str:
    th = driver.find_elements("css selector", f"#{table_id} thead tr:last-child th")[col]
    th.find_element("tag name", "button").click()
    return th.get_attribute("aria-sort")


def test_skips_cleanly_without_chromium(monkeypatch, tmp_path):
    # stand-ins for the binaries, so this test means the same on machines with and without them
    fake = {}
    for name in ("chromium", "chromedriver"):
        fake[name] = tmp_path / name
        fake[name].write_text("#!/bin/sh\nexit 1\n")
        fake[name].chmod(0o755)
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "missing" / "chromium")
    monkeypatch.setattr(browser, "CHROMEDRIVER", fake["chromedriver"])
    reason = browser.chromium_available()
    assert reason == f"Chromium not installed at {tmp_path / 'missing' / 'chromium'} ({browser.INSTALL_HINT})"
    with pytest.raises(pytest.skip.Exception, match="Chromium not installed"):
        require_chromium()
    with pytest.raises(RuntimeError, match="Chromium not installed"):
        with browser.chromium():
            pass
    monkeypatch.setattr(browser, "CHROMIUM", fake["chromium"])
    monkeypatch.setattr(browser, "CHROMEDRIVER", tmp_path / "missing" / "chromedriver")
    assert browser.chromium_available().startswith("chromedriver not installed at")
    fake["chromium"].chmod(0o644)  # present but not executable counts as missing
    monkeypatch.setattr(browser, "CHROMEDRIVER", fake["chromedriver"])
    assert browser.chromium_available().startswith("Chromium not installed at")
    fake["chromium"].chmod(0o755)
    monkeypatch.setitem(sys.modules, "selenium", None)  # `import selenium` now fails
    assert browser.chromium_available().startswith("selenium is not installed")
    with pytest.raises(pytest.skip.Exception, match="selenium is not installed"):
        require_chromium()


def test_page_loads_without_errors_or_injection(page):
    assert _severe(page) == []
    assert page.execute_script("return [window.__alerts, window.__errors, window.__csp]") == [[], [], []]
    from selenium.common.exceptions import NoAlertPresentException
    with pytest.raises(NoAlertPresentException):
        page.switch_to.alert.text
    assert page.execute_script("return document.scripts.length") == 1
    text = page.find_element("tag name", "body").text
    assert f"Mean PSNR {INJECTED}" in text and f"PSNR vs scale {INJECTED}" in text
    assert EVIL_METHOD in text
    assert page.title == "srbench leaderboard"
    assert page.execute_script("return location.protocol") == "file:"


def test_tables_render_all_rows(page):
    tables = page.find_elements("css selector", "table.leaderboard.sortable")
    assert [t.get_attribute("id") for t in tables] == ["psnr", "ssim"]
    for table, scores in zip(tables, (PSNR, SSIM)):
        rows = table.find_elements("css selector", "tbody tr")
        assert len(rows) == len(scores)
        assert all(r.is_displayed() for r in rows)
        assert len(table.find_elements("css selector", "thead th button")) == len(next(iter(scores.values()))) + 1
    toc = page.find_elements("css selector", "nav.toc a")
    assert [a.text for a in toc] == ["PSNR-Y (higher is better)", "SSIM-Y (higher is better)", "Figures", "Notes"]


def test_images_are_decoded(page):
    images = page.execute_script(
        "return Array.from(document.images).map(function (i) { return [i.complete, i.naturalWidth, i.naturalHeight]; })")
    assert images == [[True, 320, 180]]
    link = page.find_element("css selector", "figcaption a[download]")
    assert link.get_attribute("download") == "psnr_vs_scale.svg"
    assert link.get_attribute("href").startswith("data:image/svg+xml;base64,")


@pytest.mark.parametrize("table_id,scores", [("psnr", PSNR), ("ssim", SSIM)])
def test_numeric_headers_sort_both_ways(page, table_id, scores):
    n_cols = len(next(iter(scores.values())))
    for col in range(1, n_cols + 1):
        pairs = {m: v[col - 1] for m, v in scores.items()}
        present = [v for v in pairs.values() if v is not None]
        missing = [None] * (len(pairs) - len(present))
        for order, expected in (("ascending", sorted(present) + missing),
                                ("descending", sorted(present, reverse=True) + missing)):
            assert _click_header(page, table_id, col) == order
            got = _column(page, table_id, col)
            assert [v for _, v in got] == expected, (table_id, col, order)
            assert all(pairs[m] == v for m, v in got)  # whole rows moved, not just cells
        others = page.find_elements("css selector", f"#{table_id} thead tr:last-child th")
        assert [th.get_attribute("aria-sort") for th in others].count("none") == n_cols
    # the method column sorts as text
    names = sorted(scores, key=str.casefold)
    assert _click_header(page, table_id, 0) == "ascending"
    assert [m for m, _ in _column(page, table_id, 1)] == names
    assert _click_header(page, table_id, 0) == "descending"
    assert [m for m, _ in _column(page, table_id, 1)] == names[::-1]
    assert _severe(page) == []


def test_csp_blocks_what_escaping_missed(driver, site):
    driver.get_log("browser")
    driver.get(site[1].as_uri())
    driver.find_element("id", "inline").click()
    assert driver.execute_script("return window.__ran === undefined")
    assert driver.execute_script("return document.getElementById('remote').naturalWidth") == 0
    violations = driver.execute_script("return window.__csp")
    assert any(v.startswith("script-src") for v in violations), violations
    assert any(v.startswith("img-src") and "127.0.0.1:9" in v for v in violations), violations
    assert any("Content Security Policy" in e["message"] for e in _severe(driver))


def test_screenshot(page, tmp_path):
    _click_header(page, "psnr", 1)  # show a sorted column
    png = page.get_screenshot_as_png()
    path = tmp_path / "screenshot.png"
    path.write_bytes(png)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, SCREENSHOT)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(png)) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.width >= 1000 and im.height >= 500, im.size
        rgb = np.asarray(im.convert("RGB"))
    colours = np.unique(rgb.reshape(-1, 3), axis=0)
    assert len(colours) > 50, "the screenshot is (nearly) one colour"
    assert (rgb.min(axis=(0, 1)) < 100).all() and (rgb.max(axis=(0, 1)) > 200).all()


def test_a_real_report_renders_and_sorts(driver, tmp_path):
    """`srbench report` on a real (small) run: every table and figure renders, sorting works."""
    from bench.report.leaderboard import write_report
    from bench.run.runner import Runner
    from bench.run.spec import MethodSpec, RunSpec

    spec = RunSpec(("demo",), (2, 4), tuple(MethodSpec(m, m) for m in ("bicubic", "nearest", "lanczos")),
                   ("psnr", "ssim"), save_sr=True, limit=2)
    Runner(spec, tmp_path / "run", echo=lambda s: None, progress=False).run()
    write_report([tmp_path / "run"], tmp_path / "rep", echo=lambda s: None)
    driver.get_log("browser")
    driver.get((tmp_path / "rep" / "index.html").as_uri())
    assert _severe(driver) == [] and driver.execute_script("return window.__errors") == []
    ids = [t.get_attribute("id") for t in driver.find_elements("css selector", "table.sortable")]
    assert ids == ["lb-psnr", "ref-psnr", "lb-ssim", "ref-ssim"]
    for table_id in ids:
        assert len(driver.find_elements("css selector", f"#{table_id} tbody tr")) == 3
    images = driver.execute_script("return Array.from(document.images).map(function (i) { return i.naturalWidth; })")
    assert len(images) >= 6 and all(w > 0 for w in images)  # quality/scale, distributions, grids, throughput
    assert _click_header(driver, "lb-psnr", 1) == "ascending"
    values = [v for _, v in _column(driver, "lb-psnr", 1)]
    assert values == sorted(values) and len(values) == 3
    latex = driver.find_element("css selector", "details.latex")
    latex.find_element("tag name", "summary").click()  # folded under each table: unfold it
    assert "\\begin{tabular}" in latex.find_element("tag name", "pre").text
    shot = REPO / "reports" / "browser-test" / "report.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(shot))
    with Image.open(shot) as im:
        assert im.width >= 1000 and len(set(np.asarray(im.convert("L")).ravel().tolist())) > 20


# -- a report of the size the issue describes ---------------------------------------------------------

PAPER_SHOT = REPO / "reports" / "browser-test" / "report-paper.png"
PAGE_HEIGHT_LIMIT = 16000  # px at 1400 px; the one-column layout gave 34,761 px for a run of this shape


@pytest.fixture(scope="module")
def paper_report(tmp_path_factory):
    """Two datasets (5 and 14 images, spec order tiny5 before tiny14, the reverse of their names'
    order) x x2..x16 x bicubic/lanczos/nearest, PSNR and SSIM computed by the runner, LPIPS and
    SFD-IQA-VGG16 rows added the way the networks would score (SFD-IQA saturating near 0 at
    x8/x16), then `srbench report`."""
    require_chromium()
    import math

    import pandas as pd

    from bench.report.leaderboard import write_report
    from bench.run.runner import Runner
    from bench.run.spec import MethodSpec, RunSpec
    from tests.helpers import photo, write_manifest

    root = tmp_path_factory.mktemp("paper")
    with pytest.MonkeyPatch.context() as mp:
        man = root / "manifests"
        for name, n in (("tiny5", 5), ("tiny14", 14)):
            write_manifest(man, name, '[layout]\nhr = "HR/*"\n')
            hr = root / "data" / name / "HR"
            hr.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(photo(128, 128, seed=100 * n + i)).save(hr / f"img_{i:03d}.png")
        mp.setenv("SRBENCH_MANIFESTS", str(man))
        spec = RunSpec(("tiny5", "tiny14"), (2, 4, 8, 16),
                       tuple(MethodSpec(m, m) for m in ("bicubic", "lanczos", "nearest")), ("psnr", "ssim"),
                       device="cpu", data_root=str(root / "data"))
        run = root / "run"
        Runner(spec, run, echo=lambda s: None, progress=False, fetch=False).run()
        rng = np.random.default_rng(0)
        offset = {"bicubic": 0.0, "lanczos": 0.15, "nearest": -0.6}
        for cell in sorted((run / "cells").glob("*/*/*")):
            parts = sorted(cell.glob("part-*.parquet"))
            df = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
            extra = []
            for r in df[df["metric"] == "psnr"].to_dict("records"):
                logit = 7 - 1.5 * r["scale"] + offset[r["method"]] + rng.normal(0, 0.5)
                extra.append({**r, "metric": "lpips", "value": float(np.clip(1.05 - 0.03 * r["value"], 0.01, 0.9))})
                extra.append({**r, "metric": "sfd-iqa-vgg16", "value": 1 / (1 + math.exp(-logit))})
            merged = pd.concat([df, pd.DataFrame(extra)[df.columns].astype(df.dtypes.to_dict())], ignore_index=True)
            for p in parts:
                p.unlink()
            merged.to_parquet(cell / "part-00000.parquet")  # one part: a later part would replace these rows
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["spec"]["metrics"] = ["psnr", "ssim", "lpips", "sfd-iqa-vgg16"]
        (run / "manifest.json").write_text(json.dumps(manifest))
        write_report([run], root / "rep", echo=lambda s: None)
    return root / "rep" / "index.html"


def test_a_paper_sized_report_is_compact_navigable_and_complete(driver, paper_report):
    driver.set_window_size(1400, 1000)
    driver.get_log("browser")
    driver.get(paper_report.as_uri())
    assert _severe(driver) == [] and driver.execute_script("return window.__errors") == []
    assert driver.execute_script("return window.innerWidth") == 1400
    ids = [t.get_attribute("id") for t in driver.find_elements("css selector", "table.sortable")]
    assert ids == [f"{k}-{m}" for m in ("psnr", "ssim", "lpips", "sfd-iqa-vgg16") for k in ("lb", "ref")]
    # compact tables: the mean and its interval each stay on one line, and every table fits the page
    layout = driver.execute_script("""
      var out = {lines: [], wraps: []};
      document.querySelectorAll('table[id^="lb-"] td.two-line').forEach(function (td) {
        out.lines.push([td.querySelector('.v').getClientRects().length, td.querySelector('.sub').getClientRects().length]);
      });
      document.querySelectorAll('table[id^="lb-"]').forEach(function (t) {
        var w = t.closest('.table-wrap'); out.wraps.push([t.id, w.scrollWidth, w.clientWidth]);
      });
      return out;""")
    assert len(layout["lines"]) == 4 * 8 * 3 and all(v == [1, 1] for v in layout["lines"])
    assert all(sw <= cw + 1 for _, sw, cw in layout["wraps"]), layout["wraps"]
    cells = driver.execute_script(
        "return Array.from(document.querySelectorAll('#lb-sfd-iqa-vgg16 td')).map(function (c) { return c.textContent; })")
    assert not [c for c in cells if c.startswith("0.0000")], cells  # saturated scores are not printed as zero
    # the page: measured height, box plots and quality curves side by side, datasets in table order
    height = driver.execute_script("return document.documentElement.scrollHeight")
    print(f"page height at 1400 px: {height} px")
    assert height < PAGE_HEIGHT_LIMIT, height
    tops = driver.execute_script(  # the first grid: tiny5's quality-against-scale curves of the 4 metrics
        "return Array.from(document.querySelector('.figure-grid.cols-2').querySelectorAll('figure'))"
        ".map(function (f) { return Math.round(f.getBoundingClientRect().top); })")
    assert len(tops) == 4 and tops[0] == tops[1] and tops[2] == tops[3] and tops[2] > tops[0]  # two per row
    captions = [c.split(" ")[0].rstrip(":") for c in driver.execute_script(
        "return Array.from(document.querySelectorAll('figcaption')).map(function (f) { return f.textContent; })")]
    named = [c for c in captions if c in ("tiny5", "tiny14")]
    assert named and named == sorted(named, key=["tiny5", "tiny14"].index)
    toc = [a.text for a in driver.find_elements("css selector", "nav.toc a")]
    assert toc[:5] == ["Leaderboards", "PSNR (higher is better)", "SSIM (higher is better)",
                       "LPIPS (lower is better)", "SFD-IQA-VGG16 (higher is better)"]
    assert "Figures: tiny5 (5 images)" in toc and toc.index("Figures: tiny5 (5 images)") < toc.index(
        "Figures: tiny14 (14 images)")
    link = driver.find_element("css selector", "nav.toc a[href='#sec-figures-tiny14-14-images']")
    link.click()
    assert abs(driver.execute_script(
        "return document.getElementById('sec-figures-tiny14-14-images').getBoundingClientRect().top")) < 20
    # no method is circular here: no circularity legend anywhere
    text = driver.find_element("tag name", "body").text
    assert "\u26a0" not in text and "backbone" not in text
    # the LaTeX of each table unfolds completely: nothing cut off to the right or below
    driver.execute_script("window.scrollTo(0, 0)")
    for details in driver.find_elements("css selector", "details.latex"):
        details.find_element("tag name", "summary").click()
    sizes = driver.execute_script(
        "return Array.from(document.querySelectorAll('details.latex pre')).map(function (p) {"
        " return [p.scrollWidth, p.clientWidth, p.scrollHeight, p.clientHeight, p.textContent]; })")
    assert len(sizes) == 4
    for sw, cw, sh, ch, tex in sizes:
        assert sw <= cw and sh <= ch + 1 and tex.rstrip().endswith("\\end{table}") and "\\begin{tabular}" in tex
    # sorting still works below a group header row
    assert _click_header(driver, "lb-psnr", 4) == "ascending"
    values = [v for _, v in _column(driver, "lb-psnr", 4)]
    assert values == sorted(values) and len(values) == 3
    # screenshot of the whole page at 1400 px, tables folded as a reader first sees them
    driver.get(paper_report.as_uri())
    driver.set_window_size(1400, min(height + 200, 16000))
    PAPER_SHOT.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(PAPER_SHOT))
    driver.set_window_size(1400, 1000)
    with Image.open(PAPER_SHOT) as im:
        assert im.width == 1400 and im.height > 3000
