r"""Numbers from the derived closed forms.

Two paths, one set of expressions:

* float64: the ``sympy.lambdify`` form for NumPy, vectorised over the lag ``j``. Where
  ``q^j`` leaves the float64 range the path raises :class:`NumericalRangeError`
  (overflow, or underflow to 0 or a subnormal), naming the first such lag and ``dps``.
* mpmath: the same expressions through their ``lambdify(modules="mpmath")`` form at
  ``dps`` significant digits, finite for any lag and any ``q``.

The expressions are the derivation's :class:`~linrnn.derive.formulas.Formula` records
(printed once from SymPy and cached as data, so that this module runs without SymPy
when the derivation is cached); a SymPy expression is accepted as well and printed
on the spot. Model values enter exactly (the decimal the user wrote, as a rational)
and are rounded once, to float64 or to the working mpmath precision; the exact
consequences (A, B, the total, the peak threshold) are evaluated in rational
arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any

import mpmath
import numpy as np

from linrnn.core.errors import NumericalRangeError, UsageError
from linrnn.derive.formulas import LAG_ARGS, PARAM_ARGS, Formula, consequence_formulas, formula_of, lag_formulas
from linrnn.derive.model import ModelSpec


@lru_cache(maxsize=64)
def _formula_of_expr(expr: Any) -> Formula:
    return formula_of(expr, LAG_ARGS)


def as_formula(expr: Formula | Any) -> Formula:
    """``expr`` as a :class:`Formula` of (j, parameters): a Formula as it is, a SymPy expression printed."""
    return expr if isinstance(expr, Formula) else _formula_of_expr(expr)


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


def exact_params(spec: ModelSpec) -> dict[str, Fraction]:
    """The model parameters by name (:data:`~linrnn.derive.formulas.PARAM_ARGS`) as exact rationals.

    Each value is the rational of its decimal literal (``Fraction(repr(x))``), as
    :func:`linrnn.derive.model.substitutions` gives SymPy.
    """
    values = (spec.sigma_w2, spec.sigma_c2, spec.sigma_f2, spec.n_in, spec.lr_c, spec.lr_f, spec.lr_w)
    return {name: Fraction(repr(float(v))) if not isinstance(v, int) else Fraction(v)
            for name, v in zip(PARAM_ARGS, values)}


def _mp_params(spec: ModelSpec) -> list[mpmath.mpf]:
    return [mpmath.mpf(v.numerator) / v.denominator for v in exact_params(spec).values()]


def evaluate(expr: Formula | Any, spec: ModelSpec, lags: int, dps: int | None = None, *,
             underflow: str = "raise") -> Any:
    """Evaluate ``expr`` (a :class:`Formula` or a SymPy expression in ``j`` and the model symbols) at ``j = 0 .. lags-1``.

    Returns a float64 ``numpy.ndarray``, or with ``dps`` a list of ``mpmath.mpf``
    computed at ``dps`` significant digits. The float path raises
    :class:`NumericalRangeError` if a value overflows float64, and likewise if one
    underflows (0 or subnormal in float64 while its exact value, mpmath at 30 digits,
    is not: ratios of such values are NaN or wrong); ``underflow="keep"`` returns the
    underflowed values instead, for callers that report underflow themselves
    (``linrnn derive weights`` notes it, ``linrnn verify ntk`` names it in its verdict).
    The message names the Python argument (``dps=30``); the command line says ``--dps 30``.
    """
    if underflow not in ("raise", "keep"):
        raise UsageError(f"underflow must be 'raise' or 'keep', got {underflow!r}")
    lags = _check_lags(lags)
    dps = _check_dps(dps)
    form = as_formula(expr)
    if form.args != LAG_ARGS:
        raise ValueError(f"a lag formula takes the arguments {LAG_ARGS}, not {form.args}")
    if dps is None:
        js = np.arange(lags, dtype=np.float64)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            values = np.asarray(form.numpy_fn()(js, *_float_params(spec)), dtype=np.float64)
        values = np.broadcast_to(values, js.shape).copy()
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise NumericalRangeError(
                f"float64 overflowed: the value at lag j = {int(bad[0])} exceeds the float64 range "
                f"(q = {spec.sigma_w2:g})", remedy=("dps", 30), advice="(mpmath at 30 digits) for finite values")
        if underflow == "raise":
            low = first_underflow(form, spec, values)
            if low is not None:
                raise NumericalRangeError(
                    f"float64 underflowed: the value at lag j = {low} is below the normal float64 range "
                    f"(q = {spec.sigma_w2:g}: float64 gives {values[low]:g})", remedy=("dps", 30),
                    advice="(mpmath at 30 digits) for its exact magnitude")
        return values
    fn = form.mpmath_fn()
    with mpmath.workdps(dps):
        params = _mp_params(spec)
        return [+fn(mpmath.mpf(jj), *params) for jj in range(lags)]


def float64_range(expr: Formula | Any, spec: ModelSpec, values: np.ndarray) -> tuple[list[int], list[int]]:
    """(lags whose float64 value is subnormal, lags whose float64 value is 0 while the exact value is not).

    A subnormal (``0 < |x| <`` the smallest normal float64, 2.2e-308) is printed with
    fewer significant digits than a normal number; a 0 has lost the value entirely.
    The exact value is evaluated with mpmath (30 digits).
    """
    tiny = np.finfo(np.float64).tiny
    values = np.asarray(values, dtype=np.float64)
    subnormal = [int(j) for j in np.flatnonzero((values != 0) & (np.abs(values) < tiny))]
    zero = []
    fn = as_formula(expr).mpmath_fn()
    for jj in np.flatnonzero(values == 0):
        with mpmath.workdps(30):
            if fn(mpmath.mpf(int(jj)), *_mp_params(spec)) != 0:
                zero.append(int(jj))
    return subnormal, zero


def first_underflow(expr: Formula | Any, spec: ModelSpec, values: np.ndarray) -> int | None:
    """First lag whose float64 value is zero or subnormal while the exact value is not."""
    tiny = np.finfo(np.float64).tiny
    fn = as_formula(expr).mpmath_fn()
    for jj in np.flatnonzero(np.abs(values) < tiny):
        with mpmath.workdps(30):
            if fn(mpmath.mpf(int(jj)), *_mp_params(spec)) != 0:
                return int(jj)
    return None


def weights(spec: ModelSpec, lags: int, dps: int | None = None, *, underflow: str = "raise") -> Any:
    r"""The lag weights ``lambda_j``, ``j = 0 .. lags-1`` (n -> infinity).

    ``lambda_j`` is the diagonal of the limit lag NTK derived in
    :func:`linrnn.derive.lag_weights.derive_lag_weights` for ``spec.param``
    (its cached formula, :func:`linrnn.derive.formulas.lag_formulas`). In float64
    (``dps`` None) a value that overflows or underflows raises :class:`NumericalRangeError`
    (:func:`evaluate`; ``underflow="keep"`` keeps underflowed values).
    """
    return evaluate(lag_formulas(spec.param, spec.derivation_law()).weight, spec, lags, dps, underflow=underflow)


def nngp_variance(spec: ModelSpec, lags: int, dps: int | None = None, *, underflow: str = "raise") -> Any:
    r"""``Var L_j(0)[a,b]`` for ``j = 0 .. lags-1`` in the n -> infinity limit (range errors as :func:`weights`)."""
    return evaluate(lag_formulas(spec.param, spec.derivation_law()).nngp, spec, lags, dps, underflow=underflow)


def limit_lag_ntk(spec: ModelSpec, lags: int, *, underflow: str = "raise") -> np.ndarray:
    r"""The limit lag NTK, shape ``(lags, n_out, n_in, lags, n_out, n_in)`` (the spec's n_out and n_in).

    The derived kernel is ``lambda_i delta_ij delta_aa' delta_bb'``; this builds it
    from the derived weights and that derived structure (checked at derivation).
    """
    n_out_i = spec.n_out
    lam = weights(spec, lags, underflow=underflow)
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


def regime_of(q: float) -> str:
    return "decaying" if q < 1 else ("critical" if q == 1 else "exploding")


def summarize(spec: ModelSpec, eps: float = 1e-3, dps: int = 30) -> Summary:
    """Peak, horizon, total and regime of ``spec`` from the derived closed forms.

    The horizon is evaluated with mpmath at ``dps`` digits: Lambert ``W_{-1}``
    when the weights have a term linear in ``j`` (``B > 0``), else the logarithm.
    """
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise UsageError(f"eps must be a number in (0, 1), got {eps!r}") from None
    if not 0 < eps < 1:
        raise UsageError(f"eps must lie strictly between 0 and 1, got {eps!r}")
    lf = lag_formulas(spec.param, spec.derivation_law())
    exact = exact_params(spec)
    regime = regime_of(spec.sigma_w2)
    A, B = (f.exact_value(exact) for f in lf.linear_form)
    with mpmath.workdps(dps):
        weight_at = lf.weight.mpmath_fn()
        params = _mp_params(spec)
        if regime != "decaying":
            if B == 0 and regime == "critical":  # constant weights: every lag is a maximum
                value = weight_at(mpmath.mpf(0), *params)
                return Summary(regime, 0, value, None, None, None, None, eps)
            return Summary(regime, None, None, None, None, None, None, eps)
        con = consequence_formulas(spec.param)  # only the decaying regime needs the consequences
        total = con.total.exact_value(exact)
        total_value = mpmath.mpf(total.numerator) / total.denominator
        if B == 0:
            peak, threshold = 0, None
        else:
            jc = con.peak_threshold.exact_value(exact)
            threshold = float(jc)
            if jc < 0:
                peak = 0
            elif jc.denominator == 1:
                peak = int(jc)  # tie between j_c and j_c + 1: report the first
            else:
                peak = math.floor(jc) + 1
        peak_value = weight_at(mpmath.mpf(peak), *params)
        # never substitute exact values into q**(A/B): evaluate the closed form numerically
        horizon_form = con.horizon_geometric if B == 0 else con.horizon
        e = Fraction(repr(eps))
        h = horizon_form.mpmath_fn()(mpmath.mpf(e.numerator) / e.denominator, peak_value, *params)
        h = mpmath.re(h)
        horizon = float(h)
        horizon_lag = int(mpmath.floor(h)) + 1
    return Summary(regime, peak, peak_value, threshold, horizon, horizon_lag, total_value, eps)
