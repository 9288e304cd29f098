"""Shared pieces of the benchmark suite: the case record, timing, and machine information.

Every ``benchmarks/bench_*.py`` module exposes ``cases(quick: bool) -> list[dict]``; each
dict is one side-by-side comparison measured in this run (:func:`case`), or a case that
could not run here (:func:`skipped`, e.g. a peer library that is not installed).
``benchmarks/run.py`` discovers the modules, runs them and writes the results file.

A case has at least: ``name``, ``subject`` and ``baseline`` (what is timed against what),
``seconds`` (a dict of the measured times, at least ``subject`` and ``baseline``), ``ratio``,
``target`` (the required ratio, or None), ``goal`` (``">="`` when a larger ratio is better,
as for speed-ups; ``"<="`` for a ratio to a floor), ``met`` (whether the target holds, None
without a target), ``command`` (how to rerun it alone), ``detail`` (sizes, agreement,
settings) and ``status`` (``ok``, ``skipped`` with a ``reason``, or ``error``).
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def case(
    name: str,
    *,
    subject: str,
    baseline: str,
    seconds: dict[str, float],
    target: float | None,
    command: str,
    detail: dict[str, Any] | None = None,
    goal: str = ">=",
    ratio: float | None = None,
) -> dict[str, Any]:
    """One measured comparison; ``ratio`` defaults to seconds['baseline'] / seconds['subject'] (a speed-up)."""
    if ratio is None:
        ratio = seconds["baseline"] / seconds["subject"]
    met = None if target is None else bool(ratio >= target if goal == ">=" else ratio <= target)
    return {"name": name, "status": "ok", "subject": subject, "baseline": baseline, "seconds": seconds,
            "ratio": float(ratio), "target": target, "goal": goal, "met": met, "command": command,
            "detail": detail or {}}


def skipped(name: str, reason: str, *, subject: str, baseline: str, target: float | None, command: str,
            goal: str = ">=") -> dict[str, Any]:
    """A case that cannot run on this machine (one sentence saying why)."""
    return {"name": name, "status": "skipped", "reason": reason, "subject": subject, "baseline": baseline,
            "seconds": {}, "ratio": None, "target": target, "goal": goal, "met": None, "command": command,
            "detail": {}}


def best_time(fn: Callable[[], Any], repeats: int, *, warmup: int = 1) -> tuple[float, Any]:
    """The fastest of ``repeats`` timed calls of ``fn`` (after ``warmup`` untimed ones) and its last result.

    The minimum is the statistic least moved by other processes on a shared machine.
    """
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def machine_info() -> dict[str, Any]:
    """Processor, cores, platform and Python, for the results file."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
    }
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            info["memory_GB"] = round(int(fh.readline().split()[1]) / 1e6, 1)
    except (OSError, ValueError, IndexError):
        pass
    return info


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries the benchmarks use (None where one is not installed)."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for dist in ("linrnn-bias", "numpy", "scipy", "array-api-compat", "torch", "jax", "jaxlib", "neural-tangents"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    try:
        import numpy as np

        blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
        out["blas"] = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # pragma: no cover - older NumPy
        out["blas"] = None
    return out
