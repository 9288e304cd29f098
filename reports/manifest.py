"""What a report of given results writes: the names a report folder may hold.

:func:`report_names` is what :func:`linrnn.reports.output.classify` checks a folder
against before ``--force`` may replace it, and what :func:`linrnn.reports.render.write_report`
writes; it lives apart from both so that neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from linrnn.reports.figures import can_draw
from linrnn.reports.text import slug


def figure_owners(results: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """(owner, figures) of everything that carries figures: the derivation, each claim (by id), each chapter
    (``chapter-<id>``), in report order."""
    owners: list[tuple[str, Mapping[str, Any]]] = [("derivation", results["derivation"]["figures"])]
    owners += [(c["id"], c["figures"]) for c in results["claims"]]
    owners += [(f"chapter-{ch['id']}", ch["figures"]) for ch in results.get("chapters", [])]
    return owners


def report_names(results: Mapping[str, Any]) -> frozenset[str]:
    """Every file name (POSIX, relative) that a report of ``results`` can hold besides ``report.json``.

    The names :func:`write_report` gives: the three renderings, a PNG and an SVG per
    drawable figure, and, when the results carry the appendix, ``derivation.tex`` and the
    ``derivation.pdf`` or ``derivation.log`` that compiling it leaves.
    """
    names = {"report.html", "report.md", "report.tex"}
    for owner, figs in figure_owners(results):
        for name, data in figs.items():
            if can_draw(data):
                stem = slug(f"{owner}-{name}")
                names |= {f"figures/{stem}.png", f"figures/{stem}.svg"}
    if results["derivation"].get("tex"):
        names |= {"derivation.tex", "derivation.pdf", "derivation.log"}
    return frozenset(names)
