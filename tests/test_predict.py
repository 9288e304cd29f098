"""Gradient-descent predictions from a kernel (:mod:`linrnn.predict`), neural-tangents' ``nt.predict`` semantics.

Checked three ways: against the matrix exponential and the pseudo-inverse written out
(SciPy's ``expm``, NumPy's ``pinv``), on a singular kernel (a linear RNN's usual case) and
a regularized one; at convergence against the least-squares impulse response, which
gradient descent reaches from any start when the data determine it (a route that uses
no kernel); and against trained wide RNNs (``linrnn.verify.train.train_rnn``, the
conventions' gradient descent on the raw parameters): the mean of trained networks'
test outputs agrees with the ensemble prediction at width 64 and 256 within its
standard errors, while two wrong theories (neural-tangents' normalization by
``y_train.size`` instead of N, and the NNGP in place of the NTK) are rejected.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

import linrnn
from linrnn.core.errors import UsageError
from linrnn.families.kernels import lag_expansion

N, T, NT = 3, 4, 2  # training sequences, length, test sequences


def as_matrix(k: np.ndarray) -> np.ndarray:
    """(B1, B2, T, T, n_y, n_y) -> (B1 T n_y, B2 T n_y)."""
    b1, b2, t1, t2, a1, a2 = k.shape
    return k.transpose(0, 2, 4, 1, 3, 5).reshape(b1 * t1 * a1, b2 * t2 * a2)


@pytest.fixture(scope="module")
def data() -> dict:
    model = linrnn.family("gaussian", sigma_w2=0.5, n_out=2)
    rng = np.random.default_rng(1)
    x, xt = rng.standard_normal((N, T, 1)), rng.standard_normal((NT, T, 1))
    y = rng.standard_normal((N, T, 2))
    return {"model": model, "x": x, "xt": xt, "y": y, "k": model.kernel_fn(x, None, "ntk"),
            "kt": model.kernel_fn(xt, x, "ntk"), "f0": rng.standard_normal(y.shape),
            "ft0": rng.standard_normal((NT, T, 2))}


def test_finite_times_are_the_matrix_exponential(data: dict) -> None:
    lr = 0.3
    K, Ktx = as_matrix(data["k"]), as_matrix(data["kt"])
    assert np.linalg.matrix_rank(K) < K.shape[0]  # N T n_y = 24 outputs, T n_x n_y = 8 coefficients: singular
    predict_fn = linrnn.predict.gradient_descent_mse(data["k"], data["y"], learning_rate=lr)
    times = np.array([[0.0, 2.0], [7.5, 60.0]])
    train, test = predict_fn(times, data["f0"], data["ft0"], data["kt"])
    assert train.shape == (2, 2, N, T, 2) and test.shape == (2, 2, NT, T, 2)
    r = (data["f0"] - data["y"]).ravel()
    for idx in np.ndindex(times.shape):
        E = scipy.linalg.expm(-lr * times[idx] * K / N)  # the flow df/dt = -(lr / N) K (f - y)
        ref_train = data["y"].ravel() + E @ r
        ref_test = data["ft0"].ravel() - Ktx @ np.linalg.pinv(K, rcond=1e-12) @ (np.eye(len(r)) - E) @ r
        assert np.allclose(train[idx].ravel(), ref_train, rtol=0, atol=1e-12)
        assert np.allclose(test[idx].ravel(), ref_test, rtol=0, atol=1e-10)
    # neural-tangents' call patterns: no test set gives the training outputs, fx_train_0=None the test ones
    assert np.allclose(predict_fn(2.0, data["f0"]), train[0, 1], rtol=0, atol=1e-14)
    assert np.allclose(predict_fn(2.0, None, data["ft0"], data["kt"]),
                       predict_fn(2.0, 0.0, data["ft0"], data["kt"])[1], atol=1e-14)
    assert np.array_equal(predict_fn(0.0, data["f0"], data["ft0"], data["kt"])[1], data["ft0"])


def test_convergence_is_the_pseudo_inverse_on_a_singular_kernel(data: dict) -> None:
    K, Ktx = as_matrix(data["k"]), as_matrix(data["kt"])
    predict_fn = linrnn.predict.gradient_descent_mse(data["k"], data["y"], learning_rate=0.3)
    train, test = predict_fn(None, data["f0"], data["ft0"], data["kt"])
    r = (data["f0"] - data["y"]).ravel()
    P = K @ np.linalg.pinv(K, rcond=1e-12)  # the projection onto the kernel's range
    assert np.allclose(train.ravel(), data["f0"].ravel() - P @ r, atol=1e-12)
    assert np.allclose(test.ravel(), data["ft0"].ravel() - Ktx @ np.linalg.pinv(K, rcond=1e-12) @ r, atol=1e-12)
    assert not np.allclose(train, data["y"], atol=1e-3)  # 24 targets, 8 coefficients: not all fitted
    for t in (np.inf, 1e9):  # infinity is the limit of long times
        later = predict_fn(t, data["f0"], data["ft0"], data["kt"])
        assert np.allclose(later[0], train, atol=1e-9) and np.allclose(later[1], test, atol=1e-9)


def test_convergence_is_the_least_squares_impulse_response(data: dict) -> None:
    """With T n_x <= N T the data determine L: gradient descent ends at the least-squares fit from any start."""
    model, x, xt, y = data["model"], data["x"], data["xt"], data["y"]
    X = lag_expansion(x, T).reshape(N * T, T)  # rows (s, t), columns j: y_t = sum_j L_j x_{t-j}
    L = np.linalg.lstsq(X, y.reshape(N * T, 2), rcond=None)[0]  # (T, n_y)
    ref_train, ref_test = (X @ L).reshape(y.shape), (lag_expansion(xt, T).reshape(NT * T, T) @ L).reshape(NT, T, 2)
    ens = linrnn.predict.gradient_descent_mse_ensemble(model, x, y, learning_rate=0.3)
    for get in ("ntk", "nngp"):  # the limit does not depend on the kernel here
        assert np.allclose(ens(None, None, get), ref_train, atol=1e-10)
        assert np.allclose(ens(None, xt, get), ref_test, atol=1e-10)
    both = ens(1.0, xt, ("nngp", "ntk"))
    assert set(both) == {"nngp", "ntk"} and not np.allclose(both["nngp"], both["ntk"])


def test_a_regularized_kernel_as_neural_tangents_adds_it(data: dict) -> None:
    K = as_matrix(data["k"])
    reg = 0.1 * np.trace(K) / K.shape[0]  # diag_reg in units of the mean diagonal entry
    Kr = K + reg * np.eye(K.shape[0])
    rel = linrnn.predict.gradient_descent_mse(data["k"], data["y"], diag_reg=0.1)
    absolute = linrnn.predict.gradient_descent_mse(data["k"], data["y"], diag_reg=reg, diag_reg_absolute_scale=True)
    r = (data["f0"] - data["y"]).ravel()
    for fn in (rel, absolute):
        # k_test_train = k_train_train gives the regularized training outputs
        got = fn(None, data["f0"], data["f0"], data["k"])[1]
        assert np.allclose(got.ravel(), data["f0"].ravel() - K @ np.linalg.solve(Kr, r), atol=1e-12)
        got = fn(3.0, data["f0"])
        assert np.allclose(got.ravel(), data["y"].ravel() + scipy.linalg.expm(-3.0 * Kr / N) @ r, atol=1e-12)


def test_bad_inputs_are_one_sentence(data: dict) -> None:
    gd = linrnn.predict.gradient_descent_mse
    with pytest.raises(UsageError, match=r"k_train_train must have shape \(3, 3, 4, 4, 2, 2\)"):
        gd(data["k"][:, :, :3], data["y"])
    with pytest.raises(UsageError, match="learning_rate must be a finite positive number"):
        gd(data["k"], data["y"], learning_rate=0.0)
    predict_fn = gd(data["k"], data["y"])
    with pytest.raises(UsageError, match="need k_test_train"):
        predict_fn(1.0, 0.0, data["ft0"])
    with pytest.raises(UsageError, match="finite non-negative times"):
        predict_fn([1.0, -1.0])
    with pytest.raises(UsageError, match=r"fx_train_0 must be a scalar or an array of shape \(3, 4, 2\)"):
        predict_fn(1.0, np.zeros((3, 4)))
    with pytest.raises(UsageError, match="one array library"):
        gd(data["k"], [[1.0]])


#: Trained networks: base step, the steps compared, antithetic pairs per width.
LR, STEPS, PAIRS, ALPHA = 0.02, (5, 20, 50), 16, 1e-3


def trained_mean(model: object, x: np.ndarray, y: np.ndarray, xt: np.ndarray, width: int) -> tuple:
    """Mean and standard error of trained RNNs' test outputs after STEPS (PAIRS antithetic pairs).

    A pair trains from (W, F, C) and from (W, F, -C): the law of C is symmetric, so the pair's mean
    is an unbiased estimate of the mean, in which the initial outputs (odd in C) cancel to first order.
    """
    from linrnn.verify.sample import RNNDraw
    from linrnn.verify.train import lagged_correlations, train_rnn

    corr = lagged_correlations(x, y, None, "all")
    Xt = lag_expansion(xt, T)
    pairs = []
    for seed in range(PAIRS):
        d = model.init(width=width, seed=seed)
        outs = []
        for sign in (1.0, -1.0):
            res = train_rnn(RNNDraw(d.W, d.F, sign * d.C, d.spec), None, None, lr=LR, steps=max(STEPS), corr=corr)
            assert not res.diverged
            outs.append(np.einsum("stjb,kjab->ksta", Xt, res.impulse[list(STEPS)]))
        pairs.append(np.mean(outs, axis=0))
    pairs = np.asarray(pairs)
    return pairs.mean(axis=0), pairs.std(axis=0, ddof=1) / np.sqrt(PAIRS)


def test_the_mean_of_trained_wide_rnns_converges_to_the_prediction() -> None:
    from linrnn.verify.stats import holm_rejections

    model = linrnn.family("gaussian", sigma_w2=0.5)
    rng = np.random.default_rng(0)
    x, y, xt = rng.standard_normal((N, T, 1)), rng.standard_normal((N, T, 1)), rng.standard_normal((NT, T, 1))
    ens = linrnn.predict.gradient_descent_mse_ensemble(model, x, y, learning_rate=LR)
    times = np.asarray(STEPS, dtype=float)
    theory = ens(times, xt)
    wrong = {"normalized by y_train.size": ens(times * N / y.size, xt), "nngp kernel": ens(times, xt, "nngp")}
    # the discrete steps against the continuous flow: the linear model's (I - lr K / N)^k, iterated
    K, Ktx = as_matrix(model.kernel_fn(x, None, "ntk")), as_matrix(model.kernel_fn(xt, x, "ntk"))
    f, ft, discrete = np.zeros(N * T), np.zeros(NT * T), []
    for k in range(max(STEPS) + 1):
        if k in STEPS:
            discrete.append(ft.reshape(NT, T, 1).copy())
        g = (f - y.ravel()) / N
        f, ft = f - LR * K @ g, ft - LR * Ktx @ g
    gap = np.abs(np.asarray(discrete) - theory)
    assert np.max(gap) < 0.01 * np.max(np.abs(theory))  # the step is small: the flow is the right comparison
    distances = {}
    for width in (64, 256):
        mean, se = trained_mean(model, x, y, xt, width)
        z = (np.abs(mean - theory) - gap).clip(min=0) / se  # the discretization gap, computed, is allowed
        rejected, threshold = holm_rejections(z, ALPHA, PAIRS - 1)
        distances[width] = float(np.max(np.abs(mean - theory)))
        assert rejected == 0, (width, float(np.max(z)), threshold)
        for name, other in wrong.items():  # negative controls: a wrong time scale, a wrong kernel
            zw = (np.abs(mean - other) - gap).clip(min=0) / se
            assert holm_rejections(zw, ALPHA, PAIRS - 1)[0] > 0, (width, name, float(np.max(zw)))
    print(f"max |mean of trained RNNs - prediction| over {STEPS} steps: {distances}")
