"""The training claims (linrnn.verify.claims: dynamics_equivalence, min_norm, short_memory) at small, fixed-seed sizes.

Each claim runs once at a size chosen so that the whole file stays within a few tens
of seconds; the verdicts are deterministic for the fixed seeds. The true theory must
pass (its false-failure probability at these seeds is bounded by the claim's alpha =
1e-3, part of the suite-wide budget of verify/stats.py) and every negative control
must be rejected. The closed-form expectation behind the short-memory theory curve is
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
from linrnn.core.spec import ModelSpec
from linrnn.verify.claims_train import choose_lr, expected_test_loss, make_data

#: The model of the training claims' tests (their former defaults: q = 0.8, and 0.7 for min-norm).
MODEL = ModelSpec(sigma_w2=0.8)


def claim_dynamics_equivalence(config: dict, backend="numpy", model=MODEL) -> dict:
    c = REGISTRY["dynamics_equivalence"]
    return c.run(c.config(config), model, seed=0, backend=backend).claim_dict()


def claim_min_norm(config: dict, backend="numpy", model=ModelSpec(sigma_w2=0.7)) -> dict:
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


@pytest.fixture(scope="module")
def dynamics() -> dict:
    return claim_dynamics_equivalence(
        {"widths": [64, 128, 256, 512], "seeds": 12, "seq_len": 12, "n_seq": 16, "steps": 100}, "numpy"
    )


def test_dynamics_equivalence_passes_and_rejects_controls(dynamics: dict) -> None:
    _check_contract(dynamics)
    lo, hi = dynamics["threshold"]["value"]["ci"]
    assert lo <= -0.5 <= hi
    assert {c["id"] for c in dynamics["controls"]} == {"lag_weights:no_linear_term", "lag_weights:q_times_1.1", "rate:-1"}
    assert all(c["verdict"] == "rejected" for c in dynamics["controls"]), dynamics["controls"]
    assert dynamics["verdict"] == "pass"
    d = dynamics["figures"]["distance_vs_width"]["distance_mean"]
    assert d[-1] < d[0]


def test_dynamics_equivalence_is_deterministic() -> None:
    cfg = {"widths": [16, 32], "seeds": 2, "seq_len": 6, "n_seq": 4, "steps": 5}
    a = claim_dynamics_equivalence(cfg, "numpy")
    b = claim_dynamics_equivalence(cfg, get_backend("numpy", seed=123))
    assert a["figures"] == b["figures"]


def test_min_norm_passes_and_rejects_controls() -> None:
    res = claim_min_norm({"widths": [64, 128, 256, 512], "seeds": 16}, "numpy")
    _check_contract(res)
    assert {c["id"] for c in res["controls"]} == {
        "interpolant:plain_min_norm", "interpolant:no_linear_term", "interpolant:q_times_1.1"}
    assert all(c["verdict"] == "rejected" for c in res["controls"]), res["controls"]
    assert res["verdict"] == "pass"


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


def test_short_memory_passes_and_rejects_control() -> None:
    res = claim_short_memory(
        {"width": 512, "seeds": 6, "seq_len": 16, "n_test": 128, "sigma_w2s": [0.5, 0.9, 1.2]}, "numpy"
    )
    _check_contract(res)
    fig = res["figures"]["test_error_vs_q"]
    assert fig["sigma_w2"] == [0.5, 0.9, 1.2]
    assert len(fig["theory"]) == len(fig["experiment_mean"]) == len(fig["experiment_se"]) == 3
    assert fig["best_q_theory"] == 0.9  # the trade-off: interior optimum for a long-memory teacher
    assert [c["verdict"] for c in res["controls"]] == ["rejected"]
    assert res["verdict"] == "pass"


@pytest.mark.parametrize(
    ("fn", "cfg"),
    [
        (claim_dynamics_equivalence, {"widths": [64]}),
        (claim_dynamics_equivalence, {"bogus": 1}),
        (claim_dynamics_equivalence, {"steps": 0}),
        (claim_dynamics_equivalence, {"controls": ["nope"], "widths": [4, 8], "seeds": 2, "seq_len": 3, "steps": 1}),
        (claim_min_norm, {"n_seq": 20}),
        (claim_short_memory, {"sigma_w2s": [0.5]}),
        (claim_short_memory, {"teacher": "sine", "sigma_w2s": [0.5, 0.6], "width": 4, "seeds": 2}),
    ],
)
def test_bad_configs_are_usage_errors(fn, cfg) -> None:
    with pytest.raises(UsageError):
        fn(cfg, "numpy")
