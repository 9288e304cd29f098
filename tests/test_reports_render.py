"""Rendering a fixed results file: stable HTML and Markdown, self-contained HTML, figures that decode.

The golden files ``tests/fixtures/report.md`` and ``report.html.txt`` (the HTML with
its data URIs cut to their media type) are regenerated with
``LINRNN_REGEN_FIXTURES=1 python -m pytest tests/test_reports_render.py``.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from linrnn.core.errors import UsageError
from linrnn.reports import schema
from linrnn.reports.figures import DRAWERS, draw, formula_png
from linrnn.reports.html import render_html
from linrnn.reports.latex_report import render_latex, tex
from linrnn.reports.markdown import render_markdown
from linrnn.reports.output import atomic_dir
from linrnn.reports.render import draw_figures, render, write_report

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXTURE = FIXTURES / "report_results.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results() -> dict:
    return schema.load(FIXTURE)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, results: dict) -> Path:
    d = tmp_path_factory.mktemp("report")
    write_report(results, d)
    return d


def _strip_data_uris(html: str) -> str:
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "data:image/png;base64,...", html)


def _golden(name: str, text: str) -> None:
    path = FIXTURES / name
    if os.environ.get("LINRNN_REGEN_FIXTURES"):
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"golden file {name} missing; regenerate with LINRNN_REGEN_FIXTURES=1"
    assert text == path.read_text(encoding="utf-8")


def test_markdown_is_stable(rendered: Path) -> None:
    _golden("report.md", (rendered / "report.md").read_text(encoding="utf-8"))


def test_html_is_stable(rendered: Path) -> None:
    _golden("report.html.txt", _strip_data_uris((rendered / "report.html").read_text(encoding="utf-8")))


def test_rendering_twice_gives_identical_bytes(rendered: Path, results: dict, tmp_path: Path) -> None:
    write_report(results, tmp_path)
    for p in sorted(rendered.rglob("*")):
        if p.is_file():
            assert (tmp_path / p.relative_to(rendered)).read_bytes() == p.read_bytes(), p.name


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.refs: list[tuple[str, str, str]] = []
        self.ids: set[str] = set()
        self.style = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_style = tag == "style"
        for k, v in attrs:
            if k in ("src", "href", "srcset", "action", "data", "poster") and v is not None:
                self.refs.append((tag, k, v))
            if k == "id" and v:
                self.ids.add(v)

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False if tag == "style" else self._in_style

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style += data


def test_html_parses_and_references_nothing_external(rendered: Path, results: dict) -> None:
    page = (rendered / "report.html").read_text(encoding="utf-8")
    p = _Collector()
    p.feed(page)
    p.close()
    assert "script" not in p.tags and "link" not in p.tags and "iframe" not in p.tags
    assert "url(" not in p.style and "@import" not in p.style
    imgs = [v for t, k, v in p.refs if t == "img"]
    for tag, attr, value in p.refs:
        if value.startswith("#"):
            assert value[1:] in p.ids, f"dangling anchor {value}"
        else:
            assert value.startswith("data:image/png;base64,"), f"external reference {tag} {attr}={value[:60]}"
    for uri in imgs:
        png = base64.b64decode(uri.split(",", 1)[1], validate=True)
        assert png.startswith(PNG_MAGIC)
    n_figures = len(results["derivation"]["figures"]) + sum(len(c["figures"]) for c in results["claims"])
    assert page.count("<figure") == n_figures
    # the summary table comes before the first claim section, the provenance last
    assert page.index("Verdicts") < page.index('id="claim-ntk_limit"') < page.index('id="provenance"')
    for c in results["claims"]:
        assert f'id="claim-{c["id"]}"' in page


def test_figure_files_are_png_and_svg(rendered: Path) -> None:
    pngs = sorted((rendered / "figures").glob("*.png"))
    assert len(pngs) == 5
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC)
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert width > 400 and height > 250
        svg = png.with_suffix(".svg").read_text(encoding="utf-8")
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg


def test_every_figure_kind_draws(results: dict) -> None:
    lines = {"kind": "lines", "title": "t", "xlabel": "width n", "ylabel": "d", "xscale": "log", "yscale": "log",
             "series": [{"label": "a", "x": [1, 2, 4], "y": [1.0, 0.7, 0.5], "yerr": [0.1, None, 0.1],
                         "style": "points"}, {"label": "b", "x": [1, 2, 4], "y": [1.0, 0.5, 0.25]}]}
    lines["vlines"] = [{"x": 2, "label": "j = 2"}]
    bars = {"kind": "bars", "labels": ["AR(1..8)", "RNN q=0.5"], "values": [0.3, -0.1], "errors": [0.0, 0.05],
            "ylabel": "test $R^2$"}
    panels = {"kind": "panels", "title": "p", "sharey": True,
              "panels": [{**lines, "title": "left"}, {**lines, "title": "right"}]}
    kinds = {"lines": lines, "bars": bars, "panels": panels}
    for owner in [results["derivation"]] + results["claims"]:
        for fig in owner["figures"].values():
            kinds.setdefault(fig["kind"], fig)
    assert set(kinds) == set(DRAWERS)
    for name, data in kinds.items():
        f = draw(name, data)
        assert f.png.startswith(PNG_MAGIC) and b"<svg" in f.svg


def test_unknown_figure_kinds_are_listed_not_drawn(results: dict) -> None:
    r = copy.deepcopy(results)
    r["claims"][0]["figures"]["raw"] = {"kind": "data", "values": [1, 2, 3]}
    figs, skipped = draw_figures(r)
    assert skipped == ["ntk_limit/raw (kind 'data' has no renderer)"]
    assert sum(len(v) for v in figs.values()) == 5


def test_text_is_escaped_in_every_format(results: dict) -> None:
    r = copy.deepcopy(results)
    evil = "<script>alert('x')</script> & 100% | *bold* $x$ \\"
    r["claims"][0]["statement"] = evil
    r["controls"][0]["statement"] = evil
    html = render_html(r, {})
    assert "<script>" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; 100%" in html
    md = render_markdown(r, {})
    assert "<script>" not in md and "\\|" in md and "\\*bold\\*" in md
    latex = render_latex(r, {})
    assert tex(evil) in latex and r"100\%" in tex(evil) and r"\textbackslash{}" in tex(evil)


def test_formulas_are_typeset_or_shown_as_source() -> None:
    assert formula_png(r"\lambda_j = \frac{q^{j}}{n_{x}}").startswith(PNG_MAGIC)
    assert formula_png(r"\lVert x \rVert = \mathbb{E}\,y") is not None  # display substitutions
    assert formula_png(r"\begin{unknown}") is None
    from linrnn.reports.html import formula_html

    assert "<code>\\begin{unknown}</code>" in formula_html(r"\begin{unknown}")


def test_failing_claim_renders_as_a_finding(results: dict, tmp_path: Path) -> None:
    r = copy.deepcopy(results)
    r["claims"][1]["verdict"] = r["claims"][1]["statistic_verdict"] = "fail"
    r["verdict"] = "fail"
    write_report(r, tmp_path)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert '<div class="verdict banner bad v-fail">&#10007; FAIL: 3 claims (2 pass, 1 fail)' in html
    assert "**Verdict: FAIL**" in (tmp_path / "report.md").read_text(encoding="utf-8")


def test_outcomes_render_distinctly_in_every_format(results: dict, tmp_path: Path) -> None:
    """Inconclusive (statistic pass, a control not rejected, the sizes needed) and error (its sentence)."""
    from linrnn.suite import main_summary

    r = copy.deepcopy(results)
    inc, err = r["claims"][0], r["claims"][2]
    inc["verdict"] = "inconclusive"
    inc["design"] = {"method": "two-stage", "pilot": 16, "replicas": 256, "capped_by": "max_replicas",
                     "needed": {"ntk:q_times_1.1": 9000, "ntk:no_linear_term": None}}
    next(x for x in r["controls"] if x["claim"] == inc["id"])["verdict"] = "not_rejected"
    err.update(verdict="error", statistic_verdict="error", error="the fitted slope overflowed at n = 4096.")
    r["verdict"] = "error"
    write_report(r, tmp_path)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    mdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    latex = (tmp_path / "report.tex").read_text(encoding="utf-8")
    assert 'class="verdict banner bad v-error"' in html and "v-inconclusive" in html
    line = "statistic: pass; controls: 1 of 2 rejected \u2192 inconclusive"
    assert line in html
    assert "statistic: pass; controls: 1 of 2 rejected -\\> inconclusive" in mdown
    assert "needed: ntk:q\\_times\\_1.1 9000, ntk:no\\_linear\\_term unbounded" in mdown
    assert "the fitted slope overflowed at n = 4096." in html and "overflowed" in mdown and "overflowed" in latex
    assert "INCONCLUSIVE" in latex and "1 of 2 rejected" in latex
    for text in (html, mdown):
        assert "statistic outcome" in text and "alpha" in text
    summary = main_summary(r)
    assert "1 of 2 rejected" in summary and "INCONCLUSIVE" in summary and "ERROR" in summary
    assert "needed: ntk:q_times_1.1 9000" in summary and "overflowed" in summary
    assert summary.rstrip().endswith("verdict: ERROR")


def test_render_publishes_atomically_and_needs_force(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    render(FIXTURE, out)
    assert {p.name for p in out.iterdir()} == {"figures", "report.html", "report.md", "report.json", "report.tex",
                                                "derivation.tex"}
    written = json.loads((out / "report.json").read_text())
    listed = written.pop("files")  # every other file of the report, with its SHA-256
    assert written == schema.load(FIXTURE)
    assert set(listed) == {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} - {"report.json"}
    with pytest.raises(UsageError, match="--force"):
        render(FIXTURE, out)
    (out / ".cache").mkdir()
    (out / ".cache" / "keep.json").write_text("{}")
    render(FIXTURE, out, force=True)
    assert (out / ".cache" / "keep.json").exists()  # the experiment cache survives a replacement
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no temporary directories left


def test_an_interrupted_build_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(out) as tmp:
            (tmp / "report.html").write_text("half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    render(FIXTURE, out)
    before = (out / "report.html").read_bytes()
    with pytest.raises(OSError):
        with atomic_dir(out, force=True) as tmp:
            raise OSError(28, "No space left on device")
    assert (out / "report.html").read_bytes() == before  # the old report is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


@pytest.mark.latex
def test_report_tex_compiles(rendered: Path, tmp_path: Path) -> None:
    engine = shutil.which("pdflatex")
    if engine is None:
        pytest.skip("no LaTeX engine (pdflatex) installed")
    shutil.copytree(rendered, tmp_path / "r")
    proc = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error", "report.tex"], cwd=tmp_path / "r",
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "r" / "report.pdf").stat().st_size > 10_000


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

_PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = document.images, ok = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++; }
  var p = document.createElement('pre'); p.id = 'probe';
  p.textContent = 'decoded ' + ok + ' of ' + imgs.length;
  document.body.appendChild(p);
});
</script>"""


def test_chromium_screenshot_shows_every_figure(rendered: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (CI installs Debian's chromium)")
    page = rendered / "report.html"
    profile = tmp_path / "chromium-profile"
    try:
        shot = tmp_path / "shot.png"
        proc = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={shot}",
                               "--window-size=1280,4000", page.as_uri()],
                              capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
        assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
        data = shot.read_bytes()
        assert data.startswith(PNG_MAGIC) and int.from_bytes(data[16:20], "big") == 1280
        # a copy of the page with a probe script counts the images the browser decoded
        probe = tmp_path / "probe.html"
        probe.write_text(page.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
        proc = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000",
                               "--dump-dom", probe.as_uri()],
                              capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)
        m = re.search(r"decoded (\d+) of (\d+)", proc.stdout)
        assert m, proc.stderr[-2000:]
        n_imgs = page.read_text(encoding="utf-8").count("<img ")
        assert int(m.group(2)) == n_imgs and int(m.group(1)) == n_imgs
    finally:
        shutil.rmtree(profile, ignore_errors=True)
