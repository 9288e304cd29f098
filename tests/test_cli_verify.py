"""`linrnn verify ntk`: flags, JSON, saved draws, progress, and one-sentence errors with exit 2."""

from __future__ import annotations

import importlib.util
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from linrnn.cli import main
from linrnn.verify.progress import Progress

from helpers import draw_of
from linrnn.verify.reference import autodiff_lag_ntk, check_saved_draw

SMALL = ["verify", "ntk", "--width", "64", "--lags", "3", "--replicas", "8", "--backend", "numpy"]


def test_help_imports_nothing_heavy() -> None:
    code = (
        "import sys; from linrnn.cli import build_parser; p = build_parser(); "
        "p.parse_args(['verify', 'ntk', '--width', '8']); "
        "print(sorted(m for m in ('sympy', 'linrnn.verify.ntk', 'linrnn.verify.montecarlo', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    helped = subprocess.run([sys.executable, "-m", "linrnn", "verify", "ntk", "--help"], capture_output=True,
                            text=True, check=True)
    for flag in ("--param", "--width", "--widths", "--lags", "--n-in", "--n-out", "--sigma-w2", "--sigma-c2",
                 "--sigma-f2", "--lr-c", "--lr-f", "--lr-w", "--replicas", "--seed", "--backend", "--dtype",
                 "--max-memory", "--json", "--save", "--pilot", "--max-replicas", "--budget-seconds",
                 "inconclusive", "exit status"):
        assert flag in helped.stdout


def test_json_is_the_only_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(SMALL + ["--json", "--n-out", "2"])
    out, err = capsys.readouterr()
    data = json.loads(out)  # the whole of stdout is one JSON object
    assert data["verdict"] in ("pass", "fail", "inconclusive", "error")
    assert status == {"pass": 0, "fail": 1, "error": 1, "inconclusive": 3}[data["verdict"]] == data["exit_status"]
    assert all(c["verdict"] in ("rejected", "not_rejected", "error") for c in data["controls"].values())
    assert np.asarray(data["z"]).shape == (3, 2, 1, 3, 2, 1)
    assert data["dtype"] == "float64" and data["config"]["n_out"] == 2


def test_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    main(SMALL)
    out, _ = capsys.readouterr()
    assert "lag NTK diagonal" in out and "verdict:" in out and "float64" in out


def test_save_matches_independent_autodiff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "draw.npz"
    main(["verify", "ntk", "--param", "standard", "--width", "24", "--lags", "4", "--n-in", "2", "--n-out", "2",
          "--replicas", "4", "--lr-w", "0.5", "--sigma-w2", "0.9", "--backend", "numpy", "--save", str(path)])
    capsys.readouterr()
    with np.load(path) as z:
        saved = {k: z[k] for k in z.files}
    for key in ("W", "F", "C", "ntk", "sigma_w2", "sigma_f2", "sigma_c2", "lr_c", "lr_f", "lr_w", "param"):
        assert key in saved
    assert saved["W"].shape == (24, 24) and saved["ntk"].shape == (4, 2, 2, 4, 2, 2)
    assert str(saved["param"]) == "standard"
    assert check_saved_draw(str(path)) <= 1e-12
    # control: the reference with a different eta_W does not match
    wrong = autodiff_lag_ntk(draw_of(saved["W"], saved["F"], saved["C"], param="standard", sigma_w2=0.9, lr=(1, 1, 1)), 4)
    assert np.max(np.abs(saved["ntk"] - wrong)) > 1e-3 * np.max(np.abs(saved["ntk"]))


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_for_long_runs() -> None:
    stream = _Terminal()
    with Progress(10, "work", stream=stream, delay=0.05, rate=100.0) as bar:
        bar.advance(1)
        time.sleep(0.08)
        bar.advance(5, "half")
    out = stream.getvalue()
    assert "work [" in out and "\r" in out and "half" in out and out.endswith("\n")
    assert "60.0%" in out.split("\r")[-1]  # the final state, closed with a newline
    quiet = _Terminal()
    with Progress(10, "work", stream=quiet, delay=10.0) as bar:
        bar.advance(10)
    assert quiet.getvalue() == ""


