"""Verdicts that were not earned (issue 17): one test per class.

* a claim whose statistic passes but which has no valid negative control is never a pass
  (the one rule of :func:`linrnn.core.outcome.claim_outcome`);
* a configuration under which every negative control of a claim equals the derived theory
  is refused as bad input before any work, for every claim and command;
* a results file is consistent or refused: ``report render`` recomputes every claim's
  outcome from its statistic and its controls, and a missing field is not consistent;
* ``linrnn calibrate`` says FAIL only for a claim that failed or erred: a control's power
  short of the target, or too few seeds to support the rate claims, is inconclusive (exit 3).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from linrnn.cli import main
from linrnn.core.errors import UsageError
from linrnn.core.outcome import claim_outcome
from linrnn.families.gaussian import GaussianSpec

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "report_results.json"


# ------------------------------------------------------------------ the rule


def test_a_claim_without_a_valid_control_is_never_a_pass() -> None:
    from linrnn.verify.claims.base import ClaimResult

    assert claim_outcome("pass", []) == "inconclusive"
    assert claim_outcome("pass", ["rejected"]) == "pass"
    assert claim_outcome("fail", []) == "fail"  # a refutation needs no control
    assert claim_outcome("error", []) == "error"
    res = ClaimResult(id="x", title="x", statement="s", formula="f", statistic={"name": "z", "value": 0.0},
                      threshold={"description": "below 1", "value": 1.0}, verdict="pass", figures={},
                      controls=[], config={}, notes=[], statistic_verdict="pass")
    assert res.verdict == "inconclusive"
    assert any("untested: no negative control differs from the theory" in n for n in res.notes)


# ------------------------------------------------------------------ refused before any work


def _claims() -> Any:
    from linrnn.families.gaussian import claim as finite_width
    from linrnn.verify.claims import co2, min_norm, ntk_sweep, short_memory

    return ntk_sweep, finite_width, short_memory, co2, min_norm


def _untestable() -> list[tuple[str, Any]]:
    """(name, a function that checks a configuration under which every control equals the theory)."""
    ntk_sweep, finite_width, short_memory, co2, min_norm = _claims()
    flat = GaussianSpec(lr_w=0.0, sigma_w2=1.0)  # no term linear in j, and q = 1: constant lag weights
    return [
        ("ntk lags 1", lambda: ntk_sweep.check(ntk_sweep.NtkConfig(lags=1, widths=(8, 16)), GaussianSpec())),
        ("ntk lags 1, no linear term", lambda: ntk_sweep.check(ntk_sweep.NtkConfig(lags=1, widths=(8, 16)), flat)),
        ("finite_width lags 2", lambda: finite_width.check(finite_width.Config(lags=2), GaussianSpec())),
        ("short_memory lr_w 0", lambda: short_memory.check(short_memory.Config(), GaussianSpec(lr_w=0.0))),
        ("short_memory no controls", lambda: short_memory.check(short_memory.Config(controls=()), GaussianSpec())),
        ("co2 lr_w 0", lambda: co2.check(co2.Config(controls=("no_linear_term",)), GaussianSpec(lr_w=0.0))),
        ("min_norm flat weights", lambda: min_norm.check(min_norm.Config(controls=("no_linear_term",)), flat)),
    ]


def _testable() -> list[tuple[str, Any]]:
    """Their neighbours, which keep a control that differs: not refused."""
    ntk_sweep, finite_width, short_memory, co2, min_norm = _claims()
    flat = GaussianSpec(lr_w=0.0, sigma_w2=1.0)
    return [
        ("ntk lags 2", lambda: ntk_sweep.check(ntk_sweep.NtkConfig(lags=2, widths=(8, 16)), flat)),
        ("finite_width lags 3", lambda: finite_width.check(finite_width.Config(lags=3), GaussianSpec())),
        ("short_memory lr_w 0, q x 1.1", lambda: short_memory.check(
            short_memory.Config(controls=("no_linear_term", "q_times_1.1")), GaussianSpec(lr_w=0.0))),
        ("co2 lr_w 0, both", lambda: co2.check(co2.Config(), GaussianSpec(lr_w=0.0))),
        ("min_norm flat weights, q x 1.1", lambda: min_norm.check(min_norm.Config(), flat)),
        ("min_norm no controls", lambda: min_norm.check(min_norm.Config(controls=()), GaussianSpec())),  # plain
    ]


@pytest.mark.parametrize("case", range(7))
def test_every_claim_refuses_a_configuration_whose_controls_all_equal_the_theory(case: int) -> None:
    name, check = _untestable()[case]
    with pytest.raises(UsageError, match="cannot test") as info:
        check()
    msg = str(info.value)
    assert "\n" not in msg and ("use" in msg or "add" in msg or "name" in msg), (name, msg)


@pytest.mark.parametrize("case", range(6))
def test_configurations_that_keep_a_differing_control_are_accepted(case: int) -> None:
    name, check = _testable()[case]
    check()


def test_min_norm_skips_a_control_proportional_to_the_derived_weights() -> None:
    """The min-norm interpolant does not change when the weights are scaled: such a control is no control."""
    import numpy as np

    from linrnn.verify.claims.training import distinct_controls

    lam = np.full(6, 2.0)
    alts = {"plain_min_norm": np.ones(6), "steeper": 1.1 ** np.arange(6)}
    assert distinct_controls(lam, alts, up_to_scale=True) == {"steeper": alts["steeper"]}
    assert list(distinct_controls(lam, alts)) == ["plain_min_norm", "steeper"]


def _no_draws(monkeypatch: pytest.MonkeyPatch) -> None:
    from linrnn.verify import check_ntk

    def boom(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("a draw was made before the configuration was refused")

    monkeypatch.setattr(check_ntk, "estimate_width", boom)


@pytest.mark.parametrize("widths", [["--width", "32"], ["--widths", "8,16"]])
def test_verify_ntk_with_one_lag_is_refused_before_any_draw(widths: list[str], monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    _no_draws(monkeypatch)
    status = main(["verify", "ntk", *widths, "--lags", "1", "--pilot", "0", "--replicas", "8", "--no-progress"])
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and "--lags = 1 cannot test the lag weights" in err and "use --lags >= 2" in err


def test_report_with_one_lag_is_refused_before_any_experiment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    _no_draws(monkeypatch)
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[ntk]\nlags = 1\nwidths = [8, 16]\nreplicas = 8\npilot = 0\n")
    assert main(["report", "-o", str(tmp_path / "rep"), "--config", str(cfg), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[ntk] lags = 1 cannot test the lag weights" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]  # nothing written, no .cache


def test_verify_train_sweep_without_a_differing_control_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["verify", "train", "--sigma-w2s", "0.6,1.1", "--width", "32", "--seq-len", "6", "--n-seq", "6",
                   "--lr-w", "0", "--no-progress"])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "cannot test the lag weights" in err


# ------------------------------------------------------------------ results files: consistent or refused


@pytest.fixture()
def results() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def _tamper(results: dict, how: str) -> dict:
    r = copy.deepcopy(results)
    claim = r["claims"][0]
    mine = [c for c in r["controls"] if c["claim"] == claim["id"]]
    if how == "missing statistic_verdict, control not rejected":
        del claim["statistic_verdict"]
        mine[0]["verdict"] = "not_rejected"
    elif how == "missing statistic_verdict":
        del claim["statistic_verdict"]
    elif how == "pass without controls":
        r["controls"] = [c for c in r["controls"] if c["claim"] != claim["id"]]
    elif how == "pass with a control not rejected":
        mine[0]["verdict"] = "not_rejected"
    return r


HOWS = ["missing statistic_verdict, control not rejected", "missing statistic_verdict", "pass without controls",
        "pass with a control not rejected"]


@pytest.mark.parametrize("how", HOWS)
def test_an_inconsistent_results_file_is_refused_by_report_render(results: dict, how: str, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from linrnn.reports import schema

    bad = _tamper(results, how)
    with pytest.raises(schema.SchemaError):
        schema.validate(bad)
    p = tmp_path / "r.json"
    p.write_text(json.dumps(bad), encoding="utf-8")
    assert main(["report", "render", str(p), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "claims[0]" in err
    assert not (tmp_path / "out").exists()


def test_a_consistent_results_file_still_renders(results: dict, tmp_path: Path) -> None:
    from linrnn.reports import schema

    ok = copy.deepcopy(results)
    claim = ok["claims"][0]
    mine = [c for c in ok["controls"] if c["claim"] == claim["id"]]
    mine[0]["verdict"] = "not_rejected"
    claim["verdict"] = "inconclusive"
    ok["verdict"] = "inconclusive"
    assert schema.validate(ok)["verdict"] == "inconclusive"
    older = copy.deepcopy(results)  # an older writer kept statistic_verdict in data
    older["claims"][1]["data"] = {"statistic_verdict": older["claims"][1].pop("statistic_verdict")}
    schema.validate(older)


# ------------------------------------------------------------------ calibrate: FAIL only for a failed claim


def _records(n: int, *, misses: int = 0, fail_at: int | None = None, error_at: int | None = None) -> list[dict]:
    out = []
    for s in range(n):
        ctrl = "not_rejected" if s < misses else "rejected"
        stat = "fail" if s == fail_at else "error" if s == error_at else "pass"
        verdict = claim_outcome(stat, [ctrl])
        out.append({"seed": s, "seconds": 1.0, "result": {"verdict": verdict, "statistic_verdict": stat,
                                                           "alpha": 1e-4, "controls": [{"id": "wrong", "verdict": ctrl}]}})
    return out


def test_calibration_verdicts_say_what_happened() -> None:
    from linrnn import calibrate

    def verdict(recs: list[dict]) -> tuple[str, str]:
        return calibrate.calibration_outcome([calibrate.summarize_claim("x", recs, None)])

    v, why = verdict(_records(20, misses=1))
    assert v == "inconclusive" and "no claim failed" in why and "19/20" in why and "0.98" in why and "CI" in why
    v, why = verdict(_records(2))
    assert v == "inconclusive" and "too small to support its rate claims" in why and "2/2" in why
    v, why = verdict(_records(60, fail_at=3))
    assert v == "fail" and "x" in why and "1 of 60" in why
    v, why = verdict(_records(60, error_at=3))
    assert v == "fail" and "erred" in why
    v, why = verdict(_records(60))
    assert v == "pass"
    no_controls = [{**r, "result": {**r["result"], "controls": [], "verdict": "inconclusive"}} for r in _records(60)]
    assert verdict(no_controls)[0] == "inconclusive"


def test_calibrate_exits_3_when_a_power_falls_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from linrnn import calibrate

    pytest.importorskip("distributed")
    cfg = tmp_path / "tiny.toml"
    cfg.write_text("[ntk]\nlags = 2\nwidths = [8, 16]\nreplicas = 32\n")

    def fake(out: Path, tasks: Any, configs: Any, model: Any, backend: str, dtype: str, hashes: Any,
             *_a: Any) -> int:
        for (group, seed) in tasks:
            for name in group:
                rec = {"calibration_version": 1, "config_hash": hashes[name], "claim": name, "seed": seed,
                       **_records(20, misses=1)[seed]}
                calibrate.write_atomic(calibrate.record_path(out, name, hashes[name], seed), json.dumps(rec))
        return len(tasks)

    monkeypatch.setattr(calibrate, "_run_tasks", fake)
    status = main(["calibrate", "--claims", "nngp", "--config", str(cfg), "--seeds", "20", "-q",
                   "-o", str(tmp_path / "cal")])
    out = capsys.readouterr().out
    assert status == 3
    assert "verdict: INCONCLUSIVE (no claim failed at any seed; claim nngp: control wrong's power 19/20" in out
    assert "FAIL" not in out
    summary = json.loads((tmp_path / "cal" / "calibration.json").read_text())
    assert summary["verdict"] == "inconclusive" and "19/20" in summary["verdict_reason"]
    assert "INCONCLUSIVE" in (tmp_path / "cal" / "calibration.md").read_text()
