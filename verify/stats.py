"""Statistics for Monte Carlo verdicts: streaming moments, entrywise z-tests, log-log rates.

The design (stated here once and repeated in every results file):

* **Estimates.** Over R independent draws each entry's mean and standard error
  SE = sd / sqrt(R) (sd with ddof = 1), accumulated in float64 by Chan's parallel
  update, so chunking does not change the result.
* **Finite-width bias.** The empirical quantity at width n has mean
  Theta_inf + B / n + O(n^-2). The allowance for the O(1/n) term is a fitted
  bias: each entry is measured at n and at h = n // 2 and the two-point fit of
  a + B / n gives the bias-corrected estimate (Richardson extrapolation)

      a = (n m_n - h m_h) / (n - h),   SE_a^2 = (n SE_n)^2 + (h SE_h)^2, over (n - h)^2,

  which is unbiased up to O(n^-2); the fitted bias at n is m_n - a.
* **Per-entry test.** z = (a - theory) / SE_a against Student's t with
  min(R_n, R_h) - 1 degrees of freedom (conservative for Welch's combination).
  Entries whose standard error is exactly zero are structural: they pass only if
  they equal the theory exactly.
* **Multiple comparisons.** Holm's step-down procedure over the m entries of the
  upper triangle (the arrays are symmetric), which controls the family-wise error
  at level alpha under any dependence between entries.
* **Rates.** For width sweeps, a weighted least-squares line through
  (log n, log e(n)) with weights from the standard errors of log e(n); the slope's
  standard error is inflated by the Birge ratio sqrt(chi^2 / dof) when above 1, and
  the interval is slope +- z_{1 - alpha/2} SE.

**False-failure budget.** A run of the verifier (``linrnn verify ntk``,
:func:`linrnn.verify.check_ntk.check_lag_ntk`) fails a true theory with probability at most
its family-wise ``alpha`` (default 1e-3, split by Bonferroni over its checks, Holm
within each), as long as the O(n^-2) remainder of the bias is small against the
standard errors. The test suite runs at most ten true-theory verdicts at
alpha = 1e-3 (``tests/test_verify_check.py``: six runs, ``tests/test_verify_montecarlo.py``:
four entry tests, plus the GPU comparisons when selected), all with fixed seeds: a
suite-wide false-failure budget of 1e-2 over the choice of seeds. Calibration tests
of the procedures themselves (``tests/test_verify_stats.py``) simulate null families at
a larger alpha and compare the rejection count with its binomial allowance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np


class Moments:
    """Streaming mean and sum of squared deviations (Chan et al. 1979), in float64.

    ``add(chunk)`` takes an array whose first axis runs over independent draws.
    """

    def __init__(self) -> None:
        self.count = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def add_summary(self, count: int, mean: np.ndarray, m2: np.ndarray) -> None:
        """Merge a chunk summarised by its count, mean and sum of squared deviations."""
        mean = np.asarray(mean, dtype=np.float64)
        m2 = np.asarray(m2, dtype=np.float64)
        if count <= 0:
            return
        if self.mean is None or self.m2 is None:
            self.count, self.mean, self.m2 = count, mean.copy(), m2.copy()
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * count / total)
        self.count = total

    def add(self, chunk: Any) -> None:
        """Merge a chunk of draws given as a NumPy array (first axis = draws)."""
        chunk = np.asarray(chunk, dtype=np.float64)
        mean = chunk.mean(axis=0)
        self.add_summary(chunk.shape[0], mean, ((chunk - mean) ** 2).sum(axis=0))

    @property
    def variance(self) -> np.ndarray:
        """Unbiased sample variance (ddof = 1); needs at least two draws."""
        if self.m2 is None or self.count < 2:
            raise ValueError("the variance needs at least two draws")
        return self.m2 / (self.count - 1)

    @property
    def stderr(self) -> np.ndarray:
        """Standard error of the mean, sqrt(variance / count)."""
        return np.sqrt(self.variance / self.count)


# ----------------------------------------------------------------- distributions


def _special() -> Any:
    """``scipy.special``, imported on first use.

    The distribution functions below call the same special functions that scipy.stats'
    ``t`` and ``norm`` call (``stdtr``, ``stdtrit``, ``ndtr``, ``ndtri``), without
    importing scipy.stats, which costs about a second at start-up.
    """
    from scipy import special

    return special


def t_sf(t: float, dof: float) -> float:
    """P(T > t) for Student's t with ``dof`` degrees of freedom (normal when dof is inf).

    ``stdtr(dof, -t)`` / ``ndtr(-t)``, i.e. scipy.stats ``t.sf`` / ``norm.sf``, accurate to relative ~1e-13 in the far tails
    (far below float64's epsilon) against the regularised incomplete beta function
    P(|T| > t) = I_{dof / (dof + t^2)}(dof / 2, 1 / 2) at high precision
    (``tests/test_verify_stats.py``).
    """
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 0.0 if t > 0 else 1.0
    sc = _special()
    return float(sc.ndtr(-t) if math.isinf(dof) else sc.stdtr(dof, -t))


@lru_cache(maxsize=4096)
def t_isf(p: float, dof: float) -> float:
    """The t with P(T > t) = p, for 0 < p < 1/2 (``-stdtrit(dof, p)`` / ``-ndtri(p)``, scipy.stats ``t.isf`` / ``norm.isf``)."""
    if not 0 < p < 0.5:
        raise ValueError(f"p must lie in (0, 1/2), got {p!r}")
    sc = _special()
    return float(-sc.ndtri(p) if math.isinf(dof) else -sc.stdtrit(dof, p))


# ------------------------------------------------------------------ entry tests


def richardson(
    mean_n: np.ndarray, se_n: np.ndarray, n: int, mean_h: np.ndarray | None, se_h: np.ndarray | None, h: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected estimate and its standard error from widths n and h < n.

    a = (n m_n - h m_h) / (n - h) removes the O(1/n) term of m(n) = a + B/n + O(n^-2);
    SE_a = sqrt((n SE_n)^2 + (h SE_h)^2) / (n - h). Without a companion (h is None)
    the raw mean and standard error are returned.
    """
    if h is None or mean_h is None or se_h is None:
        return np.asarray(mean_n, dtype=np.float64), np.asarray(se_n, dtype=np.float64)
    if not 0 < h < n:
        raise ValueError(f"the companion width must lie in (0, {n}), got {h}")
    est = (n * mean_n - h * mean_h) / (n - h)
    se = np.sqrt((n * se_n) ** 2 + (h * se_h) ** 2) / (n - h)
    return est, se


@dataclass
class EntryTest:
    """Result of the entrywise test of one array of estimates against one theory.

    ``z`` has the shape of the arrays; ``threshold`` is Holm's first (Bonferroni)
    critical |z| = t_{1 - alpha / (2 m)}, the largest the procedure uses.
    """

    name: str
    z: np.ndarray
    m: int
    alpha: float
    dof: float
    threshold: float
    max_abs_z: float
    worst_index: tuple[int, ...]
    rejected: int
    structural: int
    structural_mismatch: int
    #: entries of the upper triangle (all of them: tested, structural or not finite)
    total: int = 0
    #: entries whose estimate or standard error is not finite (never dropped: they make the test an error)
    nonfinite: int = 0

    @property
    def passed(self) -> bool:
        return self.rejected == 0 and self.structural_mismatch == 0 and self.nonfinite == 0

    @property
    def outcome(self) -> str:
        """pass / fail / error: error when any entry is not finite (never a pass)."""
        if self.nonfinite or not math.isfinite(self.max_abs_z):
            return "error"
        return "pass" if self.passed else "fail"

    @property
    def verdict(self) -> str:
        return self.outcome

    @property
    def entries_note(self) -> str:
        """How many entries were tested and why any were left out of the Holm family."""
        out = f"{self.m} of {self.total} entries tested"
        if self.structural:
            out += (f"; {self.structural} structural (zero standard error: exact in every draw), "
                    f"compared exactly ({self.structural_mismatch} differ)")
        if self.nonfinite:
            out += f"; {self.nonfinite} not finite (an error)"
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "statistic": "max |z|",
            "value": _finite_or_none(self.max_abs_z),
            "threshold": self.threshold,
            "worst_entry": list(self.worst_index),
            "entries_tested": self.m,
            "entries_rejected_holm": self.rejected,
            "structural_zeros": self.structural,
            "structural_mismatches": self.structural_mismatch,
            "entries_total": self.total,
            "entries_nonfinite": self.nonfinite,
            "entries_note": self.entries_note,
            "alpha": self.alpha,
            "dof": _finite_or_none(self.dof),
            "correction": "Holm step-down over the entries tested (family-wise error <= alpha)",
        }


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def holm_rejections(abs_z: np.ndarray, alpha: float, dof: float) -> tuple[int, float]:
    """Number of hypotheses Holm's step-down procedure rejects, and its first threshold.

    Two-sided p-values p = 2 P(T > |z|); step k = 0, 1, ... (|z| in decreasing order)
    rejects while p_(k) <= alpha / (m - k). Thresholds on |z| decrease with k, so every
    |z| above the first (Bonferroni) threshold is rejected without further work.
    """
    m = int(abs_z.size)
    if m == 0:
        return 0, math.inf
    first = t_isf(alpha / (2 * m), dof)
    ordered = np.sort(abs_z.ravel())[::-1]
    k = int(np.count_nonzero(ordered >= first))
    while k < m:
        if 2 * t_sf(float(ordered[k]), dof) <= alpha / (m - k):
            k += 1
        else:
            break
    return k, first


