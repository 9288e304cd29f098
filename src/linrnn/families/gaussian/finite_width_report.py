"""The data behind ``linrnn derive finite-width`` and its two renderings (table, JSON).

For a model specification, a number of lags ``L`` and a width ``n``: the exact
finite-width NNGP variance ``E[L_j(0)[a,b]^2]`` and lag-NTK diagonal ``E[Theta_jj]``
(one output, one input coordinate; :mod:`linrnn.families.gaussian.finite_width`) as rational
functions of ``n``, their values at the width, their ratio to the wide limit and the
width needed for a 1% and a 10% deviation from it
(:func:`linrnn.families.gaussian.corrections.width_needed`), for ``j = 0 .. L-1``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from linrnn.core.validate import check_size
from linrnn.core.errors import UsageError
from linrnn.derive import symbols as S
from linrnn.derive.model import ModelSpec, substitutions

SCHEMA_VERSION = 1
#: the largest ``--lags``: the exact engine's cost grows about tenfold every four lags
MAX_LAGS = 20
#: the tolerances of ``width_needed`` (relative deviation from the wide limit)
TOLERANCES: tuple[str, ...] = ("0.01", "0.1")


def exact_diagonals(param: str, lags: int) -> dict[str, list[sp.Expr]]:
    """E[L_j^2] and E[Theta_jj] for j < lags in the generic symbols, disk-cached.

    ``{"nngp": [...], "ntk_diag": [...]}``, each a list of rational functions of ``n``
    (and of q, sigma_C^2, sigma_F^2, n_x, eta_P), from :mod:`linrnn.families.gaussian.finite_width`.
    """
    from linrnn.derive.cache import disk_cached
    from linrnn.families.gaussian import finite_width as fw

    def compute() -> dict[str, list[sp.Expr]]:
        return {
            "nngp": [sp.factor(fw.exact_nngp_cov(j, j)) for j in range(lags)],
            "ntk_diag": [sp.factor(fw.exact_lag_ntk(param, j, j)) for j in range(lags)],
        }

    return disk_cached(f"finite-width-{param}-{lags}", compute, dict)


@dataclass
class FiniteWidthReport:
    spec: ModelSpec
    lags: int
    width: int
    exact: dict[str, list[sp.Expr]]  # at the spec's values, rational in n
    limit: dict[str, list[sp.Expr]]
    values: dict[str, list[float]]
    limit_ratio: dict[str, list[float]]
    width_needed: dict[str, dict[str, list[int]]]
    notices: list[str] = field(default_factory=list)


def finite_width_report(spec: ModelSpec, lags: int, width: int) -> FiniteWidthReport:
    """Exact E[L_j^2], E[Theta_jj] at ``width``, ratio to the limit, width for 1% / 10%, j < lags."""
    from linrnn.families.gaussian.corrections import _wide, width_needed

    lags = check_size("--lags", lags)
    if lags > MAX_LAGS:
        raise UsageError(f"--lags must be at most {MAX_LAGS} for the exact finite-width engine, got {lags}")
    width = check_size("--width", width)
    subs = substitutions(spec)
    generic = exact_diagonals(spec.param, lags)
    exact = {k: [sp.factor(sp.cancel(e.subs(subs))) for e in v] for k, v in generic.items()}
    limit = {k: [_wide(e) for e in v] for k, v in exact.items()}
    values = {k: [float(e.subs(S.n, width)) for e in v] for k, v in exact.items()}
    ratio = {
        k: [float(e.subs(S.n, width) / lim) for e, lim in zip(exact[k], limit[k])] for k in exact
    }
    needed = {
        k: {tol: [width_needed(e, lim, sp.Rational(tol)) for e, lim in zip(exact[k], limit[k])] for tol in TOLERANCES}
        for k in exact
    }
    return FiniteWidthReport(spec, lags, width, exact, limit, values, ratio, needed)


def to_dict(report: FiniteWidthReport) -> dict[str, Any]:
    """The JSON object: lags, width, nngp, ntk_diag, nngp_exact, ntk_diag_exact, limit_ratio, width_needed.

    ``*_exact`` are strings that :func:`sympy.sympify` parses, rational functions of the
    symbol ``n``; ``limit_ratio[k][j]`` is value / wide limit at the width;
    ``width_needed[k][tol][j]`` the least width from which the relative deviation stays
    within ``tol`` (``"0.01"``, ``"0.1"``).
    """
    return {
        "schema_version": SCHEMA_VERSION,
        "model": report.spec.as_dict(),
        "lags": report.lags,
        "width": report.width,
        "nngp": report.values["nngp"],
        "ntk_diag": report.values["ntk_diag"],
        "nngp_exact": [sp.sstr(e) for e in report.exact["nngp"]],
        "ntk_diag_exact": [sp.sstr(e) for e in report.exact["ntk_diag"]],
        "nngp_limit": [float(e) for e in report.limit["nngp"]],
        "ntk_diag_limit": [float(e) for e in report.limit["ntk_diag"]],
        "limit_ratio": report.limit_ratio,
        "width_needed": report.width_needed,
    }


def format_json(report: FiniteWidthReport) -> str:
    return json.dumps(to_dict(report), allow_nan=False) + "\n"


def format_table(report: FiniteWidthReport) -> str:
    """A readable table per lag: exact values at the width, ratio to the limit, widths needed."""
    spec = report.spec
    lines = [
        f"# exact finite-width NNGP variance and lag-NTK diagonal ({spec.param} parameterization), "
        f"width n = {report.width}",
        f"# q = sigma_W^2 = {spec.sigma_w2:g}, sigma_C^2 = {spec.sigma_c2:g}, sigma_F^2 = {spec.sigma_f2:g}, "
        f"n_x = {spec.n_in}, eta = (C {spec.lr_c:g}, F {spec.lr_f:g}, W {spec.lr_w:g})",
        "# ratio = exact(n) / wide limit; n(1%), n(10%): least width from which |ratio - 1| stays within it",
    ]
    header = (
        f"{'j':>3}  {'E[L_j^2]':>12}  {'ratio':>8}  {'n(1%)':>7}  {'n(10%)':>7}  "
        f"{'E[Theta_jj]':>12}  {'ratio':>8}  {'n(1%)':>7}  {'n(10%)':>7}"
    )
    lines += [header, "-" * len(header)]
    for j in range(report.lags):
        cells = []
        for k in ("nngp", "ntk_diag"):
            cells.append(
                f"{report.values[k][j]:>12.6g}  {report.limit_ratio[k][j]:>8.5f}  "
                f"{report.width_needed[k]['0.01'][j]:>7d}  {report.width_needed[k]['0.1'][j]:>7d}"
            )
        lines.append(f"{j:>3}  " + "  ".join(cells))
    lines.append("# exact rational functions of n:")
    for j in range(report.lags):
        lines.append(f"#   E[L_{j}^2] = {sp.sstr(report.exact['nngp'][j])}")
        lines.append(f"#   E[Theta_{j}{j}] = {sp.sstr(report.exact['ntk_diag'][j])}")
    return "\n".join(lines) + "\n"
