"""``report.html``: one self-contained page (inline style, figures and formulas as data URIs).

Every piece of text from the results file goes through :func:`esc`
(``html.escape`` with quotes), the explicit equivalent of an autoescaping template;
the page references nothing outside itself (no scripts, no external styles, fonts
or images). Layout: title and overall verdict, the summary table of claims and of
negative controls, the derived formulas, one section per claim (statement, formula,
statistic, threshold, figures, notes, configuration), the provenance.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from linrnn.reports.figures import FigureFiles, formula_png
from linrnn.reports.inline_math import prose_html
from linrnn.reports.text import (
    OUTCOME_WORDS,
    controls_outcome,
    format_alpha,
    format_number,
    format_statistic,
    format_threshold,
    outcome_line,
    stated_sentences,
    statistic_outcome,
    verdict_word,
)

STYLE = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif; color: #1b1b1b;
       max-width: 1100px; margin: 0 auto; padding: 1.5em 2em 4em; line-height: 1.5; background: #fff; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.35em; border-bottom: 2px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
h3 { font-size: 1.1em; margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #bbb; padding: 0.35em 0.6em; text-align: left; vertical-align: top; }
th { background: #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.verdict { font-weight: bold; white-space: nowrap; padding: 0.1em 0.5em; border-radius: 3px; }
.good { background: #d8f0d8; border: 1px solid #2e7d32; color: #1b4d1f; }
.bad { background: #fbd9d3; border: 2px dashed #b71c1c; color: #7f1010; }
.v-fail { background: #fbd9d3; border: 2px dashed #b71c1c; color: #7f1010; }
.v-inconclusive { background: #fff1c2; border: 2px dotted #b26a00; color: #6b3f00; }
.v-error { background: #e6dcf2; border: 2px solid #5e35b1; color: #311b6b; }
.banner { font-size: 1.15em; padding: 0.6em 1em; margin: 1em 0; }
figure { margin: 1.2em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #444; margin-top: 0.3em; }
.formula { margin: 0.6em 0 0.2em; }
.formula img { vertical-align: middle; max-width: 100%; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 0.88em; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; white-space: pre-wrap; }
.latex { color: #555; font-size: 0.82em; }
.muted { color: #555; font-size: 0.9em; }
details { margin: 0.5em 0; }
nav ul { columns: 2; }
"""


def esc(text: Any) -> str:
    """HTML-escape any value's text (quotes included)."""
    return html.escape(str(text), quote=True)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _verdict_cell(verdict: str, *, control: bool = False) -> str:
    word, good = verdict_word(verdict, control=control)
    kind = "good" if good else "bad" + ("" if control else f" v-{verdict}")
    return f'<span class="verdict {kind}">{esc(word)}</span>'


def formula_html(latex: str, label: str = "") -> str:
    """The formula as a typeset image (mathtext), its LaTeX source the image's alt text (read aloud, copied, shown
    where images are off); the source alone, marked as such, only if mathtext cannot typeset it (the tests keep
    every formula of the registry and the derivation typeset)."""
    png = formula_png(latex)
    if png is None:
        return f'<div class="formula latex"><code>{esc(label)}{esc(latex)}</code></div>'
    return f'<div class="formula"><img alt="{esc(latex)}" title="{esc(latex)}" src="{data_uri(png)}"></div>'


def prose(text: Any) -> str:
    """Prose from the results: HTML-escaped, its ASCII math typeset as MathML (:mod:`linrnn.reports.inline_math`)."""
    return prose_html(str(text))


def _value_text(stat: Mapping[str, Any]) -> str:
    """A statistic's value, or (``in_words``) the sentence that replaces a misleading number."""
    return prose(format_statistic(stat)) if stat.get("in_words") else esc(format_statistic(stat))


def _value_cell(stat: Mapping[str, Any]) -> str:
    """The value's table cell: a right-aligned number, or a sentence in an ordinary cell."""
    return f"<td>{_value_text(stat)}</td>" if stat.get("in_words") else f'<td class="num">{_value_text(stat)}</td>'


def _figure(f: FigureFiles) -> str:
    cap = f"<strong>{prose(f.title)}.</strong> {prose(f.caption)}" if f.title else prose(f.caption)
    return (f'<figure id="fig-{esc(f.stem)}"><img alt="{esc(f.title or f.stem)}" src="{data_uri(f.png)}">'
            f"<figcaption>{cap}</figcaption></figure>")


