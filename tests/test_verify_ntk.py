"""The exact empirical lag NTK against naive references (no statistics here).

References: central finite differences of the impulse response computed with
explicit matrix powers, a dense Jacobian built from the chain rule, and an
emulated reverse-mode autodiff Jacobian; all on tiny sizes with n_x = n_y = 2 in
both parameterizations.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import linrnn.verify
from linrnn.core.errors import UsageError
from linrnn.verify.backend import get_backend
from linrnn.core.spec import ModelSpec
from linrnn.families.gaussian import GaussianSpec
from linrnn.verify import reference
from linrnn.verify.ntk import (
    _exact_cheaper,
    choose_tilt,
    empirical_lag_ntk,
    gram,
    lag_ntk_and_impulse,
    split_point_sum,
    split_point_sum_exact,
    split_point_sum_fft,
)
from linrnn.verify.sample import RNNDraw, impulse_response, krylov_vectors, sample_rnn

SIGMAS = {"sigma_w2": 0.8, "sigma_f2": 1.3, "sigma_c2": 0.7}
LR = (0.5, 2.0, 1.5)


def _spec(W, F, C, *, param="ntk", sigma_w2=1.0, sigma_f2=1.0, sigma_c2=1.0, lr=(1.0, 1.0, 1.0)) -> ModelSpec:
    return GaussianSpec(param=param, sigma_w2=sigma_w2, sigma_f2=sigma_f2, sigma_c2=sigma_c2, n_in=np.shape(F)[-1],
                     n_out=np.shape(C)[-2], lr_c=lr[0], lr_f=lr[1], lr_w=lr[2])


def _as_draw(W, F, C, **kw) -> RNNDraw:
    return RNNDraw(W, F, C, _spec(W, F, C, **kw))


def ntk_of(W, F, C, lags, **kw):
    """empirical_lag_ntk of raw (W, F, C) in the spec given by keywords."""
    return empirical_lag_ntk(_as_draw(W, F, C, **kw), lags)


def finite_difference_lag_ntk(W, F, C, lags, **kw):
    return reference.finite_difference_lag_ntk(_as_draw(W, F, C, **kw), lags)


def dense_jacobian_lag_ntk(W, F, C, lags, **kw):
    return reference.dense_jacobian_lag_ntk(_as_draw(W, F, C, **kw), lags)


def autodiff_lag_ntk(W, F, C, lags, **kw):
    return reference.autodiff_lag_ntk(_as_draw(W, F, C, **kw), lags)


def dense_jacobian(W, F, C, lags, **kw):
    return reference.dense_jacobian(_as_draw(W, F, C, **kw), lags)


def _draw(param: str, n: int = 5, n_in: int = 2, n_out: int = 2, seed: int = 1, lr=(1.0, 1.0, 1.0), **kw: float):
    spec = GaussianSpec(param=param, n_in=n_in, n_out=n_out, lr_c=lr[0], lr_f=lr[1], lr_w=lr[2], **{**SIGMAS, **kw})
    return sample_rnn(get_backend("numpy", seed=seed), spec, n)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_public_name() -> None:
    assert linrnn.verify.empirical_lag_ntk is empirical_lag_ntk


@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_matches_finite_differences(param: str) -> None:
    d = _draw(param)
    kw = {"param": param, **SIGMAS, "lr": LR}
    fast = ntk_of(d.W, d.F, d.C, 5, **kw)
    fd = finite_difference_lag_ntk(d.W, d.F, d.C, 5, **kw)
    assert fast.shape == (5, 2, 2, 5, 2, 2)
    # central differences with h = 1e-5: truncation O(h^2), rounding O(eps / h) ~ 1e-11
    assert _rel(fast, fd) < 1e-8
    # negative control: the same comparison sees a W-part that is off by 1%
    wrong = ntk_of(d.W, d.F, d.C, 5, **{**kw, "lr": (LR[0], LR[1], 1.01 * LR[2])})
    assert _rel(wrong, fd) > 1e-4


@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_matches_dense_and_autodiff_jacobians(param: str) -> None:
    d = _draw(param, n=7, n_in=2, n_out=3, seed=4)
    kw = {"param": param, **SIGMAS, "lr": LR}
    fast = ntk_of(d.W, d.F, d.C, 6, **kw)
    assert _rel(fast, dense_jacobian_lag_ntk(d.W, d.F, d.C, 6, **kw)) < 1e-12
    assert _rel(fast, autodiff_lag_ntk(d.W, d.F, d.C, 6, **kw)) < 1e-12


def test_dense_jacobian_matches_finite_differences() -> None:
    """The references agree with each other, so they are not all wrong in the same way."""
    d = _draw("ntk", n=4)
    kw = {"param": "ntk", **SIGMAS}
    a = dense_jacobian_lag_ntk(d.W, d.F, d.C, 4, **kw)
    b = finite_difference_lag_ntk(d.W, d.F, d.C, 4, **kw)
    assert _rel(a, b) < 1e-8
    J = dense_jacobian(d.W, d.F, d.C, 4, **kw)
    assert J.shape == (4 * 2 * 2, 2 * 4 + 4 * 2 + 16)


@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_impulse_response(param: str) -> None:
    d = _draw(param, n=6, n_in=2, n_out=3)
    L = impulse_response(d, 5)
    ref = reference.impulse_response_powers(d, 5)
    assert L.shape == (5, 3, 2)
    assert np.allclose(L, ref, rtol=1e-12, atol=1e-14)
    _, L2 = lag_ntk_and_impulse(d, 5)
    assert np.allclose(L2, ref, rtol=1e-12, atol=1e-14)


def test_batched_equals_single_draws() -> None:
    spec = GaussianSpec(param="standard", n_in=2, n_out=3, lr_c=LR[0], lr_f=LR[1], lr_w=LR[2])
    d = sample_rnn(get_backend("numpy", seed=2), spec, 6, batch=3)
    theta, L = lag_ntk_and_impulse(d, 4)
    for r in range(3):
        single = ntk_of(d.W[r], d.F[r], d.C[r], 4, param="standard", lr=LR)
        assert np.allclose(theta[r], single, rtol=1e-13, atol=1e-15)


def test_split_point_sum_against_loops() -> None:
    rng = np.random.default_rng(0)
    L, ny, nx = 5, 2, 3
    Gu = rng.standard_normal((L, ny, L, ny))
    Gv = rng.standard_normal((L, nx, L, nx))
    fast = split_point_sum(Gu, Gv)
    slow = np.zeros((L, ny, nx, L, ny, nx))
    for i in range(L):
        for j in range(L):
            for k in range(i):
                for l_ in range(j):
                    slow[i, :, :, j, :, :] += np.einsum("ac,bd->abcd", Gu[k, :, l_, :], Gv[i - 1 - k, :, j - 1 - l_, :])
    assert np.allclose(fast, slow, rtol=1e-13, atol=1e-13)


def test_lags_one_and_partial_rates() -> None:
    d = _draw("ntk")
    t1 = ntk_of(d.W, d.F, d.C, 1, **SIGMAS)
    assert t1.shape == (1, 2, 2, 1, 2, 2)
    # only eta_C: Theta = alpha_C^2 delta_aa' <f_b, f_b'>, exactly zero across outputs
    tc = ntk_of(d.W, d.F, d.C, 4, **SIGMAS, lr=(1.0, 0.0, 0.0))
    assert np.all(tc[:, 0, :, :, 1, :] == 0)
    # the three parts add up
    parts = [ntk_of(d.W, d.F, d.C, 4, **SIGMAS, lr=e) for e in ((1, 0, 0), (0, 1, 0), (0, 0, 1))]
    assert np.allclose(sum(parts), ntk_of(d.W, d.F, d.C, 4, **SIGMAS), rtol=1e-13)


def test_parameterizations_are_related() -> None:
    """Same effective matrices: Theta_standard(eta) = Theta_ntk(eta_P / (n alpha_P^2)), exactly."""
    n, nx = 6, 2
    d = _draw("ntk", n=n, n_in=nx)
    a_c, a_f, a_w = GaussianSpec(n_in=nx, **SIGMAS).scales(n)
    std = ntk_of(a_w * d.W, a_f * d.F, a_c * d.C, 5, param="standard", lr=LR)
    lr_ntk = (LR[0] / (n * a_c**2), LR[1] / (n * a_f**2), LR[2] / (n * a_w**2))
    ntk = ntk_of(d.W, d.F, d.C, 5, param="ntk", **SIGMAS, lr=lr_ntk)
    assert _rel(std, ntk) < 1e-12


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 6),
    n_in=st.integers(1, 2),
    n_out=st.integers(1, 2),
    lags=st.integers(1, 5),
    q=st.floats(0.2, 3.0),
    sc=st.floats(0.2, 3.0),
    sf=st.floats(0.2, 3.0),
    seed=st.integers(0, 2**16),
)
def test_invariants(n: int, n_in: int, n_out: int, lags: int, q: float, sc: float, sf: float, seed: int) -> None:
    """Symmetric, positive semi-definite, and (ntk) Theta_ij(q) = q^((i+j)/2) Theta_ij(1) sigma_C^2 sigma_F^2."""
    d = sample_rnn(get_backend("numpy", seed=seed), GaussianSpec(n_in=n_in, n_out=n_out), n)
    theta = ntk_of(d.W, d.F, d.C, lags, sigma_w2=q, sigma_c2=sc, sigma_f2=sf, lr=LR)
    M = lags * n_in * n_out
    mat = theta.reshape(M, M)
    scale = max(float(np.max(np.abs(mat))), 1e-300)
    assert np.allclose(mat, mat.T, rtol=0, atol=1e-12 * scale)
    assert np.linalg.eigvalsh((mat + mat.T) / 2).min() >= -1e-10 * scale
    base = ntk_of(d.W, d.F, d.C, lags, lr=LR)
    j = np.arange(lags)
    factor = (q ** ((j[:, None] + j[None, :]) / 2) * sc * sf)[:, None, None, :, None, None]
    assert np.allclose(theta, base * factor, rtol=1e-9, atol=1e-12 * scale)


def test_float32_path() -> None:
    be = get_backend("numpy", seed=3, dtype="float32")
    d = sample_rnn(be, GaussianSpec(n_in=2, n_out=2, lr_c=LR[0], lr_f=LR[1], lr_w=LR[2]), 64, batch=2)
    theta, L = lag_ntk_and_impulse(d, 6)
    assert theta.dtype == np.float32 and L.dtype == np.float32
    ref = ntk_of(d.W[0].astype(np.float64), d.F[0].astype(np.float64), d.C[0].astype(np.float64), 6, lr=LR)
    assert _rel(theta[0].astype(np.float64), ref) < 1e-4


def test_krylov_vectors_leave_w_unchanged() -> None:
    d = _draw("ntk", n=8)
    W0 = d.W.copy()
    V, U = krylov_vectors(d, 4)
    assert np.array_equal(d.W, W0)
    assert V.shape == (4, 2, 8) and U.shape == (4, 2, 8)
    Gv = gram(V)
    assert np.allclose(Gv[1, 0, 2, 1], V[1, 0] @ V[2, 1])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"W": np.zeros((3, 4))}, "square"),
        ({"F": np.zeros((5, 2))}, "n_x"),
        ({"C": np.zeros((2, 5))}, "n_y"),
        ({"W": np.zeros(4)}, "matrices"),
    ],
)
def test_shape_errors(change: dict, message: str) -> None:
    args = {"W": np.zeros((4, 4)), "F": np.zeros((4, 2)), "C": np.zeros((3, 4)), **change}
    with pytest.raises(UsageError, match=message):
        ntk_of(args["W"], args["F"], args["C"], 3)


@pytest.mark.parametrize(
    "kw",
    [{"lags": 0}, {"param": "mup"}, {"lr": (1.0, -1.0, 1.0)}, {"lr": (0.0, 0.0, 0.0)},
     {"sigma_w2": 0.0}, {"sigma_c2": float("nan")}],
)
def test_value_errors(kw: dict) -> None:
    lags = kw.pop("lags", 3)
    with pytest.raises(UsageError):
        ntk_of(np.eye(4), np.ones((4, 1)), np.ones((1, 4)), lags, **kw)


# ---- the W-part at long horizons: the tilted FFT convolution against the exact sum ----

def _grams(q: float, n: int, lags: int, n_in: int = 1, n_out: int = 1, seed: int = 0, batch: int | None = None):
    spec = GaussianSpec(sigma_w2=q, n_in=n_in, n_out=n_out)
    V, U = krylov_vectors(sample_rnn(get_backend("numpy", seed=seed), spec, n, batch=batch), lags)
    return gram(U), gram(V)


#: Diagonals below this carry no relative accuracy in float64 (smallest normal / eps: the Grams
#: behind them have underflowed, q^i at long lags); their rows are outside the comparison.
REPRESENTABLE = float(np.finfo(np.float64).smallest_normal / np.finfo(np.float64).eps)


def _relative_to_diagonal(got: np.ndarray, ref: np.ndarray) -> float:
    """max |got - ref| / sqrt(ref_ii ref_jj) over the entries whose two diagonals are representable."""
    K = int(np.sqrt(ref.size))
    diag = np.abs(np.diagonal(ref.reshape(K, K)))
    d = np.sqrt(diag)
    norm = d[:, None] * d[None, :]
    rows = diag >= REPRESENTABLE
    keep = rows[:, None] & rows[None, :]
    assert keep.sum() > K  # the comparison covers more than one row
    return float(np.max(np.abs(got - ref).reshape(K, K)[keep] / norm[keep]))


@pytest.mark.parametrize("q", [0.3, 0.6, 1.0, 1.5])
@pytest.mark.parametrize("lags, n, n_in, n_out", [(96, 64, 1, 1), (200, 512, 1, 1), (64, 24, 2, 3)])
def test_fft_route_matches_exact_sum(q: float, lags: int, n: int, n_in: int, n_out: int) -> None:
    Gu, Gv = _grams(q, n, lags, n_in, n_out, seed=lags + n)
    exact = split_point_sum_exact(Gu, Gv)
    fft, estimate = split_point_sum_fft(Gu, Gv)
    err = _relative_to_diagonal(fft, exact)
    assert err < 1e-12
    assert float(estimate) < 5e-13  # the a-posteriori estimate lets ``auto`` keep it
    assert np.array_equal(split_point_sum(Gu, Gv, "exact"), exact)
    # auto takes the FFT here, and the full lag NTK agrees with the exact one to the same accuracy
    assert not _exact_cheaper(lags, n_in, n_out)
    assert _relative_to_diagonal(split_point_sum(Gu, Gv), exact) < 1e-12


def test_untilted_fft_is_caught() -> None:
    """Negative control: without the tilt (rho = 1) the convolution loses the decaying entries,
    the comparison sees it, and the estimate says so, so ``auto`` would not keep it."""
    Gu, Gv = _grams(0.5, 64, 128)
    exact = split_point_sum_exact(Gu, Gv)
    plain, estimate = split_point_sum_fft(Gu, Gv, log_rho=0.0)
    assert _relative_to_diagonal(plain, exact) > 1e-6
    assert float(estimate) > 1e-6
    # a tilt from the data: log rho near log sqrt(q)
    g = float(choose_tilt(Gu, Gv))
    assert abs(g - 0.5 * np.log(0.5)) < 0.15


def test_auto_falls_back_to_exact_where_the_estimate_fails() -> None:
    """Grams that are not positive semi-definite have no usable diagonal: ``auto`` gives the exact sum, per draw."""
    rng = np.random.default_rng(5)
    L = 80
    good_u, good_v = _grams(0.8, 32, L, batch=2)
    bad_u = good_u.copy()
    bad_u[1] = rng.standard_normal((L, 1, L, 1))  # draw 1: random signs
    exact = split_point_sum_exact(bad_u, good_v)
    fft, estimate = split_point_sum_fft(bad_u, good_v)
    assert estimate[0] < 1e-12 and not estimate[1] < 1e-12
    auto = split_point_sum(bad_u, good_v)
    assert np.array_equal(auto[1], exact[1])  # the failing draw: exact
    assert np.array_equal(auto[0], fft[0])  # the other keeps its FFT result
    with pytest.raises(UsageError, match="split-point method"):
        split_point_sum(good_u, good_v, "direct")


def test_switch_takes_exact_for_short_horizons_and_many_outputs() -> None:
    assert _exact_cheaper(8, 1, 1) and _exact_cheaper(16, 4, 4)
    assert not _exact_cheaper(128, 1, 1) and not _exact_cheaper(128, 4, 4)
    Gu, Gv = _grams(0.9, 16, 8, 2, 2)
    assert np.array_equal(split_point_sum(Gu, Gv), split_point_sum_exact(Gu, Gv))


def test_exact_sum_in_blocks_equals_one_block() -> None:
    Gu, Gv = _grams(1.2, 16, 40, 2, 1)
    one = split_point_sum_exact(Gu, Gv, block_bytes=2**40)
    many = split_point_sum_exact(Gu, Gv, block_bytes=1)  # one split point per block
    assert _relative_to_diagonal(many, one) < 1e-14  # the same products, summed in another order


def test_reference_rows_match_exact_sum() -> None:
    """The direct row reference used at L = 1024 agrees with the exact Toeplitz sum where both run."""
    Gu, Gv = _grams(0.7, 32, 60)
    exact = split_point_sum_exact(Gu, Gv).reshape(60, 60)
    rows, diag = reference.split_point_rows(Gu[:, 0, :, 0], Gv[:, 0, :, 0], [1, 7, 59])
    assert np.allclose(rows, exact[[1, 7, 59]], rtol=1e-13, atol=0)
    assert np.allclose(diag, np.diagonal(exact), rtol=1e-13, atol=0)


@pytest.mark.slow
@pytest.mark.parametrize("q", [0.3, 1.0, 1.5])
def test_fft_route_at_lags_1024(q: float) -> None:
    """L = 1024 (n = 64, so the Krylov vectors are cheap): rows 1, 2, 3, 300, 512 and 1023 (those
    that are representable) and the whole diagonal against the direct reference, relative to
    sqrt(T_ii T_jj), within 1e-12; ``auto`` takes the FFT (the exact sum would take minutes)."""
    L = 1024
    Gu, Gv = _grams(q, 64, L, seed=11)
    assert float(split_point_sum_fft(Gu, Gv)[1]) < 5e-13
    got = split_point_sum(Gu, Gv).reshape(L, L)
    rows = [1, 2, 3, 300, 512, L - 1]
    ref_rows, diag = reference.split_point_rows(Gu[:, 0, :, 0], Gv[:, 0, :, 0], rows)
    d = np.sqrt(np.abs(diag))
    keep = diag >= REPRESENTABLE
    assert keep.sum() > (550 if q < 1 else L - 2)  # q = 0.3: the Grams underflow beyond lag 590 or so
    checked = 0
    for r, i in enumerate(rows):
        if not keep[i]:
            continue
        norm = d[i] * d
        assert float(np.max(np.abs(got[i] - ref_rows[r])[keep] / norm[keep])) < 1e-12
        checked += 1
    assert checked >= 4
    assert float(np.max(np.abs(np.diagonal(got) - diag)[keep] / diag[keep])) < 1e-12
