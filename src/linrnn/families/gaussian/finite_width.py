"""Exact finite-width moments of a linear RNN for long lags, by Gaussian integration by parts.

:mod:`linrnn.families.gaussian.wick` enumerates Wick pairings, ``(2m-1)!!`` of them for ``2m``
Gaussian ``W`` entries, and stops at 14. This module reaches the same expectations
(exact rational functions of the width ``n``) for lags of 16 and more by the *loop
equations* (Schwinger-Dyson equations) of the real Ginibre matrix, with memoised
states. It does not import :mod:`linrnn.families.gaussian.wick`; the two are checked against each
other in the tests wherever both reach.

Reduction to traces of words
----------------------------
Write the effective matrices as in ``docs/conventions.md``: ``C_e``, ``F_e``, ``W_e``
independent with iid centred Gaussian entries of variances ``sigma_C^2/n``,
``sigma_F^2/n_x`` and ``q/n``, and ``W_e = sqrt(q/n) G`` with ``G`` an ``n x n``
matrix of iid ``N(0, 1)`` entries (real Ginibre). Averaging first over ``C_e`` and
``F_e`` (``E[C_e[a,u] C_e[a',u']] = sigma_C^2/n delta(a,a') delta(u,u')`` and likewise
for ``F_e``) leaves expectations over ``G`` only:

    E[L_i[a,b] L_j[a',b']] = delta(a,a') delta(b,b') sigma_C^2 sigma_F^2 / (n n_x)
                             (q/n)^{(i+j)/2} T(i, j),
    T(i, j) = E tr(G^i (G^T)^j),

and the three parts of the lag NTK (the inner products of docs/conventions.md;
``mu_P`` below is ``s eta_P`` times the square of the scale between the raw and the
effective matrix, i.e. ``mu_C = eta_C sigma_C^2/n``, ``mu_F = eta_F sigma_F^2/n_x``,
``mu_W = eta_W q/n`` for ``ntk`` and ``mu_P = eta_P / n`` for ``standard``):

    Theta_C = mu_C delta delta  sigma_F^2/n_x         (q/n)^{(i+j)/2}   T(i, j),
    Theta_F = mu_F delta delta  sigma_C^2/n           (q/n)^{(i+j)/2}   T(i, j),
    Theta_W = mu_W delta delta  sigma_C^2 sigma_F^2/(n n_x) (q/n)^{(i+j-2)/2}
              sum_{k<i, l<j} D(k, l; i-1-k, j-1-l),
    D(k, l; m, m') = E[tr((G^T)^k G^l) tr(G^m (G^T)^{m'})],

because ``dL_i[a,b]/dW_e[p,r] = sum_{k<i} (C_e W_e^k)[a,p] (W_e^{i-1-k} F_e)[r,b]`` and
the sums over ``p`` and ``r`` factor once ``C_e``, ``F_e`` are averaged. Every entry
with ``a != a'`` or ``b != b'`` is 0, and so is every entry with ``i + j`` odd
(an odd number of Gaussian factors).

The loop equations
------------------
Let a *state* be a product ``prod_t tr(w_t)`` of traces of words ``w_t`` in the letters
``G`` and ``G^T``. Gaussian integration by parts, ``E[G_ab f(G)] = E[df/dG_ab]``, applied
to the first letter of ``w_1 = G x`` (``tr(w) = tr(w^T)``, so a word made only of
``G^T`` is transposed first; ``tr`` is cyclic, so any ``G`` can be brought to the front),
gives with ``R`` the other traces

    E[tr(G x) R] =   sum_{x = u G v}     E[tr(u^T v) R]                    (a twist)
                   + sum_{x = u G^T v}   E[tr(u) tr(v) R]                  (a split)
                   + sum_{tr(y) in R} ( sum_{y = u G v}   E[tr(x^T v u) R/tr(y)]
                                      + sum_{y = u G^T v} E[tr(x v u) R/tr(y)] )   (merges)

from ``d(uGv)_{ba}/dG_ab = u_ba v_ba``, ``d(uG^Tv)_{ba}/dG_ab = u_bb v_aa``,
``d tr(uGv)/dG_ab = (vu)_ba`` and ``d tr(uG^Tv)/dG_ab = (vu)_ab``. Each term has two
letters fewer, an empty trace is ``tr(I) = n`` and the empty state is 1, so the
recursion ends and ``E[state]`` is a polynomial in ``n`` with non-negative integer
coefficients (the number of Wick pairings by the power of ``n`` they give: the genus
expansion, orientable and non-orientable, sorted by this recursion instead of
enumerated). States are memoised in a canonical form: each word is replaced by the
least of its rotations and of the rotations of its transpose, the words of a state
are sorted, and empty words are taken out as powers of ``n``; the terms of one step
are collected by state before recursing, and polynomials are packed into one integer
(``n -> 2^SLOT``, so adding is integer addition and ``n^e p`` a shift). The integrated word is
the longest of the state, which keeps the number of distinct states small: all of
``T(i, j)`` for ``i, j <= 16`` take about 36 000 states (a few seconds), and the
double traces of the lag NTK up to lag 12 reuse most of them.

At ``n = 1`` the recursion gives ``(2m-1)!!`` for ``2m`` letters (every pairing
counts 1), the check against direct expansion of the moments of the entries at
``n = 1, 2`` is in the tests, as is the check against :mod:`linrnn.families.gaussian.wick`.
"""

