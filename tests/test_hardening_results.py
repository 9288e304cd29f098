"""Results files, caches, killed runs and messages (issue 17, area "results").

* ``report render`` survives any bytes: deep nesting, huge integers, non-finite
  literals, duplicate keys, invalid UTF-8, lone surrogates and a value of the wrong
  type wherever the schema wants a number are one sentence and exit 2 (a hypothesis
  property over the command line); figure data that the schema allows (huge, tiny,
  negative, null numbers; text that is not valid mathtext) draws without an error
  or a warning (a hypothesis property over every figure kind).
* A cache entry with the right key and a malformed payload is a miss, for every
  cache: the report's ``DIR/.cache`` and the derivation's disk cache.
* A run killed while writing a report (``kill -9``) leaves a temporary folder that
  the next run on the same output removes (only folders a linrnn run made: the name
  pattern and a marker file); SIGTERM cleans up as Ctrl-C does (exit 130); a full
  disk names the file whose write failed.
* Messages: the float64 underflow notes of ``derive weights`` say what is printed;
  ``verify ntk`` names float64 underflow; a missing configuration file is one
  grammatical sentence; a log axis with no positive data warns nothing; the
  calibration progress writes plain lines (no carriage returns) to a file.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from linrnn.cli import main
from test_faults import _one_error_line

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "report_results.json"
RESULTS = json.loads(FIXTURE.read_text(encoding="utf-8"))


def _run(argv: list[str]) -> tuple[int, str, str]:
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            status = main(argv)
        except SystemExit as exc:
            status = exc.code  # type: ignore[assignment]
    return int(status or 0), out.getvalue(), err.getvalue()


_one_sentence = _one_error_line  # one line, 'linrnn: error:', no traceback


# ------------------------------------------------------------------ hostile results files


def _paths(obj: Any, at: tuple = ()) -> list[tuple]:
    """Every path (tuple of keys/indices) in ``obj``, containers and leaves alike."""
    out = [at]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*at, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*at, i))
    return out


def _get(obj: Any, path: tuple) -> Any:
    for p in path:
        obj = obj[p]
    return obj


def _set(obj: Any, path: tuple, value: Any) -> None:
    _get(obj, path[:-1])[path[-1]] = value


ALL_PATHS = _paths(RESULTS)
NUMBER_PATHS = [p for p in ALL_PATHS if isinstance(_get(RESULTS, p), (int, float)) and not isinstance(_get(RESULTS, p), bool)
                and p[:1] != ("schema_version",)]
STRING_PATHS = [p for p in ALL_PATHS if isinstance(_get(RESULTS, p), str)]
OBJECT_PATHS = [p for p in ALL_PATHS if isinstance(_get(RESULTS, p), dict) and _get(RESULTS, p)]
#: Fields that the schema types as numbers (or null): the statistic's and threshold's value, alpha, figure data.
TYPED_NUMBER_PATHS = [p for p in NUMBER_PATHS if p[-1] in ("value", "alpha") or "figures" in p]
MARK = "\u2063MARK\u2063"  # replaced in the JSON text by a literal that json.dumps cannot write


def _text_with(path: tuple, literal: str) -> str:
    r = json.loads(json.dumps(RESULTS))
    _set(r, path, MARK)
    return json.dumps(r).replace(json.dumps(MARK), literal, 1)


@st.composite
def hostile_results(draw: Any) -> tuple[Any, ...]:
    """A recipe (kind, where, what) for a results file that the schema does not allow (built by :func:`_build`)."""
    kind = draw(st.sampled_from(["deep", "deep_value", "huge_int", "non_finite", "duplicate_key", "wrong_type",
                                 "invalid_utf8", "lone_surrogate"]))
    if kind == "deep":
        return kind, draw(st.sampled_from(["[", '{"a":'])), draw(st.sampled_from([200, 1000, 5000, 200_000]))
    if kind == "deep_value":
        return kind, draw(st.sampled_from(ALL_PATHS[1:])), draw(st.sampled_from([100, 1000, 200_000]))
    if kind == "huge_int":
        return (kind, draw(st.sampled_from(NUMBER_PATHS)),
                draw(st.sampled_from(["", "-"])) + "9" * draw(st.integers(min_value=310, max_value=10_000)))
    if kind == "non_finite":
        return (kind, draw(st.sampled_from(NUMBER_PATHS)),
                draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])))
    if kind == "duplicate_key":
        path = draw(st.sampled_from(OBJECT_PATHS))
        return kind, path, draw(st.sampled_from(sorted(_get(RESULTS, path))))
    if kind == "wrong_type":
        path = draw(st.sampled_from(TYPED_NUMBER_PATHS))
        value = draw(st.sampled_from(["abc", "", "1.5", {"a": "x"}, {"a": [[1]]}, [[1]], ["abc"], True, False]))
        if isinstance(value, list) and path[-1] != "value":
            value = "abc"  # a list inside a list of numbers is deep_value's business
        return kind, path, value
    path = draw(st.sampled_from(STRING_PATHS))
    if kind == "invalid_utf8":
        return kind, path, draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80abc"]))
    return kind, path, draw(st.sampled_from(['"\\ud800"', '"a\\udfffb"', '"\\udc00\\ud800"']))


def _build(recipe: tuple[Any, ...]) -> bytes:
    kind, where, what = recipe
    if kind == "deep":
        closer = "]" if where == "[" else "}"
        return (where * what + "1" + closer * what).encode()
    if kind == "deep_value":
        return _text_with(where, "[" * what + "]" * what).encode()
    if kind in ("huge_int", "non_finite", "lone_surrogate"):
        return _text_with(where, what).encode()
    if kind == "invalid_utf8":
        return _text_with(where, '"x@@BAD@@"').encode().replace(b"@@BAD@@", what)
    r = json.loads(json.dumps(RESULTS))
    if kind == "wrong_type":
        _set(r, where, what)
        return json.dumps(r).encode()
    obj = _get(r, where)  # duplicate_key: the object's text once more, with the key repeated at its end
    text, inner = json.dumps(r), json.dumps(obj)
    assert inner in text
    return text.replace(inner, inner[:-1] + ", " + json.dumps(what) + ": " + json.dumps(obj[what]) + "}", 1).encode()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(recipe=hostile_results())
def test_hostile_results_file_is_one_sentence_and_exit_2(recipe: tuple[Any, ...], tmp_path: Path) -> None:
    kind, data = recipe[0], _build(recipe)
    work = tmp_path / "w"
    shutil.rmtree(work, ignore_errors=True)  # one folder per example
    work.mkdir()
    results = work / "results.json"
    results.write_bytes(data)
    status, _, err = _run(["report", "render", str(results), "-o", str(work / "out")])
    assert status == 2, (kind, err[-2000:])
    _one_sentence(err)
    assert sorted(p.name for p in work.iterdir()) == ["results.json"], kind


@pytest.mark.parametrize("field, value", [
    (("claims", 0, "statistic", "value"), "abc"),
    (("claims", 0, "statistic", "value"), {"a": 1}),
    (("controls", 0, "threshold", "value"), "abc"),
    (("claims", 0, "alpha"), True),
    (("claims", 2, "threshold", "value"), ["abc", 1.0]),
    (("claims", 2, "threshold", "value"), {"ci": [[[1.0]]]}),
])
def test_non_numeric_statistic_and_threshold_values_are_refused(field: tuple, value: Any) -> None:
    from linrnn.reports import schema

    r = json.loads(json.dumps(RESULTS))
    r["claims"][1]["threshold"]["value"] = {"ci": [-1.0, 1.0], "t_crit": 3.2}  # numbers grouped: allowed
    schema.validate(r)
    _set(r, field, value)
    with pytest.raises(schema.SchemaError, match="number"):
        schema.validate(r)


# ------------------------------------------------------------------ figure data the schema allows draws cleanly

finite_numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-10**300, max_value=10**300),
    st.sampled_from([0, 0.0, -0.0, 5e-324, -1e308, 1.7e308, 1e-300]),
)
numbers = st.one_of(st.none(), finite_numbers)
texts = st.one_of(st.text(max_size=20), st.sampled_from(["$", "$$", "$\\frac{$", "$\\undefined$", "a_b^c", "$x^$",
                                                          "\\", "%", "{", "$\\lambda_j$"]))


@st.composite
def drawable_figure(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["lag_weights", "heatmap", "per_lag", "width_rate", "lines", "panels", "bars"]))
    n = draw(st.integers(min_value=1, max_value=5))
    nums = st.lists(numbers, min_size=n, max_size=n)
    fig: dict[str, Any] = {"kind": kind, "title": draw(texts), "caption": draw(texts)}
    if kind == "lag_weights":
        fig.update(lags=draw(nums), eps=draw(finite_numbers), series=[
            {"q": draw(finite_numbers), "regime": draw(st.sampled_from(["decaying", "critical", "exploding"])),
             "weights": draw(nums), "horizon": draw(numbers)} for _ in range(draw(st.integers(1, 3)))])
    elif kind == "heatmap":
        fig.update(panels=[{"title": draw(texts), "matrix": [draw(nums) for _ in range(n)]}
                           for _ in range(draw(st.integers(1, 2)))], axis_label=draw(texts),
                   colorbar_label=draw(texts))
    elif kind == "per_lag":
        fig.update(lags=draw(nums), theory=draw(nums), estimate=draw(nums), lower=draw(nums), upper=draw(nums),
                   raw=draw(st.one_of(st.none(), nums)), ylabel=draw(texts), theory_label=draw(texts))
    elif kind == "width_rate":
        m = max(n, 2)
        fig.update(widths=draw(st.lists(st.floats(min_value=1e-300, max_value=1e300), min_size=m, max_size=m)),
                   rel_error=draw(st.lists(numbers, min_size=m, max_size=m)),
                   rel_error_stderr=draw(st.lists(numbers, min_size=m, max_size=m)),
                   slope=draw(finite_numbers), slope_ci=[draw(finite_numbers), draw(finite_numbers)],
                   expected_slope=draw(finite_numbers), ylabel=draw(texts))
    else:
        scales = st.sampled_from(["linear", "log", "symlog"])

        def lines() -> dict[str, Any]:
            return {"xlabel": draw(texts), "ylabel": draw(texts), "xscale": draw(scales), "yscale": draw(scales),
                    "title": draw(texts),
                    "series": [{"label": draw(st.one_of(st.none(), texts)), "x": draw(nums), "y": draw(nums),
                                "yerr": draw(st.one_of(st.none(), nums)),
                                "style": draw(st.sampled_from(["line", "points"]))}
                               for _ in range(draw(st.integers(1, 3)))],
                    "vlines": [{"x": draw(finite_numbers), "label": draw(texts)}
                               for _ in range(draw(st.integers(0, 1)))]}

        if kind == "lines":
            fig.update(lines())
        elif kind == "panels":
            fig.update(panels=[lines() for _ in range(draw(st.integers(1, 2)))], sharey=draw(st.booleans()))
        else:
            fig.update(labels=draw(st.lists(texts, min_size=n, max_size=n)), values=draw(nums),
                       errors=draw(st.one_of(st.none(), nums)), xlabel=draw(texts), ylabel=draw(texts))
    return fig


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fig=drawable_figure())
def test_figure_data_is_refused_by_the_schema_or_drawn_without_error_or_warning(fig: dict[str, Any]) -> None:
    """Either one sentence (SchemaError) or a PNG and an SVG; warnings are errors in this suite.

    Only numbers within a factor 1e8 of the float64 limit may be refused as data that cannot be drawn (the axes'
    own arithmetic overflows there).
    """
    from linrnn.reports import schema
    from linrnn.reports.figures import FigureError, draw

    try:
        schema.check_figure(fig, "claims[0].figures.f")
    except schema.SchemaError as exc:
        assert "\n" not in str(exc)
        return
    try:
        files = draw("f", fig, "claims[0].figures.f")
    except FigureError as exc:
        assert "\n" not in str(exc) and "claims[0].figures.f" in str(exc)
        extreme = [p for p in _paths(fig) if schema.is_number(_get(fig, p)) and abs(_get(fig, p)) > 1e300]
        assert extreme, (str(exc), fig)
        return
    assert files.png.startswith(b"\x89PNG") and b"<svg" in files.svg


def test_log_axis_with_no_positive_value_draws_without_a_warning() -> None:
    from linrnn.reports.figures import draw

    fig = {"kind": "lines", "yscale": "log", "xscale": "log",
           "series": [{"x": [-1.0, -2.0, -3.0], "y": [-1.0, -5.0, 0.0], "label": "all negative"}]}
    with_warning_as_error = draw("f", fig)  # the suite turns any warning into an error
    assert with_warning_as_error.png


def test_a_figure_that_cannot_be_drawn_is_one_sentence_in_render_and_left_out_by_the_suite(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from linrnn import suite

    undrawable = {"kind": "lines", "series": [{"x": [0, 1], "y": [1.7e308, -1.7e308]}]}
    r = json.loads(json.dumps(RESULTS))
    r["claims"][0]["figures"]["per_lag"] = undrawable
    (tmp_path / "r.json").write_text(json.dumps(r))
    status, _, err = _run(["report", "render", str(tmp_path / "r.json"), "-o", str(tmp_path / "out")])
    assert status == 2 and "ntk_limit/per_lag" in _one_sentence(err) and "cannot be drawn" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]

    claim = {**_claim("a"), "figures": {"line": undrawable}}
    monkeypatch.setattr(suite, "experiments", lambda: {"a": lambda ctx: {"claims": [claim]}})
    notes: list[str] = []
    run = suite.run_report(tmp_path / "rep", config=TINY, workers=1, log=notes.append)
    assert run.exit_status == 0 and (tmp_path / "rep" / "report.html").exists()
    assert any("a/line" in n and "left out" in n for n in notes), notes


# ------------------------------------------------------------------ malformed cache entries are misses


TINY = {"derivation": {"figure_lags": 20, "figure_q": [0.9, 1.0, 1.05], "pdf": False}}


def _claim(cid: str) -> dict[str, Any]:
    return {
        "id": cid, "title": cid, "statement": f"test claim {cid}", "formula": "x = 1",
        "statistic": {"name": "|x - 1|", "value": 0.0}, "threshold": {"description": "below 1", "value": 1.0},
        "verdict": "pass", "statistic_verdict": "pass",
        "figures": {"line": {"kind": "lines", "series": [{"label": "x", "x": [0, 1], "y": [1.0, 1.0]}]}},
        "controls": [{"id": "wrong", "statement": "x = 2", "statistic": {"name": "|x - 2|", "value": 1.0},
                      "threshold": {"description": "below 0.5", "value": 0.5}, "verdict": "rejected"}],
    }


MALFORMED_PAYLOADS = [
    ("payload_not_object", lambda e: {**e, "payload": [1, 2]}),
    ("seconds_text", lambda e: {**e, "seconds": "abc"}),
    ("seconds_missing", lambda e: {k: v for k, v in e.items() if k != "seconds"}),
    ("claims_not_list", lambda e: {**e, "payload": {**e["payload"], "claims": "abc"}}),
    ("claim_without_id", lambda e: {**e, "payload": {"claims": [{"statement": "x"}]}}),
    ("statistic_text", lambda e: {**e, "payload": {"claims": [
        {**_claim("a"), "statistic": {"name": "s", "value": "abc"}}]}}),
    ("control_not_object", lambda e: {**e, "payload": {"claims": [{**_claim("a"), "controls": [3]}]}}),
    ("figure_malformed", lambda e: {**e, "payload": {"claims": [
        {**_claim("a"), "figures": {"line": {"kind": "lines", "series": "abc"}}}]}}),
    ("derivation_not_object", lambda e: {**e, "payload": {"derivation": 5, "claims": []}}),
    ("deep", lambda e: json.loads("[" * 900 + "]" * 900)),
]


@pytest.mark.parametrize("name, corrupt", MALFORMED_PAYLOADS, ids=[m[0] for m in MALFORMED_PAYLOADS])
def test_a_malformed_report_cache_entry_is_recomputed(name: str, corrupt: Any, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from linrnn import suite

    calls = {"a": 0}

    def exp_a(ctx: suite.Context) -> dict[str, Any]:
        calls["a"] += 1
        return {"claims": [_claim("a")]}

    monkeypatch.setattr(suite, "experiments", lambda: {"a": exp_a})
    out = tmp_path / "rep"
    suite.run_report(out, config=TINY, workers=1)
    (entry_path,) = (out / ".cache").iterdir()
    entry = json.loads(entry_path.read_text())
    entry_path.write_text(json.dumps(corrupt(entry)) if name != "deep" else "[" * 200_000 + "]" * 200_000)
    run = suite.run_report(out, config=TINY, workers=1, force=True)
    assert calls["a"] == 2 and run.results["provenance"]["cached"] == [] and run.exit_status == 0
    assert json.loads(entry_path.read_text())["payload"] == entry["payload"]  # the good entry is stored again


def test_a_malformed_derivation_cache_entry_is_recomputed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every cache of linrnn.derive.cache: the JSON data of the formulas and traces, the pickled SymPy objects."""
    from linrnn.derive import cache, formulas
    from linrnn.families.gaussian import finite_width_arrays

    monkeypatch.setenv("LINRNN_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("LINRNN_NO_CACHE", raising=False)
    good = formulas.lag_formulas.__wrapped__("ntk")  # fills the cache
    traces = finite_width_arrays.exact_traces.__wrapped__(2)
    key = cache.code_key()
    for name, bad in ((f"lag-formulas-ntk-{key}.json", {"weight": {"text": 5}}),
                      (f"lag-formulas-ntk-{key}.json", {"weight": "abc", "nngp": []}),
                      (f"finite-width-traces-{finite_width_arrays._key()}-2-{key}.json", {"T": "abc", "S": [[["x"]]]}),
                      (f"finite-width-traces-{finite_width_arrays._key()}-2-{key}.json", {"T": [[[1]]]})):
        path = tmp_path / name
        assert path.exists()
        path.write_text(json.dumps({"key": key, "data": bad}))
        if name.startswith("lag"):
            assert formulas.lag_formulas.__wrapped__("ntk") == good
        else:
            assert finite_width_arrays.exact_traces.__wrapped__(2) == traces
        assert json.loads(path.read_text())["data"] != bad  # recomputed and stored again

    calls = []

    def compute() -> dict[str, int]:
        calls.append(1)
        return {"value": 1}

    path = tmp_path / f"thing-{key}.pickle"
    path.write_bytes(pickle.dumps(["not", "a", "dict"]))
    assert cache.disk_cached("thing", compute, kind=dict) == {"value": 1} and calls == [1]
    assert cache.disk_cached("thing", compute, kind=dict) == {"value": 1} and calls == [1]


# ------------------------------------------------------------------ killed runs, SIGTERM, a full disk

_SLOW_RENDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from linrnn.reports import render as r
    real = r.write_report
    def slow(results, directory):
        paths = real(results, directory)
        Path(sys.argv[2]).write_text("ready")
        time.sleep(60)
        return paths
    r.write_report = slow
    from linrnn.cli import main
    sys.exit(main(["report", "render", sys.argv[1], "-o", sys.argv[3]]))
""")


def _start_slow_render(tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_RENDER, str(FIXTURE), str(ready), str(tmp_path / "rep")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < 120
        time.sleep(0.05)
    ready.unlink()
    return proc, ready


def test_sigterm_while_writing_a_report_cleans_up_like_ctrl_c(tmp_path: Path) -> None:
    proc, _ = _start_slow_render(tmp_path)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no report, no temporary folder, no lock


def test_a_later_run_removes_what_a_killed_run_left_and_nothing_else(tmp_path: Path) -> None:
    proc, _ = _start_slow_render(tmp_path)
    proc.kill()
    proc.communicate(timeout=60)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert any(n.startswith(".rep.tmp-") for n in left), left
    # look-alikes that linrnn did not make (no marker), or that belong to another output, are kept
    for name in (".rep.tmp-useritself", ".rep.tmp-abcdefgh", ".rep.tmp-x.tmp-abcdefgh"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "mine.txt").write_text("the user's")
    status, _, err = _run(["report", "render", str(FIXTURE), "-o", str(tmp_path / "rep")])
    assert status == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".rep.tmp-abcdefgh", ".rep.tmp-useritself", ".rep.tmp-x.tmp-abcdefgh", "rep"]
    assert all((tmp_path / n / "mine.txt").read_text() == "the user's"
               for n in (".rep.tmp-abcdefgh", ".rep.tmp-useritself", ".rep.tmp-x.tmp-abcdefgh"))


def test_a_running_report_keeps_its_temporary_folder(tmp_path: Path) -> None:
    proc, _ = _start_slow_render(tmp_path)
    try:
        status, _, err = _run(["report", "render", str(FIXTURE), "-o", str(tmp_path / "rep")])
        assert status == 2 and "another linrnn run" in _one_sentence(err)
        assert any(p.name.startswith(".rep.tmp-") for p in tmp_path.iterdir())
    finally:
        proc.kill()
        proc.communicate(timeout=60)


@pytest.mark.parametrize("victim", ["report.md", "report.html", "report.json", "derivation.tex", "png"])
def test_a_full_disk_names_the_file_whose_write_failed(victim: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    real_text, real_bytes = Path.write_text, Path.write_bytes

    def full(self: Path, real: Any, *args: Any, **kwargs: Any) -> Any:
        if self.name == victim or (victim == "png" and self.suffix == ".png"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", lambda self, *a, **k: full(self, real_text, *a, **k))
    monkeypatch.setattr(Path, "write_bytes", lambda self, *a, **k: full(self, real_bytes, *a, **k))
    out = tmp_path / "rep"
    status, _, err = _run(["report", "render", str(FIXTURE), "-o", str(out)])
    line = _one_sentence(err)
    assert status == 1 and "no claim failed" in line
    named = line.split("could not finish writing ", 1)[1].split(":", 1)[0]
    assert named.startswith(str(out) + os.sep) and (named.endswith(victim) or named.endswith(".png")), line
    assert ".tmp-" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ------------------------------------------------------------------ messages


def _printed_weights(stdout: str) -> dict[int, str]:
    rows = {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts and parts[0].isdigit() and len(parts) == 4:
            rows[int(parts[0])] = parts[1]
    return rows


@pytest.mark.parametrize("q", ["1e-320", "1e-160", "1e-200", "3e-155"])
def test_underflow_notes_of_derive_weights_say_what_is_printed(q: str) -> None:
    status, out, err = _run(["derive", "weights", "--sigma-w2", q, "--lags", "5"])
    assert status == 0, err
    printed = _printed_weights(out)
    notes = [line for line in err.splitlines() if "lambda_j" in line]
    assert notes, err
    for line in notes:  # "... to 0 from j = 2 on (printed as 0)": every lag from there is printed as 0
        if "printed as 0" in line:
            first = int(line.split("printed as 0")[0].rsplit("j = ", 1)[1].split()[0].rstrip(",)"))
            assert all(float(printed[j]) == 0.0 for j in printed if j >= first), (line, printed)
            assert float(printed[first - 1]) != 0.0 or first == 0, (line, printed)
    subnormal = [j for j, v in printed.items() if 0 < abs(float(v)) < sys.float_info.min]
    if subnormal:  # the notes say so, from the first such lag
        assert any(f"subnormal in float64 at j = {subnormal[0]}" in line or
                   f"subnormal in float64 from j = {subnormal[0]}" in line or
                   f"subnormal in float64 for j = {subnormal[0]}" in line for line in notes), (subnormal, notes)
    assert not any("printed as 0" in line for line in notes) or any(float(v) == 0 for v in printed.values())


def test_verify_ntk_names_float64_underflow() -> None:
    status, out, err = _run(["verify", "ntk", "--sigma-w2", "1e-300", "--width", "16", "--lags", "3",
                             "--replicas", "4", "--pilot", "0", "--no-progress"])
    verdict = [line for line in out.splitlines() if line.startswith("verdict:")][-1]
    assert status == 1 and "ERROR" in verdict, out
    assert "float64 underflow" in verdict and "lag" in verdict, verdict


def test_a_missing_configuration_file_is_one_grammatical_sentence(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    status, _, err = _run(["report", "--config", "nothere.toml"])
    line = _one_sentence(err)
    assert status == 2 and "nothere.toml" in line and "no the" not in line and "does not exist" in line


def test_calibration_progress_writes_plain_lines_to_a_file() -> None:
    from linrnn.calibrate import TaskProgress

    stream = io.StringIO()  # not a terminal
    with TaskProgress(total=5, initial=1, stream=stream, every=0.0) as bar:
        for _ in range(4):
            bar.update(1)
    text = stream.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert lines and lines[-1].startswith("calibrate: 5/5 tasks"), text


RECORD = {"calibration_version": 1, "config_hash": "abc123", "claim": "nngp", "seed": 7, "seconds": 1.5,
          "result": {"id": "nngp", "verdict": "pass", "statistic_verdict": "pass", "alpha": 0.001,
                     "controls": [{"id": "nngp:q_times_1.1", "verdict": "rejected"}]}}


@pytest.mark.parametrize("corrupt", [
    lambda r: {**r, "result": [1]},
    lambda r: {**r, "seconds": "abc"},
    lambda r: {**r, "seed": "7"},
    lambda r: {**r, "seed": 8},
    lambda r: {**r, "claim": "ntk_limit"},
    lambda r: {**r, "result": {**r["result"], "alpha": [1]}},
    lambda r: {**r, "result": {**r["result"], "verdict": {"a": 1}}},
    lambda r: {**r, "result": {**r["result"], "controls": [3]}},
    lambda r: {**r, "result": {**r["result"], "controls": [{"verdict": "rejected"}]}},
    lambda r: "[" * 100_000 + "]" * 100_000,
])
def test_a_malformed_calibration_record_is_a_miss(corrupt: Any, tmp_path: Path) -> None:
    """The calibration store's records are a cache too: a record that cannot be used is run again."""
    from linrnn.calibrate import read_record, record_path, summarize_claim

    path = record_path(tmp_path, "nngp", "abc123", 7)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(RECORD))
    assert read_record(path) == RECORD
    bad = corrupt(RECORD)
    path.write_text(bad if isinstance(bad, str) else json.dumps(bad))
    assert read_record(path) is None
    assert summarize_claim("nngp", [RECORD], 0.001)["pass"] == 1
