"""Bad input and faults (issue 10): one sentence and exit 2 before any work, nothing of the user's lost.

Every case of the issue is here as an explicit test: ``--force`` on a directory that
is not a report, the lock of a report directory, unwritable and missing output paths,
``-o ""`` and ``-o .``, a full disk (a patched write raising ENOSPC: exit 1 with the
path, nothing half-written), memory budgets of every command, configuration files
that are binary, folders or of the wrong type, LaTeX file names with ``%`` and the
PDF's temporary file, malformed figures in ``report render``. The property test over
generated command lines is in ``test_fault_properties.py``.
"""

from __future__ import annotations

import copy
import errno
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from linrnn.cli import main
from linrnn.core import files
from linrnn.core.errors import BusyError, DiskFullError, OutputError, UsageError
from linrnn.reports import output, schema
from linrnn.reports.render import render

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "report_results.json"


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("linrnn: error:") and "Traceback" not in err, err
    return lines[0]


def _tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else b"<dir>") for p in sorted(path.rglob("*"))}


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    status = main(argv)
    seconds = time.perf_counter() - t0
    return status, capsys.readouterr().err, seconds


# ------------------------------------------------------------------ --force and report directories


@pytest.fixture()
def user_dir(tmp_path: Path) -> Path:
    d = tmp_path / "thesis"
    (d / "chapters").mkdir(parents=True)
    (d / "notes.txt").write_text("my notes")
    (d / "chapters" / "one.tex").write_text("\\chapter{One}")
    return d


