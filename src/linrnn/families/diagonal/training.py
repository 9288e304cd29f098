r"""Gradient descent on the diagonal families: the structured gradient of an impulse-response loss, O(n L) a step.

A diagonal family's impulse response is L_j[a, b] = Re(sum_i c_ai G_ji b_ib) / sqrt(n) with
G_ji = g_i lambda_i^j (g the unit's input gain: 1 for the diagonal family, gamma for the LRU).
The losses of :mod:`linrnn.verify.train` are quadratics in L, so with Gbar_j = dLoss/dL_j
(real, (L, n_y, n_x), from the data's lagged correlations) the chain rule through the
recurrence's structure needs only the lag sums

    A[a, b, i] = sum_j Gbar_j[a, b] G_ji,      H[a, b, i] = sum_j Gbar_j[a, b] D_ji,

one (n_y n_x x L) by (L x n) product each, where d(c_a g lambda^j b_b)/dp = c_a b_b D_j for a
per-unit parameter p. For a complex parameter z = x + i y and a holomorphic f,
d Re f / dx = Re f' and d Re f / dy = -Im f', so the gradient over its real and imaginary
parts, written as one complex number dLoss/dx + i dLoss/dy, is sum_j Gbar_j conj(f'_j):

* c:  dLoss/dc_ai = conj(sum_b A[a, b, i] b_ib) / sqrt(n);
* b:  dLoss/db_ib = conj(sum_a c_ai A[a, b, i]) / sqrt(n);
* a complex per-unit parameter (lambda, D_j = j lambda^{j-1}):
  conj(sum_ab c_ai b_ib H[a, b, i]) / sqrt(n);
* a real per-unit parameter (the LRU's gamma_log, nu_log, theta_log):
  Re(sum_ab c_ai b_ib H[a, b, i]) / sqrt(n).

A step is P <- P - eta eta_P dLoss/dP for every trained P (real and imaginary parts
together for a complex P), the multipliers of the family (``lr_c``, ``lr_f``, ...): to
first order L moves by -eta Theta Gbar with Theta the family's empirical lag NTK
(:meth:`~linrnn.families.diagonal.model.RingModel.empirical_ntk`). Nothing here is an
n x n array: a step costs the powers lambda^j (L x n) and three products of that size.
On the Array API (:mod:`linrnn.verify.backend`); a test checks every gradient against
central finite differences of the loss.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from linrnn.core.errors import UsageError
from linrnn.core.validate import check_positive

#: An iterate whose loss exceeds this multiple of max(initial loss, r_yy / 2) has diverged (as
#: :data:`linrnn.verify.train.DEFAULT_BLOWUP`).
BLOWUP = 1e8


def lag_sums(gbar: Any, X: Any) -> Any:
    """sum_j Gbar_j[a, b] X_ji for Gbar (L, n_y, n_x) real and X (L, n) complex: shape (n_y, n_x, n)."""
    from linrnn.verify.backend import array_namespace

    xp = array_namespace(X)
    L, ny, nx = gbar.shape
    g = xp.astype(xp.reshape(xp.permute_dims(gbar, (1, 2, 0)), (ny * nx, L)), X.dtype)
    return xp.reshape(xp.matmul(g, X), (ny, nx, X.shape[-1]))


def channel_sum(c: Any, b: Any, H: Any) -> Any:
    """sum_ab c_ai b_ib H[a, b, i] for c (n_y, n), b (n, n_x), H (n_y, n_x, n): shape (n,)."""
    from linrnn.verify.backend import array_namespace

    xp = array_namespace(H)
    return xp.sum(xp.sum(c[:, None, :] * xp.matrix_transpose(b)[None, :, :] * H, axis=0), axis=0)


def readout_grads(A: Any, c: Any, b: Any) -> tuple[Any, Any]:
    """(dLoss/dc (n_y, n), dLoss/db (n, n_x)) from the lag sums A of the gains G (module docstring)."""
    from linrnn.verify.backend import array_namespace

    xp = array_namespace(A)
    n = A.shape[-1]
    s = math.sqrt(n)
    gc = xp.conj(xp.sum(A * xp.matrix_transpose(b)[None, :, :], axis=1)) / s  # (n_y, n)
    gb = xp.matrix_transpose(xp.conj(xp.sum(c[:, None, :] * A, axis=0))) / s  # (n, n_x)
    return gc, gb


@dataclass(frozen=True)
class RingTrainResult:
    """What :func:`train_ring` returns (host NumPy arrays): ``impulse`` (K + 1, L, n_y, n_x) and ``loss`` (K + 1,)
    of the iterates 0..K (K = ``steps_done``), ``max_modulus`` (K + 1,): max_i |lambda_i| of each iterate, and
    ``params``, the last iterate (a draw of the model, backend arrays). A run whose loss blew up (non-finite,
    or above :data:`BLOWUP` times its reference) stops there: ``diverged_step`` is that iterate (not recorded)."""

    impulse: np.ndarray
    loss: np.ndarray
    max_modulus: np.ndarray
    params: Any
    lr: float
    steps: int
    steps_done: int
    diverged_step: int | None

    @property
    def diverged(self) -> bool:
        return self.diverged_step is not None

    def raise_if_diverged(self) -> None:
        """One sentence (:class:`UsageError`) if the run diverged."""
        if self.diverged:
            raise UsageError(f"gradient descent on the diagonal units diverged at step {self.diverged_step} of "
                             f"{self.steps} with lr = {self.lr:g}; use a smaller step")


def train_ring(model: Any, params: Any, corr: Any, *, lr: float, steps: int) -> RingTrainResult:
    """Full-batch gradient descent of a diagonal family's draw ``params`` on the loss of the correlations ``corr``
    (:class:`linrnn.verify.train.Correlations`, lags = the sequence length), ``steps`` steps of base step ``lr``.

    Each step: L = ``model.impulse``, (Loss, Gbar) from the correlations, the gradients by
    ``model.loss_and_grad`` (structured, module docstring), P <- P - lr eta_P dLoss/dP.
    """
    from linrnn.verify.backend import array_namespace
    from linrnn.verify.train import check_steps

    lr = check_positive("lr", lr)
    steps = check_steps(steps)
    be = corr.backend
    impulses, losses, moduli = [], [], []
    diverged = None
    ref = 0.0
    d = params
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"(overflow|invalid value) encountered", RuntimeWarning)
        for k in range(steps + 1):
            value, L, grads = model.loss_and_grad(d, corr, need_grads=k < steps)
            if k == 0:
                if not math.isfinite(value):
                    raise UsageError("the initial network has a non-finite loss; lower r_max or the sequence length")
                ref = max(value, 0.5 * corr.ryy)
            elif not math.isfinite(value) or value > BLOWUP * ref:
                diverged = k
                break
            losses.append(value)
            impulses.append(be.to_numpy(L))
            lam = model.eigenvalues(d)
            moduli.append(float(array_namespace(lam).max(array_namespace(lam).abs(lam))))
            if k < steps:
                prev, d = d, model.step(d, grads, lr)
    if diverged is not None:
        d = prev
    return RingTrainResult(impulse=np.stack(impulses), loss=np.asarray(losses), max_modulus=np.asarray(moduli),
                           params=d, lr=lr, steps=steps, steps_done=len(losses) - 1, diverged_step=diverged)


__all__ = ["BLOWUP", "RingTrainResult", "channel_sum", "lag_sums", "readout_grads", "train_ring"]
