"""Naive references for the lag NTK, for tests and benchmarks only (tiny or moderate sizes).

* :func:`dense_jacobian` builds the full Jacobian J of the impulse response
  L_i[a,b] (rows (i, a, b)) with respect to every raw parameter (columns: C row-major,
  then F, then W), the way reverse-mode autodiff vectorised over the outputs does it:
  a forward pass storing the states x_t = W_e^t F_e, adjoints g_s = (W_e^T)^s C_e^T,
  and dL_i/dW = alpha_W sum_{t<i} g_{i-1-t} x_t^T accumulated over the unrolled
  recurrence. Then Theta = J diag(s eta_P) J^T. Memory O(lags n_y n_x n^2), time
  O(lags^2 n^2 n_x n_y): use it for checks, never for Monte Carlo.
* :func:`autodiff_jacobian` builds the same J as a reverse-mode autodiff engine
  (``jacrev``: one vector-Jacobian product per output, vectorised over the outputs)
  would: a forward pass through the recurrence h_{t+1} = W_e h_t storing the states,
  then a reverse sweep in which every output's adjoint g_t is propagated by W_e^T
  and dL/dW_e is accumulated step by step as the outer products g_{t+1} h_t^T, one
  (outputs x n x n) update per step. This is the comparator for the speed claim
  ("an autodiff Jacobian NTK"); :func:`dense_jacobian` is the stronger baseline
  that sums those outer products with one matrix product per lag.
* :func:`finite_difference_lag_ntk` builds J by central differences of the impulse
  response computed with explicit matrix powers, sharing no code with
  :mod:`linrnn.verify.ntk` beyond the parameterization scales.
"""

from __future__ import annotations

import numpy as np

from linrnn.core.spec import ModelSpec
from linrnn.verify.sample import RNNDraw


