"""Sizing a run for power: the group-sequential design shared by every claim.

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
3. **Main stage (look 1).** Fresh replicas (the pilot's are not reused) are drawn and
   tested: the claim's own test and every control, at the per-look level (below).
   The run stops when the claim's own test fails (or errs), or when every control is
   rejected.
4. **Further stage (look 2, :func:`sequential_stages`).** The pilot's estimate of d is
   a point estimate from a few replicas; where the effect varies from draw to draw
   (heavy-tailed per-replica values, as in the training claims) it is often too
   optimistic, and the main stage falls short: over seeds 1000-1049 of the quick
   profile the two-stage design left min_norm's control ``interpolant:plain_min_norm``
   undecided twice (power 48/50 against the stated 0.999). So when the claim's own test
   passes but a control is not rejected, a further stage of *fresh* replicas is drawn,
   R' = max(R, the size the main stage's estimate of d asks for), within the same caps
   (``max_replicas``, the rest of ``budget_seconds``, the bias allowance below), and
   tested alone, at the same per-look critical values. A control is decided by the
   first look that rejects it; the claim's own test by every look taken (a failure at
   any look is a failure). A control still undecided after the last look, or whose
   further stage the caps leave empty, makes the claim ``inconclusive``, and the
   result names the size that the last look says would decide it.

**Error rates as stated.** The number of looks is fixed in advance (:data:`LOOKS` = 2;
a fixed-size run without a pilot takes one). Each look tests the claim at
``alpha / looks`` (Bonferroni over the looks: ``Design.alpha_share``), so

    P(a true theory fails) <= sum over looks of alpha / looks = alpha,

exactly as stated, whatever the sizes: every stage's replicas are fresh and its size is
a function of earlier stages only, so each look is a fixed-size test given its size
(pooling the stages would make the second look's size depend on the data it tests, and
its level would no longer be the nominal one). The controls are tested at the same
critical values at each look. Power: a control is missed only if every look misses it;
with the further stage sized on the main stage's own estimate, the design reaches its
stated power where the two-stage design did not (the simulation below). The price is
the larger per-look critical value (alpha / 2 in place of alpha: about 5-10% more
replicas in the main stage at the levels used) and, in the runs that need it, the
further stage. ``Design(looks=1)`` is the former two-stage design.

The simulations in ``tests/test_design.py`` check the false-failure rate and the power
of this design on cheap synthetic claims over thousands of runs: Gaussian replicas
(where the t-test is exact and every run takes both looks: the Bonferroni split is what
keeps the rate within alpha) and heavy-tailed replicas whose effect varies from draw to
draw (where one look misses the control far more often than 1 - power and two looks
do not).

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
largest size any of their controls needs (the same R at every width); a further stage,
where one is drawn, serves them too. The sweep's ``alpha`` is split by Bonferroni over
its three checks (each claim states its share) and each check's share over the looks.

**Which runs use the further stage.** Every claim: the training claims through
:func:`linrnn.verify.claims.training.run_design` (``min_norm``, ``dynamics_equivalence``,
``short_memory``; their further stage is sized on every replica drawn so far, pilot
included), the lag-NTK sweep (:func:`linrnn.verify.check_ntk.check_lag_ntk`, sized on
the main stage's estimate), ``finite_width`` (:mod:`linrnn.families.gaussian.claim`:
the control's size, common to every width, sized on the main stage's per-entry sds; each
width draws at least that many and as many as its pilot's skewness asks for; fresh seed
streams 12 + s x F at stage s, F = :data:`FURTHER_OFFSET`) and
``co2`` (:mod:`linrnn.verify.claims.co2`: sized on the main stage's estimate at each
control's best q; fresh replica indices from s x F at stage s). The training claims,
``finite_width`` and ``co2`` state ``stages``, ``looks``, ``alpha_per_look``,
``main_replicas``, ``replicas_total``, ``stopped`` and ``decided_at_stage`` in their
results' ``design`` (the NTK claims: ``stages``, ``looks``, ``alpha_per_look`` and
``decided_at_stage``). Only a fixed-size run without a pilot (``verify ntk --pilot 0``)
takes one look at the full alpha.

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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from linrnn.core.errors import UsageError

#: Where a further stage's fresh replicas start (stage s >= 1 uses s x FURTHER_OFFSET + r, as replica indices in
#: the training claims and co2, as seed-stream offsets in finite_width): far from the pilot's and the main stage's.
FURTHER_OFFSET = 2_000_000
#: The power every control is designed for.
POWER = 0.999
#: One-sided level of the pilot's upper confidence bound on a standard deviation.
PILOT_LEVEL = 0.05
#: Looks the design may take: the main stage and one further stage (each tested at alpha / LOOKS).
LOOKS = 2


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
    """The sizes of a run: pilot, bounds, the power target and the looks (``looks = 1``: the two-stage design)."""

    pilot: int = 16
    min_replicas: int = 16
    max_replicas: int = 4096
    budget_seconds: float | None = None
    power: float = POWER
    #: how many looks (stages that are tested) the run may take: the main stage and ``looks - 1`` further ones
    looks: int = LOOKS

    def __post_init__(self) -> None:
        for name in ("pilot", "min_replicas", "max_replicas"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 2:
                raise UsageError(f"{name} must be an integer >= 2, got {v!r}")
        if isinstance(self.looks, bool) or not isinstance(self.looks, int) or self.looks < 1:
            raise UsageError(f"looks must be an integer >= 1, got {self.looks!r}")
        if self.min_replicas > self.max_replicas:
            raise UsageError(f"min_replicas ({self.min_replicas}) exceeds max_replicas ({self.max_replicas})")
        if self.budget_seconds is not None and not (math.isfinite(self.budget_seconds) and self.budget_seconds > 0):
            raise UsageError(f"budget_seconds must be a positive number, got {self.budget_seconds!r}")
        if not 0 < self.power < 1:
            raise UsageError(f"power must lie strictly between 0 and 1, got {self.power!r}")

    @property
    def alpha_share(self) -> float:
        """The share of a claim's alpha that each look spends (Bonferroni over the looks): 1 / looks."""
        return 1.0 / self.looks


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