def _cell(v: Any) -> str:
    """A chapter table's cell: a number in 4 significant figures, text as it is, None as n/a."""
    return v if isinstance(v, str) else format_number(v)


def _kv_table(items: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><th><code>{esc(k)}</code></th><td><code>{esc(_compact(v))}</code></td></tr>"
                   for k, v in items.items())
    return f"<table>{rows}</table>"


def _compact(v: Any) -> str:
    if isinstance(v, str):
        return v
    return json.dumps(v, sort_keys=True, ensure_ascii=False)


def _summary(results: Mapping[str, Any]) -> tuple[str, str]:
    rows = []
    for c in results["claims"]:
        ctrls = [x for x in results["controls"] if x["claim"] == c["id"]]
        stat = statistic_outcome(c)
        rows.append(
            f'<tr><td><a href="#claim-{esc(c["id"])}">{prose(c["title"])}</a><br><code>{esc(c["id"])}</code></td>'
            f'<td>{prose(c["statement"])}</td>'
            f'<td>{prose(c["statistic"]["name"])}</td>{_value_cell(c["statistic"])}'
            f'<td>{prose(format_threshold(c["threshold"]))}</td><td class="num">{esc(format_alpha(c))}</td>'
            f'<td>{_verdict_cell(stat)}</td><td>{esc(controls_outcome(ctrls))}</td>'
            f'<td>{_verdict_cell(c["verdict"])}</td></tr>'
        )
    claims = ("<table><tr><th>claim</th><th>statement</th><th>statistic</th><th>value</th><th>threshold</th>"
              "<th>&#945;</th><th>statistic outcome</th><th>controls</th><th>verdict</th></tr>"
              + "".join(rows) + "</table>")
    crow = []
    for c in results["controls"]:
        crow.append(
            f'<tr><td><a href="#claim-{esc(c["claim"])}"><code>{esc(c["claim"])}</code></a></td>'
            f'<td><code>{esc(c["id"])}</code></td><td>{prose(c["statement"])}</td>'
            f'<td>{prose(c["statistic"]["name"])}</td>{_value_cell(c["statistic"])}'
            f'<td>{prose(format_threshold(c["threshold"]))}</td><td>{_verdict_cell(c["verdict"], control=True)}</td></tr>'
        )
    controls = ("<table><tr><th>claim</th><th>control</th><th>wrong theory</th><th>statistic</th><th>value</th><th>threshold</th>"
                "<th>outcome</th></tr>" + "".join(crow) + "</table>") if crow else "<p>No negative controls.</p>"
    return claims, controls


_BANNER = {"pass": "&#10003; PASS", "fail": "&#10007; FAIL", "inconclusive": "? INCONCLUSIVE", "error": "&#10007; ERROR"}


