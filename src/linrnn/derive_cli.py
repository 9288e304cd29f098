"""``linrnn derive``: lag weights on the command line and the LaTeX derivation.

Only the standard library is imported at module level, so ``--help`` is instant;
SymPy, NumPy and mpmath load inside the handlers. Each handler calls one plain
function (:func:`weights_report`, :func:`linrnn.derive.latex.write_document`).
"""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any

from linrnn.core.errors import UsageError


def _positive_int(name: str, upper: int | None = None) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer, got {text!r}") from None
        if value < 1 or (upper is not None and value > upper):
            bound = f" no larger than {upper}" if upper is not None else ""
            raise argparse.ArgumentTypeError(f"{name} must be a positive integer{bound}, got {text!r}")
        return value

    return parse


def _unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"eps must be a number in (0, 1), got {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"eps must lie strictly between 0 and 1, got {text!r}")
    return value


def add_model_flags(p: argparse.ArgumentParser, *, eps: bool = True) -> None:
    """The model flags (:mod:`linrnn.model_flags`, one definition for every command) and ``--eps`` if ``eps``."""
    from linrnn.model_flags import add_model_flags as add_spec_flags

    add_spec_flags(p)
    if eps:
        p.add_argument("--eps", type=_unit_interval, default=1e-3,
                       help="memory-horizon threshold: lag where lambda_j / max lambda falls to eps (default 1e-3)")


def register(groups: Any, name: str, help_text: str) -> None:
    """Add the ``linrnn.derive`` group with ``weights``, ``kernel``, ``latex`` and ``finite-width`` to ``groups``."""
    group = groups.add_parser(name, help=help_text, description=help_text)
    sub = group.add_subparsers(dest="command", metavar="{weights,kernel,latex,finite-width}",
                               parser_class=type(group))
    sub.required = True

    w = sub.add_parser(
        "weights",
        help="lag weights lambda_j, NNGP variances and consequences",
        description="Evaluate the derived lag weights lambda_j (the diagonal of the n -> infinity lag NTK) "
        "and the NNGP variance of the initial impulse response, j = 0 .. L-1.",
    )
    add_model_flags(w)
    w.add_argument("--lags", type=_positive_int("--lags", 10_000_000), default=32, metavar="L",
                   help="number of lags L (default 32)")
    w.add_argument("--dps", type=_positive_int("--dps", 100_000), default=None, metavar="D",
                   help="evaluate with mpmath at D significant digits (for long lags and q > 1)")
    w.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    w.set_defaults(func=_run_weights)

    k = sub.add_parser(
        "kernel",
        help="the derived wide-limit lag kernel (NTK) and NNGP covariance of a model family",
        description="The derived n -> infinity lag kernel Theta_inf(j, k) and the NNGP covariance "
        "E[L_j(0) L_k(0)] of a model family, j, k = 0 .. L-1 (linrnn.family(NAME, ...).kernel(L)), and the "
        "consequences of Theta_inf: memory horizons, effective rank, participation ratio, neighbour correlation.",
    )
    add_model_flags(k, eps=False)
    k.add_argument("--lags", type=_positive_int("--lags", MAX_KERNEL_LAGS), default=16, metavar="L",
                   help=f"number of lags L, at most {MAX_KERNEL_LAGS} (default 16)")
    k.add_argument("--json", action="store_true",
                   help="print one JSON object: family, model, lags, layout, ntk, nngp (L x L lists for n_x = n_y = 1), "
                        "consequences")
    k.set_defaults(func=_run_kernel)

    x = sub.add_parser(
        "latex",
        help="write the derivation as a standalone LaTeX document",
        description="Write the model family's derivation as a standalone LaTeX document printed from its SymPy "
        "steps: for a dense family (gaussian, orthogonal) the model, gradients, wide-width expectations, sums, lag "
        "weights, NNGP, consequences and regimes; for any other family (--family diagonal, lru, shifted) its own derivation "
        "and its derived kernels' diagonals at the given parameters.",
    )
    add_model_flags(x)
    x.add_argument("-o", "--output", default="derivation.tex", metavar="FILE.tex",
                   help="output path (default derivation.tex)")
    x.add_argument("--pdf", action="store_true", help="also compile a PDF with the installed LaTeX engine")
    x.add_argument("--force", action="store_true",
                   help="replace an existing FILE.tex (and .pdf) that linrnn did not write; without it only a "
                        "file that linrnn wrote and nobody changed is replaced")
    x.set_defaults(func=_run_latex)

    fwp = sub.add_parser(
        "finite-width",
        help="exact finite-width NNGP variance and lag-NTK diagonal, ratio to the wide limit, width needed",
        description="Exact E[L_j(0)^2] and E[Theta_jj] at a finite width n (rational functions of n, by the "
        "loop equations of the Gaussian transition matrix), their ratio to the wide limit and the width needed "
        "for a 1% and a 10% deviation, j = 0 .. L-1.",
    )
    add_model_flags(fwp)
    fwp.add_argument("--lags", type=_positive_int("--lags", 20), default=16, metavar="L",
                     help="number of lags L, at most 20 (default 16)")
    fwp.add_argument("--width", type=_positive_int("--width"), default=256, metavar="N",
                     help="width n at which to evaluate (default 256)")
    fwp.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    fwp.set_defaults(func=_run_finite_width)


