"""Issue 17, "a user's file deleted or overwritten": what linrnn may replace, and how it knows.

Two classes:

* a report directory is replaced (``--force``) only when every file in it is one that
  its ``report.json`` lists (``files``: name and SHA-256), under a name a report of
  those results writes, with the content it wrote; anything else is foreign and the
  directory is refused, with or without ``--force``;
* a single output file (``derive latex -o``, its PDF and log, ``verify ntk --save``,
  ``verify train --save``, the files of ``calibrate -o``) that exists and that linrnn
  did not write (its signature, a SHA-256 of the content, is missing or does not match)
  is replaced only with ``--force``; the refusal comes before any work.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from linrnn.cli import main
from linrnn.core import files
from linrnn.core.errors import UsageError
from linrnn.reports import output, schema
from linrnn.reports.render import render, write_report
from test_faults import _one_error_line, _tree
from test_report_cli import TINY, fake_suite  # noqa: F401 - the fixture of the cheap suite

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "report_results.json"
PNG = b"\x89PNG\r\n\x1a\nmy own figure"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One report rendered from the fixture (drawing takes seconds); tests work on copies."""
    out = tmp_path_factory.mktemp("once") / "rep"
    render(FIXTURE, out)
    return out


@pytest.fixture()
def report(rendered: Path, tmp_path: Path) -> Path:
    out = tmp_path / "rep"
    shutil.copytree(rendered, out)
    return out


# ------------------------------------------------------------------ the report directory's manifest


def test_report_json_lists_every_file_the_report_wrote(report: Path) -> None:
    data = json.loads((report / "report.json").read_text(encoding="utf-8"))
    on_disk = {p.relative_to(report).as_posix() for p in report.rglob("*") if p.is_file()} - {"report.json"}
    assert set(data["files"]) == on_disk and on_disk
    assert all(data["files"][name] == _sha(report / name) for name in on_disk)
    assert output.classify(report) == ("report", [])


def test_a_users_figure_added_to_figures_is_never_deleted(report: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (report / "figures" / "my-own-figure.png").write_bytes(PNG)
    before = _tree(report)
    for force in ([], ["--force"]):
        assert main(["report", "render", str(FIXTURE), "-o", str(report), *force]) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert "figures/my-own-figure.png" in line
        assert _tree(report) == before
    assert sorted(p.name for p in report.parent.iterdir()) == ["rep"]  # no temporary or lock left


def test_a_report_file_the_user_changed_is_foreign(report: Path) -> None:
    with (report / "report.md").open("a", encoding="utf-8") as fh:
        fh.write("\nMy notes on this run.\n")
    (report / "figures" / "nngp-per_lag.png").write_bytes(PNG)  # a report's name, the user's picture
    kind, foreign = output.classify(report)
    assert kind == "foreign"
    assert any(f.startswith("report.md") and "changed" in f for f in foreign)
    assert any(f.startswith("figures/nngp-per_lag.png") for f in foreign)
    with pytest.raises(UsageError, match="report.md"):
        output.check_target(report, force=True)


def _edit_manifest(report: Path, **files_: str) -> None:
    data = json.loads((report / "report.json").read_text(encoding="utf-8"))
    data["files"].update(files_)
    (report / "report.json").write_text(json.dumps(data), encoding="utf-8")


def test_a_hand_edited_manifest_does_not_make_a_users_file_the_reports(report: Path) -> None:
    mine = report / "figures" / "my-own-figure.png"
    mine.write_bytes(PNG)
    # listed with its true hash: still not a name that a report of these results writes
    _edit_manifest(report, **{"figures/my-own-figure.png": _sha(mine)})
    assert output.classify(report) == ("foreign", ["figures/my-own-figure.png"])
    (report / "notes.txt").write_text("mine")
    _edit_manifest(report, **{"notes.txt": _sha(report / "notes.txt")})
    assert "notes.txt" in output.classify(report)[1]
    # a report's own name listed, but the content is not what the report wrote
    mine.unlink()
    (report / "notes.txt").unlink()
    (report / "derivation.pdf").write_bytes(b"%PDF-1.5 the user's own")
    _edit_manifest(report, **{"derivation.pdf": "0" * 64})
    assert output.classify(report)[1] == ["derivation.pdf (changed since the report wrote it)"]


def test_a_manifest_that_names_a_path_outside_is_refused_by_the_schema(report: Path) -> None:
    data = json.loads((report / "report.json").read_text(encoding="utf-8"))
    for bad in ("../thesis.tex", "/etc/passwd", "figures/../../x", "a\\b", ""):
        data["files"] = {bad: "0" * 64}
        with pytest.raises(schema.SchemaError, match="files"):
            schema.validate(data)
    data["files"] = {"report.md": "not a digest"}
    with pytest.raises(schema.SchemaError, match="files"):
        schema.validate(data)


def test_an_older_report_without_a_manifest_is_judged_by_the_names_its_results_write(report: Path) -> None:
    data = json.loads((report / "report.json").read_text(encoding="utf-8"))
    del data["files"]
    (report / "report.json").write_text(json.dumps(data), encoding="utf-8")
    schema.load(report / "report.json")  # still a valid results file; `report render` reads it
    assert output.classify(report) == ("report", [])
    (report / "figures" / "my-own-figure.png").write_bytes(PNG)
    assert output.classify(report) == ("foreign", ["figures/my-own-figure.png"])


def test_the_cache_folder_is_kept_but_a_cache_file_is_foreign(report: Path, tmp_path: Path) -> None:
    (report / ".cache").mkdir()
    (report / ".cache" / "x-1.json").write_text("{}")
    assert output.classify(report) == ("report", [])
    render(FIXTURE, report, force=True)
    assert (report / ".cache" / "x-1.json").read_text() == "{}"
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / ".cache").write_text("the user's file named .cache")
    assert output.classify(lone)[0] == "foreign"
    with pytest.raises(UsageError, match=r"\.cache"):
        output.check_target(lone, force=True)


