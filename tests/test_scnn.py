"""The scaled CNN: closed forms against plain iteration, and the min-norm limit against lstsq.

References here are built from the raw data, independently of the correlations of
:mod:`linrnn.verify.train`: the design matrix X has one row per summed (sequence, time) pair,
row (s, t) = [x_t, x_{t-1}, ..., x_{t-T+1}] (zeros before t = 0), so that
Loss(L) = (1/2N) ||X Lmat^T - Y||^2 with Lmat[p, (j, a)] = L_j[p, a].
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import linrnn.derive
from linrnn.families.gaussian import GaussianSpec
from linrnn.core.errors import UsageError
from linrnn.verify.backend import get_backend
from linrnn.verify.scnn import (
    LagCurvature,
    auto_lr,
    auto_lr_rnn,
    check_lag_weights,
    min_norm_solution,
    scnn_flow,
    scnn_gd,
    scnn_trajectory,
)
from linrnn.verify.teachers import decay_teacher, make_dataset
from linrnn.verify.train import impulse_loss_and_grad, lagged_correlations

from helpers import impulse, train


def design(x, y, loss):
    N, T, n_x = x.shape
    times = range(T) if loss == "all" else [T - 1]
    rows, targets = [], []
    for s in range(N):
        for t in times:
            row = np.zeros((T, n_x))
            row[: t + 1] = x[s, t::-1]
            rows.append(row.ravel())
            targets.append(y[s, t])
    return np.array(rows), np.array(targets)


def to_mat(L):
    return L.transpose(1, 0, 2).reshape(L.shape[1], -1)


def from_mat(m, T, n_x):
    return m.reshape(m.shape[0], T, n_x).transpose(1, 0, 2)


def plain_gd(L0, x, y, loss, lam, lr, steps):
    """L <- L - lr D grad, with grad from the design matrix; trajectory (steps+1, T, n_y, n_x)."""
    N, T, n_x = x.shape
    X, Y = design(x, y, loss)
    d = np.repeat(lam, n_x)
    lm = to_mat(L0)
    out = [lm]
    for _ in range(steps):
        grad = (X.T @ (X @ lm.T - Y)).T / N
        lm = lm - lr * grad * d
        out.append(lm)
    return np.array([from_mat(m, T, n_x) for m in out])


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def problem(seed, N, T, n_x, n_y, loss):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, T, n_x))
    y = rng.standard_normal((N, T, n_y))
    L0 = rng.standard_normal((T, n_y, n_x))
    return x, y, L0, lagged_correlations(x, y, None, loss, get_backend("numpy"))


def curvature_max(x, y, loss, lam, n_y):
    """Largest eigenvalue of D^{1/2} H D^{1/2} with the full Hessian H = I_{n_y} (x) X^T X / N."""
    X, _ = design(x, y, loss)
    n_x = x.shape[2]
    H = np.kron(np.eye(n_y), X.T @ X / x.shape[0])
    s = np.tile(np.repeat(np.sqrt(lam), n_x), n_y)
    return float(np.linalg.eigvalsh(s[:, None] * H * s[None, :]).max())


LAM = np.array([1.0, 0.6, 0.0, 0.8, 0.3, 0.5])


@pytest.mark.parametrize("loss", ["all", "last"])
@pytest.mark.parametrize("factor", [0.5, 1.0, 1.6])
def test_closed_form_equals_iterated_gd(loss: str, factor: float) -> None:
    """Including steps past 1/mu_max (oscillating but stable) and a lag with lambda_j = 0."""
    x, y, L0, corr = problem(1, N=3, T=6, n_x=2, n_y=2, loss=loss)
    lr = factor * auto_lr(corr, LAM)
    steps = 40
    closed = scnn_trajectory(L0, corr, LAM, lr=lr, steps=steps)
    plain = plain_gd(L0, x, y, loss, LAM, lr, steps)
    assert closed.shape == (steps + 1, 6, 2, 2)
    assert rel(closed[-1], closed[0]) > 0.05
    assert rel(closed, plain) < 1e-10
    assert rel(scnn_gd(L0, corr, LAM, lr=lr, steps=steps), plain) < 1e-10
    np.testing.assert_array_equal(closed[:, 2], np.broadcast_to(L0[2], closed[:, 2].shape))
    picked = scnn_trajectory(L0, corr, LAM, lr=lr, at=[0, 7, 40])
    assert rel(picked, plain[[0, 7, 40]]) < 1e-10


def _min_norm_lstsq(L0, x, y, loss, lam):
    """argmin ||D^{-1/2}(L - L0)|| over the minimisers of the loss, by numpy's SVD lstsq."""
    X, Y = design(x, y, loss)
    T, n_x = x.shape[1], x.shape[2]
    s = np.repeat(np.sqrt(lam), n_x)
    lm0 = to_mat(L0)
    z = np.linalg.lstsq(X * s[None, :], Y - X @ lm0.T, rcond=None)[0]  # (T n_x, n_y)
    return from_mat(lm0 + (z * s[:, None]).T, T, n_x)


