r"""The curvature of a finite-width linear RNN at its initial point, for a stable gradient step.

Full-batch gradient descent on the raw parameters P moves the impulse response, to
first order in the step, by

    L <- L - eta Theta G,      G = grad_L Loss = L H - R_yx (matrix layout),

where Theta is the width-n draw's own lag NTK (``docs/conventions.md``, "The lag
NTK": Theta = s sum_P eta_P J_P J_P^T, J_P = dL/dP) and H = R_xx (x) I_{n_y} is the
Hessian of the quadratic loss in L (:mod:`linrnn.verify.train`). The step is stable
while eta mu_max < 2, with mu_max the largest eigenvalue of Theta H, i.e. of the
symmetric positive semi-definite Gauss-Newton operator

    B = H^{1/2} Theta H^{1/2}     (the parameter-space Gauss-Newton matrix
                                   J^T H J preconditioned by the step multipliers has
                                   the same non-zero eigenvalues).

In the wide limit Theta tends to diag(lambda_j) and mu_max to the lag-weighted
curvature of :func:`linrnn.verify.scnn.auto_lr`; at long sequences (T ~ n) or at
q >= 1 the draw's Theta is far from that limit (W_e^j of a finite Gaussian matrix
grows like rho(W_e)^j with a spectral radius above sqrt(q)), and a step from the limit
diverges. Here Theta is never formed: Theta g = J (s eta J^T g) is one vector-Jacobian
product (the gradient code of :func:`linrnn.verify.train.impulse_vjp`) followed by
one Jacobian-vector product (:func:`linrnn.verify.train.impulse_jvp`), each
O(T n^2 (n_x + n_y)), and the largest eigenvalue of B comes from Lanczos iteration
(ARPACK, ``scipy.sparse.linalg.eigsh``), or from the dense matrix when B is small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from linrnn.core.errors import UsageError
from linrnn.verify.sample import RNNDraw
from linrnn.verify.train import (
    Correlations, _check_params, backward_krylov_rows, forward_krylov_rows, impulse_jvp, impulse_vjp,
)

#: Below this dimension n_y T n_x the operator B is built densely (one matvec per basis vector).
DENSE_MAX_DIM = 64


@dataclass(frozen=True)
class Curvature:
    """The largest eigenvalue of B = H^{1/2} Theta H^{1/2} for one draw, and how it was found."""

    mu_max: float
    matvecs: int
    method: str  # "dense" or "lanczos"


class GaussNewton:
    """The operator g -> Theta g of one draw at its initial point, on matrix-layout arrays (n_y, T n_x)."""

    def __init__(self, draw: RNNDraw, corr: Correlations) -> None:
        be = corr.backend
        C, F, W = be.asarray(draw.C), be.asarray(draw.F), be.asarray(draw.W)
        n = _check_params(C, F, W, corr)
        a_c, a_f, a_w = draw.spec.scales(n)
        s = draw.spec.step_factor(n)
        eta_c, eta_f, eta_w = draw.spec.lr_mults
        self.corr = corr
        self.ce, self.fe, self.we = a_c * C, a_f * F, a_w * W
        # Theta = s sum_P eta_P alpha_P^2 J_{P_e} J_{P_e}^T (dL/dP = alpha_P dL/dP_e)
        self.rates = (s * eta_c * a_c**2, s * eta_f * a_f**2, s * eta_w * a_w**2)
        self.vs = forward_krylov_rows(self.fe, self.we, corr.lags)
        self.us = backward_krylov_rows(self.ce, self.we, corr.lags)

    def theta(self, g: Any) -> Any:
        """Theta g for g of shape (n_y, T n_x): J (s eta J^T g)."""
        d_ce, d_fe, d_we = impulse_vjp(g, self.vs, self.us, self.we, self.corr)
        r_c, r_f, r_w = self.rates
        return impulse_jvp(r_c * d_ce, r_f * d_fe, r_w * d_we, self.ce, self.we, self.vs, self.corr)


def rnn_curvature(draw: RNNDraw, corr: Correlations, *, tol: float = 1e-8) -> Curvature:
    """mu_max of B = H^{1/2} Theta H^{1/2} for the draw at its initial point (module docstring).

    Exact (dense eigendecomposition) when n_y T n_x <= :data:`DENSE_MAX_DIM`, else
    Lanczos to relative tolerance ``tol`` from a fixed start vector (deterministic).
    """
    from linrnn.verify.threads import blas_threads

    with blas_threads(1):  # vector-matrix passes: a BLAS thread pool only spins (10x slower on a shared machine)
        return _rnn_curvature(draw, corr, tol)


def _rnn_curvature(draw: RNNDraw, corr: Correlations, tol: float) -> Curvature:
    be = corr.backend
    gn = GaussNewton(draw, corr)
    n_y, dim = corr.n_y, corr.dim
    h = be.to_numpy(corr.rxx).astype(np.float64)
    w, q = np.linalg.eigh(0.5 * (h + h.T))
    h_half = (q * np.sqrt(np.clip(w, 0.0, None))) @ q.T  # H^{1/2}, symmetric
    h_half_be = be.asarray(h_half)
    count = [0]

    def apply(u: np.ndarray) -> np.ndarray:
        count[0] += 1
        um = be.asarray(np.asarray(u, dtype=np.float64).reshape(n_y, dim))
        return be.to_numpy(gn.theta(um @ h_half_be) @ h_half_be).reshape(-1).astype(np.float64)

    size = n_y * dim
    if size <= DENSE_MAX_DIM:
        B = np.stack([apply(e) for e in np.eye(size)], axis=1)
        mu = float(np.linalg.eigvalsh(0.5 * (B + B.T))[-1])
        method = "dense"
    else:
        from scipy.sparse.linalg import LinearOperator, eigsh

        op = LinearOperator((size, size), matvec=apply, dtype=np.float64)
        v0 = np.random.default_rng(0).standard_normal(size)
        mu = float(eigsh(op, k=1, which="LA", tol=tol, v0=v0, return_eigenvectors=False)[0])
        method = "lanczos"
    if not (math.isfinite(mu) and mu > 0):
        raise UsageError("the RNN's Gauss-Newton curvature at its initial point is not positive and finite "
                         "(all-zero inputs, or an impulse response that overflows), so no step size can be chosen")
    return Curvature(mu, count[0], method)
