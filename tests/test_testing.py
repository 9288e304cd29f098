"""``linrnn.testing``: check_draw on a true draw, a pre-scaled draw and a draw of the wrong family; its Monte Carlo
test's level; Array-API input; assert_claim's refusals and seeds; the Hypothesis strategies of every family.

Measured (this file's draws, level 0.01): an LRU draw written in the diagonal family's raw parameters (the input
gain folded into b) is rejected at width 1024 in 20 of 20 seeds (18 of 20 at width 256); a Gaussian W checked as
an orthogonal one at width 64 and 32 lags in 15 of 20 (the limits coincide: one draw shows only its fluctuations).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings

import linrnn
from linrnn.core.errors import UsageError
from linrnn.testing import SUPPORTED, assert_claim, check_draw, claim_config, derived_seed, size_table
from linrnn.testing.strategies import field_strategies, models, specs

GAUSSIAN = linrnn.family("gaussian", sigma_w2=0.9)


def test_a_true_draw_passes_with_its_sources_stated() -> None:
    r = check_draw(GAUSSIAN.init(width=32, seed=3), GAUSSIAN, lags=6, replicas=199)
    assert r.passed and r.verdict == "pass" and 0 < r.p_value <= 1 and r.level == 0.01
    assert r.ntk_z.shape == (6, 1, 1, 6, 1, 1) and r.impulse_z.shape == (6, 1, 1)
    assert np.allclose(r.ntk_z, np.swapaxes(np.swapaxes(r.ntk_z, 0, 3), 1, 4).transpose(0, 1, 2, 3, 4, 5))
    assert "exact finite-width mean at n = 32" in r.sources["ntk_mean"]
    assert r.sources["ntk_sd"].startswith("Monte Carlo") and r.sources["impulse_sd"].startswith("exact")
    assert "is consistent with the gaussian(" in r.paragraph() and "level 0.01" in r.paragraph()
    # the exact sd of L_j is the square root of the exact second moment E[L_j^2](n)
    second = np.diagonal(GAUSSIAN.finite_width(6, 32)["nngp"])
    assert np.allclose(r.impulse_sd[:, 0, 0], np.sqrt(second))


def test_array_api_input_gives_the_numpy_verdict() -> None:
    xps = pytest.importorskip("array_api_strict")
    d = GAUSSIAN.init(width=16, seed=4)
    ref = check_draw((d.W, d.F, d.C), GAUSSIAN, lags=4, replicas=99)
    strict = check_draw({"W": xps.asarray(d.W), "F": xps.asarray(d.F), "C": xps.asarray(d.C)}, GAUSSIAN, lags=4,
                        replicas=99)
    assert strict.p_value == ref.p_value and np.allclose(strict.ntk_z, ref.ntk_z, rtol=1e-12, atol=1e-12)


def test_a_prescaled_draw_is_refused_in_one_sentence() -> None:
    d = GAUSSIAN.init(width=64, seed=5)
    n = 64
    effective = (d.W * math.sqrt(0.9 / n), d.F, d.C / math.sqrt(n))  # the effective matrices (n_x = 1, sigma = 1)
    with pytest.raises(UsageError, match=r"^W has entries of mean square .*a pre-scaled draw\? they match the "
                                         r"'standard' parameterization's raw parameters.*param='standard'$"):
        check_draw(effective, GAUSSIAN)
    with pytest.raises(UsageError, match="pre-scaled draw"):  # W alone scaled: no parameterization matches
        check_draw((d.W / math.sqrt(n), d.F, d.C), GAUSSIAN)
    # the same arrays are the raw draw of the standard parameterization, and pass there
    assert check_draw(effective, linrnn.family("gaussian", sigma_w2=0.9, param="standard"), lags=4,
                      replicas=99).passed


def _lru_as_diagonal(width: int, seed: int) -> dict[str, np.ndarray]:
    p = linrnn.family("lru").init(width=width, seed=seed)
    lam = np.exp(-np.exp(p.nu_log) + 1j * np.exp(p.theta_log))
    return {"c": p.c, "b": p.b * np.exp(p.gamma_log)[:, None], "lam": lam}


def test_a_draw_of_the_wrong_family_is_rejected() -> None:
    """The LRU's law (inputs scaled by gamma = sqrt(1 - |lambda|^2)) written as a diagonal-family draw."""
    r = check_draw(_lru_as_diagonal(1024, 11), linrnn.family("diagonal"), lags=6, replicas=99)
    assert r.verdict == "fail" and r.p_value <= 0.01 and r.statistic > 5
    assert "is NOT a draw of the diagonal(" in r.paragraph()
    # (the same network checked against its own family passes: examples/test_my_rnn.py, tests/test_testing_plugin.py)


