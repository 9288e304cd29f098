"""Full-batch gradient descent on wide linear RNNs, with exact gradients from lagged correlations.

Conventions are those of ``docs/conventions.md``. A width-n linear RNN
h_t = W_e h_{t-1} + F_e x_t, yhat_t = C_e h_t (h_{-1} = 0) is the causal convolution

    yhat_t = sum_{j=0..t} L_j x_{t-j},        L_j = C_e W_e^j F_e  (the impulse response),

so both losses are quadratics in L = (L_0, ..., L_{T-1}) whose coefficients are the
*lagged correlations* of the data (N sequences, ``Correlations`` below):

    Loss(L) = 1/2 r_yy - sum_j <L_j, R_yx[j]> + 1/2 sum_{j,j'} tr(L_j R_xx[j,j'] L_{j'}^T),
    G_j := dLoss/dL_j = sum_{j'} L_{j'} R_xx[j',j] - R_yx[j].

The correlations are computed once; a gradient step then costs
O(T n^2 (n_x + n_y) + T^2 n n_x n_y) whatever N is (Emami et al., "Implicit Bias of
Linear RNNs", ICML 2021, use the same reduction of the RNN to its impulse response):

* Krylov vectors  V_m = W_e^m F_e  and  U_k = (W_e^T)^k C_e^T  for m, k < T;
* L_j = C_e V_j, then G_j from the correlations;
* dLoss/dC_e = sum_j G_j V_j^T,   dLoss/dF_e = sum_j U_j G_j,
  dLoss/dW_e = sum_{j>=1} sum_{k=0}^{j-1} U_k G_j V_{j-1-k}^T = sum_k U_k H_k with the
  Hankel products H_k = sum_{m} G_{k+1+m} V_m^T (one matmul with the block-Hankel
  matrix [G_{k+1+m}]_{k,m}, then one with the stacked U_k);
* the chain rule to the raw parameters P = alpha_P^{-1} P_e: alpha_C = sigma_C/sqrt(n),
  alpha_F = sigma_F/sqrt(n_x), alpha_W = sigma_W/sqrt(n) for ``ntk`` and alpha = 1
  for ``standard``.

The update is the one of the conventions, with multipliers (eta_C, eta_F, eta_W):
``ntk``: P <- P - eta eta_P dLoss/dP;  ``standard``: P <- P - (eta eta_P / n) dLoss/dP.

Numerical note: the loss value is evaluated from the correlations, so near an exact
fit it carries an absolute rounding error of order eps * r_yy (the parameters and
impulse responses do not suffer from this).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from linrnn.core.errors import UsageError
from linrnn.core.spec import ModelSpec
from linrnn.core.validate import check_positive
from linrnn.verify.backend import Backend, array_namespace, device, get_backend
from linrnn.verify.sample import RNNDraw

LOSSES: tuple[str, ...] = ("all", "last")

#: Default explosion threshold: an iterate whose loss exceeds this multiple of
#: max(initial loss, r_yy / 2) is declared divergent.
DEFAULT_BLOWUP = 1e8


# --------------------------------------------------------------------------- checks


def _check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise UsageError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
    return value


def check_steps(steps: int) -> int:
    try:
        s = int(steps)
    except (TypeError, ValueError):
        raise UsageError(f"steps must be a non-negative integer, got {steps!r}") from None
    if s != steps or s < 0:
        raise UsageError(f"steps must be a non-negative integer, got {steps!r}")
    return s


# --------------------------------------------------------------------- correlations


@dataclass(frozen=True, eq=False)
class Correlations:
    """The data of a quadratic impulse-response loss, reduced to lagged correlations.

    With S_t the set of summed times (t = 0..T-1 for loss ``all``, t = T-1 for ``last``)
    and x_t = 0 for t < 0:

        R_xx[j, j'] = (1/N) sum_s sum_{t in S_t} x^s_{t-j} (x^s_{t-j'})^T      (n_x x n_x),
        R_yx[j]     = (1/N) sum_s sum_{t in S_t} y^s_t (x^s_{t-j})^T            (n_y x n_x),
        r_yy        = (1/N) sum_s sum_{t in S_t} ||y^s_t||^2,

    for lags j, j' < ``lags``. Stored in *matrix layout* on the backend:
    ``rxx`` (lags*n_x, lags*n_x) with row/column index (j, a), and ``ryx``
    (n_y, lags*n_x) with column index (j, a); the tensor views are
    :attr:`rxx_lags` (lags, n_x, lags, n_x) and :attr:`ryx_lags` (lags, n_y, n_x).
    """

    loss: str
    lags: int
    seq_len: int
    n_seq: int
    n_x: int
    n_y: int
    rxx: Any
    ryx: Any
    ryy: float
    backend: Backend

    @property
    def dim(self) -> int:
        """Number of coefficients per output row of L: lags * n_x."""
        return self.lags * self.n_x

    @property
    def rxx_lags(self) -> Any:
        return array_namespace(self.rxx).reshape(self.rxx, (self.lags, self.n_x, self.lags, self.n_x))

    @property
    def ryx_lags(self) -> Any:
        xp = array_namespace(self.ryx)
        return xp.permute_dims(xp.reshape(self.ryx, (self.n_y, self.lags, self.n_x)), (1, 0, 2))


def lagged_correlations(
    x: Any, y: Any, lags: int | None = None, loss: str = "all", backend: Backend | None = None
) -> Correlations:
    """Lagged auto- and cross-correlations of a data set (see :class:`Correlations`).

    ``x`` has shape (N, T, n_x) and ``y`` (N, T, n_y); ``lags`` defaults to T (every
    lag that can influence an output). For loss ``all`` the block R_xx[j, j+d] is a
    truncated autocorrelation, sum_{u=0}^{T-1-j-d} x_{u+d} x_u^T, obtained for all j at
    once from a cumulative sum along a lag diagonal of the time-by-time product matrix
    (one BLAS matrix product, :func:`_lag_sums`), not as O(lags^2) separate sums.
    """
    backend = backend if backend is not None else get_backend("numpy")
    _check_choice("loss", loss, LOSSES)
    x = backend.asarray(x)
    y = backend.asarray(y)
    xp = array_namespace(x, y)
    if x.ndim != 3 or y.ndim != 3:
        raise UsageError(f"x and y must have shapes (N, T, n_x) and (N, T, n_y), got {x.shape} and {y.shape}")
    if x.shape[:2] != y.shape[:2]:
        raise UsageError(f"x and y must share N and T, got shapes {x.shape} and {y.shape}")
    n_seq, seq_len, n_x = (int(v) for v in x.shape)
    n_y = int(y.shape[2])
    if min(n_seq, seq_len, n_x, n_y) < 1:
        raise UsageError(f"the data set is empty (x has shape {x.shape}, y has shape {y.shape})")
    if lags is None:
        lags = seq_len
    if int(lags) != lags or not 1 <= lags <= seq_len:
        raise UsageError(f"lags must be an integer between 1 and the sequence length {seq_len}, got {lags!r}")
    lags = int(lags)

    if loss == "last":
        # Z[s, (j, a)] = x^s_{T-1-j}[a]
        z = xp.reshape(xp.flip(x[:, seq_len - lags :, :], axis=1), (n_seq, lags * n_x))
        rxx = z.T @ z / n_seq
        y_last = y[:, seq_len - 1, :]
        ryx = y_last.T @ z / n_seq
        ryy = float(xp.sum(y_last * y_last)) / n_seq
    else:
        rxx, ryx = _lag_sums(x, y, lags, backend.device)
        ryy = float(xp.sum(y * y)) / n_seq
    return Correlations(
        loss=loss,
        lags=lags,
        seq_len=seq_len,
        n_seq=n_seq,
        n_x=n_x,
        n_y=n_y,
        rxx=rxx,
        ryx=ryx,
        ryy=ryy,
        backend=backend,
    )


#: Above this many entries of the time-by-time product matrices (T n_x)^2 + T^2 n_x n_y,
#: :func:`_lag_sums` forms the products lag by lag instead (memory O(lags^2 n_x^2)).
LAG_SUMS_MAX_ENTRIES = 2**22


def _lag_sums(x: Any, y: Any, lags: int, dev: Any) -> tuple[Any, Any]:
    """R_xx (lags n_x, lags n_x) and R_yx (n_y, lags n_x) for loss ``all`` (see :func:`lagged_correlations`).

    With P_d[u] = (1/N) sum_s x_{u+d} x_u^T, R_xx[j, j+d] = sum_{u <= T-1-j-d} P_d[u] (a
    cumulative sum along each lag diagonal) and R_yx[d] = (1/N) sum_{s,t} y_{t+d} x_t^T.
    Both need only the time-by-time products M[t', t] = (1/N) sum_s x_{t'} x_t^T and
    Q[t', t] = (1/N) sum_s y_{t'} x_t^T, one matrix product each (BLAS), read along their
    lag diagonals t' - t = d. When those matrices would be large (long sequences), the
    products are formed lag by lag instead.
    """
    xp = array_namespace(x)
    n_seq, T, n_x = (int(v) for v in x.shape)
    n_y = int(y.shape[2])
    d = xp.arange(lags, device=dev)[:, None]
    j = xp.arange(lags, device=dev)[:, None]
    jp = xp.arange(lags, device=dev)[None, :]
    if T * T * n_x * (n_x + n_y) <= LAG_SUMS_MAX_ENTRIES:
        X2 = xp.reshape(x, (n_seq, T * n_x))
        M = xp.reshape(X2.T @ X2 / n_seq, (T, n_x, T, n_x))  # M[t', a, t, b]
        Q = xp.reshape(xp.reshape(y, (n_seq, T * n_y)).T @ X2 / n_seq, (T, n_y, T, n_x))  # Q[t', p, t, a]
        # lag diagonals: D[d, u] = M[u + d, u] for u < T - d (zero past the end)
        u = xp.arange(T, device=dev)[None, :]
        inside = (u + d) < T
        diag = xp.reshape(xp.where(inside, (u + d) * T + u, xp.zeros_like(u + d)), (lags * T,))
        mask = xp.astype(inside, x.dtype)[:, :, None, None]
        Mp = xp.reshape(xp.permute_dims(M, (0, 2, 1, 3)), (T * T, n_x, n_x))
        Qp = xp.reshape(xp.permute_dims(Q, (0, 2, 1, 3)), (T * T, n_y, n_x))
        cum = xp.cumulative_sum(xp.reshape(xp.take(Mp, diag, axis=0), (lags, T, n_x, n_x)) * mask, axis=1)
        ryx3 = xp.sum(xp.reshape(xp.take(Qp, diag, axis=0), (lags, T, n_y, n_x)) * mask, axis=1)
        cum = xp.reshape(cum, (lags * T, n_x, n_x))  # row d T + v: sum_{u <= v} P_d[u]
        stride, offset = T, 0
    else:
        xt = xp.permute_dims(x, (1, 2, 0))  # (T, n_x, N)
        xr = xp.permute_dims(x, (1, 0, 2))  # (T, N, n_x)
        cums, ryx_lag = [], []
        for e in range(lags):
            c = xp.cumulative_sum((xt[e:, ...] @ xr[: T - e, ...]) / n_seq, axis=0)  # (T - e, n_x, n_x)
            # keep rows v = T-lags .. T-1-e (the ones read below), zero-padded to lags rows
            pad = xp.zeros((e, n_x, n_x), dtype=c.dtype, device=dev)
            cums.append(xp.concat([c[T - lags :, ...], pad], axis=0))
            ryx_lag.append(xp.tensordot(y[:, e:, :], x[:, : T - e, :], axes=([0, 1], [0, 1])) / n_seq)
        cum = xp.concat(cums, axis=0)  # row d lags + v - (T - lags): sum_{u <= v} P_d[u]
        ryx3 = xp.stack(ryx_lag, axis=0)
        stride, offset = lags, T - lags
    # R_xx[j, j'] = cum_d[T-1-max(j, j')] with d = |j - j'|, transposed on and below the diagonal
    dd = xp.abs(j - jp)
    rows = dd * stride + (T - 1 - offset) - xp.maximum(j, jp)
    G = xp.reshape(xp.take(cum, xp.reshape(rows, (lags * lags,)), axis=0), (lags, lags, n_x, n_x))
    R = xp.where((j < jp)[:, :, None, None], G, xp.matrix_transpose(G))
    rxx = xp.reshape(xp.permute_dims(R, (0, 2, 1, 3)), (lags * n_x, lags * n_x))
    ryx = xp.reshape(xp.permute_dims(ryx3, (1, 0, 2)), (n_y, lags * n_x))
    return rxx, ryx


def loss_grad_mat(lm: Any, corr: Correlations) -> tuple[float, Any]:
    """Loss and gradient for L in matrix layout lm (n_y, lags*n_x): G = L R_xx - R_yx."""
    xp = array_namespace(lm)
    lr = lm @ corr.rxx
    loss = 0.5 * corr.ryy - float(xp.sum(lm * corr.ryx)) + 0.5 * float(xp.sum(lm * lr))
    return loss, lr - corr.ryx


def to_mat(L: Any, corr: Correlations) -> Any:
    """(lags, n_y, n_x) -> matrix layout (n_y, lags*n_x)."""
    L = corr.backend.asarray(L)
    if tuple(L.shape) != (corr.lags, corr.n_y, corr.n_x):
        raise UsageError(
            f"the impulse response must have shape (lags, n_y, n_x) = {(corr.lags, corr.n_y, corr.n_x)}, got {tuple(L.shape)}"
        )
    xp = array_namespace(L)
    return xp.reshape(xp.permute_dims(L, (1, 0, 2)), (corr.n_y, corr.dim))


def from_mat(lm: Any, corr: Correlations) -> Any:
    """Matrix layout (..., n_y, lags*n_x) -> (..., lags, n_y, n_x)."""
    xp = array_namespace(lm)
    lead = tuple(lm.shape[:-2])
    out = xp.reshape(lm, lead + (corr.n_y, corr.lags, corr.n_x))
    nd = len(lead)
    return xp.permute_dims(out, tuple(range(nd)) + (nd + 1, nd, nd + 2))


def impulse_loss_and_grad(L: Any, corr: Correlations) -> tuple[float, Any]:
    """Loss(L) and G = dLoss/dL (shape (lags, n_y, n_x), backend array) of an impulse response."""
    loss, gm = loss_grad_mat(to_mat(L, corr), corr)
    return loss, from_mat(gm, corr)


# --------------------------------------------------------------------------- the RNN


def _check_params(C: Any, F: Any, W: Any, corr: Correlations) -> int:
    n = int(W.shape[0]) if W.ndim == 2 else -1
    if W.ndim != 2 or W.shape != (n, n) or n < 1:
        raise UsageError(f"W must be a square (n, n) matrix, got shape {tuple(W.shape)}")
    if tuple(F.shape) != (n, corr.n_x):
        raise UsageError(f"F must have shape (n, n_x) = {(n, corr.n_x)}, got {tuple(F.shape)}")
    if tuple(C.shape) != (corr.n_y, n):
        raise UsageError(f"C must have shape (n_y, n) = {(corr.n_y, n)}, got {tuple(C.shape)}")
    if corr.lags != corr.seq_len:
        raise UsageError(
            f"RNN gradients need the correlations at every lag (lags = T = {corr.seq_len}), got lags = {corr.lags}"
        )
    return n


def _rnn_core(
    ce: Any, fe: Any, we: Any, corr: Correlations, need_grads: bool, d_we_out: Any = None
) -> tuple[float, Any, Any, Any, Any]:
    """Loss, L (matrix layout) and, if asked, the effective-matrix gradients (dC_e, dF_e, dW_e).

    Krylov vectors are kept as rows, so every product below is one contiguous matmul:
    ``vt[m] = V_m^T = F_e^T (W_e^T)^m`` (n_x, n) and ``ut[k] = U_k^T = C_e W_e^k`` (n_y, n);
    each product is a fresh array, and each sequence is joined by one concatenation (the
    Array API has no ``out=``; this copies O(T n (n_x + n_y)) numbers, small against the
    T passes over W_e). ``d_we_out``, if given, is an (n, n) array that receives dW_e by
    assignment; the returned dW_e is then that array.
    """
    xp = array_namespace(we)
    T, n_x, n_y = corr.lags, corr.n_x, corr.n_y
    we_t = we.T
    rows = [fe.T]
    for _ in range(1, T):
        rows.append(rows[-1] @ we_t)
    vs = xp.concat(rows, axis=0)  # (T n_x, n), rows (j, a): V_j[:, a]
    lm = ce @ vs.T  # (n_y, T n_x): L_j = C_e V_j
    loss, gm = loss_grad_mat(lm, corr)
    if not need_grads:
        return loss, lm, None, None, None
    rows = [ce]
    for _ in range(1, T):
        rows.append(rows[-1] @ we)
    us = xp.concat(rows, axis=0)  # (T n_y, n), rows (k, p): U_k[:, p]
    dev = device(we)
    g3 = xp.reshape(gm, (n_y, T, n_x))  # g3[p, j, a] = G_j[p, a]
    d_ce = gm @ vs  # sum_j G_j V_j^T
    d_fe = us.T @ xp.reshape(xp.permute_dims(g3, (1, 0, 2)), (T * n_y, n_x))  # sum_j U_j G_j
    if T > 1:
        # block-Hankel matrix Gh[(k, p), (m, a)] = G_{k+1+m}[p, a] (0 past lag T-1), k, m = 0..T-2
        gpad = xp.concat([g3[:, 1:, :], xp.zeros((n_y, T - 1, n_x), dtype=gm.dtype, device=dev)], axis=1)
        idx = xp.arange(T - 1, device=dev)[:, None] + xp.arange(T - 1, device=dev)[None, :]
        gh = xp.reshape(xp.take(gpad, xp.reshape(idx, ((T - 1) ** 2,)), axis=1), (n_y, T - 1, T - 1, n_x))
        gh = xp.reshape(xp.permute_dims(gh, (1, 0, 2, 3)), ((T - 1) * n_y, (T - 1) * n_x))
        h_mat = gh @ vs[: (T - 1) * n_x, :]  # rows (k, p): H_k = sum_m G_{k+1+m} V_m^T
        d_we = us[: (T - 1) * n_y, :].T @ h_mat  # sum_k U_k H_k
    else:
        d_we = xp.zeros_like(we)
    if d_we_out is not None:
        d_we_out[...] = d_we
        d_we = d_we_out
    return loss, lm, d_ce, d_fe, d_we


def rnn_impulse(draw: RNNDraw, lags: int, *, backend: Backend | None = None) -> Any:
    """Impulse response L_j = C_e W_e^j F_e, j < lags, of the raw parameters of ``draw`` (backend array (lags, n_y, n_x))."""
    backend = backend if backend is not None else get_backend("numpy")
    C, F, W = backend.asarray(draw.C), backend.asarray(draw.F), backend.asarray(draw.W)
    xp = array_namespace(W)
    n = int(W.shape[0])
    a_c, a_f, a_w = draw.spec.scales(n)
    v = a_f * F
    out = xp.empty((lags, C.shape[0], F.shape[1]), dtype=backend.dtype, device=backend.device)
    for j in range(lags):
        out[j, ...] = a_c * (C @ v)
        v = a_w * (W @ v)
    return out


def rnn_loss_and_grads(draw: RNNDraw, corr: Correlations, *, loss: str | None = None) -> tuple[float, Any, Any, Any]:
    """The loss and its exact gradients with respect to the raw parameters (C, F, W) of ``draw``.

    Returns ``(loss, dC, dF, dW)``, the gradients as backend arrays, with
    dLoss/dP = alpha_P dLoss/dP_e (see the module docstring for dLoss/dP_e); the
    scales alpha_P are the draw's spec's. ``loss``, if given, must name ``corr.loss``.
    """
    if loss is not None and loss != corr.loss:
        raise UsageError(f"the correlations were computed for loss {corr.loss!r}, not {loss!r}")
    backend = corr.backend
    C, F, W = backend.asarray(draw.C), backend.asarray(draw.F), backend.asarray(draw.W)
    n = _check_params(C, F, W, corr)
    a_c, a_f, a_w = draw.spec.scales(n)
    value, _, d_ce, d_fe, d_we = _rnn_core(a_c * C, a_f * F, a_w * W, corr, need_grads=True)
    return value, a_c * d_ce, a_f * d_fe, a_w * d_we


@dataclass
class TrainResult:
    """Outcome of :func:`train_rnn` (host NumPy arrays).

    ``loss`` (k+1,) and ``impulse`` (k+1, T, n_y, n_x) hold iterates 0..k, with
    k = ``steps_done`` (= ``steps`` unless the run diverged); ``C``, ``F``, ``W`` are the
    raw parameters of iterate k. If iterate ``diverged_step`` had a non-finite loss or
    one above ``blowup`` x max(initial loss, r_yy/2), training stopped there:
    ``diverged`` is True, that iterate is *not* recorded (so no array holds NaN or inf)
    and ``diverged_loss`` is its loss.
    """

    C: np.ndarray
    F: np.ndarray
    W: np.ndarray
    loss: np.ndarray
    impulse: np.ndarray | None
    steps: int
    steps_done: int
    diverged: bool
    diverged_step: int | None
    diverged_loss: float | None
    lr: float
    spec: ModelSpec
    loss_kind: str

    @property
    def lr_mults(self) -> tuple[float, float, float]:
        """(eta_C, eta_F, eta_W) of the run (the spec's learning-rate multipliers; ``lr`` is the base step)."""
        return self.spec.lr_mults

    @property
    def param(self) -> str:
        return self.spec.param

    def raise_if_diverged(self) -> None:
        """Raise :class:`UsageError` (one sentence) if the run diverged."""
        if self.diverged:
            raise UsageError(
                f"gradient descent diverged at step {self.diverged_step} of {self.steps} "
                f"(loss {self.diverged_loss:.3g}) with lr = {self.lr:g}; use a smaller step or --lr auto"
            )


def train_rnn(
    draw: RNNDraw,
    x: Any,
    y: Any,
    *,
    loss: str = "all",
    lr: float,
    steps: int,
    backend: Backend | None = None,
    record_impulse: bool = True,
    progress: Callable[[int, float], None] | None = None,
    corr: Correlations | None = None,
    blowup: float = DEFAULT_BLOWUP,
) -> TrainResult:
    """Full-batch gradient descent on the raw parameters of a linear RNN, from the initial point ``draw``.

    Iterates, for k = 0..steps-1 (conventions, "Training"),

        P(k+1) = P(k) - s eta eta_P dLoss/dP (P(k)),   P in {C, F, W},

    with s = :meth:`ModelSpec.step_factor` (1 for ``ntk``, 1/n for ``standard``), the base
    step eta = ``lr`` and the multipliers (eta_C, eta_F, eta_W) = ``draw.spec.lr_mults``,
    using the exact gradients of :func:`rnn_loss_and_grads`. The data enter
    only through :func:`lagged_correlations` (computed here from ``x``, ``y`` unless
    ``corr`` is given, in which case ``x`` and ``y`` may be None). Records the loss and
    (if ``record_impulse``) the impulse response L(k) of every iterate k = 0..steps;
    ``progress(k, loss_k)`` is called for each iterate. Divergence is detected and
    reported in the result, see :class:`TrainResult`.
    """
    _check_choice("loss", loss, LOSSES)
    lr = check_positive("lr", lr)
    steps = check_steps(steps)
    spec = draw.spec
    eta_c, eta_f, eta_w = spec.lr_mults
    blowup = check_positive("blowup", blowup)
    if corr is None:
        if x is None or y is None:
            raise UsageError("train_rnn needs the data x and y, or their correlations")
        backend = backend if backend is not None else get_backend("numpy")
        corr = lagged_correlations(x, y, None, loss, backend)
    else:
        if corr.loss != loss:
            raise UsageError(f"the correlations were computed for loss {corr.loss!r}, not {loss!r}")
        if backend is not None and backend is not corr.backend:
            raise UsageError("the correlations live on a different backend than the one requested")
        backend = corr.backend
    C, F, W = backend.asarray(draw.C), backend.asarray(draw.F), backend.asarray(draw.W)
    xp = array_namespace(W)
    n = _check_params(C, F, W, corr)
    a_c, a_f, a_w = spec.scales(n)
    step = lr * spec.step_factor(n)
    # Work on the effective matrices: P_e <- P_e - s eta eta_P alpha_P^2 dLoss/dP_e is the raw update.
    ce, fe, we = a_c * C, a_f * F, a_w * W  # new arrays: the caller's are never modified
    rate_c, rate_f, rate_w = step * eta_c * a_c**2, step * eta_f * a_f**2, step * eta_w * a_w**2
    T = corr.lags

    impulse = (
        xp.empty((steps + 1, T, corr.n_y, corr.n_x), dtype=backend.dtype, device=backend.device)
        if record_impulse
        else None
    )
    losses: list[float] = []
    diverged_step: int | None = None
    diverged_loss: float | None = None
    ref = 0.0
    prev = (ce, fe, we)
    # A step allocates one n x n array, the gradient dW_e (a matmul result); it is scaled
    # and updated in place into the new iterate W_e, so the previous iterate survives
    # (for the roll-back on divergence) without a second buffer.
    with warnings.catch_warnings():
        # a diverging run overflows on purpose; it is detected from the loss below
        warnings.filterwarnings("ignore", r"(overflow|invalid value) encountered", RuntimeWarning)
        for k in range(steps + 1):
            need = k < steps
            value, lm, d_ce, d_fe, d_we = _rnn_core(ce, fe, we, corr, need_grads=need)
            if k == 0:
                if not math.isfinite(value):
                    raise UsageError(
                        "the initial RNN has a non-finite loss (its impulse response overflows); "
                        "lower sigma_w2 or the sequence length"
                    )
                ref = max(value, 0.5 * corr.ryy)
            elif not math.isfinite(value) or value > blowup * ref:
                diverged_step, diverged_loss = k, value
                ce, fe, we = prev
                break
            losses.append(value)
            if impulse is not None:
                impulse[k, ...] = from_mat(lm, corr)
            if progress is not None:
                progress(k, value)
            if need:
                prev = (ce, fe, we)
                ce = ce - rate_c * d_ce
                fe = fe - rate_f * d_fe
                # W_e - rate_w dW_e, computed in the gradient's own array: -(r d) + w is exactly w - r d
                d_we *= -rate_w
                d_we += we
                we = d_we
    done = len(losses) - 1
    return TrainResult(
        # raw parameters; a frozen one (eta_P = 0) is returned exactly as given
        C=backend.to_numpy(C if eta_c == 0 else ce / a_c),
        F=backend.to_numpy(F if eta_f == 0 else fe / a_f),
        W=backend.to_numpy(W if eta_w == 0 else we / a_w),
        loss=np.asarray(losses, dtype=np.float64),
        impulse=backend.to_numpy(impulse[: done + 1, ...]) if impulse is not None else None,
        steps=steps,
        steps_done=done,
        diverged=diverged_step is not None,
        diverged_step=diverged_step,
        diverged_loss=diverged_loss,
        lr=lr,
        spec=spec,
        loss_kind=loss,
    )


def train_bytes(n: int, n_in: int, n_out: int, seq_len: int, n_seq: int, steps: int, itemsize: int = 8) -> int:
    """Peak working memory of one training run (bytes), an upper estimate checked before any work.

    In the working dtype: the parameters W, F, C, their gradients, the update and the
    draw's raw copy, 4 (n^2 + n (n_x + n_y)); the Krylov vectors U, V and their
    transposed copies, 4 T n (n_x + n_y); the block-Hankel matrix of the gradients,
    2 T^2 n_x n_y; the recorded trajectories of the RNN and the SCNN impulse responses,
    2 (steps + 1) T n_x n_y; the data, its lagged sums and the correlations,
    3 N T (n_x + n_y) + 4 (T n_x)^2; and the losses, steps + 1.
    """
    n, n_in, n_out, T, N, s = (int(v) for v in (n, n_in, n_out, seq_len, n_seq, steps))
    items = (4 * (n * n + n * (n_in + n_out)) + 4 * T * n * (n_in + n_out) + 2 * T * T * n_in * n_out
             + 2 * (s + 1) * T * n_in * n_out + 3 * N * T * (n_in + n_out) + 4 * (T * n_in) ** 2 + (s + 1))
    return items * int(itemsize)