def render_html(results: Mapping[str, Any], figures: Mapping[str, Sequence[FigureFiles]]) -> str:
    """The page for ``results`` (validated) with ``figures`` drawn per owner ("derivation" or a claim id)."""
    overall = results["verdict"]
    n_rej = sum(c["verdict"] == "rejected" for c in results["controls"])
    counts = ", ".join(f"{sum(c['verdict'] == o for c in results['claims'])} {o}" for o in OUTCOME_WORDS
                       if any(c["verdict"] == o for c in results["claims"]))
    kind = "good" if overall == "pass" else f"bad v-{overall}"
    banner = (f'<div class="verdict banner {kind}">'
              f'{_BANNER.get(overall, "&#10007; ERROR")}: {len(results["claims"])} claims ({esc(counts or "none")}); '
              f'{n_rej} of {len(results["controls"])} negative controls rejected.</div>')
    claims_table, controls_table = _summary(results)
    der = results["derivation"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(results['title'])}</title><style>{STYLE}</style></head><body>",
        f"<h1>{esc(results['title'])}</h1>",
        f'<p class="muted">{esc(results["tool"]["name"])} {esc(results["tool"]["version"])}, profile '
        f'<strong>{esc(results["profile"])}</strong>, created {esc(results["created"])}.</p>',
        banner,
        "<h2 id=\"summary\">Verdicts</h2>",
        "<p>Each claim is a statistical test of a derived formula against an experiment; it passes when its "
        "statistic lies within its threshold. Each negative control runs the same test against a deliberately "
        "wrong theory and should be <em>rejected</em>: a verifier that cannot reject a wrong formula proves "
        "nothing. A claim whose statistic passes but whose control is not rejected is <em>inconclusive</em> "
        "(the run lacks power; the design names the sizes that would decide it); a statistic that cannot be "
        "computed is an <em>error</em>. The run passes only if every claim passes.</p>",
        claims_table,
        "<h3>Negative controls</h3>",
        controls_table,
        "<h2 id=\"derivation\">Derived formulas</h2>",
        f"<p>Parameterization <code>{esc(der['param'])}</code>; every formula below is printed from the SymPy "
        "derivation (see <code>derivation.tex</code>).</p>",
    ]
    for f in der["formulas"]:
        parts.append(f"<h3>{esc(f['label'])}</h3>")
        if f.get("description"):
            parts.append(f"<p>{prose(f['description'])}</p>")
        parts.append(formula_html(f["latex"]))
    parts += [_figure(f) for f in figures.get("derivation", ())]
    parts += [f"<p>{prose(n)}</p>" for n in der["notes"]]
    def ctrls_of(c: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        return [x for x in results["controls"] if x["claim"] == c["id"]]

    for c in results["claims"]:
        parts += [
            f'<h2 id="claim-{esc(c["id"])}">{prose(c["title"])} {_verdict_cell(c["verdict"])}</h2>',
            f'<p class="muted">claim <code>{esc(c["id"])}</code></p>',
            f"<p>{prose(c['statement'])}</p>",
            formula_html(c["formula"]),
            "<table>",
            f"<tr><th>statistic</th><td>{prose(c['statistic']['name'])}</td>{_value_cell(c['statistic'])}</tr>",
            f"<tr><th>threshold</th><td colspan=\"2\">{prose(format_threshold(c['threshold']))}</td></tr>",
            f"<tr><th>stated &#945;</th><td colspan=\"2\">{esc(format_alpha(c))}</td></tr>",
            f"<tr><th>outcome</th><td colspan=\"2\">{prose(outcome_line(c, ctrls_of(c)))}</td></tr>",
            f"<tr><th>verdict</th><td colspan=\"2\">{_verdict_cell(c['verdict'])}</td></tr>",
            "</table>",
        ]
        parts += [f"<p><strong>{prose(t)}</strong></p>" if c["verdict"] != "pass" else f'<p class="muted">{prose(t)}</p>'
                  for t in stated_sentences(c)]
        ctrls = [x for x in results["controls"] if x["claim"] == c["id"]]
        if ctrls:
            parts.append("<p><strong>Negative controls</strong> (each should be rejected):</p><ul>")
            for x in ctrls:
                parts.append(f"<li><code>{esc(x['id'])}</code>: {prose(x['statement'].rstrip('.'))}: "
                             f"{prose(x['statistic']['name'])} = {_value_text(x['statistic'])} "
                             f"({prose(format_threshold(x['threshold']))}) {_verdict_cell(x['verdict'], control=True)}</li>")
            parts.append("</ul>")
        parts += [_figure(f) for f in figures.get(c["id"], ())]
        parts += [f"<p class=\"muted\">{prose(n)}</p>" for n in c.get("notes", [])]
        if c.get("config"):
            parts.append(f"<details><summary>configuration of this experiment</summary>{_kv_table(c['config'])}"
                         "</details>")
    for ch in results.get("chapters", []):
        parts += [f'<h2 id="chapter-{esc(ch["id"])}">{prose(ch["title"])}</h2>']
        parts += [f"<p>{prose(t)}</p>" for t in ch["text"]]
        parts += [_figure(f) for f in figures.get(f"chapter-{ch['id']}", ())]
        for table in ch["tables"]:
            head = "".join(f"<th>{esc(c.replace('_', ' '))}</th>" for c in table["columns"])
            body = "".join("<tr>" + "".join(f"<td>{esc(_cell(v))}</td>" for v in row) + "</tr>" for row in table["rows"])
            parts += [f"<table><caption>{prose(table['caption'])}</caption><tr>{head}</tr>{body}</table>"]
    prov = dict(results["provenance"])
    parts += ["<h2 id=\"provenance\">Provenance</h2>", _kv_table(prov),
              "<details><summary>full configuration</summary>", _kv_table(results["config"]), "</details>",
              "</body></html>"]
    return "\n".join(parts) + "\n"
