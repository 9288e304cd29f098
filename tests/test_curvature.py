"""The finite-width Gauss-Newton curvature behind ``--lr auto`` (verify/curvature.py).

Checked twice: the matrix-free operator against the exact empirical lag NTK
(``empirical_lag_ntk``, an independent structured algorithm) and its Jacobian-vector
product against finite differences of the impulse response; then training at long
horizons (T = 256) and at q = 1 with the automatic step, where the wide limit's step
(the negative control) diverges.
"""

from __future__ import annotations

import numpy as np
import pytest

from linrnn.core.errors import UsageError
from linrnn.core.spec import ModelSpec
from linrnn.families.gaussian import GaussianSpec
from linrnn.verify.backend import get_backend
from linrnn.verify.claims import dynamics_equivalence
from linrnn.core.configure import configure
from linrnn.verify.claims.training import choose_lr, draw_rnn, make_data
from linrnn.verify.curvature import GaussNewton, rnn_curvature
from linrnn.verify.ntk import empirical_lag_ntk
from linrnn.verify.sample import RNNDraw, sample_rnn
from linrnn.verify.scnn import auto_lr_rnn
from linrnn.verify.train import impulse_vjp, lagged_correlations, rnn_impulse, to_mat, train_rnn


def _setup(spec: ModelSpec, n: int, T: int, n_seq: int = 24, seed: int = 0):
    be = get_backend("numpy", seed=seed)
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((n_seq, T, spec.n_in))
    y = rng.standard_normal((n_seq, T, spec.n_out))
    corr = lagged_correlations(x, y, None, "all", be)
    draw = sample_rnn(be, spec, n)
    return be, corr, draw


def _exact_mu(draw: RNNDraw, corr, spec: ModelSpec) -> float:
    """mu_max(Theta H) from the dense empirical lag NTK, H = R_xx (x) I_{n_y} in the (lag, output, input) layout."""
    T, n_y, n_x = corr.lags, spec.n_out, spec.n_in
    K = np.asarray(empirical_lag_ntk(draw, T)).reshape(T * n_y * n_x, T * n_y * n_x)
    rxx = np.asarray(corr.rxx_lags)  # (T, n_x, T, n_x)
    H = np.einsum("iajb,pq->ipajqb", rxx, np.eye(n_y)).reshape(T * n_y * n_x, T * n_y * n_x)
    return float(np.max(np.linalg.eigvals(K @ H).real))


@pytest.mark.parametrize("param", ["ntk", "standard"])
@pytest.mark.parametrize("T, n_in, n_out", [(6, 1, 1), (12, 2, 2), (40, 1, 2)])  # dense, dense, Lanczos
def test_curvature_equals_the_exact_lag_ntk_route(param: str, T: int, n_in: int, n_out: int) -> None:
    spec = GaussianSpec(param=param, sigma_w2=0.9, n_in=n_in, n_out=n_out, lr_c=0.7, lr_f=1.3, lr_w=2.0)
    _, corr, draw = _setup(spec, 24, T)
    c = rnn_curvature(draw, corr)
    assert c.method == ("dense" if T * n_in * n_out <= 64 else "lanczos")
    assert c.mu_max == pytest.approx(_exact_mu(draw, corr, spec), rel=1e-9)


