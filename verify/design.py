"""Sizing a run for power: the two-stage design shared by every claim.

A claim is a pre-registered test. Its own test fails a true theory with probability
at most ``alpha`` (its stated false-failure rate); each negative control (a wrong
theory) must be rejected with probability at least ``power`` (0.999 by default) at
the sizes the run uses. The sizes come from this design, never from trying seeds:

1. **Pilot.** ``pilot`` independent replicas estimate, for the claim's statistic and
   for every control, the effect per replica: the standardized distance
   ``d = |E[estimate] - prediction| / sd`` of one replica (sd the per-replica standard
   deviation), so that with R replicas the test statistic is about ``sqrt(R) d``.
2. **Size.** The replicas needed so that a control with effect d is rejected by a
   test with critical value ``crit`` with probability ``power``:

       R(d) = ceil(((crit + z_power) / d_low)^2),     z_power = Phi^-1(power),

   where ``d_low`` is a lower confidence bound of d (the pilot's sd is inflated to its
   upper ``1 - pilot_level`` chi-square bound, so an unlucky pilot does not undersize
   the run). The run uses ``max(R(d) over controls, min_replicas)``, capped by
   ``max_replicas`` and by what ``budget_seconds`` allows at the pilot's cost per
   replica.
3. **Decision.** The main stage draws *fresh* replicas (the pilot's are not reused),
   so the decision is a fixed-size test given the size: its false-failure rate is
   exactly the stated ``alpha``, whatever the pilot did. A control that is still
   not rejected makes the claim ``inconclusive``, and the result names the size that
   the design says would decide it.

The simulation test in ``tests/test_design.py`` checks the false-failure rate and the
power of this design on a cheap synthetic claim over thousands of runs.

**Critical values that depend on the size.** A t-test's critical value falls with its
degrees of freedom, so :func:`replicas_for_crit` finds the smallest R that its own
critical value crit(R) sizes for (a bisection from the normal quantile); the entrywise Holm tests use
their first (Bonferroni) critical value t_{1 - alpha / (2 m)}(R - 1) at the claim's
own ``alpha``.

**Finite-width bias (the allowance).** The theories are n -> oo limits; a fixed-width
estimate carries a bias that a growing R eventually detects. The lag-NTK checks remove
the O(1/n) term by the two-point fit at n and n / 2, which leaves a remainder
r = -2 c / n^2. The pilot also measures n / 4, so r is estimated per entry as
(a(n, n/2) - a(n/2, n/4)) / 3 with its standard error; its significant part
b = max(0, |r| - 2 SE_r) caps the main stage at :func:`bias_cap`
R_bias = (f s / b)^2 (s the per-replica sd of the corrected entry, f =
:data:`BIAS_FRACTION`), so that a remainder the pilot can see stays below f standard
errors (it then moves a z-score by at most f). A remainder too small for the pilot to
see is below about 2 SE_r; it is not capped, and the run says so. A cap by the bias
means only a larger width can decide the controls, and the result says that.

**Per claim (the lag-NTK sweep, :func:`linrnn.verify.check_ntk.check_lag_ntk`).**
One pilot serves the three claims of the sweep ``[ntk]``, and the main stage uses the
largest size any of their controls needs (the same R at every width). The sweep's
``alpha`` is split by Bonferroni over its three checks; each claim states its share.

* ``ntk_limit`` (entrywise Holm test of the bias-corrected lag NTK at the largest
  width): a control's effect is max_k |control_k - theory_k| / s_k over the tested
  entries, s_k the per-replica sd of the two-point estimate,
  s = sqrt((n sd_n)^2 + (h sd_h)^2) / (n - h); critical value Holm's first,
  t_{1 - alpha / (2 m)}(R - 1). Controls: no linear term in j; q -> 1.1 q.
* ``nngp``: the same for the second moment of L(0). Control: q -> 1.1 q.
* ``width_rate`` (the fitted log-log slope's interval must contain -1/2): the effect of
  the wrong rate -1 is |-1 - (-1/2)| over the slope's per-replica sd (SE sqrt(R),
  Birge-inflated), at the normal critical value; the effect of each wrong kernel
  (``rate:ntk:...``) is the distance of its fitted slope from -1/2.

A control that is rejected by any of its checks counts as rejected; its predicted
power at the size used is the best of its checks'.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from linrnn.core.errors import UsageError

#: The power every control is designed for.
POWER = 0.999
#: One-sided level of the pilot's upper confidence bound on a standard deviation.
PILOT_LEVEL = 0.05


def _special():  # the special functions behind scipy.stats' norm and chi2, without importing scipy.stats (about 1 s)
    from scipy import special

    return special


def z_power(power: float = POWER) -> float:
    """Phi^-1(power): how far beyond the critical value a statistic must be expected to lie."""
    if not 0 < power < 1:
        raise UsageError(f"power must lie strictly between 0 and 1, got {power!r}")
    return float(_special().ndtri(power))  # norm.ppf


def sd_upper(sd: float, dof: int, level: float = PILOT_LEVEL) -> float:
    """Upper (1 - level) confidence bound of a standard deviation estimated with ``dof`` degrees of freedom.

    sd * sqrt(dof / chi2_{level}(dof)) (chi-square lower quantile).
    """
    if dof < 1:
        return math.inf
    chi2_ppf = 2 * _special().gammaincinv(dof / 2, level)  # scipy.stats chi2.ppf(level, dof)
    return float(sd * math.sqrt(dof / chi2_ppf))


def replicas_for(effect: float, sd: float, crit: float, power: float = POWER) -> float:
    """R with sqrt(R) |effect| / sd >= crit + z_power: a test at critical value ``crit`` rejects with ``power``.

    Infinite when the effect is zero (no size can see it); at least 1.
    """
    if not (math.isfinite(effect) and math.isfinite(sd)) or sd < 0:
        return math.inf
    if effect == 0:
        return math.inf
    if sd == 0:
        return 1.0
    return max(1.0, math.ceil(((crit + z_power(power)) * sd / abs(effect)) ** 2))


def predicted_power(effect: float, sd: float, replicas: float, crit: float) -> float:
    """P(|Z + sqrt(R) effect / sd| > crit) for Z ~ N(0, 1): the power of the z-test at R replicas."""
    if sd == 0:
        return 1.0 if effect != 0 else 0.0
    shift = math.sqrt(replicas) * abs(effect) / sd
    sc = _special()
    return float(sc.ndtr(shift - crit) + sc.ndtr(-crit - shift))  # norm.sf(crit - shift) + norm.cdf(-crit - shift)


@dataclass(frozen=True)
class Design:
    """The sizes of a two-stage run: pilot, bounds, and the power target."""

    pilot: int = 16
    min_replicas: int = 16
    max_replicas: int = 4096
    budget_seconds: float | None = None
    power: float = POWER

    def __post_init__(self) -> None:
        for name in ("pilot", "min_replicas", "max_replicas"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 2:
                raise UsageError(f"{name} must be an integer >= 2, got {v!r}")
        if self.min_replicas > self.max_replicas:
            raise UsageError(f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})")
        if self.budget_seconds is not None and not (math.isfinite(self.budget_seconds) and self.budget_seconds > 0):
            raise UsageError(f"budget_seconds must be a positive number, got {self.budget_seconds!r}")
        if not 0 < self.power < 1:
            raise UsageError(f"power must lie strictly between 0 and 1, got {self.power!r}")


@dataclass(frozen=True)
class Plan:
    """What the pilot decided: the replicas of the main stage and, per control, the replicas it needs."""

    replicas: int
    needed: dict[str, float]
    capped_by: str | None  # "max_replicas", "budget_seconds" or None

    def as_dict(self) -> dict[str, object]:
        return {"replicas": self.replicas,
                "needed": {k: (None if math.isinf(v) else int(v)) for k, v in self.needed.items()},
                "capped_by": self.capped_by}


def size(
    needed: Mapping[str, float],
    design: Design,
    *,
    seconds_per_replica: float | None = None,
    bias_cap: float | None = None,
) -> Plan:
    """Main-stage size from the replicas each control needs: max(needed, min_replicas), then the caps.

    Caps, in order: ``max_replicas``, ``budget_seconds / seconds_per_replica`` and
    the bias allowance ``bias_cap`` (:func:`bias_cap`); the last cap that binds is
    ``capped_by``. A control that no size can see (infinite need) asks for ``max_replicas``.
    """
    want = max([design.min_replicas, *[v for v in needed.values() if math.isfinite(v)]])
    if any(math.isinf(v) for v in needed.values()):
        want = max(want, design.max_replicas)
    capped_by = None
    n = want
    if n > design.max_replicas:
        n, capped_by = design.max_replicas, "max_replicas"
    if design.budget_seconds is not None and seconds_per_replica and seconds_per_replica > 0:
        affordable = int(design.budget_seconds / seconds_per_replica)
        if affordable < n:
            n, capped_by = max(2, affordable), "budget_seconds"
    if bias_cap is not None and math.isfinite(bias_cap) and bias_cap < n:
        n, capped_by = max(2, int(bias_cap)), "bias"
    return Plan(int(n), dict(needed), capped_by)


def plan(
    effects: Mapping[str, tuple[float, float]],
    crit: float,
    design: Design,
    *,
    pilot_dof: int,
    seconds_per_replica: float | None = None,
) -> Plan:
    """Main-stage size from pilot estimates ``effects[name] = (effect, sd)`` of each control.

    ``sd`` is inflated to its upper confidence bound (``pilot_dof`` degrees of freedom)
    before sizing; the size is ``max(needed, min_replicas)`` capped by ``max_replicas``
    and by ``budget_seconds / seconds_per_replica``.
    """
    needed = {k: replicas_for(e, sd_upper(sd, pilot_dof), crit, design.power) for k, (e, sd) in effects.items()}
    return size(needed, design, seconds_per_replica=seconds_per_replica)


#: The bias allowance: a remainder the pilot can see is kept below this many standard errors.
BIAS_FRACTION = 0.25
#: Family-wise level at which the pilot declares a remainder seen (Bonferroni over the entries).
#: A chance detection caps a run whose theory is exact and makes it inconclusive, so it must
#: be rare: at 0.05 it capped 1 of 50 calibration seeds of the quick profile to 8 replicas
#: (seed 25), which made the three NTK claims inconclusive there; at 1e-3 that happens in
#: at most one run in a thousand.
BIAS_LEVEL = 1e-3


def replicas_for_crit(effect: float, sd: float, crit: Callable[[float], float], power: float = POWER) -> float:
    """:func:`replicas_for` with a critical value that depends on R (e.g. a t quantile with R - 1 dof).

    The smallest R >= 2 with R >= replicas_for(effect, sd, crit(R)): crit falls with R,
    so the predicate is monotone and a bisection between the normal-quantile need and
    the need at R = 2 finds it.
    """
    def need(r: float) -> float:
        return replicas_for(effect, sd, crit(r), power)

    lo = max(2.0, replicas_for(effect, sd, crit(math.inf), power))
    if math.isinf(lo):
        return lo
    if lo >= need(lo):
        return lo
    hi = max(lo, need(lo))
    while hi < need(hi):  # need(hi) <= need(lo) = hi already; guard against rounding
        hi *= 2
    lo_i, hi_i = int(lo), int(math.ceil(hi))
    while hi_i - lo_i > 1:
        mid = (lo_i + hi_i) // 2
        if mid >= need(mid):
            hi_i = mid
        else:
            lo_i = mid
    return float(hi_i)


def bias_cap(remainder: float, remainder_se: float, sd: float, fraction: float = BIAS_FRACTION,
             k: float = 2.0) -> float:
    """R_bias = (fraction sd / b)^2 with b = max(0, |remainder| - k SE): infinite when the pilot sees no remainder."""
    b = abs(remainder) - k * remainder_se
    if not (math.isfinite(b) and math.isfinite(sd)) or b <= 0:
        return math.inf
    return max(2.0, (fraction * sd / b) ** 2)
