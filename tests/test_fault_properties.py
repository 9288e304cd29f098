"""Property test over the command line (issue 10): any bad value on any subcommand is refused at once.

Hypothesis draws a subcommand, a small valid base command line (so that a value
that slipped through validation would still finish quickly and show as a failure,
not a hang), and one bad value for one of its options: out of range, of the wrong
type, huge (beyond any memory budget, or beyond 64 bits), malformed, or an output path
that cannot be written; for the commands that read files, a configuration or results
file that is binary, a folder, a FIFO (which would block a reader), a device
(``/dev/zero`` never ends, ``/dev/null``), not TOML/JSON, of the wrong types, with
huge integers in its fields, or malformed. Each example
runs in an empty working directory and must end with

* exit status 2,
* exactly one line on stderr, starting ``linrnn: error:``, with no traceback,
* within a few seconds (checked before any derivation or Monte Carlo), and
* no file created, neither in the working directory nor beside the output.

Commands run in-process through :func:`linrnn.cli.main` (argparse's own errors are
its ``SystemExit(2)``), so an exception that escapes is a failure with its traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linrnn.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "report_results.json"

#: Seconds a refusal may take in-process (the checks come before any work; the CI machine is slow and shared).
LIMIT_S = 5.0

not_numbers = st.sampled_from(["abc", "", "1.5.2", "1e", "--", "0x1g", "NaNa", "[1]", "one"])
non_positive_ints = st.integers(max_value=0).map(str)
huge_ints = st.integers(min_value=10**9, max_value=10**18).map(str)
#: beyond 64 bits: never to reach NumPy or a range() of work
giant_ints = st.integers(min_value=2**63, max_value=10**40).map(str)
non_positive_floats = st.one_of(st.floats(max_value=0.0, allow_nan=False).map(repr),
                                st.sampled_from(["nan", "-inf", "inf"]))
bad_probability = st.one_of(st.sampled_from(["0", "1", "1.5", "-0.1", "nan", "inf"]), not_numbers)
bad_memory = st.sampled_from(["0", "-1GB", "lots", "4XB", "GB", "0.1", "nan", "1B", "100B"])
bad_output_file = st.sampled_from(["/proc/linrnn-x", "/nonexistent-linrnn/x", ""])

MODEL_FLAGS = {
    "--sigma-w2": st.one_of(non_positive_floats, not_numbers),
    "--sigma-c2": st.one_of(non_positive_floats, not_numbers),
    "--sigma-f2": st.one_of(non_positive_floats, not_numbers),
    "--lr-w": st.one_of(st.sampled_from(["-1", "-1e-9", "nan", "inf"]), not_numbers),
    "--param": st.sampled_from(["both", "NTK", "", "mup"]),
}

#: subcommand -> (base arguments, {flag: strategy of bad values})
COMMANDS: dict[str, tuple[list[str], dict[str, st.SearchStrategy[str]]]] = {
    "derive weights": (["derive", "weights", "--lags", "4"], {
        **MODEL_FLAGS,
        "--n-in": st.one_of(non_positive_ints, not_numbers),
        "--lags": st.one_of(non_positive_ints, huge_ints, not_numbers),
        "--dps": st.one_of(non_positive_ints, huge_ints, not_numbers),
        "--eps": st.one_of(non_positive_floats, not_numbers),
    }),
    "derive latex": (["derive", "latex", "-o", "d.tex"], {
        **MODEL_FLAGS,
        "-o": st.one_of(bad_output_file.map(lambda p: p + ".tex" if p else p), st.sampled_from(["d.txt", "."])),
    }),
    "derive finite-width": (["derive", "finite-width", "--lags", "2", "--width", "4"], {
        **MODEL_FLAGS,
        "--n-in": st.one_of(non_positive_ints, not_numbers),
        "--lags": st.one_of(non_positive_ints, huge_ints, not_numbers),
        "--width": st.one_of(non_positive_ints, not_numbers),
    }),
    "verify ntk": (["verify", "ntk", "--width", "16", "--lags", "2", "--replicas", "2", "--pilot", "0",
                    "--no-progress"], {
        **MODEL_FLAGS,
        "--width": st.one_of(non_positive_ints, huge_ints, not_numbers),
        "--widths": st.sampled_from(["16", "0,16", "16,16", "a,b", "16,10000000000"]),
        "--lags": st.one_of(non_positive_ints, huge_ints, not_numbers),
        "--replicas": st.one_of(st.integers(max_value=1).map(str), not_numbers, giant_ints),
        "--alpha": bad_probability,
        "--pilot": st.one_of(st.sampled_from(["1", "-1"]), not_numbers),
        "--seed": st.one_of(st.integers(max_value=-1).map(str), not_numbers),
        "--max-memory": bad_memory,
        "--save": st.one_of(bad_output_file.map(lambda p: p + ".npz" if p else p), st.just("x.txt")),
        "--n-in": st.one_of(non_positive_ints, not_numbers),
        "--n-out": st.one_of(non_positive_ints, not_numbers),
        "--dtype": st.sampled_from(["float16", "int", ""]),
        "--mean": st.sampled_from(["median", "", "EXACT"]),
    }),
    "verify train": (["verify", "train", "--width", "8", "--steps", "2", "--seq-len", "4", "--n-seq", "4",
                      "--no-progress"], {
        **MODEL_FLAGS,
        "--width": st.one_of(non_positive_ints, huge_ints, not_numbers),
        "--widths": st.sampled_from(["8", "0,8", "8,8", "x", "8,1000000000"]),
        "--steps": st.one_of(non_positive_ints, huge_ints, not_numbers),
        "--n-seq": st.one_of(non_positive_ints, huge_ints, not_numbers),
        "--seq-len": st.one_of(non_positive_ints, huge_ints, not_numbers),
        "--lr": st.one_of(st.sampled_from(["-1", "0", "nan", "inf", "Auto"]), not_numbers),
        "--lr-factor": st.sampled_from(["0", "2", "3", "-1", "nan", "x"]),
        "--teacher": st.sampled_from(["bogus", "", "CO2"]),
        "--replicas": st.one_of(non_positive_ints, not_numbers, giant_ints),
        "--workers": st.one_of(non_positive_ints, huge_ints, giant_ints),
        "--seed": st.one_of(st.integers(max_value=-1).map(str), not_numbers),
        "--max-memory": bad_memory,
        "--save": st.one_of(bad_output_file.map(lambda p: p + ".npz" if p else p), st.just("x.txt")),
        "--sigma-w2s": st.sampled_from(["0.5", "0.5,-1", "a,b", "0.5,0.5"]),
    }),
    "report": (["report", "--workers", "1", "-q"], {
        "-o": st.one_of(bad_output_file, st.sampled_from([".", ".."])),
        "--config": st.sampled_from(["binary", "folder", "missing", "not_toml", "wrong_type", "huge_ntk",
                                     "huge_train", "unknown_key", "unknown_section", "bad_alpha", "fifo",
                                     "dev_zero", "dev_null", "giant_int", "huge_figure_lags", "nan_field",
                                     "bad_list_element", "huge_finite_width"]),
        "--max-memory": bad_memory,
        "--workers": st.one_of(non_positive_ints, not_numbers, huge_ints, giant_ints),
        "--seed": st.one_of(st.integers(max_value=-1).map(str), not_numbers),
        "--profile": st.sampled_from(["quik", "", "FULL"]),
        "--backend": st.sampled_from(["torch", "gpu", ""]),
    }),
    "report render": (["report", "render", str(FIXTURE), "-o", "out"], {
        "RESULTS": st.sampled_from(["binary", "folder", "missing", "not_json", "truncated_figure",
                                    "missing_figure_key", "wrong_schema_version", "fifo", "dev_zero",
                                    "dev_null"]),
        "-o": st.one_of(bad_output_file, st.sampled_from([".", ".."])),
    }),
    "calibrate": (["calibrate", "--seeds", "1", "-q"], {
        "--seeds": st.one_of(non_positive_ints, not_numbers, st.integers(min_value=10**8, max_value=10**18).map(str),
                             giant_ints),
        "--first-seed": st.one_of(st.integers(max_value=-1).map(str), not_numbers),
        "--claims": st.sampled_from(["bogus", "ntk_limit,bogus", ""]),
        "--config": st.sampled_from(["binary", "folder", "wrong_type", "huge_ntk", "fifo", "dev_zero",
                                     "giant_int", "huge_finite_width"]),
        "--workers": st.one_of(non_positive_ints, not_numbers, huge_ints, giant_ints),
        "--scheduler": st.sampled_from(["not-an-address", "tcp://127.0.0.1", "tcp://127.0.0.1:0",
                                        "tcp://127.0.0.1:65536", "http://h:1", ""]),
        "--scheduler-timeout": st.sampled_from(["0", "-1", "nan", "inf", "x", "1e9"]),
        "--max-memory": bad_memory,
        "-o": bad_output_file,
    }),
}

CONFIGS = {
    "not_toml": b"[ntk\nlags = ",
    "wrong_type": b'[min_norm]\nwidths = "abc"\n',
    "huge_ntk": b"[ntk]\nlags = 1000000000\n",
    "huge_train": b"[min_norm]\nwidths = [100000, 200000]\n",
    "unknown_key": b"[ntk]\nlagz = 3\n",
    "unknown_section": b"[ntkk]\nlags = 3\n",
    "bad_alpha": b"family_alpha = 2\n",
    "giant_int": b"[ntk]\nreplicas = 100000000000000000000000000000000000\n",
    "huge_figure_lags": b"[derivation]\nfigure_lags = 100000000000\n",
    "nan_field": b"[dynamics_equivalence]\nnoise = nan\n",
    "bad_list_element": b"[derivation]\nfigure_q = [0.9, -1.0]\n",
    "huge_finite_width": b"[finite_width]\nmin_replicas = 1000000000\nmax_replicas = 1000000000\n",
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Files of each bad kind, in a folder of their own (outside the working directory of the examples)."""
    d = tmp_path_factory.mktemp("bad-inputs")
    out = {"binary": d / "binary.toml", "folder": d / "folder", "missing": d / "missing.toml",
           "fifo": d / "fifo.toml", "dev_zero": Path("/dev/zero"), "dev_null": Path("/dev/null")}
    out["binary"].write_bytes(b"\x00\xff\xfe\x80 binary")
    out["folder"].mkdir()
    os.mkfifo(out["fifo"])  # a reader that opened it would block for ever: no writer ever comes
    for name, text in CONFIGS.items():
        out[name] = d / f"{name}.toml"
        out[name].write_bytes(text)
    results = json.loads(FIXTURE.read_text())
    out["not_json"] = d / "not.json"
    out["not_json"].write_text("{ this is not json")
    r = json.loads(json.dumps(results))
    r["claims"][0]["figures"]["per_lag"]["theory"] = r["claims"][0]["figures"]["per_lag"]["theory"][:2]
    out["truncated_figure"] = d / "truncated.json"
    out["truncated_figure"].write_text(json.dumps(r))
    r = json.loads(json.dumps(results))
    del r["claims"][2]["figures"]["width_rate"]["rel_error"]
    out["missing_figure_key"] = d / "missing_key.json"
    out["missing_figure_key"].write_text(json.dumps(r))
    r = json.loads(json.dumps(results))
    r["schema_version"] = 99
    out["wrong_schema_version"] = d / "v99.json"
    out["wrong_schema_version"].write_text(json.dumps(r))
    return {k: str(v) for k, v in out.items()}


