"""Plain-text formatting shared by the HTML, Markdown and LaTeX renderers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


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
        return ", ".join(f"{k} {format_number(v, digits)}" for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(format_number(v, digits) for v in x) + "]"
    return str(x)


def format_threshold(threshold: Mapping[str, Any]) -> str:
    """'description (value)' or the description alone when there is no value."""
    desc = str(threshold.get("description", ""))
    value = threshold.get("value")
    if value is None:
        return desc
    return f"{desc} ({format_number(value)})"


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
