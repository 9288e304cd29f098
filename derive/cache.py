"""A disk cache for derived SymPy objects, keyed by the code that derives them.

A derivation takes a few seconds of SymPy work; the command line runs it once
and keeps the resulting objects (pickled) under ``$LINRNN_CACHE_DIR`` (default
``~/.cache/linrnn-bias``). The key hashes the source of every module in
``derive/`` with the SymPy and Python versions, so any change to the derivation
code or the library invalidates it. ``LINRNN_NO_CACHE=1`` turns it off. The cache
never changes a result: a missing, stale or unreadable entry is recomputed.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def cache_dir() -> Path:
    env = os.environ.get("LINRNN_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "linrnn-bias"


@lru_cache(maxsize=1)
def code_key() -> str:
    import sympy

    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for path in sorted(here.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    h.update(sympy.__version__.encode())
    h.update(sys.version.encode())
    return h.hexdigest()[:20]


def disk_cached(name: str, compute: Callable[[], T]) -> T:
    """Return ``compute()``, reusing a pickled result made by identical code."""
    if os.environ.get("LINRNN_NO_CACHE"):
        return compute()
    path = cache_dir() / f"{name}-{code_key()}.pickle"
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except Exception:  # missing, stale format or unreadable: recompute
        pass
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{name}-", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except Exception:  # read-only home, full disk: the cache is optional
        try:
            os.unlink(tmp)  # type: ignore[possibly-undefined]
        except Exception:
            pass
    return value