def _listing(*folders: Path) -> list[str]:
    return sorted(str(p) for f in folders for p in f.rglob("*"))


@st.composite
def bad_command(draw: Any) -> tuple[str, list[str], str, str]:
    name = draw(st.sampled_from(sorted(COMMANDS)))
    base, flags = COMMANDS[name]
    flag = draw(st.sampled_from(sorted(flags)))
    return name, list(base), flag, draw(flags[flag])


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=bad_command())
def test_any_bad_value_is_one_sentence_exit_2_at_once_and_writes_nothing(
        case: tuple[str, list[str], str, str], inputs: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    name, argv, flag, value = case
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)
    if flag in ("--config", "RESULTS"):
        value = inputs[value]
    if flag == "RESULTS":
        argv[2] = value
    else:
        argv += [flag, value]
    before = _listing(tmp_path)
    err = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse's own error
            status = exc.code
    seconds = time.perf_counter() - t0
    text = err.getvalue()
    lines = [line for line in text.splitlines() if line.strip()]
    assert status == 2, (argv, text)
    assert len(lines) == 1 and "Traceback" not in text, (argv, text)
    assert lines[0].startswith("linrnn: error:"), (argv, text)
    assert seconds < LIMIT_S, (argv, seconds)
    assert _listing(tmp_path) == before, (argv, sorted(set(_listing(tmp_path)) - set(before)))
    assert not os.listdir(work), (argv, os.listdir(work))