@pytest.mark.parametrize("lam", [np.array([1.2, 0.5, 0.9, 0.7, 1.5, 0.6]), LAM])
@pytest.mark.parametrize("n_x,n_y", [(1, 1), (2, 3)])
def test_min_norm_solution_is_the_weighted_least_norm_interpolant(lam, n_x: int, n_y: int) -> None:
    """Loss 'last' with N = 2 < T n_x sequences: H is singular and many L interpolate."""
    x, y, L0, corr = problem(5, N=2, T=6, n_x=n_x, n_y=n_y, loss="last")
    star = min_norm_solution(L0, corr, lam)
    np.testing.assert_allclose(star, _min_norm_lstsq(L0, x, y, "last", lam), rtol=1e-9, atol=1e-10)
    loss_star, _ = impulse_loss_and_grad(star, corr)
    assert abs(loss_star) < 1e-12 * corr.ryy
    # any other reachable interpolant (a null-space move on the lags with lambda_j > 0) is farther from L0
    X, _ = design(x, y, "last")
    w = np.repeat(lam, n_x)
    free = w > 0
    null = np.linalg.svd(X[:, free])[2][X.shape[0] :]  # rows span the null space of X on the free columns
    rng = np.random.default_rng(0)
    for _ in range(5):
        move = np.zeros((n_y, w.size))
        move[:, free] = rng.standard_normal((n_y, null.shape[0])) @ null
        other = star + from_mat(move, 6, n_x)
        assert impulse_loss_and_grad(other, corr)[0] < 1e-12 * corr.ryy + 1e-20
        norm = lambda L: np.sum(to_mat(L - L0) ** 2 / np.where(w > 0, w, np.inf))  # noqa: E731
        assert norm(other) > norm(star)


def test_long_gd_converges_to_the_min_norm_solution() -> None:
    """Discrete GD iterated many steps (singular H) lands on the closed-form min-norm point."""
    lam = np.array([1.2, 0.5, 0.9, 0.7, 1.5, 0.6])
    x, y, L0, corr = problem(5, N=2, T=6, n_x=1, n_y=1, loss="last")
    curv = LagCurvature(corr, lam)
    positive = curv.mu[curv.mu > 1e-10 * curv.mu_max]
    assert positive.size == 2  # rank N
    cond = positive.max() / positive.min()
    steps = int(math.ceil(40 * cond))
    assert steps < 20000, "pick a better conditioned seed"
    lr = auto_lr(corr, lam)
    end = plain_gd(L0, x, y, "last", lam, lr, steps)[-1]
    star = min_norm_solution(L0, corr, lam)
    assert rel(end, star) < 1e-10
    assert rel(star, L0) > 0.05
    # the same from the closed-form trajectory and from gradient flow at long times
    assert rel(scnn_trajectory(L0, corr, lam, lr=lr, at=[steps])[0], star) < 1e-10
    assert rel(scnn_flow(L0, corr, lam, [steps * lr])[0], star) < 1e-10


def test_full_rank_limit_is_the_least_squares_fit() -> None:
    x, y, L0, corr = problem(8, N=6, T=4, n_x=1, n_y=2, loss="all")
    lam = np.array([1.0, 0.7, 0.5, 0.3])
    X, Y = design(x, y, "all")
    ls = from_mat(np.linalg.lstsq(X, Y, rcond=None)[0].T, 4, 1)
    np.testing.assert_allclose(min_norm_solution(L0, corr, lam), ls, rtol=1e-9, atol=1e-11)


