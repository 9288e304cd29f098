"""A disk cache for derived SymPy objects, keyed by the code that derives them.

A derivation takes a few seconds of SymPy work; the command line runs it once
and keeps the resulting objects under ``$LINRNN_CACHE_DIR`` (default
``~/.cache/linrnn-bias``): the SymPy objects pickled (:func:`disk_cached`), and the
closed forms the numeric paths need as plain data, JSON (:func:`data_cached`, used by
:mod:`linrnn.derive.formulas`), which loads without importing SymPy. The key hashes
the source of every module in ``derive/`` with the SymPy and Python versions, so any
change to the derivation code or the library invalidates it; computing it imports
nothing (SymPy's version is read from its ``release.py``, found without importing
the package). ``LINRNN_NO_CACHE=1`` turns the cache off. The cache never changes a
result: a missing, stale or unreadable entry is recomputed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
import sys
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")


def cache_dir() -> Path:
    env = os.environ.get("LINRNN_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "linrnn-bias"


def _sympy_release() -> bytes:
    """The text of SymPy's ``release.py`` (its version), found without importing SymPy."""
    spec = importlib.util.find_spec("sympy")
    if spec is None or spec.origin is None:  # pragma: no cover - sympy is a dependency
        return b"sympy-missing"
    try:
        return (Path(spec.origin).parent / "release.py").read_bytes()
    except OSError:  # pragma: no cover - an unusual installation: the package's own file then
        return Path(spec.origin).read_bytes()


@lru_cache(maxsize=1)
def code_key() -> str:
    """Hash of every module of ``derive/``, SymPy's version and Python's (imports neither SymPy nor NumPy)."""
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for path in sorted(here.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    h.update(_sympy_release())
    h.update(sys.version.encode())
    return h.hexdigest()[:20]


def _cached(path: Path, load: Callable[[Path], T | None], dump: Callable[[T, IO[Any]], None], mode: str,
            compute: Callable[[], T]) -> T:
    """``load(path)`` if it holds an entry, else ``compute()`` stored at ``path``; one computation at a time.

    Two processes that miss the same entry do not both compute it: the second waits
    on the entry's lock file (``fcntl.flock``, :func:`linrnn.core.files.exclusive_lock`)
    and then finds what the first stored. Where the lock cannot be taken (a read-only
    cache folder) the entry is computed without it; a failed write (a full disk)
    leaves no temporary file and the result is returned all the same.
    """
    found = load(path)
    if found is not None:
        return found
    from contextlib import nullcontext

    from linrnn.core.files import exclusive_lock

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock: Any = exclusive_lock(path.with_name(f".{path.name}.lock"), f"the cache entry {path}", wait=True)
        lock.__enter__()
    except Exception:  # read-only or missing cache folder: no lock, no store
        lock = nullcontext()
    try:
        found = load(path)  # another process may have stored it while this one waited
        if found is not None:
            return found
        value = compute()
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
                dump(value, fh)
            os.replace(tmp, path)
        except Exception:  # read-only home, full disk: the cache is optional
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        return value
    finally:
        lock.__exit__(None, None, None)


def _load_pickle(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except Exception:  # missing, stale format or unreadable: recompute
        return None


def disk_cached(name: str, compute: Callable[[], T]) -> T:
    """Return ``compute()``, reusing a pickled result made by identical code."""
    if os.environ.get("LINRNN_NO_CACHE"):
        return compute()
    return _cached(cache_dir() / f"{name}-{code_key()}.pickle", _load_pickle,
                   lambda v, fh: pickle.dump(v, fh, protocol=pickle.HIGHEST_PROTOCOL), "wb", compute)


def data_cached(name: str, compute: Callable[[], dict]) -> dict:
    """Return ``compute()``, a JSON-ready dict, reusing one written by identical code.

    The entry ``{name}-{code_key()}.json`` holds ``{"key": code_key(), "data": ...}``;
    reading it needs only the standard library (no SymPy), which is what lets the
    numeric paths start without SymPy once the derivation is cached.
    """
    if os.environ.get("LINRNN_NO_CACHE"):
        return compute()
    key = code_key()

    def load(path: Path) -> dict | None:
        try:
            with open(path, encoding="utf-8") as fh:
                stored = json.load(fh)
        except Exception:  # missing, stale or unreadable: recompute
            return None
        if isinstance(stored, dict) and stored.get("key") == key and isinstance(stored.get("data"), dict):
            return stored["data"]
        return None

    return _cached(cache_dir() / f"{name}-{key}.json", load,
                   lambda v, fh: json.dump({"key": key, "data": v}, fh, indent=1, sort_keys=True), "w", compute)
