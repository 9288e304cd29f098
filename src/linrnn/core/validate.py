"""Checks of user-supplied numbers shared by derive/ and verify/ (one sentence, UsageError)."""

from __future__ import annotations

import math
from typing import Any

from linrnn.core.errors import UsageError


def check_positive(name: str, value: float) -> float:
    """``value`` as a float; it must be finite and > 0."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{name} must be a finite positive number, got {value!r}")
    return value


def check_nonnegative(name: str, value: float) -> float:
    """``value`` as a float; it must be finite and >= 0."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{name} must be a finite non-negative number, got {value!r}")
    return value


def positive_int(name: str, value: Any) -> int:
    """``value`` if it is a positive integer (not a bool), else :class:`UsageError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def in_open_interval(name: str, value: float, lo: float, hi: float, why: str = "") -> float:
    """``value`` as a float if lo < value < hi, else :class:`UsageError` (``why`` says why the bounds)."""
    v = float(value)
    if not lo < v < hi:
        raise UsageError(f"{name} must lie in ({lo:g}, {hi:g}){why}, got {value!r}")
    return v


def check_widths(widths: Any, name: str = "widths") -> tuple[int, ...]:
    """At least two different positive widths, sorted and without repeats."""
    try:
        ws = [int(w) for w in widths]
    except (TypeError, ValueError):
        raise UsageError(f"{name} must hold at least two different positive widths, got {widths!r}") from None
    if len(set(ws)) < 2 or min(ws) < 1 or any(int(w) != w for w in widths):
        raise UsageError(f"{name} must hold at least two different positive widths, got {widths!r}")
    return tuple(sorted(set(ws)))


def check_size(name: str, value: int, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``, else raise :class:`UsageError`."""
    try:
        ivalue = int(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if isinstance(value, bool) or ivalue != value or ivalue < minimum:
        raise UsageError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return ivalue


def parse_memory(text: str | int | float) -> int:
    """'4GB', '512MB', '24GiB', '1e9' -> bytes (k, M, G, T are powers of 1000; Ki, Mi, Gi, Ti of 1024)."""
    if isinstance(text, bool):
        raise UsageError(f"a memory size must be a size such as 4GB, got {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = str(text).strip().replace(" ", "")
        units = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9, "T": 1e12, "TB": 1e12,
                 "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
        i = len(s)
        while i > 0 and s[i - 1].isalpha():
            i -= 1
        number, unit = s[:i], s[i:].upper()
        if unit not in units:
            raise UsageError(f"cannot read the memory size {text!r}; write for example 4GB, 512MB or 24GiB")
        try:
            value = float(number) * units[unit]
        except ValueError:
            raise UsageError(f"cannot read the memory size {text!r}; write for example 4GB, 512MB or 24GiB") from None
    if not math.isfinite(value) or value < 1:
        raise UsageError(f"the memory budget must be a positive size, got {text!r}")
    return int(value)


def format_bytes(n: float) -> str:
    """A byte count for a sentence: '3.2 GB', '512 MB', '80 TB' (powers of 1000)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} bytes"


def check_memory(what: str, needed: int, budget: int, flag: str, *, plural: bool = False) -> None:
    """Refuse, before any work, a computation whose peak memory ``needed`` exceeds ``budget`` (bytes).

    The sentence gives the size asked (``what``), the memory it needs, the budget and
    ``flag``, the setting that raises the budget in the command that was run.
    """
    if needed > budget:
        raise UsageError(f"{what} {'need' if plural else 'needs'} about {format_bytes(needed)} of memory, beyond the budget of "
                         f"{format_bytes(budget)}; lower the size or raise {flag}")
