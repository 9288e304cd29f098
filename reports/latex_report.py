r"""``report.tex``: the same report as a LaTeX document (figures from ``figures/*.png``).

Text from the results file is escaped for LaTeX (:func:`tex`); formulas are the
stored LaTeX, set in ``equation*`` environments. It compiles with ``pdflatex``
(packages: amsmath, graphicx, booktabs-free tables, geometry).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from linrnn.reports.figures import FigureFiles
from linrnn.reports.inline_math import prose_latex
from linrnn.reports.text import (
    controls_outcome,
    format_alpha,
    format_number,
    format_statistic,
    format_threshold,
    outcome_line,
    stated_sentences,
    statistic_outcome,
)

_TEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
    "|": r"\textbar{}", "\u2713": "", "\u2717": "",
}


def tex(text: Any) -> str:
    """Escape text for LaTeX (every special character, including the backslash)."""
    return _escape(str(text)).strip()


def _escape(text: str) -> str:
    return "".join(_TEX_SPECIALS.get(ch, ch) for ch in text)


def prose(text: Any) -> str:
    """Prose from the results for LaTeX: escaped, its ASCII math as inline math (:mod:`linrnn.reports.inline_math`)."""
    return prose_latex(str(text), _escape).strip()


def _verdict(v: str, control: bool = False) -> str:
    if control:
        return {"rejected": "rejected", "not_rejected": r"\textbf{NOT rejected}"}.get(v, r"\textbf{ERROR}")
    return {"pass": "pass", "fail": r"\textbf{FAIL}", "inconclusive": r"\textbf{INCONCLUSIVE}"}.get(v, r"\textbf{ERROR}")


def _figure(f: FigureFiles) -> str:
    return (r"\begin{figure}[htbp]\centering" "\n"
            rf"\includegraphics[width=0.9\linewidth]{{figures/{f.stem}.png}}" "\n"
            rf"\caption{{\textbf{{{prose(f.title)}.}} {prose(f.caption)}}}" "\n"
            r"\end{figure}")


def render_latex(results: Mapping[str, Any], figures: Mapping[str, Sequence[FigureFiles]]) -> str:
    def ctrls_of(c: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        return [x for x in results["controls"] if x["claim"] == c["id"]]

    rows = "\n".join(
        rf"{prose(c['title'])} & {prose(c['statistic']['name'])} & {prose(format_statistic(c['statistic']))} & "
        rf"{tex(format_alpha(c))} & {_verdict(statistic_outcome(c))} & {tex(controls_outcome(ctrls_of(c)))} & "
        rf"{_verdict(c['verdict'])} \\"
        for c in results["claims"]
    )
    crow = "\n".join(
        rf"\texttt{{{tex(x['claim'])}}} & \texttt{{{tex(x['id'])}}} & {prose(x['statement'])} & "
        rf"{prose(format_statistic(x['statistic']))} & "
        rf"{_verdict(x['verdict'], True)} \\"
        for x in results["controls"]
    )
    out = [
        r"\documentclass[11pt]{article}",
        r"\usepackage[T1]{fontenc}", r"\usepackage{lmodern}", r"\usepackage{amsmath,amssymb}",
        r"\usepackage{graphicx}", r"\usepackage[margin=2.2cm]{geometry}", r"\usepackage{array}",
        r"\setlength{\parindent}{0pt}", r"\setlength{\parskip}{0.5em}",
        rf"\title{{{tex(results['title'])}}}",
        rf"\author{{{tex(results['tool']['name'])} {tex(results['tool']['version'])}, profile {tex(results['profile'])}}}",
        rf"\date{{{tex(results['created'])}}}",
        r"\begin{document}", r"\maketitle",
        rf"\textbf{{Verdict: {tex(results['verdict'].upper())}.}} A claim passes when its statistic lies within its "
        r"threshold; a negative control applies the same test to a wrong theory and should be rejected.",
        r"\section*{Verdicts}",
        r"\begin{tabular}{>{\raggedright}p{3cm}>{\raggedright}p{4.2cm}rrl>{\raggedright}p{2cm}l}",
        r"claim & statistic & value & alpha & statistic & controls & verdict \\ \hline", rows, r"\end{tabular}",
    ]
    if crow:
        out += [r"\subsection*{Negative controls}",
                r"\begin{tabular}{>{\raggedright}p{2.6cm}>{\raggedright}p{3.4cm}>{\raggedright}p{5.6cm}rl}",
                r"claim & control & wrong theory & value & outcome \\ \hline", crow, r"\end{tabular}"]
    der = results["derivation"]
    out.append(r"\section{Derived formulas}")
    for f in der["formulas"]:
        out += [rf"\textbf{{{tex(f['label'])}}}" + (f": {prose(f['description'])}" if f.get("description") else ""),
                r"\begin{equation*}" + f["latex"] + r"\end{equation*}"]
    out += [_figure(f) for f in figures.get("derivation", ())]
    out += [prose(n) for n in der["notes"]]
    for c in results["claims"]:
        out += [rf"\section{{{prose(c['title'])}: {_verdict(c['verdict'])}}}", prose(c["statement"]),
                r"\begin{equation*}" + c["formula"] + r"\end{equation*}",
                rf"Statistic: {prose(c['statistic']['name'])} $=$ {prose(format_statistic(c['statistic']))}; "
                rf"threshold: {prose(format_threshold(c['threshold']))}; stated alpha: {tex(format_alpha(c))}.",
                rf"Outcome: {prose(outcome_line(c, ctrls_of(c)))}."]
        out += [rf"\textbf{{{prose(t)}}}" if c["verdict"] != "pass" else prose(t) for t in stated_sentences(c)]
        for x in (x for x in results["controls"] if x["claim"] == c["id"]):
            out.append(rf"Control \texttt{{{tex(x['id'])}}}: {prose(x['statement'])}: {prose(format_statistic(x['statistic']))}, "
                       rf"{_verdict(x['verdict'], True)}.")
        out += [_figure(f) for f in figures.get(c["id"], ())]
        out += [prose(n) for n in c.get("notes", [])]
        out.append(r"\clearpage")
    for ch in results.get("chapters", []):
        out += [rf"\section{{{prose(ch['title'])}}}", *[prose(t) for t in ch["text"]]]
        out += [_figure(f) for f in figures.get(f"chapter-{ch['id']}", ())]
        for table in ch["tables"]:
            cols = table["columns"]
            out += [r"\begin{table}[htbp]\centering\footnotesize" "\n"
                    rf"\caption{{{prose(table['caption'])}}}" "\n"
                    r"\begin{tabular}{" + "l" * len(cols) + "}\n"
                    + " & ".join(tex(c.replace("_", " ")) for c in cols) + r" \\ \hline" "\n"
                    + "\n".join(" & ".join(tex(v if isinstance(v, str) else format_number(v)) for v in row) + r" \\"
                                for row in table["rows"])
                    + "\n" r"\end{tabular}" "\n" r"\end{table}"]
        out.append(r"\clearpage")
    out += [r"\section*{Provenance}", r"\begin{itemize}"]
    for k, v in results["provenance"].items():
        out.append(rf"\item {tex(k)}: \texttt{{{tex(format_number(v) if not isinstance(v, (dict, list)) else v)}}}")
    out += [r"\end{itemize}", r"\end{document}"]
    return "\n\n".join(out) + "\n"
