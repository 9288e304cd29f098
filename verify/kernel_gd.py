r"""Kernel gradient descent on the impulse response with a full lag kernel: the wide-network prediction of any family.

The scaled CNN (:mod:`linrnn.verify.scnn`) is kernel gradient descent with a kernel
diagonal in the lags (the dense Gaussian family's lag weights). A family whose lag NTK is
not diagonal (the diagonal and LRU families) moves, in the wide limit, as

    L(k+1) = L(k) - eta Theta grad_L Loss(L(k)),

with Theta the full lag kernel ((lags n_y n_x) x (lags n_y n_x), the layout of
``docs/conventions.md``). In the vector v = vec L, index (output a, lag j, input b) (the
matrix layout of :mod:`linrnn.verify.train` flattened), the loss is quadratic with
Hessian H = I_{n_y} (x) R_xx and gradient g(v) = H v - r. Write Theta = S S^T (S = V
diag(sqrt w) from Theta's eigendecomposition, w clipped at 0), v(k) = v(0) + S z(k),
and diagonalise M = S^T H S = U diag(mu) U^T. With B = S U and beta = -B^T g(v(0)):

* discrete GD:  v(k) = v(0) + B diag(eta phi_k(eta mu)) beta, phi_k(z) = sum_{l<k} (1 - z)^l
  (:func:`linrnn.verify.scnn.gd_filter`);
* converged:    v(inf) = v(0) + B diag(1/mu) beta over mu > rcond mu_max, the interpolant
  closest to v(0) in the RKHS norm (v - v(0))^T Theta^+ (v - v(0)) (the min-norm solution:
  Theta Z^T (Z Theta Z^T)^+ (y - Z v(0)) added to v(0), for the design matrix Z of loss
  ``last``).

For a diagonal Theta this is the SCNN (a test compares them). The kernel is small
(T n_y n_x per side), so the algebra runs on the host in float64; the correlations are
copied there once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from linrnn.core.errors import UsageError
from linrnn.core.validate import check_positive


def kernel_matrix(theta: Any, corr: Any) -> np.ndarray:
    """Theta as a (n_y lags n_x)-square float64 matrix in the order (a, j, b) of the matrix layout.

    ``theta``: the layout (lags, n_y, n_x, lags, n_y, n_x), or a (lags, lags) scalar kernel (then
    times delta_aa' delta_bb'). Must be symmetric and finite."""
    t = np.asarray(theta, dtype=np.float64)
    T, ny, nx = corr.lags, corr.n_y, corr.n_x
    if t.shape == (T, T):
        t = np.einsum("jk,ac,bd->jabkcd", t, np.eye(ny), np.eye(nx))
    if t.shape != (T, ny, nx, T, ny, nx):
        raise UsageError(f"the lag kernel must have shape (lags, n_y, n_x, lags, n_y, n_x) = "
                         f"{(T, ny, nx, T, ny, nx)} or (lags, lags), got {t.shape}")
    m = t.transpose(1, 0, 2, 4, 3, 5).reshape(ny * T * nx, ny * T * nx)
    if not np.all(np.isfinite(m)):
        raise UsageError("the lag kernel must be finite")
    if not np.allclose(m, m.T, rtol=1e-10, atol=1e-12 * float(np.max(np.abs(m)) or 1.0)):
        raise UsageError("the lag kernel must be symmetric")
    return 0.5 * (m + m.T)


@dataclass(frozen=True)
class KernelCurvature:
    """The kernel-weighted curvature M = S^T H S = U diag(mu) U^T of a lag kernel on a data set (module docstring):
    ``B`` = S U (dim x dim), ``mu`` ascending, clipped at 0; host float64."""

    B: np.ndarray
    mu: np.ndarray
    rxx: np.ndarray
    ryx: np.ndarray
    corr: Any

    @classmethod
    def of(cls, corr: Any, theta: Any) -> KernelCurvature:
        m = kernel_matrix(theta, corr)
        w, V = np.linalg.eigh(m)
        S = V * np.sqrt(np.clip(w, 0.0, None))[None, :]
        rxx = np.asarray(corr.backend.to_numpy(corr.rxx), dtype=np.float64)
        ryx = np.asarray(corr.backend.to_numpy(corr.ryx), dtype=np.float64)
        H = np.kron(np.eye(corr.n_y), rxx)
        M = S.T @ H @ S
        mu, U = np.linalg.eigh(0.5 * (M + M.T))
        return cls(B=S @ U, mu=np.clip(mu, 0.0, None), rxx=rxx, ryx=ryx, corr=corr)

    @property
    def mu_max(self) -> float:
        return float(self.mu[-1])

    def start(self, L0: Any) -> tuple[np.ndarray, np.ndarray]:
        """(v(0), beta = -B^T g(v(0))) for an impulse response L0 (lags, n_y, n_x)."""
        c = self.corr
        L0 = np.asarray(L0, dtype=np.float64)
        if L0.shape != (c.lags, c.n_y, c.n_x):
            raise UsageError(f"the impulse response must have shape (lags, n_y, n_x) = {(c.lags, c.n_y, c.n_x)}, got "
                             f"{L0.shape}")
        lm = L0.transpose(1, 0, 2).reshape(c.n_y, c.lags * c.n_x)
        g = (lm @ self.rxx - self.ryx).reshape(-1)
        return lm.reshape(-1), -(self.B.T @ g)

    def assemble(self, v: np.ndarray) -> np.ndarray:
        """Vectors (..., dim) back to impulse responses (..., lags, n_y, n_x)."""
        c = self.corr
        lead = v.shape[:-1]
        return np.moveaxis(v.reshape(*lead, c.n_y, c.lags, c.n_x), -2, -3)


def kernel_trajectory(L0: Any, corr: Any, theta: Any, *, lr: float, steps: int) -> np.ndarray:
    """L(k), k = 0..``steps``, of kernel gradient descent L <- L - lr Theta grad Loss from ``L0``: host float64
    (steps + 1, lags, n_y, n_x). One sentence (:class:`UsageError`) when lr mu_max > 2 (it diverges)."""
    from linrnn.verify.scnn import STABILITY_LIMIT, gd_filter
    from linrnn.verify.train import check_steps

    lr = check_positive("lr", lr)
    steps = check_steps(steps)
    curv = KernelCurvature.of(corr, theta)
    if lr * curv.mu_max > STABILITY_LIMIT * (1 + 1e-12):
        raise UsageError(f"the step lr = {lr:g} exceeds the stability limit 2/mu_max = "
                         f"{STABILITY_LIMIT / curv.mu_max:.6g} of the kernel-weighted loss, so kernel gradient "
                         "descent diverges; use a smaller step")
    v0, beta = curv.start(L0)
    import array_api_compat.numpy as xp

    phi = np.asarray(gd_filter(xp, lr * curv.mu, np.arange(steps + 1, dtype=np.int64)))  # (K, dim)
    v = v0[None, :] + (lr * phi * beta[None, :]) @ curv.B.T
    return curv.assemble(v)


def kernel_min_norm(L0: Any, corr: Any, theta: Any, *, rcond: float | None = None) -> np.ndarray:
    """The point kernel gradient descent converges to from ``L0``: the minimiser of the loss closest to L0 in the
    RKHS norm of Theta (module docstring); directions with mu <= ``rcond`` mu_max (default 100 dim eps) are flat.
    Host float64 (lags, n_y, n_x)."""
    curv = KernelCurvature.of(corr, theta)
    rcond = 1e2 * curv.mu.size * float(np.finfo(np.float64).eps) if rcond is None else float(rcond)
    keep = curv.mu > rcond * curv.mu_max
    inv = np.where(keep, 1.0 / np.where(keep, curv.mu, 1.0), 0.0)
    v0, beta = curv.start(L0)
    return curv.assemble(v0 + curv.B @ (inv * beta))


__all__ = ["KernelCurvature", "kernel_matrix", "kernel_min_norm", "kernel_trajectory"]