from __future__ import annotations

import operator
import sys
from collections.abc import Iterable, Sequence
from functools import lru_cache

import sympy as sp

from linrnn.core.errors import UsageError
from linrnn.derive import symbols as sym
from linrnn.derive.model import PARAMS

__all__ = [
    "PARTS",
    "Word",
    "canonical_word",
    "double_trace",
    "exact_lag_ntk",
    "exact_lag_ntk_part",
    "exact_nngp_cov",
    "gram_trace",
    "nngp_from_traces",
    "part_from_traces",
    "parse_word",
    "poly_expr",
    "trace_moment",
    "w_part_traces",
]

#: The parameter blocks of the lag NTK, in the order of docs/conventions.md.
PARTS: tuple[str, ...] = ("C", "F", "W")

#: A word in G (letter 0) and G^T (letter 1), read left to right.
Word = tuple[int, ...]
#: A polynomial in n with integer coefficients: ``p[k]`` is the coefficient of ``n^k``.
IntPoly = tuple[int, ...]

_G, _GT = 0, 1


def parse_word(text: str) -> Word:
    """A word from a string of ``W`` (the matrix G) and ``T`` (its transpose G^T)."""
    letters = {"W": _G, "T": _GT}
    try:
        return tuple(letters[c] for c in text)
    except KeyError:
        raise UsageError(f"a word is made of the letters W and T (W transposed), got {text!r}") from None


@lru_cache(maxsize=None)
def _transpose(w: Word) -> Word:
    """``(l_1 ... l_k)^T = l_k^T ... l_1^T``: reverse and swap G <-> G^T."""
    return tuple(1 - c for c in reversed(w))


@lru_cache(maxsize=None)
def canonical_word(w: Word) -> Word:
    """The least rotation of ``w`` or of ``w^T``: ``tr(w)`` depends on nothing else."""
    if not w:
        return w
    best = w
    for cand in (w, _transpose(w)):
        for r in range(len(cand)):
            rot = cand[r:] + cand[:r]
            if rot < best:
                best = rot
    return best


#: Bits per coefficient in the packed form of a polynomial in n (Kronecker substitution
#: n -> 2^SLOT): a coefficient counts Wick pairings, at most (2m-1)!! for 2m letters,
#: which stays below 2^SLOT up to :data:`MAX_LETTERS` letters.
SLOT = 128
MAX_LETTERS = 48
_MASK = (1 << SLOT) - 1


def _pack(p: Sequence[int]) -> int:
    """``sum_k p[k] 2^(SLOT k)``: the polynomial at n = 2^SLOT (non-negative coefficients)."""
    out = 0
    for k, c in enumerate(p):
        out |= int(c) << (SLOT * k)
    return out


def _unpack(v: int) -> IntPoly:
    """The coefficients of a packed polynomial (``()`` for 0)."""
    out = []
    while v:
        out.append(v & _MASK)
        v >>= SLOT
    return tuple(out)


def _state(words: Iterable[Word]) -> tuple[int, tuple[Word, ...]]:
    """(number of empty words, the sorted canonical non-empty words)."""
    empty = 0
    rest = []
    for w in words:
        if w:
            rest.append(canonical_word(w))
        else:
            empty += 1
    return empty, tuple(sorted(rest))


