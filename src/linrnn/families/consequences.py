"""Consequences of a family's derived lag kernel, computed: memory, rank, smoothness, implicit bias.

Every function here works on the T x T lag kernel Theta (the wide-limit lag NTK of
``model.kernel(T)``) of ANY family: it never asks which family made it. With more than
one input or output channel the (0, 0) block (output 0, input 0) is used, and the
result says so (``block``).

* **memory horizon** ``horizon_90``: the least lag h with
  sum_{j <= h} Theta_jj >= 0.9 sum_{j < T} Theta_jj. It is relative to the T lags asked
  (a kernel whose diagonal grows puts it near T whatever T is). For comparison,
  ``horizon_eps``: the first lag from which Theta_jj / max_j Theta_jj < eps (1e-3) for
  good, i.e. at every later lag asked; ``None`` when the last lag is not below it (the
  Gaussian family's ``horizon_lag`` of ``linrnn derive weights``, on the lags asked);
* **effective rank**: the number of eigenvalues of Theta above 1e-6 of the largest
  (``scipy.linalg.eigh``), and the participation ratio (sum lambda)^2 / sum lambda^2
  (= (tr Theta)^2 / ||Theta||_F^2, between 1 and T);
* **smoothness across lags**: the mean correlation of neighbouring lags,
  mean_j Theta_{j,j+1} / sqrt(Theta_jj Theta_{j+1,j+1}) over the pairs whose two
  diagonal entries are positive; 0 for a kernel diagonal in the lags (the dense
  Gaussian family's), near 1 for one that moves slowly from lag to lag;
* **RKHS norm of the implicit bias** (:func:`rkhs_norm`): kernel gradient descent from
  zero converges to the min-norm interpolant of the target impulse response h, whose
  norm in the kernel's RKHS is sqrt(h^T Theta^+ h);
* **same spectrum, different bias** (:func:`compare`): two models whose transition
  eigenvalues follow the same law (the dense Gaussian family at q = r_max^2 against the
  diagonal family with r_min = 0: both fill the disc of radius r_max) still have
  different kernels, because the dense matrix is not normal.

The pseudo-inverse keeps the eigenvalues above ``RANK_CUTOFF`` times the largest, the same
cutoff as the effective rank: the part of h on the discarded eigenvectors (numerically
outside the RKHS) is dropped, so the norm is that of the min-norm interpolant of h's
projection onto the retained eigenvectors (:func:`numpy.linalg.lstsq` with
``rcond = RANK_CUTOFF`` solves the same problem).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.linalg import eigh

#: Fraction of trace Theta_jj held by the lags up to the memory horizon ``horizon_90``.
HORIZON_FRACTION = 0.9
#: Threshold of ``horizon_eps``: Theta_jj / max_j Theta_jj below it for good.
HORIZON_EPS = 1e-3
#: Eigenvalues above this times the largest count in the effective rank and the pseudo-inverse.
RANK_CUTOFF = 1e-6
#: Relative rounding allowed in the cumulative sum of ``horizon_90`` (so that an exact 90% counts).
_ROUNDING = 1e-12


def lag_kernel(model: Any, lags: int, kind: str = "ntk") -> tuple[np.ndarray, bool]:
    """The T x T lag kernel ``kind`` ("ntk" or "nngp") of ``model.kernel(lags)`` and whether it is a block.

    With n_x = n_y = 1 it is the whole kernel; otherwise its (output 0, input 0) block
    (``True`` in the second place).
    """
    k = np.asarray(model.kernel(lags)[kind], dtype=np.float64)
    T, ny, nx = k.shape[0], k.shape[1], k.shape[2]
    return np.ascontiguousarray(k[:, 0, 0, :, 0, 0]).reshape(T, T), (ny, nx) != (1, 1)


def _square(theta: Any) -> np.ndarray:
    a = np.asarray(theta, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise ValueError(f"a lag kernel is a non-empty T x T matrix, got shape {a.shape}")
    return a


def horizon_fraction(theta: Any, fraction: float = HORIZON_FRACTION) -> int:
    """The least lag h with sum_{j <= h} Theta_jj >= ``fraction`` sum_j Theta_jj, over the lags of ``theta``."""
    d = np.diagonal(_square(theta))
    c = np.cumsum(d)
    total = c[-1]
    return int(np.argmax(c >= fraction * total - _ROUNDING * abs(total)))


def horizon_threshold(theta: Any, eps: float = HORIZON_EPS) -> int | None:
    """The first lag j from which Theta_kk / max Theta < ``eps`` at every k >= j asked; None if the last is not."""
    d = np.diagonal(_square(theta))
    peak = d.max()
    if not peak > 0:
        return None
    above = np.flatnonzero(d / peak >= eps)
    last = int(above[-1]) if above.size else -1
    return None if last == d.size - 1 else last + 1


def eigenvalues(theta: Any) -> np.ndarray:
    """The eigenvalues of the symmetric kernel (symmetrised against rounding), largest first."""
    a = _square(theta)
    return eigh(0.5 * (a + a.T), eigvals_only=True)[::-1]


def effective_rank(theta: Any, cutoff: float = RANK_CUTOFF) -> int:
    """The number of eigenvalues of Theta above ``cutoff`` times the largest (0 if none is positive)."""
    lam = eigenvalues(theta)
    return int(np.count_nonzero(lam > cutoff * lam[0])) if lam[0] > 0 else 0


def participation_ratio(theta: Any) -> float:
    """(sum lambda)^2 / sum lambda^2 over the eigenvalues of Theta: between 1 (rank one) and T (flat spectrum)."""
    lam = eigenvalues(theta)
    square = float(np.sum(lam * lam))
    return float(np.sum(lam)) ** 2 / square if square > 0 else 0.0


def neighbour_correlation(theta: Any) -> float | None:
    """mean_j Theta_{j,j+1} / sqrt(Theta_jj Theta_{j+1,j+1}) over the neighbouring pairs with both diagonals > 0.

    None with a single lag or no such pair (a diagonal underflowed to 0 at long lags is left out).
    """
    a = _square(theta)
    d = np.diagonal(a)
    both = (d[:-1] > 0) & (d[1:] > 0)
    if not both.any():
        return None
    off = np.diagonal(a, offset=1)[both]
    root = np.sqrt(d)  # the product of the roots: the product of two tiny diagonals would underflow
    return float(np.mean(off / (root[:-1][both] * root[1:][both])))


def rkhs_norm(theta: Any, h: Any, cutoff: float = RANK_CUTOFF) -> float:
    """The RKHS norm sqrt(h^T Theta^+ h) of the min-norm interpolant of the impulse response ``h`` (length T).

    Theta^+ is the pseudo-inverse from ``eigh`` keeping the eigenvalues above ``cutoff``
    times the largest (the module's note): sum_i (u_i . h)^2 / lambda_i over those.
    """
    a = _square(theta)
    v = np.asarray(h, dtype=np.float64)
    if v.shape != (a.shape[0],):
        raise ValueError(f"the target h must have one entry per lag ({a.shape[0]}), got shape {v.shape}")
    lam, u = eigh(0.5 * (a + a.T))
    keep = lam > cutoff * lam[-1] if lam[-1] > 0 else np.zeros(lam.shape, dtype=bool)
    coef = u[:, keep].T @ v
    return math.sqrt(float(np.sum(coef * coef / lam[keep])))


@dataclass(frozen=True)
class Consequences:
    """The consequences of one lag kernel over ``lags`` lags (module docstring for each number).

    ``block`` is None for the whole kernel, else which block of a many-channel kernel was used.
    """

    lags: int
    horizon_90: int
    horizon_eps: int | None
    effective_rank: int
    participation_ratio: float
    neighbour_correlation: float | None
    block: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON object of ``derive kernel --json`` (key "consequences")."""
        out = asdict(self)
        del out["lags"]
        return out

    def lines(self) -> list[str]:
        """One summary line per consequence (the text output of ``derive kernel``)."""
        eps = ("not within the lags asked" if self.horizon_eps is None else f"from lag {self.horizon_eps}")
        corr = "-" if self.neighbour_correlation is None else f"{self.neighbour_correlation:.4g}"
        where = "" if self.block is None else f" (on the {self.block} block)"
        return [f"# consequences of Theta_inf over the {self.lags} lags asked{where}:",
                f"# memory horizon: lags 0..{self.horizon_90} hold {HORIZON_FRACTION:.0%} of trace Theta_jj "
                f"(relative to the lags asked)",
                f"# threshold horizon: Theta_jj / max < {HORIZON_EPS:g} for good {eps}",
                f"# effective rank: {self.effective_rank} eigenvalues above {RANK_CUTOFF:g} of the largest",
                f"# participation ratio (sum lambda)^2 / sum lambda^2 = {self.participation_ratio:.4g}",
                f"# neighbour correlation mean_j Theta_j,j+1 / sqrt(Theta_jj Theta_j+1,j+1) = {corr}"]


def consequences_of(theta: Any, block: str | None = None) -> Consequences:
    """The consequences of the T x T lag kernel ``theta``."""
    a = _square(theta)
    return Consequences(lags=a.shape[0], horizon_90=horizon_fraction(a), horizon_eps=horizon_threshold(a),
                        effective_rank=effective_rank(a), participation_ratio=participation_ratio(a),
                        neighbour_correlation=neighbour_correlation(a), block=block)


def consequences(model: Any, lags: int) -> Consequences:
    """The consequences of ``model``'s derived lag NTK over ``lags`` lags (its (0, 0) block with channels)."""
    theta, is_block = lag_kernel(model, lags)
    return consequences_of(theta, block="(output 0, input 0)" if is_block else None)


def normalised_distance(theta_a: Any, theta_b: Any) -> float:
    """||A - B||_F / max(||A||_F, ||B||_F) for A = Theta_a / tr Theta_a, B = Theta_b / tr Theta_b.

    Symmetric; 0 for proportional kernels; at most sqrt(2) for positive semi-definite ones.
    """
    a, b = _square(theta_a), _square(theta_b)
    if a.shape != b.shape:
        raise ValueError(f"the two kernels must have the same lags, got {a.shape} and {b.shape}")
    a, b = a / np.trace(a), b / np.trace(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b)))