def spec_from_args(args: argparse.Namespace) -> Any:
    """The model specification of the flags given (:func:`linrnn.model_flags.spec_from_args`)."""
    from linrnn.model_flags import spec_from_args as from_flags

    return from_flags(args)


def dense_spec(args: argparse.Namespace, command: str) -> Any:
    """The specification of the flags, refused in one sentence unless it is a dense RNN family's
    (:class:`~linrnn.core.spec.ModelSpec`): ``command`` runs the dense engines."""
    from linrnn.core.spec import ModelSpec

    spec = spec_from_args(args)
    if not isinstance(spec, ModelSpec):
        raise UsageError(f"{command} runs the dense RNN families only (gaussian, orthogonal), not the {spec.family} "
                         f"family; its derived kernels: linrnn derive kernel --family {spec.family}")
    return spec


#: The most lags ``derive kernel`` prints: two L x L float arrays (per channel pair) and their text.
MAX_KERNEL_LAGS = 4096


def kernel_json(name: str, model: Any, lags: int) -> dict[str, Any]:
    """The object ``derive kernel --json`` prints: the family, its specification and the derived kernels.

    ``ntk`` and ``nngp`` are L x L nested lists of floats when n_x = n_y = 1, else the full
    layout (lag, output, input, lag, output, input); ``layout`` says which. ``consequences``:
    the NTK's memory horizons, effective rank, participation ratio and neighbour correlation
    (:mod:`linrnn.families.consequences`; on the (0, 0) block with channels, ``block`` says so).
    """
    import numpy as np

    from linrnn.families.consequences import consequences

    k = model.kernel(lags)
    scalar = model.spec.n_in == 1 and model.spec.n_out == 1

    def out(a: Any) -> Any:
        a = np.asarray(a, dtype=np.float64)
        a = a.reshape(lags, lags) if scalar else a
        return [[None if not math.isfinite(v) else v for v in row] for row in a.tolist()] if scalar else a.tolist()

    return {"schema_version": 1, "family": name, "model": model.spec.as_dict(), "lags": lags,
            "layout": "(lag, lag)" if scalar else "(lag, output, input, lag, output, input)",
            "ntk": out(k["ntk"]), "nngp": out(k["nngp"]), "consequences": consequences(model, lags).as_dict()}


