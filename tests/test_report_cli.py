"""``linrnn report``: exit codes, configuration, atomic output, cache and resume, the quick profile end to end."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from linrnn import suite
from linrnn.cli import main
from linrnn.core.errors import UsageError
from linrnn.reports import schema

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "report_results.json"

#: A derivation experiment small enough for unit tests.
TINY = {"derivation": {"figure_lags": 20, "figure_q": [0.9, 1.0, 1.05], "pdf": False}}


def _claim(cid: str, verdict: str, control_verdict: str = "rejected") -> dict[str, Any]:
    """A claim dict of docs/claims.md, for exercising the runner (not a claim of the theory)."""
    return {
        "id": cid, "title": cid, "statement": f"test claim {cid}", "formula": "x = 1",
        "statistic": {"name": "|x - 1|", "value": 0.0 if verdict == "pass" else 2.0},
        "threshold": {"description": "below 1", "value": 1.0}, "verdict": verdict,
        "statistic_verdict": verdict if verdict in ("fail", "error") else "pass",
        "figures": {"line": {"kind": "lines", "xlabel": "t (steps)", "ylabel": "x", "series": [
            {"label": "x", "x": [0, 1, 2], "y": [1.0, 1.0, 1.0]}]}},
        "controls": [{"id": "wrong", "statement": "x = 2", "statistic": {"name": "|x - 2|", "value": 1.0},
                      "threshold": {"description": "below 0.5", "value": 0.5}, "verdict": control_verdict}],
        "config": {"size": 1}, "notes": ["a note"], "extra_number": 3.5,
    }


@pytest.fixture()
def fake_suite(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Replace the experiments by the real (tiny) derivation and two cheap stand-ins; count their calls."""
    calls = {"derivation": 0, "a": 0, "b": 0}
    verdicts = {"a": "pass", "b": "pass"}

    def wrap(name: str, fn: Any) -> Any:
        def run(ctx: suite.Context) -> dict[str, Any]:
            calls[name] += 1
            return fn(ctx)
        return run

    def make(name: str) -> Any:
        return lambda ctx: {"claims": [_claim(name, verdicts[name])]}

    monkeypatch.setattr(suite, "experiments", lambda: {
        "derivation": wrap("derivation", suite.experiment_derivation),
        "a": wrap("a", make("a")), "b": wrap("b", make("b"))})
    calls["verdicts"] = verdicts  # type: ignore[assignment]
    return calls