def test_a_symlink_in_a_report_is_foreign(report: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere.md").write_text("mine")
    (report / "report.md").unlink()
    (report / "report.md").symlink_to(tmp_path / "elsewhere.md")
    assert output.classify(report) == ("foreign", ["report.md"])


def test_derivation_pdf_and_log_written_after_the_report_are_listed(rendered: Path, tmp_path: Path) -> None:
    from linrnn.reports.render import record_files

    results = schema.load(FIXTURE)
    d = tmp_path / "build"
    d.mkdir()
    paths = write_report(results, d)
    (d / "derivation.pdf").write_bytes(b"%PDF-1.5 compiled")
    assert "derivation.pdf (not listed in report.json)" in output.classify(d)[1]
    record_files(results, d, [*paths, d / "derivation.pdf"])
    assert output.classify(d) == ("report", [])
    assert json.loads((d / "report.json").read_text())["files"]["derivation.pdf"] == _sha(d / "derivation.pdf")


# ------------------------------------------------------------------ single output files


def test_signatures_recognise_what_linrnn_wrote_and_nothing_else(tmp_path: Path) -> None:
    tex = tmp_path / "a.tex"
    files.write_text_atomic(tex, files.sign_text("\\documentclass{article}\n"))
    assert files.written_by_linrnn(tex)
    tex.write_text(tex.read_text() + "% my note\n")
    assert not files.written_by_linrnn(tex)
    plain = tmp_path / "b.tex"
    plain.write_text("% written by linrnn-bias 0.1.0; sha256 " + "0" * 64 + "\n\\documentclass{article}\n")
    assert not files.written_by_linrnn(plain)

    npz = tmp_path / "a.npz"
    files.save_npz_atomic(npz, {"W": np.eye(3), "param": "ntk", "lags": 4})
    assert files.written_by_linrnn(npz)
    with np.load(npz) as z:
        assert float(z["W"][1, 1]) == 1.0 and str(z["param"]) == "ntk"
    other = tmp_path / "b.npz"
    np.savez(other, W=np.eye(3))
    assert not files.written_by_linrnn(other)
    with zipfile.ZipFile(npz, "a") as z:  # a member added by the user
        z.writestr("extra.npy", b"x")
    assert not files.written_by_linrnn(npz)

    pdf_bytes = b"%PDF-1.5\n1 0 obj\n<<>>\nendobj\nxref\n0 1\ntrailer\n<<>>\nstartxref\n9\n%%EOF\n"
    pdf = tmp_path / "a.pdf"
    pdf.write_bytes(files.sign_pdf(pdf_bytes))
    assert files.written_by_linrnn(pdf) and pdf.read_bytes().rstrip().endswith(b"%%EOF")
    pdf.write_bytes(pdf.read_bytes() + b"1 0 obj\n<</Annot>>\nendobj\nstartxref\n40\n%%EOF\n")  # saved in place
    assert not files.written_by_linrnn(pdf)
    for name, data in (("c.pdf", pdf_bytes), ("c.png", PNG), ("empty", b"")):
        (tmp_path / name).write_bytes(data)
        assert not files.written_by_linrnn(tmp_path / name)


def test_derive_latex_never_overwrites_a_users_tex(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    notes = tmp_path / "notes.tex"
    notes.write_text("\\section{My notes}\n")
    assert main(["derive", "latex", "-o", str(notes)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(notes) in line and "--force" in line
    assert notes.read_text() == "\\section{My notes}\n"
    assert main(["derive", "latex", "-o", str(notes), "--force"]) == 0
    assert files.written_by_linrnn(notes)
    first = notes.read_text()
    assert first.splitlines()[1].startswith("\\documentclass")
    assert main(["derive", "latex", "-o", str(notes), "--sigma-w2", "0.9"]) == 0  # linrnn's own: replaced
    assert notes.read_text() != first
    notes.write_text(notes.read_text().replace("Consequences", "My consequences"))  # edited by the user
    assert main(["derive", "latex", "-o", str(notes)]) == 2
    assert "My consequences" in notes.read_text()
    capsys.readouterr()


def test_derive_latex_pdf_refuses_a_users_pdf_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from linrnn.derive import latex

    monkeypatch.setattr(latex, "find_engine", lambda: ["pdflatex"])

    def no_work(*_a: Any, **_k: Any) -> str:
        raise AssertionError("the derivation ran before the refusal")

    monkeypatch.setattr(latex, "build_document", no_work)
    (tmp_path / "notes.pdf").write_bytes(b"%PDF-1.5 the user's paper")
    assert main(["derive", "latex", "-o", str(tmp_path / "notes.tex"), "--pdf"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "notes.pdf" in line and "--force" in line
    assert not (tmp_path / "notes.tex").exists()


def test_a_failed_compile_does_not_overwrite_a_users_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    from linrnn.core.errors import ExternalToolError
    from linrnn.derive import latex

    def failing(cmd: list[str], cwd: str, **_k: Any) -> subprocess.CompletedProcess[str]:
        (Path(cwd) / "document.log").write_text("! Undefined control sequence.\n")
        return subprocess.CompletedProcess(cmd, 1, "", "")

    monkeypatch.setattr(latex, "find_engine", lambda: ["pdflatex"])
    monkeypatch.setattr(latex.subprocess, "run", failing)
    tex = tmp_path / "d.tex"
    tex.write_text("x")
    log = tmp_path / "d.log"
    log.write_text("the user's log")
    with pytest.raises(ExternalToolError, match="linrnn did not write"):
        latex.compile_pdf(tex, tmp_path)
    assert log.read_text() == "the user's log"
    log.unlink()
    with pytest.raises(ExternalToolError, match="see"):
        latex.compile_pdf(tex, tmp_path)
    assert files.written_by_linrnn(log) and "Undefined control sequence" in log.read_text()


@pytest.mark.parametrize("command, target", [
    (["verify", "ntk", "--width", "8", "--lags", "4", "--replicas", "4", "--pilot", "0", "--no-progress",
      "--backend", "numpy"], "linrnn.verify.check_ntk.check_lag_ntk"),
    (["verify", "train", "--width", "8", "--seq-len", "4", "--n-seq", "3", "--steps", "2", "--replicas", "1",
      "--no-progress", "--backend", "numpy"], "linrnn.train_cli.train_single"),
])
def test_save_never_overwrites_a_users_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch, command: list[str], target: str) -> None:
    draw = tmp_path / "draw.npz"
    np.savez(draw, mine=np.arange(3))
    before = draw.read_bytes()
    import importlib

    module, name = target.rsplit(".", 1)
    mod = importlib.import_module(module)
    real = getattr(mod, name)

    def no_work(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the run started before the refusal")

    monkeypatch.setattr(mod, name, no_work)
    assert main([*command, "--save", str(draw)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(draw) in line and "--force" in line
    assert draw.read_bytes() == before
    monkeypatch.setattr(mod, name, real)
    assert main([*command, "--save", str(draw), "--force"]) in (0, 1, 3)
    assert files.written_by_linrnn(draw)
    capsys.readouterr()
    assert main([*command, "--save", str(draw)]) in (0, 1, 3)  # linrnn's own: replaced
    capsys.readouterr()


def test_an_output_path_that_is_not_a_regular_file_is_refused_even_with_force(tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    for force in (False, True):
        with pytest.raises(UsageError, match="not a regular file"):
            files.check_new_file(fifo, "the --save file", force=force)
    assert fifo.exists() and not fifo.is_file()


def _summary() -> dict[str, Any]:
    from linrnn import calibrate

    rec = {"seconds": 1.0, "result": {"verdict": "pass", "statistic_verdict": "pass", "alpha": 1e-4,
                                      "controls": [{"id": "wrong", "verdict": "rejected"}]}}
    claims = [calibrate.summarize_claim("x", [rec], None)]
    return {"calibration_version": calibrate.CALIBRATION_VERSION, "claims": claims,
            "verdict": "fail", "seeds": {"first": 0, "count": 1}, "power_target": 0.98,
            "family": {"runs": 1, "failed": 0, "rate": 0.0, "ci95": [0.0, 0.975], "stated": 1e-3}}


def test_calibration_files_are_signed_and_a_users_are_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    from linrnn import calibrate
    from linrnn.reports.calibration import write_calibration

    out = tmp_path / "cal"
    for path in write_calibration(_summary(), out):
        assert files.written_by_linrnn(path), path.name
    assert json.loads((out / "calibration.json").read_text())["verdict"] == "fail"
    assert (out / "calibration.html").read_text().splitlines()[1] == "<!DOCTYPE html>"

    def ran(*_a: Any, **_k: Any) -> str:
        return "ran"

    monkeypatch.setattr(calibrate, "_calibrate_locked", ran)
    assert calibrate.run_calibration(out, claims=["nngp"], seeds=1) == "ran"  # linrnn's own: replaced
    mine = out / "calibration.md"
    mine.write_text("# my notes on the calibration\n")

    def no_work(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the calibration started before the refusal")

    monkeypatch.setattr(calibrate, "_calibrate_locked", no_work)
    assert main(["calibrate", "--claims", "nngp", "--seeds", "1", "-q", "-o", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(mine) in line and "--force" in line
    assert mine.read_text() == "# my notes on the calibration\n"
    monkeypatch.setattr(calibrate, "_calibrate_locked", ran)
    assert calibrate.run_calibration(out, claims=["nngp"], seeds=1, force=True) == "ran"
    json_ = out / "calibration.json"
    json_.write_text(json_.read_text().replace('"fail"', '"pass"'))  # edited: no longer linrnn's
    assert not files.written_by_linrnn(json_)


def test_the_suite_lists_the_pdf_it_compiled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             fake_suite: dict) -> None:
    from linrnn import suite
    from linrnn.derive import latex

    def compile_pdf(tex: Path, out_dir: Path, **_k: Any) -> Path:
        pdf = out_dir / "derivation.pdf"
        pdf.write_bytes(files.sign_pdf(b"%PDF-1.5\n" + tex.read_bytes()[:64] + b"\nstartxref\n9\n%%EOF\n"))
        return pdf

    monkeypatch.setattr(latex, "find_engine", lambda: ["pdflatex"])
    monkeypatch.setattr(latex, "compile_pdf", compile_pdf)
    out = tmp_path / "rep"
    suite.run_report(out, config={"derivation": {**TINY["derivation"], "pdf": True}})
    listed = json.loads((out / "report.json").read_text())["files"]
    assert listed["derivation.pdf"] == _sha(out / "derivation.pdf")
    assert output.classify(out) == ("report", [])
    suite.run_report(out, config={"derivation": {**TINY["derivation"], "pdf": True}}, force=True)  # replaced