def _host(draw: RNNDraw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(W, F, C) of ``draw`` as float64 host arrays."""
    return tuple(np.asarray(x, dtype=np.float64) for x in (draw.W, draw.F, draw.C))  # type: ignore[return-value]


def dense_jacobian(draw: RNNDraw, lags: int) -> np.ndarray:
    """J[(i,a,b), p] = dL_i[a,b] / d theta_p, shape (lags n_y n_x, n_y n + n n_x + n^2).

    Columns: C (n_y x n, row-major), F (n x n_x, row-major), W (n x n, row-major).
    """
    W, F, C = _host(draw)
    n, n_x = F.shape
    n_y = C.shape[0]
    a_c, a_f, a_w = draw.spec.scales(n)
    We, Fe, Ce = a_w * W, a_f * F, a_c * C
    X = np.empty((lags, n, n_x))  # forward states x_t = W_e^t F_e
    G = np.empty((lags, n, n_y))  # adjoints g_s = (W_e^T)^s C_e^T
    X[0], G[0] = Fe, Ce.T
    for t in range(1, lags):
        X[t] = We @ X[t - 1]
        G[t] = We.T @ G[t - 1]
    J = np.zeros((lags, n_y, n_x, n_y * n + n * n_x + n * n))
    cC = slice(0, n_y * n)
    cF = slice(n_y * n, n_y * n + n * n_x)
    cW = slice(n_y * n + n * n_x, None)
    for i in range(lags):
        JC = np.zeros((n_y, n_x, n_y, n))
        JF = np.zeros((n_y, n_x, n, n_x))
        for a in range(n_y):
            JC[a, :, a, :] = a_c * X[i].T  # dL_i[a,b]/dC[a,:] = alpha_C x_i^b
        for b in range(n_x):
            JF[:, b, :, b] = a_f * G[i].T  # dL_i[a,b]/dF[:,b] = alpha_F g_i^a
        J[i, :, :, cC] = JC.reshape(n_y, n_x, -1)
        J[i, :, :, cF] = JF.reshape(n_y, n_x, -1)
        if i > 0:
            # sum over the unrolled steps t = 0..i-1 of g_{i-1-t} x_t^T, as one matrix product
            Gs = G[:i][::-1]  # g_{i-1}, ..., g_0, paired with x_0, ..., x_{i-1}
            left = np.transpose(Gs, (2, 1, 0)).reshape(n_y * n, i)  # (a, p), t
            right = np.transpose(X[:i], (0, 2, 1)).reshape(i, n_x * n)  # t, (b, q)
            JW = (left @ right).reshape(n_y, n, n_x, n).transpose(0, 2, 1, 3)
            J[i, :, :, cW] = a_w * JW.reshape(n_y, n_x, n * n)
    return J.reshape(lags * n_y * n_x, -1)


def autodiff_jacobian(draw: RNNDraw, lags: int) -> np.ndarray:
    """J by emulated reverse-mode autodiff (module docstring); same layout as :func:`dense_jacobian`.

    Forward: h_0 = F_e (the response to an impulse at t = 0), h_{t+1} = W_e h_t,
    outputs L_t = C_e h_t for t < lags. Reverse, for all O = lags n_y n_x outputs at
    once (cotangent of output (i,a,b) is 1 on L_i[a,b]): the adjoint of h_t is
    g_t = C_e^T ybar_t + W_e^T g_{t+1}; dL/dC_e += ybar_t h_t^T; dL/dW_e += g_{t+1} h_t^T;
    dL/dF_e = g_0. Raw-parameter gradients are alpha_P times these (chain rule).
    """
    W, F, C = _host(draw)
    n, n_x = F.shape
    n_y = C.shape[0]
    a_c, a_f, a_w = draw.spec.scales(n)
    We, Fe, Ce = a_w * W, a_f * F, a_c * C
    h = [Fe]
    for _ in range(1, lags):
        h.append(We @ h[-1])
    O = lags * n_y * n_x
    # cotangents: ybar[o, t] (n_y x n_x) is 1 at output o = (i, a, b) when t = i
    ybar = np.zeros((O, lags, n_y, n_x))
    ybar.reshape(O, -1)[np.arange(O), np.arange(O)] = 1.0
    g = np.zeros((O, n, n_x))  # adjoint of h_t, one per output
    dW = np.zeros((O, n, n))
    dC = np.zeros((O, n_y, n))
    for t in range(lags - 1, -1, -1):
        if t < lags - 1:
            # step h_{t+1} = W_e h_t: accumulate dL/dW_e += g_{t+1} h_t^T, then g_t = W_e^T g_{t+1}
            dW += np.matmul(g, h[t].T)
            g = np.matmul(We.T, g)
        # output L_t = C_e h_t: dL/dC_e += ybar_t h_t^T and g_t += C_e^T ybar_t
        dC += np.matmul(ybar[:, t], h[t].T)
        g = g + np.matmul(Ce.T, ybar[:, t])
    J = np.concatenate([a_c * dC.reshape(O, -1), a_f * g.reshape(O, -1), a_w * dW.reshape(O, -1)], axis=1)
    return J


def autodiff_lag_ntk(draw: RNNDraw, lags: int) -> np.ndarray:
    """The lag NTK through :func:`autodiff_jacobian`: Theta = J diag(s eta_P) J^T (float64, NumPy)."""
    return ntk_from_jacobian(autodiff_jacobian(draw, lags), _parameter_weights(draw), lags, draw.n_out, draw.n_in)


def _parameter_weights(draw: RNNDraw) -> np.ndarray:
    """diag(s eta_P) over the columns of :func:`dense_jacobian`."""
    n, n_x, n_y = draw.n, draw.n_in, draw.n_out
    s = draw.spec.ntk_prefactor(n)
    eta_c, eta_f, eta_w = draw.spec.lr_mults
    return s * np.concatenate([np.full(n_y * n, eta_c), np.full(n * n_x, eta_f), np.full(n * n, eta_w)])


def ntk_from_jacobian(J: np.ndarray, weights: np.ndarray, lags: int, n_y: int, n_x: int) -> np.ndarray:
    """Theta = J diag(weights) J^T reshaped to (lags, n_y, n_x, lags, n_y, n_x)."""
    theta = (J * weights) @ J.T
    return theta.reshape(lags, n_y, n_x, lags, n_y, n_x)


def dense_jacobian_lag_ntk(draw: RNNDraw, lags: int) -> np.ndarray:
    """The lag NTK through the dense Jacobian: Theta = J diag(s eta_P) J^T (float64, NumPy)."""
    return ntk_from_jacobian(dense_jacobian(draw, lags), _parameter_weights(draw), lags, draw.n_out, draw.n_in)


def impulse_response_powers(draw: RNNDraw, lags: int) -> np.ndarray:
    """L_j = C_e W_e^j F_e by explicit matrix powers, shape (lags, n_y, n_x)."""
    W, F, C = _host(draw)
    a_c, a_f, a_w = draw.spec.scales(draw.n)
    We = a_w * W
    return np.stack([(a_c * C) @ np.linalg.matrix_power(We, j) @ (a_f * F) for j in range(lags)])


def finite_difference_lag_ntk(draw: RNNDraw, lags: int, *, step: float = 1e-5) -> np.ndarray:
    """The lag NTK with J from central differences of :func:`impulse_response_powers` (tiny sizes only).

    Each raw entry p is moved by +-h with h = step * max(1, |theta_p|); the truncation
    error of a central difference is O(h^2) and the rounding error O(eps / h).
    """
    W, F, C = _host(draw)
    n, n_x = F.shape
    n_y = C.shape[0]
    flat = np.concatenate([C.ravel(), F.ravel(), W.ravel()])
    sizes = (C.size, F.size, W.size)

    def response(theta: np.ndarray) -> np.ndarray:
        c, f, w = np.split(theta, np.cumsum(sizes)[:2])
        return impulse_response_powers(
            RNNDraw(w.reshape(n, n), f.reshape(n, n_x), c.reshape(n_y, n), draw.spec), lags
        ).ravel()

    J = np.empty((lags * n_y * n_x, flat.size))
    for p in range(flat.size):
        h = step * max(1.0, abs(flat[p]))
        up, down = flat.copy(), flat.copy()
        up[p] += h
        down[p] -= h
        J[:, p] = (response(up) - response(down)) / (2 * h)
    return ntk_from_jacobian(J, _parameter_weights(draw), lags, n_y, n_x)


def saved_spec(saved: dict[str, np.ndarray]) -> ModelSpec:
    """The spec stored beside a saved draw (the scalars of ``docs/conventions.md``, "Saved draws")."""
    W, F, C = (saved[k] if k in saved else saved[k + "0"] for k in ("W", "F", "C"))
    return ModelSpec(param=str(saved["param"]), sigma_w2=float(saved["sigma_w2"]), sigma_f2=float(saved["sigma_f2"]),
                     sigma_c2=float(saved["sigma_c2"]), n_in=int(F.shape[-1]), n_out=int(C.shape[-2]),
                     lr_c=float(saved["lr_c"]), lr_f=float(saved["lr_f"]), lr_w=float(saved["lr_w"]))


def check_saved_draw(path: str) -> float:
    """max |ntk - autodiff| / max |autodiff| for a draw saved by ``linrnn verify ntk --save``.

    Recomputes the lag NTK of the saved raw W, F, C with :func:`autodiff_lag_ntk`, in the
    parameterization, variances and learning-rate multipliers stored beside them.
    """
    with np.load(path) as z:
        saved = {k: z[k] for k in z.files}
    lags = int(saved["ntk"].shape[0])
    ref = autodiff_lag_ntk(RNNDraw(saved["W"], saved["F"], saved["C"], saved_spec(saved)), lags)
    return float(np.max(np.abs(saved["ntk"] - ref)) / np.max(np.abs(ref)))


def split_point_rows(Gu: np.ndarray, Gv: np.ndarray, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Rows and the diagonal of the split-point sum for one output and one input (n_x = n_y = 1), directly.

    T[i, j] = sum_{k<i, l<j} Gu[k, l] Gv[i-1-k, j-1-l] for Gu, Gv of shape (L, L). Row i is
    sum_{k<i} of the full 1-D convolutions of Gu[k, :] with Gv[i-1-k, :] (numpy.convolve,
    a direct sum), taken at j - 1; the diagonal T[i, i] is the sum of the products of
    Gu[:i, :i] and the reversed block Gv[i-1::-1, i-1::-1]. Memory O(L^2) and time
    O(|rows| L^3 + L^4 / 3) products at most, so it reaches L = 1024 where the Toeplitz
    product of :func:`linrnn.verify.ntk.split_point_sum_exact` is slow: a reference that
    shares no code with either route of :mod:`linrnn.verify.ntk`. Returns (rows (len(rows), L), diagonal (L,)).
    """
    Gu, Gv = np.asarray(Gu, dtype=np.float64), np.asarray(Gv, dtype=np.float64)
    L = Gu.shape[0]
    out = np.zeros((len(rows), L))
    for r, i in enumerate(rows):
        acc = np.zeros(2 * L - 1)
        # outputs past L - 2 (discarded) may overflow for growing Grams; each output is its own sum
        with np.errstate(over="ignore", invalid="ignore"):
            for k in range(i):
                acc += np.convolve(Gu[k], Gv[i - 1 - k])
        out[r, 1:] = acc[: L - 1]
    diag = np.zeros(L)
    for i in range(1, L):
        diag[i] = float(np.sum(Gu[:i, :i] * Gv[i - 1::-1, i - 1::-1]))
    return out, diag
