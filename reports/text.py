"""Plain-text formatting shared by the HTML, Markdown and LaTeX renderers."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from linrnn.core.outcome import UNTESTED, untested


def format_number(x: Any, digits: int = 4) -> str:
    """A number in ``digits`` significant figures; lists as [a, b]; None as 'n/a'."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            return "n/a"
        return f"{x:.{digits}g}"
    if isinstance(x, Mapping):
        return ", ".join(f"{k}: {format_number(v, digits)}" for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(format_number(v, digits) for v in x) + "]"
    return str(x)


_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def states_value(text: str, value: float, digits: int = 4) -> bool:
    """Whether ``text`` already states ``value`` (some number in it equals ``value`` to the digits it was printed to)."""
    for lit in _NUMBER.findall(text):
        mantissa = lit.split("e")[0].split("E")[0].lstrip("+-")
        shown = len(mantissa.replace(".", "").lstrip("0")) or 1
        if math.isclose(float(lit), value, rel_tol=0.51 * 10.0 ** (1 - min(shown, digits)), abs_tol=0.0):
            return True
    return False


def format_threshold(threshold: Mapping[str, Any]) -> str:
    """'description (value)', or the description alone when there is no value or the description states it."""
    desc = str(threshold.get("description", ""))
    value = threshold.get("value")
    if value is None:
        return desc
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
            and states_value(desc, float(value)):
        return desc
    return f"{desc} ({format_number(value)})"


def format_statistic(stat: Mapping[str, Any]) -> str:
    """A statistic's value, or the sentence that says it in words (``in_words``: a value that would mislead)."""
    words = stat.get("in_words")
    return str(words) if words else format_number(stat.get("value"))


def verdict_word(verdict: str, *, control: bool = False) -> tuple[str, bool]:
    """The word shown for a verdict and whether it is the wanted outcome.

    A claim wants "pass" (others: "fail", "inconclusive", "error"); a negative control
    wants "rejected" (others: "not_rejected", "error"), see :mod:`linrnn.core.outcome`.
    """
    if control:
        return {"rejected": ("\u2713 rejected", True), "not_rejected": ("\u2717 NOT rejected", False)}.get(
            verdict, ("\u2717 ERROR", False))
    return {"pass": ("\u2713 pass", True), "fail": ("\u2717 FAIL", False),
            "inconclusive": ("? INCONCLUSIVE", False)}.get(verdict, ("\u2717 ERROR", False))


def slug(text: str) -> str:
    """A file-name-safe stem: lower-case letters, digits, '-' and '_'."""
    out = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "-_" else "-" for ch in text.lower())
    return out.strip("-") or "figure"


# ------------------------------------------------------------------ outcomes of a claim

#: The word of each overall outcome, for banners and headings.
OUTCOME_WORDS = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE", "error": "ERROR"}


def claim_field(claim: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """A claim's ``statistic_verdict``, ``error``, ``alpha`` or ``design``: top level, or in ``data`` (older files)."""
    if key in claim:
        return claim[key]
    return (claim.get("data") or {}).get(key, default)


def statistic_outcome(claim: Mapping[str, Any]) -> str:
    """The outcome of the claim's own test: pass, fail or error (from the combined verdict when not stored)."""
    stat = claim_field(claim, "statistic_verdict")
    if stat in ("pass", "fail", "error"):
        return stat
    if claim_field(claim, "error"):
        return "error"
    return {"fail": "fail", "error": "error"}.get(claim["verdict"], "pass")


def controls_outcome(controls: list[Mapping[str, Any]]) -> str:
    """'2 of 3 rejected' (with ', 1 error' where some could not be computed); 'none' without controls."""
    if not controls:
        return "none"
    rej = sum(c["verdict"] == "rejected" for c in controls)
    err = sum(c["verdict"] == "error" for c in controls)
    return f"{rej} of {len(controls)} rejected" + (f", {err} error" if err else "")


def outcome_line(claim: Mapping[str, Any], controls: list[Mapping[str, Any]]) -> str:
    """'statistic: pass; controls: 2 of 3 rejected -> inconclusive' (and why, for a claim with no control)."""
    stat = statistic_outcome(claim)
    why = f" ({UNTESTED})" if untested(stat, [c["verdict"] for c in controls]) else ""
    return f"statistic: {stat}; controls: {controls_outcome(controls)} -> {claim['verdict']}{why}"


def format_alpha(claim: Mapping[str, Any]) -> str:
    """The claim's stated false-failure rate, or the config's alpha, or 'n/a'."""
    alpha = claim_field(claim, "alpha")
    if alpha is None:
        alpha = (claim.get("config") or {}).get("alpha")
    return format_number(alpha, 3) if alpha is not None else "n/a"


def format_design(design: Mapping[str, Any] | None) -> str:
    """The design's sizes in one line ('pilot 16; replicas 256; capped by max_replicas; needed: a 4096, b unbounded')."""
    if not design:
        return ""
    parts, needed = [], ""
    for k, v in design.items():
        if k == "needed" and isinstance(v, Mapping):
            needed = ", ".join(f"{n} {'unbounded' if x is None else format_number(x)}" for n, x in v.items())
            continue
        if v is None:
            continue
        key = k.replace("_", " ")
        if isinstance(v, str) and key in v.lower():  # 'allowance': 'no bias allowance: ...' says it once
            parts.append(v)
        else:
            parts.append(f"{key} {format_number(v) if not isinstance(v, str) else v}")
    return "; ".join(p for p in (*parts, f"needed: {needed}" if needed else "") if p)


def stated_sentences(claim: Mapping[str, Any]) -> list[str]:
    """The error sentence and, for an inconclusive claim, the sizes that would decide it."""
    out = []
    err = claim_field(claim, "error")
    if err:
        out.append(f"Error: {err}")
    design = format_design(claim_field(claim, "design"))
    if design:
        out.append(("Inconclusive at these sizes; design: " if claim["verdict"] == "inconclusive" else "Design: ")
                   + design)
    return out
