"""Checks of user-supplied numbers shared by derive/ and verify/ (one sentence, UsageError)."""

from __future__ import annotations

import math

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


def check_size(name: str, value: int, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integer >= ``minimum``, else raise :class:`UsageError`."""
    try:
        ivalue = int(value)
    except (TypeError, ValueError, OverflowError):
        raise UsageError(f"{name} must be an integer >= {minimum}, got {value!r}") from None
    if isinstance(value, bool) or ivalue != value or ivalue < minimum:
        raise UsageError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return ivalue
