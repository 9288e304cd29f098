"""Issue 17, "hangs and unbounded reads" and "checked too late": every limit is checked before any work.

* A user's file (a configuration, a results file) that is not a regular file, or is
  larger than its stated limit, is refused before it is read: a FIFO never blocks,
  ``/dev/zero`` is never read to exhaustion (:func:`linrnn.core.files.read_user_bytes`).
* Worker counts beyond the cores this process may use are refused by every command
  (:func:`linrnn.core.machine.check_workers`).
* Every claim of the registry has a memory estimate that grows with its sizes, and
  ``calibrate`` applies the same budget as ``report``.
* ``calibrate --scheduler``: the address is checked before anything else, the wait for
  the scheduler is bounded (``--scheduler-timeout``), and nothing is written or printed
  before the connection is made.
* Every field of every table of the quick profile, set to an invalid value, is refused
  before the first experiment runs: exit 2, one sentence, within a second or two, and
  nothing left behind.

Commands run in-process through :func:`linrnn.cli.main` with the experiment runners
replaced by a function that fails the test, so a value that slipped through validation
shows as a failure at once (not a run of minutes); an alarm turns a blocked read into a
failure too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import shutil
import signal
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from linrnn import suite
from linrnn.cli import main
from linrnn.core import files
from linrnn.core.errors import UsageError
from linrnn.core.machine import available_cores

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "report_results.json"

#: Seconds a refusal may take in-process (checked before any work; the machine is shared and slow).
LIMIT_S = 3.0


class WorkStarted(AssertionError):
    """Raised by the stand-in experiment runners: validation let a value through to the work."""


@pytest.fixture()
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any experiment, calibration task or Dask cluster fails the test at once (and nothing runs for long)."""
    from linrnn import calibrate, parallel

    def refuse(*_a: Any, **_k: Any) -> None:
        raise WorkStarted("the work started: the value was not refused before the first experiment")

    monkeypatch.setattr(suite, "_run_experiments", refuse)
    monkeypatch.setattr(calibrate, "_run_tasks", refuse)
    monkeypatch.setattr(parallel, "dask_client", refuse)
    monkeypatch.setattr(parallel, "process_pool", refuse)


@contextlib.contextmanager
def _alarm(seconds: int) -> Iterator[None]:
    """Turn a blocked call (a FIFO opened for reading) into a test failure after ``seconds``."""

    def fire(*_a: Any) -> None:
        raise TimeoutError(f"the command blocked for {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _run(argv: list[str]) -> tuple[int, str, float]:
    """(exit status, stderr, seconds) of ``linrnn argv`` run in-process."""
    err = io.StringIO()
    t0 = time.perf_counter()
    with _alarm(20), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = main(argv)
        except SystemExit as exc:
            status = exc.code
    return int(status or 0), err.getvalue(), time.perf_counter() - t0


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _assert_refused(argv: list[str], work: Path, *, contains: str = "") -> str:
    before = _listing(work)
    status, text, seconds = _run(argv)
    lines = [line for line in text.splitlines() if line.strip()]
    assert status == 2, (argv, text)
    assert len(lines) == 1 and "Traceback" not in text and lines[0].startswith("linrnn: error:"), (argv, text)
    assert seconds < LIMIT_S, (argv, seconds)
    assert _listing(work) == before, (argv, sorted(set(_listing(work)) - set(before)))
    assert contains in lines[0], (contains, lines[0])
    return lines[0]


# ------------------------------------------------------------------ files that are not regular files


def _special(kind: str, where: Path, limit: int) -> str:
    """A path of ``kind``: fifo, /dev/zero, /dev/null, a folder, a socket, or a regular file over ``limit`` bytes."""
    if kind == "fifo":
        p = where / "c.fifo"
        os.mkfifo(p)
        return str(p)
    if kind == "socket":
        p = where / "c.sock"
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(p))
        s.close()
        return str(p)
    if kind == "folder":
        p = where / "c.d"
        p.mkdir()
        return str(p)
    if kind == "oversized":
        p = where / "big.file"
        with open(p, "wb") as fh:  # sparse: no disk used
            fh.truncate(limit + 1)
        return str(p)
    return {"dev_zero": "/dev/zero", "dev_null": "/dev/null"}[kind]