@pytest.mark.parametrize("argv", [["report"], ["report", "render", str(FIXTURE)]])
def test_force_never_deletes_a_directory_that_is_not_a_report(user_dir: Path, argv: list[str],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    before = _tree(user_dir)
    extra = ["-o", str(user_dir), "--force"]
    status, err, seconds = _run(argv + extra, capsys)
    assert status == 2
    line = _one_error_line(err)
    assert "not a linrnn report" in line and str(user_dir) in line
    assert _tree(user_dir) == before
    assert sorted(p.name for p in user_dir.parent.iterdir()) == ["thesis"]  # no lock or temporary left
    assert seconds < 5


def test_force_replaces_a_report_but_not_one_with_files_added(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rep"
    render(FIXTURE, out)
    assert output.classify(out) == ("report", [])
    assert main(["report", "render", str(FIXTURE), "-o", str(out)]) == 2
    assert "pass --force" in _one_error_line(capsys.readouterr().err)
    assert main(["report", "render", str(FIXTURE), "-o", str(out), "--force"]) == 0
    capsys.readouterr()
    (out / "my-analysis.py").write_text("print(1)")
    (out / "figures" / "annotated.pdf").write_bytes(b"%PDF")
    before = _tree(out)
    assert main(["report", "render", str(FIXTURE), "-o", str(out), "--force"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "figures/annotated.pdf" in line and "my-analysis.py" in line
    assert _tree(out) == before


def test_a_report_json_of_another_tool_is_not_a_report(tmp_path: Path) -> None:
    d = tmp_path / "other"
    d.mkdir()
    (d / "report.json").write_text(json.dumps({"tool": {"name": "someone-else"}}))
    assert output.classify(d)[0] == "foreign"
    with pytest.raises(UsageError, match="not a linrnn report"):
        output.check_target(d, force=True)


@pytest.mark.parametrize("target, words", [("", "empty path"), (".", "current folder"), ("..", "current folder")])
def test_output_may_not_be_empty_or_the_current_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str], target: str,
                                                       words: str) -> None:
    work = tmp_path / "empty"
    work.mkdir()
    monkeypatch.chdir(work)
    for argv in (["report", "-o", target], ["report", "render", str(FIXTURE), "-o", target]):
        status, err, seconds = _run(argv, capsys)
        assert status == 2 and words in _one_error_line(err) and seconds < 5
    assert list(work.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


# ------------------------------------------------------------------ the lock


def test_a_second_run_on_a_locked_directory_stops_at_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cc"
    with files.exclusive_lock(output.lock_path(out), "the report directory cc"):
        for argv in (["report", "-o", str(out), "--workers", "1"], ["report", "render", str(FIXTURE), "-o", str(out)]):
            status, err, seconds = _run(argv, capsys)
            line = _one_error_line(err)
            assert status == 2 and "another linrnn run" in line and f"process {os.getpid()}" in line
            assert seconds < 10
    assert not out.exists()
    assert not output.lock_path(out).exists()  # released and removed
    render(FIXTURE, out)  # free again


def test_lock_is_exclusive_and_reusable(tmp_path: Path) -> None:
    lock = tmp_path / ".x.lock"
    with files.exclusive_lock(lock, "x"):
        with pytest.raises(BusyError, match="another linrnn run"):
            with files.exclusive_lock(lock, "x"):
                pass  # pragma: no cover
    with files.exclusive_lock(lock, "x"):
        assert lock.exists()
    assert not lock.exists()


# ------------------------------------------------------------------ unwritable outputs


UNWRITABLE = ["/proc/linrnn-x", "/nonexistent-linrnn/x"]


@pytest.mark.parametrize("base", UNWRITABLE)
@pytest.mark.parametrize("argv, suffix", [
    (["derive", "latex", "-o"], ".tex"),
    (["verify", "ntk", "--width", "16", "--lags", "2", "--replicas", "2", "--save"], ".npz"),
    (["verify", "train", "--width", "8", "--steps", "2", "--save"], ".npz"),
    (["report", "-o"], ""),
    (["report", "render", str(FIXTURE), "-o"], ""),
])
def test_unwritable_output_is_exit_2_naming_the_path_before_any_work(
        base: str, argv: list[str], suffix: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = base + suffix
    status, err, seconds = _run(argv + [path], capsys)
    assert status == 2, err
    assert path in _one_error_line(err)
    assert seconds < 5  # refused before the derivation or the Monte Carlo


def test_read_only_folder_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        probe = ro / "probe"
        try:
            probe.write_text("x")
            probe.unlink()
            pytest.skip("this user can write into a read-only folder (root without capability limits)")
        except PermissionError:
            pass
        status, err, _ = _run(["derive", "latex", "-o", str(ro / "d.tex")], capsys)
        assert status == 2 and "permission denied" in _one_error_line(err)
    finally:
        ro.chmod(0o755)


# ------------------------------------------------------------------ a full disk


def _enospc(*args: Any, **kwargs: Any) -> Any:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_write_error_classifies_full_disk_and_unwritable() -> None:
    full = files.write_error(OSError(errno.ENOSPC, "No space left on device"), "/data/r.json")
    assert isinstance(full, DiskFullError) and "/data/r.json" in str(full) and "no claim failed" in str(full)
    denied = files.write_error(OSError(errno.EACCES, "Permission denied"), "/data/r.json")
    assert isinstance(denied, OutputError) and "/data/r.json" in str(denied)


def test_full_disk_while_writing_is_exit_1_with_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rep"
    render(FIXTURE, out)
    before = _tree(out)
    real_write = Path.write_text

    def full(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self.name == "report.md":
            _enospc()
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    status, err, _ = _run(["report", "render", str(FIXTURE), "-o", str(out), "--force"], capsys)
    line = _one_error_line(err)
    assert status == 1 and str(out) in line and "disk filled" in line and "no claim failed" in line
    assert _tree(out) == before  # the old report is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no temporary directory or lock left


def test_full_disk_leaves_no_half_written_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "x.txt"
    target.write_text("old")

    real_fdopen = os.fdopen

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        fh = real_fdopen(fd, *args, **kwargs)
        fh.write = _enospc  # type: ignore[method-assign]
        return fh

    monkeypatch.setattr(os, "fdopen", fdopen)
    with pytest.raises(DiskFullError, match=str(target)):
        files.write_text_atomic(target, "new text")
    monkeypatch.undo()
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]


def test_full_disk_while_copying_the_pdf_leaves_no_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from linrnn.derive import latex

    if latex.find_engine() is None:
        pytest.skip("no LaTeX engine installed")
    real = files.atomic_file

    def atomic(path: Any, mode: str = "w") -> Any:
        if str(path).endswith(".pdf"):
            def fail(*a: Any, **k: Any) -> Any:
                raise files.write_error(OSError(errno.ENOSPC, "No space left on device"), path)
            cm = real(path, mode)

            class Wrapped:
                def __enter__(self) -> Any:
                    fh = cm.__enter__()
                    fh.write = fail
                    return fh

                def __exit__(self, *exc: Any) -> Any:
                    return cm.__exit__(*exc)
            return Wrapped()
        return real(path, mode)

    monkeypatch.setattr(latex, "atomic_file", atomic)
    status, err, _ = _run(["derive", "latex", "-o", str(tmp_path / "d.tex"), "--pdf"], capsys)
    assert status == 1 and "d.pdf" in _one_error_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.tex"]  # the .tex is complete; no .pdf.tmp


@pytest.mark.latex
def test_percent_in_the_file_name_compiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from linrnn.derive.latex import find_engine

    if find_engine() is None:
        pytest.skip("no LaTeX engine installed")
    target = tmp_path / "my 100% derivation#1.tex"
    assert main(["derive", "latex", "-o", str(target), "--pdf"]) == 0, capsys.readouterr().err
    assert target.exists() and target.with_suffix(".pdf").read_bytes().startswith(b"%PDF")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, target.with_suffix(".pdf").name])


# ------------------------------------------------------------------ memory budgets


@pytest.mark.parametrize("argv, flag", [
    (["verify", "ntk", "--lags", "100000"], "--max-memory"),
    (["verify", "ntk", "--lags", "1000000000"], "--max-memory"),
    (["verify", "ntk", "--width", "1000000"], "--max-memory"),
    (["verify", "train", "--width", "100000"], "--max-memory"),
    (["verify", "train", "--steps", "1000000000000"], "--max-memory"),
    (["verify", "train", "--n-seq", "1000000000000"], "--max-memory"),
    (["verify", "train", "--widths", "64,100000"], "--max-memory"),
    (["verify", "train", "--sigma-w2s", "0.5,0.9", "--width", "100000"], "--max-memory"),
    (["verify", "train", "--max-memory", "1MB"], "--max-memory"),
])
def test_sizes_beyond_the_memory_budget_are_refused_at_once(argv: list[str], flag: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    status, err, seconds = _run(argv, capsys)
    line = _one_error_line(err)
    assert status == 2 and "beyond the budget" in line and flag in line
    assert seconds < 3


@pytest.mark.parametrize("toml, words", [
    # the report's budget is checked before each claim's own checks (which may evaluate a theory at its sizes)
    ("[ntk]\nlags = 1000000000\n", "--max-memory"),
    ("[ntk]\nmax_memory = \"1KB\"\n", "[ntk] max_memory"),
    ("[min_norm]\nwidths = [100000, 200000]\n", "--max-memory"),
    ("[dynamics_equivalence]\nsteps = 1000000000000\n", "--max-memory"),
    ("[short_memory]\nn_test = 1000000000000\n", "--max-memory"),
])
def test_report_checks_every_experiment_against_its_memory_budget(tmp_path: Path, toml: str, words: str,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    status, err, seconds = _run(["report", "--config", str(cfg), "-o", str(tmp_path / "r")], capsys)
    line = _one_error_line(err)
    assert status == 2 and "beyond the budget" in line and words in line, line
    assert "verify" not in line  # names report's own settings, not another command's
    assert seconds < 5 and sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


def test_report_max_memory_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, err, _ = _run(["report", "--max-memory", "1MB", "-o", str(tmp_path / "r")], capsys)
    assert status == 2 and "--max-memory" in _one_error_line(err)
    status, err, _ = _run(["report", "--max-memory", "plenty", "-o", str(tmp_path / "r")], capsys)
    assert status == 2 and "memory size" in _one_error_line(err)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ configuration files


@pytest.mark.parametrize("content, words", [
    (b"\x00\xff\xfe binary", "not UTF-8 text"),
    (b"[ntk\nlags = 3", "not valid TOML"),
    (b'[min_norm]\nwidths = "abc"\n', "min_norm.widths must be a list of integers"),
    (b"[ntk]\nlags = 2.5\n", "ntk.lags must be an integer"),
    (b'[model]\nsigma_w2 = "big"\n', "model.sigma_w2"),
    (b"[ntk]\nmax_memory = \"lots\"\n", "ntk.max_memory"),
    (b"[nonsense]\nx = 1\n", "unknown section"),
])
def test_configuration_is_validated_before_any_experiment(tmp_path: Path, content: bytes, words: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_bytes(content)
    status, err, seconds = _run(["report", "--config", str(cfg), "-o", str(tmp_path / "r")], capsys)
    assert status == 2 and words in _one_error_line(err) and seconds < 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


def test_configuration_that_is_a_folder_or_missing_is_a_read_error(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for path, words in ((tmp_path, "is a folder, not a file"), (tmp_path / "none.toml", "does not exist")):
        status, err, _ = _run(["report", "--config", str(path), "-o", str(tmp_path / "r")], capsys)
        line = _one_error_line(err)
        assert status == 2 and words in line and "write" not in line


# ------------------------------------------------------------------ report render on malformed figures


def _broken(tmp_path: Path, edit: Any) -> Path:
    results = copy.deepcopy(json.loads(FIXTURE.read_text()))
    edit(results)
    p = tmp_path / "broken.json"
    p.write_text(json.dumps(results))
    return p


@pytest.mark.parametrize("edit, words", [
    (lambda r: r["claims"][0]["figures"]["per_lag"].pop("lower"), "'lower' is a required property"),
    (lambda r: r["claims"][0]["figures"]["per_lag"].__setitem__(
        "upper", r["claims"][0]["figures"]["per_lag"]["upper"][:-3]), "must have one length"),
    (lambda r: r["claims"][0]["figures"]["heatmap"]["panels"][0]["matrix"][2].pop(), "must have one length"),
    (lambda r: r["claims"][2]["figures"]["width_rate"].__setitem__("slope", "steep"), "not of type 'number'"),
    (lambda r: r["claims"][2]["figures"]["width_rate"].__setitem__("slope_ci", [1.0]), "slope_ci"),
    (lambda r: r["derivation"]["figures"].__setitem__("extra", {"kind": "lines", "series": [{"x": [1]}]}),
     "'y' is a required property"),
])
def test_render_names_the_malformed_figure(tmp_path: Path, edit: Any, words: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = _broken(tmp_path, edit)
    status, err, _ = _run(["report", "render", str(bad), "-o", str(tmp_path / "out")], capsys)
    line = _one_error_line(err)
    assert status == 2 and words in line and "figure" in line
    assert not (tmp_path / "out").exists()


def test_every_figure_of_the_fixture_passes_its_schema() -> None:
    results = json.loads(FIXTURE.read_text())
    for owner in [results["derivation"], *results["claims"]]:
        for name, fig in owner["figures"].items():
            schema.check_figure(fig, name)
    assert set(schema.figure_validators()) == {"lag_weights", "heatmap", "per_lag", "width_rate", "lines", "panels",
                                                  "bars"}


def test_figure_schema_covers_every_drawable_kind() -> None:
    from linrnn.reports.figures import DRAWERS

    assert set(schema.figure_validators()) == set(DRAWERS)


# ------------------------------------------------------------------ messages that named the wrong thing


def test_memory_sentence_names_the_setting_of_the_command_that_ran(capsys: pytest.CaptureFixture[str]) -> None:
    from linrnn.verify.montecarlo import chunk_size

    with pytest.raises(UsageError, match=r"raise \[ntk\] max_memory"):
        chunk_size(10**9, 10**6, 4, "numpy", n=64, flag="[ntk] max_memory")


def test_report_tmp_and_lock_names_do_not_escape_the_parent(tmp_path: Path) -> None:
    out = tmp_path / "r"
    render(FIXTURE, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]
    shutil.rmtree(out)


# ------------------------------------------------------------------ the derivation cache's lock


_CACHE_CHILD = """
import os, sys, time
from pathlib import Path
os.environ["LINRNN_CACHE_DIR"] = sys.argv[1]
from linrnn.derive.cache import data_cached

def compute():
    with open(Path(sys.argv[1]) / "computed.log", "a") as fh:
        fh.write("x")
    time.sleep(1.0)
    return {"value": 42}

print(data_cached("lock-test", compute)["value"])
"""


def test_two_processes_missing_one_cache_entry_compute_it_once(tmp_path: Path) -> None:
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, "-c", _CACHE_CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outs == ["42", "42"] and all(p.returncode == 0 for p in procs)
    assert (tmp_path / "computed.log").read_text() == "x"  # the second waited and reused the first's entry
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith((".lock", ".tmp"))]


def test_panels_figure_schema_checks_its_panels() -> None:
    from linrnn.families.gaussian.corrections import collapse_figure

    fig = collapse_figure("ntk", widths=(16, 64), lags=5, ntk_lags=4)
    schema.check_figure(fig, "finite_width_collapse")
    bad = json.loads(json.dumps(fig))
    bad["panels"][0]["series"][0]["y"] = bad["panels"][0]["series"][0]["y"][:-1]
    with pytest.raises(schema.SchemaError):
        schema.check_figure(bad, "finite_width_collapse")
