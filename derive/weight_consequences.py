r"""Consequences of the lag weights, derived from the closed form by SymPy.

For ``lambda_j = q^j (A + B j)`` (the form :mod:`linrnn.derive.lag_weights` arrives at):

* generating function ``Lambda(z) = sum_j lambda_j z^j`` (``Sum(...).doit()``), valid
  for ``q |z| < 1``;
* total ``sum_j lambda_j = Lambda(1)``: finite exactly when ``q < 1``;
* ratio ``lambda_{j+1}/lambda_j`` and its limit ``q`` as ``j -> infinity``;
* the lag of the peak: the discrete threshold ``j_c`` solving
  ``lambda_{j+1} = lambda_j`` (weights rise while ``j < j_c``) and the stationary point
  of the continuous curve;
* the memory horizon ``j_eps``: the lag beyond the peak where
  ``lambda_j / max_k lambda_k = eps``, solved by SymPy in terms of the Lambert W
  function. The decaying side is the lower real branch ``W_{-1}`` (argument in
  ``[-1/e, 0)``); without the term linear in j (``B = 0``) the solution is the
  logarithm ``log(eps max/A) / log q``;
* the regimes ``q < 1`` (geometric decay: short memory), ``q = 1`` (linear growth)
  and ``q > 1`` (geometric growth: exploding), from limits of ``lambda_j``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sympy as sp

from linrnn.derive import symbols as S
from linrnn.derive.lag_weights import derive_lag_weights
from linrnn.derive.steps import Derivation


@dataclass
class Regime:
    name: str  # "decaying", "critical", "exploding"
    condition: sp.Basic
    limit: sp.Expr  # lim_{j -> oo} lambda_j in this regime
    ratio_limit: sp.Expr
    meaning: str


@dataclass
class Consequences:
    """Closed-form consequences of the lag weights for one parameterization."""

    param: str
    weight: sp.Expr
    generating_function: sp.Expr
    generating_condition: sp.Basic
    total: sp.Expr
    total_condition: sp.Basic
    ratio: sp.Expr
    ratio_limit: sp.Expr
    peak_threshold: sp.Expr  # j_c: lambda_{j+1} >= lambda_j  iff  j <= j_c (q < 1, B > 0)
    peak_continuous: sp.Expr  # d/dj log lambda_j = 0
    horizon: sp.Expr  # Lambert W_{-1} form, in eps and lam_max
    horizon_argument: sp.Expr  # the argument of W_{-1}
    horizon_geometric: sp.Expr  # B = 0
    regimes: list[Regime]
    steps: Derivation


def _condition_of(expr: sp.Expr) -> tuple[sp.Expr, sp.Basic]:
    folded = sp.piecewise_fold(expr)
    if isinstance(folded, sp.Piecewise):
        value, cond = folded.args[0]
        return value, cond
    return folded, sp.true


# generic form lambda_j = q^j (A + B j); A, B >= 0, not both zero
A_ = sp.Symbol("A", nonnegative=True)
B_ = sp.Symbol("B", positive=True)


@lru_cache(maxsize=None)
def _generic() -> dict[str, sp.Expr]:
    """Solve once on the generic form; parameterizations substitute their A and B."""
    j, q, z = S.j, S.q, S.z
    w = q**j * (A_ + B_ * j)
    out: dict[str, sp.Expr] = {}
    # by linearity, Lambda(z) = A S_0(qz) + B S_1(qz) with the basis sums S_d(x) = sum_j j^d x^j
    x = sp.Symbol("x")
    basis = [_condition_of(sp.Sum(j**d * x**j, (j, 0, sp.oo)).doit()) for d in (0, 1)]
    (s0, cond0), (s1, cond1) = basis
    if cond0 != cond1:  # pragma: no cover
        raise AssertionError(f"basis sums converge on different sets: {cond0}, {cond1}")
    # over the common denominator, A and B kept apart: (A (1 - q z) + B q z) / (1 - q z)^2
    out["gf"] = sp.together(A_ * s0.subs(x, q * z) + B_ * s1.subs(x, q * z))
    out["gf_cond"] = cond0.subs(x, q * z)
    out["total"] = out["gf"].subs(z, 1)
    out["total_cond"] = sp.simplify(out["gf_cond"].subs(z, 1))
    (out["peak_threshold"],) = sp.solve(sp.Eq(w.subs(j, j + 1), w), j, check=False)
    (out["peak_continuous"],) = sp.solve(sp.Eq(sp.diff(sp.expand_log(sp.log(w), force=True), j), 0), j, check=False)
    horizon_sols = [x for x in sp.solve(sp.Eq(w, S.eps * S.lam_max), j, check=False) if x.has(sp.LambertW)]
    if len(horizon_sols) != 1:  # pragma: no cover
        raise AssertionError(f"expected one Lambert-W solution for the horizon, got {horizon_sols}")
    out["horizon_principal"] = horizon_sols[0]
    (out["horizon_geometric"],) = sp.solve(sp.Eq(q**j * A_, S.eps * S.lam_max), j, check=False)
    return out


@lru_cache(maxsize=None)
def consequences(param: str = "ntk") -> Consequences:
    """Derive the consequences of the lag weights of ``param`` (disk-cached)."""
    from linrnn.derive.cache import disk_cached

    return disk_cached(f"consequences-{param}", lambda: _consequences(param), Consequences)


def _consequences(param: str) -> Consequences:
    der = derive_lag_weights(param)
    w = der.weight
    A, B = der.linear_form
    j, q, z = S.j, S.q, S.z
    if sp.simplify(w - q**j * (A + B * j)) != 0:  # pragma: no cover
        raise AssertionError("lambda_j is not q^j (A + B j) with the derived A, B")
    g = _generic()
    spec = {A_: A, B_: B}
    d = Derivation(f"Consequences of the lag weights ({param})")
    lam = sp.IndexedBase(r"\lambda")

    sec = "Generating function and total weight"
    # the parameterization's A and B substituted into the generic form, common factors pulled out, not expanded
    gf, gf_cond = sp.factor_terms(g["gf"].subs(spec)), g["gf_cond"]
    d.add("gf", sp.Sum(lam[j] * z**j, (j, 0, sp.oo)), gf,
          f"Valid for ${sp.latex(gf_cond)}$.", section=sec)
    total, total_cond = sp.factor_terms(g["total"].subs(spec)), g["total_cond"]
    if sp.simplify(total - gf.subs(z, 1)) != 0:  # pragma: no cover
        raise AssertionError("sum of the weights differs from the generating function at z = 1")
    d.add("total", sp.Sum(lam[j], (j, 0, sp.oo)), total,
          rf"Finite exactly when ${sp.latex(total_cond)}$; the series diverges for $q \geq 1$.", section=sec)

    sec = "Decay, peak and memory horizon"
    ratio = sp.factor(sp.simplify(w.subs(j, j + 1) / w))
    ratio_limit = sp.limit(ratio, j, sp.oo)
    d.add("ratio", lam[j + 1] / lam[j], ratio, section=sec)
    d.add("ratio-limit", sp.Limit(lam[j + 1] / lam[j], j, sp.oo), ratio_limit,
          "Asymptotically the weights change by a factor $q$ per lag.", section=sec)
    peak_threshold = sp.simplify(g["peak_threshold"].subs(spec))
    d.add("peak-threshold", sp.Symbol("j_{c}"), peak_threshold,
          r"Solving $\lambda_{j+1} = \lambda_j$: for $q<1$ the weights rise while $j < j_c$ and fall after, "
          r"so the largest weight sits at lag $\max(0, \lfloor j_c \rfloor + 1)$ "
          r"(a tie with $j_c$ when $j_c$ is an integer).", section=sec)
    peak_continuous = sp.simplify(g["peak_continuous"].subs(spec))
    d.add("peak-continuous", sp.Symbol(r"j^{\star}"), peak_continuous,
          r"Stationary point of $j \mapsto \lambda_j$ on the reals.", section=sec)

    principal = g["horizon_principal"]
    (wterm,) = principal.atoms(sp.LambertW)
    horizon_argument = sp.simplify(wterm.args[0].subs(spec))
    horizon = principal.subs(wterm, sp.LambertW(wterm.args[0], -1)).subs(spec)
    d.add("horizon", sp.Symbol(r"j_{\varepsilon}"), horizon,
          r"Solving $\lambda_j = \varepsilon \lambda_{\max}$ with $\lambda_{\max} = \max_k \lambda_k$. "
          r"For $q<1$ the argument of $W$ lies in $[-1/e, 0)$, where $W$ has two real branches: the principal "
          r"branch $W_0$ gives the crossing before the peak, the lower branch $W_{-1}$ (used here) the crossing "
          r"after it, on the decaying side.", section=sec)
    horizon_geometric = sp.simplify(g["horizon_geometric"].subs({A_: A.subs(S.eta_w, 0)}))
    d.add("horizon-geometric", sp.Symbol(r"j_{\varepsilon}\big|_{\eta_{W}=0}"), horizon_geometric,
          r"Without the $W$-path ($\eta_W = 0$) the weights are purely geometric and the horizon is a logarithm.",
          section=sec)

    sec = "Three regimes"
    r = sp.Symbol("r", positive=True)
    regimes = []
    generic_w = q**j * (A_ + B_ * j)
    for name, q_value, cond, meaning in (
        ("decaying", 1 / (1 + r), sp.Lt(q, 1),
         "the weights decay geometrically: gradient descent barely moves long lags (vanishing gradients), "
         "an implicit bias toward short memory"),
        ("critical", sp.Integer(1), sp.Eq(q, 1),
         "no geometric factor: the weights grow linearly with the lag (constant without the $W$-path), "
         "and their sum diverges"),
        ("exploding", 1 + r, sp.Gt(q, 1),
         "the weights grow geometrically with the lag (exploding gradients): long lags dominate the dynamics"),
    ):
        lim = sp.limit(generic_w.subs(q, q_value), j, sp.oo)
        rlim = sp.limit(ratio.subs(q, q_value), j, sp.oo)
        if q_value.has(r):  # express the ratio limit in q again
            rlim = sp.simplify(rlim.subs(r, sp.solve(sp.Eq(q_value, q), r)[0]))
            how = f"substituting $q = {sp.latex(q_value)}$ with $r>0$"
        else:
            how = f"substituting $q = {sp.latex(q_value)}$"
        regimes.append(Regime(name, cond, lim, rlim, meaning))
        d.add(f"regime-{name}", sp.Limit(lam[j], j, sp.oo), lim,
              f"For ${sp.latex(cond)}$ ({how}, and $B>0$): {meaning}.",
              section=sec)

    return Consequences(
        param=param, weight=w, generating_function=gf, generating_condition=gf_cond, total=total,
        total_condition=total_cond, ratio=ratio, ratio_limit=ratio_limit, peak_threshold=peak_threshold,
        peak_continuous=peak_continuous, horizon=horizon, horizon_argument=horizon_argument,
        horizon_geometric=horizon_geometric, regimes=regimes, steps=d,
    )