KINDS = ("fifo", "dev_zero", "dev_null", "folder", "socket", "oversized")
READERS = {
    "report --config": (lambda p, out: ["report", "-q", "--workers", "1", "-o", out, "--config", p],
                        files.MAX_CONFIG_BYTES),
    "calibrate --config": (lambda p, out: ["calibrate", "-q", "--seeds", "1", "--workers", "1", "-o", out,
                                           "--config", p], files.MAX_CONFIG_BYTES),
    "report render": (lambda p, out: ["report", "render", p, "-o", out], files.MAX_RESULTS_BYTES),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_user_file_that_is_not_a_regular_file_of_sane_size_is_refused_before_it_is_read(
        reader: str, kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_work: None) -> None:
    argv_of, limit = READERS[reader]
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    path = _special(kind, inputs, limit)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    line = _assert_refused(argv_of(path, "out"), tmp_path)
    assert path in line, line
    if kind == "oversized":
        from linrnn.core.validate import format_bytes

        assert format_bytes(limit) in line, line


def test_a_file_swapped_for_a_fifo_after_the_check_is_caught_after_opening(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check before opening and the open are two steps: fstat after the (non-blocking) open closes the gap."""
    fifo = tmp_path / "swapped.toml"
    os.mkfifo(fifo)
    real_stat = os.stat
    regular = real_stat(FIXTURE)

    def stat_then_swap(path: Any, *a: Any, **k: Any) -> os.stat_result:
        return regular if os.fspath(path) == str(fifo) else real_stat(path, *a, **k)

    monkeypatch.setattr(os, "stat", stat_then_swap)
    with _alarm(10), pytest.raises(UsageError, match="not a regular file"):
        files.read_user_bytes(fifo, "the configuration file", files.MAX_CONFIG_BYTES)


def test_a_regular_file_within_its_limit_is_read_whole(tmp_path: Path) -> None:
    p = tmp_path / "ok.toml"
    p.write_bytes(b"[ntk]\nlags = 3\n")
    assert files.read_user_bytes(p, "the configuration file", 64) == b"[ntk]\nlags = 3\n"
    with pytest.raises(UsageError, match="larger than"):
        files.read_user_bytes(p, "the configuration file", 4)
    with pytest.raises(UsageError, match="does not exist"):
        files.read_user_bytes(tmp_path / "nothere.toml", "the configuration file", 64)


# ------------------------------------------------------------------ workers


@pytest.mark.parametrize("argv", [
    ["calibrate", "-q", "--seeds", "1", "-o", "out", "--workers"],
    ["report", "-q", "-o", "out", "--workers"],
    ["verify", "train", "--width", "8", "--steps", "2", "--seq-len", "4", "--n-seq", "4", "--no-progress",
     "--workers"],
])
@pytest.mark.parametrize("workers", [1000, 10**30])
def test_more_workers_than_cores_are_refused_before_any_process_starts(
        argv: list[str], workers: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_work: None) -> None:
    monkeypatch.chdir(tmp_path)
    line = _assert_refused([*argv, str(workers)], tmp_path)
    assert str(available_cores()) in line and "cores" in line, line


# ------------------------------------------------------------------ memory estimates of every claim


#: Sizes that cost time but no memory: the NTK sweep streams its moments chunk by chunk
#: (:func:`linrnn.verify.montecarlo.estimate_width`), so its draw counts keep nothing per draw.
STREAMED = {("ntk", "replicas"), ("ntk", "pilot"), ("ntk", "max_replicas")}


def _scaled(value: Any, factor: int) -> Any:
    if isinstance(value, tuple):
        return (*value[:-1], value[-1] * factor)
    return value * factor


def test_every_claim_has_a_memory_estimate_that_grows_with_its_sizes() -> None:
    """A claim without an estimate, or whose estimate ignores one of its sizes, fails here.

    A size is an integer field (or a list of integers) that says how much is computed or
    kept: widths, lags, replicas, pilot draws, steps, sequences. Scaling it up by 1000
    (and the bounds that must stay above it) must raise the estimate.
    """
    from linrnn.verify.claims import REGISTRY

    cfg = suite.resolve_config("quick")
    #: integer fields that are not amounts: a position in the teacher, and verify train's replica count,
    #: which the claims' two-stage design replaces (pilot, min_replicas, max_replicas are sized instead)
    not_sizes = {"delay", "seeds"}
    missing, ignored = [], []
    for name, claim in REGISTRY.items():
        if claim.memory is None:
            missing.append(name)
            continue
        conf = cfg.sections[claim.section]
        base = claim.memory(conf, cfg.model)
        assert isinstance(base, int) and base > 0, (name, base)
        for f in dataclasses.fields(conf):
            v = getattr(conf, f.name)
            if f.name in not_sizes or (claim.section, f.name) in STREAMED or isinstance(v, bool) or not (
                    isinstance(v, int) or (isinstance(v, tuple) and v and all(isinstance(x, int) for x in v))):
                continue
            changes = {f.name: _scaled(v, 1000)}
            if f.name in ("replicas", "min_replicas", "pilot") and hasattr(conf, "max_replicas"):
                changes["max_replicas"] = max(conf.max_replicas, 1000 * (v if isinstance(v, int) else max(v)))
            if f.name == "seq_len" and hasattr(conf, "width"):  # co2: seq_len^2 <= width
                changes["width"] = max(conf.width, (1000 * v) ** 2)
            try:
                bigger = dataclasses.replace(conf, **changes)
            except UsageError:  # a bound of the configuration itself refuses the size
                continue
            if claim.memory(bigger, cfg.model) <= base:
                ignored.append(f"{name}: [{claim.section}] {f.name}")
    assert not missing, f"claims without a memory estimate: {missing}"
    assert not ignored, f"memory estimates that ignore a size: {ignored}"


def test_calibrate_applies_the_memory_budget_of_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       no_work: None) -> None:
    monkeypatch.chdir(tmp_path)
    _assert_refused(["calibrate", "-q", "--claims", "finite_width", "--seeds", "1", "--max-memory", "1KB",
                     "-o", "out"], tmp_path, contains="finite_width")
    cfg = tmp_path / "fw.toml"
    cfg.write_text("[finite_width]\nmin_replicas = 1000000000\nmax_replicas = 1000000000\n")
    for argv in (["calibrate", "-q", "--claims", "finite_width", "--seeds", "1", "--workers", "1"],
                 ["report", "-q", "--workers", "1"]):
        _assert_refused([*argv, "--max-memory", "1GB", "--config", str(cfg), "-o", "out"], tmp_path,
                        contains="memory")


# ------------------------------------------------------------------ the Dask scheduler


@pytest.mark.parametrize("address", ["not-an-address", "tcp://127.0.0.1", "tcp://127.0.0.1:0",
                                     "tcp://127.0.0.1:99999", "tcp://:8786", "http://127.0.0.1:8786",
                                     "tcp://127.0.0.1:port", ""])
def test_a_malformed_scheduler_address_is_refused_first(address: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch, no_work: None) -> None:
    monkeypatch.chdir(tmp_path)
    _assert_refused(["calibrate", "--seeds", "1", "-o", "out", "--scheduler", address], tmp_path,
                    contains="scheduler")


def test_an_unreachable_scheduler_is_refused_within_the_stated_wait_with_nothing_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    monkeypatch.chdir(tmp_path)
    before = _listing(tmp_path)
    status, text, seconds = _run(["calibrate", "--seeds", "1", "--claims", "nngp", "-o", "out",
                                  "--scheduler", "tcp://127.0.0.1:1", "--scheduler-timeout", "1"])
    lines = [line for line in text.splitlines() if line.strip()]
    assert status == 2, text
    assert len(lines) == 1 and lines[0].startswith("linrnn: error:"), text
    assert "tcp://127.0.0.1:1" in lines[0] and "1 s" in lines[0] and "--scheduler-timeout" in lines[0], lines[0]
    assert seconds < 15, seconds
    assert _listing(tmp_path) == before, sorted(set(_listing(tmp_path)) - set(before))


@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "inf", "x", "1e9"])
def test_a_bad_scheduler_timeout_is_refused(timeout: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            no_work: None) -> None:
    monkeypatch.chdir(tmp_path)
    _assert_refused(["calibrate", "--seeds", "1", "-o", "out", "--scheduler", "tcp://127.0.0.1:8786",
                     "--scheduler-timeout", timeout], tmp_path)


# ------------------------------------------------------------------ every field of every table


#: Values that are valid for a field although the generic list calls them invalid (with the reason).
VALID: dict[tuple[str, str], set[Any]] = {
    ("ntk", "pilot"): {0},  # no design: exactly `replicas` draws
    ("ntk", "budget_seconds"): {0.0},  # no time budget
    ("shifted", "pilot"): {0},  # the shifted family's check is the NTK sweep's (verify ntk): the same meanings
    ("shifted", "budget_seconds"): {0.0},
    ("families", "teacher_seeds"): {0},  # the teacher table's kernel columns only
    ("co2", "budget_seconds"): {0.0},
    ("derivation", "collapse_lags"): {0},  # 0 leaves the collapse figure out
    ("derivation", "collapse_ntk_lags"): {0},
    ("derivation", "collapse_widths"): {()},  # no collapse figure
    ("model", "lr_c"): {0.0},  # a frozen matrix (at least one multiplier stays positive)
    ("model", "lr_f"): {0.0},
    ("model", "lr_w"): {0.0},
    # no named control: these claims keep one of their own (the rate -1; the plain min-norm interpolant)
    ("dynamics_equivalence", "controls"): {()},
    ("min_norm", "controls"): {()},
}
#: Fields where a huge integer (10^11, within 64 bits) is not an error: counts that ask for a long run but keep
#: no memory per draw (the NTK sweep streams its moments; a design caps its main stage), verify train's replica
#: count (the claims do not read it), the spike teacher's delay (read only with teacher = "spike", which bounds
#: it by seq_len), and the collapse figure's widths (exact rational arithmetic: any width costs the same).
HUGE_OK = {*STREAMED, ("derivation", "collapse_widths"), ("shifted", "pilot"), ("shifted", "max_replicas"),
           *((s, k) for s in ("dynamics_equivalence", "min_norm", "short_memory", "diagonal_training")
             for k in ("seeds", "delay"))}
#: Float fields whose whole finite range (or some negative values) is meaningful.
ANY_SIGN = {"phi", "rho", "omega", "r", "shift"}
ZERO_OK = {"phi", "noise", "rho", "omega", "r"}


def _bad_values(section: str, name: str, value: Any) -> list[Any]:
    """Invalid values for the field ``section.name`` whose valid value is ``value``."""
    if isinstance(value, bool):
        return ["yes", 1]
    if isinstance(value, int):
        out: list[Any] = [-1, 0, 10**30, 2.5, "3"]
        if (section, name) not in HUGE_OK:
            out.append(10**11)
        if name == "delay":
            out.remove(0)
    elif isinstance(value, float):
        out = [math.nan, math.inf, -math.inf, "0.5"]
        if name not in ANY_SIGN:
            out += [-1.0]
        if name not in ZERO_OK:
            out += [0.0]
    elif isinstance(value, tuple):
        e = value[-1] if value else None
        if isinstance(e, int):
            out = [[*value[:-1], x] for x in (0, -1, 10**30)] + [[], [[1, 2]], ["a"]]
            if (section, name) not in HUGE_OK:
                out.append([*value[:-1], 10**11])
        elif isinstance(e, float):
            out = [[*value[:-1], x] for x in (0.0, -1.0, math.nan, math.inf)] + [[], ["a"]]
        else:
            out = [[*value[:-1], "bogus"], [], [1]]
    elif isinstance(value, str):
        out = ["bogus", "", 3 if name not in ("lr", "max_memory") else "3 apples"]
    else:
        out = []
    valid = VALID.get((section, name), set())
    return [v for v in out if not (isinstance(v, (int, float)) and not isinstance(v, bool) and v in valid)
            and not (isinstance(v, list) and v in [list(x) for x in valid if isinstance(x, tuple)])]


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return {math.inf: "inf", -math.inf: "-inf"}.get(v, "nan" if math.isnan(v) else repr(v))
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, str):
        return '"' + v + '"'
    return str(v)


def _quick_fields() -> list[tuple[str, str, Any]]:
    cfg = suite.resolve_config("quick")
    tables = {"model": cfg.model, **cfg.sections}
    return [(s, f.name, getattr(obj, f.name)) for s, obj in tables.items() for f in dataclasses.fields(obj)]


def test_every_field_of_every_table_is_validated_and_sized_before_the_first_experiment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_work: None) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    slipped, slow, messy = [], [], []
    for section, name, value in _quick_fields():
        for bad in _bad_values(section, name, value):
            cfg = tmp_path / "bad.toml"
            cfg.write_text(f"[{section}]\n{name} = {_toml_value(bad)}\n")
            case = f"[{section}] {name} = {_toml_value(bad)}"
            try:
                status, text, seconds = _run(["report", "-q", "--workers", "1", "-o", "out", "--config", str(cfg)])
            except WorkStarted:
                slipped.append(case)
                shutil.rmtree(work / "out", ignore_errors=True)
                continue
            except Exception as exc:  # noqa: BLE001 - an exception that escaped the command: a traceback
                messy.append(f"{case}: {type(exc).__name__}: {exc}"[:300])
                shutil.rmtree(work / "out", ignore_errors=True)
                continue
            lines = [line for line in text.splitlines() if line.strip()]
            if status != 2 or len(lines) != 1 or "Traceback" in text:
                messy.append(f"{case}: exit {status}: {text.strip()[-300:]}")
            elif seconds > LIMIT_S:
                slow.append(f"{case}: {seconds:.1f} s")
            assert not os.listdir(work), (case, os.listdir(work))
    assert not slipped, f"{len(slipped)} invalid values reached the first experiment: {slipped}"
    assert not messy, messy
    assert not slow, slow


def test_the_derivation_table_is_sized_against_the_memory_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 no_work: None) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "d.toml"
    cfg.write_text("[derivation]\nfigure_lags = 10000000\n")  # 7 series of 10^7 lags: valid, but beyond 100 MB
    _assert_refused(["report", "-q", "--workers", "1", "--max-memory", "100MB", "--config", str(cfg), "-o", "out"],
                    tmp_path, contains="derivation")


def test_a_value_refused_names_its_table_and_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 no_work: None) -> None:
    monkeypatch.chdir(tmp_path)
    for section, key, value in (("ntk", "lags", "0"), ("derivation", "figure_q", "[0.9, -1.0]"),
                                ("min_norm", "controls", '["bogus"]'), ("dynamics_equivalence", "rho", "nan"),
                                ("short_memory", "n_test", "0"), ("finite_width", "max_memory", '"lots"'),
                                ("min_norm", "delay", '12\nteacher = "spike"')):
        cfg = tmp_path / "c.toml"
        cfg.write_text(f"[{section}]\n{key} = {value}\n")
        line = _assert_refused(["report", "-q", "--workers", "1", "--config", str(cfg), "-o", "out"], tmp_path,
                               contains=key)
        assert f"{section}." in line or f"[{section}]" in line, line


def test_stat_helpers_agree_on_file_kinds() -> None:
    """The kinds the refusal names are those of the stat module (FIFO, character device, socket)."""
    assert files.file_kind(os.stat("/dev/zero").st_mode) == "a character device"
    assert files.file_kind(stat.S_IFIFO) == "a FIFO, a named pipe"


def test_the_names_the_configuration_checks_against_are_those_of_the_engines() -> None:
    """The stdlib-only lists in linrnn.verify.claims.training_config agree with the modules that define them."""
    from linrnn.derive import lag_formulas
    from linrnn.verify import teachers, train
    from linrnn.verify.claims import training_config as base

    assert base.LOSSES == train.LOSSES
    assert base.INPUTS == teachers.INPUTS
    assert base.TEACHERS == teachers.TEACHERS
    for param in ("ntk", "standard"):
        assert base.CONTROLS == tuple(lag_formulas(param).controls)


@pytest.mark.parametrize("flags", [["--seeds", str(10**12)], ["--seeds", "2", "--first-seed", str(2**63 - 1)],
                                   ["--seeds", str(10**40)]])
def test_calibrate_sizes_its_seeds_before_any_work(flags: list[str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, no_work: None) -> None:
    """The seeds are a size too: the summary holds one record per (claim, seed), and a seed is 64 bits."""
    monkeypatch.chdir(tmp_path)
    _assert_refused(["calibrate", "-q", "--claims", "nngp", "--workers", "1", "-o", "out", *flags], tmp_path)
