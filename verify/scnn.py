"""The scaled convolutional model (SCNN): gradient descent on the impulse response with lag weights.

Conventions ("The scaled convolutional model"): gradient descent with step eta on the
trainable Ltilde of yhat_t = sum_j rho_j Ltilde_j x_{t-j} is

    L(k+1) = L(k) - eta D grad_L Loss(L(k)),     D = diag(lambda_j) (x) I,  lambda_j = rho_j^2,

which is the wide-RNN dynamics L <- L - eta Theta grad_L Loss when Theta is the
limiting lag NTK with lag weights lambda_j (Emami et al., ICML 2021, Theorem 1). The
lag weights come from :func:`linrnn.derive.weights`; every function here takes them as an
array ``lam`` (shape (lags,), entries >= 0).

The loss is a quadratic in L (see :mod:`linrnn.verify.train`): per output row p, with
vec index (j, a), grad = L R_xx - R_yx, so its Hessian is H = R_xx (x) I_{n_y} and the
dynamics decouple over output rows. With s = sqrt(lambda_j) repeated over the inputs,
write L(k) = L(0) + diag(s) z(k) and diagonalise the lag-weighted curvature

    M = diag(s) R_xx diag(s) = Q diag(mu) Q^T       (mu >= 0, the spectrum of D^{1/2} H D^{1/2}).

In the eigenbasis, with b = -Q^T diag(s) G(0) (G(0) the gradient at L(0)), each
coordinate c_i = (Q^T z)_i evolves independently:

* discrete GD:    c_i(k) = eta b_i sum_{l<k} (1 - eta mu_i)^l = b_i (1 - (1 - eta mu_i)^k) / mu_i,
                  i.e. L(k) - L* = (I - eta D H)^k (L(0) - L*) where L* exists;
* gradient flow:  c_i(t) = b_i (1 - exp(-t mu_i)) / mu_i   (dL/dt = -D grad, t ~ k eta);
* converged:      c_i(inf) = b_i / mu_i for mu_i > 0 and 0 for mu_i = 0.

The converged point is the minimiser of the loss closest to L(0) in the norm
sum_j ||L_j - L_j(0)||^2 / lambda_j (moves confined to lags with lambda_j > 0): the
weighted least-norm projection L* = L(0) - D^{1/2} M^+ D^{1/2} G(L(0)). When H is
singular (e.g. loss ``last`` with N < T n_x sequences) this is the implicit bias of
GD among the many interpolants. Numerically, directions with mu_i <= rcond * mu_max
count as flat (GD would need more than ~1/rcond steps to move along them).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from linrnn.core.errors import UsageError
from linrnn.core.validate import check_positive
from linrnn.verify.backend import array_namespace, device
from linrnn.verify.train import Correlations, check_steps, from_mat, loss_grad_mat, to_mat

#: Largest stable multiple of 1/mu_max for discrete GD on a quadratic.
STABILITY_LIMIT = 2.0


def check_lag_weights(lam: Any, lags: int) -> np.ndarray:
    """Validate lag weights: shape (lags,), finite, >= 0, not all zero (float64 on the host)."""
    arr = np.asarray(lam, dtype=np.float64)
    if arr.shape != (lags,):
        raise UsageError(f"the lag weights must have shape (lags,) = ({lags},), got {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise UsageError("the lag weights must be finite and non-negative")
    if not np.any(arr > 0):
        raise UsageError("at least one lag weight must be positive")
    return arr


class LagCurvature:
    """Eigendecomposition M = Q diag(mu) Q^T of the lag-weighted curvature D^{1/2} H D^{1/2}.

    ``mu`` is ascending and clipped at 0 (it is positive semi-definite up to rounding);
    ``s`` is sqrt(lambda_j) repeated over the n_x inputs (length lags * n_x). All three
    live on the correlations' backend.
    """

    def __init__(self, corr: Correlations, lam: Any) -> None:
        xp = array_namespace(corr.rxx)
        lam_h = check_lag_weights(lam, corr.lags)
        self.corr = corr
        self.lam = lam_h
        # the lag weights are host data (linrnn.derive); s goes to the device once
        self.s = corr.backend.asarray(np.repeat(np.sqrt(lam_h), corr.n_x))
        m = self.s[:, None] * corr.rxx * self.s[None, :]
        m = 0.5 * (m + m.T)
        mu, q = xp.linalg.eigh(m)
        self.mu = xp.clip(mu, min=0.0)
        self.q = q

    @property
    def mu_max(self) -> float:
        return float(self.mu[-1])

    def check_step(self, lr: float) -> float:
        """Raise :class:`UsageError` if discrete GD with step ``lr`` diverges (lr mu_max > 2)."""
        lr = check_positive("lr", lr)
        if lr * self.mu_max > STABILITY_LIMIT * (1 + 1e-12):
            raise UsageError(
                f"the step lr = {lr:g} exceeds the stability limit 2/mu_max = {STABILITY_LIMIT / self.mu_max:.6g} "
                "of the lag-weighted loss, so gradient descent diverges; use a smaller step or --lr auto"
            )
        return lr

    def start(self, L0: Any) -> tuple[Any, Any]:
        """L(0) in matrix layout and the eigen-coordinates b = -Q^T diag(s) G(L(0)), shape (n_y, dim)."""
        lm0 = to_mat(L0, self.corr)
        _, g0 = loss_grad_mat(lm0, self.corr)
        return lm0, -(g0 * self.s) @ self.q

    def assemble(self, lm0: Any, coeff: Any) -> np.ndarray:
        """L = L(0) + diag(s) Q c for eigen-coordinates c (..., n_y, dim); host (..., lags, n_y, n_x)."""
        lm = lm0 + (coeff @ self.q.T) * self.s
        return self.corr.backend.to_numpy(from_mat(lm, self.corr))

    def cutoff(self, rcond: float | None) -> float:
        if rcond is None:
            rcond = 1e2 * self.corr.dim * float(array_namespace(self.mu).finfo(self.mu.dtype).eps)
        return float(rcond) * self.mu_max


def gd_filter(xp: Any, z: Any, k: Any) -> Any:
    """sum_{l<k} (1 - z)^l = (1 - (1 - z)^k) / z, (K, dim), without cancellation for small z (= k at z = 0)."""
    kk = xp.astype(k[:, None], z.dtype)
    small = xp.abs(z) < 0.5
    zs = xp.where(small, z, xp.full_like(z, 0.25))[None, :]
    nonzero = zs != 0
    num = -xp.expm1(kk * xp.log1p(-zs))
    phi_small = xp.where(nonzero, num / xp.where(nonzero, zs, xp.ones_like(zs)), kk)
    zl = xp.where(small, xp.ones_like(z), z)[None, :]
    # the integer powers in float64 whatever the working dtype (NumPy's promotion of an
    # integer exponent, which the standard leaves undefined, made explicit)
    phi_large = (1.0 - (1.0 - zl) ** xp.astype(k[:, None], xp.float64)) / zl
    return xp.where(small[None, :], phi_small, phi_large)


def scnn_trajectory(
    L0: Any, corr: Correlations, lam: Any, *, lr: float, steps: int | None = None, at: Any = None
) -> np.ndarray:
    """Closed-form discrete GD of the SCNN: L(k) for k = 0..steps (or the integer steps ``at``).

    L(k) = L(0) + D^{1/2} Q diag(eta phi_k(eta mu)) b with phi_k(z) = sum_{l<k} (1-z)^l (module
    docstring); equal to iterating L <- L - eta D grad Loss (:func:`scnn_gd`). Returns
    host float arrays of shape (K, lags, n_y, n_x). Raises :class:`UsageError` when
    eta mu_max > 2 (divergent step).
    """
    curv = LagCurvature(corr, lam)
    lr = curv.check_step(lr)
    xp = array_namespace(corr.rxx)
    if at is None:
        if steps is None:
            raise UsageError("give the number of steps or the steps at which to evaluate the trajectory")
        ks = np.arange(check_steps(steps) + 1)
    else:
        ks = np.atleast_1d(np.asarray(at))
        if ks.ndim != 1 or not np.all(ks == np.round(ks)) or np.any(ks < 0):
            raise UsageError("the steps at which to evaluate the trajectory must be non-negative integers")
    lm0, b = curv.start(L0)
    phi = gd_filter(xp, lr * curv.mu, xp.asarray(ks.astype(np.int64), device=device(curv.mu)))  # (K, dim)
    coeff = lr * b[None, :, :] * phi[:, None, :]
    return curv.assemble(lm0, coeff)


def scnn_flow(L0: Any, corr: Correlations, lam: Any, times: Any) -> np.ndarray:
    """Closed-form gradient flow dL/dt = -D grad Loss at the given times: (K, lags, n_y, n_x).

    c_i(t) = b_i (1 - exp(-t mu_i)) / mu_i (= b_i t at mu_i = 0); t corresponds to k eta steps.
    """
    curv = LagCurvature(corr, lam)
    xp = array_namespace(corr.rxx)
    t = np.atleast_1d(np.asarray(times, dtype=np.float64))
    if t.ndim != 1 or not np.all(np.isfinite(t)) or np.any(t < 0):
        raise UsageError("the gradient-flow times must be finite and non-negative")
    tt = corr.backend.asarray(t)[:, None]
    mu = curv.mu[None, :]
    nonzero = mu != 0
    phi = xp.where(nonzero, -xp.expm1(-tt * mu) / xp.where(nonzero, mu, xp.ones_like(mu)), tt)
    lm0, b = curv.start(L0)
    return curv.assemble(lm0, b[None, :, :] * phi[:, None, :])


def min_norm_solution(L0: Any, corr: Correlations, lam: Any, *, rcond: float | None = None) -> np.ndarray:
    """The point GD converges to: argmin_{L minimises Loss} sum_j ||L_j - L_j(0)||^2 / lambda_j.

    Closed form L* = L(0) - D^{1/2} M^+ D^{1/2} G(L(0)) with M = D^{1/2} R_xx D^{1/2}, the
    pseudo-inverse keeping eigenvalues above ``rcond`` * mu_max (default 100 * dim * eps).
    Lags with lambda_j = 0 keep L_j(0). Host array (lags, n_y, n_x).
    """
    curv = LagCurvature(corr, lam)
    xp = array_namespace(curv.mu)
    keep = curv.mu > curv.cutoff(rcond)
    inv = xp.where(keep, 1.0 / xp.where(keep, curv.mu, xp.ones_like(curv.mu)), xp.zeros_like(curv.mu))
    lm0, b = curv.start(L0)
    return curv.assemble(lm0, b * inv[None, :])


def scnn_gd(L0: Any, corr: Correlations, lam: Any, *, lr: float, steps: int) -> np.ndarray:
    """Iterate L <- L - eta D grad_L Loss ``steps`` times: host trajectory (steps+1, lags, n_y, n_x).

    The plain iteration behind :func:`scnn_trajectory` (which gives the same numbers in
    closed form); raises :class:`UsageError` for a divergent step (eta mu_max > 2).
    """
    curv = LagCurvature(corr, lam)
    lr = curv.check_step(lr)
    steps = check_steps(steps)
    lm = to_mat(L0, corr)
    xp = array_namespace(lm)
    d = curv.s * curv.s
    out = xp.empty((steps + 1, corr.n_y, corr.dim), dtype=lm.dtype, device=device(lm))
    out[0, ...] = lm
    for k in range(steps):
        _, g = loss_grad_mat(lm, corr)
        lm = lm - lr * (g * d)
        out[k + 1, ...] = lm
    return corr.backend.to_numpy(from_mat(out, corr))


def auto_lr(corr: Correlations, lam: Any) -> float:
    """A stable GD step for the lag-weighted loss: eta = 1 / mu_max(D^{1/2} H D^{1/2}).

    Discrete GD on a quadratic with curvature M converges iff eta mu_max < 2; eta =
    1/mu_max is half that limit, so the stiffest direction is solved in one step
    (1 - eta mu_max = 0) and no direction oscillates. For a wide RNN, whose impulse
    response follows the SCNN with the derived lag weights (the limiting lag NTK),
    :func:`auto_lr_rnn` applies the same rule; the factor 2 of margin absorbs the
    finite-width fluctuations of the NTK.
    """
    curv = LagCurvature(corr, lam)
    if not curv.mu_max > 0 or not math.isfinite(curv.mu_max):
        raise UsageError("the lag-weighted loss has no positive curvature (all-zero inputs?), so no step size can be chosen")
    return 1.0 / curv.mu_max


def auto_lr_rnn(corr: Correlations, spec: Any, draws: Any = None) -> float:
    """The base step eta = 1 / mu_max for training RNNs of ``spec`` on the data ``corr``.

    Without ``draws``: mu_max is the curvature of the wide limit, :func:`auto_lr` with the
    lag weights lambda_j that :func:`linrnn.derive.weights` gives for ``spec`` (the derived
    lambda_j already include the parameterization's scaling of the step and the
    multipliers eta_C, eta_F, eta_W). With ``draws`` (a sequence of
    :class:`~linrnn.verify.sample.RNNDraw`, the initial points to be trained): mu_max is
    the largest, over the draws, of the finite-width Gauss-Newton curvature
    mu_max(H^{1/2} Theta H^{1/2}) of each draw's own lag NTK Theta
    (:func:`linrnn.verify.curvature.rnn_curvature`), so one step is stable for all of
    them: at long sequences or q >= 1 the limit's step diverges. ``spec.n_in`` must
    equal the data's n_x. The result is the base step of :func:`linrnn.verify.train.train_rnn`.
    """
    from linrnn.derive import weights

    if spec.n_in != corr.n_x:
        raise UsageError(f"the model has n_in = {spec.n_in} inputs but the data have n_x = {corr.n_x}")
    if draws is not None:
        from linrnn.verify.curvature import rnn_curvature

        draws = list(draws)
        if not draws:
            raise UsageError("the finite-width step needs at least one draw")
        return 1.0 / max(rnn_curvature(d, corr).mu_max for d in draws)
    return auto_lr(corr, np.asarray(weights(spec, corr.lags), dtype=np.float64))