def entry_test(
    name: str,
    estimate: np.ndarray,
    stderr: np.ndarray,
    theory: np.ndarray,
    *,
    alpha: float,
    dof: float,
    symmetric: bool = True,
) -> EntryTest:
    """Holm-corrected test of H0: E[estimate] = theory for every entry (see module docstring).

    Arrays of shape (L, n_y, n_x, L, n_y, n_x) (or any (M..., M...) layout) are
    symmetric: with ``symmetric`` only the upper triangle of the flattened M x M
    matrix is tested (m = M (M + 1) / 2). Entries with zero standard error are
    structural and must equal the theory exactly.
    """
    estimate = np.asarray(estimate, dtype=np.float64)
    stderr = np.asarray(stderr, dtype=np.float64)
    theory = np.asarray(theory, dtype=np.float64)
    dev = estimate - theory
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(stderr > 0, dev / np.where(stderr > 0, stderr, 1.0), np.where(dev == 0, 0.0, np.inf * np.sign(dev)))
    if symmetric:
        M = int(round(math.sqrt(z.size)))
        if M * M != z.size:
            raise ValueError("a symmetric test needs an M x M array (possibly reshaped)")
        tested = np.triu(np.ones((M, M), dtype=bool)).reshape(z.shape)
    else:
        tested = np.ones(z.shape, dtype=bool)
    bad = tested & ~(np.isfinite(estimate) & np.isfinite(stderr) & np.isfinite(theory))
    structural = tested & ~bad & (stderr == 0)
    mismatch = int(np.count_nonzero(structural & (dev != 0)))
    stochastic = tested & ~bad & (stderr > 0)
    abs_z = np.abs(z[stochastic])
    rejected, threshold = holm_rejections(abs_z, alpha, dof)
    masked = np.where(tested, np.where(bad, np.nan, np.abs(z)), -1.0)
    if np.any(bad):
        worst = np.unravel_index(int(np.argmax(bad)), z.shape)
    else:
        worst = np.unravel_index(int(np.argmax(masked)), z.shape)
    return EntryTest(
        name=name,
        z=z,
        m=int(abs_z.size),
        alpha=alpha,
        dof=dof,
        threshold=threshold,
        max_abs_z=float(masked[worst]) if masked.size else 0.0,
        worst_index=tuple(int(i) for i in worst),
        rejected=rejected,
        structural=int(np.count_nonzero(structural)),
        structural_mismatch=mismatch,
        total=int(np.count_nonzero(tested)),
        nonfinite=int(np.count_nonzero(bad)),
    )


