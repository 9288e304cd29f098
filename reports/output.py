"""Report directories: a report appears complete or not at all, and nothing else is ever deleted.

A report is built in a temporary sibling ``.DIR.tmp-XXXXXXXX`` (same file system) and
moved into place at the end (:func:`atomic_dir`). An interrupted run (Ctrl-C, SIGTERM,
a crash, a full disk) removes its temporary directory and leaves ``DIR`` as it was. A
run killed outright (``kill -9``, a power cut) cannot: the next run on ``DIR``, once
it holds the lock, removes the temporary directories of earlier runs on ``DIR``
(:func:`remove_stale`): only folders named ``.DIR.tmp-`` and eight characters of
:func:`tempfile.mkdtemp` that hold the marker file :data:`TMP_MARKER` naming ``DIR``,
which every run writes first; a folder without it is never touched. A write that
fails names the file (as it would be published in ``DIR``), not only the folder.

What may be replaced (:func:`classify`, :func:`check_target`):

* a missing or empty directory, or one holding nothing but the experiment cache
  folder ``.cache`` (an interrupted run): used without ``--force``;
* a **report directory**: one whose ``report.json`` is a results file of linrnn-bias
  (it validates, :mod:`linrnn.reports.schema`) and in which every other file is one the
  report wrote: listed in ``report.json``'s ``files`` with the SHA-256 it had when
  written, under a name that a report of those results writes
  (:func:`linrnn.reports.manifest.report_names`), as a regular file (no link), in the
  folders a report makes (``figures``); the ``.cache`` folder is allowed too, since it
  is moved into the new report, never deleted. Replaced only with ``--force``.
  A report written before ``files`` existed is judged by the names alone.
* anything else (a directory of the user's files, a report directory to which a file
  was added or in which a file was changed, a file): **refused, with or without**
  ``--force``, in one sentence naming the foreign entries. ``--force`` never deletes a
  file that a report did not write.

Why both the name and the hash: the hash alone would let a hand-edited ``report.json``
claim any file the user cares to list (with its true hash); the name alone would let a
user's picture saved under a figure's name, or a user's edits to ``report.md``, be
deleted. Together a listed file is replaced only if a report of these results would
write that name and its bytes are the ones the report wrote.

The experiment cache lives in ``DIR/.cache`` from the first finished experiment on,
so a run that was interrupted leaves ``DIR`` holding only ``.cache`` and the next run
resumes from it; when the report is published the cache moves into the new ``DIR``.

Two runs on one directory: :func:`atomic_dir` and :func:`directory_lock` hold an
advisory lock on the sibling file ``.DIR.lock`` from the first check to the
publication, so a second run stops at once with one sentence
(:class:`linrnn.core.errors.BusyError`) instead of computing everything and then
silently replacing the first run's report.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from linrnn.core.errors import DiskFullError, UsageError
from linrnn.core.files import check_output_dir, exclusive_lock, file_digest, write_error

CACHE_NAME = ".cache"
#: The file that marks a temporary report directory as made by a linrnn run (JSON: the output's name, the pid).
TMP_MARKER = ".linrnn-tmp"

#: The folders a report makes inside its directory (besides the cache, which is kept).
REPORT_FOLDERS = frozenset({"figures"})


def _results(path: Path) -> Any:
    """The validated results in ``path`` if it is a regular file that linrnn-bias wrote, else None."""
    from linrnn.reports import schema

    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = schema.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # SchemaError and UsageError are ValueErrors
        return None
    tool = data.get("tool")
    return data if isinstance(tool, dict) and tool.get("name") == "linrnn-bias" else None


def _entries(out: Path) -> tuple[list[str], list[str]]:
    """(files, foreign) under ``out``, as POSIX paths: the regular files in ``out`` and its report folders,
    and everything that a report never makes (links, other folders, special files); the cache is skipped."""
    found: list[str] = []
    foreign: list[str] = []

    def walk(folder: Path, prefix: str) -> None:
        for p in sorted(folder.iterdir()):
            rel = prefix + p.name
            if not prefix and p.name == CACHE_NAME and p.is_dir():
                continue
            if p.is_symlink():
                foreign.append(rel)
            elif p.is_dir() and not prefix and p.name in REPORT_FOLDERS:
                walk(p, rel + "/")
            elif p.is_file():
                found.append(rel)
            else:
                foreign.append(rel)

    walk(out, "")
    return found, foreign


def classify(out: Path) -> tuple[str, list[str]]:
    """What ``out`` is: ``("absent"|"empty"|"report"|"foreign"|"file", entries not part of a report)``.

    See the module docstring; an entry whose name a report writes but whose content is
    not the listed one appears as ``"NAME (changed since the report wrote it)"``.
    """
    if not out.exists() and not out.is_symlink():
        return "absent", []
    if out.is_symlink() or not out.is_dir():
        return "file", []
    if all(p.name == CACHE_NAME and p.is_dir() for p in out.iterdir()):
        return "empty", []
    found, foreign = _entries(out)
    results = _results(out / "report.json")
    if results is None:
        return "foreign", foreign + [n for n in found if n != "report.json"]
    from linrnn.reports.manifest import report_names

    names = report_names(results)
    listed = results.get("files")
    for name in found:
        if name == "report.json":
            continue
        if name not in names:
            foreign.append(name)
        elif listed is not None and name not in listed:
            foreign.append(f"{name} (not listed in report.json)")
        elif listed is not None and file_digest(out / name) != listed[name]:
            foreign.append(f"{name} (changed since the report wrote it)")
    return ("foreign" if foreign else "report"), foreign


def holds_report(out: Path) -> bool:
    """Whether ``out`` exists with anything besides the experiment cache."""
    return classify(out)[0] not in ("absent", "empty")


def check_target(out: str | os.PathLike[str], force: bool) -> Path:
    """``out`` (absolute) once it is known that a report may be written there; else one sentence.

    See the module docstring for what is refused; the parent folder must exist and be
    writable (:func:`linrnn.core.files.check_output_dir`).
    """
    text = os.fspath(out)
    path = check_output_dir(out, "the report directory")
    kind, foreign = classify(path)
    if kind == "report" and not force:
        raise UsageError(f"the report directory {text} already holds a report; pass --force to replace it")
    if kind == "foreign":
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        if _results(path / "report.json") is not None:
            why = f"it also holds files that its report did not write ({shown})"
        else:
            why = ("it is not a linrnn report (it has no report.json that linrnn wrote and can read"
                   + (f"; it holds {shown}" if foreign else "") + ")")
        raise UsageError(f"refusing to write into {text}: {why}; --force replaces only report directories, "
                         f"so choose another -o")
    return path


def lock_path(out: Path) -> Path:
    """The sibling lock file of the report directory ``out``."""
    return out.parent / f".{out.name}.lock"


@contextmanager
def directory_lock(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold the lock of the report directory ``out`` (absolute path yielded); a second holder gets BusyError."""
    path = check_output_dir(out, "the report directory")
    with exclusive_lock(lock_path(path), f"the report directory {os.fspath(out)}"):
        remove_stale(path)  # no run alive on ``out`` now: what killed runs left is removed first
        yield path


