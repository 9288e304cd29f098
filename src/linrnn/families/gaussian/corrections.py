"""Finite-width corrections in closed form in the lag, and where the wide limit breaks.

The exact engine :mod:`linrnn.families.gaussian.finite_width` gives, for each lag, polynomials in
``n`` with integer coefficients,

    T(j, j)       = n^{j+1} (1 + t_1(j)/n + t_2(j)/n^2 + t_3(j)/n^3 + ...),     T(i,j) = E tr(G^i (G^T)^j),
    S_W(j, j)     = n^{j+1} (j + s_1(j)/n + s_2(j)/n^2 + s_3(j)/n^3 + ...),     S_W = sum_{k,l} D (the W part),
    T(j+2m, j)    = n^{j+m} (o_1(j) + ...),       S_W(j+2m, j) = n^{j+m} (w_1(j) + ...),

so that ``E[L_j^2] / Var_oo = T(j,j)/n^{j+1}`` and the lag NTK (all parts and both
parameterizations, :func:`linrnn.families.gaussian.finite_width.part_from_traces`) are fixed by
these coefficient sequences. This module finds each sequence in closed form by
**guessing and confirming**: the values at the lags ``0 .. g-1`` are interpolated
(:func:`sympy.interpolate`) separately on even and odd lags by the polynomial of least
degree that fits them all (a quasi-polynomial ``P(j) + (-1)^j Q(j)``, which is what the
exact values turn out to be), and the closed form is then compared with the exact
value at every lag ``g .. K`` that was *not* used to find it. A form that misses one
is not returned (the function raises). The guesses are not derivations; the
confirmation lags are recorded with each form (:class:`ClosedForm`).

The combinations (the correction of ``E[Theta_jj] / lambda_j`` for a given
parameterization and learning rates, the off-diagonal entries) are then SymPy
operations on these forms: the series of the exact structure in ``1/n``.

Where the limit breaks. The leading diagonal correction grows like ``j^4 / n^2``
(``t_1 = s_1 = 0``: no ``1/n`` term on the diagonal), so the relative deviation
``delta_j(n) = E[.](n) / E[.](oo) - 1`` is a function of ``x = j^2 / n`` to leading
order in large ``j`` at fixed ``x``: :func:`collapse_figure` tabulates it for the figure
in ``linrnn report`` and :func:`width_needed` solves ``|delta_j(n)| <= tol`` exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import sympy as sp

from linrnn.core.errors import UsageError
from linrnn.families.gaussian import finite_width as fw
from linrnn.derive import symbols as sym

if TYPE_CHECKING:
    from linrnn.derive.steps import Derivation

__all__ = [
    "ClosedForm",
    "closed_form",
    "closed_forms",
    "collapse_figure",
    "diagonal_ratio_coefficients",
    "display_form",
    "fit_quasi_polynomial",
    "off_diagonal_leading",
    "scaling_coefficient",
    "sequence",
    "width_needed",
]

j = sym.j
#: the lags at which the closed forms are confirmed (they are found from fewer)
MAX_LAG = 16


def _coefficient(p: fw.IntPoly, power: int) -> int:
    return p[power] if 0 <= power < len(p) else 0


def sequence(name: str, order: int, lags: Sequence[int], m: int = 1) -> list[int]:
    """The exact integer coefficients of one named sequence at the given lags.

    ``name`` is ``"t"`` ([n^{j+1-order}] T(j,j)), ``"s"`` ([n^{j+1-order}] S_W(j,j)),
    ``"o"`` ([n^{j+m+1-order}] T(j+2m, j)) or ``"w"`` ([n^{j+m+1-order}] S_W(j+2m, j)).
    """
    out = []
    for lag in lags:
        if name == "t":
            out.append(_coefficient(fw.gram_trace(lag, lag), lag + 1 - order))
        elif name == "s":
            out.append(_coefficient(fw.w_part_traces(lag, lag), lag + 1 - order))
        elif name == "o":
            out.append(_coefficient(fw.gram_trace(lag + 2 * m, lag), lag + m + 1 - order))
        elif name == "w":
            out.append(_coefficient(fw.w_part_traces(lag + 2 * m, lag), lag + m + 1 - order))
        else:
            raise UsageError(f"unknown sequence {name!r}; choose one of t, s, o, w")
    return out


def fit_quasi_polynomial(lags: Sequence[int], values: Sequence[int]) -> sp.Expr:
    """The quasi-polynomial ``P(j) + (-1)^j Q(j)`` of least degree through the points.

    On each parity class the interpolating polynomial (:func:`sympy.interpolate`)
    through its first ``d + 1`` points is taken with the least ``d`` that fits every
    point of the class; then ``P = (P_even + P_odd)/2`` and ``Q = (P_even - P_odd)/2``.
    """
    per: dict[int, sp.Expr] = {}
    for parity in (0, 1):
        pts = [(int(k), sp.Integer(v)) for k, v in zip(lags, values) if k % 2 == parity]
        if not pts:
            raise ValueError("need points of both parities")
        for deg in range(len(pts)):
            poly = sp.interpolate(pts[: deg + 1], j) if deg else pts[0][1]
            if all(sp.sympify(poly).subs(j, k) == v for k, v in pts):
                per[parity] = sp.expand(poly)
                break
    even, odd = per[0], per[1]
    # expanded: a canonical SymPy form, the same after a pickle round trip (the disk cache)
    return sp.expand((even + odd) / 2 + (-1) ** j * (even - odd) / 2)


def display_form(expr: sp.Expr) -> sp.Expr:
    """``factor(P) + (-1)^j factor(Q)`` for a quasi-polynomial ``P(j) + (-1)^j Q(j)`` (for printing)."""
    e = sp.expand(expr)
    alt = (-1) ** j
    q = e.coeff(alt)
    return sp.factor(sp.expand(e - q * alt)) + alt * sp.factor(q)


@dataclass(frozen=True)
class ClosedForm:
    """A sequence of exact correction coefficients in closed form in the lag ``j``.

    ``expr`` was found from the lags in ``guessed_from`` and agrees with the exact
    engine at every lag in ``confirmed_at`` (none of which was used to find it).
    """

    name: str
    description: str
    expr: sp.Expr
    guessed_from: tuple[int, ...]
    confirmed_at: tuple[int, ...]


#: (key, sequence, order, m, first lag, lags used to guess, description)
_PLAN: tuple[tuple[str, str, int, int, int, int, str], ...] = (
    ("t1", "t", 1, 1, 0, 6, "[n^-1] of T(j,j)/n^(j+1) = E[L_j^2]/Var_oo"),
    ("t2", "t", 2, 1, 0, 12, "[n^-2] of T(j,j)/n^(j+1) = E[L_j^2]/Var_oo"),
    ("t3", "t", 3, 1, 0, 14, "[n^-3] of T(j,j)/n^(j+1) = E[L_j^2]/Var_oo"),
    ("s1", "s", 1, 1, 0, 6, "[n^-1] of S_W(j,j)/n^(j+1) (W part of the diagonal)"),
    ("s2", "s", 2, 1, 0, 12, "[n^-2] of S_W(j,j)/n^(j+1) (W part of the diagonal)"),
    ("o1", "o", 1, 1, 0, 6, "[n^-1] of T(j+2,j)/n^(j+2) (lags two apart)"),
    ("o1m2", "o", 1, 2, 0, 6, "[n^-1] of T(j+4,j)/n^(j+3) (lags four apart)"),
    ("o2", "o", 2, 1, 0, 10, "[n^-2] of T(j+2,j)/n^(j+2) (lags two apart)"),
    ("w1", "w", 1, 1, 1, 6, "[n^-1] of S_W(j+2,j)/n^(j+2) (W part, lags two apart)"),
    ("w1m2", "w", 1, 2, 1, 6, "[n^-1] of S_W(j+4,j)/n^(j+3) (W part, lags four apart)"),
)


def _max_lag(name: str, m: int) -> int:
    """The lags checked: both lags of the entry at most :data:`MAX_LAG`."""
    return MAX_LAG - (2 * m if name in ("o", "w") else 0)


@lru_cache(maxsize=None)
def closed_form(key: str) -> ClosedForm:
    """One correction coefficient of :data:`_PLAN` in closed form, confirmed beyond its guess (disk-cached).

    Raises ``AssertionError`` if the guessed form misses the exact value at a lag that
    was not used to find it.
    """
    from linrnn.derive.cache import disk_cached

    plans = {row[0]: row for row in _PLAN}
    if key not in plans:
        raise UsageError(f"unknown correction {key!r}; choose one of {', '.join(plans)}")
    return disk_cached(f"closed-form-{key}", lambda: _find(*plans[key]), ClosedForm)


def _find(key: str, name: str, order: int, m: int, lo: int, guess_n: int, desc: str) -> ClosedForm:
    guess_lags = tuple(range(lo, lo + guess_n))
    check_lags = tuple(range(lo + guess_n, _max_lag(name, m) + 1))
    expr = fit_quasi_polynomial(guess_lags, sequence(name, order, guess_lags, m))
    for lag, value in zip(check_lags, sequence(name, order, check_lags, m)):
        if sp.simplify(expr.subs(j, lag) - value) != 0:
            raise AssertionError(f"closed form {key} = {expr} misses the exact value {value} at lag {lag}")
    return ClosedForm(key, desc, expr, guess_lags, check_lags)


def closed_forms() -> dict[str, ClosedForm]:
    """Every correction coefficient of :data:`_PLAN` (:func:`closed_form` of each key)."""
    return {row[0]: closed_form(row[0]) for row in _PLAN}


def scaling_coefficient(expr: sp.Expr, degree: int) -> sp.Expr:
    """lim_{j -> oo} expr / j^degree, the bounded (-1)^j parts dropped first."""
    return sp.limit(sp.sympify(expr).subs((-1) ** j, 0) / j**degree, j, sp.oo)


def _structure(param: str, gram: sp.Expr, wsum: sp.Expr, i: sp.Expr, jj: sp.Expr) -> sp.Expr:
    return sp.Add(*(fw.part_from_traces(param, part, i, jj, gram, wsum) for part in fw.PARTS))


def diagonal_ratio_coefficients(param: str) -> list[sp.Expr]:
    """[r_0, r_1, r_2] with E[Theta_jj](n) / lambda_j = r_0 + r_1/n + r_2/n^2 + O(n^-3), closed in j.

    The exact structure (:func:`linrnn.families.gaussian.finite_width.part_from_traces`) with
    ``T(j,j) = n^{j+1}(1 + t_1/n + t_2/n^2)`` and ``S_W = n^{j+1}(j + s_1/n + s_2/n^2)``,
    series-expanded in ``u = 1/n`` by SymPy; ``lambda_j`` is its own ``u^0`` term.
    """
    forms = {k: closed_form(k) for k in ("t1", "t2", "s1", "s2")}
    u = sp.Symbol("u", positive=True)
    gram = sym.n ** (j + 1) * (1 + forms["t1"].expr * u + forms["t2"].expr * u**2)
    wsum = sym.n ** (j + 1) * (j + forms["s1"].expr * u + forms["s2"].expr * u**2)
    theta = _structure(param, gram, wsum, j, j).subs(sym.n, 1 / u)
    theta = sp.powsimp(sp.expand_power_base(sp.expand(theta), force=True), force=True)
    series = sp.expand(sp.series(sp.simplify(theta), u, 0, 3).removeO())
    coeffs = [sp.factor(series.coeff(u, k)) for k in range(3)]
    lam = coeffs[0]
    if lam == 0:  # pragma: no cover - the limit exists in both parameterizations
        raise AssertionError("no wide limit")
    return [sp.Integer(1)] + [sp.factor(sp.simplify(c / lam)) for c in coeffs[1:]]


def off_diagonal_leading(param: str) -> sp.Expr:
    """The 1/n coefficient of E[Theta_(j+2, j)] (lags two apart), closed in ``j``.

    From ``T(j+2, j) = n^{j+2}(o_1/n + ...)`` and ``S_W(j+2, j) = n^{j+2}(w_1/n + ...)``;
    the forms ``o1m2``, ``w1m2`` show the same coefficients four lags apart.
    """
    forms = {k: closed_form(k) for k in ("o1", "w1")}
    u = sp.Symbol("u", positive=True)
    gram = sym.n ** (j + 2) * forms["o1"].expr * u
    wsum = sym.n ** (j + 2) * forms["w1"].expr * u
    theta = _structure(param, gram, wsum, j + 2, j).subs(sym.n, 1 / u)
    theta = sp.powsimp(sp.expand_power_base(sp.expand(theta), force=True), force=True)
    series = sp.expand(sp.series(sp.simplify(theta), u, 0, 2).removeO())
    return sp.factor(series.coeff(u, 1))


# ---------------------------------------------------------------------------
# where the limit breaks


def _ratio_parts(expr: sp.Expr, limit: sp.Expr) -> tuple[sp.Poly, sp.Poly]:
    """(P, Q): polynomials in n with expr/limit = P/Q and a positive leading coefficient of Q."""
    num, den = sp.fraction(sp.cancel(sp.together(expr / limit)))
    pn, pd = sp.Poly(num, sym.n), sp.Poly(den, sym.n)
    if pd.LC() < 0:
        pn, pd = -pn, -pd
    return pn, pd


def width_needed(expr: sp.Expr, limit: sp.Expr, tol: float | sp.Rational) -> int:
    """The least width ``n0 >= 1`` with ``|expr(n)/limit - 1| <= tol`` for every integer ``n >= n0``.

    ``expr`` is a rational function of ``n`` (no other free symbol) whose ratio to
    ``limit`` tends to 1. With ``expr/limit = P/Q`` (``Q > 0`` for ``n >= 1``: the
    denominators are powers of ``n``), the condition is ``P - (1+tol) Q <= 0`` and
    ``P - (1-tol) Q >= 0``; beyond the largest real root of these two polynomials
    both hold (their signs there are those of the limit), so ``n0`` is the least
    integer past that root at which both hold, found by isolating the real roots
    exactly (:meth:`sympy.Poly.intervals`) and stepping down over the integers.
    """
    t = sp.Rational(str(tol)) if not isinstance(tol, sp.Basic) else tol
    if not 0 < t:
        raise UsageError(f"the tolerance must be positive, got {tol!r}")
    pn, pd = _ratio_parts(expr, limit)
    upper = pn - (1 + t) * pd
    lower = pn - (1 - t) * pd

    def holds(x: int) -> bool:
        return upper.eval(x) <= 0 and lower.eval(x) >= 0

    top = 0
    for poly in (upper, lower):
        if poly.is_zero or poly.degree() <= 0:
            continue
        for (_lo, hi), _mult in poly.intervals():
            top = max(top, int(sp.floor(hi)) + 1)
    n0 = max(top, 1)
    # past every root both inequalities hold; walk down while they still do
    while n0 > 1 and holds(n0 - 1) and _no_root_between(upper, lower, n0 - 1, n0):
        n0 -= 1
    if not holds(n0):  # pragma: no cover - guards the root isolation
        raise AssertionError(f"width_needed: the deviation exceeds {tol} at n = {n0}")
    return n0


def _no_root_between(upper: sp.Poly, lower: sp.Poly, a: int, b: int) -> bool:
    return all(poly.is_zero or poly.degree() <= 0 or poly.count_roots(a, b) == 0 for poly in (upper, lower))


def collapse_figure(
    param: str = "ntk",
    widths: Sequence[int] = (16, 64, 256, 1024),
    lags: int = MAX_LAG + 1,
    ntk_lags: int = 13,
) -> dict[str, object]:
    """The figure (kind ``panels``) of the relative deviation from the wide limit against ``x = j^2/n``.

    For each width ``n`` and lag ``1 <= j``: ``delta_j(n) = E[.](n)/E[.](oo) - 1`` of the
    NNGP variance (``j < lags``) and of the lag-NTK diagonal (``j < ntk_lags``; unit
    variances and rates), exact, then floats. The line is the scaling limit
    ``c x^2`` with ``c = lim_j t_2(j)/j^4`` (NNGP) or ``lim_j r_2(j)/j^4`` (lag NTK),
    from the closed forms. ``at_x1`` lists ``delta`` at ``x = 1`` (``j = sqrt(n)``) for
    each width where that lag is reached: equal values would be an exact collapse.
    Disk-cached (:mod:`linrnn.derive.cache`) per argument set.
    """
    from linrnn.derive.cache import disk_cached

    key = f"collapse-{param}-{'_'.join(str(int(w)) for w in widths)}-{int(lags)}-{int(ntk_lags)}"
    return disk_cached(key, lambda: _collapse_figure(param, widths, lags, ntk_lags), dict)


def _collapse_figure(param: str, widths: Sequence[int], lags: int, ntk_lags: int) -> dict[str, object]:
    unit = {sym.q: 1, sym.sigma_c2: 1, sym.sigma_f2: 1, sym.n_x: 1, sym.eta_c: 1, sym.eta_f: 1, sym.eta_w: 1}
    leads = {
        "nngp": scaling_coefficient(closed_form("t2").expr, 4),
        "ntk_diag": scaling_coefficient(diagonal_ratio_coefficients(param)[2].subs(unit), 4),
    }
    panels = []
    at_x1: dict[str, list[dict[str, float]]] = {}
    for kind, top, title in (("nngp", lags, "NNGP variance E[L_j(0)^2]"),
                             ("ntk_diag", ntk_lags, f"lag-NTK diagonal E[Theta_jj] ({param})")):
        exact = [None] + [
            (fw.exact_nngp_cov(lag, lag) if kind == "nngp" else fw.exact_lag_ntk(param, lag, lag)).subs(unit)
            for lag in range(1, top)
        ]
        series = []
        at_x1[kind] = []
        xmin, xmax = math.inf, 0.0
        for width in widths:
            xs, dev = [], []
            for lag in range(1, top):
                value = exact[lag].subs(sym.n, width) / _wide(exact[lag]) - 1
                xs.append(lag * lag / width)
                dev.append(float(value))
                if lag * lag == width:
                    at_x1[kind].append({"width": int(width), "lag": lag, "deviation": float(value)})
            keep = [(x, d) for x, d in zip(xs, dev) if d > 0]
            series.append({"label": f"n = {width}", "x": [x for x, _ in keep], "y": [d for _, d in keep],
                           "style": "points"})
            if keep:
                xmin, xmax = min(xmin, keep[0][0]), max(xmax, keep[-1][0])
        c = float(leads[kind])
        grid = [xmin * (xmax / xmin) ** (k / 40) for k in range(41)] if xmax > 0 else []
        series.append({"label": f"scaling limit {sp.sstr(leads[kind])} x^2", "x": grid, "y": [c * x * x for x in grid],
                       "style": "line"})
        panels.append({"title": title, "xlabel": "x = j^2 / n", "ylabel": "E(n) / E(oo) - 1",
                       "xscale": "log", "yscale": "log", "series": series})
    return {
        "kind": "panels",
        "title": "Where the wide limit breaks: relative finite-width deviation against j^2/n",
        "panels": panels,
        "param": param,
        "variable": "j^2/n",
        "scaling_coefficient": {k: sp.sstr(v) for k, v in leads.items()},
        "at_x1": at_x1,
    }


def _wide(expr: sp.Expr) -> sp.Expr:
    """lim_{n -> oo} of a rational function of n (the ratio of leading coefficients)."""
    num, den = sp.fraction(sp.cancel(sp.together(expr)))
    pn, pd = sp.Poly(num, sym.n), sp.Poly(den, sym.n)
    if pn.degree() > pd.degree():
        raise ValueError("grows with n")
    if pn.degree() < pd.degree():
        return sp.Integer(0)
    return sp.cancel(pn.LC() / pd.LC())


# ---------------------------------------------------------------------------
# the derivation as data (the LaTeX section of ``derive latex``)


def finite_width_steps(param: str) -> Derivation:
    """The finite-width results as :class:`linrnn.derive.steps.Derivation` steps of SymPy objects.

    The exact normalised traces, the closed forms of their corrections (with the lags
    that found and confirmed them in the notes), the correction of E[Theta_jj]/lambda_j
    in ``param``, the leading off-diagonal entry and the scaling limit in ``j^2/n``.
    """
    from linrnn.derive.steps import Derivation

    d = Derivation("Finite width")
    sec = "Exact finite-width corrections"
    T = sp.Function("T")
    SW = sp.Function("S_W")
    n = sym.n
    d.add("fw-T-def", T(j, j), sp.Symbol(r"\mathbb{E}\operatorname{tr}\left(G^{j} (G^{\top})^{j}\right)"),
          "with $G = \\sqrt{n/q}\\, W_e$ (iid standard Gaussian entries); the NNGP variance is "
          "$\\sigma_C^2 \\sigma_F^2 q^j T(j,j) / (n_x n^{j+1})$. $T$ and the double traces of the $W$ part "
          "are computed exactly, as polynomials in $n$, by the loop equations (Gaussian integration by parts on "
          "words in $G$, $G^\\top$ with memoised states), for lags up to 16.", relation=":=", section=sec)
    d.add("fw-T6", T(6, 6), sp.expand(poly_expr_of(fw.gram_trace(6, 6))),
          "for example (the Wick enumeration agrees up to lag 7).", section=sec)
    for key, label in (("t1", "t_1"), ("t2", "t_2"), ("s1", "s_1"), ("s2", "s_2"), ("o1", "o_1"), ("w1", "w_1")):
        form = closed_form(key)
        d.add(f"fw-{key}", sp.Function(label)(j), display_form(form.expr),
              f"{_DESCRIPTIONS[key]}: found from the exact values at lags "
              f"{form.guessed_from[0]}..{form.guessed_from[-1]} (least-degree interpolation on even and odd lags) "
              f"and confirmed at lags {form.confirmed_at[0]}..{form.confirmed_at[-1]}.", section=sec)
    r = diagonal_ratio_coefficients(param)
    ratio = sp.Symbol(r"\mathbb{E}[\Theta_{jj}] / \lambda_j")
    d.add("fw-ratio", ratio, r[0] + r[1] / n + r[2] / n**2 + sp.O(n**-3, (n, sp.oo)),
          f"in the \\texttt{{{param}}} parameterization, from the exact structure of the three parts "
          "with the closed forms above (a SymPy series in $1/n$).", section=sec)
    d.add("fw-off", sp.Symbol(r"\mathbb{E}[\Theta_{j+2,j}]"), off_diagonal_leading(param) / n + sp.O(n**-2, (n, sp.oo)),
          "the lags two apart; lags $2m$ apart have the same $1/n$ coefficients $o_1$, $w_1$ (closed forms "
          "found and confirmed for $m = 2$ as well), so their entry carries $q^{m}$ in place of $q$.",
          section=sec)
    unit = {sym.eta_c: 1, sym.eta_f: 1, sym.eta_w: 1, sym.sigma_c2: 1, sym.q: 1}
    c = scaling_coefficient(r[2].subs(unit), 4)
    x = sp.Symbol("x", positive=True)
    d.add("fw-scaling", sp.Symbol(r"\mathbb{E}[\Theta_{jj}] / \lambda_j - 1"), c * x**2,
          "to leading order as $j \\to \\infty$ with $x = j^2/n$ fixed (unit rates; the NNGP variance has the "
          f"same coefficient ${sp.latex(scaling_coefficient(closed_form('t2').expr, 4))}$): the wide limit "
          "breaks at $j \\sim \\sqrt{n}$.", relation="~", section=sec)
    return d


def poly_expr_of(p: fw.IntPoly) -> sp.Expr:
    """``sum_k p[k] n^k`` (see :func:`linrnn.families.gaussian.finite_width.poly_expr`)."""
    return fw.poly_expr(p)


#: The prose of each closed form in the LaTeX section.
_DESCRIPTIONS: dict[str, str] = {
    "t1": "the coefficient of $n^{-1}$ in $T(j,j)/n^{j+1}$",
    "t2": "the coefficient of $n^{-2}$ in $T(j,j)/n^{j+1}$",
    "s1": "the coefficient of $n^{-1}$ in $S_W(j,j)/n^{j+1}$, $S_W$ the double-trace sum of the $W$ part",
    "s2": "the coefficient of $n^{-2}$ in $S_W(j,j)/n^{j+1}$",
    "o1": "the coefficient of $n^{-1}$ in $T(j+2,j)/n^{j+2}$",
    "w1": "the coefficient of $n^{-1}$ in $S_W(j+2,j)/n^{j+2}$",
}
