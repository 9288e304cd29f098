"""Numbers from the closed forms: float64 vs mpmath, properties across q = 1, horizon."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from linrnn.derive.model import ModelSpec
from linrnn.families.gaussian import GaussianSpec
from linrnn.derive.numeric import evaluate, limit_lag_ntk, nngp_variance, summarize, weights
from linrnn.core.errors import NumericalRangeError, UsageError

params = st.sampled_from(["ntk", "standard"])
variances = st.floats(min_value=0.05, max_value=4.0, allow_nan=False)
rates = st.floats(min_value=0.0, max_value=3.0, allow_nan=False)


@st.composite
def specs(draw: st.DrawFn, q: st.SearchStrategy[float] = st.floats(min_value=0.05, max_value=3.0)) -> ModelSpec:
    lr_w = draw(st.floats(min_value=0.05, max_value=3.0))  # a W-path, so that B > 0
    return GaussianSpec(param=draw(params), sigma_w2=draw(q), sigma_c2=draw(variances), sigma_f2=draw(variances),
                     n_in=draw(st.integers(1, 4)), lr_c=draw(rates), lr_f=draw(rates), lr_w=lr_w)


@given(specs(), st.floats(min_value=0.05, max_value=3.0))
def test_weights_increase_with_q(spec: ModelSpec, q2: float) -> None:
    lo, hi = sorted([spec.sigma_w2, q2])
    # underflow="keep": a tiny multiplier (Hypothesis finds lr_c = 2e-313) gives subnormal weights, which the
    # default refuses as lost precision; their order in q is still the property tested here
    w_lo = weights(GaussianSpec(**{**spec.as_dict(), "sigma_w2": lo}), 24, underflow="keep")
    w_hi = weights(GaussianSpec(**{**spec.as_dict(), "sigma_w2": hi}), 24, underflow="keep")
    assert np.all(w_hi >= w_lo * (1 - 1e-12))


@given(specs(q=st.floats(min_value=0.05, max_value=0.97)))
def test_below_one_weights_decay_and_a_horizon_exists(spec: ModelSpec) -> None:
    s = summarize(spec)
    assert s.regime == "decaying" and s.horizon is not None and s.total is not None
    assert s.horizon >= s.peak_lag
    w = weights(spec, s.horizon_lag + 1, dps=30)
    # the horizon brackets the eps crossing on the decaying side
    assert w[s.horizon_lag] / s.peak_value < s.eps
    assert w[s.horizon_lag - 1] / s.peak_value >= s.eps * (1 - 1e-20)
    # the peak is the maximum of all weights up to (and beyond) the horizon
    assert max(w) == s.peak_value or abs(max(w) - s.peak_value) <= 1e-25 * s.peak_value
    # the closed-form total matches a partial sum long enough that the tail is negligible
    long = weights(spec, s.horizon_lag * 8 + 400, underflow="keep")  # a tail below float64's range adds nothing
    assert math.fsum(long) == pytest.approx(float(s.total), rel=1e-9)


@given(specs(q=st.floats(min_value=1.0, max_value=3.0)))
def test_at_or_above_one_no_horizon_and_weights_grow(spec: ModelSpec) -> None:
    s = summarize(spec)
    assert s.horizon is None and s.total is None
    assert s.regime == ("critical" if spec.sigma_w2 == 1.0 else "exploding")
    w = weights(spec, 64, dps=30)
    assert w[-1] > w[-2]  # increasing at long lags (B > 0)


@given(specs(q=st.floats(min_value=0.05, max_value=3.0)))
def test_ratio_tends_to_q(spec: ModelSpec) -> None:
    w = weights(spec, 4001, dps=40)
    assert abs(float(w[4000] / w[3999]) - spec.sigma_w2) < 1e-3 * spec.sigma_w2


def test_geometric_horizon_without_w_path() -> None:
    spec = GaussianSpec(sigma_w2=0.5, lr_w=0.0)
    s = summarize(spec)
    assert s.peak_lag == 0
    assert s.horizon == pytest.approx(math.log(1e-3) / math.log(0.5), rel=1e-12)


def test_float_and_mpmath_paths_agree() -> None:
    spec = GaussianSpec(param="standard", sigma_w2=0.93, sigma_c2=1.7, sigma_f2=0.6, n_in=3, lr_c=0.5, lr_f=2, lr_w=1.3)
    f = weights(spec, 300)
    m = weights(spec, 300, dps=40)
    np.testing.assert_allclose(f, [float(x) for x in m], rtol=1e-13)
    np.testing.assert_allclose(nngp_variance(spec, 50), [float(x) for x in nngp_variance(spec, 50, dps=40)], rtol=1e-13)


def test_float_overflow_is_reported_and_mpmath_is_finite() -> None:
    spec = GaussianSpec(sigma_w2=1.5)
    with pytest.raises(NumericalRangeError, match="dps=30") as info:  # a Python call names its argument
        weights(spec, 20000)
    assert "--dps" not in str(info.value)
    w = weights(spec, 20000, dps=20)
    assert all(mpmath.isfinite(x) for x in w[-3:]) and w[-1] > mpmath.mpf(10) ** 3500


def test_limit_kernel_shape_and_diagonal() -> None:
    spec = GaussianSpec(sigma_w2=0.7, n_in=2)
    K = limit_lag_ntk(spec.replace(n_out=3), 5)
    assert K.shape == (5, 3, 2, 5, 3, 2)
    lam = weights(spec, 5)
    assert K[2, 1, 0, 2, 1, 0] == lam[2]
    assert K[2, 1, 0, 3, 1, 0] == 0 and K[2, 1, 0, 2, 0, 0] == 0 and K[2, 1, 0, 2, 1, 1] == 0
    assert np.count_nonzero(K) == 5 * 3 * 2


@pytest.mark.parametrize("bad", [dict(sigma_w2=-1.0), dict(sigma_c2=0.0), dict(n_in=0), dict(param="mup"),
                                 dict(lr_c=0, lr_f=0, lr_w=0), dict(lr_w=-0.1), dict(sigma_f2=float("nan"))])
def test_bad_model_values_raise_usage_error(bad: dict) -> None:
    with pytest.raises(UsageError):
        GaussianSpec(**bad)


def test_bad_lags_and_eps() -> None:
    with pytest.raises(UsageError):
        weights(GaussianSpec(), 0)
    with pytest.raises(UsageError):
        summarize(GaussianSpec(sigma_w2=0.5), eps=1.5)


def test_evaluate_rejects_unbound_symbols() -> None:
    import sympy as sp

    with pytest.raises(ValueError):
        evaluate(sp.Symbol("mystery") * 2, GaussianSpec(), 3)


def test_a_subnormal_multiplier_is_refused_as_underflow_and_kept_on_request() -> None:
    """The corner Hypothesis found (lr_c = 2.2e-313, lr_f = 0, q = 1): lambda_0 is subnormal in float64."""
    spec = GaussianSpec(sigma_w2=1.0, lr_c=2.2250738585e-313, lr_f=0.0, lr_w=1.0)
    with pytest.raises(NumericalRangeError, match="underflow"):
        weights(spec, 4)
    kept = weights(spec, 4, underflow="keep")
    assert kept[0] > 0 and np.all(np.diff(kept) > 0)
