"""RNN gradient descent from lagged correlations against plain backpropagation through time.

The reference here is written independently of :mod:`linrnn.verify.train`: it runs the
recurrence h_t = W_e h_{t-1} + F_e x_t over every sequence (batched over sequences,
looping over time), backpropagates with explicit adjoints
a_t = C_e^T e_t + W_e^T a_{t+1}, and reads impulse responses by feeding unit impulses
through the same recurrence.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linrnn.core.errors import UsageError
from linrnn.verify.backend import get_backend
from helpers import impulse, loss_and_grads, train
from linrnn.verify.teachers import (
    ar1_inputs,
    convolve,
    decay_teacher,
    make_dataset,
    oscillator_teacher,
    spike_teacher,
    teacher_impulse,
)
from linrnn.verify.train import lagged_correlations

SIGMAS = {"sigma_w2": 1.3, "sigma_f2": 1.6, "sigma_c2": 0.7}
LR_MULT = (0.5, 2.0, 1.5)


# ------------------------------------------------------------------ the reference


def _scales(param, n, n_x, sigma_w2, sigma_f2, sigma_c2):
    if param == "standard":
        return 1.0, 1.0, 1.0
    return math.sqrt(sigma_c2 / n), math.sqrt(sigma_f2 / n_x), math.sqrt(sigma_w2 / n)


def bptt(C, F, W, x, y, *, param, loss, sigma_w2, sigma_f2, sigma_c2):
    """Loss and raw-parameter gradients by forward recurrence and explicit adjoints."""
    N, T, _ = x.shape
    n = W.shape[0]
    ac, af, aw = _scales(param, n, x.shape[2], sigma_w2, sigma_f2, sigma_c2)
    Ce, Fe, We = ac * C, af * F, aw * W
    hs = np.zeros((T + 1, N, n))  # hs[t + 1] = h_t, hs[0] = h_{-1} = 0
    for t in range(T):
        hs[t + 1] = hs[t] @ We.T + x[:, t] @ Fe.T
    yhat = np.einsum("tsi,pi->tsp", hs[1:], Ce)
    res = yhat - np.transpose(y, (1, 0, 2))  # (T, N, n_y)
    if loss == "last":
        res[: T - 1] = 0.0
    value = 0.5 * np.sum(res**2) / N
    e = res / N
    dCe = np.zeros_like(Ce)
    dFe = np.zeros_like(Fe)
    dWe = np.zeros_like(We)
    a = np.zeros((N, n))  # adjoint dLoss/dh_t, rows = sequences
    for t in reversed(range(T)):
        a = a + e[t] @ Ce
        dCe += e[t].T @ hs[t + 1]
        dFe += a.T @ x[:, t]
        dWe += a.T @ hs[t]
        a = a @ We
    return value, ac * dCe, af * dFe, aw * dWe


def impulse_by_recurrence(C, F, W, T, *, param, sigma_w2, sigma_f2, sigma_c2):
    """L_j[:, b] = output at time j for the input x_0 = e_b, x_t = 0 otherwise."""
    n = W.shape[0]
    n_x = F.shape[1]
    ac, af, aw = _scales(param, n, n_x, sigma_w2, sigma_f2, sigma_c2)
    h = af * F  # columns: h_0 for each unit impulse
    out = np.zeros((T, C.shape[0], n_x))
    for j in range(T):
        out[j] = ac * C @ h
        h = aw * W @ h
    return out


def reference_train(C, F, W, x, y, *, param, loss, lr, steps, lr_mult, sigma_w2, sigma_f2, sigma_c2):
    n = W.shape[0]
    T = x.shape[1]
    kw = {"sigma_w2": sigma_w2, "sigma_f2": sigma_f2, "sigma_c2": sigma_c2}
    s = lr if param == "ntk" else lr / n
    C, F, W = C.copy(), F.copy(), W.copy()
    losses, imps = [], []
    for k in range(steps + 1):
        value, dC, dF, dW = bptt(C, F, W, x, y, param=param, loss=loss, **kw)
        losses.append(value)
        imps.append(impulse_by_recurrence(C, F, W, T, param=param, **kw))
        if k < steps:
            C = C - s * lr_mult[0] * dC
            F = F - s * lr_mult[1] * dF
            W = W - s * lr_mult[2] * dW
    return C, F, W, np.array(losses), np.array(imps)


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def init(param, n, n_x, n_y, seed, sigma_w2, sigma_f2, sigma_c2):
    rng = np.random.default_rng(seed)
    C, F, W = rng.standard_normal((n_y, n)), rng.standard_normal((n, n_x)), rng.standard_normal((n, n))
    if param == "standard":
        C, F, W = C * math.sqrt(sigma_c2 / n), F * math.sqrt(sigma_f2 / n_x), W * math.sqrt(sigma_w2 / n)
    return C, F, W


def small_problem(seed=0, N=3, T=5, n_x=2, n_y=2):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, T, n_x)), rng.standard_normal((N, T, n_y))


# ------------------------------------------------------------------ trajectories


@pytest.mark.parametrize("param,lr", [("ntk", 0.08), ("standard", 0.3)])
@pytest.mark.parametrize("loss", ["all", "last"])
def test_trajectory_matches_bptt(param: str, loss: str, lr: float) -> None:
    x, y = small_problem()
    C0, F0, W0 = init(param, 6, 2, 2, 1, **SIGMAS)
    steps = 20
    res = train(
        C0, F0, W0, x, y, param=param, loss=loss, lr=lr, steps=steps, lr_mult=LR_MULT, **SIGMAS
    )
    C, F, W, losses, imps = reference_train(
        C0, F0, W0, x, y, param=param, loss=loss, lr=lr, steps=steps, lr_mult=LR_MULT, **SIGMAS
    )
    assert not res.diverged and res.steps_done == steps
    assert res.impulse.shape == (steps + 1, 5, 2, 2)
    # the run must move: otherwise agreement proves little
    assert rel(imps[-1], imps[0]) > 0.05
    assert losses[-1] < 0.9 * losses[0]
    assert rel(res.impulse, imps) < 1e-10
    for got, want in ((res.C, C), (res.F, F), (res.W, W)):
        assert rel(got, want) < 1e-10
    np.testing.assert_allclose(res.loss, losses, rtol=1e-10)
    # the inputs were not modified in place
    assert np.array_equal(C0, init(param, 6, 2, 2, 1, **SIGMAS)[0])


@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_lr_mult_zero_freezes_a_parameter(param: str) -> None:
    x, y = small_problem(seed=3)
    C0, F0, W0 = init(param, 5, 2, 2, 4, **SIGMAS)
    res = train(C0, F0, W0, x, y, param=param, loss="all", lr=0.05, steps=3, lr_mult=(1.0, 0.0, 1.0), **SIGMAS)
    assert np.array_equal(res.F, F0)
    assert not np.array_equal(res.W, W0)


def test_rnn_impulse_matches_recurrence() -> None:
    C, F, W = init("ntk", 7, 3, 2, 5, **SIGMAS)
    got = impulse(C, F, W, 6, param="ntk", **SIGMAS)
    want = impulse_by_recurrence(C, F, W, 6, param="ntk", **SIGMAS)
    assert rel(got, want) < 1e-13


# ------------------------------------------------------------------ gradients


@pytest.mark.parametrize("param", ["ntk", "standard"])
@pytest.mark.parametrize("loss", ["all", "last"])
def test_gradient_finite_differences(param: str, loss: str) -> None:
    x, y = small_problem(seed=7, N=4, T=6, n_x=2, n_y=3)
    corr = lagged_correlations(x, y, None, loss, get_backend("numpy"))
    C, F, W = init(param, 5, 2, 3, 8, **SIGMAS)
    value, dC, dF, dW = loss_and_grads(C, F, W, corr, param=param, loss=loss, **SIGMAS)
    rng = np.random.default_rng(9)
    h = 1e-5
    params = [C, F, W]
    for i, grad in enumerate((dC, dF, dW)):
        direction = rng.standard_normal(grad.shape)
        plus = [p.copy() for p in params]
        minus = [p.copy() for p in params]
        plus[i] += h * direction
        minus[i] -= h * direction
        fp = loss_and_grads(*plus, corr, param=param, **SIGMAS)[0]
        fm = loss_and_grads(*minus, corr, param=param, **SIGMAS)[0]
        fd = (fp - fm) / (2 * h)
        analytic = float(np.sum(grad * direction))
        assert abs(fd - analytic) <= 1e-6 * max(1.0, abs(analytic)), (i, fd, analytic)
    direct = bptt(C, F, W, x, y, param=param, loss=loss, **SIGMAS)[0]
    assert value == pytest.approx(direct, rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 5),
    T=st.integers(1, 5),
    N=st.integers(1, 3),
    n_x=st.integers(1, 3),
    n_y=st.integers(1, 3),
    param=st.sampled_from(["ntk", "standard"]),
    loss=st.sampled_from(["all", "last"]),
    seed=st.integers(0, 2**16),
)
def test_gradients_equal_bptt_any_shape(n, T, N, n_x, n_y, param, loss, seed) -> None:
    x, y = small_problem(seed=seed, N=N, T=T, n_x=n_x, n_y=n_y)
    C, F, W = init(param, n, n_x, n_y, seed + 1, **SIGMAS)
    corr = lagged_correlations(x, y, None, loss, get_backend("numpy"))
    got = loss_and_grads(C, F, W, corr, param=param, **SIGMAS)
    want = bptt(C, F, W, x, y, param=param, loss=loss, **SIGMAS)
    assert got[0] == pytest.approx(want[0], rel=1e-10, abs=1e-12)
    for g, w in zip(got[1:], want[1:]):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12 * (1 + np.abs(w).max()))


# ------------------------------------------------------------------ correlations


@pytest.mark.parametrize("loss", ["all", "last"])
@pytest.mark.parametrize("lags", [None, 3])
def test_lagged_correlations_naive(loss: str, lags: int | None) -> None:
    x, y = small_problem(seed=11, N=3, T=5, n_x=2, n_y=3)
    N, T, n_x = x.shape
    n_y = y.shape[2]
    K = T if lags is None else lags
    times = range(T) if loss == "all" else [T - 1]
    rxx = np.zeros((K, n_x, K, n_x))
    ryx = np.zeros((K, n_y, n_x))
    for s in range(N):
        for t in times:
            for j in range(min(K, t + 1)):
                ryx[j] += np.outer(y[s, t], x[s, t - j]) / N
                for jj in range(min(K, t + 1)):
                    rxx[j, :, jj, :] += np.outer(x[s, t - j], x[s, t - jj]) / N
    ryy = sum(np.sum(y[s, t] ** 2) for s in range(N) for t in times) / N
    corr = lagged_correlations(x, y, lags, loss, get_backend("numpy"))
    np.testing.assert_allclose(corr.rxx_lags, rxx, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(corr.ryx_lags, ryx, rtol=1e-13, atol=1e-14)
    assert corr.ryy == pytest.approx(ryy, rel=1e-13)
    assert corr.lags == K and corr.dim == K * n_x


def test_correlation_usage_errors() -> None:
    x, y = small_problem()
    be = get_backend("numpy")
    with pytest.raises(UsageError, match="loss"):
        lagged_correlations(x, y, None, "mean", be)
    with pytest.raises(UsageError, match="share N and T"):
        lagged_correlations(x, y[:, :4], None, "all", be)
    with pytest.raises(UsageError, match="lags"):
        lagged_correlations(x, y, 6, "all", be)
    with pytest.raises(UsageError, match="shapes"):
        lagged_correlations(x[0], y, None, "all", be)
    corr = lagged_correlations(x, y, 3, "all", be)
    C, F, W = init("ntk", 4, 2, 2, 0, **SIGMAS)
    with pytest.raises(UsageError, match="every lag"):
        loss_and_grads(C, F, W, corr)
    corr = lagged_correlations(x, y, None, "all", be)
    with pytest.raises(UsageError, match="shape"):
        loss_and_grads(C[:, :3], F, W, corr)
    with pytest.raises(UsageError, match="computed for loss"):
        loss_and_grads(C, F, W, corr, loss="last")
    with pytest.raises(UsageError, match="parameterization"):
        loss_and_grads(C, F, W, corr, param="mup")


def test_train_usage_errors() -> None:
    x, y = small_problem()
    C, F, W = init("ntk", 4, 2, 2, 0, **SIGMAS)
    for kwargs, match in (
        ({"lr": -1.0, "steps": 2}, "lr"),
        ({"lr": float("nan"), "steps": 2}, "lr"),
        ({"lr": 0.1, "steps": 2.5}, "steps"),
        ({"lr": 0.1, "steps": 2, "lr_mult": (0.0, 0.0, 0.0)}, "positive"),
        ({"lr": 0.1, "steps": 2, "sigma_w2": 0.0}, "sigma_w2"),
    ):
        with pytest.raises(UsageError, match=match):
            train(C, F, W, x, y, **kwargs)
    corr = lagged_correlations(x, y, None, "last", get_backend("numpy"))
    with pytest.raises(UsageError, match="computed for loss"):
        train(C, F, W, None, None, loss="all", lr=0.1, steps=1, corr=corr)


def test_precomputed_correlations_give_the_same_run() -> None:
    x, y = small_problem(seed=2)
    C, F, W = init("ntk", 6, 2, 2, 3, **SIGMAS)
    corr = lagged_correlations(x, y, None, "last", get_backend("numpy"))
    a = train(C, F, W, x, y, loss="last", lr=0.05, steps=4, **SIGMAS)
    b = train(C, F, W, None, None, loss="last", lr=0.05, steps=4, corr=corr, **SIGMAS)
    assert np.array_equal(a.impulse, b.impulse) and np.array_equal(a.W, b.W)
    seen = []
    train(C, F, W, x, y, lr=0.05, steps=3, progress=lambda k, v: seen.append((k, v)), record_impulse=False)
    assert [k for k, _ in seen] == [0, 1, 2, 3]


# ------------------------------------------------------------------ divergence


@pytest.mark.parametrize("blowup", [1e8, 1e300])
def test_divergence_is_detected_and_reported(blowup: float) -> None:
    """A too-large step: the run stops, records only finite iterates and says so."""
    x, y = small_problem(seed=5)
    C, F, W = init("ntk", 6, 2, 2, 6, **SIGMAS)
    res = train(C, F, W, x, y, lr=0.2, steps=200, blowup=blowup, **SIGMAS)
    assert res.diverged
    k = res.diverged_step
    assert 2 <= k <= 200
    assert res.steps_done == k - 1
    assert res.loss.shape == (k,) and res.impulse.shape == (k, 5, 2, 2)
    for arr in (res.loss, res.impulse, res.C, res.F, res.W):
        assert np.all(np.isfinite(arr))
    if blowup == 1e300:
        assert not math.isfinite(res.diverged_loss)
    else:
        assert res.diverged_loss > 1e8 * res.loss[0] or not math.isfinite(res.diverged_loss)
    # the parameters returned are those of the last recorded iterate
    again = train(C, F, W, x, y, lr=0.2, steps=res.steps_done, blowup=blowup, **SIGMAS)
    assert not again.diverged and np.array_equal(again.W, res.W)
    with pytest.raises(UsageError, match="diverged at step"):
        res.raise_if_diverged()


def test_stable_run_is_not_flagged() -> None:
    x, y = small_problem(seed=5)
    C, F, W = init("ntk", 6, 2, 2, 6, **SIGMAS)
    res = train(C, F, W, x, y, lr=0.05, steps=50, **SIGMAS)
    assert not res.diverged and res.diverged_step is None
    res.raise_if_diverged()


def test_non_finite_initial_loss_is_a_usage_error() -> None:
    x, y = small_problem(seed=5, T=5)
    C, F, W = init("ntk", 6, 2, 2, 6, **SIGMAS)
    with pytest.raises(UsageError, match="non-finite"):
        train(C, F, W * 1e80, x, y, lr=0.05, steps=1, **SIGMAS)


# ------------------------------------------------------------------ teachers


def test_teacher_profiles() -> None:
    L = decay_teacher(6, 0.5, n_x=2, n_y=3)
    assert L.shape == (6, 3, 2)
    np.testing.assert_allclose(L[:, 0, 0], 0.5 ** np.arange(6) / math.sqrt(2))
    S = spike_teacher(6, 4)
    assert S[4, 0, 0] == 1.0 and np.count_nonzero(S) == 1
    O = oscillator_teacher(8, 0.9, math.pi / 2)
    np.testing.assert_allclose(O[:, 0, 0], [1, 0, -0.81, 0, 0.6561, 0, -0.531441, 0], atol=1e-15)
    np.testing.assert_array_equal(teacher_impulse("decay", 6, rho=0.5, n_x=2, n_y=3), L)
    for call, match in (
        (lambda: spike_teacher(6, 6), "delay"),
        (lambda: teacher_impulse("ramp", 6), "unknown teacher"),
        (lambda: teacher_impulse("decay", 6, r=0.5), "options"),
        (lambda: decay_teacher(0, 0.5), "length"),
        (lambda: decay_teacher(4, 0.5, gain=np.ones((2, 2))), "gain"),
    ):
        with pytest.raises(UsageError, match=match):
            call()


def test_dataset_is_the_convolution_and_seeded() -> None:
    L = oscillator_teacher(7, 0.8, 0.7, n_x=2, n_y=2)
    x, y = make_dataset(L, 4, backend=get_backend("numpy", seed=3))
    want = np.zeros_like(y)
    for t in range(7):
        for j in range(t + 1):
            want[:, t] += x[:, t - j] @ L[j].T
    np.testing.assert_allclose(y, want, rtol=1e-13, atol=1e-14)
    x2, y2 = make_dataset(L, 4, backend=get_backend("numpy", seed=3))
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    _, yn = make_dataset(L, 4, noise_std=0.5, backend=get_backend("numpy", seed=3))
    assert not np.array_equal(yn, y)
    np.testing.assert_array_equal(convolve(L[:3], x, get_backend("numpy"))[:, :3], want[:, :3])
    with pytest.raises(UsageError, match="input process"):
        make_dataset(L, 4, inputs="pink")
    with pytest.raises(UsageError, match="phi"):
        make_dataset(L, 4, inputs="ar1", phi=1.0)


def test_ar1_inputs_statistics() -> None:
    """Unit variance and lag-1 correlation phi, within 5 standard errors."""
    phi = 0.6
    x = ar1_inputs(4000, 20, 1, phi, get_backend("numpy", seed=12))
    n = x.shape[0]
    var_t = x[:, :, 0].var(axis=0)
    assert np.all(np.abs(var_t - 1.0) < 5 * math.sqrt(2.0 / n))
    corr1 = np.mean(x[:, 1:, 0] * x[:, :-1, 0], axis=0)
    assert np.all(np.abs(corr1 - phi) < 5 * math.sqrt((1 + phi**2) / n))


# ------------------------------------------------------------------ GPU


@pytest.mark.gpu
@pytest.mark.parametrize("param", ["ntk", "standard"])
@pytest.mark.parametrize("loss", ["all", "last"])
def test_cupy_matches_numpy(param: str, loss: str) -> None:
    try:
        gpu = get_backend("cupy")
    except UsageError as exc:
        pytest.skip(str(exc))
    x, y = small_problem(seed=21, N=8, T=12, n_x=2, n_y=2)
    C, F, W = init(param, 64, 2, 2, 22, **SIGMAS)
    lr = 0.02 if param == "ntk" else 0.2
    kw = dict(param=param, loss=loss, lr=lr, steps=20, lr_mult=LR_MULT, **SIGMAS)
    cpu = train(C, F, W, x, y, backend=get_backend("numpy"), **kw)
    dev = train(C, F, W, x, y, backend=gpu, **kw)
    assert not cpu.diverged and not dev.diverged
    assert rel(dev.impulse, cpu.impulse) < 1e-10
    for a, b in ((dev.C, cpu.C), (dev.F, cpu.F), (dev.W, cpu.W)):
        assert isinstance(a, np.ndarray) and rel(a, b) < 1e-10
    np.testing.assert_allclose(dev.loss, cpu.loss, rtol=1e-10)
