r"""The LRU family's unit for the diagonal families' derivation (:mod:`linrnn.families.diagonal.derivation`).

u_j = Re(c exp(j (-exp(nu_log) + i exp(theta_log))) exp(gamma_log) b) (Orvieto et al.,
ICML 2023, eqs. (6)-(7)); at initialisation exp(-exp(nu_log)) = rho, exp(theta_log) =
phi and exp(gamma_log) = sqrt(1 - rho^2). The three real parameters gamma_log, nu_log,
theta_log each give Re(A_j) Re(A_k), whose mean over the circular c, b is
Re E[A_j conj A_k] / 2: the factor 1/2 of the real parameters (the complex c and b have
two real coordinates each and no such factor).
"""

from __future__ import annotations

import sympy as sp

from linrnn.families.diagonal import derivation as D

nu_log, theta_log, gamma_log = sp.symbols("nu_log theta_log gamma_log", real=True)


def lru_unit() -> D.Unit:
    """The LRU's unit as data: trained c, b, gamma_log, nu_log, theta_log."""
    lam = sp.exp(-sp.exp(nu_log) + sp.I * sp.exp(theta_log))
    return D.Unit(
        family="lru", impulse=lambda m: sp.re(D.c * lam**m * sp.exp(gamma_log) * D.b),
        params=(("c", "lr_c", (D.c_r, D.c_i)), ("b", "lr_f", (D.b_r, D.b_i)), ("gamma", "lr_gamma", (gamma_log,)),
                ("nu", "lr_nu", (nu_log,)), ("theta", "lr_theta", (theta_log,))),
        init={nu_log: sp.log(-sp.log(D.rho)), theta_log: sp.log(D.phi), gamma_log: sp.log(sp.sqrt(1 - D.rho**2))},
        note=r"$\lambda = \exp(-e^{\nu_{log}} + i e^{\theta_{log}})$, input gain $\gamma = e^{\gamma_{log}}$, "
             r"$\gamma_{log} = \log\sqrt{1 - |\lambda|^2}$ at initialisation.")


def kernel_derivation(radial_law: str = "area") -> D.UnitKernel:
    """The LRU family's derived kernels under ``radial_law`` (cached)."""
    return D.cached_unit_kernel(lru_unit, radial_law, (__file__,))
