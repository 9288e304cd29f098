"""`linrnn verify train`: single runs, saved runs against independent BPTT, sweeps, JSON and errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from linrnn.cli import main

SMALL = ["verify", "train", "--width", "24", "--seq-len", "6", "--n-seq", "5", "--steps", "12", "--no-progress"]


def bptt_run(C, F, W, x, y, *, lr, steps, loss, sigma_w2, sigma_f2, sigma_c2, lr_mult):
    """Plain GD with backpropagation through time (ntk parameterization); impulse responses of every iterate.

    Forward h_t = W_e h_{t-1} + F_e x_t over all sequences, adjoints a_t = C_e^T e_t + W_e^T a_{t+1}
    (e_t the output error, zero except at t = T-1 for loss 'last'), raw gradients alpha_P dLoss/dP_e.
    """
    N, T, n_x = x.shape
    n = W.shape[0]
    ac, af, aw = math.sqrt(sigma_c2 / n), math.sqrt(sigma_f2 / n_x), math.sqrt(sigma_w2 / n)
    C, F, W = C.copy(), F.copy(), W.copy()
    out = []
    for k in range(steps + 1):
        Ce, Fe, We = ac * C, af * F, aw * W
        imp, v = [], Fe
        for _ in range(T):
            imp.append(Ce @ v)
            v = We @ v
        out.append(np.stack(imp))
        if k == steps:
            break
        hs = np.zeros((T + 1, N, n))
        for t in range(T):
            hs[t + 1] = hs[t] @ We.T + x[:, t] @ Fe.T
        err = np.einsum("tsi,pi->tsp", hs[1:], Ce) - np.transpose(y, (1, 0, 2))
        if loss == "last":
            err[:-1] = 0.0
        err /= N
        gC, gF, gW = np.zeros_like(Ce), np.zeros_like(Fe), np.zeros_like(We)
        a = np.zeros((N, n))
        for t in range(T - 1, -1, -1):
            gC += err[t].T @ hs[t + 1]
            a = err[t] @ Ce + a @ We  # rows: a_t^T
            gF += a.T @ x[:, t]
            gW += a.T @ hs[t]
        C = C - lr * lr_mult[0] * ac * gC
        F = F - lr * lr_mult[1] * af * gF
        W = W - lr * lr_mult[2] * aw * gW
    return np.stack(out)


@pytest.mark.parametrize("loss", ["all", "last"])
def test_saved_run_matches_independent_bptt(tmp_path: Path, capsys: pytest.CaptureFixture[str], loss: str) -> None:
    path = tmp_path / "run.npz"
    status = main(SMALL + ["--loss", loss, "--sigma-w2", "0.9", "--sigma-f2", "1.5", "--lr-w", "0.5",
                           "--teacher", "oscillator", "--save", str(path)])
    capsys.readouterr()
    assert status == 0
    with np.load(path) as z:
        d = {k: z[k] for k in z.files}
    steps, T = int(d["steps"]), 6
    assert steps == 12 and str(d["param"]) == "ntk" and str(d["loss"]) == loss
    assert d["W0"].shape == (24, 24) and d["F0"].shape == (24, 1) and d["C0"].shape == (1, 24)
    assert d["x"].shape == (5, T, 1) and d["y"].shape == (5, T, 1)
    assert d["impulse"].shape == d["scnn"].shape == (steps + 1, T, 1, 1)
    ref = bptt_run(d["C0"], d["F0"], d["W0"], d["x"], d["y"], lr=float(d["lr"]), steps=steps, loss=loss,
                   sigma_w2=float(d["sigma_w2"]), sigma_f2=float(d["sigma_f2"]), sigma_c2=float(d["sigma_c2"]),
                   lr_mult=(float(d["lr_c"]), float(d["lr_f"]), float(d["lr_w"])))
    scale = np.max(np.abs(ref))
    np.testing.assert_allclose(d["impulse"], ref, rtol=0, atol=1e-11 * scale)
    np.testing.assert_array_equal(d["scnn"][0], d["impulse"][0])  # the SCNN starts from the RNN's L(0)


def test_single_json_only_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(SMALL + ["--json", "--replicas", "2"]) == 0
    out, _ = capsys.readouterr()
    data = json.loads(out)
    assert data["mode"] == "single" and data["lr_auto"] is True and data["lr"] > 0
    assert len(data["replicas"]) == 2 and data["config"]["width"] == 24
    assert all(r["distance"] >= 0 for r in data["replicas"])


def test_single_table_prints_auto_lr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(SMALL) == 0
    out, _ = capsys.readouterr()
    assert "step lr = " in out and "auto" in out and "SCNN loss" in out


def test_widths_sweep_json(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["verify", "train", "--widths", "16,32,64", "--seq-len", "6", "--n-seq", "8", "--steps", "10",
                   "--replicas", "3", "--json", "--no-progress"])
    data = json.loads(capsys.readouterr().out)
    assert {"widths", "distance", "slope", "slope_ci", "verdict"} <= set(data)
    assert data["widths"] == [16, 32, 64] and len(data["distance"]) == 3
    assert (status == 0) == (data["verdict"] == "pass")


def test_widths_sweep_design_flags(capsys: pytest.CaptureFixture[str]) -> None:
    """--pilot / --max-replicas / --budget-seconds reach the two-stage design; the exit status follows the outcome."""
    status = main(["verify", "train", "--widths", "16,32", "--seq-len", "6", "--n-seq", "8", "--steps", "8",
                   "--pilot", "3", "--replicas", "2", "--max-replicas", "4", "--budget-seconds", "1000",
                   "--json", "--no-progress"])
    data = json.loads(capsys.readouterr().out)
    design = data["claim"]["design"]
    assert design["pilot"] == 3 and 2 <= data["replicas"] <= 4 and design["budget_seconds"] == 1000
    assert status == {"pass": 0, "fail": 1, "error": 1, "inconclusive": 3}[data["verdict"]]
    for c in data["claim"]["controls"]:
        assert c["verdict"] in ("rejected", "not_rejected", "error")


def test_sigma_w2s_sweep_json(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["verify", "train", "--sigma-w2s", "0.6,1.1", "--width", "32", "--seq-len", "6", "--n-seq", "6",
                   "--steps", "5", "--replicas", "2", "--json", "--no-progress"])
    data = json.loads(capsys.readouterr().out)
    assert data["sigma_w2s"] == [0.6, 1.1] and len(data["theory"]) == 2 and len(data["experiment_se"]) == 2
    assert data["best_q_theory"] in (0.6, 1.1) and data["best_q_experiment"] in (0.6, 1.1)
    assert (status == 0) == (data["verdict"] == "pass")


@pytest.mark.parametrize(
    "extra",
    [
        ["--width", "0"],
        ["--steps", "0"],
        ["--seq-len", "0"],
        ["--n-seq", "0"],
        ["--teacher", "sine"],
        ["--lr", "50"],
        ["--lr", "-1"],
        ["--save", "run.txt"],
        ["--widths", "8"],
        ["--widths", "8,16", "--pilot", "1"],
        ["--widths", "8,16", "--budget-seconds", "-3"],
        ["--sigma-w2", "-1"],
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(capsys: pytest.CaptureFixture[str], extra: list[str]) -> None:
    argv = ["verify", "train", "--seq-len", "6", "--n-seq", "4", "--steps", "10", "--no-progress"]
    if "--width" not in extra and "--widths" not in extra:
        argv += ["--width", "16"]
    try:
        status = main(argv + extra)
    except SystemExit as exc:  # the model flags are refused by the parser, with the same one sentence
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("linrnn: error: ")


def test_help_lists_flags_and_imports_nothing_heavy() -> None:
    code = ("import sys; from linrnn.cli import build_parser; p = build_parser(); "
            "p.parse_args(['verify', 'train', '--width', '8']); "
            "print(sorted(m for m in ('numpy', 'sympy', 'linrnn.verify.train', 'linrnn.verify.claims.training') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "sympy" not in out.stdout and "linrnn.verify.claims.training" not in out.stdout
    helped = subprocess.run([sys.executable, "-m", "linrnn", "verify", "train", "--help"], capture_output=True,
                            text=True, check=True)
    for flag in ("--param", "--loss", "--width", "--widths", "--seq-len", "--n-seq", "--teacher", "--rho", "--delay",
                 "--omega", "--inputs", "--phi", "--noise", "--sigma-w2", "--sigma-w2s", "--sigma-c2", "--sigma-f2",
                 "--lr-c", "--lr-f", "--lr-w", "--steps", "--lr", "--replicas", "--seed", "--backend", "--json",
                 "--save"):
        assert flag in helped.stdout
