"""The machine a run is on: the cores this process may use, and the worker counts derived from them."""

from __future__ import annotations

import os
from typing import Any

from linrnn.core.errors import UsageError


def available_cores() -> int:
    """The cores this process may use (its CPU affinity; ``os.cpu_count()`` where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """min(2, the cores this process may use)."""
    return max(1, min(2, available_cores()))


def check_workers(workers: Any) -> int:
    """``workers`` if it is an integer from 1 to the cores this process may use, else :class:`UsageError`.

    Every command that starts worker processes (``report``, ``verify train``, the local
    cluster of ``calibrate``) checks its count here, before any process starts: more
    workers than cores cannot run at once, and each is a process of its own (a
    thousand would meet the system's limit on processes).
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UsageError(f"the number of workers must be a positive integer, got {workers!r}")
    cores = available_cores()
    if workers > cores:
        shown = str(workers) if workers < 10**12 else f"{workers:.3g}"
        raise UsageError(f"{shown} workers is more than the {cores} cores this process may use; "
                         f"give at most {cores}")
    return workers
