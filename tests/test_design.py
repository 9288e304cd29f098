"""The two-stage design on a cheap synthetic claim: false-failure rate and power by simulation.

A synthetic claim: each replica is m Gaussian entries with mean theta (the true
theory) and sd s; the claim's test is the entrywise Holm test of the mean against
theta; two controls are wrong theories at chosen per-replica effect sizes. Each
simulated run draws a pilot, sizes the main stage with :mod:`linrnn.verify.design`
and decides on fresh replicas. Over thousands of runs the false-failure rate must stay
within alpha's binomial allowance and every control must be rejected at least as
often as the power target allows.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from linrnn.core.outcome import claim_outcome
from linrnn.verify import design as dsg
from linrnn.verify.stats import entry_test, t_isf

M = 12
SD = np.linspace(0.5, 2.0, M)
THETA = np.linspace(-1.0, 1.0, M)
ALPHA = 0.02


def _controls() -> dict[str, np.ndarray]:
    small = THETA.copy()
    small[3] += 0.6 * SD[3]  # one entry off by 0.6 sd per replica
    spread = THETA + 0.35 * SD  # every entry off by 0.35 sd
    return {"one_entry": small, "all_entries": spread}


def _run(rng: np.random.Generator, pilot: int, design: dsg.Design, truth: np.ndarray) -> tuple[str, dict[str, str], int]:
    controls = _controls()
    crit = lambda r: t_isf(ALPHA / (2 * M), max(r - 1.0, 1.0))  # noqa: E731
    p = truth + SD * rng.standard_normal((pilot, M))
    sd_hat = p.std(axis=0, ddof=1)
    need = {}
    for name, c in controls.items():
        d = np.abs(c - THETA) / sd_hat
        k = int(np.argmax(d))
        need[name] = dsg.replicas_for_crit(abs(c[k] - THETA[k]), dsg.sd_upper(sd_hat[k], pilot - 1), crit)
    r = dsg.size(need, design).replicas
    x = truth + SD * rng.standard_normal((r, M))  # fresh replicas
    mean, se = x.mean(axis=0), x.std(axis=0, ddof=1) / math.sqrt(r)
    own = entry_test("synthetic", mean, se, THETA, alpha=ALPHA, dof=r - 1, symmetric=False).outcome
    ctrl = {k: ("rejected" if entry_test(k, mean, se, c, alpha=ALPHA, dof=r - 1, symmetric=False).outcome == "fail"
                else "not_rejected") for k, c in controls.items()}
    return own, ctrl, r


def test_false_failure_rate_and_power_by_simulation() -> None:
    rng = np.random.default_rng(20260)
    runs = 2000
    design = dsg.Design(pilot=16, min_replicas=8, max_replicas=4096)
    fails = 0
    missed = {"one_entry": 0, "all_entries": 0}
    sizes = []
    for _ in range(runs):
        own, ctrl, r = _run(rng, 16, design, THETA)
        fails += own == "fail"
        for k, v in ctrl.items():
            missed[k] += v == "not_rejected"
        sizes.append(r)
    # false failures: at most alpha, within the binomial allowance (one-sided 1e-4)
    assert fails <= stats.binom.ppf(1 - 1e-4, runs, ALPHA), fails
    # each control rejected with power >= 0.999, within its binomial allowance (one-sided 1e-4)
    for k, v in missed.items():
        assert v <= stats.binom.ppf(1 - 1e-4, runs, 1 - dsg.POWER), (k, v)
    assert 20 < np.median(sizes) < 2000


def test_wrong_theory_fails_and_underpowered_is_inconclusive() -> None:
    rng = np.random.default_rng(5)
    # wrong: the data's mean is a control theory -> the claim's own test fails
    wrong = _controls()["all_entries"] + 0.0
    x = wrong + SD * rng.standard_normal((400, M))
    mean, se = x.mean(axis=0), x.std(axis=0, ddof=1) / 20.0
    t = entry_test("w", mean, se, THETA, alpha=ALPHA, dof=399, symmetric=False)
    assert t.outcome == "fail" and claim_outcome(t.outcome, ["rejected"]) == "fail"
    # right but underpowered: 4 replicas cannot reject the small control -> inconclusive
    x = THETA + SD * rng.standard_normal((4, M))
    mean, se = x.mean(axis=0), x.std(axis=0, ddof=1) / 2.0
    own = entry_test("r", mean, se, THETA, alpha=ALPHA, dof=3, symmetric=False).outcome
    ctl = entry_test("c", mean, se, _controls()["one_entry"], alpha=ALPHA, dof=3, symmetric=False).outcome
    assert own == "pass" and ctl == "pass"
    assert claim_outcome(own, ["not_rejected"]) == "inconclusive"
    # a NaN is an error, never a pass, and is counted, not dropped
    mean[2] = np.nan
    e = entry_test("n", mean, se, THETA, alpha=ALPHA, dof=3, symmetric=False)
    assert e.outcome == "error" and e.nonfinite == 1 and e.total == M
    assert claim_outcome(e.outcome, ["rejected"]) == "error"


def test_replicas_for_crit_is_the_smallest_self_consistent_size() -> None:
    crit = lambda r: t_isf(1e-7, max(r - 1.0, 1.0))  # noqa: E731
    r = dsg.replicas_for_crit(0.58, 0.62, crit)
    assert r >= dsg.replicas_for(0.58, 0.62, crit(r)) and r - 1 < dsg.replicas_for(0.58, 0.62, crit(r - 1))
    assert dsg.replicas_for_crit(11.0, 1.0, crit) <= 16  # a large effect needs few, not the t_1 quantile's size
    assert math.isinf(dsg.replicas_for_crit(0.0, 1.0, crit))


def test_size_caps_and_bias_cap() -> None:
    d = dsg.Design(pilot=8, min_replicas=16, max_replicas=100, budget_seconds=10.0)
    assert dsg.size({"a": 50.0}, d).replicas == 50
    p = dsg.size({"a": 500.0}, d)
    assert p.replicas == 100 and p.capped_by == "max_replicas"
    p = dsg.size({"a": 50.0}, d, seconds_per_replica=0.5)
    assert p.replicas == 20 and p.capped_by == "budget_seconds"
    p = dsg.size({"a": 50.0}, d, bias_cap=30.0)
    assert p.replicas == 30 and p.capped_by == "bias"
    assert math.isinf(dsg.bias_cap(0.1, 0.1, 1.0))  # a remainder within its noise: no cap
    assert dsg.bias_cap(1.0, 0.1, 1.0) == (0.25 / 0.8) ** 2 or dsg.bias_cap(1.0, 0.1, 1.0) == 2.0
