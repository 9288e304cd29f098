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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from linrnn.core.errors import UsageError

#: The power every control is designed for.
POWER = 0.999
#: One-sided level of the pilot's upper confidence bound on a standard deviation.
PILOT_LEVEL = 0.05


def _norm():  # scipy.stats is imported on first use (about 1 s)
    from scipy import stats

    return stats.norm


def z_power(power: float = POWER) -> float:
    """Phi^-1(power): how far beyond the critical value a statistic must be expected to lie."""
    if not 0 < power < 1:
        raise UsageError(f"power must lie strictly between 0 and 1, got {power!r}")
    return float(_norm().ppf(power))


def sd_upper(sd: float, dof: int, level: float = PILOT_LEVEL) -> float:
    """Upper (1 - level) confidence bound of a standard deviation estimated with ``dof`` degrees of freedom.

    sd * sqrt(dof / chi2_{level}(dof)) (chi-square lower quantile).
    """
    from scipy import stats

    if dof < 1:
        return math.inf
    return float(sd * math.sqrt(dof / stats.chi2.ppf(level, dof)))


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
    norm = _norm()
    return float(norm.sf(crit - shift) + norm.cdf(-crit - shift))


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
    want = max([design.min_replicas, *[v for v in needed.values() if math.isfinite(v)]])
    if any(math.isinf(v) for v in needed.values()):
        want = design.max_replicas
    capped_by = None
    size = want
    if size > design.max_replicas:
        size, capped_by = design.max_replicas, "max_replicas"
    if design.budget_seconds is not None and seconds_per_replica and seconds_per_replica > 0:
        affordable = int(design.budget_seconds / seconds_per_replica)
        if affordable < size:
            size, capped_by = max(2, affordable), "budget_seconds"
    return Plan(int(size), needed, capped_by)