# ----------------------------------------------------------------- further stages (group-sequential)

S = TypeVar("S")


@dataclass(frozen=True)
class Look:
    """What a claim's tests say on the fresh replicas of one stage (the claim supplies it).

    ``own``: the claim's own tests at this look ("pass", "fail" or "error"), at the
    per-look level alpha / looks. ``rejected``: per control, whether this look rejects
    it, at the same per-look critical values. ``need(name, power)``: the replicas a
    fresh stage needs to reject control ``name`` with probability ``power`` at the
    per-look critical values, from this look's estimate of its effect (inf: this look
    sees no effect in the rejecting direction).
    """

    own: str
    rejected: Mapping[str, bool]
    need: Callable[[str, float], float]


@dataclass
class Stages(Generic[S]):
    """The stages a run drew and tested: one sample and one look each, in order."""

    samples: list[S]
    looks: list[Look]
    #: per control: the index of the stage that decides it (its first rejection, else the last stage)
    decided_at: dict[str, int]
    #: per stage: replicas, alpha share, the claim's own outcome, the controls it rejected and, where
    #: one is undecided, the replicas each needs and the next stage's size (no timings: results are
    #: deterministic given the seed)
    record: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = ""

    @property
    def last(self) -> S:
        return self.samples[-1]

    def sample_for(self, control: str) -> S:
        """The sample of the stage that decides ``control``."""
        return self.samples[self.decided_at[control]]

    def as_dict(self) -> dict[str, Any]:
        return {"stages": self.record, "stopped": self.stopped,
                "decided_at_stage": {k: v + 1 for k, v in self.decided_at.items()}}


def _finite_int(v: float) -> int | None:
    return int(math.ceil(v)) if math.isfinite(v) else None


