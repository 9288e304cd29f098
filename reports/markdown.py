"""``report.md``: the report for a code host, figures as ``figures/*.png`` beside it.

Formulas are ``$$ ... $$`` blocks (rendered by GitHub and most Markdown viewers);
text from the results file is escaped for Markdown table cells and inline text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from linrnn.reports.figures import FigureFiles
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


def md(text: Any) -> str:
    """Escape Markdown's inline specials and table pipes; newlines become spaces."""
    s = str(text).replace("\\", "\\\\").replace("\n", " ")
    for ch in "|*_`[]<>#":
        s = s.replace(ch, "\\" + ch)
    return s


def _verdict(v: str, control: bool = False) -> str:
    word, good = verdict_word(v, control=control)
    return word if good else f"**{word}**"


def _fig(f: FigureFiles) -> list[str]:
    cap = f"**{md(f.title)}.** {md(f.caption)}" if f.title else md(f.caption)
    return [f"![{md(f.title or f.stem)}](figures/{f.stem}.png)", "", cap + f" ([SVG](figures/{f.stem}.svg))", ""]


def render_markdown(results: Mapping[str, Any], figures: Mapping[str, Sequence[FigureFiles]]) -> str:
    n_rej = sum(c["verdict"] == "rejected" for c in results["controls"])
    counts = ", ".join(f"{sum(c['verdict'] == o for c in results['claims'])} {o}" for o in OUTCOME_WORDS
                       if any(c["verdict"] == o for c in results["claims"])) or "none"

    def ctrls_of(c: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        return [x for x in results["controls"] if x["claim"] == c["id"]]

    out = [
        f"# {md(results['title'])}",
        "",
        f"{md(results['tool']['name'])} {md(results['tool']['version'])}, profile **{md(results['profile'])}**, "
        f"created {md(results['created'])}.",
        "",
        f"**Verdict: {results['verdict'].upper()}** ({len(results['claims'])} claims: {counts}; "
        f"{n_rej} of {len(results['controls'])} negative controls rejected).",
        "",
        "## Verdicts",
        "",
        "A claim passes when its statistic lies within its threshold; a negative control is the same test "
        "applied to a deliberately wrong theory and should be rejected. A claim whose statistic passes while a "
        "control is not rejected is inconclusive (too little power); a statistic that cannot be computed is an "
        "error.",
        "",
        "| claim | statistic | value | threshold | alpha | statistic outcome | controls | verdict |",
        "|---|---|---:|---|---:|---|---|---|",
    ]
    for c in results["claims"]:
        out.append(f"| [{md(c['title'])}](#{c['id'].replace('_', '-')}) | {md(c['statistic']['name'])} | "
                   f"{md(format_statistic(c['statistic']))} | {md(format_threshold(c['threshold']))} | "
                   f"{md(format_alpha(c))} | {_verdict(statistic_outcome(c))} | {md(controls_outcome(ctrls_of(c)))} | "
                   f"{_verdict(c['verdict'])} |")
    if results["controls"]:
        out += ["", "| claim | wrong theory | statistic | value | outcome |", "|---|---|---|---:|---|"]
        for x in results["controls"]:
            out.append(f"| {md(x['claim'])} | {md(x['statement'])} | {md(x['statistic']['name'])} | "
                       f"{md(format_statistic(x['statistic']))} | {_verdict(x['verdict'], True)} |")
    der = results["derivation"]
    out += ["", "## Derived formulas", "", f"Parameterization `{der['param']}`, printed from the SymPy derivation "
            "(`derivation.tex`).", ""]
    for f in der["formulas"]:
        out += [f"**{md(f['label'])}**" + (f": {md(f['description'])}" if f.get("description") else ""), "",
                "$$", f["latex"], "$$", ""]
    for f in figures.get("derivation", ()):
        out += _fig(f)
    out += [md(n) + "\n" for n in der["notes"]]
    for c in results["claims"]:
        out += [f'<a id="{c["id"].replace("_", "-")}"></a>', "", f"## {md(c['title'])}: {_verdict(c['verdict'])}", "",
                md(c["statement"]), "", "$$", c["formula"], "$$", "",
                f"- statistic: {md(c['statistic']['name'])} = {md(format_statistic(c['statistic']))}",
                f"- threshold: {md(format_threshold(c['threshold']))}",
                f"- stated alpha: {md(format_alpha(c))}",
                f"- outcome: {md(outcome_line(c, ctrls_of(c)))}"]
        out += [f"- **{md(t)}**" if c["verdict"] != "pass" else f"- {md(t)}" for t in stated_sentences(c)]
        out.append("")
        for x in (x for x in results["controls"] if x["claim"] == c["id"]):
            out.append(f"- control: {md(x['statement'].rstrip('.'))}: {md(x['statistic']['name'])} = "
                       f"{md(format_statistic(x['statistic']))}, {_verdict(x['verdict'], True)}")
        out.append("")
        for f in figures.get(c["id"], ()):
            out += _fig(f)
        out += [md(n) + "\n" for n in c.get("notes", [])]
    for ch in results.get("chapters", []):
        out += [f"## {md(ch['title'])}", ""]
        out += [md(t) + "\n" for t in ch["text"]]
        for f in figures.get(f"chapter-{ch['id']}", ()):
            out += _fig(f)
        for table in ch["tables"]:
            out += [md(table["caption"]), "", "| " + " | ".join(md(c.replace("_", " ")) for c in table["columns"]) + " |",
                    "|" + "---|" * len(table["columns"])]
            out += ["| " + " | ".join(md(v if isinstance(v, str) else format_number(v)) for v in row) + " |"
                    for row in table["rows"]]
            out.append("")
    prov = results["provenance"]
    out += ["## Provenance", "", "| key | value |", "|---|---|"]
    for k, v in prov.items():
        out.append(f"| {md(k)} | {md(format_number(v) if not isinstance(v, (dict, list)) else _flat(v))} |")
    return "\n".join(out).rstrip() + "\n"


def _flat(v: Any) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_flat(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_flat(x) for x in v)
    return format_number(v)