def test_jvp_matches_finite_differences_and_vjp_is_its_adjoint() -> None:
    spec = GaussianSpec(sigma_w2=0.8, n_in=2, n_out=2)
    be, corr, draw = _setup(spec, 16, 7)
    gn = GaussNewton(draw, corr)
    rng = np.random.default_rng(5)
    dC, dF, dW = (rng.standard_normal(np.shape(a)) for a in (draw.C, draw.F, draw.W))
    a_c, a_f, a_w = spec.scales(16)
    from linrnn.verify.train import impulse_jvp

    jvp = impulse_jvp(a_c * dC, a_f * dF, a_w * dW, gn.ce, gn.we, gn.vs, corr)
    h = 1e-6
    plus = RNNDraw(draw.W + h * dW, draw.F + h * dF, draw.C + h * dC, spec)
    minus = RNNDraw(draw.W - h * dW, draw.F - h * dF, draw.C - h * dC, spec)
    fd = (to_mat(rnn_impulse(plus, 7), corr) - to_mat(rnn_impulse(minus, 7), corr)) / (2 * h)
    np.testing.assert_allclose(jvp, fd, rtol=1e-7, atol=1e-9)
    g = rng.standard_normal((2, corr.dim))
    vc, vf, vw = impulse_vjp(g, gn.vs, gn.us, gn.we, corr)
    lhs = float(np.sum(jvp * g))
    rhs = float(np.sum(vc * a_c * dC) + np.sum(vf * a_f * dF) + np.sum(vw * a_w * dW))
    assert lhs == pytest.approx(rhs, rel=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("q", [0.8, 1.0])
def test_auto_step_is_stable_at_long_horizons(q: float) -> None:
    """T = 256: the finite-width step trains (the loss decreases, no divergence) for every replica."""
    spec = GaussianSpec(sigma_w2=q)
    cfg = configure(dynamics_equivalence.Config(), {"seq_len": 256, "steps": 8}, "test")
    be = get_backend("numpy")
    x, y, _ = make_data(cfg, be, 0)
    corr = lagged_correlations(x, y, None, cfg.loss, be)
    draws = [draw_rnn(0, spec, 128, r, be) for r in range(2)]
    lr = choose_lr(cfg, corr, spec, draws)
    stiffest = int(np.argmax([rnn_curvature(d, corr).mu_max for d in draws]))  # the draw that sets the step
    for i, d in enumerate(draws):
        res = train_rnn(d, None, None, loss=cfg.loss, lr=lr, steps=cfg.steps, corr=corr, record_impulse=False)
        assert not res.diverged
        assert np.all(np.diff(res.loss) < 0)
        if i == stiffest:  # the step is 0.5 / mu_max of this draw: its loss falls fast
            assert res.loss[-1] < 0.5 * res.loss[0]


@pytest.mark.slow
def test_the_wide_limit_step_diverges_where_the_finite_width_one_does_not() -> None:
    """Negative control: at q = 1, T = 256 the step from the limit's lag weights diverges for the same draw."""
    spec = GaussianSpec(sigma_w2=1.0)
    cfg = configure(dynamics_equivalence.Config(), {"seq_len": 256, "steps": 8}, "test")
    be = get_backend("numpy")
    x, y, _ = make_data(cfg, be, 0)
    corr = lagged_correlations(x, y, None, cfg.loss, be)
    draw = draw_rnn(0, spec, 128, 0, be)
    limit = cfg.lr_factor * auto_lr_rnn(corr, spec)
    finite = cfg.lr_factor * auto_lr_rnn(corr, spec, [draw])
    assert finite < limit
    bad = train_rnn(draw, None, None, loss=cfg.loss, lr=limit, steps=cfg.steps, corr=corr, record_impulse=False)
    assert bad.diverged
    with pytest.raises(UsageError, match="lower --lr-factor"):
        bad.raise_if_diverged(auto=True)
    with pytest.raises(UsageError, match="use a smaller step or --lr auto"):
        bad.raise_if_diverged()


def test_auto_lr_rnn_needs_a_draw_when_given_draws() -> None:
    spec = GaussianSpec()
    _, corr, _ = _setup(spec, 8, 4)
    with pytest.raises(UsageError, match="at least one draw"):
        auto_lr_rnn(corr, spec, [])


@pytest.mark.slow
def test_a_sweeps_guarded_step_trains_at_long_horizons() -> None:
    """A sweep at T = 256, q = 0.8: the wide limit's step is beyond the linear stability limit (lr mu_max >= 2)
    of a pilot draw's own curvature, the guarded step of ``dynamics_equivalence.setup`` is capped below it with
    headroom, and the replicas it trains, the most curved guard and others, descend at every step.

    (Beyond its linear limit that draw did not diverge here: its first step, from an impulse response blown up
    by W^255, is far outside the linear regime, which is the regime the claims compare with; the guard keeps
    every pilot draw inside it.)"""
    from linrnn.verify.claims.training import GUARD_HEADROOM, PILOT_OFFSET, guard_draws

    spec = GaussianSpec(sigma_w2=0.8)
    cfg = configure(dynamics_equivalence.Config(), {"seq_len": 256, "steps": 8, "widths": [128, 256]}, "test")
    be = get_backend("numpy")
    st = dynamics_equivalence.setup(cfg, spec, 0, be)
    limit = cfg.lr_factor * auto_lr_rnn(st["corr"], spec)
    guards = guard_draws(0, spec, cfg.widths, be)
    mus = [rnn_curvature(d, st["corr"]).mu_max for d in guards]
    assert limit * max(mus) > 2.0  # the limit's step is unstable for a guard draw
    assert st["lr"] == pytest.approx(2.0 / (GUARD_HEADROOM * max(mus)), rel=1e-12)
    worst = guards[int(np.argmax(mus))]
    for d in [worst, draw_rnn(0, spec, 128, PILOT_OFFSET + 40, be), draw_rnn(0, spec, 256, 3, be)]:
        res = train_rnn(d, None, None, loss=cfg.loss, lr=st["lr"], steps=cfg.steps, corr=st["corr"],
                        record_impulse=False)
        assert not res.diverged
        assert np.all(np.diff(res.loss) < 0)