@lru_cache(maxsize=None)
def _moment(state: tuple[Word, ...]) -> int:
    """E[prod_{w in state} tr(w)] for canonical non-empty words (the loop equations), packed.

    The terms of one integration by parts are first collected by their canonical state
    (equal states are counted, not recomputed); the polynomials are packed integers,
    so ``n^e p`` is a shift and a sum of polynomials an integer sum.
    """
    if not state:
        return 1
    if sum(map(len, state)) % 2:
        return 0
    idx = max(range(len(state)), key=lambda t: len(state[t]))
    w, others = state[idx], state[:idx] + state[idx + 1 :]
    if _G not in w:
        w = _transpose(w)
    r = w.index(_G)
    x = w[r + 1 :] + w[:r]  # tr(w) = tr(G x)
    counts: dict[tuple[int, tuple[Word, ...]], int] = {}

    def term(words: Iterable[Word]) -> None:
        key = _state(words)
        counts[key] = counts.get(key, 0) + 1

    for p, letter in enumerate(x):
        u, v = x[:p], x[p + 1 :]
        if letter == _G:
            term((_transpose(u) + v, *others))
        else:
            term((u, v, *others))
    xt = _transpose(x)
    for t, y in enumerate(others):
        rest = others[:t] + others[t + 1 :]
        for p, letter in enumerate(y):
            u, v = y[:p], y[p + 1 :]
            term(((xt if letter == _G else x) + v + u, *rest))
    acc = 0
    for (empty, st), mult in counts.items():
        value = _moment(st)
        if value:
            acc += (mult * value) << (SLOT * empty)
    return acc


def _packed_moment(words: Sequence[Word]) -> int:
    letters = sum(map(len, words))
    if letters > MAX_LETTERS:
        raise UsageError(f"the exact engine takes at most {MAX_LETTERS} letters (W factors), got {letters}")
    need = letters // 2 * 4 + 200
    if need > sys.getrecursionlimit():
        sys.setrecursionlimit(need)
    empty, st = _state(words)
    return _moment(st) << (SLOT * empty)


def trace_moment(*words: Word | str) -> IntPoly:
    """E[prod_t tr(w_t)] for an n x n matrix G of iid N(0, 1) entries, exactly.

    Each word is a tuple of letters (0 for ``G``, 1 for ``G^T``) or a string of ``W``
    and ``T`` (at most :data:`MAX_LETTERS` letters in all). Returns the integer
    coefficients of the polynomial in ``n`` (index = power; the zero polynomial is ``()``).
    """
    parsed = [parse_word(w) if isinstance(w, str) else tuple(int(c) for c in w) for w in words]
    for w in parsed:
        if any(c not in (_G, _GT) for c in w):
            raise UsageError(f"a word's letters are 0 (G) and 1 (G^T), got {w!r}")
    return _unpack(_packed_moment(parsed))


def gram_trace(i: int, j: int) -> IntPoly:
    """T(i, j) = E tr(G^i (G^T)^j) = E <G^i, G^j>_Frobenius (coefficients in n)."""
    return trace_moment((_G,) * i + (_GT,) * j)


def double_trace(k: int, l: int, m: int, mm: int) -> IntPoly:  # noqa: E741 - the docstring's names
    """D(k, l; m, m') = E[tr((G^T)^k G^l) tr(G^m (G^T)^{m'})] (coefficients in n)."""
    return trace_moment((_GT,) * k + (_G,) * l, (_G,) * m + (_GT,) * mm)


def poly_expr(p: Sequence[int]) -> sp.Expr:
    """The SymPy polynomial ``sum_k p[k] n^k``."""
    return sp.Add(*(c * sym.n**k for k, c in enumerate(p) if c))




# ---------------------------------------------------------------------------
# checks


def _check_param(param: str) -> None:
    if param not in PARAMS:
        raise UsageError(f"unknown parameterization {param!r}; choose one of {', '.join(PARAMS)}")


def _check_lag(name: str, value: int) -> int:
    try:
        lag = operator.index(value)
    except TypeError:
        lag = -1
    if isinstance(value, bool) or lag < 0:
        raise UsageError(f"lag {name} must be a non-negative integer, got {value!r}")
    return lag


# ---------------------------------------------------------------------------
# the RNN quantities


def _multiplier(param: str, part: str) -> sp.Expr:
    """mu_P = s eta_P (raw-to-effective scale)^2 (module docstring), from the parameterization of
    :func:`linrnn.derive.lag_weights.parameterization` (the conventions, written once)."""
    from linrnn.derive.lag_weights import parameterization

    par = parameterization(param)
    eta = {"C": sym.eta_c, "F": sym.eta_f, "W": sym.eta_w}[part]
    return par.ntk_prefactor * eta * par.scale[part] ** 2


