r"""Evaluate the shifted family's derived kernels (:mod:`.derivation`) on lags 0 .. L-1.

The derived scalar kernels are sums of coefficient * structure, the structure being
g(j, k) or the W-part's double sum over split points
sum_{s<j} sum_{t<k} g(s, t) g(j-1-s, k-1-t); :func:`terms` reads them off the SymPy
expression (and refuses any other structure), so nothing here restates the formula.

* g(p, r) for p, r < L (:func:`g_table`) from the derived sum, its summand and bounds
  lambdified and summed over m in float64 (vectorised over p, r), tilted:
  g(p, r) / rho^(p+r) with rho = |a| + sqrt(q). The summand is homogeneous of degree
  p + r in (a, sqrt q) (checked by SymPy, :func:`_homogeneous`), so the tilted table is the
  same sum at (a / rho, q / rho^2): every entry is at most 1 (Cauchy-Schwarz), and no
  power of rho is formed. Where a float64 term is not finite (a product of binomials
  beyond 1e308 at long lags), the entry is summed in mpmath at :data:`DPS` digits. A term
  whose float64 factors pass below 1e-308 on the way is at most 1e-154 of the largest
  entry, where it loses its relative precision (no check the package makes sees it).
* the double sum is the 2-D convolution of the table with itself, shifted by one lag
  (:func:`split_convolution`: exact products summed by matrix products, no FFT, so small
  entries keep their relative precision): O(L^4) operations in BLAS, hence :data:`MAX_LAGS`;
  the tilt multiplies through (rho^(s+t) rho^(j-1-s+k-1-t) = rho^(j+k-2)).
* the powers rho^(j+k) are applied last; a value beyond float64 is one sentence.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np

from linrnn.core.errors import UsageError

#: mpmath's working precision (decimal digits) for the entries float64 cannot sum.
DPS = 50
#: The most lags evaluated (the W-part's 2-D convolution costs L^4 / 2 multiply-adds: seconds at 256).
MAX_LAGS = 256


@lru_cache(maxsize=None)
def _homogeneous(g_sum: Any) -> bool:
    """Whether the derived summand satisfies f(p, r, m; c a, c^2 q) = c^(p+r) f(p, r, m; a, q)."""
    import sympy as sp

    from linrnn.derive import symbols as S
    from linrnn.families.shifted import derivation as D

    c = sp.Symbol("c", positive=True)
    f = g_sum.function
    return sp.simplify(sp.powsimp(f.subs({D.a: c * D.a, S.q: c**2 * S.q}, simultaneous=True)
                                  - c ** (D.p + D.r) * f, force=True)) == 0


@lru_cache(maxsize=None)
def _functions(g_sum: Any) -> tuple[Any, Any, Any, Any]:
    """(summand float64, summand mpmath, lower bound, upper bound) of g's sum, as functions of (p, r, m, a, q)."""
    import sympy as sp

    from linrnn.derive import symbols as S
    from linrnn.families.shifted import derivation as D

    from scipy.special import binom

    (var, lo, hi), = g_sum.limits
    args = (D.p, D.r, var, D.a, S.q)
    f = g_sum.function
    # binomial(p, m) as scipy's binom (finite to p ~ 1000), not as the gamma ratio that overflows from p = 171
    return (sp.lambdify(args, f, modules=[{"binomial": binom}, "numpy"]), sp.lambdify(args, f, modules="mpmath"),
            sp.lambdify((D.p, D.r), lo, modules="numpy"), sp.lambdify((D.p, D.r), hi, modules="numpy"))


def rho(spec: Any) -> float:
    """The tilt |a| + sqrt(q) (the growth rate of g(p, p)^(1/2p) as p grows)."""
    return abs(float(spec.shift)) + math.sqrt(float(spec.sigma_w2))


def g_table(g_sum: Any, spec: Any, lags: int) -> np.ndarray:
    """g(p, r) / rho^(p+r) for p, r < ``lags`` (float64), from the derived sum ``g_sum`` (module docstring)."""
    import mpmath

    if not _homogeneous(g_sum):  # pragma: no cover - guards the tilt
        raise AssertionError("the derived summand of g is not homogeneous in (a, sqrt q)")
    f, f_mp, lo_f, hi_f = _functions(g_sum)
    L = int(lags)
    tilt = rho(spec)
    at, qt = float(spec.shift) / tilt, float(spec.sigma_w2) / tilt**2
    P, R = np.meshgrid(np.arange(L, dtype=np.float64), np.arange(L, dtype=np.float64), indexing="ij")
    lo = np.broadcast_to(np.asarray(lo_f(P, R), dtype=np.float64), P.shape)
    hi = np.broadcast_to(np.asarray(hi_f(P, R), dtype=np.float64), P.shape)
    out = np.zeros((L, L))
    bad = np.zeros((L, L), dtype=bool)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        for mm in range(L):
            inside = (mm >= lo) & (mm <= hi)
            if not inside.any():
                continue
            term = np.broadcast_to(np.asarray(f(P, R, float(mm), at, qt), dtype=np.float64), P.shape)
            bad |= inside & ~np.isfinite(term)
            out += np.where(inside, term, 0.0)
    if bad.any():
        with mpmath.workdps(DPS):
            a_mp = mpmath.mpf(repr(float(spec.shift))) / mpmath.mpf(repr(tilt))
            q_mp = mpmath.mpf(repr(float(spec.sigma_w2))) / mpmath.mpf(repr(tilt)) ** 2
            for pp, rr in zip(*np.nonzero(bad)):
                top = int(hi[pp, rr])
                out[pp, rr] = float(mpmath.fsum(f_mp(int(pp), int(rr), mm, a_mp, q_mp)
                                                for mm in range(int(lo[pp, rr]), top + 1)))
    return out


