r"""The orthogonal family's derivation: its wide-limit lag kernel and its exact finite-width NNGP.

Wide limit: :func:`linrnn.derive.lag_weights.derive_lag_weights` with the family's law
(:data:`linrnn.families.orthogonal.law.LAW`): the same SymPy operations as for the
Gaussian family, with the Haar rule for the Krylov inner products. The lag weights and
the NNGP come out; they are not typed in (the tests compare them with the Gaussian ones).

Exact finite-width NNGP (:func:`exact_nngp`), for every width n, from the model alone:

* average over C_e: E[L_i[a,b] L_j[a',b']] = delta_aa' v_C E<W_e^i f_b, W_e^j f_b'>;
* average over F_e: E<W_e^i f_b, W_e^j f_b'> = delta_bb' v_F E tr((W_e^j)^T W_e^i);
* W_e = sqrt(n v_W) O and O^T = O^{-1}: tr((W_e^j)^T W_e^i) = (n v_W)^{(i+j)/2} tr(O^{i-j});
* the Haar moment E tr(O^m) (:func:`linrnn.families.orthogonal.law.trace_moment_expr`).

So E[L_j^2] = v_C v_F n (n v_W)^j has no finite-width correction at all (O preserves
norms), while the entries j != k carry (n v_W)^{(j+k)/2} v_C v_F E tr(O^{j-k}), nonzero
for j - k even: a 1/n correlation across lags that the wide limit does not have.

The finite-width lag NTK mean needs E tr of words in O and O^T with two traces (the
W-part), i.e. Weingarten calculus on O(n); it is not derived here, and the NTK checks of
this family use the wide limit with the Richardson allowance (``verify ntk --mean
richardson``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ExactNNGP:
    """The exact finite-width NNGP of the orthogonal family for one parameterization.

    ``entry``: E[L_i[a,b] L_j[a,b]] (same output and input), a SymPy expression in i, j,
    n and the model symbols; ``limit``: its n -> infinity limit; ``steps``: the
    derivation as data (:class:`linrnn.derive.steps.Derivation`).
    """

    param: str
    entry: Any
    limit: Any
    steps: Any


@lru_cache(maxsize=None)
def exact_nngp(param: str = "ntk") -> ExactNNGP:
    """Derive E[L_i L_j](n) of the orthogonal family for ``param`` (see the module docstring)."""
    import sympy as sp
    from sympy.matrices.expressions import MatPow

    from linrnn.derive import symbols as S
    from linrnn.derive.lag_weights import Expect, Inner, W_e, f_b, f_b2, parameterization
    from linrnn.derive.steps import Derivation
    from linrnn.families.orthogonal.law import LAW, trace_moment_expr

    par = parameterization(param)
    i, j, n = S.i, S.j, S.n
    v_c, v_f, v_w = (par.entry_variance(p) for p in ("C", "F", "W"))
    growth = sp.simplify(n * v_w)
    L = sp.IndexedBase("L")
    O = sp.MatrixSymbol("O", n, n)
    d = Derivation(f"Exact finite-width NNGP of the orthogonal family ({param} parameterization)")
    sec = "The initial function at finite width (Haar orthogonal W)"
    lhs = Expect(L[i, S.a, S.b] * L[j, S.a2, S.b2])
    d.add("fw-C", lhs, sp.KroneckerDelta(S.a, S.a2) * v_c * Expect(Inner(MatPow(W_e, i) * f_b, MatPow(W_e, j) * f_b2)),
          r"Average over $C_e$: $\mathbb{E}_C[c_a^{T} X c_{a'}] = \delta_{aa'} v_C \operatorname{tr} X$.", section=sec)
    trace_w = sp.Function("tr")(sp.Transpose(MatPow(W_e, j)) * MatPow(W_e, i))
    d.add("fw-F", lhs, sp.KroneckerDelta(S.a, S.a2) * sp.KroneckerDelta(S.b, S.b2) * v_c * v_f * Expect(trace_w),
          r"Average over $F_e$ likewise: $\mathbb{E}[f_b f_{b'}^{T}] = \delta_{bb'} v_F I_n$.", section=sec)
    m = sp.Symbol("m", integer=True)
    haar = trace_moment_expr(m, n)
    d.add("fw-haar", Expect(sp.Function("tr")(MatPow(O, m))), haar,
          r"$O$ Haar on $O(n)$: the signed count of the even hooks of size $m$ (Murnaghan--Nakayama and the "
          r"spherical representations of $(GL_n, O_n)$, Macdonald VII.3).", section=sec)
    entry = sp.simplify(v_c * v_f * growth ** ((i + j) / 2) * haar.subs(m, i - j))
    d.add("fw-nngp", sp.Symbol(r"\mathbb{E}[L_i(0)[a,b]\,L_j(0)[a,b]]"), entry,
          rf"$W_e = \sqrt{{n v_W}}\,O$ with $n v_W = {sp.latex(growth)}$ and $O^{{T}} = O^{{-1}}$, so "
          r"$\operatorname{tr}((W_e^{j})^{T} W_e^{i}) = (n v_W)^{(i+j)/2} \operatorname{tr} O^{i-j}$.", section=sec)
    diag = sp.simplify(entry.subs(j, i))
    d.add("fw-diagonal", sp.Symbol(r"\mathbb{E}[L_j(0)[a,b]^{2}]"), diag.subs(i, j),
          "No finite-width correction on the diagonal: O preserves norms.", section=sec)
    limit = sp.simplify(sp.limit(entry, n, sp.oo))
    wide = sp.simplify(_wide_nngp(param, LAW))
    grid = [{i: a, j: b} for a in range(6) for b in range(6)]
    if any(sp.simplify((limit - wide).subs(g)) != 0 for g in grid):  # pragma: no cover - the two routes agree
        raise AssertionError(f"the exact NNGP's limit {limit} is not the wide-limit derivation's {wide}")
    d.add("fw-limit", sp.Limit(sp.Symbol(r"\mathbb{E}[L_i(0)[a,b]\,L_j(0)[a,b]]"), n, sp.oo), limit,
          "The wide-limit NNGP of the lag-weight derivation (checked equal).", section=sec)
    return ExactNNGP(param=param, entry=entry, limit=limit, steps=d)


def _wide_nngp(param: str, law: Any) -> Any:
    """The wide-limit NNGP entry E[L_i L_j] of the lag-weight derivation (the diagonal times delta_ij)."""
    import sympy as sp

    from linrnn.derive import symbols as S
    from linrnn.derive.lag_weights import derive_lag_weights

    der = derive_lag_weights(param, law)
    return der.nngp.subs(S.j, S.i) * sp.KroneckerDelta(S.i, S.j)


@lru_cache(maxsize=None)
def _entry_function(param: str) -> Any:
    """E[L_i L_j](i, j, n, q, sigma_C^2, sigma_F^2, n_x) as a plain Python function of exact numbers."""
    import sympy as sp

    from linrnn.derive import symbols as S

    expr = exact_nngp(param).entry.rewrite(sp.Piecewise)
    return sp.lambdify((S.i, S.j, S.n, S.q, S.sigma_c2, S.sigma_f2, S.n_x), expr, modules="mpmath")


def exact_nngp_matrix(spec: Any, lags: int, width: int) -> np.ndarray:
    """E[L_i(0)[0,0] L_j(0)[0,0]] at width ``width`` for lags i, j < ``lags`` (float64, lags x lags)."""
    import mpmath

    f = _entry_function(spec.param)
    args = (mpmath.mpf(width), mpmath.mpf(spec.sigma_w2), mpmath.mpf(spec.sigma_c2), mpmath.mpf(spec.sigma_f2),
            mpmath.mpf(spec.n_in))
    return np.array([[float(f(a, b, *args)) for b in range(lags)] for a in range(lags)], dtype=np.float64)
