"""``linrnn report --workers``: claims grouped by experiment on a process pool; the report does not depend on K."""

from __future__ import annotations

import json
from pathlib import Path

from linrnn import suite
from linrnn.parallel import group_by_experiment

CFG = {"derivation": {"figure_lags": 20, "figure_q": [0.9, 1.0], "pdf": False},
       "ntk": {"lags": 2, "widths": [8, 16], "replicas": 32}}
ONLY = ["derivation", "ntk_limit", "nngp", "width_rate"]


def test_group_by_experiment_keeps_order() -> None:
    exp = {"ntk_limit": "ntk", "nngp": "ntk", "width_rate": "ntk", "co2": "co2"}
    assert group_by_experiment(["derivation", "ntk_limit", "co2", "nngp", "width_rate"], exp) == [
        ["derivation"], ["ntk_limit", "nngp", "width_rate"], ["co2"]]


def test_report_claims_do_not_depend_on_the_workers(tmp_path: Path) -> None:
    runs = {w: suite.run_report(tmp_path / f"w{w}", config=CFG, only=ONLY, workers=w, use_cache=w == 2)
            for w in (1, 2)}
    one, two = (json.loads((tmp_path / f"w{w}" / "report.json").read_text()) for w in (1, 2))
    for key in ("claims", "controls", "verdict", "config", "derivation"):
        assert json.dumps(one[key], sort_keys=True) == json.dumps(two[key], sort_keys=True), key
    assert two["provenance"]["workers"] == 2 and one["provenance"]["workers"] == 1
    assert runs[1].exit_status == runs[2].exit_status
    # the cache written by the pool's results is reused (in this process, serially)
    again = suite.run_report(tmp_path / "w2", config=CFG, only=ONLY, workers=2, force=True)
    assert sorted(again.results["provenance"]["cached"]) == sorted(ONLY)
    assert json.dumps(again.results["claims"], sort_keys=True) == json.dumps(two["claims"], sort_keys=True)
    # the Bonferroni split is recorded: [ntk] carries all three claims run
    assert one["config"]["family_alpha"]["sections"]["ntk"]["alpha"] == 1e-3
