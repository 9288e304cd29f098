r"""The derivation as a standalone LaTeX document, printed from its SymPy steps.

Every displayed equation is ``printer.doprint(step.lhs)``, the relation, and
``printer.doprint(step.rhs)`` for a :class:`linrnn.derive.steps.Step`; notation is set
through the printer (:class:`DerivationPrinter`: symbol names and a few matrix
conventions), never by editing the printed strings. Prose comes from the steps'
notes and the fixed framing text below.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from linrnn.derive.model import ModelSpec, substitutions
from linrnn.core.spec import PARAMS
from linrnn.derive.steps import Derivation, Step
from linrnn.core.errors import ExternalToolError, UsageError
from linrnn.core.files import (atomic_file, check_new_file, sign_bytes, sign_pdf, sign_text, write_text_atomic,
                               written_by_linrnn)
from linrnn.derive.printer import RELATIONS, DerivationPrinter, latex  # noqa: F401  (re-exported)


def display(body: str, label: str | None = None, *, number: bool = True) -> str:
    """A displayed equation that breaks across lines where it is wider than the text (breqn's ``dmath``), never
    shrunk: at a relation or a binary operator, inside ``\\left( ... \\right)`` too; its number stays on its line."""
    env = "dmath" if number else "dmath*"
    tag = rf"\label{{eq:{label}}}" if number and label else ""
    return rf"\begin{{{env}}}{tag}" + "\n" + body + "\n" + rf"\end{{{env}}}"


def render_step(step: Step, *, number: bool = True) -> str:
    """One step as an equation with its note (exact-string tested)."""
    rel = RELATIONS[step.relation]
    out = display(rf"{latex(step.lhs)} {rel} {latex(step.rhs)}", step.label, number=number)
    if step.note:
        out += "\n" + step.note + "\n"
    return out


def render_derivation(derivation: Derivation, *, level: str = "section") -> str:
    parts: list[str] = []
    for section in derivation.sections():
        parts.append(rf"\{level}{{{section}}}")
        for step in derivation:
            if step.section == section:
                parts.append(render_step(step))
    return "\n\n".join(parts)


PREAMBLE = r"""\documentclass[11pt]{article}
\usepackage[T1]{fontenc}
\usepackage{lmodern}
\usepackage{amsmath,amssymb}
\usepackage{breqn}% displayed equations break across lines at their natural size (dmath), never shrunk
\usepackage{graphicx}
\usepackage[margin=2.5cm]{geometry}
\setlength{\parindent}{0pt}
\setlength{\parskip}{0.5em}
"""


def _spec_table(spec: ModelSpec, lags: int = 8) -> str:
    from linrnn.derive.numeric import evaluate
    from linrnn.derive.lag_weights import derive_lag_weights

    der = derive_lag_weights(spec.param, spec.derivation_law())
    w = evaluate(der.weight, spec, lags, dps=30)
    v = evaluate(der.nngp, spec, lags, dps=30)
    import mpmath

    rows = "\n".join(
        rf"{jj} & {mpmath.nstr(w[jj], 8)} & {mpmath.nstr(w[jj] / w[0], 8) if w[0] != 0 else '--'} & {mpmath.nstr(v[jj], 8)} \\"
        for jj in range(lags)
    )
    return (
        r"\begin{center}\begin{tabular}{rrrr}" "\n"
        r"$j$ & $\lambda_j$ & $\lambda_j/\lambda_0$ & $\operatorname{Var} L_j(0)[a,b]$ \\ \hline" "\n"
        + rows + "\n" r"\end{tabular}\end{center}"
    )


def build_document(spec: ModelSpec, eps: float = 1e-3, steps: Derivation | None = None,
                   sections: Iterable[str] = ()) -> str:
    """The full document for ``spec`` (its parameterization's derivation and values).

    ``steps``: the derivation to print as the body (a family's model gives its own, e.g. with
    steps beyond the lag weights); by default the lag-weight derivation of ``spec``'s law.
    ``sections``: LaTeX sections the family's model adds at the end (its ``latex_sections()``:
    the Gaussian family's exact finite-width results).
    """
    from linrnn.derive.weight_consequences import consequences
    from linrnn.derive.lag_weights import derive_lag_weights
    from linrnn.derive.numeric import summarize

    der = derive_lag_weights(spec.param, spec.derivation_law())
    con = consequences(spec.param)
    others = {p: derive_lag_weights(p, spec.derivation_law()) for p in PARAMS if p != spec.param}
    summary = summarize(spec, eps=eps)
    subs = substitutions(spec)
    specialised = der.weight.subs(subs)

    result_weight = display(rf"\lambda_j = {latex(der.weight)},", number=False)
    result_nngp = display(rf"\operatorname{{Var}} L_j(0)[a,b] = {latex(der.nngp)}.", number=False)
    intro = rf"""\title{{Implicit bias of wide linear RNNs:\\ the lag weights of the equivalent convolution}}
\author{{\texttt{{linrnn-bias}} (derivation printed from SymPy)}}
\date{{}}
\begin{{document}}
\maketitle

\begin{{abstract}}
A linear RNN $h_t = W_e h_{{t-1}} + F_e x_t$, $y_t = C_e h_t$ is the causal convolution
$y_t = \sum_{{j}} L_j x_{{t-j}}$ with kernel $L_j = C_e W_e^{{j}} F_e$. Following Emami,
Sahraee-Ardakan, Pandit, Rangan and Fletcher (\emph{{Implicit Bias of Linear RNNs}}, ICML 2021),
as the width $n \to \infty$ gradient descent moves the kernel like a scaled convolution,
lag $j$ weighted by $\lambda_j$. This appendix derives $\lambda_j$, the variance of the initial
kernel and their consequences in the \texttt{{{spec.param}}} parameterization. Every equation below is
printed from a SymPy object produced by the derivation; none is typed by hand.
\end{{abstract}}

\section*{{Result}}
{result_weight}
{result_nngp}
The limit lag NTK is $\lambda_i\,\delta_{{ij}}\,\delta_{{aa'}}\,\delta_{{bb'}}$: gradient descent acts on
each lag independently. Notation: $q = \sigma_W^2$ is the transition variance, $n_x$ the input
dimension and $\eta_C, \eta_F, \eta_W$ the per-parameter learning-rate multipliers.
"""
    body = render_derivation(der.steps if steps is None else steps)
    cons = render_derivation(con.steps)
    regime_rows = "\n".join(
        rf"${latex(r.condition)}$ & {r.name} & ${latex(r.limit)}$ & ${latex(r.ratio_limit)}$ \\"
        for r in con.regimes
    )
    regime_table = (
        r"\begin{center}\begin{tabular}{llll}" "\n"
        r"regime & name & $\lim_{j\to\infty}\lambda_j$ & $\lim_{j\to\infty}\lambda_{j+1}/\lambda_j$ \\ \hline" "\n"
        + regime_rows + "\n" r"\end{tabular}\end{center}"
    )
    if summary.horizon is not None:
        horizon_text = (
            rf"The weights peak at lag {summary.peak_lag} and fall to $\varepsilon = {eps:g}$ of their maximum at "
            rf"$j_\varepsilon = {summary.horizon:.4f}$ (first lag below: {summary.horizon_lag}); "
            rf"their sum is ${float(summary.total):.6g}$."
        )
    else:
        horizon_text = "The weights do not decay ($q \\geq 1$): no memory horizon exists and their sum diverges."
    specialised_display = display(rf"\lambda_j = {latex(specialised)}.", number=False)
    values = rf"""\section{{This configuration}}
With $q = {spec.sigma_w2:g}$, $\sigma_C^2 = {spec.sigma_c2:g}$, $\sigma_F^2 = {spec.sigma_f2:g}$, $n_x = {spec.n_in}$,
$(\eta_C, \eta_F, \eta_W) = ({spec.lr_c:g}, {spec.lr_f:g}, {spec.lr_w:g})$ (regime: {summary.regime}):
{specialised_display}
{horizon_text}
{_spec_table(spec)}
"""

    def compared(other: str, other_der: Any) -> str:
        weight = display(rf"\lambda_j = {latex(other_der.weight)},", number=False)
        return rf"""In the \texttt{{{other}}} parameterization the same derivation gives
{weight}
with the $C$, $F$, $W$ contributions of order $n^{{{other_der.orders['C']}}}$, $n^{{{other_der.orders['F']}}}$,
$n^{{{other_der.orders['W']}}}$ before the limit; the NNGP is the same, ${latex(other_der.nngp)}$.
"""

    heading = "The other parameterizations" if len(others) > 1 else "The other parameterization"
    comparison = rf"\section{{{heading}}}" + "\n" + "".join(compared(p, d) for p, d in others.items())
    checks = r"""\section{Checks}
The gradients were checked entrywise against \texttt{sympy.diff}. The test suite checks the
lag weights and the NNGP against an independent route: exact Gaussian moments of the squared
gradient norms at finite width $n$, by Wick (Isserlis) enumeration of index pairings, as
rational functions of $n$, whose $n\to\infty$ limits must equal the expressions above for lags
$0,\dots,5$ in both parameterizations; and against Monte Carlo estimates of the empirical lag NTK.
"""
    return "\n\n".join([
        PREAMBLE, intro, body, r"\section{Consequences}" "\n" + cons.replace(r"\section{", r"\subsection{"),
        regime_table, values, comparison, checks,
        *sections, r"\end{document}" "\n",
    ])


#: LaTeX's special characters in running text, and what prints each.
_TEXT_ESCAPES = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "_": r"\_", "^": r"\^{}", "#": r"\#",
                 "$": r"\$", "%": r"\%", "&": r"\&", "~": r"\~{}"}


def escape_text(text: str) -> str:
    """``text`` as LaTeX that prints it literally (every special character escaped)."""
    return "".join(_TEXT_ESCAPES.get(ch, ch) for ch in text)


def derivation_document(title: str, derivation: Derivation, *, conventions: str, parameters: dict[str, Any],
                        kernel_rows: list[tuple[float, float]]) -> str:
    """A standalone document of any derivation given as steps: its title, the model's conventions
    (plain text, printed literally), the steps by section, and the derived diagonals
    Theta_inf(j, j) and NNGP(j, j) at ``parameters`` (one row per lag j of ``kernel_rows``)."""
    params = ", ".join(rf"\texttt{{{escape_text(k)}}} $= {v:g}$" if isinstance(v, (int, float))
                       else rf"\texttt{{{escape_text(k)}}} = \texttt{{{escape_text(str(v))}}}"
                       for k, v in parameters.items())
    rows = "\n".join(rf"{jj} & {ntk:.8g} & {nngp:.8g} \\" for jj, (ntk, nngp) in enumerate(kernel_rows))
    intro = rf"""\title{{{escape_text(title)}}}
\author{{\texttt{{linrnn-bias}} (derivation printed from SymPy)}}
\date{{}}
\begin{{document}}
\maketitle

\section*{{Conventions}}
{escape_text(conventions)}

Every equation below is printed from a SymPy object produced by the derivation; none is typed by hand.
"""
    table = rf"""\section{{This configuration}}
With {params}, the derived kernels on the diagonal, lags $0, \dots, {len(kernel_rows) - 1}$:
\begin{{center}}\begin{{tabular}}{{rrr}}
$j$ & $\Theta_\infty(j, j)$ & $\mathrm{{NNGP}}(j, j)$ \\ \hline
{rows}
\end{{tabular}}\end{{center}}
"""
    return "\n\n".join([PREAMBLE, intro, render_derivation(derivation), table, r"\end{document}" "\n"])


def find_engine() -> list[str] | None:
    """The command that compiles a .tex file to PDF, or None if no engine is installed."""
    if shutil.which("latexmk") and shutil.which("pdflatex"):
        return ["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error"]
    if shutil.which("pdflatex"):
        return ["pdflatex", "-interaction=nonstopmode", "-halt-on-error"]
    return None


def compile_pdf(tex: Path, out_dir: Path, *, force: bool = False) -> Path:
    """Compile ``tex`` in a scratch directory; move only a finished PDF to ``out_dir``.

    The engine sees the document under a plain name (``document.tex``), so a file name
    with characters TeX treats specially (``%``, ``#``, spaces) compiles like any other.
    The PDF is copied to a temporary name beside its target and renamed, and that
    temporary file is removed on any failure (a full disk leaves nothing behind). On a
    compile error the engine's log is copied next to the target as ``<stem>.log`` and
    the message points at it (or, if that copy fails, says so); an existing ``<stem>.log``
    that linrnn did not write is kept unless ``force``, and the message says so. The PDF
    and the log carry linrnn's signature (:func:`linrnn.core.files.sign_pdf`,
    :func:`linrnn.core.files.sign_bytes`).
    """
    engine = find_engine()
    if engine is None:
        raise UsageError("no LaTeX engine is installed (need pdflatex, ideally with latexmk); "
                         "install TeX Live or drop --pdf")
    with tempfile.TemporaryDirectory(prefix="linrnn-latex-") as scratch:
        src = Path(scratch) / "document.tex"
        shutil.copyfile(tex, src)
        runs = 1 if engine[0] == "latexmk" else 2
        for _ in range(runs):
            proc = subprocess.run([*engine, src.name], cwd=scratch, capture_output=True, text=True,
                                  timeout=300, stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                log = out_dir / (tex.stem + ".log")
                logfile = Path(scratch) / "document.log"
                where = "the engine wrote no log"
                if logfile.exists() and not force and os.path.lexists(log) and not written_by_linrnn(log):
                    where = f"its log was not copied to {log}, which exists and linrnn did not write"
                elif logfile.exists():
                    try:
                        with atomic_file(log, "wb") as fh:
                            fh.write(sign_bytes(logfile.read_bytes()))
                        where = f"see {log}"
                    except (OSError, UsageError) as exc:
                        where = f"its log could not be copied ({exc})"
                raise ExternalToolError(f"{engine[0]} failed to compile {tex.name}; {where}")
        with atomic_file(out_dir / (tex.stem + ".pdf"), "wb") as fh:
            fh.write(sign_pdf((Path(scratch) / "document.pdf").read_bytes()))
    return out_dir / (tex.stem + ".pdf")


def write_document(spec: ModelSpec, output: str | os.PathLike[str], *, pdf: bool = False,
                   eps: float = 1e-3, force: bool = False, steps: Derivation | None = None,
                   sections: Iterable[str] = ()) -> list[Path]:
    """Write the derivation of ``spec`` (:func:`build_document`, with ``steps`` as its body and ``sections`` at
    its end if given) to ``output`` (and its PDF with ``pdf=True``); return the paths (:func:`write_tex`)."""
    return write_tex(output, lambda: build_document(spec, eps=eps, steps=steps, sections=sections), pdf=pdf,
                     force=force)


def write_tex(output: str | os.PathLike[str], build: Callable[[], str], *, pdf: bool = False,
              force: bool = False) -> list[Path]:
    """Write the document ``build()`` returns to ``output`` (and its PDF with ``pdf=True``); return the paths.

    Nothing is written if the engine is missing, the path cannot be written, or an
    existing ``.tex`` (or, with ``pdf``, ``.pdf``) there was not written by linrnn and
    ``force`` is not given (all checked before ``build`` runs,
    :func:`linrnn.core.files.check_new_file`); files appear only complete (written to a
    temporary name, then renamed). The ``.tex`` starts with linrnn's signature line
    (a ``%`` comment). If the PDF fails, the ``.tex`` stays: it is complete and the
    compile error points at its log.
    """
    path = check_new_file(output, "the LaTeX output", force=force)
    if pdf and find_engine() is None:
        raise UsageError("no LaTeX engine is installed (need pdflatex, ideally with latexmk); "
                         "install TeX Live or drop --pdf")
    if pdf:
        check_new_file(path.with_suffix(".pdf"), "the PDF output", force=force)
    text = build()
    write_text_atomic(path, sign_text(text))
    paths = [path]
    if pdf:
        paths.append(compile_pdf(path, path.parent, force=force))
    return paths
