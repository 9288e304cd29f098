"""Limit the BLAS thread pool for a block of code (OpenBLAS on Linux; a no-op elsewhere).

The CPU Monte Carlo runs the random-number generator in one thread and the
matrix-vector passes (memory-bound, one BLAS call per Krylov step) in another;
a multi-threaded BLAS would compete with the generator for the same cores, and on
a shared machine its spinning threads slow a matrix-vector product by several
times. :func:`blas_threads` finds the OpenBLAS libraries already loaded into the
process (``/proc/self/maps``) and calls their ``*_set_num_threads`` entry point,
restoring the previous count afterwards.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

_PREFIXES = ("openblas_", "scipy_openblas_")
_SUFFIXES = ("", "64_", "_64_")


@lru_cache(maxsize=1)
def _openblas_controls() -> tuple[tuple[object, object], ...]:
    """(get, set) function pairs of every loaded OpenBLAS library."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            paths = sorted({line.split()[-1] for line in fh if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return ()
    found = []
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix in _PREFIXES:
            for suffix in _SUFFIXES:
                get = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
                put = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
                if get is not None and put is not None:
                    get.restype, get.argtypes = ctypes.c_int, []
                    put.restype, put.argtypes = None, [ctypes.c_int]
                    found.append((get, put))
                    break
            else:
                continue
            break
    return tuple(found)


@contextmanager
def blas_threads(count: int) -> Iterator[None]:
    """Run the block with at most ``count`` OpenBLAS threads (numpy must be imported first)."""
    controls = _openblas_controls()
    previous = [get() for get, _ in controls]  # type: ignore[operator]
    for (_, put), old in zip(controls, previous):
        if old > count:
            put(count)  # type: ignore[operator]
    try:
        yield
    finally:
        for (_, put), old in zip(controls, previous):
            put(old)  # type: ignore[operator]