def _publish(tmp: Path, out: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    (tmp / TMP_MARKER).unlink(missing_ok=True)  # the report holds nothing but its own files
    cache = out / CACHE_NAME
    if cache.is_dir() and not (tmp / CACHE_NAME).exists():
        os.replace(cache, tmp / CACHE_NAME)
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / "report")
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def _tmp_pattern(out: Path) -> re.Pattern[str]:
    """The names :func:`tempfile.mkdtemp` gives the temporary directories of ``out`` (eight random characters)."""
    return re.compile(rf"\.{re.escape(out.name)}\.tmp-[a-z0-9_]{{8}}")


def _marked_for(tmp: Path, out: Path) -> bool:
    """Whether ``tmp`` is a real folder holding the marker of a linrnn run on ``out``."""
    marker = tmp / TMP_MARKER
    if tmp.is_symlink() or not tmp.is_dir() or marker.is_symlink():
        return False
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("output") == out.name


def remove_stale(out: Path) -> list[Path]:
    """Remove the temporary directories that killed runs on ``out`` left beside it; return them.

    Call it only while holding the lock of ``out`` (:func:`directory_lock`): a run
    alive on ``out`` would hold it, so every marked temporary directory of ``out`` is
    then a dead run's. An experiment cache that a killed run had already moved into
    its temporary directory is moved back into ``out`` first (when ``out`` has none).
    """
    pattern = _tmp_pattern(out)
    removed = []
    try:
        siblings = sorted(out.parent.iterdir())
    except OSError:
        return []
    for tmp in siblings:
        if not pattern.fullmatch(tmp.name) or not _marked_for(tmp, out):
            continue
        cache = tmp / CACHE_NAME
        try:
            if cache.is_dir() and not cache.is_symlink() and not (out / CACHE_NAME).exists() and \
                    (out.is_dir() or not out.exists()):
                out.mkdir(exist_ok=True)
                os.replace(cache, out / CACHE_NAME)
        except OSError:
            pass
        shutil.rmtree(tmp, ignore_errors=True)
        removed.append(tmp)
    return removed


def _failed_file(exc: OSError, tmp: Path, out: str) -> str:
    """The file whose write failed, named as it would be published in ``out`` (else ``out`` itself)."""
    name = exc.filename
    if not name:
        return out
    try:
        return os.path.join(out, os.fspath(Path(os.fspath(name)).relative_to(tmp)))
    except ValueError:
        return os.fspath(name)


@contextmanager
def atomic_dir(out: str | os.PathLike[str], *, force: bool = False, locked: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``out`` when the block finishes without error.

    ``locked``: the caller already holds :func:`directory_lock` for ``out``;
    otherwise the lock is taken here for the block.
    """
    if not locked:
        with directory_lock(out):
            with atomic_dir(out, force=force, locked=True) as tmp:
                yield tmp
        return
    target = check_target(out, force)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    except OSError as exc:
        raise write_error(exc, os.fspath(out)) from None
    try:
        try:
            (tmp / TMP_MARKER).write_text(json.dumps({"output": target.name, "pid": os.getpid()}), encoding="utf-8")
        except OSError as exc:
            exc.filename = exc.filename or str(tmp / TMP_MARKER)
            raise
        yield tmp
        check_target(out, force)  # nothing of the user's appeared in the meantime
        _publish(tmp, target)
    except DiskFullError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DiskFullError(exc.errno, str(exc.strerror).replace(str(tmp), os.fspath(out))) from None
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(exc, _failed_file(exc, tmp, os.fspath(out))) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
