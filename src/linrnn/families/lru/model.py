r"""The LRU family's model object (:class:`LRURNN`) and ``make``.

A draw holds c (..., n_y, n), b (..., n, n_x) complex and gamma_log, nu_log, theta_log
(..., n) real (Orvieto et al., ICML 2023): lambda = exp(-exp(nu_log) + i exp(theta_log)),
gamma = exp(gamma_log). Drawn as the LRU paper's code draws them: u1, u2 ~ U[0, 1),
nu_log = log(-log(u1 (r_max^2 - r_min^2) + r_min^2) / 2), theta_log = log(theta_max u2),
gamma_log = log sqrt(1 - |lambda|^2). With G_j = gamma lambda^j, the empirical lag NTK
(:func:`linrnn.families.diagonal.model.unit_ntk`) has the parts of c and b, and of the
three real parameters: d/d gamma_log = G_j, d/d nu_log = -j exp(nu_log) G_j,
d/d theta_log = i j exp(theta_log) G_j (times c_a b_b).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from linrnn.core.validate import check_size
from linrnn.families.diagonal.model import (
    RING_CONTROLS, RingModel, as_complex, draw_ring, interleave, lag_index, lag_scaled, powers, powers_from, real_gram,
    real_parts, unit_impulse, unit_ntk, weighted,
)
from linrnn.families.lru.spec import LRUSpec
from linrnn.verify.kernel_check import Control

#: The LRU's real parameters' multipliers (the factor 1/2 of the control ``no_half``).
REAL_MULTIPLIERS = ("lr_gamma", "lr_nu", "lr_theta")


@dataclass(frozen=True)
class LRUDraw:
    """Parameters of one draw (or a batch) of the LRU family, arrays of one namespace."""

    c: Any
    b: Any
    gamma_log: Any
    nu_log: Any
    theta_log: Any
    spec: LRUSpec

    def eigenvalues(self) -> Any:
        """lambda = exp(-exp(nu_log)) e^{i exp(theta_log)}, complex (..., n)."""
        from linrnn.verify.backend import array_namespace

        xp = array_namespace(self.nu_log)
        rho, phi = xp.exp(-xp.exp(self.nu_log)), xp.exp(self.theta_log)
        return as_complex(rho * xp.cos(phi), rho * xp.sin(phi))


def _no_half(model: Any, lags: int) -> dict[str, Any]:
    import dataclasses

    spec = model.spec
    doubled = type(model)(dataclasses.replace(spec, **{m: 2 * getattr(spec, m) for m in REAL_MULTIPLIERS}))
    return {"ntk": doubled.kernel(lags)["ntk"], "nngp": model.kernel(lags)["nngp"]}


#: The LRU's negative controls: the diagonal families' and the kernel without the factor 1/2 of the real parameters
#: (what treating them as the complex ones would give: E Re(A_j) Re(A_k) = Re E[A_j conj A_k] / 2 for circular c,
#: b), i.e. the derived kernel with their multipliers doubled.
CONTROLS = (*RING_CONTROLS, Control("no_half", "the lag NTK without the factor 1/2 of the real parameters "
                                               "gamma_log, nu_log, theta_log", _no_half))


@dataclass(frozen=True)
class LRURNN(RingModel):
    """The LRU family's model: ``init``, ``impulse``, ``empirical_ntk``, ``kernel``, ``derivation``."""

    spec: LRUSpec
    DRAW: ClassVar[tuple[type, str]] = (LRUDraw, "an")
    DERIVATION: ClassVar[str] = "linrnn.families.lru.derivation"
    TRAINED: ClassVar[tuple[tuple[str, str], ...]] = (
        ("c", "lr_c"), ("b", "lr_f"), ("gamma_log", "lr_gamma"), ("nu_log", "lr_nu"), ("theta_log", "lr_theta"))

    def kernel_controls(self) -> tuple[Control, ...]:
        """The diagonal families' controls and ``no_half`` (:data:`CONTROLS`)."""
        return CONTROLS

    def init(self, *, width: int, seed: int | None = 0, backend: Any = "numpy", batch: int | None = None) -> LRUDraw:
        """One draw at width ``width`` (or ``batch`` draws on a leading axis), the ring law of
        :func:`linrnn.families.diagonal.model.draw_ring` in the LRU's parameters."""
        from linrnn.verify.backend import Backend, array_namespace, get_backend

        be = backend if isinstance(backend, Backend) else get_backend(backend, seed=seed)
        rho, phi, c, b = draw_ring(be, self.spec, width, batch)
        xp = array_namespace(rho)
        with np.errstate(divide="ignore"):  # log 0 only on a null set of draws
            return LRUDraw(c=c, b=b, gamma_log=0.5 * xp.log1p(-(rho**2)), nu_log=xp.log(-xp.log(rho)),
                           theta_log=xp.log(phi), spec=self.spec)

    def _gain_powers(self, d: LRUDraw, lags: int) -> Any:
        from linrnn.verify.backend import array_namespace

        xp = array_namespace(d.nu_log)
        return powers(d.eigenvalues(), check_size("lags", lags)) * xp.astype(xp.exp(d.gamma_log), d.c.dtype)[..., None, :]

    def impulse(self, params: LRUDraw, lags: int) -> Any:
        """L_j = Re(sum_i c_i gamma_i lambda_i^j b_i) / sqrt(n), j < ``lags``: shape (..., lags, n_y, n_x)."""
        d = self._draw(params)
        return unit_impulse(self._gain_powers(d, lags), d.c, d.b)

    def empirical_ntk(self, params: LRUDraw, lags: int) -> Any:
        """The exact lag NTK (trained: c, b, gamma_log, nu_log, theta_log): (..., L, n_y, n_x, L, n_y, n_x)."""
        from linrnn.verify.backend import array_namespace

        d = self._draw(params)
        s = self.spec
        if s.n_in == s.n_out == 1:
            return self._scalar(d, check_size("lags", lags))[0]
        xp = array_namespace(d.nu_log)
        G = self._gain_powers(d, lags)
        jG = lag_index(G) * G
        cdt = d.c.dtype
        D_nu = jG * xp.astype(-xp.exp(d.nu_log), cdt)[..., None, :]
        D_theta = jG * (xp.astype(xp.exp(d.theta_log), cdt) * 1j)[..., None, :]
        return unit_ntk(G, d.c, d.b, s.lr_c, s.lr_f,
                        [(s.lr_gamma, G, True), (s.lr_nu, D_nu, True), (s.lr_theta, D_theta, True)])

    def eigenvalues(self, params: LRUDraw) -> Any:
        """lambda_i = exp(-exp(nu_log) + i exp(theta_log)), complex (..., n): inside the unit disc by construction."""
        return self._draw(params).eigenvalues()

    def impulse_vjp(self, params: LRUDraw, gbar: Any) -> dict[str, Any]:
        """The gradients of one draw from dLoss/dL = ``gbar`` (:mod:`linrnn.families.diagonal.training`): with G_j =
        gamma lambda^j and the lag sums S1 = sum_ab c b sum_j Gbar_j G_j, S2 = the same with j G_j, dLoss/dgamma_log =
        Re S1 / sqrt(n), dLoss/dnu_log = -exp(nu_log) Re S2 / sqrt(n), dLoss/dtheta_log = -exp(theta_log) Im S2 /
        sqrt(n); c and b as the diagonal family's with the gains G. O(n L)."""
        import math

        from linrnn.families.diagonal.training import channel_sum, lag_sums, readout_grads
        from linrnn.verify.backend import array_namespace

        d = self._draw(params)
        xp = array_namespace(d.nu_log)
        G = self._gain_powers(d, gbar.shape[0])
        A = lag_sums(gbar, G)
        gc, gb = readout_grads(A, d.c, d.b)
        s = math.sqrt(d.nu_log.shape[-1])
        S1 = channel_sum(d.c, d.b, A)
        S2 = channel_sum(d.c, d.b, lag_sums(gbar, lag_index(G) * G))
        return {"c": gc, "b": gb, "gamma_log": xp.real(S1) / s, "nu_log": -xp.exp(d.nu_log) * xp.real(S2) / s,
                "theta_log": -xp.exp(d.theta_log) * xp.imag(S2) / s}

    def empirical_ntk_and_impulse(self, params: LRUDraw, lags: int) -> tuple[Any, Any]:
        """:meth:`empirical_ntk` and :meth:`impulse` of the draw from one set of powers."""
        d = self._draw(params)
        if not self.spec.n_in == self.spec.n_out == 1:
            return self.empirical_ntk(d, lags), self.impulse(d, lags)
        return self._scalar(d, check_size("lags", lags))

    def _scalar(self, d: LRUDraw, lags: int) -> tuple[Any, Any]:
        """One input and one output: the lag NTK as two Grams of the same real features of P_j = lambda^j, and L_j.

        Per unit, with gamma = exp(gamma_log), c b = |c b| e^{i phi} and A + i B = e^{i phi} P:
        the c and b parts give gamma^2 w Re(P P^H) = gamma^2 w (A A^T + B B^T) (w = eta_c |b|^2 +
        eta_f |c|^2: the phase cancels); gamma_log's is eta_gamma gamma^2 |c b|^2 A A^T. Together
        one Gram of the features gamma sqrt(w + eta_gamma |c b|^2) A and gamma sqrt(w) B: the three
        parameters' parts in ONE (L x 2n) Gram. nu_log's (d/d nu_log = -j exp(nu_log) G_j) and
        theta_log's (d/d theta_log = i j exp(theta_log) G_j, Re(c b D_j) = -j exp(theta_log) gamma
        |c b| B_j) are j k times the Gram of sqrt(eta_nu) exp(nu_log) gamma |c b| A and
        sqrt(eta_theta) exp(theta_log) gamma |c b| B. In all two real symmetric products (syrk) of
        (L x 2n) arrays, 4 L^2 n multiply-adds: half those of one complex (L x n)(n x L) product.
        L_j = sum_i gamma_i |c_i b_i| A_ji / sqrt(n). :func:`unit_ntk` gives the same numbers to
        rounding (a test compares them).
        """
        import math

        from linrnn.verify.backend import array_namespace

        xp = array_namespace(d.nu_log)
        s = self.spec
        n = d.nu_log.shape[-1]
        cb = d.c[..., 0, :] * d.b[..., :, 0]
        m = xp.abs(cb)
        phase = xp.where(m > 0, cb / xp.astype(xp.where(m > 0, m, 1.0), cb.dtype), xp.ones_like(cb))
        Y = real_parts(powers_from(phase, d.eigenvalues(), lags))  # [A_0, B_0, A_1, B_1, ...]
        gamma = xp.exp(d.gamma_log)
        w = s.lr_c * xp.abs(d.b[..., :, 0]) ** 2 + s.lr_f * xp.abs(d.c[..., 0, :]) ** 2
        gm = gamma * m
        impulse = xp.matmul(Y, interleave(gm, xp.zeros_like(gm))[..., :, None])[..., 0] / math.sqrt(n)
        Z = weighted(Y, interleave(gamma * xp.sqrt(w + s.lr_gamma * m**2), gamma * xp.sqrt(w)))
        out = real_gram(Z, n)
        if s.lr_nu or s.lr_theta:
            scale = interleave(math.sqrt(s.lr_nu) * xp.exp(d.nu_log) * gm, math.sqrt(s.lr_theta) * xp.exp(d.theta_log)
                               * gm)
            out = out + lag_scaled(real_gram(weighted(Y[..., 1:, :], scale, Z), n), 1)
        return out[..., :, None, None, :, None, None], impulse[..., :, None, None]


def make(**params: Any) -> LRURNN:
    """An LRU with the :class:`~linrnn.families.lru.spec.LRUSpec` fields ``params``."""
    return LRURNN(LRUSpec.from_mapping(params, where="the lru family's parameters"))
