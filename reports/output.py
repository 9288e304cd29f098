"""Report directories: a report appears complete or not at all, and nothing else is ever deleted.

A report is built in a temporary sibling ``.DIR.tmp-XXXX`` (same file system) and
moved into place at the end (:func:`atomic_dir`). An interrupted run (Ctrl-C, a
crash, a full disk) removes its temporary directory and leaves ``DIR`` as it was.

What may be replaced (:func:`classify`, :func:`check_target`):

* a missing or empty directory, or one holding nothing but the experiment cache
  ``.cache`` (an interrupted run): used without ``--force``;
* a **report directory**: one whose ``report.json`` was written by linrnn-bias and
  which holds nothing but the files a report consists of (:data:`REPORT_ENTRIES`,
  and PNG/SVG files in ``figures/``): replaced only with ``--force``;
* anything else (a directory of the user's files, a report directory to which other
  files were added, a file): **refused, with or without** ``--force``. ``--force``
  never deletes a file that a report did not write.

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
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from linrnn.core.errors import UsageError
from linrnn.core.files import check_output_dir, exclusive_lock, write_error

CACHE_NAME = ".cache"

#: The entries a report directory consists of (render.write_report, the suite's PDF and cache).
REPORT_ENTRIES = frozenset({"report.json", "report.html", "report.md", "report.tex", "derivation.tex",
                            "derivation.pdf", "derivation.log", "figures", CACHE_NAME})
FIGURE_SUFFIXES = (".png", ".svg")


def _is_linrnn_results(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("tool"), dict) and data["tool"].get("name") == "linrnn-bias"


def classify(out: Path) -> tuple[str, list[str]]:
    """What ``out`` is: ``("absent"|"empty"|"report"|"foreign"|"file", entries not part of a report)``."""
    if not out.exists():
        return "absent", []
    if not out.is_dir():
        return "file", []
    names = sorted(p.name for p in out.iterdir())
    if all(n == CACHE_NAME for n in names):
        return "empty", []
    foreign = [n for n in names if n not in REPORT_ENTRIES]
    figures = out / "figures"
    if figures.is_dir():
        foreign += [f"figures/{p.name}" for p in sorted(figures.iterdir())
                    if not (p.is_file() and p.suffix in FIGURE_SUFFIXES)]
    elif figures.exists():
        foreign.append("figures")
    if not _is_linrnn_results(out / "report.json"):
        return "foreign", foreign
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
        if (path / "report.json").exists() and _is_linrnn_results(path / "report.json"):
            why = f"it also holds files that a report does not write ({shown})"
        else:
            why = "it is not a linrnn report (it has no report.json written by linrnn)"
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
        yield path


def _publish(tmp: Path, out: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
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
        yield tmp
        check_target(out, force)  # nothing of the user's appeared in the meantime
        _publish(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(exc, os.fspath(out)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
