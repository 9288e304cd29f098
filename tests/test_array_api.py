"""The verify array paths under the Array API standard alone (``array_api_strict``, 2023.12).

Every test runs once on NumPy and once on the strict reference namespace, which
rejects anything outside the standard (``out=``, ``einsum``, integer-array indexing,
NumPy-only methods, mixed-kind promotion, data-dependent shapes). The strict backend
draws with NumPy's generator of the same seed and computes with the same NumPy
kernels underneath, so its results must equal the NumPy ones; results are also
checked to stay in the strict namespace (no silent NumPy detour).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

array_api_strict = pytest.importorskip("array_api_strict")

from linrnn.families.gaussian import GaussianSpec
from linrnn.verify.backend import Backend, array_namespace, get_backend  # noqa: E402
from linrnn.verify.montecarlo import estimate_width  # noqa: E402
from linrnn.verify.ntk import empirical_lag_ntk, lag_ntk_and_impulse  # noqa: E402
from linrnn.verify.sample import RNNDraw, impulse_response, krylov_vectors, sample_rnn  # noqa: E402
from linrnn.verify.scnn import min_norm_solution, scnn_flow, scnn_gd, scnn_trajectory  # noqa: E402
from linrnn.verify.teachers import decay_teacher, make_dataset  # noqa: E402
from linrnn.verify.train import (  # noqa: E402
    impulse_loss_and_grad,
    lagged_correlations,
    rnn_impulse,
    rnn_loss_and_grads,
    train_rnn,
)

KINDS = ("numpy", "array_api_strict")
#: Same random numbers and the same kernels: equal up to layout-dependent rounding, if any.
RTOL = 1e-14


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """A backend kind; under ``array_api_strict`` the 2023.12 standard without data-dependent shapes."""
    if request.param == "array_api_strict":
        with array_api_strict.ArrayAPIStrictFlags(
            api_version="2023.12", boolean_indexing=False, data_dependent_shapes=False
        ):
            yield request.param
    else:
        yield request.param


def backends(kind: str, seed: int = 0, dtype: str = "float64") -> tuple[Backend, Backend]:
    """(the backend under test, the NumPy reference) with the same seed."""
    return get_backend(kind, seed=seed, dtype=dtype), get_backend("numpy", seed=seed, dtype=dtype)


def same(be: Backend, got: Any, ref: Any, rtol: float = RTOL) -> None:
    """``got`` (an array of ``be``) lives in ``be``'s namespace and equals ``ref`` to ``rtol``."""
    if be.name == "array_api_strict":
        assert array_namespace(got) is array_api_strict
    got, ref = be.to_numpy(got), np.asarray(ref)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    assert float(np.max(np.abs(got - ref), initial=0.0)) <= rtol * scale


def test_backend_kind_is_for_tests_only() -> None:
    from linrnn.verify.backend import BACKENDS

    assert "array_api_strict" not in BACKENDS
    be = get_backend("array_api_strict", seed=1)
    assert be.describe()["backend"] == "array_api_strict" and be.itemsize == 8
    x = be.normal((3, 2))
    assert array_namespace(x) is array_api_strict
    assert np.array_equal(be.to_numpy(x), get_backend("numpy", seed=1).normal((3, 2)))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_sampling_krylov_and_impulse(kind: str, dtype: str) -> None:
    be, ref = backends(kind, seed=3, dtype=dtype)
    spec = GaussianSpec(param="ntk", sigma_w2=1.3, n_in=2, n_out=3)
    for batch in (None, 3):
        d = sample_rnn(be, spec, 20, batch=batch)
        r = sample_rnn(ref, spec, 20, batch=batch)
        for name in "WFC":
            same(be, getattr(d, name), getattr(r, name), rtol=0.0)
        V, U = krylov_vectors(d, 5)
        Vr, Ur = krylov_vectors(r, 5)
        same(be, V, Vr)
        same(be, U, Ur)
        same(be, impulse_response(d, 5), impulse_response(r, 5))


