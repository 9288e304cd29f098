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
