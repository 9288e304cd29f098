"""Input-space kernels of the families (``model.kernel_fn``, :mod:`linrnn.families.kernels`).

Checked twice: against the direct sum over lags, Theta(x, x')[t, t'] = sum_{j,k} x_{t-j}
Theta_jk x'_{t'-k}, written as loops on small cases, for every family; and, for one draw
of a finite dense RNN, the same map applied to its empirical lag NTK against the NTK of
its outputs on the sequences taken directly from the recurrence h_t = W_e h_{t-1} + F_e x_t
(complex-step derivatives of the outputs, J diag(eta_P) J^T), which tests the formula
itself (the causal direction, the time and channel axes) by a route that never forms
a lag kernel.
"""

from __future__ import annotations

import numpy as np
import pytest

import linrnn
from linrnn.core.errors import UsageError
from linrnn.families.kernels import input_kernel, lag_expansion

#: One dense family and one diagonal family: the two model classes (DenseRNN, RingModel) that call the shared
#: kernel_fn (the orthogonal and lru families add only their own lag kernels, whose derivations are slow when cold).
FAMILIES = [("gaussian", {"sigma_w2": 0.7, "n_in": 2, "n_out": 3}),
            ("diagonal", {"n_in": 2, "n_out": 2, "theta_max": 2.0})]


