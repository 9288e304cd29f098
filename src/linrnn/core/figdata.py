"""Data of the figures, shared by the engines that make them (the kinds of :mod:`linrnn.reports.figures`)."""

from __future__ import annotations

from typing import Any


def errbars(values: list[Any] | None, factor: float = 2.0) -> list[Any] | None:
    """``factor`` standard errors (None stays None): the +-2 SE bars of the figures."""
    return None if values is None else [None if v is None else factor * v for v in values]
