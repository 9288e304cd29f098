"""The CO2 task: vendored data, interpolation, the chronological data set, baselines and the claim's contract."""

from __future__ import annotations

import importlib.resources
import json

import numpy as np
import pytest

from linrnn.cli import main
from linrnn.core.errors import UsageError
from linrnn.verify.claims import REGISTRY
from linrnn.core.spec import ModelSpec
from linrnn.verify.co2 import ar_fit, block_t, co2_dataset, load_co2, predict_last, r2, seasonal_z


def claim_co2(config: dict, backend: str = "numpy") -> dict:
    c = REGISTRY["co2"]
    return c.run(c.config(config), ModelSpec(sigma_w2=0.8), seed=0, backend=backend).claim_dict()


def test_data_file_is_packaged_and_complete() -> None:
    path = importlib.resources.files("linrnn.verify") / "data" / "co2_weekly.csv"
    lines = path.read_text().splitlines()
    assert lines[0] == "date,co2" and len(lines) == 2285
    assert sum(1 for line in lines[1:] if line.endswith(",")) == 59  # missing weeks, filled by the loader


def test_loader_fills_missing_weeks_by_linear_interpolation() -> None:
    dates, c = load_co2()
    assert dates[0] == 19580329 and dates[-1] == 20011229 and c.size == 2284
    assert np.all(np.isfinite(c))
    # 19580510 is missing between 316.9 (0503) and 317.5 (0517): the midpoint
    i = int(np.flatnonzero(dates == 19580510)[0])
    assert c[i] == pytest.approx((316.9 + 317.5) / 2)


def test_dataset_is_chronological_next_step() -> None:
    d = co2_dataset(64, 0.7)
    xtr, ytr, xte = d["x_train"], d["y_train"], d["x_test"]
    assert xtr.shape[1:] == (64, 1) and ytr.shape == xtr.shape
    np.testing.assert_array_equal(ytr[:, :-1], xtr[:, 1:])  # y_t = x_{t+1}: predict the next difference
    np.testing.assert_array_equal(xte[0, :-1], xtr[-1, 1:])  # the test part continues the training part in time
    assert abs(float(xtr[:, -1, 0].mean())) < 0.1


def test_ar_fit_is_least_squares_and_r2() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 10, 1))
    w = np.array([0.5, -0.2, 0.1])
    y = np.zeros_like(x)
    y[:, -1, 0] = x[:, ::-1, 0][:, :3] @ w
    L = ar_fit(x, y, 3)
    np.testing.assert_allclose(L[:3, 0, 0], w, atol=1e-12)
    assert r2(predict_last(L, x), y[:, -1, 0]) == pytest.approx(1.0)
    spike = np.zeros((64, 1, 1))
    spike[51] = 1.0
    spike[41:62:2] += 0.01
    assert seasonal_z(spike) > 10


def test_block_t() -> None:
    t, k = block_t(np.full(120, 2.0) + np.arange(120) % 3, np.full(120, 1.0))
    assert k == 2 and t > 0
    with pytest.raises(UsageError):
        block_t(np.ones(60), np.ones(60))


def test_claim_contract_and_controls_rejected() -> None:
    res = claim_co2({"width": 64, "steps": 20, "seeds": 2, "sigma_w2s": [0.5, 0.8]}, "numpy")
    json.dumps(res, allow_nan=False)
    assert res["id"] == "co2_memory" and res["verdict"] in ("pass", "fail")
    rows = res["figures"]["comparison"]["rows"]
    assert [r["model"] for r in rows[:3]] == ["AR(1..8)", "AR(1..52)", "AR(1..64)"]
    assert rows[1]["test_r2"] > rows[0]["test_r2"]  # the longer AR fit is better on these years
    assert {c["id"] for c in res["controls"]} == {"short_memory_q0.5", "permuted_weeks"}
    assert next(c for c in res["controls"] if c["id"] == "permuted_weeks")["verdict"] == "rejected"


def test_bad_co2_configs() -> None:
    with pytest.raises(UsageError):
        claim_co2({"seq_len": 32}, "numpy")
    with pytest.raises(UsageError):
        claim_co2({"sigma_w2s": [0.5, 0.9], "width": 8, "steps": 1}, "numpy")  # 0.8 not in the grid


def test_cli_teacher_co2_json(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["verify", "train", "--teacher", "co2", "--width", "64", "--steps", "5", "--replicas", "2",
                   "--sigma-w2s", "0.5,0.8", "--json", "--no-progress"])
    data = json.loads(capsys.readouterr().out)
    assert data["mode"] == "co2" and (status == 0) == (data["verdict"] == "pass")
    assert main(["verify", "train", "--teacher", "co2", "--sigma-w2", "0.8", "--no-progress"]) == 2
