"""The calibration summary of ``linrnn calibrate``: ``calibration.json`` and its HTML and Markdown renderings.

Rendered from the JSON alone (``linrnn.reports`` never imports ``linrnn.verify``).
Version 1 of ``calibration.json`` has ``calibration_version``, ``tool``, ``created``,
``profile``, ``seeds`` {first, count}, ``power_target``, ``verdict`` ("fail": some
claim's statistic failed or a claim erred; else "inconclusive": a control's power is
short of ``power_target``, a claim has no control, or too few seeds support the rates;
else "pass"), ``verdict_reason`` (one sentence saying why; absent in older files), ``family`` (seeds at which any claim failed: runs, failed, rate, ci95,
stated), ``config``, ``provenance`` and ``claims``: per claim ``id``, ``seeds`` (runs
counted), the counts ``pass``, ``fail``, ``inconclusive``, ``error``,
``false_failure`` {failures, rate, ci95 (Clopper-Pearson 95%), stated (the claim's
alpha)}, ``seconds`` (median per task) and ``controls``: [{id, runs, rejected, power,
power_ci (Clopper-Pearson 95%)}].
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from linrnn.core.errors import UsageError
from linrnn.core.files import sign_json, sign_text, write_text_atomic
from linrnn.reports.html import STYLE, esc
from linrnn.reports.markdown import md
from linrnn.reports.text import format_number

CALIBRATION_VERSION = 1
_KEYS = ("calibration_version", "claims", "verdict", "seeds", "power_target", "family")


def validate(data: Mapping[str, Any]) -> dict[str, Any]:
    missing = [k for k in _KEYS if k not in data]
    if missing:
        raise UsageError(f"the calibration file lacks {', '.join(missing)}")
    if data["calibration_version"] != CALIBRATION_VERSION:
        raise UsageError(f"calibration_version {data['calibration_version']!r}; this linrnn reads "
                         f"version {CALIBRATION_VERSION}")
    return dict(data)


def _rate(r: Any, ci: Any) -> str:
    if r is None:
        return "n/a"
    return f"{r:.4g} [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else f"{r:.4g}"


def _controls(c: Mapping[str, Any]) -> str:
    return "; ".join(f"{x['id']}: {x['rejected']}/{x['runs']} rejected, power {_rate(x['power'], x['power_ci'])}"
                     for x in c["controls"]) or "none"


def _headline(data: Mapping[str, Any]) -> str:
    fam = data["family"]
    why = f" ({data['verdict_reason']})" if data.get("verdict_reason") else ""
    return (f"{data['verdict'].upper()}{why}: {len(data['claims'])} claims over {data['seeds']['count']} seeds "
            f"(from {data['seeds']['first']}); family-wise false failures {fam['failed']} of {fam['runs']} seeds "
            f"(rate {_rate(fam['rate'], fam['ci95'])}, stated {format_number(fam['stated'])}); "
            f"control power target {format_number(data['power_target'])}.")


_COLUMNS = ("claim", "seeds", "pass", "fail", "inconclusive", "error", "false-failure rate [95% CI]",
            "stated alpha", "median s/task", "controls: power [95% CI]")


def _row(c: Mapping[str, Any]) -> list[str]:
    ff = c["false_failure"]
    return [c["id"], str(c["seeds"]), str(c["pass"]), str(c["fail"]), str(c["inconclusive"]), str(c["error"]),
            _rate(ff["rate"], ff["ci95"]), format_number(ff["stated"]), format_number(c["seconds"], 3),
            _controls(c)]


def render_calibration_markdown(data: Mapping[str, Any]) -> str:
    data = validate(data)
    out = ["# Calibration of the claims", "", f"**{md(_headline(data))}**", "",
           "Every claim's theory is true, so each fail is a false failure; each negative control is a wrong "
           "theory, so its power is the share of runs that rejected it.", "",
           "| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    out += ["| " + " | ".join(md(v) for v in _row(c)) + " |" for c in data["claims"]]
    prov = data.get("provenance", {})
    if prov:
        out += ["", "## Provenance", "", "| key | value |", "|---|---|"]
        out += [f"| {md(k)} | {md(v if isinstance(v, str) else json.dumps(v, sort_keys=True))} |"
                for k, v in prov.items()]
    return "\n".join(out) + "\n"


def render_calibration_html(data: Mapping[str, Any]) -> str:
    data = validate(data)
    good = data["verdict"] == "pass"
    head = "".join(f"<th>{esc(c)}</th>" for c in _COLUMNS)
    rows = "".join("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in _row(c)) + "</tr>" for c in data["claims"])
    prov = data.get("provenance", {})
    prow = "".join(f"<tr><th>{esc(k)}</th><td><code>{esc(v if isinstance(v, str) else json.dumps(v, sort_keys=True))}"
                   f"</code></td></tr>" for k, v in prov.items())
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Calibration of the claims</title><style>{STYLE}</style></head><body>",
        "<h1>Calibration of the claims</h1>",
        f'<div class="verdict banner {"good" if good else "bad"}">{esc(_headline(data))}</div>',
        "<p>Every claim's theory is true, so each fail is a false failure; each negative control is a wrong "
        "theory, so its power is the share of runs that rejected it. Intervals are Clopper-Pearson 95%.</p>",
        f"<table><tr>{head}</tr>{rows}</table>",
        "<h2>Provenance</h2>", f"<table>{prow}</table>", "</body></html>",
    ]) + "\n"


def write_calibration(data: Mapping[str, Any], directory: str | os.PathLike[str]) -> list[Path]:
    """Write ``calibration.json``, ``.html`` and ``.md`` into ``directory``, each atomically.

    Each carries linrnn's signature (:mod:`linrnn.core.files`): the key
    ``linrnn_signature`` in the JSON, a first-line ``<!-- -->`` comment in the HTML and
    Markdown, so that a later run replaces them and nobody else's.
    """
    data = validate(data)
    d = Path(directory)
    texts = {"calibration.json": json.dumps(sign_json(data), indent=2, sort_keys=True, allow_nan=False) + "\n",
             "calibration.html": sign_text(render_calibration_html(data), "<!--"),
             "calibration.md": sign_text(render_calibration_markdown(data), "<!--")}
    for name, text in texts.items():
        write_text_atomic(d / name, text)
    return [d / n for n in texts]
