"""Monte Carlo against the exact finite-width mean (linrnn.families.gaussian.finite_width).

Fixed seeds; every verdict is a test at level alpha = 1e-3 (the suite-wide budget of
verify/stats.py: at most ten such verdicts, 1e-2 in all).
"""

from __future__ import annotations

import pytest
import sympy as sp

import linrnn.derive
from linrnn.core.errors import UsageError
from linrnn.core.spec import ModelSpec
from linrnn.families.gaussian import GaussianSpec
from linrnn.families.gaussian import finite_width as fw
from linrnn.derive import symbols as S
from linrnn.families.gaussian.wick import wide_limit
from linrnn.verify.check_ntk import FINITE_WIDTH_CONTROLS, check_lag_ntk
from linrnn.families import claims as all_claims
from linrnn.families.gaussian import claim

SPEC = GaussianSpec(sigma_w2=0.9)


def test_small_width_claim_passes_and_rejects_the_wide_limit_at_8_and_16() -> None:
    cfg = claim.Config(widths=(8, 16), lags=4, pilot=64, min_replicas=512, max_replicas=32768, alpha=1e-3)
    res = claim.run(cfg, SPEC, seed=4)
    assert res.statistic_verdict == "pass", res.statistic
    assert res.controls[0]["verdict"] == "rejected", res.controls[0]
    assert res.verdict == "pass"
    assert res.design["allowance"].startswith("no bias allowance")
    assert res.figures["small_widths"]["kind"] == "lines"


def test_small_width_claim_rejects_a_wrong_exact_mean(monkeypatch: pytest.MonkeyPatch) -> None:
    # the statistic can fail: the exact means of q = 1.1 sigma_w2 are not the truth at n = 8
    from linrnn.families.gaussian import finite_width_arrays

    real = finite_width_arrays.exact_matrices

    def wrong(spec: ModelSpec, lags: int, width: int):  # type: ignore[no-untyped-def]
        return real(spec.replace(sigma_w2=1.1 * spec.sigma_w2), lags, width)

    monkeypatch.setattr(finite_width_arrays, "exact_matrices", wrong)
    cfg = claim.Config(widths=(8, 16), lags=4, pilot=64, min_replicas=4096, max_replicas=32768, alpha=1e-3)
    assert claim.run(cfg, SPEC, seed=5).statistic_verdict == "fail"


def test_claim_configuration_is_checked() -> None:
    for bad in ({"lags": 0}, {"lags": 17}, {"pilot": 4}, {"min_replicas": 10, "max_replicas": 5}, {"max_skew": 2.0},
                {"widths": [4]}):
        with pytest.raises(UsageError):
            all_claims()["finite_width"].config(bad)


def test_verify_ntk_uses_the_exact_mean_where_it_reaches() -> None:
    r = check_lag_ntk(SPEC, [16, 32], lags=6, replicas=256, seed=2, backend="numpy", progress=False, pilot=32,
                      max_replicas=4096)
    j = r.to_json()
    assert j["mean_theory"] == "exact" and j["companion_width"] is None
    assert j["design"]["allowance"].startswith("no bias allowance")
    assert j["verdict"] == "pass", (j["checks"], j["controls"])
    # the theory tested is the finite-width mean, not the limit: they differ at n = 32
    import numpy as np

    assert not np.allclose(j["theory"], j["limit_theory"], rtol=1e-3)


def test_exact_mean_refused_beyond_its_reach() -> None:
    with pytest.raises(UsageError, match="at most 16 lags"):
        check_lag_ntk(SPEC, [16, 32], lags=17, replicas=4, progress=False, mean="exact")
    with pytest.raises(UsageError):
        check_lag_ntk(SPEC, [16, 32], lags=3, replicas=4, progress=False, mean="median")


@pytest.mark.parametrize("param", ("ntk", "standard"))
def test_finite_width_controls_tend_to_the_limit_controls(param: str) -> None:
    # each control at finite width is the limit control of that name once n -> infinity
    der = linrnn.derive.derive_lag_weights(param)
    assert set(der.controls) | set(der.nngp_controls) <= set(FINITE_WIDTH_CONTROLS)
    changes = {"no_linear_term": {S.eta_w: 0}, "q_times_1.1": {S.q: sp.Rational(11, 10) * S.q}}
    for name, change in changes.items():
        for jj in (2, 5):
            got = wide_limit(fw.exact_lag_ntk(param, jj, jj).subs(change, simultaneous=True))
            assert sp.simplify(got - der.controls[name].subs(S.j, jj)) == 0, (param, name, jj)
    got = wide_limit(fw.exact_nngp_cov(4, 4).subs(changes["q_times_1.1"]))
    assert sp.simplify(got - der.nngp_controls["q_times_1.1"].subs(S.j, 4)) == 0
    spec = GaussianSpec(param=param, sigma_w2=0.8, lr_w=2.0)
    assert FINITE_WIDTH_CONTROLS["no_linear_term"](spec).lr_w == 0.0
    assert FINITE_WIDTH_CONTROLS["q_times_1.1"](spec).sigma_w2 == pytest.approx(0.88)


def test_verify_ntk_mean_flag(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from linrnn.cli import main

    code = main(["verify", "ntk", "--width", "16", "--lags", "3", "--replicas", "8", "--pilot", "0",
                 "--mean", "richardson", "--json", "--no-progress"])
    out = json.loads(capsys.readouterr().out)
    assert out["mean_theory"] == "richardson" and out["companion_width"] == 8 and code in (0, 1, 3)
    code = main(["verify", "ntk", "--width", "16", "--lags", "17", "--replicas", "8", "--mean", "exact",
                 "--no-progress"])
    assert code == 2 and "at most 16 lags" in capsys.readouterr().err


def test_verify_ntk_table_in_exact_mode_shows_the_wide_limit(capsys: pytest.CaptureFixture[str]) -> None:
    """Exact mode tests the raw mean: its table shows exact mean and wide limit, no bias-corrected columns."""
    from linrnn.cli import main

    main(["verify", "ntk", "--width", "16", "--lags", "3", "--replicas", "8", "--pilot", "0", "--no-progress"])
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.split()[:2] == ["lag", "exact"])
    assert header.split()[:5] == ["lag", "exact", "mean", "wide", "limit"] and "corrected" not in out
    from linrnn.families.gaussian import GaussianSpec
    from linrnn.derive import weights

    row = next(line for line in out.splitlines() if line.split()[:1] == ["2"])  # the lag NTK's lag 2
    assert float(row.split()[2]) == pytest.approx(float(weights(GaussianSpec(), 3)[2]), rel=1e-4)