def direct_sum(K: np.ndarray, x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """sum_{j <= t, k <= t'} x1_{t-j} K[j, :, :, k] x2_{t'-k}, by loops (the reference)."""
    B1, T1, _ = x1.shape
    B2, T2, _ = x2.shape
    ny = K.shape[1]
    out = np.zeros((B1, B2, T1, T2, ny, ny))
    for s in range(B1):
        for s2 in range(B2):
            for t in range(T1):
                for t2 in range(T2):
                    for j in range(t + 1):
                        for k in range(t2 + 1):
                            out[s, s2, t, t2] += np.einsum("b,abcd,d->ac", x1[s, t - j], K[j, :, :, k], x2[s2, t2 - k])
    return out


@pytest.mark.parametrize(("name", "params"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_kernel_fn_is_the_direct_sum_over_lags(name: str, params: dict) -> None:
    model = linrnn.family(name, **params)
    rng = np.random.default_rng(3)
    nx = model.spec.n_in
    x1, x2 = rng.standard_normal((3, 5, nx)), rng.standard_normal((2, 4, nx))  # lengths may differ
    got = model.kernel_fn(x1, x2)
    assert type(got).__name__ == "Kernel" and got._fields == ("nngp", "ntk")
    lag = model.kernel(5)
    for field in ("nngp", "ntk"):
        ref = direct_sum(lag[field], x1, x2)
        assert getattr(got, field).shape == (3, 2, 5, 4, model.spec.n_out, model.spec.n_out)
        assert np.max(np.abs(getattr(got, field) - ref)) <= 1e-13 * np.max(np.abs(ref)), field
    # x2 = None is x1; a kernel of a set with itself is symmetric and positive semi-definite
    k11 = model.kernel_fn(x1, get="ntk")
    assert np.array_equal(k11, model.kernel_fn(x1, x1, get="ntk"))
    m = k11.transpose(0, 2, 4, 1, 3, 5).reshape(15 * model.spec.n_out, -1)
    assert np.allclose(m, m.T, atol=1e-13 * np.max(np.abs(m)))
    assert np.min(np.linalg.eigvalsh((m + m.T) / 2)) >= -1e-12 * np.max(np.abs(m))


def test_get_follows_neural_tangents() -> None:
    model = linrnn.family("gaussian")
    x = np.arange(6.0).reshape(2, 3, 1)
    both = model.kernel_fn(x, x, get=("ntk", "nngp"))
    assert both._fields == ("ntk", "nngp")
    assert np.array_equal(model.kernel_fn(x, x, get="nngp"), both.nngp)
    assert np.array_equal(model.kernel_fn(x.astype(int), x, get="ntk"), both.ntk)  # integer data: float64
    assert model.kernel_fn(x.astype(np.float32), get="ntk").dtype == np.float32


def _outputs(W: np.ndarray, F: np.ndarray, C: np.ndarray, x: np.ndarray) -> np.ndarray:
    """y_t = C h_t, h_t = W h_{t-1} + F x_t (effective matrices, any dtype): (B, T, n_y), by the recurrence."""
    h = np.zeros((x.shape[0], W.shape[0]), dtype=np.result_type(W, F, C))
    ys = []
    for t in range(x.shape[1]):
        h = h @ W.T + x[:, t] @ F.T
        ys.append(h @ C.T)
    return np.stack(ys, axis=1)


def test_the_input_kernel_of_a_draw_is_the_ntk_of_its_outputs() -> None:
    """input_kernel(empirical lag NTK) = J diag(eta_P) J^T for the outputs' Jacobian J (complex step, exact)."""
    model = linrnn.family("gaussian", sigma_w2=0.8, n_in=2, n_out=2, lr_c=0.5, lr_f=2.0, lr_w=1.5)
    n, T = 5, 4
    d = model.init(width=n, seed=2)
    rng = np.random.default_rng(4)
    x1, x2 = rng.standard_normal((2, T, 2)), rng.standard_normal((3, T, 2))
    a_c, a_f, a_w = model.spec.scales(n)
    raw = {"W": d.W, "F": d.F, "C": d.C}
    mult = {"W": model.spec.lr_w, "F": model.spec.lr_f, "C": model.spec.lr_c}

    def jac(x: np.ndarray) -> dict[str, np.ndarray]:
        """d y / d P for every raw parameter P: (outputs, entries of P), by complex steps of size 1e-20."""
        out = {}
        for name, P in raw.items():
            cols = []
            for idx in np.ndindex(P.shape):
                p = {k: v.astype(complex) for k, v in raw.items()}
                p[name][idx] += 1e-20j
                cols.append(_outputs(a_w * p["W"], a_f * p["F"], a_c * p["C"], x).imag.ravel() / 1e-20)
            out[name] = np.stack(cols, axis=1)
        return out

    J1, J2 = jac(x1), jac(x2)
    direct = sum(mult[p] * J1[p] @ J2[p].T for p in raw)  # rows (s, t, a), columns (s', t', a')
    got = input_kernel(model.empirical_ntk(d, T), x1, x2)  # (B1, B2, T, T, n_y, n_y)
    got = got.transpose(0, 2, 4, 1, 3, 5).reshape(direct.shape)
    assert np.max(np.abs(got - direct)) <= 1e-12 * np.max(np.abs(direct))
    # the outputs themselves: the recurrence is the convolution with the draw's impulse response
    L = model.impulse(d, T)
    conv = np.einsum("stjb,jab->sta", lag_expansion(x1, T), L)
    assert np.allclose(conv, _outputs(a_w * d.W, a_f * d.F, a_c * d.C, x1), rtol=1e-12, atol=1e-12)


def test_the_lag_expansion_is_the_causal_toeplitz_matrix() -> None:
    x = np.arange(1.0, 7.0).reshape(1, 3, 2)
    X = lag_expansion(x, 3)
    assert X.shape == (1, 3, 3, 2)
    assert np.array_equal(X[0, :, :, 0], [[1, 0, 0], [3, 1, 0], [5, 3, 1]])  # X[t, j] = x_{t-j}


def test_kernel_fn_under_the_array_api_standard_alone() -> None:
    xps = pytest.importorskip("array_api_strict")
    model = linrnn.family("diagonal", n_in=2)
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 4, 2)), rng.standard_normal((3, 4, 2))
    with xps.ArrayAPIStrictFlags(api_version="2023.12", boolean_indexing=False, data_dependent_shapes=False):
        got = model.kernel_fn(xps.asarray(x1), xps.asarray(x2), get="ntk")
        assert type(got) is not np.ndarray
        got = np.from_dlpack(got)
    assert np.allclose(got, model.kernel_fn(x1, x2, get="ntk"), rtol=1e-13, atol=1e-13)


def test_bad_inputs_are_one_sentence() -> None:
    model = linrnn.family("gaussian", n_in=2)
    x = np.zeros((2, 3, 2))
    with pytest.raises(UsageError, match=r"x1 has 1 input channels but the model has n_in = 2"):
        model.kernel_fn(np.zeros((2, 3, 1)))
    with pytest.raises(UsageError, match=r"x2 must have shape \(batch, T, n_x\)"):
        model.kernel_fn(x, np.zeros((3, 2)))
    with pytest.raises(UsageError, match="x1 must be an array"):
        model.kernel_fn([[[0.0, 0.0]]])
    with pytest.raises(UsageError, match="get must be 'nngp', 'ntk' or a tuple"):
        model.kernel_fn(x, get="ntk2")
    with pytest.raises(UsageError, match="each once"):
        model.kernel_fn(x, get=("ntk", "ntk"))
    with pytest.raises(UsageError, match="must hold real numbers"):
        model.kernel_fn(x.astype(complex))