def sequential_stages(
    draw: Callable[[int, int], S],
    look: Callable[[S, int], Look],
    first: int,
    design: Design,
    controls: Sequence[str],
    *,
    seconds_spent: float = 0.0,
    limit: float | None = None,
    limit_name: str = "bias",
) -> Stages[S]:
    """The main stage of ``first`` fresh replicas, then further stages while a control is undecided (group-sequential).

    ``draw(stage, k)`` draws k *fresh* replicas for stage ``stage`` (0 the main stage)
    and ``look(sample, stage)`` tests them (:class:`Look`), the claim's own tests and
    every control at the per-look level alpha / ``design.looks``. After each look the
    run stops when the claim's own tests fail or err, when every control has been
    rejected at some look, or when no look is left; otherwise a further stage is drawn
    with R' = max(R, max over the undecided controls of ``look.need(c, power)``)
    replicas, capped by ``max_replicas``, by what the rest of ``budget_seconds`` allows
    (``seconds_spent`` is what the pilot took; the cost per replica is the last stage's)
    and by ``limit`` (e.g. the bias allowance); a control whose need is infinite (the
    look sees no effect in its direction) asks for ``max_replicas``, as in the main
    stage. The further stage is drawn whatever the look's estimate predicts at the capped
    size: with heavy-tailed replicas a single stage's estimate of the effect is itself
    unreliable, and a further stage that was not drawn cannot decide anything.

    Every stage's replicas are fresh and its size is a function of earlier stages
    only, so each look is a fixed-size test given its size; the claim's own tests fail
    a true theory at some look with probability at most looks x alpha / looks = alpha
    (Bonferroni), whatever the sizes.
    """
    controls = list(controls)
    samples: list[S] = []
    looks: list[Look] = []
    record: list[dict[str, Any]] = []
    decided: dict[str, int] = {}
    spent = float(seconds_spent)
    size = int(first)
    stopped = ""
    for stage in range(design.looks):
        t0 = time.perf_counter()
        sample = draw(stage, size)
        seconds = time.perf_counter() - t0
        spent += seconds
        lk = look(sample, stage)
        samples.append(sample)
        looks.append(lk)
        for k in controls:
            if k not in decided and lk.rejected.get(k, False):
                decided[k] = stage
        record.append({"stage": stage + 1, "replicas": size, "alpha_share": design.alpha_share, "own": lk.own,
                       "rejected": [k for k in controls if lk.rejected.get(k, False)]})
        undecided = [k for k in controls if k not in decided]
        if lk.own != "pass":
            stopped = f"the claim's own tests gave {lk.own} at stage {stage + 1}"
            break
        if not undecided:
            stopped = f"every control rejected by stage {stage + 1}"
            break
        need = {k: float(lk.need(k, design.power)) for k in undecided}
        record[-1]["needed"] = {k: _finite_int(v) for k, v in need.items()}
        if stage + 1 == design.looks:
            stopped = (f"no look left ({design.looks} look{'s' if design.looks > 1 else ''}); undecided: "
                       + ", ".join(undecided))
            break
        want = max([size, *[v for v in need.values() if math.isfinite(v)]])
        if any(math.isinf(v) for v in need.values()):
            want = max(want, design.max_replicas)
        nxt, capped_by = want, None
        if nxt > design.max_replicas:
            nxt, capped_by = design.max_replicas, "max_replicas"
        if design.budget_seconds is not None and seconds > 0:
            affordable = int((design.budget_seconds - spent) / (seconds / size))
            if affordable < nxt:
                nxt, capped_by = affordable, "budget_seconds"
        if limit is not None and math.isfinite(limit) and limit < nxt:
            nxt, capped_by = int(limit), limit_name
        nxt = int(nxt)
        if nxt < 2:
            stopped = (f"no further stage: {capped_by} leaves {max(nxt, 0)} replicas; undecided: "
                       + ", ".join(undecided))
            break
        record[-1]["next"] = {"replicas": nxt, "capped_by": capped_by}
        size = nxt
    for k in controls:
        decided.setdefault(k, len(samples) - 1)
    return Stages(samples, looks, decided, record, stopped)
