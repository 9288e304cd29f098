"""``linrnn derive kernel``: a family's derived wide-limit kernels on the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest

import linrnn
from linrnn.cli import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    out = capsys.readouterr()
    return status, out.out, out.err


def test_kernel_json_is_the_family_objects_kernel(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(["derive", "kernel", "--family", "gaussian", "--sigma-w2", "0.9", "--lr-w", "0.5",
                           "--lags", "6", "--json"], capsys)
    assert status == 0
    obj = json.loads(out)
    assert {"family", "model", "lags", "layout", "ntk", "nngp"} <= set(obj)
    assert obj["family"] == "gaussian" and obj["lags"] == 6 and obj["layout"] == "(lag, lag)"
    assert obj["model"]["sigma_w2"] == 0.9 and obj["model"]["lr_w"] == 0.5
    k = linrnn.family("gaussian", sigma_w2=0.9, lr_w=0.5).kernel(6)
    for name in ("ntk", "nngp"):
        arr = np.array(obj[name])
        assert arr.shape == (6, 6) and np.array_equal(arr, k[name].reshape(6, 6))


def test_kernel_with_channels_keeps_the_full_layout(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(["derive", "kernel", "--n-in", "2", "--n-out", "3", "--lags", "4", "--json"], capsys)
    obj = json.loads(out)
    assert status == 0 and obj["layout"] == "(lag, output, input, lag, output, input)"
    assert np.array(obj["ntk"]).shape == (4, 3, 2, 4, 3, 2)


def test_kernel_table_and_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _run(["derive", "kernel", "--lags", "3", "--sigma-w2", "0.5"], capsys)
    assert status == 0 and "Theta_inf(j,j)" in out and len(out.splitlines()) == 3 + 3 + 1 + 6  # head, lags, off-diagonal, consequences
    for argv in (["--family", "lstm"], ["--lags", "0"], ["--lags", "5000"], ["--sigma-w2", "-1"]):
        with pytest.raises(SystemExit) as info:
            main(["derive", "kernel", *argv])
        assert info.value.code == 2
        assert len([line for line in capsys.readouterr().err.splitlines() if line.startswith("linrnn: error")]) == 1
