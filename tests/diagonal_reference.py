"""Naive references for the diagonal families' tests: the recurrence, its finite differences, a dense Jacobian,
and quadrature of the initialisation law (none of them uses the derivation or the structured NTK)."""

from __future__ import annotations

from typing import Any

import numpy as np


def unpack(spec: Any, theta: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """The real parameter vector of one draw as named arrays (the layout of :func:`pack`)."""
    ny, nx = spec.n_out, spec.n_in
    sizes = [("c_r", (ny, n)), ("c_i", (ny, n)), ("b_r", (n, nx)), ("b_i", (n, nx))]
    sizes += [("lam_r", (n,)), ("lam_i", (n,))] if spec.family == "diagonal" else \
        [("gamma_log", (n,)), ("nu_log", (n,)), ("theta_log", (n,))]
    out, at = {}, 0
    for name, shape in sizes:
        size = int(np.prod(shape))
        out[name] = theta[at:at + size].reshape(shape)
        at += size
    return out


def pack(draw: Any) -> tuple[np.ndarray, np.ndarray]:
    """(the real parameters of a single draw as one vector, the multiplier of each entry)."""
    spec = draw.spec
    parts = [(np.real(draw.c), spec.lr_c), (np.imag(draw.c), spec.lr_c), (np.real(draw.b), spec.lr_f),
             (np.imag(draw.b), spec.lr_f)]
    if spec.family == "diagonal":
        parts += [(np.real(draw.lam), spec.lr_w), (np.imag(draw.lam), spec.lr_w)]
    else:
        parts += [(draw.gamma_log, spec.lr_gamma), (draw.nu_log, spec.lr_nu), (draw.theta_log, spec.lr_theta)]
    theta = np.concatenate([np.ravel(a) for a, _ in parts])
    eta = np.concatenate([np.full(np.size(a), m) for a, m in parts])
    return theta, eta


def recurrence(spec: Any, theta: np.ndarray, n: int, lags: int) -> np.ndarray:
    """The impulse response by running h_t = lambda h_{t-1} + g b x_t, y_t = Re(c h_t) / sqrt(n) on x_t = e_b
    delta_t0: shape (lags, n_y, n_x)."""
    p = unpack(spec, theta, n)
    c, b = p["c_r"] + 1j * p["c_i"], p["b_r"] + 1j * p["b_i"]
    if spec.family == "diagonal":
        lam, g = p["lam_r"] + 1j * p["lam_i"], np.ones(n)
    else:
        lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
        g = np.exp(p["gamma_log"])
    out = np.zeros((lags, spec.n_out, spec.n_in))
    for col in range(spec.n_in):
        h = np.zeros(n, dtype=complex)
        for t in range(lags):
            h = lam * h + (g * b[:, col] if t == 0 else 0)
            out[t, :, col] = np.real(c @ h) / np.sqrt(n)
    return out


def finite_difference_ntk(draw: Any, lags: int, step: float = 1e-6) -> np.ndarray:
    """J diag(eta) J^T with J by central differences of :func:`recurrence`."""
    spec = draw.spec
    n = np.shape(draw.c)[-1]
    theta, eta = pack(draw)
    cols = []
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = step
        cols.append((recurrence(spec, theta + e, n, lags) - recurrence(spec, theta - e, n, lags)).ravel() / (2 * step))
    J = np.stack(cols, axis=1)
    return ((J * eta) @ J.T).reshape((lags, spec.n_out, spec.n_in) * 2)


def dense_jacobian_ntk(draw: Any, lags: int) -> np.ndarray:
    """J diag(eta) J^T with J written out entry by entry from the gradients of L_j = Re(c g lambda^j b) / sqrt(n)."""
    spec = draw.spec
    n = np.shape(draw.c)[-1]
    theta, eta = pack(draw)
    p = unpack(spec, theta, n)
    c, b = p["c_r"] + 1j * p["c_i"], p["b_r"] + 1j * p["b_i"]
    if spec.family == "diagonal":
        lam, g = p["lam_r"] + 1j * p["lam_i"], np.ones(n)
    else:
        lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
        g = np.exp(p["gamma_log"])
    ny, nx = spec.n_out, spec.n_in
    J = np.zeros((lags, ny, nx, theta.size))
    s = np.sqrt(n)
    for t in range(lags):
        for a in range(ny):
            for bb in range(nx):
                col = 0
                for part in range(2):  # c_r, c_i: d Re(z c) / d c_r = Re z, / d c_i = Re(i z)
                    for a2 in range(ny):
                        for i in range(n):
                            z = g[i] * lam[i] ** t * b[i, bb] * (1 if part == 0 else 1j)
                            J[t, a, bb, col] = np.real(z) / s if a2 == a else 0.0
                            col += 1
                for part in range(2):
                    for i in range(n):
                        for b2 in range(nx):
                            z = c[a, i] * g[i] * lam[i] ** t * (1 if part == 0 else 1j)
                            J[t, a, bb, col] = np.real(z) / s if b2 == bb else 0.0
                            col += 1
                base = c[a] * g * b[:, bb]
                if spec.family == "diagonal":
                    dlam = t * lam ** (t - 1) if t > 0 else np.zeros(n)
                    derivs = [base * dlam, 1j * base * dlam]
                else:
                    lt = lam**t
                    derivs = [base * lt, base * lt * t * (-np.exp(p["nu_log"])),
                              base * lt * t * 1j * np.exp(p["theta_log"])]
                for dz in derivs:
                    J[t, a, bb, col:col + n] = np.real(dz) / s
                    col += n
    J = J.reshape(-1, theta.size)
    return ((J * eta) @ J.T).reshape((lags, ny, nx) * 2)


def law_quadrature(model: Any, make_draw: Any, lags: int) -> dict[str, np.ndarray]:
    """E over the initialisation law of one unit's lag NTK and L_j L_k (n = 1, n_x = n_y = 1), by quadrature:
    c, b by 3-point Gauss-Hermite per real coordinate (exact: the integrands have degree <= 2 in each), arg lambda
    by 48-point Gauss-Legendre on [0, theta_max], |lambda|^2 = s by ``scipy.integrate.quad_vec`` on
    [r_min^2, r_max^2] (a point where the law is degenerate). ``make_draw(rho, phi, c, b)`` builds the unit's
    parameters from flat arrays; the model's own ``empirical_ntk`` and ``impulse`` evaluate it."""
    from scipy.integrate import quad_vec

    spec = model.spec
    z, w = np.polynomial.hermite_e.hermegauss(3)
    z, w = z / np.sqrt(2.0), w / w.sum()  # N(0, 1/2)
    grid = np.stack(np.meshgrid(z, z, z, z, indexing="ij"), -1).reshape(-1, 4)
    weights = np.prod(np.stack(np.meshgrid(w, w, w, w, indexing="ij"), -1).reshape(-1, 4), axis=1)
    if spec.theta_max > 0:
        x, v = np.polynomial.legendre.leggauss(48)
        phis, pw = spec.theta_max * (x + 1) / 2, v / 2
    else:
        phis, pw = np.zeros(1), np.ones(1)
    cb = np.tile(grid, (len(phis), 1))
    ph = np.repeat(phis, len(grid))
    wt = np.repeat(pw, len(grid)) * np.tile(weights, len(phis))

    def at(s: float) -> np.ndarray:
        rho = np.full(len(ph), np.sqrt(s))
        d = make_draw(rho, ph, cb[:, 0] + 1j * cb[:, 1], cb[:, 2] + 1j * cb[:, 3])
        ntk = np.asarray(model.empirical_ntk(d, lags))[:, :, 0, 0, :, 0, 0]
        L = np.asarray(model.impulse(d, lags))[:, :, 0, 0]
        vals = np.concatenate([ntk.reshape(len(ph), -1), (L[:, :, None] * L[:, None, :]).reshape(len(ph), -1)], 1)
        return wt @ vals

    lo, hi = spec.r_min**2, spec.r_max**2
    total = at(hi) if lo == hi else quad_vec(at, lo, hi, epsabs=1e-14, epsrel=1e-13)[0] / (hi - lo)
    return {"ntk": total[: lags * lags].reshape(lags, lags), "nngp": total[lags * lags:].reshape(lags, lags)}