@dataclass(frozen=True)
class Comparison:
    """Two models' kernels side by side ("same spectrum, different bias"): their normalised distance and horizons."""

    lags: int
    distance: float
    a: Consequences
    b: Consequences


def compare(model_a: Any, model_b: Any, lags: int) -> Comparison:
    """Compare two models' lag NTKs over ``lags`` lags: :func:`normalised_distance` and each one's consequences.

    Meant for two families with the same eigenvalue law, e.g. ``linrnn.family("gaussian",
    sigma_w2=r**2)`` (circular law, radius r) against ``linrnn.family("diagonal", r_min=0,
    r_max=r, theta_max=2 * pi)`` (uniform on the same disc): a nonzero distance is the
    part of the bias that the spectrum does not fix.
    """
    ta, block_a = lag_kernel(model_a, lags)
    tb, block_b = lag_kernel(model_b, lags)
    where = "(output 0, input 0)"
    return Comparison(lags=lags, distance=normalised_distance(ta, tb),
                      a=consequences_of(ta, where if block_a else None),
                      b=consequences_of(tb, where if block_b else None))


__all__ = ["HORIZON_EPS", "HORIZON_FRACTION", "RANK_CUTOFF", "Comparison", "Consequences", "compare",
           "consequences", "consequences_of", "effective_rank", "eigenvalues", "horizon_fraction",
           "horizon_threshold", "lag_kernel", "neighbour_correlation", "normalised_distance",
           "participation_ratio", "rkhs_norm"]