def test_the_monte_carlo_test_keeps_its_level() -> None:
    """True draws at level 0.2 over 40 seeds: the rejections are Binomial(40, <= 0.2); P(>= 18) < 1e-4 and the test is
    exact, so P(0) = 0.8^40 = 1.3e-4 bounds the other side."""
    model = linrnn.family("diagonal", r_max=0.8)
    rejected = sum(not check_draw(model.init(width=16, seed=100 + s), model, lags=4, level=0.2, replicas=99,
                                  seed=s).passed for s in range(40))
    assert 1 <= rejected <= 17, rejected


def test_check_draw_refuses_bad_input() -> None:
    d = GAUSSIAN.init(width=8, seed=0, batch=2)
    with pytest.raises(UsageError, match="check_draw takes one draw"):
        check_draw((d.W, d.F, d.C), GAUSSIAN)
    with pytest.raises(UsageError, match="parameters are c, b, lam; got W"):
        check_draw({"W": d.W[0]}, linrnn.family("diagonal"))
    one = GAUSSIAN.init(width=8, seed=0)
    with pytest.raises(UsageError, match="F must have shape"):
        check_draw({"W": one.W, "F": one.F[:4], "C": one.C}, GAUSSIAN)
    with pytest.raises(UsageError, match="level must be"):
        check_draw(one, GAUSSIAN, level=1.5)
    with pytest.raises(UsageError, match="replicas must be an integer of at least 99"):
        check_draw(one, GAUSSIAN, replicas=50)


def test_assert_claim_refuses_in_one_sentence_before_any_work() -> None:
    with pytest.raises(UsageError, match="^assert_claim runs the claims nngp, ntk_limit, finite_width, "
                                         "orthogonal_nngp, diagonal_kernel, lru_kernel .*, not 'co2'$"):
        assert_claim("co2", GAUSSIAN)
    with pytest.raises(UsageError, match="claim diagonal_kernel is a claim of the diagonal family"):
        assert_claim("diagonal_kernel", GAUSSIAN)
    with pytest.raises(UsageError, match="runs dense recurrences"):
        assert_claim("nngp", linrnn.family("lru"))
    with pytest.raises(UsageError, match="unknown size 'huge'"):
        assert_claim("nngp", GAUSSIAN, size="huge")
    with pytest.raises(UsageError, match="alpha must be"):
        assert_claim("nngp", GAUSSIAN, alpha=0)


def test_tiny_configurations_state_the_alpha_asked() -> None:
    """Every supported claim has a tiny table; a section shared by k claims gets k alpha (the sweep splits it)."""
    from linrnn.families import claims

    for name in SUPPORTED:
        table = size_table("tiny", claims()[name].section)
        assert table and max(table["widths"]) <= 32 and "alpha" not in table, name
    for name, model, shared in (("nngp", GAUSSIAN, 3), ("diagonal_kernel", linrnn.family("diagonal"), 1)):
        claim, config, spec = claim_config(name, model, alpha=2e-4)
        assert config.alpha == pytest.approx(shared * 2e-4) and spec == model.spec, name
    spec = GAUSSIAN.spec
    assert derived_seed("ntk", spec, "tiny") == derived_seed("ntk", spec, "tiny") != derived_seed("ntk", spec, "quick")


@settings(max_examples=30)
@given(specs())
def test_strategies_build_valid_specifications_of_every_family(spec: object) -> None:
    from linrnn.families import spec_class

    cls = spec_class(spec.family)  # type: ignore[attr-defined]
    assert type(spec) is cls
    assert cls.from_mapping(spec.as_dict()) == spec  # type: ignore[attr-defined]


@settings(max_examples=10)
@given(models("diagonal", r_max=0.5))
def test_strategies_take_fixed_fields(model: object) -> None:
    assert model.spec.r_max == 0.5 and model.spec.r_min <= 0.5  # type: ignore[attr-defined]


def test_every_family_field_has_a_strategy() -> None:
    from linrnn.families import spec_classes

    for cls in spec_classes().values():
        assert set(field_strategies(cls)) == set(cls.fields())
    with pytest.raises(UsageError, match="unknown field nope of the gaussian family"):
        specs("gaussian", nope=1)


def test_every_field_rule_has_a_strategy() -> None:
    """A rule added to the core (e.g. ``real``, the shifted family's shift) needs its strategy, or specs() breaks."""
    from linrnn.core.spec import RULES
    from linrnn.testing.strategies import RULE_STRATEGIES

    assert set(RULES) == set(RULE_STRATEGIES)
