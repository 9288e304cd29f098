"""The training claims (linrnn.verify.claims: dynamics_equivalence, min_norm, short_memory) at small, fixed-seed sizes.

Each claim runs its two-stage design (small pilot, capped main stage) once at a size
chosen so that the whole file stays within a few tens of seconds; the verdicts are
deterministic for the fixed seeds. The true theory must not be refuted (its
false-failure probability is the claim's alpha = 1e-3), the strongest negative
controls must be rejected, a wrong theory put in place of the derivation (every lag
weight doubled) must be refuted, and the outcome logic (pass / inconclusive / fail /
error, predicted power, the size that would decide) must hold. The closed-form expectation behind the short-memory theory curve is
checked against direct Monte Carlo over the NNGP initialisation.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from linrnn.core.errors import UsageError
from linrnn.verify.backend import get_backend
from linrnn.verify.claims import REGISTRY
from linrnn.families.gaussian import GaussianSpec
from linrnn.verify.claims.training import choose_lr, expected_test_loss, make_data

#: The model of the training claims' tests (their former defaults: q = 0.8, and 0.7 for min-norm).
MODEL = GaussianSpec(sigma_w2=0.8)


def claim_dynamics_equivalence(config: dict, backend="numpy", model=MODEL) -> dict:
    c = REGISTRY["dynamics_equivalence"]
    return c.run(c.config(config), model, seed=0, backend=backend).claim_dict()


def claim_min_norm(config: dict, backend="numpy", model=GaussianSpec(sigma_w2=0.7)) -> dict:
    c = REGISTRY["min_norm"]
    return c.run(c.config(config), model, seed=0, backend=backend).claim_dict()


def claim_short_memory(config: dict, backend="numpy", model=MODEL) -> dict:
    c = REGISTRY["short_memory"]
    return c.run(c.config(config), model, seed=0, backend=backend).claim_dict()

CONTRACT_KEYS = {"id", "title", "statement", "formula", "statistic", "threshold", "verdict", "figures", "controls",
                 "config", "notes"}


def _check_contract(result: dict) -> None:
    assert CONTRACT_KEYS <= set(result)
    json.dumps(result, allow_nan=False)  # JSON-ready: no NumPy objects, no NaN
    assert result["controls"], "every claim carries negative controls"
    for c in result["controls"]:
        assert {"id", "statement", "statistic", "threshold", "verdict"} <= set(c)


SMALL_DESIGN = {"pilot": 6, "min_replicas": 6, "max_replicas": 32}


def _check_outcomes(result: dict) -> None:
    """The three outcomes: statistic_verdict, controls rejected/not_rejected with power, the design record."""
    assert result["statistic_verdict"] in ("pass", "fail", "error")
    assert result["alpha"] is not None and 0 < result["alpha"] < 1
    assert {"method", "pilot", "replicas", "power_target", "needed"} <= set(result["design"])
    for c in result["controls"]:
        assert c["verdict"] in ("rejected", "not_rejected", "error")
        assert "power" in c
        if c["verdict"] == "not_rejected":
            assert "decide_with" in c
    if result["statistic_verdict"] == "pass":
        expected = "pass" if all(c["verdict"] == "rejected" for c in result["controls"]) else "inconclusive"
        assert result["verdict"] == expected


@pytest.fixture(scope="module")
def dynamics() -> dict:
    return claim_dynamics_equivalence(
        {"widths": [32, 64, 128], "seq_len": 8, "n_seq": 12, "steps": 40, **SMALL_DESIGN}, "numpy"
    )


def test_dynamics_equivalence_passes_and_rejects_controls(dynamics: dict) -> None:
    _check_contract(dynamics)
    _check_outcomes(dynamics)
    assert dynamics["statistic_verdict"] == "pass"
    lo, hi = dynamics["threshold"]["value"]["ci"]
    assert lo <= -0.5 <= hi
    assert {c["id"] for c in dynamics["controls"]} == {"lag_weights:no_linear_term", "lag_weights:q_times_1.1", "rate:minus_1"}
    verdicts = {c["id"]: c["verdict"] for c in dynamics["controls"]}
    assert verdicts["lag_weights:no_linear_term"] == "rejected", verdicts  # the others may need more than 32 here
    d = dynamics["figures"]["distance_vs_width"]["distance_mean"]
    assert d[-1] < d[0]
    assert dynamics["design"]["pilot"] == 6 and 6 <= dynamics["design"]["replicas"] <= 48


def _doubled_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong theory in place of the derivation: every lag weight doubled."""
    import linrnn.derive as derive

    true = derive.weights
    monkeypatch.setattr(derive, "weights", lambda spec, lags: 2.0 * np.asarray(true(spec, lags), dtype=np.float64))