def _w_power(total: int | sp.Expr) -> sp.Expr:
    """(q/n)^{total/2} (``total`` even, or a symbol)."""
    half = sp.Integer(total // 2) if isinstance(total, int) else total / 2
    return (sym.q / sym.n) ** half


@lru_cache(maxsize=None)
def w_part_traces(i: int, j: int) -> IntPoly:
    """sum_{k<i, l<j} D(k, l; i-1-k, j-1-l), the W-part trace sum (coefficients in n)."""
    if (i + j) % 2:
        return ()
    return _unpack(sum(_packed_moment(((_GT,) * k + (_G,) * l, (_G,) * (i - 1 - k) + (_GT,) * (j - 1 - l)))
                       for k in range(i) for l in range(j)))


@lru_cache(maxsize=None)
def _nngp(i: int, j: int) -> sp.Expr:
    if (i + j) % 2:
        return sp.Integer(0)
    return nngp_from_traces(i, j, poly_expr(gram_trace(i, j)))


def nngp_from_traces(i: int | sp.Expr, j: int | sp.Expr, gram: sp.Expr) -> sp.Expr:
    """E[L_i L_j] = sigma_C^2 sigma_F^2/(n n_x) (q/n)^{(i+j)/2} T(i, j), given ``gram`` = T(i, j)."""
    return sym.sigma_c2 * sym.sigma_f2 / (sym.n * sym.n_x) * _w_power(i + j) * gram


def part_from_traces(
    param: str, part: str, i: int | sp.Expr, j: int | sp.Expr, gram: sp.Expr, wsum: sp.Expr
) -> sp.Expr:
    """E[Theta_P(i, j)] (same coordinates) given ``gram`` = T(i, j) and ``wsum`` = sum_{k,l} D.

    The formulas Theta_C, Theta_F, Theta_W of the module docstring; ``i``, ``j`` may be
    symbols (the closed forms in :mod:`linrnn.families.gaussian.corrections` use this).
    """
    mu = _multiplier(param, part)
    if part == "C":
        return mu * sym.sigma_f2 / sym.n_x * _w_power(i + j) * gram
    if part == "F":
        return mu * sym.sigma_c2 / sym.n * _w_power(i + j) * gram
    return mu * sym.sigma_c2 * sym.sigma_f2 / (sym.n * sym.n_x) * _w_power(i + j - 2) * wsum


@lru_cache(maxsize=None)
def _part(param: str, part: str, i: int, j: int) -> sp.Expr:
    if (i + j) % 2 or (part == "W" and (i == 0 or j == 0)):
        return sp.Integer(0)
    gram = poly_expr(gram_trace(i, j)) if part != "W" else sp.Integer(0)
    wsum = poly_expr(w_part_traces(i, j)) if part == "W" else sp.Integer(0)
    return part_from_traces(param, part, i, j, gram, wsum)


def exact_nngp_cov(
    i: int, j: int, *, same_output: bool = True, same_input: bool = True, param: str = "ntk"
) -> sp.Expr:
    """E[L_i(0)[a,b] L_j(0)[a',b']] exactly at width ``n`` (a rational function of ``n``).

    ``= delta(a,a') delta(b,b') sigma_C^2 sigma_F^2/(n n_x) (q/n)^{(i+j)/2} E tr(G^i (G^T)^j)``;
    the law of the effective matrices is the same in both parameterizations, so ``param``
    is only checked (the signature is that of :func:`linrnn.families.gaussian.wick.exact_nngp_cov`).
    """
    _check_param(param)
    i, j = _check_lag("i", i), _check_lag("j", j)
    if not (same_output and same_input):
        return sp.Integer(0)
    return _nngp(i, j)


def exact_lag_ntk_part(
    param: str, part: str, i: int, j: int, *, same_output: bool = True, same_input: bool = True
) -> sp.Expr:
    """E[s eta_P <dL_i[a,b]/dP, dL_j[a',b']/dP>] exactly at width ``n``, P the raw ``part``.

    The formulas are those of the module docstring (Theta_C, Theta_F, Theta_W); the
    result is a rational function of ``n`` and the model symbols, 0 unless ``a == a'``,
    ``b == b'`` and ``i + j`` is even.
    """
    _check_param(param)
    if part not in PARTS:
        raise UsageError(f"unknown parameter block {part!r}; choose one of {', '.join(PARTS)}")
    i, j = _check_lag("i", i), _check_lag("j", j)
    if not (same_output and same_input):
        return sp.Integer(0)
    return _part(param, part, i, j)


def exact_lag_ntk(param: str, i: int, j: int, *, same_output: bool = True, same_input: bool = True) -> sp.Expr:
    """E[Theta[(i,a,b),(j,a',b')]] exactly at width ``n``: the sum of the C, F and W parts."""
    return sp.Add(
        *(exact_lag_ntk_part(param, part, i, j, same_output=same_output, same_input=same_input) for part in PARTS)
    )