# ------------------------------------------------------------------------ rates


@dataclass
class RateFit:
    """Weighted log-log fit log e = c + slope log n, and its test against an expected slope."""

    slope: float
    intercept: float
    stderr: float
    ci: tuple[float, float]
    level: float
    chi2: float
    dof: int
    birge: float
    expected: float
    name: str = "rate"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.ci[0] <= self.expected <= self.ci[1]

    @property
    def outcome(self) -> str:
        """pass / fail / error: error when the slope or its standard error is not finite."""
        if not (math.isfinite(self.slope) and math.isfinite(self.stderr)):
            return "error"
        return "pass" if self.passed else "fail"

    @property
    def verdict(self) -> str:
        return self.outcome

    @property
    def z(self) -> float:
        return (self.slope - self.expected) / self.stderr if self.stderr > 0 else math.inf

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "statistic": "fitted log-log slope",
            "value": self.slope,
            "stderr": self.stderr,
            "ci": list(self.ci),
            "ci_level": self.level,
            "expected": self.expected,
            "z": _finite_or_none(self.z),
            "threshold": "expected slope inside the interval",
            "birge_ratio": self.birge,
            "chi2": self.chi2,
            "dof": self.dof,
            **self.extra,
        }


def loglog_fit(
    widths: np.ndarray,
    values: np.ndarray,
    stderrs: np.ndarray,
    *,
    expected: float,
    alpha: float,
    name: str = "rate",
    inverse_width_term: bool = False,
) -> RateFit:
    """Weighted least squares of log(values) on log(widths) (and 1 / widths).

    Model: log e(n) = c + beta log n (+ d / n with ``inverse_width_term``, the
    allowance for the O(1/n) correction to a power law). sigma_k = stderrs_k /
    values_k (delta method for the log). beta's standard error
    sqrt([(X^T S^-1 X)^-1]_beta) is multiplied by the Birge ratio sqrt(chi^2 / dof)
    when dof = k - p > 0 and the ratio exceeds 1. The interval is
    beta +- z_{1 - alpha / 2} SE with the normal quantile.
    """
    x = np.log(np.asarray(widths, dtype=np.float64))
    values = np.asarray(values, dtype=np.float64)
    y = np.log(values)
    sig = np.asarray(stderrs, dtype=np.float64) / values
    cols = [np.ones_like(x), x] + ([np.exp(-x)] if inverse_width_term else [])
    if x.size < len(cols):
        raise ValueError(f"this rate model needs at least {len(cols)} widths, got {x.size}")
    w = 1.0 / sig**2
    X = np.stack(cols, axis=1)
    cov = np.linalg.inv(X.T @ (X * w[:, None]))
    coef = cov @ (X.T @ (w * y))
    resid = y - X @ coef
    chi2 = float(np.sum(w * resid**2))
    dof = int(x.size - len(cols))
    birge = math.sqrt(chi2 / dof) if dof > 0 else 1.0
    se = math.sqrt(cov[1, 1]) * max(1.0, birge)
    q = t_isf(alpha / 2, math.inf)
    slope = float(coef[1])
    return RateFit(
        slope=slope,
        intercept=float(coef[0]),
        stderr=se,
        ci=(slope - q * se, slope + q * se),
        level=1 - alpha,
        chi2=chi2,
        dof=dof,
        birge=birge,
        expected=expected,
        name=name,
    )