def test_dynamics_equivalence_rejects_a_wrong_theory(monkeypatch: pytest.MonkeyPatch) -> None:
    _doubled_weights(monkeypatch)
    res = claim_dynamics_equivalence({"widths": [32, 64, 128], "seq_len": 8, "n_seq": 12, "steps": 40,
                                      "pilot": 4, "min_replicas": 16, "max_replicas": 16}, "numpy")
    assert res["statistic_verdict"] == "fail" and res["verdict"] == "fail"


def test_dynamics_equivalence_is_deterministic() -> None:
    cfg = {"widths": [16, 32], "seq_len": 6, "n_seq": 4, "steps": 5, "pilot": 2, "min_replicas": 2,
           "max_replicas": 3}
    a = claim_dynamics_equivalence(cfg, "numpy")
    b = claim_dynamics_equivalence(cfg, get_backend("numpy", seed=123))
    assert a["figures"] == b["figures"]


def test_min_norm_passes_and_rejects_controls() -> None:
    res = claim_min_norm({"widths": [64, 256], "steps": 40, **SMALL_DESIGN}, "numpy")
    _check_contract(res)
    _check_outcomes(res)
    assert res["statistic_verdict"] == "pass"
    assert {c["id"] for c in res["controls"]} == {
        "interpolant:plain_min_norm", "interpolant:no_linear_term", "interpolant:q_times_1.1"}
    verdicts = {c["id"]: c["verdict"] for c in res["controls"]}
    assert verdicts["interpolant:no_linear_term"] == "rejected", verdicts


def test_expected_test_loss_matches_monte_carlo() -> None:
    """E over L(0) ~ N(0, diag(nngp)) of the SCNN's test loss: closed form vs 400 direct draws."""
    from linrnn.derive import nngp_variance, weights
    from linrnn.verify.scnn import scnn_trajectory
    from linrnn.verify.train import impulse_loss_and_grad, lagged_correlations

    cfg = REGISTRY["short_memory"].config({"seq_len": 10, "n_seq": 6, "n_test": 32})
    be = get_backend("numpy")
    x, y, _ = make_data(cfg, be, 0)
    xt, yt, _ = make_data(cfg, be, 0, cfg.n_test, stream=1)
    corr = lagged_correlations(x, y, None, "all", be)
    ctest = lagged_correlations(xt, yt, None, "all", be)
    spec = MODEL.replace(sigma_w2=0.9)
    lam, var = weights(spec, 10), nngp_variance(spec, 10)
    lr = choose_lr(cfg, corr, spec)
    exact = expected_test_loss(corr, ctest, lam, var, lr, 7)
    rng = np.random.default_rng(5)
    vals = []
    for _ in range(400):
        L0 = (rng.standard_normal(10) * np.sqrt(var)).reshape(10, 1, 1)
        vals.append(impulse_loss_and_grad(scnn_trajectory(L0, corr, lam, lr=lr, steps=7)[-1], ctest)[0])
    z = (np.mean(vals) - exact) / (np.std(vals, ddof=1) / math.sqrt(len(vals)))
    assert abs(z) < 4.4  # two-sided 1e-5: a negligible share of the suite's false-failure budget


SHORT = {"width": 256, "seq_len": 16, "n_test": 128, "sigma_w2s": [0.5, 0.9, 1.2],
         "pilot": 4, "min_replicas": 8, "max_replicas": 16}


