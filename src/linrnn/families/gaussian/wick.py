"""Exact finite-width Gaussian moments of a linear RNN by Wick (Isserlis) enumeration.

This module is the *independent route* to the lag weights: it computes expectations
at finite width ``n``, exactly, as rational functions of the symbol ``n``, without
any n -> infinity limit rule. It is the check on :mod:`linrnn.derive.lag_weights` (which it
must not import) and the seed of exact finite-width corrections.

Model (``docs/conventions.md``). Effective matrices ``P_e = alpha_P P`` for
``P in {C, F, W}``; raw entries iid ``N(0, v_P)``; impulse response

    L_j[a, b] = alpha_C alpha_F alpha_W^j
                * sum_{i_0..i_j} C[a, i_0] W[i_0, i_1] ... W[i_{j-1}, i_j] F[i_j, b].

================  ==================  ==================  ==================  =======
param             alpha_C^2           alpha_F^2           alpha_W^2           s
================  ==================  ==================  ==================  =======
``ntk``           sigma_C^2 / n       sigma_F^2 / n_x     q / n               1
``standard``      1                   1                   1                   1 / n
================  ==================  ==================  ==================  =======

with raw variances ``v_P = 1`` (``ntk``) or ``v_C = sigma_C^2/n, v_F = sigma_F^2/n_x,
v_W = q/n`` (``standard``); in both, ``alpha_P^2 v_P`` is the effective variance.

Method. Every quantity is a sum of *monomials*: products of raw Gaussian entries
``P[r, c]`` whose row and column *slots* are index variables (hidden, input or
output) or fixed external labels ``a, a', b, b'``, together with *links* (Kronecker
deltas between slots, which is what differentiating by ``P[p, r]`` leaves behind).
By Isserlis' theorem, for centred jointly Gaussian entries with independent matrices,

    E[prod_f P_f[r_f, c_f]] = sum_{perfect matchings M, pairs within one matrix}
                               prod_{(f, f') in M} v_P delta(r_f, r_f') delta(c_f, c_f'),

exactly at any size (repeated entries included: E[x^4] = 3 v^2 is three matchings).
Summing the deltas over the index variables, a matching contributes
``prod_P v_P^{#P/2} * n^{#free hidden classes} n_x^{#free input classes}
n_y^{#free output classes}``, where the classes are the connected components of the
slots under the links and the matched identifications (union-find), a class holding
an external label is not summed (factor 1), and a class holding two *different*
labels (``a != a'`` forced equal) makes the matching contribute 0. Matchings are
enumerated depth-first with a union-find that is rolled back on return (no
recomputation of the classes at the leaves), and a conflict prunes the whole subtree.

Cost: the largest group is the ``W`` factors, ``i + j`` of them for the NNGP and the
C/F parts of the lag NTK (``i*j`` terms of ``i + j - 2`` for the W part), giving
``(i+j-1)!!`` matchings: 945 at ``i = j = 5`` (all ``i, j <= 5`` of both
parameterizations take well under a second together), 135135 at ``i = j = 7``
(about 1 s for the NNGP, 6 s for the full lag NTK). Monomials with more than
:data:`MAX_W_FACTORS` Gaussian ``W`` entries are refused.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

import sympy as sp

from linrnn.derive import symbols as sym
from linrnn.derive.model import PARAMS
from linrnn.core.errors import UsageError

__all__ = [
    "MAX_W_FACTORS",
    "PARTS",
    "Factor",
    "IndexSpace",
    "Monomial",
    "exact_lag_ntk",
    "exact_lag_ntk_part",
    "exact_nngp_cov",
    "finite_width_correction",
    "gaussian_moment",
    "impulse_monomial",
    "large_width_coefficients",
    "raw_derivative",
    "wide_limit",
]

#: The parameter blocks of the lag NTK, in the order of docs/conventions.md.
PARTS: tuple[str, ...] = ("C", "F", "W")

#: Refuse monomials with more Gaussian ``W`` entries than this: (13)!! = 135135
#: matchings is about a second; each two more factors multiply the cost by ~15.
MAX_W_FACTORS = 14

# index kinds and the symbol each free class sums to
HIDDEN, INPUT, OUTPUT = "hidden", "input", "output"
_RANGE: dict[str, sp.Symbol] = {HIDDEN: sym.n, INPUT: sym.n_x, OUTPUT: sym.n_y}
_KINDS: tuple[str, ...] = (HIDDEN, INPUT, OUTPUT)

#: (row kind, column kind) of each raw matrix: C is n_y x n, F is n x n_x, W is n x n.
SHAPES: dict[str, tuple[str, str]] = {"C": (OUTPUT, HIDDEN), "F": (HIDDEN, INPUT), "W": (HIDDEN, HIDDEN)}


# ---------------------------------------------------------------------------
# index bookkeeping


@dataclass
class IndexSpace:
    """The index variables of one computation: each has a kind and maybe a label.

    A variable with a label is an external, fixed coordinate (``a``, ``a'``, ``b``,
    ``b'``); two variables carrying different labels are different coordinates, so
    an identification between them is a zero. A variable without a label is summed
    over its range (``n``, ``n_x`` or ``n_y`` by kind). Every variable allocated here
    is assumed to occur in the monomial it is used for.
    """

    kinds: list[str] = field(default_factory=list)
    labels: list[str | None] = field(default_factory=list)

    def summed(self, kind: str) -> int:
        """A new summed index variable of the given kind."""
        self.kinds.append(kind)
        self.labels.append(None)
        return len(self.kinds) - 1

    def fixed(self, kind: str, label: str) -> int:
        """A new fixed external coordinate named ``label``."""
        self.kinds.append(kind)
        self.labels.append(label)
        return len(self.kinds) - 1


@dataclass(frozen=True)
class Factor:
    """One raw Gaussian entry ``matrix[row, col]``; ``row``/``col`` are index variables."""

    matrix: str
    row: int
    col: int


@dataclass(frozen=True)
class Monomial:
    """``prod(factors) * prod_{(u, v) in links} delta(u, v)`` (index sums implicit)."""

    factors: tuple[Factor, ...]
    links: tuple[tuple[int, int], ...] = ()

    def __mul__(self, other: Monomial) -> Monomial:
        return Monomial(self.factors + other.factors, self.links + other.links)


def impulse_monomial(space: IndexSpace, lag: int, out: int, inp: int) -> Monomial:
    """The raw monomial of ``L_lag[out, inp]`` without its scale alpha_C alpha_F alpha_W^lag.

    ``C[out, i_0] W[i_0, i_1] ... W[i_{lag-1}, i_lag] F[i_lag, inp]`` with fresh summed
    hidden variables ``i_0 .. i_lag``.
    """
    hidden = [space.summed(HIDDEN) for _ in range(lag + 1)]
    factors = [Factor("C", out, hidden[0])]
    factors += [Factor("W", hidden[k], hidden[k + 1]) for k in range(lag)]
    factors.append(Factor("F", hidden[lag], inp))
    return Monomial(tuple(factors))


def raw_derivative(mono: Monomial, matrix: str, row: int, col: int) -> list[Monomial]:
    """d(mono)/d matrix[row, col] by the product rule, as a list of monomials.

    Removing the factor ``matrix[r_f, c_f]`` at each position ``f`` where the matrix
    occurs leaves the deltas ``delta(r_f, row) delta(c_f, col)``; for the W-part of
    ``L_j`` this is the sum over the position ``k = 0..j-1`` of the removed ``W``.
    """
    out = []
    for pos, fac in enumerate(mono.factors):
        if fac.matrix == matrix:
            rest = mono.factors[:pos] + mono.factors[pos + 1 :]
            out.append(Monomial(rest, mono.links + ((fac.row, row), (fac.col, col))))
    return out


# ---------------------------------------------------------------------------
# the Wick enumeration


class _RollbackUnionFind:
    """Union-find without path compression, with undo, tracking free classes per kind.

    ``free[kind]`` is the number of classes of that kind holding no label; a union
    that would put two different labels in one class is refused (returns False and
    changes nothing).
    """

    def __init__(self, space: IndexSpace) -> None:
        self.parent = list(range(len(space.kinds)))
        self.size = [1] * len(space.kinds)
        self.label = list(space.labels)
        self.kind = list(space.kinds)
        self.free = {kind: 0 for kind in _KINDS}
        for kind, label in zip(space.kinds, space.labels):
            if label is None:
                self.free[kind] += 1
        self.history: list[tuple[int, int, str | None, int] | None] = []

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            x = self.parent[x]
        return x

    def union(self, x: int, y: int) -> bool:
        rx, ry = self.find(x), self.find(y)
        if rx == ry:
            self.history.append(None)
            return True
        lx, ly = self.label[rx], self.label[ry]
        if lx is not None and ly is not None and lx != ly:
            return False
        if self.kind[rx] != self.kind[ry]:  # pragma: no cover - a bug in a caller
            raise AssertionError(f"identifying a {self.kind[rx]} index with a {self.kind[ry]} index")
        if self.size[rx] < self.size[ry]:
            rx, ry = ry, rx
            lx, ly = ly, lx
        merged = lx if lx is not None else ly
        delta = (lx is None) + (ly is None) - (merged is None)
        self.free[self.kind[rx]] -= delta
        self.history.append((ry, rx, self.label[rx], delta))
        self.parent[ry] = rx
        self.size[rx] += self.size[ry]
        self.label[rx] = merged
        return True

    def undo(self) -> None:
        record = self.history.pop()
        if record is None:
            return
        ry, rx, old_label, delta = record
        self.parent[ry] = ry
        self.size[rx] -= self.size[ry]
        self.label[rx] = old_label
        self.free[self.kind[rx]] += delta

    def exponents(self) -> tuple[int, int, int]:
        return (self.free[HIDDEN], self.free[INPUT], self.free[OUTPUT])


def _matching_counts(space: IndexSpace, mono: Monomial) -> Counter[tuple[int, int, int]]:
    """Counter of (#free hidden, #free input, #free output classes) over all matchings.

    Factors pair only within one matrix (different matrices are independent); an odd
    count of any matrix gives the empty Counter (moment 0).
    """
    groups: dict[str, list[Factor]] = {}
    for fac in mono.factors:
        groups.setdefault(fac.matrix, []).append(fac)
    if any(len(g) % 2 for g in groups.values()):
        return Counter()
    if len(groups.get("W", ())) > MAX_W_FACTORS:
        raise UsageError(
            f"exact Wick enumeration with {len(groups['W'])} Gaussian W entries is too slow "
            f"(more than {MAX_W_FACTORS}); use smaller lags"
        )
    uf = _RollbackUnionFind(space)
    counts: Counter[tuple[int, int, int]] = Counter()
    for u, v in mono.links:
        if not uf.union(u, v):
            return counts  # the deltas alone force a == a' (or b == b') with a != a'
    group_list = [groups[name] for name in sorted(groups)]

    def pair_up(g: int, rest: tuple[Factor, ...]) -> None:
        if not rest:
            if g + 1 == len(group_list):
                counts[uf.exponents()] += 1
            else:
                pair_up(g + 1, tuple(group_list[g + 1]))
            return
        first = rest[0]
        for idx in range(1, len(rest)):
            other = rest[idx]
            if uf.union(first.row, other.row):
                if uf.union(first.col, other.col):
                    pair_up(g, rest[1:idx] + rest[idx + 1 :])
                    uf.undo()
                uf.undo()

    if group_list:
        pair_up(0, tuple(group_list[0]))
    else:
        counts[uf.exponents()] += 1
    return counts


def gaussian_moment(space: IndexSpace, mono: Monomial, variances: dict[str, sp.Expr]) -> sp.Expr:
    """E[sum over the summed indices of ``mono``], exactly, by Isserlis' theorem.

    ``variances[P]`` is v_P, the variance of every raw entry of matrix ``P``; the
    result is ``prod_P v_P^{#P/2} * sum_M n^{h(M)} n_x^{i(M)} n_y^{o(M)}`` over the
    perfect matchings ``M`` (see the module docstring).
    """
    return _moment_sum(space, [mono], variances)


def _moment_sum(space: IndexSpace, monos: Iterable[Monomial], variances: dict[str, sp.Expr]) -> sp.Expr:
    """sum_m E[m] over monomials sharing one index space, as ``v-monomial * factored polynomial``.

    The matching counts of monomials with the same number of factors of each matrix
    (hence the same variance monomial) are added as integers first, so SymPy only
    sees one integer polynomial in ``n, n_x, n_y`` per such group.
    """
    groups: dict[tuple[tuple[str, int], ...], Counter[tuple[int, int, int]]] = {}
    for mono in monos:
        key = tuple(sorted(Counter(fac.matrix for fac in mono.factors).items()))
        groups.setdefault(key, Counter()).update(_matching_counts(space, mono))
    out = []
    for key, counts in groups.items():
        poly = sp.Add(
            *(
                count * _RANGE[HIDDEN] ** eh * _RANGE[INPUT] ** ei * _RANGE[OUTPUT] ** eo
                for (eh, ei, eo), count in counts.items()
                if count
            )
        )
        scale = sp.Mul(*(variances[name] ** (num // 2) for name, num in key))
        out.append(scale * sp.factor(poly))
    return sp.Add(*out)


# ---------------------------------------------------------------------------
# parameterizations


def _check_param(param: str) -> None:
    if param not in PARAMS:
        raise UsageError(f"unknown parameterization {param!r}; choose one of {', '.join(PARAMS)}")


def _check_lag(name: str, value: int) -> int:
    try:
        lag = operator.index(value)  # int, numpy integer, sympy Integer
    except TypeError:
        lag = -1
    if isinstance(value, bool) or lag < 0:
        raise UsageError(f"lag {name} must be a non-negative integer, got {value!r}")
    return lag


def _scales(param: str) -> tuple[dict[str, sp.Expr], dict[str, sp.Expr], sp.Expr]:
    """(alpha_P, v_P, s) of a parameterization: the scales, raw variances and NTK prefactor of
    :func:`linrnn.derive.lag_weights.parameterization` (the conventions, written once)."""
    from linrnn.derive.lag_weights import parameterization

    par = parameterization(param)
    return dict(par.scale), dict(par.raw_variance), par.ntk_prefactor


_ETA: dict[str, sp.Symbol] = {"C": sym.eta_c, "F": sym.eta_f, "W": sym.eta_w}


def _externals(space: IndexSpace, same_output: bool, same_input: bool) -> tuple[int, int, int, int]:
    """Index variables (a, b, a', b'); a' is a itself when ``same_output``, likewise b'."""
    a = space.fixed(OUTPUT, "a")
    b = space.fixed(INPUT, "b")
    a2 = a if same_output else space.fixed(OUTPUT, "a'")
    b2 = b if same_input else space.fixed(INPUT, "b'")
    return a, b, a2, b2


# ---------------------------------------------------------------------------
# public API


@lru_cache(maxsize=None)
def _lag_ntk_part(param: str, part: str, i: int, j: int, same_output: bool, same_input: bool) -> sp.Expr:
    alpha, var, s = _scales(param)
    space = IndexSpace()
    a, b, a2, b2 = _externals(space, same_output, same_input)
    left = impulse_monomial(space, i, a, b)
    right = impulse_monomial(space, j, a2, b2)
    row_kind, col_kind = SHAPES[part]
    p, r = space.summed(row_kind), space.summed(col_kind)  # the entry P[p, r] summed over
    terms = [dl * dr for dl in raw_derivative(left, part, p, r) for dr in raw_derivative(right, part, p, r)]
    prefactor = s * _ETA[part] * alpha["C"] ** 2 * alpha["F"] ** 2 * alpha["W"] ** (i + j)
    return prefactor * _moment_sum(space, terms, var)


def exact_lag_ntk_part(
    param: str, part: str, i: int, j: int, *, same_output: bool = True, same_input: bool = True
) -> sp.Expr:
    """E[s eta_P <dL_i[a,b]/dP, dL_j[a',b']/dP>] exactly at width ``n``.

    The Frobenius inner product sums over every entry ``P[p, r]`` of the *raw* matrix
    ``P`` (``p`` over outputs for C, hidden otherwise; ``r`` over inputs for F, hidden
    otherwise). With ``L_i = alpha_C alpha_F alpha_W^i C W^i F``:

    * C: ``s eta_C alpha_C^2 alpha_F^2 alpha_W^{i+j} delta(a,a') E[<W^i F e_b, W^j F e_b'>]``
    * F: ``s eta_F alpha_C^2 alpha_F^2 alpha_W^{i+j} delta(b,b') E[<(W^T)^i C^T e_a, (W^T)^j C^T e_a'>]``
    * W: ``s eta_W alpha_C^2 alpha_F^2 alpha_W^{i+j} sum_{k<i, l<j}
      E[(C W^k)[a,p] (W^{i-1-k} F)[r,b] (C W^l)[a',p] (W^{j-1-l} F)[r,b']]``

    each expectation evaluated exactly by Wick enumeration; the result is a rational
    function of ``n`` (and of q, sigma_C^2, sigma_F^2, n_x, eta_P). ``same_output``
    means ``a == a'``, ``same_input`` means ``b == b'``.
    """
    _check_param(param)
    if part not in PARTS:
        raise UsageError(f"unknown parameter block {part!r}; choose one of {', '.join(PARTS)}")
    return _lag_ntk_part(param, part, _check_lag("i", i), _check_lag("j", j), bool(same_output), bool(same_input))


def exact_lag_ntk(param: str, i: int, j: int, *, same_output: bool = True, same_input: bool = True) -> sp.Expr:
    """E[Theta[(i,a,b),(j,a',b')]] exactly at width ``n``: the sum of the C, F, W parts.

    The diagonal ``exact_lag_ntk(param, j, j)`` is the finite-width lag weight; its
    n -> infinity limit is lambda_j.
    """
    parts = [exact_lag_ntk_part(param, part, i, j, same_output=same_output, same_input=same_input) for part in PARTS]
    return sp.Add(*parts)


@lru_cache(maxsize=None)
def _nngp_cov(param: str, i: int, j: int, same_output: bool, same_input: bool) -> sp.Expr:
    alpha, var, _ = _scales(param)
    space = IndexSpace()
    a, b, a2, b2 = _externals(space, same_output, same_input)
    mono = impulse_monomial(space, i, a, b) * impulse_monomial(space, j, a2, b2)
    prefactor = alpha["C"] ** 2 * alpha["F"] ** 2 * alpha["W"] ** (i + j)
    return prefactor * gaussian_moment(space, mono, var)


def exact_nngp_cov(
    i: int, j: int, *, same_output: bool = True, same_input: bool = True, param: str = "ntk"
) -> sp.Expr:
    """Cov(L_i(0)[a,b], L_j(0)[a',b']) = E[L_i[a,b] L_j[a',b']] exactly at width ``n``.

    ``= alpha_C^2 alpha_F^2 alpha_W^{i+j} E[(C W^i F)[a,b] (C W^j F)[a',b']]`` (means
    are 0). The law of the effective matrices is the same in both parameterizations,
    so ``param`` does not change the result; it selects which literal scaling is
    enumerated (useful as a check).
    """
    _check_param(param)
    return _nngp_cov(param, _check_lag("i", i), _check_lag("j", j), bool(same_output), bool(same_input))


def large_width_coefficients(expr: sp.Expr, order: int) -> list[sp.Expr]:
    """Coefficients ``[c_0, ..., c_order]`` of ``expr = sum_k c_k n^{-k}`` as n -> infinity.

    For a rational function ``P(n)/Q(n)`` with ``deg P = p``, ``deg Q = d`` and
    ``u = 1/n``: ``expr = u^{d-p} A(u)/B(u)`` with ``A_k = [n^{p-k}] P``,
    ``B_k = [n^{d-k}] Q``, ``B_0 != 0``; the power series ``A/B = sum_k e_k u^k`` has
    ``e_k = (A_k - sum_{m=1..k} B_m e_{k-m}) / B_0`` and ``c_k = e_{k-(d-p)}``.
    Raises ``ValueError`` if ``expr`` grows with ``n`` (``p > d``) or is not rational
    in ``n``. The coefficients are generic in the other symbols (``B_0`` is taken
    non-zero as a polynomial).
    """
    if order < 0:
        raise ValueError(f"order must be non-negative, got {order}")
    num, den = sp.fraction(sp.cancel(sp.together(sp.sympify(expr))))
    try:
        pnum, pden = sp.Poly(num, sym.n), sp.Poly(den, sym.n)
    except sp.PolynomialError as exc:
        raise ValueError(f"not a rational function of n: {expr}") from exc
    if pnum.is_zero:
        return [sp.Integer(0)] * (order + 1)
    p, d = pnum.degree(), pden.degree()
    if p > d:
        raise ValueError(f"expression grows like n^{p - d} as n -> oo: {expr}")
    shift = d - p
    a_coef = list(reversed(pnum.all_coeffs()))  # a_coef[m] = [n^m] P
    b_coef = list(reversed(pden.all_coeffs()))

    def A(k: int) -> sp.Expr:
        return a_coef[p - k] if 0 <= p - k else sp.Integer(0)

    def B(k: int) -> sp.Expr:
        return b_coef[d - k] if 0 <= d - k else sp.Integer(0)

    series: list[sp.Expr] = []
    for k in range(order + 1 - shift):
        acc = A(k) - sp.Add(*(B(m) * series[k - m] for m in range(1, k + 1)))
        series.append(sp.factor(sp.cancel(acc / B(0))))
    return [sp.Integer(0)] * min(shift, order + 1) + series


def wide_limit(expr: sp.Expr) -> sp.Expr:
    """lim_{n -> oo} expr (``sympy.limit(expr, n, oo)``).

    Rational functions of ``n`` (everything this module returns) go through
    :func:`large_width_coefficients` (``c_0``), which is exact and fast; anything else,
    or one that grows with ``n``, is handed to ``sympy.limit``.
    """
    try:
        return large_width_coefficients(expr, 0)[0]
    except ValueError:
        return sp.limit(expr, sym.n, sp.oo)


def finite_width_correction(expr: sp.Expr) -> sp.Expr:
    """The coefficient ``c_1`` of ``1/n`` in ``expr = c_0 + c_1/n + O(1/n^2)``, n -> oo.

    Rational functions use :func:`large_width_coefficients`; otherwise the series of
    ``expr(n = 1/u)`` in ``u`` at 0 is taken with SymPy.
    """
    try:
        return large_width_coefficients(expr, 1)[1]
    except ValueError:
        u = sp.Dummy("u", positive=True)
        series = sp.series(sp.sympify(expr).subs(sym.n, 1 / u), u, 0, 2).removeO()
        return sp.factor(sp.expand(series).coeff(u, 1))
