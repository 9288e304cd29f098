"""The results-file schema: round trips, and every kind of malformed file is refused with a sentence."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from linrnn.core.errors import UsageError
from linrnn.reports import schema

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "report_results.json"


@pytest.fixture()
def results() -> dict:
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


def test_fixture_round_trips_exactly(results: dict) -> None:
    text = schema.dumps(results)
    assert schema.loads(text) == results
    assert schema.dumps(schema.loads(text)) == text
    assert FIXTURE.read_text(encoding="utf-8") == text  # the fixture is in canonical form


def test_load_reads_and_validates_a_file(tmp_path: Path, results: dict) -> None:
    p = tmp_path / "r.json"
    p.write_text(schema.dumps(results), encoding="utf-8")
    assert schema.load(p) == results
    with pytest.raises(UsageError, match="does not exist"):
        schema.load(tmp_path / "missing.json")
    p.write_text("{not json", encoding="utf-8")
    with pytest.raises(schema.SchemaError, match="not JSON"):
        schema.load(p)


def _break(results: dict, how: str) -> dict:
    r = copy.deepcopy(results)
    if how == "missing":
        del r["claims"][0]["statistic"]
    elif how == "unknown":
        r["claims"][0]["colour"] = "red"
    elif how == "verdict":
        r["claims"][0]["verdict"] = "maybe"
    elif how == "overall":
        r["claims"][0]["verdict"] = r["claims"][0]["statistic_verdict"] = "fail"  # the overall verdict says pass
    elif how == "inconsistent":
        r["claims"][0]["verdict"] = "fail"  # its statistic passed and its controls were rejected
    elif how == "nan":
        r["claims"][0]["statistic"]["value"] = float("nan")
    elif how == "version":
        r["schema_version"] = 99
    elif how == "orphan":
        r["controls"][0]["claim"] = "no_such_claim"
    elif how == "duplicate":
        r["claims"].append(copy.deepcopy(r["claims"][0]))
    elif how == "figure":
        r["claims"][0]["figures"]["x"] = {"data": [1, 2]}
    elif how == "type":
        r["claims"][0]["title"] = 3
    return r


@pytest.mark.parametrize(
    ("how", "message"),
    [("missing", "lacks 'statistic'"), ("unknown", "unknown keys 'colour'"), ("verdict", "one of pass, fail, inconclusive, error"),
     ("overall", "overall verdict"), ("nan", "non-finite"), ("version", "schema_version 99"),
     ("orphan", "unknown claim"), ("duplicate", "appears twice"), ("figure", "'kind'"), ("type", "type str"),
     ("inconsistent", "its statistic \\(pass\\) and controls give 'pass'")],
)
def test_malformed_results_are_refused(results: dict, how: str, message: str) -> None:
    with pytest.raises(schema.SchemaError, match=message):
        schema.validate(_break(results, how))


def test_overall_verdict_combines_the_claims(results: dict) -> None:
    """fail > error > inconclusive > pass (each claim's verdict already folds in its controls)."""
    assert schema.overall_verdict(results["claims"], results["controls"]) == "pass"
    claims = copy.deepcopy(results["claims"])
    claims[0]["verdict"] = "inconclusive"  # a wrong theory that was not rejected
    assert schema.overall_verdict(claims, results["controls"]) == "inconclusive"
    claims[1]["verdict"] = "error"
    assert schema.overall_verdict(claims, results["controls"]) == "error"
    claims[2]["verdict"] = "fail"
    assert schema.overall_verdict(claims, results["controls"]) == "fail"


def test_reports_never_imports_verify(tmp_path: Path) -> None:
    code = (
        "import sys, pathlib\n"
        "import linrnn.reports, reports.schema, reports.figures, reports.html, reports.markdown, reports.latex_report\n"
        "import linrnn.reports.render, reports.output, reports.text\n"
        "from linrnn.reports.render import render\n"
        f"render({str(FIXTURE)!r}, pathlib.Path({str(tmp_path)!r}) / 'out')\n"
        "bad = sorted(m for m in sys.modules if m == 'linrnn.verify' or m.startswith('linrnn.verify.'))\n"
        "assert not bad, bad\n"
        "import linrnn.report_cli\n"
        "assert 'linrnn.verify' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