def test_short_memory_passes_and_rejects_control() -> None:
    res = claim_short_memory(SHORT, "numpy")
    _check_contract(res)
    _check_outcomes(res)
    fig = res["figures"]["test_error_vs_q"]
    assert fig["sigma_w2"] == [0.5, 0.9, 1.2]
    assert len(fig["theory"]) == len(fig["experiment_mean"]) == len(fig["bias_corrected_se"]) == 3
    assert [c["verdict"] for c in res["controls"]] == ["rejected"]
    assert res["verdict"] == "pass"


def test_short_memory_rejects_a_wrong_theory(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong closed form of the theory curve (every prediction 1.5 times too large) is refuted."""
    import linrnn.verify.claims.training as ct

    true = ct.expected_test_loss
    monkeypatch.setattr(ct, "expected_test_loss", lambda *a, **k: 1.5 * true(*a, **k))
    res = claim_short_memory(SHORT, "numpy")
    assert res["statistic_verdict"] == "fail" and res["verdict"] == "fail"


def test_design_sizes_for_power_and_caps() -> None:
    """run_design on a synthetic claim: a control of effect 1 per replica is sized for power 0.999 and rejected;
    a cap makes the size max_replicas and says so; the main stage's draws are fresh (never the pilot's)."""
    from linrnn.verify.claims.training import TTest, control_entry, run_design

    seen: list[int] = []

    def replica(i: int) -> dict:
        seen.append(i)
        return {"x": float(np.random.default_rng(i).normal(1.0, 1.0))}

    cfg = REGISTRY["dynamics_equivalence"].config({"pilot": 16, "min_replicas": 4, "max_replicas": 400})
    staged = run_design(replica, {"c": TTest("x", 0.0, "greater", 1e-3)}, cfg)
    main, design, test = staged.values, staged.record, staged.controls["c"]
    assert test.level == 1e-3 / design["looks"] and design["alpha_per_look"] == cfg.alpha / design["looks"]
    R = design["replicas"]
    assert R == design["needed"]["c"] and 10 < R < 200 and main["x"].size == R
    assert not set(seen[:16]) & set(seen[16:])
    assert test.power(1.0, test.needed(1.0, 0.999)) >= 0.999 > test.power(1.0, test.needed(1.0, 0.999) - 1)
    entry = control_entry("c", "x has mean 0", test, main["x"], design, "t", "not finite")
    assert entry["verdict"] == "rejected" and entry["power"] >= 0.999
    capped = REGISTRY["dynamics_equivalence"].config({"pilot": 4, "min_replicas": 2, "max_replicas": 3})
    d2 = run_design(replica, {"c": TTest("x", 0.0, "greater", 1e-6)}, capped).record
    assert d2["replicas"] == 3 and d2["capped_by"] == "max_replicas"
    bad = control_entry("c", "x", test, np.array([1.0, math.nan, 2.0]), design, "t", "the value is not finite")
    assert bad["verdict"] == "error" and bad["error"] == "the value is not finite"
    none = control_entry("c", "x", test, np.array([-1.0, -2.0, -1.5]), design, "t", "c")
    assert none["verdict"] == "not_rejected" and none["decide_with"] is None


@pytest.mark.parametrize(
    ("fn", "cfg"),
    [
        (claim_dynamics_equivalence, {"widths": [64]}),
        (claim_dynamics_equivalence, {"bogus": 1}),
        (claim_dynamics_equivalence, {"steps": 0}),
        (claim_dynamics_equivalence, {"controls": ["nope"], "widths": [4, 8], "seq_len": 3, "steps": 1}),
        (claim_min_norm, {"n_seq": 20}),
        (claim_min_norm, {"pilot": 1}),
        (claim_dynamics_equivalence, {"min_replicas": 40, "max_replicas": 20}),
        (claim_dynamics_equivalence, {"budget_seconds": -1.0}),
        (claim_short_memory, {"sigma_w2s": [0.5]}),
        (claim_short_memory, {"teacher": "sine", "sigma_w2s": [0.5, 0.6], "width": 4}),
    ],
)
def test_bad_configs_are_usage_errors(fn, cfg) -> None:
    with pytest.raises(UsageError):
        fn(cfg, "numpy")
