"""The width sweep shared by the claims ``ntk_limit``, ``nngp`` and ``width_rate`` (table ``[ntk]``).

One :func:`linrnn.verify.check_ntk.check_lag_ntk` run over the widths measures the lag
NTK, the NNGP second moment and the per-draw relative error at once; each of the three
claims reads its part, by the fields of the typed result
(:class:`~linrnn.verify.check_ntk.NTKCheck`, its :class:`~linrnn.verify.check_ntk.NTKDesign`,
:class:`~linrnn.verify.check_ntk.CheckResult` and :class:`~linrnn.verify.check_ntk.ControlResult`),
never the keys of its results object. :func:`sweep` is memoised per process on its full input
(configuration, model, seed, backend kind, dtype), so the three claims of one suite
run share one computation, while each claim stays a pure function of its inputs
(a claim run in another process recomputes the sweep and gets the same numbers).
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from linrnn.core.errors import UsageError
from linrnn.core.configure import set_fields
from linrnn.verify.claims.base import ClaimResult, result_config

if TYPE_CHECKING:  # the engine imports NumPy: the claims import it when they run
    from linrnn.verify.check_ntk import CheckResult, NTKCheck

SECTION = "ntk"


@dataclass(frozen=True)
class NtkConfig:
    """Sizes of the lag-NTK width sweep (defaults: the paper-scale ``full`` profile).

    ``lags``: lags of the lag NTK; ``widths``: the sweep (two or more distinct widths;
    the entrywise checks run at the largest); ``replicas``: the fewest draws per width
    of the main stage (with ``pilot = 0``: exactly this many); ``pilot``: fresh pilot
    draws per width that size the main stage for power 0.999 against every control
    (:mod:`linrnn.verify.design`); ``max_replicas``, ``budget_seconds`` (0: none): the
    caps of the design; ``alpha``: the family-wise false-failure level of the sweep,
    split equally by Bonferroni over its three claims (each claim's stated ``alpha``
    is ``alpha / 3``); ``max_memory``: memory bound of a batch of draws ("8GB", or bytes);
    ``mean``: ``"auto"`` compares the Monte Carlo mean with the exact finite-width
    expectation wherever :mod:`linrnn.families.gaussian.finite_width` reaches the lags, else (and
    with ``"richardson"``) the two-point bias-corrected estimate with the wide limit.
    """

    lags: int = 32
    widths: tuple[int, ...] = (256, 512, 1024, 2048, 4096)
    replicas: int = 1024
    alpha: float = 1e-3
    max_memory: str | int = "8GB"
    pilot: int = 64
    max_replicas: int = 8192
    budget_seconds: float = 0.0
    mean: str = "auto"

    def __post_init__(self) -> None:
        from linrnn.core.validate import in_open_interval, positive_int

        set_fields(self, lags=positive_int("ntk.lags", self.lags), widths=tuple(self.widths))
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.widths):
            raise UsageError(f"ntk.widths must hold positive integers, got {list(self.widths)!r}")
        if isinstance(self.replicas, bool) or not isinstance(self.replicas, int) or self.replicas < 2:
            raise UsageError(f"ntk.replicas must be an integer of at least 2 (standard errors), got {self.replicas!r}")
        if isinstance(self.max_replicas, bool) or not isinstance(self.max_replicas, int) or self.max_replicas < 2:
            raise UsageError(f"ntk.max_replicas must be an integer of at least 2, got {self.max_replicas!r}")
        in_open_interval("ntk.alpha", self.alpha, 0, 1)
        if not math.isfinite(self.budget_seconds):
            raise UsageError(f"ntk.budget_seconds must be a finite number of seconds (0: none), got {self.budget_seconds!r}")
        if self.mean not in ("auto", "exact", "richardson"):
            raise UsageError(f"ntk.mean must be one of auto, exact, richardson, got {self.mean!r}")
        if self.pilot < 0 or self.pilot == 1:
            raise UsageError(f"ntk.pilot must be 0 (no design) or at least 2, got {self.pilot}")
        if self.pilot and self.max_replicas < self.replicas:
            raise UsageError(f"ntk.max_replicas ({self.max_replicas}) is below ntk.replicas ({self.replicas})")
        if self.budget_seconds < 0:
            raise UsageError(f"ntk.budget_seconds must be 0 (no budget) or positive, got {self.budget_seconds}")
        if len(set(self.widths)) < 2:
            raise UsageError("ntk.widths needs at least two different widths (the rate is fitted over them)")
        from linrnn.core.validate import parse_memory

        try:
            parse_memory(self.max_memory)
        except UsageError as exc:
            raise UsageError(f"ntk.max_memory: {exc}") from None


def memory(config: NtkConfig, model: Any) -> int:
    """Peak bytes of one draw at the largest width (:func:`linrnn.verify.montecarlo.bytes_per_draw`).

    Draws are batched into chunks no larger than ``max_memory`` (on NumPy also the
    CPU chunk cap), so one draw is the size that must fit.
    """
    from linrnn.verify.check_ntk import THEORIES
    from linrnn.verify.montecarlo import bytes_per_draw

    return bytes_per_draw(max(config.widths), model.n_in, model.n_out, config.lags, 8, THEORIES)


def check(config: NtkConfig, model: Any) -> None:
    """One draw at the largest width must fit the sweep's own ``max_memory``, and the lags must leave every
    claim of the sweep a control that differs from the theory (both checked before any work)."""
    from linrnn.core.validate import check_memory, parse_memory
    from linrnn.verify.check_ntk import require_lag_controls

    check_memory(f"the lag-NTK sweep ([ntk] widths up to {max(config.widths)}, lags = {config.lags}), "
                 f"one draw,", memory(config, model), parse_memory(config.max_memory),
                 "[ntk] max_memory in the configuration")
    require_lag_controls(model, config.lags, "[ntk] lags")


@functools.lru_cache(maxsize=4)
def _sweep(config: NtkConfig, model: Any, seed: int, backend: str, dtype: str) -> NTKCheck:
    from linrnn.verify.check_ntk import check_lag_ntk
    from linrnn.verify.montecarlo import parse_memory

    r = check_lag_ntk(model, list(config.widths), lags=config.lags, replicas=config.replicas,
                      seed=seed, backend=backend, dtype=dtype, max_memory=parse_memory(config.max_memory),
                      alpha=config.alpha, progress=False, pilot=config.pilot, max_replicas=config.max_replicas,
                      budget_seconds=config.budget_seconds or None, mean=config.mean,
                      memory_flag="[ntk] max_memory in the configuration")
    return r


def sweep(config: NtkConfig, model: Any, *, seed: int, backend: str = "numpy", dtype: str = "float64") -> NTKCheck:
    """The result of :func:`check_lag_ntk` for this sweep (a private copy; memoised)."""
    if not isinstance(backend, str):
        backend = backend.name
    return copy.deepcopy(_sweep(config, model, seed, backend, dtype))


def entry_stat(check: CheckResult, exact: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """Statistic and threshold of an entrywise check (max |z|, Holm thresholds); ``exact``: the Monte Carlo mean
    is tested against the exact finite-width mean (else the two-point bias-corrected estimate against the limit)."""
    from linrnn.core.jsonclean import finite_or_none

    t = check.test
    what = ("Monte Carlo mean vs the exact finite-width mean" if exact else
            "two-point bias-corrected estimate vs the wide limit")
    stat = {"name": f"max |z| over the entries ({what})",
            "value": finite_or_none(float(t.max_abs_z)), "entries_tested": t.m, "entries_rejected_holm": t.rejected}
    thr = {"description": f"every |z| below Holm's thresholds, the first t_{{{t.dof:g}}} critical value "
                          f"at family-wise alpha = {t.alpha:.3g}",
           "value": t.threshold}
    return stat, thr


def rate_stat(check: CheckResult) -> tuple[dict[str, Any], dict[str, Any]]:
    """Statistic and threshold of the rate check (fitted slope, expected slope inside its interval)."""
    t = check.test
    ci = list(t.ci)
    stat = {"name": "fitted log-log slope of the relative error against n", "value": t.slope,
            "stderr": t.stderr, "ci": ci}
    tail = 100 * (1 - t.level)  # printed to the digits that keep the level below 100%
    decimals = max(0, math.ceil(-math.log10(tail))) if 0 < tail < 1 else 0
    thr = {"description": f"expected slope {t.expected:g} inside the {100 * t.level:.{decimals}f}% interval",
           "value": ci}
    return stat, thr


_DESCRIPTIONS = {
    "ntk:no_linear_term": "lag weights without the W-gradient term linear in j",
    "ntk:q_times_1.1": "lag weights with q replaced by 1.1 q",
    "nngp:q_times_1.1": "NNGP variance with q replaced by 1.1 q",
    "rate:minus_1": "the relative error falls like n^-1 (fluctuations of order 1/n)",
}


def controls(r: NTKCheck, prefix: str, check: str) -> list[dict[str, Any]]:
    """The negative controls of one claim: every control's ``check`` ("ntk_entries", "nngp_entries" or "rate").

    A control of the sweep whose name starts with ``prefix`` (ntk, nngp) is tested
    by that check; for the rate claim (prefix "rate") the controls are the wrong rate
    (``rate:minus_1``) and the rate fits against every wrong kernel (``rate:ntk:...``).
    Each carries verdict rejected / not_rejected / error, the predicted ``power`` at
    the size used and the replicas per width ``needed`` for power 0.999.
    """
    out = []
    for name, ctrl in r.control_results().items():
        kind = name.split(":")[0]
        if prefix == "rate":
            if kind not in ("rate", "ntk"):
                continue
        elif kind != prefix:
            continue
        for c in ctrl.checks:
            if c.name != check:
                continue
            stat, thr = rate_stat(c) if c.name == "rate" else entry_stat(c, r.exact)
            cid = name if kind == "rate" or prefix != "rate" else f"rate:{name}"
            statement = _DESCRIPTIONS.get(name, f"wrong theory {name}")
            if cid != name:
                statement = "the rate fit of the relative error against " + statement
            out.append({
                "id": cid, "statement": statement, "formula": ctrl.formula, "statistic": stat,
                "threshold": thr, "verdict": {"fail": "rejected", "pass": "not_rejected"}.get(c.outcome, "error"),
                "power": c.power, "needed": c.needed,
            })
    return out


def claim_fields(r: NTKCheck, check: CheckResult, ctrls: list[dict[str, Any]]) -> dict[str, Any]:
    """statistic_verdict, error, alpha and design of one claim of the sweep.

    ``alpha_per_look`` is the per-check alpha (``alpha / 3``), as it has been in the
    results of every run so far; the per-look level is ``design.alpha_per_check_per_look``.
    """
    d = r.design
    stat = "error" if r.error else check.outcome
    error = r.error or (f"the statistic of {check.name} is not finite" if stat == "error" else None)
    return {
        "statistic_verdict": stat,
        "error": error,
        "alpha": r.alpha_check,
        "design": {
            "method": d.method, "pilot": d.pilot, "replicas": d.replicas,
            "replicas_per_width": {str(n): d.replicas for n in r.widths},
            "power_target": d.power_target, "capped_by": d.capped_by, "bias_cap": d.bias_cap,
            "needed": {c["id"]: c.get("needed") for c in ctrls},
            "sizing": d.sizing, "allowance": d.allowance,
            "looks": d.looks, "alpha_per_look": r.alpha_check,
            "stages": d.stages, "decided_at_stage": d.decided_at_stage,
        },
    }


def per_lag_figure(r: NTKCheck, which: str, check: CheckResult, ylabel: str, what: str) -> dict[str, Any]:
    """Kind ``per_lag``: the diagonal entries (lag j, output 0, input 0) at the largest width against theory.

    ``which``: "ntk" (the lag NTK) or "nngp" (the NNGP second moment), :meth:`NTKCheck.kernel`.
    """
    import numpy as np

    L = r.shape[0]
    diag = [(k, 0, 0, k, 0, 0) for k in range(L)]
    arrays = r.kernel(which)
    th, est, se, raw = (np.asarray(a, dtype=np.float64)
                        for a in (arrays.theory, arrays.corrected, arrays.corrected_stderr, arrays.mean))
    top, comp, replicas = r.verdict_width, r.companion_width, r.top.replicas
    t = check.test.threshold
    e = np.array([est[d] for d in diag])
    s = np.array([se[d] for d in diag])
    if r.exact:
        limit = np.asarray(arrays.limit, dtype=np.float64)
        return {
            "kind": "per_lag", "title": f"{what}: Monte Carlo against the exact finite-width mean per lag",
            "caption": f"Diagonal entries (lag j, output 0, input 0) at width n = {top} over {replicas} draws. "
                       f"Circles: the Monte Carlo mean with simultaneous intervals of +-{t:.2f} standard errors "
                       f"(the Holm/Bonferroni threshold of the test); line: the exact finite-width expectation at "
                       f"n = {top} (linrnn.families.gaussian.finite_width), the tested theory (no bias allowance); open "
                       f"squares: its wide limit.",
            "lags": list(range(L)), "theory": [th[d] for d in diag], "estimate": e, "lower": e - t * s,
            "upper": e + t * s, "raw": [limit[d] for d in diag], "ylabel": ylabel,
            "theory_label": f"exact mean at n = {top}", "estimate_label": "Monte Carlo mean",
            "interval_label": f"+-{t:.2f} SE, simultaneous", "raw_label": "wide limit",
        }
    return {
        "kind": "per_lag", "title": f"{what}: Monte Carlo against theory per lag",
        "caption": f"Diagonal entries (lag j, output 0, input 0) at width n = {top} over {replicas} draws. "
                   f"Circles: bias-corrected estimate (two-point fit at n = {top} and n = {comp}), with "
                   f"simultaneous intervals of +-{t:.2f} standard errors (the Holm/Bonferroni threshold of the "
                   f"test); open squares: the raw mean at n = {top}; line: the derived limit.",
        "lags": list(range(L)), "theory": [th[d] for d in diag], "estimate": e, "lower": e - t * s,
        "upper": e + t * s, "raw": [raw[d] for d in diag], "ylabel": ylabel,
        "theory_label": "derived limit", "estimate_label": "bias-corrected Monte Carlo",
        "interval_label": f"+-{t:.2f} SE, simultaneous", "raw_label": f"raw mean at n = {top}",
    }


def exact_note(r: NTKCheck) -> list[str]:
    """The note of an exact-mean run: what was tested and why that tests the limit."""
    if not r.exact:
        return []
    return [f"The theory tested is the exact finite-width expectation at each width (linrnn.families.gaussian.finite_width, "
            f"the loop equations of the Gaussian transition matrix), whose n -> infinity limit is the derived one "
            f"(an exact identity, checked in the tests): no bias fit, no O(n^-2) remainder."]


def result(r: NTKCheck, config: NtkConfig, model: Any, **fields: Any) -> ClaimResult:
    """A claim of the sweep: its own fields, with the shared configuration and backend."""
    return ClaimResult(config=result_config(model, config), backend=r.backend, **fields)
