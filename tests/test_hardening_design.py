"""Issue 17, power as designed: a control that the main stage leaves undecided gets a further stage.

The training claims' design (:func:`linrnn.verify.claims_train.run_design`) on synthetic
replicas whose main stage falls short (one wild replica, as a heavy-tailed effect gives):
the run draws a further stage of fresh replicas, decides the control there, and records
the stages, their sizes and alpha per look. The simulation of the design's error rates
is in tests/test_design.py.
"""

from __future__ import annotations

import numpy as np

from linrnn.verify.claims import REGISTRY
from linrnn.verify.claims_train import FURTHER_OFFSET, PILOT_OFFSET, TTest, control_entry, run_design


def _replica(seen: list[int]):
    def replica(i: int) -> dict:
        seen.append(i)
        rng = np.random.default_rng(i)
        x = float(rng.normal(1.0, 0.3 if PILOT_OFFSET <= i < FURTHER_OFFSET else 1.0))
        if i == 0:  # the main stage's first replica: a wild draw that pulls its mean to the control
            x = -12.0
        return {"x": x, "y": float(rng.normal(0.0, 1.0))}
    return replica


def test_an_undecided_control_gets_a_further_stage_that_decides_it() -> None:
    seen: list[int] = []
    cfg = REGISTRY["min_norm"].config({"pilot": 8, "min_replicas": 8, "max_replicas": 512, "alpha": 1e-3})
    staged = run_design(_replica(seen), {"c": TTest("x", 0.0, "greater", 1e-3)}, cfg,
                        own={"own": TTest("y", 0.0, "two", 1e-3)})
    d = staged.record
    assert [s["stage"] for s in d["stages"]] == [1, 2]
    first, second = d["stages"]
    assert first["rejected"] == [] and first["own"] == "pass"
    # sized on every replica drawn so far (pilot and main stage), within max_replicas
    assert second["replicas"] == min(first["needed"]["c"] or 512, 512) and second["replicas"] > first["replicas"]
    assert second["rejected"] == ["c"]
    assert first["next"]["replicas"] == second["replicas"]
    assert d["decided_at_stage"] == {"c": 2} and d["looks"] == 2
    assert d["alpha_per_look"] == 1e-3 / 2 and all(s["alpha_share"] == 0.5 for s in d["stages"])
    assert d["replicas"] == second["replicas"] and d["main_replicas"] == first["replicas"]
    assert d["replicas_total"] == 8 + first["replicas"] + second["replicas"]
    # fresh draws at every stage: pilot, main and further indices never coincide
    pilot = {i for i in seen if PILOT_OFFSET <= i < FURTHER_OFFSET}
    main = {i for i in seen if i < PILOT_OFFSET}
    further = {i for i in seen if i >= FURTHER_OFFSET}
    assert len(pilot) == 8 and len(main) == first["replicas"] and len(further) == second["replicas"]
    # every test at alpha / looks, and the control's entry is the deciding stage's
    assert staged.controls["c"].level == 1e-3 / 2 and staged.own["own"].level == 1e-3 / 2
    entry = control_entry("c", "x has mean 0", staged.controls["c"], staged.values_for("c")["x"], d, "t", "nan")
    assert entry["verdict"] == "rejected" and entry["statistic"]["stage"] == 2
    assert entry["statistic"]["replicas"] == second["replicas"]


def test_a_failing_own_test_stops_at_the_main_stage() -> None:
    seen: list[int] = []
    cfg = REGISTRY["min_norm"].config({"pilot": 8, "min_replicas": 8, "max_replicas": 512})
    staged = run_design(_replica(seen), {"c": TTest("x", 0.0, "greater", 1e-3)}, cfg,
                        own={"own": TTest("y", 5.0, "two", 1e-3)})  # the data's mean is 0: the theory 5 fails
    assert len(staged.record["stages"]) == 1 and staged.record["stages"][0]["own"] == "fail"
    assert "fail" in staged.record["stopped"] and not [i for i in seen if i >= FURTHER_OFFSET]


def test_a_control_no_stage_within_the_caps_can_decide_stays_inconclusive_with_its_stages() -> None:
    cfg = REGISTRY["min_norm"].config({"pilot": 4, "min_replicas": 4, "max_replicas": 6})
    staged = run_design(lambda i: {"x": float(np.random.default_rng(i).normal(0.0, 1.0))},
                        {"c": TTest("x", 0.0, "greater", 1e-6)}, cfg)
    d = staged.record
    assert len(d["stages"]) == 2 and d["stages"][1]["replicas"] == 6 and "no look left" in d["stopped"]
    entry = control_entry("c", "x", staged.controls["c"], staged.values_for("c")["x"], d, "t", "nan")
    assert entry["verdict"] == "not_rejected" and entry["statistic"]["stage"] == 2
