"""Output files: checked before the work, written so that a reader never sees half of one.

* :func:`check_output_file` / :func:`check_output_dir`: called by every command
  before any computation, so that an output path that cannot be written (a missing
  folder, a folder without write permission, ``/proc``, a read-only file system)
  is one sentence naming the path and exit 2 (:class:`OutputError`), not a failure
  after minutes of work. Writability is probed by creating (and removing) a
  temporary file in the target's folder: permission bits alone do not tell (root,
  ACLs, ``/proc``, read-only mounts).
* :func:`atomic_file` / :func:`write_text_atomic`: a temporary file beside the
  target, then ``os.replace``; on any failure the temporary file is removed and the
  target is left as it was. An ``OSError`` while writing becomes
  :class:`DiskFullError` (the disk or a quota filled: exit 1) or
  :class:`OutputError` (exit 2), both naming the path (:func:`write_error`).
* :func:`exclusive_lock`: an advisory lock (``fcntl.flock``) that a second run on
  the same output or cache meets as one sentence (:class:`BusyError`).
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from linrnn.core.errors import BusyError, DiskFullError, OutputError, UsageError

#: errno values meaning "no room left": the disk, a quota, the largest file size.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def write_error(exc: OSError, path: str | os.PathLike[str]) -> Exception:
    """The error to raise for ``exc`` met while writing ``path``: disk full (exit 1) or unwritable (exit 2)."""
    if isinstance(exc, DiskFullError):
        return exc
    where = str(path)
    reason = exc.strerror or str(exc)
    if exc.errno in NO_SPACE:
        err: Exception = DiskFullError(exc.errno, f"could not finish writing {where}: {reason.lower()} "
                                                   f"(the disk filled during the run; no claim failed); "
                                                   f"free some space and run again")
    else:
        err = OutputError(f"cannot write {where} ({reason.lower()})")
    return err


def _probe(folder: Path, target: str, what: str) -> None:
    """Create and remove a temporary file in ``folder``; an OSError becomes :func:`write_error` for ``target``."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".linrnn-probe-", suffix=".tmp")
    except OSError as exc:
        raise write_error(exc, f"{what} {target}") from None
    os.close(fd)
    os.unlink(tmp)


def check_output_file(path: str | os.PathLike[str], what: str = "the output file") -> Path:
    """``path`` as a Path, once it is known that a file can be written there (else :class:`OutputError`)."""
    text = os.fspath(path)
    if not text.strip():
        raise OutputError(f"{what} must be a file name, got an empty path")
    p = Path(text)
    if p.is_dir():
        raise OutputError(f"{what} {text} is a directory; give a file name")
    folder = p.parent
    if not folder.exists():
        raise OutputError(f"cannot write {what} {text}: the folder {folder} does not exist")
    if not folder.is_dir():
        raise OutputError(f"cannot write {what} {text}: {folder} is not a folder")
    _probe(folder, text, what)
    return p


def check_output_dir(path: str | os.PathLike[str], what: str = "the output directory") -> Path:
    """``path`` as an absolute Path for a directory that is built beside itself and moved into place.

    Refused: an empty name; the current directory or a folder above it (the
    directory is replaced as a whole, and the shell would be left in a deleted
    folder); an existing file; a parent folder that is missing or not writable.
    """
    text = os.fspath(path)
    if not text.strip():
        raise OutputError(f"{what} must be a folder name, got an empty path")
    p = Path(text).resolve()
    cwd = Path.cwd().resolve()
    if p == cwd or p in cwd.parents:
        raise OutputError(f"{what} {text!s} is the current folder or one above it, which a report replaces as a "
                          f"whole; give a new folder, e.g. -o linrnn-report")
    if p.exists() and not p.is_dir():
        raise OutputError(f"{what} {text} exists and is not a folder")
    if not p.parent.is_dir():
        raise OutputError(f"cannot write {what} {text}: the folder {p.parent} does not exist")
    _probe(p.parent, text, what)
    return p


@contextmanager
def atomic_file(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Yield a file object whose content replaces ``path`` only when the block ends without error.

    ``mode``: ``"w"`` (UTF-8 text) or ``"wb"``. The file gets the permissions a plain
    ``open`` would give (0666 less the umask). Write errors name ``path``
    (:func:`write_error`); nothing is left behind on failure.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise write_error(exc, path) from None
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if "b" not in mode else {})) as fh:
            yield fh
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise write_error(exc, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, creating its folder; no temporary file is left on failure."""
    with atomic_file(path, "w") as fh:
        fh.write(text)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path, "wb") as fh:
        fh.write(data)


@contextmanager
def exclusive_lock(lock_path: str | os.PathLike[str], what: str, *, wait: bool = False) -> Iterator[None]:
    """Hold an advisory lock on ``lock_path`` (created if missing, removed on release) for the block.

    ``wait=False``: if another process holds it, raise :class:`BusyError` naming
    ``what`` and that process; ``wait=True``: block until it is free (for caches,
    where the second process then reuses what the first stored). Where ``fcntl`` is
    missing (Windows) the block runs unlocked. The lock file is unlinked before it is
    released; a process that locked a file since unlinked retries on the new one.
    """
    try:
        import fcntl
    except ModuleNotFoundError:  # pragma: no cover - not POSIX
        yield
        return
    lock_path = Path(lock_path)
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise write_error(exc, lock_path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            try:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise BusyError(f"another linrnn run (process {holder}) is writing {what}; wait for it to finish "
                            f"or choose another output") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the file was removed by its previous holder: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        try:
            os.unlink(lock_path)
        except OSError:
            pass
        os.close(fd)


def read_text_file(path: str | os.PathLike[str], what: str) -> str:
    """The UTF-8 text of the user's file ``path``; any problem reading it is one sentence (:class:`UsageError`)."""
    p = Path(path)
    if not os.fspath(path).strip():
        raise UsageError(f"{what} must be a file name, got an empty path")
    if p.is_dir():
        raise UsageError(f"{what} {p} is a folder, not a file")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{what} {p} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {p} ({(exc.strerror or str(exc)).lower()})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} {p} is not UTF-8 text (byte {exc.start} is {data[exc.start:exc.start + 1]!r}); "
                         f"is it a binary file?") from None
