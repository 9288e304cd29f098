"""The benchmark harness (benchmarks/run.py, harness.py): discovery, the case record, the README table.

Nothing here times anything (tests never assert wall-clock times); the benchmarks run with
``python benchmarks/run.py``.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_test_{name}", BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_bench_module_exposes_cases() -> None:
    modules = sorted(BENCH.glob("bench_*.py"))
    assert {p.stem for p in modules} >= {"bench_ntk", "bench_ntk_torch", "bench_ntk_jax", "bench_train", "bench_train_torch"}
    for path in modules:
        tree = ast.parse(path.read_text())
        fns = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert "cases" in fns, f"{path.name} has no cases(quick)"
        assert [a.arg for a in fns["cases"].args.args] in (["quick"], ["quick", "backend"])


def test_case_ratio_goal_and_target() -> None:
    h = _load("harness")
    c = h.case("x", subject="a", baseline="b", seconds={"subject": 0.1, "baseline": 5.0}, target=50.0, command="cmd")
    assert c["ratio"] == pytest.approx(50.0) and c["met"] is True and c["status"] == "ok"
    c = h.case("y", subject="a", baseline="b", seconds={"subject": 0.13, "baseline": 0.1}, ratio=1.3, goal="<=",
               target=1.2, command="cmd")
    assert c["met"] is False  # a ratio to a floor above its target
    assert h.case("z", subject="a", baseline="b", seconds={"subject": 1.0, "baseline": 2.0}, target=None,
                  command="c")["met"] is None
    s = h.skipped("w", "JAX is not installed", subject="a", baseline="b", target=50.0, command="c")
    assert s["status"] == "skipped" and s["ratio"] is None and s["met"] is None
    for rec in (c, s):
        assert {"name", "ratio", "target", "baseline", "subject", "seconds", "command", "detail"} <= set(rec)
    info = h.library_versions()
    assert info["numpy"] and "linrnn-bias" in info


def test_readme_table_between_markers(tmp_path: Path) -> None:
    run = _load("run")
    h = _load("harness")
    result = {
        "created": "2026-01-01T00:00:00+00:00", "machine": {"machine": "x86_64", "cpu_count": 2},
        "libraries": {"numpy": "2.0"}, "load_average_start": 1.5, "load_average_end": 2.5,
        "cases": [
            h.case("fast", subject="new", baseline="old", seconds={"subject": 0.01, "baseline": 1.0}, target=50.0,
                   command="python benchmarks/run.py --only ntk"),
            h.skipped("peer", "not installed", subject="new", baseline="peer", target=300.0, command="c"),
        ],
    }
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- bench:start -->\nold table\n<!-- bench:end -->\nrest\n")
    assert run.write_readme(result, readme)
    text = readme.read_text()
    assert "old table" not in text and text.startswith("intro\n") and text.endswith("rest\n")
    assert "| fast | new | old | 10 ms | 1 s | 100x | >= 50 | yes |  | `python benchmarks/run.py --only ntk` |" in text
    assert "skipped: not installed" in text and "load average 1.50" in text
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    assert not run.write_readme(result, plain)


def test_committed_results_and_readme_agree() -> None:
    """The README's table is the one generated from the committed results file."""
    run = _load("run")
    results = BENCH / "results" / "bench.json"
    data = json.loads(results.read_text())
    assert data["schema"] == run.SCHEMA and data["cases"]
    readme = (BENCH.parent / "README.md").read_text()
    inside = readme.split(run.START, 1)[1].split(run.END, 1)[0]
    assert inside.strip() == run.table(data).strip()


def test_unknown_module_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    run = _load("run")
    assert run.main(["--only", "nosuch"]) == 2
    assert "unknown benchmark module" in capsys.readouterr().err


def test_a_missing_device_backend_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here")
    run = _load("run")
    out = tmp_path / "bench-cupy.json"
    assert run.main(["--backend", "cupy", "--quick", "-o", str(out)]) == 2
    assert "cupy backend is not available" in capsys.readouterr().err
    assert not out.exists()


def test_modules_without_a_backend_are_skipped_on_a_device(tmp_path: Path) -> None:
    """run_module on a device backend: a module whose cases take no backend gives one skipped case, not a run."""
    run = _load("run")
    mod = tmp_path / "bench_cpuonly.py"
    mod.write_text("def cases(quick):\n    raise AssertionError('must not run on a device backend')\n")
    (c,) = run.run_module("cpuonly", mod, True, "cupy")
    assert c["status"] == "skipped" and "CPU (NumPy) path only" in c["reason"]
    dev = tmp_path / "bench_dev.py"
    dev.write_text("def cases(quick, backend='numpy'):\n    return [{'name': 'x_' + backend, 'subject': 's', "
                   "'baseline': 'b', 'seconds': {'subject': 1.0, 'baseline': 2.0}, 'ratio': 2.0, 'target': None, "
                   "'command': 'c'}]\n")
    (d,) = run.run_module("dev", dev, True, "cupy")
    assert d["name"] == "x_cupy" and d["status"] == "ok"
