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
from linrnn.verify import reference
from linrnn.verify.ntk import empirical_lag_ntk, gram, lag_ntk_and_impulse, split_point_sum
from linrnn.verify.sample import RNNDraw, impulse_response, krylov_vectors, sample_rnn

SIGMAS = {"sigma_w2": 0.8, "sigma_f2": 1.3, "sigma_c2": 0.7}
LR = (0.5, 2.0, 1.5)


def _spec(W, F, C, *, param="ntk", sigma_w2=1.0, sigma_f2=1.0, sigma_c2=1.0, lr=(1.0, 1.0, 1.0)) -> ModelSpec:
    return ModelSpec(param=param, sigma_w2=sigma_w2, sigma_f2=sigma_f2, sigma_c2=sigma_c2, n_in=np.shape(F)[-1],
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
    spec = ModelSpec(param=param, n_in=n_in, n_out=n_out, lr_c=lr[0], lr_f=lr[1], lr_w=lr[2], **{**SIGMAS, **kw})
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
    spec = ModelSpec(param="standard", n_in=2, n_out=3, lr_c=LR[0], lr_f=LR[1], lr_w=LR[2])
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
    a_c, a_f, a_w = ModelSpec(n_in=nx, **SIGMAS).scales(n)
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
    d = sample_rnn(get_backend("numpy", seed=seed), ModelSpec(n_in=n_in, n_out=n_out), n)
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
    d = sample_rnn(be, ModelSpec(n_in=2, n_out=2, lr_c=LR[0], lr_f=LR[1], lr_w=LR[2]), 64, batch=2)
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
