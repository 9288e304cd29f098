"""Render a results file into a report directory: JSON, HTML, Markdown, LaTeX and figures.

:func:`write_report` writes into a directory that exists (the suite's temporary
directory); :func:`render` is ``linrnn report render RESULTS.json -o DIR``: it reads
the results file alone (``linrnn.reports`` never imports ``linrnn.verify``) and publishes ``DIR``
atomically. Files written:

* ``report.json`` (the validated results, :mod:`linrnn.reports.schema`),
* ``report.html`` (self-contained), ``report.md``, ``report.tex``,
* ``figures/<owner>-<name>.png`` and ``.svg`` for every figure,
* ``derivation.tex`` when the results carry the derivation's LaTeX,

and ``report.json`` lists every other file it wrote with its SHA-256 (``files``,
:func:`record_files`; the suite adds ``derivation.pdf`` or ``.log`` when it compiles
the appendix). :func:`linrnn.reports.manifest.report_names` gives the names a report of given results can
write; :mod:`linrnn.reports.output` replaces a report directory only if every file in
it is one of those, listed, with the content listed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from linrnn.core.files import file_digest
from linrnn.reports import schema
from linrnn.reports.figures import FigureError, FigureFiles, can_draw, draw
from linrnn.reports.html import render_html
from linrnn.reports.latex_report import render_latex
from linrnn.reports.manifest import figure_owners
from linrnn.reports.markdown import render_markdown
from linrnn.reports.output import atomic_dir
from linrnn.reports.text import slug


def draw_figures(results: Mapping[str, Any], *, skip_undrawable: bool = False
                 ) -> tuple[dict[str, list[FigureFiles]], list[str]]:
    """Every drawable figure, grouped by owner ("derivation", a claim id, ``chapter-<id>``), and notes on those skipped.

    A figure whose data cannot be drawn (:class:`linrnn.reports.figures.FigureError`)
    is refused in one sentence, or with ``skip_undrawable`` left out with a note.
    """
    owners = figure_owners(results)
    out: dict[str, list[FigureFiles]] = {}
    skipped: list[str] = []
    for owner, figs in owners:
        for name, data in figs.items():
            if not can_draw(data):
                skipped.append(f"{owner}/{name} (kind {data.get('kind')!r} has no renderer)")
                continue
            try:
                out.setdefault(owner, []).append(draw(slug(f"{owner}-{name}"), data, f"{owner}/{name}"))
            except FigureError as exc:
                if not skip_undrawable:
                    raise
                skipped.append(str(exc))
    return out, skipped


def record_files(results: Mapping[str, Any], directory: str | os.PathLike[str], paths: list[Path]) -> Path:
    """(Re)write ``directory/report.json``: ``results`` with ``files`` listing ``paths`` and their SHA-256."""
    d = Path(directory)
    listed = {Path(p).relative_to(d).as_posix(): file_digest(p) for p in paths if Path(p) != d / "report.json"}
    target = d / "report.json"
    _write(target, schema.dumps({**results, "files": dict(sorted(listed.items()))}))
    return target


def write_report(results: Mapping[str, Any], directory: str | os.PathLike[str],
                 say: Callable[[str], None] | None = None) -> list[Path]:
    """Write every report file for ``results`` into the existing ``directory``; return their paths.

    ``say``: where a figure that cannot be drawn is noted and left out (the suite's
    own results: the report is still written); without it such a figure is refused in
    one sentence (``report render`` of a file given by the user).
    """
    results = schema.validate(results)
    d = Path(directory)
    figs, skipped = draw_figures(results, skip_undrawable=say is not None)
    for note in skipped:
        if say is not None and "cannot be drawn" in note:
            say(f"{note}; left out of the report")
    (d / "figures").mkdir(exist_ok=True)
    paths: list[Path] = []
    for group in figs.values():
        for f in group:
            for ext, data in (("png", f.png), ("svg", f.svg)):
                p = d / "figures" / f"{f.stem}.{ext}"
                _write(p, data)
                paths.append(p)
    texts = {
        "report.html": render_html(results, figs),
        "report.md": render_markdown(results, figs),
        "report.tex": render_latex(results, figs),
    }
    if results["derivation"].get("tex"):
        texts["derivation.tex"] = results["derivation"]["tex"]
    for name, text in texts.items():
        p = d / name
        _write(p, text)
        paths.append(p)
    paths.append(record_files(results, d, paths))
    return paths


def _write(path: Path, data: str | bytes) -> None:
    """Write one report file; an ``OSError`` carries the file's name (a full disk names the file, not the folder)."""
    try:
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
    except OSError as exc:
        if not exc.filename:
            exc.filename = str(path)
        raise


def render(results_path: str | os.PathLike[str], out: str | os.PathLike[str], *, force: bool = False) -> dict[str, Any]:
    """Re-render a report from its results file alone into ``out`` (atomically); return the results."""
    results = schema.load(results_path)
    with atomic_dir(out, force=force) as tmp:
        write_report(results, tmp)
    return results
