"""``linrnn calibrate``: Dask end to end (LocalCluster, 1 and 2 workers), resume after a kill, the summary's
statistics, the message without ``distributed``, and the family-wise alpha of the suite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from linrnn import calibrate, suite
from linrnn.cli import main
from linrnn.core.errors import UsageError
from linrnn.reports.calibration import render_calibration_html, render_calibration_markdown

ROOT = Path(__file__).resolve().parents[1]
#: The NTK sweep at toy sizes: about a second per seed (its control is then not rejected: power 0).
TINY_NTK = "[ntk]\nlags = 2\nwidths = [8, 16]\nreplicas = 32\n"


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY_NTK)
    return p


def _results(directory: Path) -> dict[int, dict]:
    out = {}
    for p in sorted((directory / "records").glob("*.json")):
        rec = json.loads(p.read_text())
        out[(rec["claim"], rec["seed"])] = rec["result"]
    return out


def test_calibrate_on_a_local_cluster_with_1_and_2_workers(tmp_path: Path, tiny: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("distributed")
    two, one = tmp_path / "two", tmp_path / "one"
    status = main(["calibrate", "--claims", "nngp,width_rate", "--config", str(tiny), "--seeds", "3",
                   "--first-seed", "5", "--workers", "2", "-o", str(two)])
    # the toy sizes cannot reject the controls (power 0 < 0.98): inconclusive, exit 3, documented
    assert status == 3
    summary = json.loads((two / "calibration.json").read_text())
    assert summary["calibration_version"] == calibrate.CALIBRATION_VERSION
    assert summary["seeds"] == {"first": 5, "count": 3}
    assert [c["id"] for c in summary["claims"]] == ["nngp", "width_rate"]
    for c in summary["claims"]:
        assert c["seeds"] == 3 and c["pass"] + c["fail"] + c["inconclusive"] + c["error"] == 3
        ff = c["false_failure"]
        assert ff["rate"] == ff["failures"] / 3 and ff["ci95"][0] <= ff["rate"] <= ff["ci95"][1]
        # Bonferroni over the registry's m claims; [ntk] carries 3 of them (3e-3 / m), split by the sweep
        # over its three checks: each NTK claim states its own false-failure rate, 1e-3 / m
        from linrnn.families import claims as all_claims  # the engines' claims and the families'

        assert ff["stated"] == pytest.approx(1e-3 / len(all_claims()))
        assert c["seconds"] > 0
        for x in c["controls"]:
            assert x["runs"] == 3 and x["power"] == x["rejected"] / 3 and len(x["power_ci"]) == 2
    assert summary["provenance"]["tasks_computed"] == 3  # the two NTK claims share one task per seed
    signature, html = (two / "calibration.html").read_text().split("\n", 1)  # linrnn's signature, then the page
    assert signature.startswith("<!-- written by linrnn-bias ") and html.startswith("<!DOCTYPE html>")
    assert "| nngp | 3 |" in (two / "calibration.md").read_text()
    assert "verdict: INCONCLUSIVE (no claim failed at any seed; " in capsys.readouterr().out

    run = calibrate.run_calibration(one, config=tiny, claims=["nngp", "width_rate"], seeds=3, first_seed=5,
                                    workers=1, progress=False)
    assert run.computed == 3
    drop = ("backend",)
    a = {k: {f: v for f, v in r.items() if f not in drop} for k, r in _results(one).items()}
    b = {k: {f: v for f, v in r.items() if f not in drop} for k, r in _results(two).items()}
    assert a == b and len(a) == 6  # the verdicts (and everything else) do not depend on the workers
    # a re-run computes nothing
    again = calibrate.run_calibration(one, config=tiny, claims=["nngp", "width_rate"], seeds=3, first_seed=5,
                                      workers=1, progress=False)
    assert (again.computed, again.reused) == (0, 3)
    assert again.summary["claims"] == run.summary["claims"]


def test_calibrate_resumes_after_the_process_is_killed(tmp_path: Path, tiny: Path) -> None:
    pytest.importorskip("distributed")
    out = tmp_path / "cal"
    seeds = 8
    cmd = [sys.executable, "-m", "linrnn", "calibrate", "--claims", "nngp", "--config", str(tiny), "--seeds",
           str(seeds), "--workers", "1", "-q", "-o", str(out)]
    proc = subprocess.Popen(cmd, cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while len(list((out / "records").glob("*.json"))) < 2 and proc.poll() is None:
            assert time.monotonic() < deadline, "no records within 90 s"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the command and its Dask workers (its own process group)
        proc.wait()
    before = {p.name: p.read_bytes() for p in (out / "records").glob("*.json")}
    assert 2 <= len(before) < seeds, "the run should have been killed midway"
    assert not (out / "calibration.json").exists()
    assert not list((out / "records").glob(".*.tmp"))  # atomic: no half-written record survives as a record
    run = calibrate.run_calibration(out, config=tiny, claims=["nngp"], seeds=seeds, workers=2, progress=False)
    assert run.reused == len(before) and run.computed == seeds - len(before)
    after = {p.name: p.read_bytes() for p in (out / "records").glob("*.json")}
    assert len(after) == seeds and all(after[k] == v for k, v in before.items())
    assert run.summary["claims"][0]["seeds"] == seeds


def test_without_distributed_the_command_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` raises ImportError
    assert main(["calibrate", "--claims", "nngp", "--seeds", "1", "-o", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert "pip install 'linrnn-bias[distributed]'" in err and err.count("\n") == 0
    assert not (tmp_path / "c").exists()


def test_calibrate_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["calibrate", "--claims", "nope", "-o", str(tmp_path / "c")]) == 2
    assert "unknown claim nope" in capsys.readouterr().err


def test_clopper_pearson_and_the_summary() -> None:
    assert calibrate.clopper_pearson(0, 10)[0] == 0.0
    lo, hi = calibrate.clopper_pearson(0, 10)
    assert hi == pytest.approx(1 - 0.025 ** (1 / 10))
    lo, hi = calibrate.clopper_pearson(10, 10)
    assert (lo, hi) == (pytest.approx(0.025 ** (1 / 10)), 1.0)
    lo, hi = calibrate.clopper_pearson(3, 10)
    assert lo == pytest.approx(0.0667, abs=1e-3) and hi == pytest.approx(0.6525, abs=1e-3)
    assert calibrate.clopper_pearson(0, 0) is None
    recs = [{"seconds": s, "result": {"verdict": v, "statistic_verdict": sv, "alpha": 1e-4,
                                      "controls": [{"id": "wrong", "verdict": cv}]}}
            for s, v, sv, cv in ((1.0, "pass", "pass", "rejected"), (3.0, "fail", "fail", "rejected"),
                                 (2.0, "inconclusive", "pass", "not_rejected"))]
    c = calibrate.summarize_claim("x", recs, None)
    assert (c["seeds"], c["pass"], c["fail"], c["inconclusive"], c["error"]) == (3, 1, 1, 1, 0)
    assert c["false_failure"]["rate"] == pytest.approx(1 / 3) and c["false_failure"]["stated"] == 1e-4
    assert c["seconds"] == 2.0
    assert c["controls"][0]["power"] == pytest.approx(2 / 3) and c["controls"][0]["rejected"] == 2
    assert calibrate.calibration_verdict([c]) == "fail"
    good = calibrate.summarize_claim("x", recs[:1] * 60, None)
    assert calibrate.calibration_verdict([good]) == "pass"
    data = {"calibration_version": 1, "claims": [c, good], "verdict": "fail", "seeds": {"first": 0, "count": 3},
            "power_target": 0.98, "family": {"runs": 3, "failed": 1, "rate": 1 / 3, "ci95": [0.008, 0.906],
                                             "stated": 1e-3}}
    assert "FAIL: 2 claims" in render_calibration_markdown(data)
    assert "<table>" in render_calibration_html(data)


def test_family_alpha_is_split_by_bonferroni_over_the_claims_run() -> None:
    cfg = suite.resolve_config("quick")
    assert cfg.family_alpha == 1e-3
    names = ["ntk_limit", "nngp", "width_rate", "min_norm", "co2"]
    got = suite.with_family_alpha(cfg, names)
    assert got["ntk"].alpha == pytest.approx(3e-3 / 5)  # one sweep, family-wise over its three claims
    assert got["min_norm"].alpha == pytest.approx(1e-3 / 5) and got["co2"].alpha == pytest.approx(1e-3 / 5)
    assert got["short_memory"].alpha == cfg["short_memory"].alpha  # not run: untouched
    total = sum(v["alpha"] for v in got.alphas.values())
    assert total == pytest.approx(1e-3)
    explicit = suite.with_family_alpha(suite.resolve_config("quick", {"min_norm": {"alpha": 0.05},
                                                                      "family_alpha": 1e-2}), names)
    assert explicit["min_norm"].alpha == 0.05 and explicit.alphas["min_norm"]["source"] == "explicit"
    assert explicit["co2"].alpha == pytest.approx(1e-2 / 5)
    assert explicit.as_dict()["family_alpha"]["family_alpha"] == 1e-2
    with pytest.raises(UsageError, match="family_alpha"):
        suite.resolve_config("quick", {"family_alpha": 2})