def _run_kernel(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from linrnn.families import model_of
    from linrnn.families.consequences import consequences

    spec = spec_from_args(args)
    model = model_of(spec)
    if args.json:
        sys.stdout.write(json.dumps(kernel_json(spec.family, model, args.lags), allow_nan=False) + "\n")
        return 0
    k = model.kernel(args.lags)
    L, ny, nx = args.lags, spec.n_out, spec.n_in
    ntk, nngp = (np.asarray(k[name]).reshape(L * ny * nx, L * ny * nx) for name in ("ntk", "nngp"))
    from linrnn.core.spec import ModelSpec

    head = ([f"# derived wide-limit kernels of the {spec.family} family ({spec.param} parameterization)",
             f"# q = sigma_W^2 = {spec.sigma_w2:g}, sigma_C^2 = {spec.sigma_c2:g}, sigma_F^2 = {spec.sigma_f2:g}, "
             f"n_x = {nx}, n_y = {ny}, eta = (C {spec.lr_c:g}, F {spec.lr_f:g}, W {spec.lr_w:g})"]
            if isinstance(spec, ModelSpec) else
            [f"# derived lag kernels of the {spec.family} family (exact at every width)",
             "# " + ", ".join(f"{k} = {v:g}" for k, v in spec.as_dict().items())])
    lines = [*head,
             f"{'j':>6} {'Theta_inf(j,j)':>16} {'NNGP(j,j)':>16}"]
    for j in range(L):
        i = j * ny * nx  # the first (output, input) pair of lag j
        lines.append(f"{j:>6} {ntk[i, i]:>16.6g} {nngp[i, i]:>16.6g}")
    off = ~np.eye(L * ny * nx, dtype=bool)
    lines.append(f"# off the diagonal: max |Theta_inf| = {np.max(np.abs(ntk[off]), initial=0.0):.3g}, "
                 f"max |NNGP| = {np.max(np.abs(nngp[off]), initial=0.0):.3g} (--json prints every entry)")
    lines.extend(consequences(model, L).lines())
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


#: The memory that ``derive weights`` may use for its values and their printed text.
DEFAULT_MAX_MEMORY = "4GB"


def weights_bytes(lags: int, dps: int | None) -> int:
    """Peak bytes of ``derive weights``, an upper estimate: per lag, lambda_j and the NNGP variance as
    numbers (8 bytes in float64; an mpmath mpf of ``dps`` digits holds about 0.42 dps bytes of mantissa
    plus some 100 of object) and as printed text (at most dps + 32 characters each), with their list slots."""
    per_number = 8 + 64 if dps is None else int(0.42 * dps) + 100
    per_text = 32 + (17 if dps is None else dps)
    return int(lags) * 2 * (per_number + per_text + 16)


def _run_weights(args: argparse.Namespace) -> int:
    from linrnn.core.validate import format_bytes, parse_memory
    from linrnn.derive.report import format_json, format_table, weights_report

    spec = dense_spec(args, "derive weights")
    needed, budget = weights_bytes(args.lags, args.dps), parse_memory(DEFAULT_MAX_MEMORY)
    if needed > budget:
        raise UsageError(f"--lags {args.lags}" + (f" at --dps {args.dps}" if args.dps else "") +
                         f" needs about {format_bytes(needed)} of memory, beyond the {format_bytes(budget)} that "
                         f"derive weights allows itself; lower --lags or --dps")
    report = weights_report(spec, args.lags, dps=args.dps, eps=args.eps)
    for notice in report.notices:
        print(f"linrnn: note: {notice}", file=sys.stderr)
    sys.stdout.write(format_json(report) if args.json else format_table(report))
    return 0


def _run_finite_width(args: argparse.Namespace) -> int:
    from linrnn.families.gaussian.finite_width_report import finite_width_report, format_json, format_table

    spec = dense_spec(args, "derive finite-width")
    if not spec.exact_finite_width:  # a family with its own finite-width results (its model's finite_width)
        return _family_finite_width(spec, args)
    report = finite_width_report(spec, args.lags, args.width)
    sys.stdout.write(format_json(report) if args.json else format_table(report))
    return 0


def _family_finite_width(spec: Any, args: argparse.Namespace) -> int:
    """``derive finite-width`` for a family whose model gives ``finite_width(lags, width)`` (NNGP, NTK or None)."""
    import json

    import numpy as np

    from linrnn.families import model_of

    model = model_of(spec)
    got = getattr(model, "finite_width", None)
    if got is None:
        raise UsageError(f"the {spec.family} family has no exact finite-width results")
    L, n = args.lags, args.width
    fw = got(L, n)
    limit = np.asarray(model.kernel(L)["nngp"], dtype=np.float64)[:, 0, 0, :, 0, 0]
    ntk_note = None if fw["ntk"] is not None else (f"the exact finite-width lag-NTK mean of the {spec.family} family "
                                                   "is not derived; its NTK checks use the wide limit with the "
                                                   "Richardson allowance")
    if args.json:
        def nested(a: Any) -> Any:
            return None if a is None else [[float(v) for v in row] for row in np.asarray(a, dtype=np.float64)]

        sys.stdout.write(json.dumps({"schema_version": 1, "family": spec.family, "model": spec.as_dict(), "lags": L,
                                     "width": n, "nngp": nested(fw["nngp"]), "nngp_limit": nested(limit),
                                     "ntk": nested(fw["ntk"]), "note": ntk_note}, allow_nan=False) + "\n")
        return 0
    nngp = np.asarray(fw["nngp"], dtype=np.float64)
    lines = [f"# exact finite-width NNGP of the {spec.family} family at n = {n} ({spec.param} parameterization, "
             f"q = {spec.sigma_w2:g})",
             f"{'j':>4} {'E[L_j^2](n)':>14} {'wide limit':>14} {'ratio':>10} {'E[L_j L_j+2](n)':>16}"]
    for j in range(L):
        off = f"{nngp[j, j + 2]:>16.6g}" if j + 2 < L else f"{'-':>16}"
        ratio = nngp[j, j] / limit[j, j] if limit[j, j] else float("nan")
        lines.append(f"{j:>4} {nngp[j, j]:>14.6g} {limit[j, j]:>14.6g} {ratio:>10.6f} {off}")
    if ntk_note:
        lines.append(f"# {ntk_note}")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _run_latex(args: argparse.Namespace) -> int:
    """``derive latex``: the lag-weight families' full document (with their model's own derivation steps), or for
    any other family (its model's derivation is no lag-weight derivation) the document of its model's derivation (:func:`linrnn.derive.latex.derivation_document`)."""
    from linrnn.core.spec import ModelSpec
    from linrnn.derive.lag_weights import LagWeightsDerivation
    from linrnn.derive.latex import write_document, write_tex
    from linrnn.families import model_of

    spec = spec_from_args(args)
    if not args.output.endswith(".tex"):
        raise UsageError(f"the output file must end in .tex, got {args.output!r}")
    model = model_of(spec)
    derivation = model.derivation()
    if isinstance(spec, ModelSpec) and isinstance(derivation, LagWeightsDerivation):  # lag weights: the full document
        paths = write_document(spec, args.output, pdf=args.pdf, eps=args.eps, force=args.force,
                               steps=derivation.steps, sections=model.latex_sections())
    else:
        paths = write_tex(args.output, lambda: family_document(spec), pdf=args.pdf, force=args.force)
    for path in paths:
        print(path)
    return 0


#: The lags of the table of derived kernels in a family's LaTeX document.
LATEX_TABLE_LAGS = 8


def conventions_text(spec: Any) -> str:
    """The model's conventions as one paragraph: its specification class's docstring after the summary line
    (``docs/conventions.md`` states them; the class repeats them, reST literals unmarked), or the summary if
    there is no more."""
    import inspect

    paragraphs = [" ".join(par.replace("``", "").split()) for par in (inspect.getdoc(type(spec)) or "").split("\n\n") if par.strip()]
    return paragraphs[1] if len(paragraphs) > 1 else (paragraphs[0] if paragraphs else "")


def family_document(spec: Any) -> str:
    """The LaTeX document of a family's derivation (its model's ``derivation()``: a
    :class:`linrnn.derive.steps.Derivation`), with its derived kernels' diagonals at ``spec``."""
    import numpy as np

    from linrnn.derive.latex import derivation_document
    from linrnn.families import model_of

    model = model_of(spec)
    derivation = model.derivation()
    k = model.kernel(LATEX_TABLE_LAGS)
    ntk, nngp = (np.asarray(k[name], dtype=np.float64)[:, 0, 0, :, 0, 0] for name in ("ntk", "nngp"))
    rows = [(float(ntk[j, j]), float(nngp[j, j])) for j in range(LATEX_TABLE_LAGS)]
    return derivation_document(derivation.title, derivation,
                               conventions=conventions_text(spec), parameters=spec.as_dict(), kernel_rows=rows)