def test_runner_writes_a_report_and_exits_0(fake_suite: dict, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    run = suite.run_report(out, config=TINY)
    assert run.exit_status == 0 and run.results["verdict"] == "pass"
    r = schema.load(out / "report.json")
    assert [c["id"] for c in r["claims"]] == ["a", "b"]
    assert r["claims"][0]["data"] == {"extra_number": 3.5} and r["claims"][0]["experiment"] == "a"
    assert [(c["claim"], c["id"]) for c in r["controls"]] == [("a", "wrong"), ("b", "wrong")]
    assert set(r["provenance"]["wall_time"]) == {"derivation", "a", "b"}
    for key in ("python", "packages", "backend", "device", "dtype", "seed", "total_seconds"):
        assert key in r["provenance"]
    assert (out / "derivation.tex").read_text().startswith("\\documentclass")
    assert (out / "figures" / "derivation-lag_weights.png").exists()


def test_a_failing_claim_is_a_finding_with_exit_1(fake_suite: dict, tmp_path: Path) -> None:
    fake_suite["verdicts"]["b"] = "fail"
    run = suite.run_report(tmp_path / "rep", config=TINY)
    assert run.exit_status == 1
    r = schema.load(tmp_path / "rep" / "report.json")
    assert r["verdict"] == "fail" and [c["verdict"] for c in r["claims"]] == ["pass", "fail"]
    assert "&#10007; FAIL" in (tmp_path / "rep" / "report.html").read_text()


def test_cache_resumes_an_interrupted_run(fake_suite: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "rep"
    real = suite.experiments()

    def interrupted(ctx: suite.Context) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr(suite, "experiments", lambda: {**real, "b": interrupted})
    with pytest.raises(KeyboardInterrupt):
        suite.run_report(out, config=TINY)
    # nothing but the cache of the finished experiments; no temporary directories
    assert [p.name for p in out.iterdir()] == [".cache"]
    assert sorted(p.name.split("-")[0] for p in (out / ".cache").iterdir()) == ["a", "derivation"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]
    monkeypatch.setattr(suite, "experiments", lambda: real)
    before = dict(fake_suite)
    run = suite.run_report(out, config=TINY)  # no --force needed: DIR holds only the cache
    assert fake_suite["derivation"] == before["derivation"] and fake_suite["a"] == before["a"]
    assert run.results["provenance"]["cached"] == ["derivation", "a"]
    assert (out / "report.html").exists() and (out / ".cache").is_dir()
    # an existing report needs --force; a changed configuration misses the cache; no_cache recomputes
    with pytest.raises(UsageError, match="--force"):
        suite.run_report(out, config=TINY)
    run = suite.run_report(out, config={"derivation": {**TINY["derivation"], "figure_lags": 21}}, force=True)
    assert run.results["provenance"]["cached"] == ["a", "b"]
    run = suite.run_report(out, config=TINY, force=True, use_cache=False)
    assert run.results["provenance"]["cached"] == []


@pytest.mark.parametrize(
    ("toml", "message"),
    [('[ntk]\nwidth = 3\n', "unknown key ntk.width"),
     ('[ntk]\nwidths = [64, 128]\nreplica = 3\ncolour = 1\n', "unknown keys ntk.colour, ntk.replica"),
     ('[nkt]\nlags = 3\n', r"unknown section \[nkt\]"),
     ('[ntk]\nlags = "many"\n', "ntk.lags must be an integer"),
     ('[ntk\nlags = 3\n', "not valid TOML")],
)
def test_bad_configuration_exits_2_naming_the_problem(tmp_path: Path, toml: str, message: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    status = main(["report", "-o", str(tmp_path / "rep"), "--config", str(cfg)])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("linrnn: error:") and len(err.strip().splitlines()) == 1
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "rep").exists()


def test_toml_overrides_reach_the_configuration(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[ntk]\nwidths = [32, 64]\n[model]\nsigma_w2 = 1\n')
    resolved = suite.resolve_config("quick", suite.load_toml(cfg))
    assert resolved["ntk"].widths == (32, 64) and resolved.model.sigma_w2 == 1.0
    assert resolved["ntk"].replicas == suite.load_profile("quick")["ntk"]["replicas"]


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "report.html").write_text("old")
    assert main(["report", "-o", str(tmp_path / "rep")]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["report", "-o", str(tmp_path / "missing" / "rep")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["report", "--seed", "-1"])
    assert exc.value.code == 2
    assert main(["report", "render", str(tmp_path / "nope.json"), "-o", str(tmp_path / "r2")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_render_subcommand_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "render", str(FIXTURE), "-o", str(tmp_path / "ok")]) == 0
    assert (tmp_path / "ok" / "report.html").exists()
    assert main(["report", "render", str(FIXTURE), "-o", str(tmp_path / "ok")]) == 2
    assert main(["report", "render", str(FIXTURE), "-o", str(tmp_path / "ok"), "--force"]) == 0
    failing = json.loads(FIXTURE.read_text())
    failing["claims"][0]["verdict"] = failing["claims"][0]["statistic_verdict"] = "fail"
    failing["verdict"] = "fail"
    bad = tmp_path / "failing.json"
    bad.write_text(json.dumps(failing))
    assert main(["report", "render", str(bad), "-o", str(tmp_path / "bad")]) == 1
    assert "FAIL" in (tmp_path / "bad" / "report.md").read_text()
    broken = copy.deepcopy(failing)
    broken["claims"][0]["verdict"] = "perhaps"
    bad.write_text(json.dumps(broken))
    capsys.readouterr()
    assert main(["report", "render", str(bad), "-o", str(tmp_path / "broken")]) == 2
    assert "one of pass, fail, inconclusive, error" in capsys.readouterr().err


def test_report_help_does_not_import_numpy() -> None:
    code = ("import sys\nfrom linrnn.cli import build_parser\nbuild_parser()\n"
            "assert 'numpy' not in sys.modules and 'matplotlib' not in sys.modules, sorted(sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.slow
def test_quick_profile_end_to_end(tmp_path: Path) -> None:
    """``linrnn report`` with no options but -o: every claim that exists runs; the exit status matches the verdict."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "linrnn", "report", "-o", str(tmp_path / "rep")],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode in (0, 1, 3), proc.stderr[-3000:]
    out = tmp_path / "rep"
    r = schema.load(out / "report.json")
    from linrnn.core.outcome import exit_status

    assert proc.returncode == exit_status(r["verdict"])
    assert r["provenance"]["workers"] == min(2, len(os.sched_getaffinity(0)))
    fam = r["config"]["family_alpha"]  # Bonferroni over the claims run: family-wise false failure <= 1e-3
    assert fam["family_alpha"] == 1e-3
    assert sum(s["alpha"] for s in fam["sections"].values()) == pytest.approx(1e-3)
    claims = {c["id"]: c for c in r["claims"]}
    for cid in ("ntk_limit", "nngp", "width_rate"):
        assert claims[cid]["verdict"] == "pass", claims[cid]["statistic"]
    for ctrl in r["controls"]:
        if ctrl["claim"] in ("ntk_limit", "nngp", "width_rate"):
            assert ctrl["verdict"] == "rejected", ctrl["id"]  # the wrong theory is rejected
    for name in ("report.html", "report.md", "report.tex", "derivation.tex"):
        assert (out / name).stat().st_size > 1000
    assert len(list((out / "figures").glob("*.png"))) >= 5
    assert r["provenance"]["backend"] == "numpy"
    assert "verdict:" in proc.stdout


def test_training_figures_are_in_drawable_kinds() -> None:
    """The figure builders of the training claims (their data shapes) give kinds reports can draw."""
    from linrnn.reports.figures import draw
    from linrnn.verify.claims import co2, short_memory
    from linrnn.verify.claims.training import distance_figure

    figs = {
        "distance_vs_width": distance_figure(
            {"widths": [64, 128, 256], "distance_mean": [0.2, 0.14, 0.1], "distance_se": [0.01, 0.01, 0.01],
             "fit": {"slope": -0.5, "ci": [-0.6, -0.4]},
             "controls": {"lag_weights:q_times_1.1": {"mean": [0.3, 0.3, 0.3], "se": [0.01, 0.01, 0.01]}}}),
        "test_error_vs_q": short_memory.test_error_figure(
            {"sigma_w2": [0.5, 0.9, 1.2], "theory": [0.3, 0.05, 0.8], "experiment_mean": [0.3, 0.06, 0.9],
             "experiment_se": [0.01, 0.01, 0.1], "bias_corrected": [0.3, 0.05, 0.85],
             "bias_corrected_se": [0.01, 0.01, 0.1], "controls": {"no_linear_term": [0.4, 0.1, 4.0]}}),
        "impulse_by_q": co2.impulse_figure({"0.5": [0.1] * 64, "0.95": [0.05] * 64}),
        "comparison": co2.comparison_figure(
            [{"model": "AR(1..8)", "sigma_w2": None, "test_r2": 0.3, "test_r2_se": 0.0},
             {"model": "RNN n=256", "sigma_w2": 0.95, "test_r2": 0.35, "test_r2_se": 0.01}]),
    }
    assert {name: fig["kind"] for name, fig in figs.items()} == {
        "distance_vs_width": "lines", "test_error_vs_q": "lines", "impulse_by_q": "lines", "comparison": "bars"}
    for name, fig in figs.items():
        assert draw(name, fig).png.startswith(b"\x89PNG")
