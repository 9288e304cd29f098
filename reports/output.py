"""Atomic output directories: a report appears complete or not at all.

A report is built in a temporary sibling ``.DIR.tmp-XXXX`` (same file system) and
moved into place at the end (:func:`atomic_dir`). An interrupted run (Ctrl-C, a
crash, a full disk) removes its temporary directory and leaves ``DIR`` as it was.

The experiment cache is the exception by design: it lives in ``DIR/.cache`` from
the first finished experiment on, so a run that was interrupted leaves ``DIR``
holding only ``.cache`` and the next run resumes from it. Such a directory (empty,
or with nothing but ``.cache``) is not a report and is used without ``--force``;
when the report is published the cache moves into the new ``DIR``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from linrnn.core.errors import UsageError

CACHE_NAME = ".cache"


def holds_report(out: Path) -> bool:
    """Whether ``out`` exists with anything besides the experiment cache."""
    if not out.exists():
        return False
    if not out.is_dir():
        return True
    return any(p.name != CACHE_NAME for p in out.iterdir())


def check_target(out: Path, force: bool) -> None:
    """Refuse to overwrite an existing report (or a file) without ``force``; the parent must exist."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{str(out)!r} exists and is not a directory")
    if holds_report(out) and not force:
        raise UsageError(f"the output directory {str(out)!r} already exists; pass --force to replace it")
    if not out.resolve().parent.is_dir():
        raise UsageError(f"the directory {str(out.resolve().parent)!r} does not exist")


def _publish(tmp: Path, out: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    cache = out / CACHE_NAME
    if cache.is_dir() and not (tmp / CACHE_NAME).exists():
        os.replace(cache, tmp / CACHE_NAME)
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.resolve().parent))
        os.replace(out, old / "report")
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


@contextmanager
def atomic_dir(out: str | os.PathLike[str], *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``out`` when the block finishes without error."""
    target = Path(out)
    check_target(target, force)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.resolve().parent))
    try:
        yield tmp
        _publish(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