def test_progress_off_a_terminal_is_one_plain_line() -> None:
    stream = io.StringIO()
    with Progress(10, "work", stream=stream, delay=0.05) as bar:
        bar.advance(1)
        time.sleep(0.08)
        bar.advance(5, "half")
    out = stream.getvalue()
    assert "\r" not in out and out.startswith("work: done in ") and out.endswith(" s\n") and out.count("\n") == 1
    quiet = io.StringIO()
    with Progress(10, "work", stream=quiet, delay=10.0) as bar:
        bar.advance(10)
    assert quiet.getvalue() == ""
    off = _Terminal()
    with Progress(10, "work", stream=off, delay=0.0, enabled=False) as bar:
        bar.advance(10)
    assert off.getvalue() == ""


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--width", "0"], "width"),
        (["--replicas", "1"], "replicas"),
        (["--widths", "64"], "two different widths"),
        (["--widths", "64,0"], "width"),
        (["--lags", "0"], "lags"),
        (["--n-in", "0"], "--n-in"),  # the model flags are checked while parsing, by the spec's rules
        (["--sigma-w2", "-1"], "--sigma-w2"),
        (["--lr-c", "0", "--lr-f", "0", "--lr-w", "0"], "lr_c"),
        (["--max-memory", "1MB", "--width", "1024"], "beyond the budget"),
        (["--max-memory", "plenty"], "memory size"),
        (["--save", "out.txt"], ".npz"),
        (["--backend", "cupy"], "cupy"),
        (["--alpha", "0"], "alpha"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(extra: list[str], words: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    args = ["verify", "ntk", "--lags", "3", "--replicas", "4", "--backend", "numpy", "--width", "32"] + extra
    if "--widths" in extra:
        args.remove("--width")
        args.remove("32")
    if extra[0] == "--backend" and importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here; the missing-GPU error cannot be provoked")
    try:
        status = main(args)
    except SystemExit as exc:  # refused by the parser (argparse exits with its status)
        status = exc.code
    out, err = capsys.readouterr()
    assert status == 2, (out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("linrnn: error:") and words in lines[0], err
    assert out == ""


def test_argparse_errors_exit_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "linrnn", "verify", "ntk", "--width", "abc"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") <= 3


def test_standard_param_is_decided_by_the_design(capsys: pytest.CaptureFixture[str]) -> None:
    """The run that used to end FAIL for lack of power: the design sizes it, and it passes."""
    status = main(["verify", "ntk", "--param", "standard", "--width", "512", "--lags", "8", "--replicas", "64",
                   "--backend", "numpy", "--no-progress"])
    out, _ = capsys.readouterr()
    assert status == 0, out
    assert "verdict: PASS" in out and "group-sequential" in out


def test_small_max_replicas_is_inconclusive_with_the_size(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["verify", "ntk", "--width", "256", "--lags", "6", "--n-in", "2", "--n-out", "2",
                   "--replicas", "16", "--max-replicas", "16", "--backend", "numpy", "--no-progress"])
    out, _ = capsys.readouterr()
    assert status == 3, out
    last = out.strip().splitlines()[-1]
    assert last.startswith("verdict: INCONCLUSIVE (control") and "lacks power; about" in last
    assert "replicas per width would decide it" in last


@pytest.mark.parametrize("extra, words", [
    (["--sigma-w2", "1.5", "--lags", "160"], "float32 overflowed at lag"),
    (["--sigma-w2", "0.5", "--lags", "140"], "float32 underflowed"),
])
def test_float32_overflow_and_underflow_are_errors(extra: list[str], words: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["verify", "ntk", "--dtype", "float32", "--width", "64", "--replicas", "8", "--pilot", "0",
                   "--backend", "numpy", "--no-progress", *extra])
    out, _ = capsys.readouterr()
    assert status == 1, out
    last = out.strip().splitlines()[-1]
    assert last.startswith("verdict: ERROR (") and words in last and "--dtype float64" in last
    assert "  pass" not in out  # no check passes on non-finite or underflowed statistics
    status = main(["verify", "ntk", "--dtype", "float32", "--width", "64", "--replicas", "8", "--pilot", "0",
                   "--backend", "numpy", "--no-progress", "--json", *extra])
    data = json.loads(capsys.readouterr()[0])
    assert data["verdict"] == "error" and words in data["error"] and data["exit_status"] == 1
