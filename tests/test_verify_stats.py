"""The statistics of verify/stats.py on synthetic data with known answers.

Calibration tests simulate many null families with fixed seeds and check the
rejection rate against the nominal level with a binomial allowance; every test of
acceptance has a rejection (negative control) beside it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linrnn.verify.stats import Moments, entry_test, holm_rejections, loglog_fit, richardson, t_isf, t_sf


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(1, 7), min_size=1, max_size=6), seed=st.integers(0, 2**16))
def test_moments_merge_equals_batch(sizes: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((sum(sizes), 3)) * 5 + 100
    acc = Moments()
    start = 0
    for s in sizes:
        acc.add(data[start : start + s])
        start += s
    assert acc.count == data.shape[0]
    assert np.allclose(acc.mean, data.mean(axis=0), rtol=1e-12)
    if data.shape[0] > 1:
        assert np.allclose(acc.variance, data.var(axis=0, ddof=1), rtol=1e-9)
        assert np.allclose(acc.stderr, data.std(axis=0, ddof=1) / math.sqrt(data.shape[0]), rtol=1e-9)


def test_moments_needs_two_draws() -> None:
    acc = Moments()
    acc.add(np.ones((1, 2)))
    with pytest.raises(ValueError):
        _ = acc.variance


def test_t_distribution_known_values() -> None:
    # tabulated quantiles: t_{0.975, 10} = 2.228138852, z_{0.975} = 1.959963985, t_{0.995, 3} = 5.840909309
    assert t_isf(0.025, 10) == pytest.approx(2.228138852, rel=1e-8)
    assert t_isf(0.025, math.inf) == pytest.approx(1.959963985, rel=1e-8)
    assert t_isf(0.005, 3) == pytest.approx(5.840909309, rel=1e-8)
    assert t_sf(0.0, 7) == pytest.approx(0.5)
    assert t_sf(-1.0, 7) == pytest.approx(1 - t_sf(1.0, 7))
    # far tails stay accurate (normal tail at z = 10 is 7.62e-24)
    assert t_sf(10.0, math.inf) == pytest.approx(7.619853024160527e-24, rel=1e-8)
    assert t_sf(math.inf, 5) == 0.0


def _mp_sf(t: float, dof: float, dps: int = 40) -> float:
    """P(T > t) at high precision: the regularised incomplete beta function (mpmath)."""
    import mpmath

    with mpmath.workdps(dps):
        t = mpmath.mpf(t)
        if math.isinf(dof):
            return float(mpmath.erfc(t / mpmath.sqrt(2)) / 2)
        x = mpmath.mpf(dof) / (dof + t**2)
        tail = mpmath.betainc(mpmath.mpf(dof) / 2, mpmath.mpf(1) / 2, 0, x, regularized=True) / 2
        return float(tail if t >= 0 else 1 - tail)


@pytest.mark.parametrize("dof", [1, 2, 3, 7, 31, 63, 1023, math.inf])
def test_t_tails_match_high_precision(dof: float) -> None:
    # deep tails: Holm / Bonferroni thresholds use p down to ~1e-8 / m
    for t in [-3.0, -0.5, 0.3, 1.0, 2.5, 5.0, 8.0, 12.0, 20.0, 35.0, 300.0]:
        ref = _mp_sf(t, dof)
        if ref > 1e-300:
            assert t_sf(t, dof) == pytest.approx(ref, rel=1e-10, abs=0), t
    for p in [0.4, 0.025, 1e-3, 1e-6, 1e-9, 1e-12, 1e-14]:
        q = t_isf(p, dof)
        # the exact quantile lies within 1e-10 relative of q (sf is decreasing)
        lo, hi = _mp_sf(q * (1 - 1e-10), dof), _mp_sf(q * (1 + 1e-10), dof)
        assert hi <= p <= lo, (p, q)


def _holm_naive(abs_z: np.ndarray, alpha: float, dof: float) -> int:
    p = sorted(2 * t_sf(float(z), dof) for z in abs_z)
    k = 0
    for i, pi in enumerate(p):
        if pi <= alpha / (len(p) - i):
            k += 1
        else:
            break
    return k


@pytest.mark.parametrize("seed", range(5))
def test_holm_matches_naive(seed: int) -> None:
    rng = np.random.default_rng(seed)
    z = np.abs(np.concatenate([rng.standard_normal(30), rng.standard_normal(10) + 4.5]))
    assert holm_rejections(z, 0.01, 40)[0] == _holm_naive(z, 0.01, 40)


def _family(rng: np.random.Generator, shift: float, R: int = 32, M: int = 6) -> tuple:
    """R draws of an M x M symmetric array with iid N(shift, 1) upper-triangle entries."""
    x = rng.standard_normal((R, M, M)) + shift
    x = np.triu(x) + np.triu(x, 1).transpose(0, 2, 1)
    return x.mean(axis=0), x.std(axis=0, ddof=1) / math.sqrt(R)


def test_entry_test_calibration_and_power() -> None:
    """Family-wise false rejections near alpha under the null; a 1.5 sigma_mean-per-draw shift is caught."""
    rng = np.random.default_rng(123)
    alpha, runs = 0.1, 400
    false = sum(not entry_test("t", *_family(rng, 0.0), np.zeros((6, 6)), alpha=alpha, dof=31).passed
                for _ in range(runs))
    # Holm controls the family-wise error at alpha: allow 3 binomial standard deviations above it
    assert false <= runs * alpha + 3 * math.sqrt(runs * alpha * (1 - alpha))
    assert false >= 0.3 * runs * alpha  # and it is not vacuous (never rejecting anything)
    caught = sum(not entry_test("t", *_family(rng, 1.5), np.zeros((6, 6)), alpha=alpha, dof=31).passed
                 for _ in range(50))
    assert caught == 50


def test_entry_test_structural_zeros() -> None:
    est = np.array([[1.0, 0.0], [0.0, 2.0]])
    se = np.array([[0.1, 0.0], [0.0, 0.1]])
    ok = entry_test("s", est, se, np.array([[1.0, 0.0], [0.0, 2.0]]), alpha=1e-3, dof=10)
    assert ok.passed and ok.structural == 1 and ok.m == 2
    bad = entry_test("s", est, se, np.array([[1.0, 1e-9], [1e-9, 2.0]]), alpha=1e-3, dof=10)
    assert not bad.passed and bad.structural_mismatch == 1


def test_richardson_removes_inverse_width_term() -> None:
    a, B = np.array([2.0, -1.0]), np.array([30.0, 7.0])
    est, se = richardson(a + B / 1000, np.array([0.1, 0.1]), 1000, a + B / 500, np.array([0.2, 0.2]), 500)
    assert np.allclose(est, a, rtol=1e-13)
    assert np.allclose(se, np.sqrt((1000 * 0.1) ** 2 + (500 * 0.2) ** 2) / 500)
    # without the companion the O(1/n) term stays (the control)
    raw, _ = richardson(a + B / 1000, np.array([0.1, 0.1]), 1000, None, None, None)
    assert not np.allclose(raw, a, rtol=1e-3)


@pytest.mark.parametrize("inverse", [False, True])
def test_loglog_fit_recovers_rate(inverse: bool) -> None:
    rng = np.random.default_rng(7)
    n = np.array([128, 256, 512, 1024, 2048], dtype=float)
    true = 0.8 * n**-0.5 * (1 + (40 / n if inverse else 0))
    se = 0.02 * true
    vals = true + se * rng.standard_normal(n.size)
    fit = loglog_fit(n, vals, se, expected=-0.5, alpha=1e-3, inverse_width_term=inverse)
    assert fit.passed, fit.summary()
    wrong = loglog_fit(n, vals, se, expected=-1.0, alpha=1e-3, inverse_width_term=inverse)
    assert not wrong.passed
    plateau = loglog_fit(n, 0.7 + vals, se, expected=-0.5, alpha=1e-3, inverse_width_term=inverse)
    assert not plateau.passed


def test_loglog_fit_without_correction_is_biased_by_inverse_term() -> None:
    """The reason for the d/n term: a power law fitted to n^-1/2 (1 + 10/n) misses -1/2 at small n."""
    n = np.array([64, 128, 256, 512, 1024], dtype=float)
    vals = n**-0.5 * (1 + 10 / n)
    se = 0.01 * vals
    assert not loglog_fit(n, vals, se, expected=-0.5, alpha=1e-3).passed
    assert loglog_fit(n, vals, se, expected=-0.5, alpha=1e-3, inverse_width_term=True).passed


def test_entry_test_counts_every_entry_and_never_passes_a_nan() -> None:
    from linrnn.verify.stats import entry_test

    est = np.eye(3).reshape(3, 3)
    se = np.full((3, 3), 0.1)
    se[0, 1] = 0.0  # a structural entry: exact in every draw
    t = entry_test("x", est, se, np.eye(3), alpha=1e-3, dof=50)
    assert t.outcome == "pass" and t.total == 6 and t.m == 5 and t.structural == 1 and t.nonfinite == 0
    assert "5 of 6 entries tested" in t.entries_note and "1 structural" in t.entries_note
    est = est.copy()
    est[1, 2] = np.nan
    t = entry_test("x", est, se, np.eye(3), alpha=1e-3, dof=50)
    assert t.outcome == "error" and t.nonfinite == 1 and not t.passed and t.total == 6
    assert "not finite" in t.entries_note and t.summary()["entries_nonfinite"] == 1
