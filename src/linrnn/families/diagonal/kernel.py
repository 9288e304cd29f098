r"""Evaluate a diagonal family's derived kernels: the closed forms of :mod:`.derivation`, in mpmath.

Every part of the lag NTK is poly(p, d) R(p) Phi(d) with p = j + k and d = j - k
(:class:`linrnn.families.diagonal.derivation.Part`), so an L x L kernel needs the
radial factors at p = 0 .. 2L - 2 and the phase factors at d = -(L-1) .. L-1 only:
O(L) evaluations, each in mpmath at :data:`DPS` digits (the ring's closed forms cancel
where r_min is close to r_max, and at r_max = 1 or long lags float64 loses them), then
combined in float64. The law's degenerate cases use their own closed forms: the disc
(r_min = 0, where r_min^p log r_min has the limit 0), the circle (r_min = r_max) and
the point phase (theta_max = 0). A factor that does not exist where its polynomial
vanishes (the lambda part's radial factor at p = 0 on the disc) is not evaluated there.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

#: mpmath's working precision (decimal digits) for the radial and phase factors.
DPS = 50


@lru_cache(maxsize=None)
def _functions(uk: Any) -> list[tuple[str | None, Any, Any, Any, Any, Any, Any]]:
    """Per part (the NTK's, then the NNGP): (multiplier field, poly, ring, disc, circle, phase, point) as
    Python functions (``poly`` NumPy, the others mpmath)."""
    import sympy as sp

    from linrnn.families.diagonal import derivation as D

    out = []
    for part in (*uk.parts, uk.nngp):
        out.append((part.mult,
                    sp.lambdify((D.p, D.d), part.poly, modules="numpy"),
                    sp.lambdify((D.p, D.r_min, D.r_max), part.radial, modules="mpmath"),
                    sp.lambdify((D.p, D.r_max), part.radial_disc, modules="mpmath"),
                    sp.lambdify((D.p, D.r_max), part.radial_circle, modules="mpmath"),
                    sp.lambdify((D.d, D.theta_max), part.phase, modules="mpmath"),
                    sp.lambdify((D.d,), part.phase_point, modules="mpmath")))
    return out


def _value(f: Any, *args: Any) -> float:
    try:
        v = float(f(*args))
    except (ZeroDivisionError, ValueError, TypeError, OverflowError):
        return float("nan")
    return v if np.isfinite(v) else float("nan")


def kernel_matrices(uk: Any, spec: Any, lags: int) -> dict[str, np.ndarray]:
    """``{"ntk": Theta(j, k), "nngp": E[L_j L_k]}``, float64 (lags x lags), of the derived kernels ``uk``
    (:class:`~linrnn.families.diagonal.derivation.UnitKernel`) at the law of ``spec``."""
    import mpmath

    L = int(lags)
    jj, kk = np.meshgrid(np.arange(L), np.arange(L), indexing="ij")
    P, Dd = jj + kk, jj - kk
    ps, ds = range(2 * L - 1), range(-(L - 1), L)
    out = {"ntk": np.zeros((L, L)), "nngp": np.zeros((L, L))}
    with mpmath.workdps(DPS):
        lo, hi, th = (mpmath.mpf(spec.r_min), mpmath.mpf(spec.r_max), mpmath.mpf(spec.theta_max))
        for mult, poly, ring, disc, circle, phase, point in _functions(uk):
            weight = 1.0 if mult is None else float(getattr(spec, mult))
            if weight == 0.0:
                continue
            poly_v = np.asarray(np.broadcast_to(poly(P.astype(np.float64), Dd.astype(np.float64)), P.shape),
                                dtype=np.float64)
            if spec.r_min == spec.r_max:
                R = np.array([_value(circle, q, hi) for q in ps])
            elif spec.r_min == 0:
                R = np.array([_value(disc, q, hi) for q in ps])
            else:
                R = np.array([_value(ring, q, lo, hi) for q in ps])
            F = np.array([_value(point, e) if spec.theta_max == 0 else _value(phase, e, th) for e in ds])
            with np.errstate(invalid="ignore"):
                term = np.where(poly_v == 0, 0.0, poly_v * R[P] * F[Dd + L - 1])
            out["ntk" if mult is not None else "nngp"] += weight * term
    return out
