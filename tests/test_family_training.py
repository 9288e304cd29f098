"""Training the diagonal families: the structured gradient, kernel gradient descent with a full lag kernel, the
claim ``diagonal_training``, ``verify train --family diagonal`` and the teacher-recovery table.

The structured gradients are checked against central finite differences of the loss and
their first-order step against the empirical lag NTK; kernel gradient descent against the
SCNN (a diagonal kernel), a plain iteration and a naive min-norm solve; the claim passes
with its controls rejected; the teacher table's kernel column against a naive solve.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

import linrnn
from linrnn.core.errors import UsageError
from linrnn.verify.backend import get_backend
from linrnn.verify.train import lagged_correlations

FAMILIES = [("diagonal", dict(r_min=0.3, r_max=0.95, theta_max=2.0, n_in=2, n_out=3, lr_c=0.6, lr_w=0.7)),
            ("lru", dict(r_min=0.3, r_max=0.95, theta_max=2.0, n_in=2, n_out=3, lr_nu=0.5, lr_theta=1.5))]


def _data(loss: str, n_in: int = 2, n_out: int = 3, T: int = 7, seed: int = 1):  # noqa: ANN202
    be = get_backend("numpy", seed=seed)
    x, y = be.normal((4, T, n_in)), be.normal((4, T, n_out))
    return lagged_correlations(x, y, None, loss, be)


@pytest.mark.parametrize("name, law", FAMILIES)
@pytest.mark.parametrize("loss", ["all", "last"])
def test_the_structured_gradient_is_the_finite_difference_gradient(name: str, law: dict, loss: str) -> None:
    model = linrnn.family(name, **law)
    d = model.init(width=4, seed=3)
    corr = _data(loss)
    _, _, grads = model.loss_and_grad(d, corr)
    h, worst = 1e-6, 0.0
    for field, _ in model.TRAINED:
        a = np.asarray(getattr(d, field))
        for idx in np.ndindex(a.shape):
            for unit in ((1.0, 1j) if np.iscomplexobj(a) else (1.0,)):
                def f(s: float) -> float:
                    b = a.copy()
                    b[idx] += s * h * unit
                    return model.loss_and_grad(dataclasses.replace(d, **{field: b}), corr, need_grads=False)[0]

                fd = (f(1) - f(-1)) / (2 * h)
                g = np.asarray(grads[field])[idx]
                worst = max(worst, abs(fd - (g.real if unit == 1.0 else g.imag)) / (abs(fd) + 1e-3))
    assert worst < 1e-6


@pytest.mark.parametrize("name, law", FAMILIES)
def test_a_small_step_moves_the_impulse_by_the_empirical_ntk(name: str, law: dict) -> None:
    """L(theta - eta g) - L(theta) = -eta Theta_emp Gbar + O(eta^2): the step and the structured NTK agree."""
    from linrnn.verify.train import impulse_loss_and_grad

    model = linrnn.family(name, **law)
    d = model.init(width=6, seed=5)
    corr = _data("all")
    T = corr.lags
    L0 = model.impulse(d, T)
    _, gbar = impulse_loss_and_grad(L0, corr)
    theta = model.empirical_ntk(d, T).reshape(T * 6, T * 6)
    predicted = -(theta @ np.asarray(gbar).reshape(-1)).reshape(L0.shape)
    errs = []
    for eta in (1e-4, 2e-4):
        moved = (model.impulse(model.step(d, model.loss_and_grad(d, corr)[2], eta), T) - L0) / eta
        errs.append(np.max(np.abs(moved - predicted)) / np.max(np.abs(predicted)))
    assert errs[0] < 1e-3 and 1.5 < errs[1] / errs[0] < 2.5  # the remainder is second order in eta


def test_a_frozen_parameter_does_not_move_and_the_lru_stays_inside_the_disc() -> None:
    model = linrnn.family("diagonal", lr_w=0.0)
    d = model.init(width=8, seed=0)
    corr = _data("all", 1, 1)
    new = model.step(d, model.loss_and_grad(d, corr)[2], 0.1)
    assert np.array_equal(new.lam, d.lam) and not np.array_equal(new.c, d.c)
    lru = linrnn.family("lru", r_min=0.99, r_max=0.999, theta_max=0.3)
    res = lru.train(lru.init(width=64, seed=1), corr, lr=0.5, steps=30)
    assert np.all(res.max_modulus < 1.0) and res.loss[-1] < res.loss[0]


def test_the_array_api_strict_namespace_gives_the_numpy_gradients() -> None:
    model = linrnn.family("lru", r_max=0.9, n_in=2)
    strict_be = get_backend("array_api_strict", seed=1)
    strict = model.init(width=5, backend=strict_be)
    plain = model.init(width=5, seed=1)
    be = get_backend("numpy", seed=4)
    x, y = be.normal((3, 6, 2)), be.normal((3, 6, 1))
    corr_s = lagged_correlations(strict_be.asarray(x), strict_be.asarray(y), None, "all", strict_be)
    loss_s, _, g_s = model.loss_and_grad(strict, corr_s)
    loss_p, _, g_p = model.loss_and_grad(plain, lagged_correlations(x, y, None, "all", be))
    assert abs(loss_s - loss_p) < 1e-12 * abs(loss_p)
    for k in g_p:
        assert np.allclose(strict_be.to_numpy(g_s[k]), g_p[k], rtol=1e-12, atol=1e-14)


def test_training_refuses_a_batch_and_data_of_other_channels() -> None:
    model = linrnn.family("diagonal")
    with pytest.raises(UsageError, match="one draw at a time"):
        model.loss_and_grad(model.init(width=4, batch=2), _data("all", 1, 1))
    with pytest.raises(UsageError, match="the data have n_y = 3, n_x = 2"):
        model.loss_and_grad(model.init(width=4), _data("all"))


# ----------------------------------------------------------------------------- kernel gradient descent


def _scalar_data(T: int = 8, N: int = 5, loss: str = "all"):  # noqa: ANN202
    be = get_backend("numpy", seed=7)
    x, y = be.normal((N, T, 1)), be.normal((N, T, 1))
    return x, y, lagged_correlations(x, y, None, loss, be)


def test_kernel_gradient_descent_with_a_diagonal_kernel_is_the_scnn() -> None:
    from linrnn.verify.kernel_gd import kernel_trajectory
    from linrnn.verify.scnn import scnn_trajectory

    _, _, corr = _scalar_data()
    lam = np.linspace(2.0, 0.3, 8)
    L0 = np.random.default_rng(0).normal(size=(8, 1, 1))
    lr = 0.5 / np.linalg.eigvalsh(np.sqrt(lam)[:, None] * corr.rxx * np.sqrt(lam)[None, :])[-1]
    assert np.allclose(kernel_trajectory(L0, corr, np.diag(lam), lr=lr, steps=20),
                       scnn_trajectory(L0, corr, lam, lr=lr, steps=20), rtol=1e-10, atol=1e-12)


def test_kernel_gradient_descent_is_the_plain_iteration_and_converges_to_the_naive_min_norm() -> None:
    from linrnn.verify.kernel_gd import KernelCurvature, kernel_min_norm, kernel_trajectory

    x, y, corr = _scalar_data(T=10, N=4, loss="last")
    theta = linrnn.family("lru", r_min=0.5, r_max=0.95, theta_max=0.5).kernel(10)["ntk"]
    K = theta[:, 0, 0, :, 0, 0]
    L0 = np.random.default_rng(1).normal(size=(10, 1, 1))
    lr = 1.0 / KernelCurvature.of(corr, theta).mu_max
    v, rxx, ryx = L0[:, 0, 0].copy(), np.asarray(corr.rxx), np.asarray(corr.ryx)[0]
    traj = kernel_trajectory(L0, corr, theta, lr=lr, steps=15)
    for k in range(15):
        v = v - lr * K @ (rxx @ v - ryx)
        assert np.allclose(traj[k + 1, :, 0, 0], v, rtol=1e-10, atol=1e-12)
    Z = np.asarray(x)[:, ::-1, 0]
    yl = np.asarray(y)[:, -1, 0]
    naive = L0[:, 0, 0] + K @ Z.T @ np.linalg.solve(Z @ K @ Z.T, yl - Z @ L0[:, 0, 0])
    assert np.allclose(kernel_min_norm(L0, corr, theta)[:, 0, 0], naive, rtol=1e-7, atol=1e-9)
    with pytest.raises(UsageError, match="exceeds the stability limit"):
        kernel_trajectory(L0, corr, theta, lr=3 * lr, steps=2)


# ----------------------------------------------------------------------------- the claim and the command


def _small_config():  # noqa: ANN202
    from linrnn.families.diagonal.training_claim import Config

    return Config(widths=(64, 256, 1024), seq_len=8, n_seq=8, steps=40, pilot=8, min_replicas=8, max_replicas=64)


def test_the_claim_passes_and_rejects_its_controls() -> None:
    from linrnn.families.diagonal.training_claim import CLAIM

    spec = linrnn.family("diagonal", r_min=0.2, r_max=0.9, theta_max=1.0).spec
    res = CLAIM.run(_small_config(), spec, seed=2)
    assert res.statistic_verdict == "pass" and res.verdict == "pass", res.controls
    assert [c["id"] for c in res.controls] == ["rate:minus_1", "kernel:forced_diagonal", "kernel:radius",
                                               "kernel:gaussian_twin"]
    assert all(c["verdict"] == "rejected" for c in res.controls)
    assert -0.9 < res.statistic["value"] < -0.2
    assert CLAIM in linrnn.families.claims().values() and CLAIM.family == "diagonal"


def test_the_claim_refuses_bad_settings_in_one_sentence() -> None:
    from linrnn.families.diagonal.training_claim import CLAIM, Config

    with pytest.raises(UsageError, match="controls must name some of forced_diagonal"):
        Config(controls=("no_linear_term",))
    with pytest.raises(UsageError, match="n_in = 1 and n_out = 1"):
        CLAIM.check(Config(), linrnn.family("diagonal", n_in=2).spec)
    with pytest.raises(UsageError, match="'forced_diagonal' equals it"):
        CLAIM.check(Config(controls=("forced_diagonal",)), linrnn.family("diagonal", theta_max=np.pi).spec)


def _linrnn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "linrnn", *args], capture_output=True, text=True, timeout=300)


def test_verify_train_runs_the_diagonal_training_claim_and_refuses_the_lru() -> None:
    out = _linrnn("verify", "train", "--family", "diagonal", "--widths", "64,256", "--seq-len", "6", "--n-seq", "6",
                  "--steps", "20", "--pilot", "8", "--replicas", "8", "--max-replicas", "16", "--json",
                  "--no-progress")
    assert out.returncode in (0, 3), out.stderr
    got = json.loads(out.stdout)
    assert got["family"] == "diagonal" and got["widths"] == [64, 256] and got["claim"]["id"] == "diagonal_training"
    refused = _linrnn("verify", "train", "--family", "lru")
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0, refused.stderr
    assert "families with a training claim (diagonal), not the lru family" in refused.stderr
    single = _linrnn("verify", "train", "--family", "diagonal", "--width", "64")
    assert single.returncode == 2 and "give --widths" in single.stderr and "not --width" in single.stderr


# ----------------------------------------------------------------------------- teacher recovery


def test_the_teacher_table_kernel_column_is_the_naive_min_norm_solve() -> None:
    from linrnn.families.teachers import TEACHERS, design, long_range_models, teacher_recovery
    from linrnn.verify.claims.training import reseeded
    from linrnn.verify.teachers import white_inputs

    T, N = 24, 6
    tab = teacher_recovery(lags=T, samples=N, seeds=0, steps=50, seed=1)
    assert [(r.teacher, r.family) for r in tab.rows] == [(t.label, f) for t in TEACHERS for f in ("lru", "gaussian")]
    be = get_backend("numpy", seed=1)
    for ti, t in enumerate(TEACHERS):
        L_star = t.impulse(T)[:, 0, 0]
        Z = design(white_inputs(N, T, 1, reseeded(be, 1, 3, ti)))
        for mi, m in enumerate(long_range_models()):
            K = m.kernel(T)["ntk"][:, 0, 0, :, 0, 0]
            naive = K @ Z.T @ np.linalg.lstsq(Z @ K @ Z.T, Z @ L_star, rcond=None)[0]
            want = np.linalg.norm(naive - L_star) / np.linalg.norm(L_star)
            got = tab.rows[2 * ti + mi].rel_error_kernel
            assert abs(got - want) < 1e-6 * max(1.0, want), (t.label, m.name, got, want)
    slow = {r.family: r.rel_error_kernel for r in tab.rows if r.teacher == "slow smooth filter"}
    assert slow["lru"] < 0.2 < slow["gaussian"]  # the long-range LRU's bias: slow smooth filters


def test_trained_centred_networks_follow_the_kernel_prediction() -> None:
    from linrnn.families.teachers import TEACHERS, long_range_models, teacher_recovery

    lru, gauss = long_range_models()
    tab = teacher_recovery([lru, gauss], teachers=TEACHERS[:1], lags=24, samples=6, seeds=2, width=256, steps=60,
                           lr_factor=0.5)
    for row in tab.rows:
        assert row.diverged == 0 and row.rel_error_trained is not None
        assert abs(row.rel_error_trained - row.rel_error_kernel_steps) < 0.1 * row.rel_error_kernel_steps + 0.02, row
    # the two families' predictions differ by more than that: the check could fail
    a, b = (r.rel_error_kernel_steps for r in tab.rows)
    assert abs(a - b) > 0.5


def test_teacher_recovery_refuses_a_determined_fit() -> None:
    from linrnn.families.teachers import teacher_recovery

    with pytest.raises(UsageError, match="fewer samples than lags"):
        teacher_recovery(lags=8, samples=8)
    with pytest.raises(UsageError, match="spike delay must be an integer in 0..15"):
        teacher_recovery(lags=16, samples=4, seeds=0)