def split_convolution(G: np.ndarray) -> np.ndarray:
    """S[x, y] = sum_{s <= x} sum_{t <= y} G[s, t] G[x - s, y - t] for x, y < L (the 2-D convolution, truncated).

    Row s of G convolved with row x - s is G[x - s] @ T_s^T with T_s[y, t] = G[s, y - t] (lower-triangular
    Toeplitz), so each s adds one matrix product to the rows x >= s.
    """
    from scipy.linalg import toeplitz

    L = G.shape[0]
    out = np.zeros((L, L))
    zeros = np.zeros(L)
    for first in range(L):
        out[first:, :] += G[: L - first] @ toeplitz(G[first], zeros).T
    return out


def terms(expr: Any) -> list[tuple[Any, str]]:
    """The kernel ``expr`` (in j, k) as [(coefficient, "g" | "split")]: coefficient * g(j, k) or coefficient *
    sum_{s<j} sum_{t<k} g(s, t) g(j-1-s, k-1-t); any other structure is an error."""
    import sympy as sp

    from linrnn.families.shifted import derivation as D

    g, j, k, s, t = D.g, D.j, D.k, D.s, D.t
    split = sp.Sum(g(s, t) * g(j - s - 1, k - t - 1), (t, 0, k - 1), (s, 0, j - 1))
    out = []
    for term in sp.Add.make_args(sp.expand(expr)):
        structure = [f for f in sp.Mul.make_args(term) if f.has(g)]
        coeff = sp.Mul(*[f for f in sp.Mul.make_args(term) if not f.has(g)])
        if structure == [g(j, k)]:
            out.append((coeff, "g"))
        elif structure == [split]:
            out.append((coeff, "split"))
        else:
            raise ValueError(f"a term of the shifted kernel of unknown structure: {term}")
    return out


def _coefficient(coeff: Any, spec: Any) -> float:
    from linrnn.derive import symbols as S

    values = {S.q: spec.sigma_w2, S.sigma_c2: spec.sigma_c2, S.sigma_f2: spec.sigma_f2, S.n_x: spec.n_in,
              S.eta_c: spec.lr_c, S.eta_f: spec.lr_f, S.eta_w: spec.lr_w}
    value = coeff.subs(values)
    if value.free_symbols:  # pragma: no cover - a coefficient with a symbol the model does not bind
        raise AssertionError(f"unbound symbols in a kernel coefficient: {value}")
    return float(value)


def kernel_matrices(derivation: Any, spec: Any, lags: int) -> dict[str, np.ndarray]:
    """``{"ntk": Theta_inf(j, k), "nngp": E[L_j L_k]}`` (lags x lags, float64) of the derived kernels at ``spec``."""
    L = int(lags)
    if L > MAX_LAGS:
        raise UsageError(f"the shifted family's kernel is evaluated for at most {MAX_LAGS} lags (its W-part is a "
                         f"double sum over split points, L^4 operations), got {L}")
    G = g_table(derivation.g_sum, spec, L)
    tilt = rho(spec)
    idx = np.arange(L, dtype=np.float64)
    with np.errstate(over="ignore"):
        powers = tilt ** (idx[:, None] + idx[None, :])  # rho^(j+k)
    conv = np.zeros((L, L))
    if L > 1:
        conv[1:, 1:] = split_convolution(G)[: L - 1, : L - 1] / tilt**2  # the split sum at (j, k), tilted by rho^(j+k)
    out = {}
    for name in ("ntk", "nngp"):
        tilted = np.zeros((L, L))
        for coeff, kind in terms(getattr(derivation, name)):
            tilted += _coefficient(coeff, spec) * (G if kind == "g" else conv)
        with np.errstate(over="ignore", invalid="ignore"):
            value = tilted * powers
        bad = ~np.isfinite(value)
        if bad.any():
            lag = int(np.min(np.maximum(*np.nonzero(bad))))
            raise UsageError(f"the shifted family's {name} kernel exceeds float64 from lag {lag} on (|a| + sqrt(q) "
                             f"= {tilt:g}); use fewer lags, a smaller shift or a smaller sigma_w2")
        out[name] = value
    return out
