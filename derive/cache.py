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
result: a missing, stale or unreadable entry is recomputed, and so is an entry with
the right key whose content the caller cannot use (a pickled object of another type,
JSON data that its ``parse`` refuses).
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
R = TypeVar("R")


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


def _usable(found: Any, accept: Callable[[Any], R]) -> tuple[bool, R | None]:
    """(True, ``accept(found)``) for a stored entry that ``accept`` takes; (False, None) for a malformed one."""
    if found is None:
        return False, None
    try:
        return True, accept(found)
    except Exception:  # a malformed entry with the right key: a miss, recomputed and stored again
        return False, None


def _cached(path: Path, load: Callable[[Path], T | None], dump: Callable[[T, IO[Any]], None], mode: str,
            compute: Callable[[], T], accept: Callable[[T], R]) -> R:
    """``accept(load(path))`` if it holds a usable entry, else ``accept(compute())``, the computed value stored
    at ``path``; one computation at a time.

    ``accept`` checks (and may convert) an entry; on a stored entry any exception it
    raises makes the entry a miss, as a missing, stale or unreadable one is.

    Two processes that miss the same entry do not both compute it: the second waits
    on the entry's lock file (``fcntl.flock``, :func:`linrnn.core.files.exclusive_lock`)
    and then finds what the first stored. Where the lock cannot be taken (a read-only
    cache folder) the entry is computed without it; a failed write (a full disk)
    leaves no temporary file and the result is returned all the same.
    """
    ok, value = _usable(load(path), accept)
    if ok:
        return value  # type: ignore[return-value]
    from contextlib import nullcontext

    from linrnn.core.files import exclusive_lock

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock: Any = exclusive_lock(path.with_name(f".{path.name}.lock"), f"the cache entry {path}", wait=True)
        lock.__enter__()
    except Exception:  # read-only or missing cache folder: no lock, no store
        lock = nullcontext()
    try:
        ok, value = _usable(load(path), accept)  # another process may have stored it while this one waited
        if ok:
            return value  # type: ignore[return-value]
        computed = compute()
        result = accept(computed)
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
                dump(computed, fh)
            os.replace(tmp, path)
        except Exception:  # read-only home, full disk: the cache is optional
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        return result
    finally:
        lock.__exit__(None, None, None)


def _load_pickle(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except Exception:  # missing, stale format or unreadable: recompute
        return None


def disk_cached(name: str, compute: Callable[[], T], kind: type | tuple[type, ...] | None = None) -> T:
    """Return ``compute()``, reusing a pickled result made by identical code.

    ``kind``: the type of the result; a stored object of another type is a miss.
    """
    def accept(value: T) -> T:
        if kind is not None and not isinstance(value, kind):
            raise TypeError(f"the cache entry {name} holds a {type(value).__name__}")
        return value

    if os.environ.get("LINRNN_NO_CACHE"):
        return accept(compute())
    return _cached(cache_dir() / f"{name}-{code_key()}.pickle", _load_pickle,
                   lambda v, fh: pickle.dump(v, fh, protocol=pickle.HIGHEST_PROTOCOL), "wb", compute, accept)


def data_cached(name: str, compute: Callable[[], dict], parse: Callable[[dict], R] | None = None) -> R:
    """Return ``parse(compute())``, reusing the JSON-ready dict written by identical code.

    The entry ``{name}-{code_key()}.json`` holds ``{"key": code_key(), "data": ...}``;
    reading it needs only the standard library (no SymPy), which is what lets the
    numeric paths start without SymPy once the derivation is cached. ``parse`` turns
    the data into what the caller uses and raises on malformed data: a stored entry
    that it refuses is recomputed (default: the dict itself).
    """
    accept: Callable[[dict], Any] = parse if parse is not None else (lambda d: d)
    if os.environ.get("LINRNN_NO_CACHE"):
        return accept(compute())
    key = code_key()

    def load(path: Path) -> dict | None:
        try:
            with open(path, encoding="utf-8") as fh:
                stored = json.load(fh)
        except Exception:  # missing, stale or unreadable (deep nesting included): recompute
            return None
        if isinstance(stored, dict) and stored.get("key") == key and isinstance(stored.get("data"), dict):
            return stored["data"]
        return None

    return _cached(cache_dir() / f"{name}-{key}.json", load,
                   lambda v, fh: json.dump({"key": key, "data": v}, fh, indent=1, sort_keys=True), "w", compute,
                   accept)
