r"""Numbers from the derived closed forms.

Two paths, one set of expressions:

* float64: ``sympy.lambdify`` to NumPy, vectorised over the lag ``j``. Where
  ``q^j`` leaves the float64 range the path raises :class:`NumericalRangeError`
  (overflow) or reports the first lag that underflowed, and points to ``dps``.
* mpmath: the same expressions through ``lambdify(modules="mpmath")`` at ``dps``
  significant digits, finite for any lag and any ``q``.

Model values enter exactly (the decimal the user wrote, as a rational) and are
rounded once, to float64 or to the working mpmath precision.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import mpmath
import numpy as np
import sympy as sp

from linrnn.derive import symbols as S
from linrnn.derive.model import ModelSpec, substitutions
from linrnn.core.errors import NumericalRangeError, UsageError

_ARGS = (S.j, *S.PARAMETERS)


@lru_cache(maxsize=64)
def _float_fn(expr: sp.Expr) -> Callable[..., Any]:
    return sp.lambdify(_ARGS, expr, modules="numpy")


@lru_cache(maxsize=64)
def _mp_fn(expr: sp.Expr) -> Callable[..., Any]:
    return sp.lambdify(_ARGS, expr, modules="mpmath")


def _check_lags(lags: int) -> int:
    try:
        value = int(lags)
    except (TypeError, ValueError):
        raise UsageError(f"lags must be a positive integer, got {lags!r}") from None
    if value != lags or value < 1:
        raise UsageError(f"lags must be a positive integer, got {lags!r}")
    return value


def _check_dps(dps: int | None) -> int | None:
    if dps is None:
        return None
    try:
        value = int(dps)
    except (TypeError, ValueError):
        raise UsageError(f"dps must be a positive integer, got {dps!r}") from None
    if value != dps or not 1 <= value <= 100000:
        raise UsageError(f"dps must be an integer between 1 and 100000, got {dps!r}")
    return value


def _float_params(spec: ModelSpec) -> list[float]:
    return [float(v) for v in (spec.sigma_w2, spec.sigma_c2, spec.sigma_f2, spec.n_in, spec.lr_c, spec.lr_f, spec.lr_w)]


def _mp_params(spec: ModelSpec) -> list[mpmath.mpf]:
    subs = substitutions(spec)
    return [mpmath.mpf(subs[s].p) / subs[s].q for s in S.PARAMETERS]


def evaluate(expr: sp.Expr, spec: ModelSpec, lags: int, dps: int | None = None) -> Any:
    """Evaluate ``expr`` (in ``j`` and the model symbols) at ``j = 0 .. lags-1``.

    Returns a float64 ``numpy.ndarray``, or with ``dps`` a list of ``mpmath.mpf``
    computed at ``dps`` significant digits. The float path raises
    :class:`NumericalRangeError` if a value overflows float64.
    """
    lags = _check_lags(lags)
    dps = _check_dps(dps)
    extra = expr.free_symbols - set(_ARGS)
    if extra:
        raise ValueError(f"expression has unbound symbols {sorted(map(str, extra))}")
    if dps is None:
        js = np.arange(lags, dtype=np.float64)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            values = np.asarray(_float_fn(expr)(js, *_float_params(spec)), dtype=np.float64)
        values = np.broadcast_to(values, js.shape).copy()
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise NumericalRangeError(
                f"float64 overflowed: the value at lag j = {int(bad[0])} exceeds the float64 range "
                f"(q = {spec.sigma_w2:g}); rerun with --dps 30 (mpmath at 30 digits) for finite values."
            )
        return values
    fn = _mp_fn(expr)
    with mpmath.workdps(dps):
        params = _mp_params(spec)
        return [+fn(mpmath.mpf(jj), *params) for jj in range(lags)]


def first_underflow(expr: sp.Expr, spec: ModelSpec, values: np.ndarray) -> int | None:
    """First lag whose float64 value is zero or subnormal while the exact value is not."""
    tiny = np.finfo(np.float64).tiny
    fn = _mp_fn(expr)
    for jj in np.flatnonzero(np.abs(values) < tiny):
        with mpmath.workdps(30):
            if fn(mpmath.mpf(int(jj)), *_mp_params(spec)) != 0:
                return int(jj)
    return None


def weights(spec: ModelSpec, lags: int, dps: int | None = None) -> Any:
    r"""The lag weights ``lambda_j``, ``j = 0 .. lags-1`` (n -> infinity).

    ``lambda_j`` is the diagonal of the limit lag NTK derived in
    :func:`linrnn.derive.lag_weights.derive_lag_weights` for ``spec.param``.
    """
    from linrnn.derive.lag_weights import derive_lag_weights

    return evaluate(derive_lag_weights(spec.param).weight, spec, lags, dps)


def nngp_variance(spec: ModelSpec, lags: int, dps: int | None = None) -> Any:
    r"""``Var L_j(0)[a,b]`` for ``j = 0 .. lags-1`` in the n -> infinity limit."""
    from linrnn.derive.lag_weights import derive_lag_weights

    return evaluate(derive_lag_weights(spec.param).nngp, spec, lags, dps)


def limit_lag_ntk(spec: ModelSpec, lags: int) -> np.ndarray:
    r"""The limit lag NTK, shape ``(lags, n_out, n_in, lags, n_out, n_in)`` (the spec's n_out and n_in).

    The derived kernel is ``lambda_i delta_ij delta_aa' delta_bb'``; this builds it
    from the derived weights and that derived structure (checked at derivation).
    """
    n_out_i = spec.n_out
    lam = weights(spec, lags)
    eye_lag = np.eye(lags)
    out = np.einsum("i,ij,ac,bd->iabjcd", lam, eye_lag, np.eye(n_out_i), np.eye(spec.n_in))
    return out


# ------------------------------------------------------------------ consequences


@dataclass(frozen=True)
class Summary:
    """Numeric consequences for one configuration (exact where they can be)."""

    regime: str  # "decaying" | "critical" | "exploding"
    peak_lag: int | None  # argmax_k lambda_k over all k >= 0 (None when unbounded)
    peak_value: Any  # lambda at the peak (mpmath or float), None when unbounded
    threshold: float | None  # j_c
    horizon: float | None  # j_eps on the decaying side, None where none exists
    horizon_lag: int | None  # first integer lag beyond the peak with ratio < eps
    total: Any  # sum_j lambda_j, None when it diverges
    eps: float


@lru_cache(maxsize=16)
def _horizon_fn(expr: sp.Expr) -> Callable[..., Any]:
    return sp.lambdify([S.eps, S.lam_max, *S.PARAMETERS], expr, modules="mpmath")


def regime_of(q: float) -> str:
    return "decaying" if q < 1 else ("critical" if q == 1 else "exploding")


def summarize(spec: ModelSpec, eps: float = 1e-3, dps: int = 30) -> Summary:
    """Peak, horizon, total and regime of ``spec`` from the derived closed forms.

    The horizon is evaluated with mpmath at ``dps`` digits: Lambert ``W_{-1}``
    when the weights have a term linear in ``j`` (``B > 0``), else the logarithm.
    """
    from linrnn.derive.consequences import consequences
    from linrnn.derive.lag_weights import derive_lag_weights

    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise UsageError(f"eps must be a number in (0, 1), got {eps!r}") from None
    if not 0 < eps < 1:
        raise UsageError(f"eps must lie strictly between 0 and 1, got {eps!r}")
    der = derive_lag_weights(spec.param)
    subs = substitutions(spec)
    regime = regime_of(spec.sigma_w2)
    A, B = (x.subs(subs) for x in der.linear_form)
    with mpmath.workdps(dps):
        weight_at = _mp_fn(der.weight)
        params = _mp_params(spec)
        if regime != "decaying":
            if B == 0 and regime == "critical":  # constant weights: every lag is a maximum
                value = weight_at(mpmath.mpf(0), *params)
                return Summary(regime, 0, value, None, None, None, None, eps)
            return Summary(regime, None, None, None, None, None, None, eps)
        con = consequences(spec.param)  # only the decaying regime needs the consequences
        total = con.total.subs(subs)
        total_value = mpmath.mpf(sp.Rational(total).p) / sp.Rational(total).q if total.is_Rational else mpmath.mpf(str(sp.N(total, dps)))
        if B == 0:
            peak, threshold = 0, None
        else:
            jc = con.peak_threshold.subs(subs)
            threshold = float(jc)
            if jc < 0:
                peak = 0
            elif sp.Integer(sp.floor(jc)) == jc:
                peak = int(jc)  # tie between j_c and j_c + 1: report the first
            else:
                peak = int(sp.floor(jc)) + 1
        peak_value = weight_at(mpmath.mpf(peak), *params)
        # never substitute exact values into q**(A/B): evaluate the closed form numerically
        horizon_expr = con.horizon_geometric if B == 0 else con.horizon
        h = _horizon_fn(horizon_expr)(mpmath.mpf(sp.Rational(repr(eps)).p) / sp.Rational(repr(eps)).q,
                                      peak_value, *params)
        h = mpmath.re(h)
        horizon = float(h)
        horizon_lag = int(mpmath.floor(h)) + 1
    return Summary(regime, peak, peak_value, threshold, horizon, horizon_lag, total_value, eps)