@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_empirical_lag_ntk(kind: str, param: str) -> None:
    be, ref = backends(kind, seed=4)
    spec = GaussianSpec(param=param, n_in=2, n_out=2, lr_c=0.5, lr_f=2.0, lr_w=1.5)
    d, r = sample_rnn(be, spec, 16, batch=2), sample_rnn(ref, spec, 16, batch=2)
    theta, L = lag_ntk_and_impulse(d, 5)
    theta_r, L_r = lag_ntk_and_impulse(r, 5)
    same(be, theta, theta_r)
    same(be, L, L_r)
    for lags in (1, 4):
        one = RNNDraw(d.W[0, ...], d.F[0, ...], d.C[0, ...], spec)
        one_r = RNNDraw(r.W[0, ...], r.F[0, ...], r.C[0, ...], spec)
        same(be, empirical_lag_ntk(one, lags), empirical_lag_ntk(one_r, lags))


@pytest.mark.parametrize("loss", ["all", "last"])
@pytest.mark.parametrize("inputs", ["white", "ar1"])
def test_correlations_gradients_and_training(kind: str, loss: str, inputs: str) -> None:
    be, ref = backends(kind, seed=7)
    teacher = decay_teacher(6, 0.6, n_x=2, n_y=2)
    x, y = make_dataset(teacher, 12, inputs=inputs, phi=0.5, noise_std=0.1, backend=be)
    xr, yr = make_dataset(teacher, 12, inputs=inputs, phi=0.5, noise_std=0.1, backend=ref)
    same(be, x, xr)
    same(be, y, yr)
    corr, corr_r = lagged_correlations(x, y, None, loss, be), lagged_correlations(xr, yr, None, loss, ref)
    same(be, corr.rxx, corr_r.rxx)
    same(be, corr.ryx, corr_r.ryx)
    same(be, corr.rxx_lags, corr_r.rxx_lags)
    same(be, corr.ryx_lags, corr_r.ryx_lags)
    assert corr.ryy == pytest.approx(corr_r.ryy, rel=RTOL)
    drawn = GaussianSpec(param="standard", sigma_w2=0.8, n_in=2, n_out=2)
    d, r = sample_rnn(be, drawn, 10), sample_rnn(ref, drawn, 10)
    for param in ("ntk", "standard"):
        spec = drawn.replace(param=param, lr_c=0.5, lr_f=2.0, lr_w=1.5)
        dp, rp = RNNDraw(d.W, d.F, d.C, spec), RNNDraw(r.W, r.F, r.C, spec)
        value, *grads = rnn_loss_and_grads(dp, corr)
        value_r, *grads_r = rnn_loss_and_grads(rp, corr_r)
        assert value == pytest.approx(value_r, rel=RTOL)
        for g, g_r in zip(grads, grads_r):
            same(be, g, g_r)
        L0, L0_r = rnn_impulse(dp, 6, backend=be), rnn_impulse(rp, 6, backend=ref)
        same(be, L0, L0_r)
        same(be, impulse_loss_and_grad(L0, corr)[1], impulse_loss_and_grad(L0_r, corr_r)[1])
        for steps in (1, 3):
            res = train_rnn(dp, None, None, corr=corr, loss=loss, lr=0.05, steps=steps)
            res_r = train_rnn(rp, None, None, corr=corr_r, loss=loss, lr=0.05, steps=steps)
            for name in ("C", "F", "W", "loss", "impulse"):
                np.testing.assert_allclose(getattr(res, name), getattr(res_r, name), rtol=RTOL, atol=0)
    # the SCNN closed forms and the iterated gradient descent
    lam = np.linspace(1.0, 0.2, 6)
    L0, L0_r = rnn_impulse(d, 6, backend=be), rnn_impulse(r, 6, backend=ref)
    for fn, kw in ((scnn_trajectory, {"lr": 0.02, "steps": 4}), (scnn_gd, {"lr": 0.02, "steps": 4}),
                   (min_norm_solution, {})):
        np.testing.assert_allclose(fn(L0, corr, lam, **kw), fn(L0_r, corr_r, lam, **kw), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(scnn_flow(L0, corr, lam, [0.0, 2.0]), scnn_flow(L0_r, corr_r, lam, [0.0, 2.0]),
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("lags", [None, 3])
def test_long_sequence_path_of_the_correlations(kind: str, lags: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lag-by-lag products (used for long sequences) equal the time-by-time matrix products."""
    import linrnn.verify.train as train

    be, _ = backends(kind, seed=8)
    x, y = make_dataset(decay_teacher(7, 0.7, n_x=2, n_y=3), 9, inputs="ar1", phi=0.3, noise_std=0.2, backend=be)
    direct = lagged_correlations(x, y, lags, "all", be)
    monkeypatch.setattr(train, "LAG_SUMS_MAX_ENTRIES", 0)
    by_lag = lagged_correlations(x, y, lags, "all", be)
    same(be, by_lag.rxx, be.to_numpy(direct.rxx), rtol=1e-14)
    same(be, by_lag.ryx, be.to_numpy(direct.ryx), rtol=1e-14)


def test_divergence_under_the_standard(kind: str) -> None:
    """A diverging run overflows (no errstate in the standard) and is still detected."""
    be, _ = backends(kind, seed=2)
    x, y = make_dataset(decay_teacher(5, 0.5), 8, backend=be)
    d = sample_rnn(be, GaussianSpec(), 8)
    res = train_rnn(d, x, y, lr=1e3, steps=50, backend=be)
    assert res.diverged and np.all(np.isfinite(res.loss))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_monte_carlo_statistics(kind: str, dtype: str) -> None:
    be, ref = backends(kind, seed=5, dtype=dtype)
    theory = np.ones((3, 2, 2, 3, 2, 2))
    spec = GaussianSpec(n_in=2, n_out=2, lr_w=0.5)
    kw = {"lags": 3, "replicas": 5, "theories": {"t": theory}, "keep_first": True}
    est, est_r = estimate_width(be, spec, 12, **kw), estimate_width(ref, spec, 12, **kw)
    assert est.chunk == est_r.chunk == 5
    for name in ("ntk_mean", "ntk_stderr", "nngp_mean", "nngp_stderr"):
        np.testing.assert_allclose(getattr(est, name), getattr(est_r, name), rtol=1e-13, atol=0)
    assert est.rel_error_mean["t"] == pytest.approx(est_r.rel_error_mean["t"], rel=1e-13)
    assert est.first_draw is not None and est_r.first_draw is not None
    for name, a in est.first_draw.items():
        assert isinstance(a, np.ndarray)
        np.testing.assert_array_equal(a, est_r.first_draw[name])


@pytest.mark.parametrize("method", ["fft", "auto", "exact"])
def test_split_point_sum_routes(kind: str, method: str) -> None:
    """Both routes of the W-part (the tilted FFT uses the namespace's fft extension) under the standard."""
    from linrnn.verify.ntk import gram, split_point_sum, split_point_sum_fft

    be, ref = backends(kind, seed=6)
    spec = GaussianSpec(sigma_w2=0.7, n_in=2, n_out=1)
    d, r = sample_rnn(be, spec, 24, batch=2), sample_rnn(ref, spec, 24, batch=2)
    (V, U), (Vr, Ur) = krylov_vectors(d, 48), krylov_vectors(r, 48)
    got = split_point_sum(gram(U), gram(V), method)
    same(be, got, split_point_sum(gram(Ur), gram(Vr), method), rtol=1e-13)
    if method == "fft":
        _, estimate = split_point_sum_fft(gram(U), gram(V))
        assert estimate.shape == (2,) and float(be.to_numpy(estimate).max()) < 1e-12