def test_gradient_flow_solves_the_ode() -> None:
    """dL/dt = -D grad Loss(L), checked by central differences in t, and L(0) = L0."""
    x, y, L0, corr = problem(3, N=3, T=5, n_x=2, n_y=2, loss="all")
    lam = np.array([1.0, 0.0, 0.4, 0.8, 0.2])
    h = 1e-4
    for t in (0.0, 0.3, 2.0):
        if t == 0.0:
            assert np.array_equal(scnn_flow(L0, corr, lam, [0.0])[0], L0)
            continue
        a, mid, b = scnn_flow(L0, corr, lam, [t - h, t, t + h])
        _, grad = impulse_loss_and_grad(mid, corr)
        want = -lam[:, None, None] * grad
        np.testing.assert_allclose((b - a) / (2 * h), want, rtol=1e-5, atol=1e-7 * np.abs(want).max())


def test_small_steps_approach_the_flow() -> None:
    x, y, L0, corr = problem(4, N=3, T=5, n_x=1, n_y=1, loss="all")
    lam = np.array([1.0, 0.8, 0.6, 0.4, 0.2])
    flow = scnn_flow(L0, corr, lam, [1.0])[0]
    errs = [rel(scnn_trajectory(L0, corr, lam, lr=1.0 / k, at=[k])[0], flow) for k in (50, 100, 200)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[1] / errs[2] == pytest.approx(2.0, rel=0.05)  # first order in the step


@pytest.mark.parametrize("loss", ["all", "last"])
def test_auto_lr_is_inverse_largest_curvature(loss: str) -> None:
    x, y, L0, corr = problem(6, N=4, T=5, n_x=2, n_y=3, loss=loss)
    lam = np.array([0.9, 1.1, 0.2, 0.0, 0.6])
    mu_max = curvature_max(x, y, loss, lam, n_y=3)
    eta = auto_lr(corr, lam)
    assert eta == pytest.approx(1.0 / mu_max, rel=1e-12)
    # stable: the loss decreases monotonically at the auto step
    traj = scnn_trajectory(L0, corr, lam, lr=eta, steps=30)
    losses = [impulse_loss_and_grad(L, corr)[0] for L in traj]
    assert all(b <= a + 1e-12 for a, b in zip(losses, losses[1:]))
    # negative control: just past 2 / mu_max the plain iteration blows up, and the closed forms refuse
    bad = 2.05 * eta
    blown = plain_gd(L0, x, y, loss, lam, bad, 600)
    assert np.linalg.norm(blown[-1]) > 1e3 * np.linalg.norm(blown[0])
    with pytest.raises(UsageError, match="stability limit"):
        scnn_trajectory(L0, corr, lam, lr=bad, steps=3)
    with pytest.raises(UsageError, match="stability limit"):
        scnn_gd(L0, corr, lam, lr=bad, steps=3)


def test_auto_lr_rnn_uses_the_derived_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y, _, corr = problem(6, N=4, T=5, n_x=2, n_y=1, loss="all")
    lam = np.array([0.9, 1.1, 0.2, 0.1, 0.6])
    seen = {}

    def fake_weights(spec, lags):
        seen["args"] = (spec, lags)
        return lam

    monkeypatch.setattr(linrnn.derive, "weights", fake_weights, raising=False)
    spec = GaussianSpec(param="ntk", sigma_w2=0.8, n_in=2)
    assert auto_lr_rnn(corr, spec) == auto_lr(corr, lam)
    assert seen["args"] == (spec, 5)
    with pytest.raises(UsageError, match="n_in"):
        auto_lr_rnn(corr, GaussianSpec(n_in=1))


def test_usage_errors() -> None:
    x, y, L0, corr = problem(6, N=2, T=4, n_x=1, n_y=1, loss="last")
    with pytest.raises(UsageError, match="shape"):
        check_lag_weights(np.ones(3), 4)
    with pytest.raises(UsageError, match="non-negative"):
        check_lag_weights(np.array([1.0, -1.0, 1.0, 1.0]), 4)
    with pytest.raises(UsageError, match="positive"):
        check_lag_weights(np.zeros(4), 4)
    with pytest.raises(UsageError, match="impulse response"):
        min_norm_solution(L0[:3], corr, np.ones(4))
    with pytest.raises(UsageError, match="steps"):
        scnn_trajectory(L0, corr, np.ones(4), lr=0.1)
    with pytest.raises(UsageError, match="non-negative integers"):
        scnn_trajectory(L0, corr, np.ones(4), lr=0.1, at=[1.5])
    with pytest.raises(UsageError, match="times"):
        scnn_flow(L0, corr, np.ones(4), [-1.0])
    zero = lagged_correlations(np.zeros((2, 4, 1)), np.zeros((2, 4, 1)), None, "all", get_backend("numpy"))
    with pytest.raises(UsageError, match="no positive curvature"):
        auto_lr(zero, np.ones(4))


def _has_derived_weights() -> bool:
    try:
        linrnn.derive.weights  # noqa: B018
    except (AttributeError, ModuleNotFoundError):
        return False
    return True


@pytest.mark.skipif(not _has_derived_weights(), reason="linrnn.derive.weights is not available yet")
@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_wide_rnn_follows_the_scnn_with_derived_weights(param: str) -> None:
    """Integration: at width 1000 the RNN's impulse trajectory stays near the SCNN's.

    The distance is O(n^{-1/2}) (about 0.08-0.11 of ||L_target|| here, at fixed seeds);
    the negative control, the lag weights of a wrong transition variance, must be
    several times farther.
    """
    T, n = 5, 1000
    be = get_backend("numpy", seed=4)
    teacher = decay_teacher(T, 0.6)
    x, y = make_dataset(teacher, 6, backend=be)
    corr = lagged_correlations(x, y, None, "all", be)
    spec = GaussianSpec(param=param, sigma_w2=0.8, n_in=1)
    lam = np.asarray(linrnn.derive.weights(spec, T), dtype=np.float64)
    wrong = np.asarray(linrnn.derive.weights(GaussianSpec(param=param, sigma_w2=0.4, n_in=1), T), dtype=np.float64)
    eta = auto_lr_rnn(corr, spec)
    rng = np.random.default_rng(5)
    C, F, W = rng.standard_normal((1, n)), rng.standard_normal((n, 1)), rng.standard_normal((n, n))
    if param == "standard":
        C, W = C / math.sqrt(n), W * math.sqrt(spec.sigma_w2 / n)
    kw = {"sigma_w2": spec.sigma_w2, "sigma_f2": 1.0, "sigma_c2": 1.0}
    L0 = be.to_numpy(impulse(C, F, W, T, param=param, backend=be, **kw))
    steps = 30
    rnn = train(C, F, W, x, y, param=param, loss="all", lr=eta, steps=steps, backend=be, **kw)
    assert not rnn.diverged

    def distance(weights: np.ndarray) -> float:
        scnn = scnn_trajectory(L0, corr, weights, lr=eta, steps=steps)
        return max(float(np.linalg.norm(a - b)) for a, b in zip(rnn.impulse, scnn)) / float(np.linalg.norm(teacher))

    assert np.linalg.norm(rnn.impulse[-1] - rnn.impulse[0]) > np.linalg.norm(teacher)  # it trains
    near, far = distance(lam), distance(wrong)
    assert near < 0.15
    assert far > 5 * near


@pytest.mark.gpu
@pytest.mark.parametrize("loss", ["all", "last"])
def test_cupy_closed_forms_match_numpy(loss: str) -> None:
    try:
        gpu = get_backend("cupy")
    except UsageError as exc:
        pytest.skip(str(exc))
    x, y, L0, corr = problem(9, N=3, T=8, n_x=2, n_y=2, loss=loss)
    corr_gpu = lagged_correlations(x, y, None, loss, gpu)
    lam = np.linspace(1.0, 0.2, 8)
    lr = auto_lr(corr, lam)
    assert auto_lr(corr_gpu, lam) == pytest.approx(lr, rel=1e-10)
    for fn in (
        lambda c: scnn_trajectory(L0, c, lam, lr=lr, steps=20),
        lambda c: scnn_gd(L0, c, lam, lr=lr, steps=20),
        lambda c: scnn_flow(L0, c, lam, [0.5, 3.0]),
        lambda c: min_norm_solution(L0, c, lam),
    ):
        assert rel(fn(corr_gpu), fn(corr)) < 1e-10
