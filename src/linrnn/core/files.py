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
* :func:`read_user_bytes` / :func:`read_text_file`: the one way a command reads a
  file the user names (a configuration, a results file): only a regular file of at
  most a stated size (:data:`MAX_CONFIG_BYTES`, :data:`MAX_RESULTS_BYTES`), checked
  before it is opened, so a FIFO never blocks and ``/dev/zero`` is never read.
* :func:`exclusive_lock`: an advisory lock (``fcntl.flock``) that a second run on
  the same output or cache meets as one sentence (:class:`BusyError`).
* :func:`check_new_file`: an existing file is replaced only if linrnn wrote it and
  nobody changed it since (:func:`written_by_linrnn`), or with ``--force``; a path
  that exists and is not a regular file (a FIFO, a device) is never replaced.

**How linrnn knows a file is its own.** Every single file a command writes carries a
signature, ``written by linrnn-bias VERSION; sha256 HEX``, where HEX is the SHA-256 of
the file's content without the signature: the first line of a text file (a ``%``
comment in ``.tex``, also the copied engine ``.log``; ``<!-- -->`` in HTML and
Markdown), a line just before the final ``%%EOF`` of a PDF (:func:`sign_pdf`; a PDF
comment, no object moves), the member ``linrnn_signature`` of an ``.npz`` (over the
other members' names, dtypes, shapes and bytes, :func:`save_npz_atomic`), the key
``linrnn_signature`` of a JSON object (over its other keys in canonical JSON,
:func:`sign_json`). A file
without it, or whose content no longer matches it (the user edited or annotated it),
is not linrnn's. A report directory is judged by the list in its ``report.json``
instead (:mod:`linrnn.reports.output`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from linrnn.core.errors import BusyError, DiskFullError, OutputError, UsageError

#: errno values meaning "no room left": the disk, a quota, the largest file size.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})

#: The largest configuration file (TOML) a command reads: a profile is a few kB.
MAX_CONFIG_BYTES = 1_000_000
#: The largest results file (JSON) ``report render`` reads: the quick profile's is about 0.25 MB.
MAX_RESULTS_BYTES = 64_000_000


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


def file_kind(mode: int) -> str:
    """What a file of ``st_mode`` ``mode`` is, for a sentence: "a FIFO, a named pipe", "a folder", ..."""
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO, a named pipe"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISREG, "a regular file")):
        if test(mode):
            return name
    return "not a regular file"


def _check_regular(st: os.stat_result, where: str, what: str, limit: int) -> None:
    from linrnn.core.validate import format_bytes

    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{what} {where} is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{what} {where} is not a regular file (it is {file_kind(st.st_mode)}); give a file")
    if st.st_size > limit:
        raise UsageError(f"{what} {where} is {format_bytes(st.st_size)}, larger than the {format_bytes(limit)} "
                         f"a {what.removeprefix('the ')} may be; is it the right file?")


def read_user_bytes(path: str | os.PathLike[str], what: str, limit: int) -> bytes:
    """The bytes of the user's file ``path``, refused unless it is a regular file of at most ``limit`` bytes.

    The type and size are checked with ``os.stat`` before the file is opened, so a FIFO
    (which would block), a device (``/dev/zero`` never ends) or a folder is one sentence
    and never read. The file is then opened with ``O_NONBLOCK`` (opening a FIFO swapped
    in since the check does not block) and checked again with ``fstat`` on the open
    descriptor; at most ``limit + 1`` bytes are read, so a file that grew meanwhile is
    refused too. Every problem is a :class:`UsageError` naming ``what`` and the path.
    """
    where = os.fspath(path)
    if not where.strip():
        raise UsageError(f"{what} must be a file name, got an empty path")
    try:
        _check_regular(os.stat(where), where, what, limit)
        fd = os.open(where, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise UsageError(f"{what} {where} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read {what} {where} ({(exc.strerror or str(exc)).lower()})") from None
    try:
        _check_regular(os.fstat(fd), where, what, limit)  # the path may have been replaced since the check
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {where} ({(exc.strerror or str(exc)).lower()})") from None
    finally:
        os.close(fd)
    if size > limit:
        raise UsageError(f"{what} {where} grew beyond the {limit} bytes a {what.removeprefix('the ')} may be "
                         f"while it was read")
    return b"".join(chunks)


def read_text_file(path: str | os.PathLike[str], what: str, limit: int = MAX_CONFIG_BYTES) -> str:
    """The UTF-8 text of the user's file ``path`` (:func:`read_user_bytes`); a problem is one sentence."""
    data = read_user_bytes(path, what, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{what} {os.fspath(path)} is not UTF-8 text (byte {exc.start} is "
                         f"{data[exc.start:exc.start + 1]!r}); is it a binary file?") from None


# ------------------------------------------------------------------ what linrnn wrote

#: The words of every signature; the version follows them, then ``; sha256 <hex>``.
SIGNATURE = "written by linrnn-bias"
#: The ``.npz`` member and the JSON key holding the signature.
SIGNATURE_KEY = "linrnn_signature"
_SIGNED = re.compile(rb"(?:%|<!--) ?" + SIGNATURE.encode() + rb" [^;\n]*; sha256 ([0-9a-f]{64})\b[^\n]*\n")
_TEXT_COMMENTS = {"%": ("% ", ""), "<!--": ("<!-- ", " -->")}


def _signature(digest: str) -> str:
    from linrnn.core.version import __version__

    return f"{SIGNATURE} {__version__}; sha256 {digest}"


def file_digest(path: str | os.PathLike[str]) -> str:
    """The SHA-256 (hex) of the file at ``path``, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sign_bytes(data: bytes, comment: str = "%") -> bytes:
    """``data`` after the line ``% written by linrnn-bias V; sha256 <sha256 of data> ...`` (``comment``: % or <!--)."""
    head, tail = _TEXT_COMMENTS[comment]
    return f"{head}{_signature(hashlib.sha256(data).hexdigest())} of the text below{tail}\n".encode() + data


def sign_text(text: str, comment: str = "%") -> str:
    """:func:`sign_bytes` of the UTF-8 text ``text``."""
    return sign_bytes(text.encode("utf-8"), comment).decode("utf-8")


def sign_pdf(data: bytes) -> bytes:
    """The PDF ``data`` with a line ``%written by linrnn-bias V; sha256 <hex>`` just before its last ``%%EOF``.

    ``<hex>`` is the SHA-256 of the file without that line. A comment between
    ``startxref`` and ``%%EOF`` moves no object, so the file stays a valid PDF. Data
    that does not end in ``%%EOF`` is returned as it is (unsigned: a later run then
    treats it as not linrnn's, the safe side).
    """
    at = data.rfind(b"%%EOF")
    if at < 0 or data[at + 5:].strip():
        return data
    if at == 0 or data[at - 1:at] not in (b"\n", b"\r"):
        data, at = data[:at] + b"\n" + data[at:], at + 1
    line = f"%{_signature(hashlib.sha256(data).hexdigest())}\n".encode()
    return data[:at] + line + data[at:]


def _json_digest(data: Mapping[str, Any]) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def sign_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (a JSON object) with the key ``linrnn_signature``: the SHA-256 of the rest in canonical JSON."""
    if SIGNATURE_KEY in data:
        data = {k: v for k, v in data.items() if k != SIGNATURE_KEY}
    return {**data, SIGNATURE_KEY: _signature(_json_digest(data))}


def _signature_digest(value: Any) -> str | None:
    m = re.fullmatch(re.escape(SIGNATURE) + r" \S+; sha256 ([0-9a-f]{64})", value) if isinstance(value, str) else None
    return None if m is None else m.group(1)


def _npz_digest(arrays: Mapping[str, Any]) -> str:
    import numpy as np

    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.asanyarray(arrays[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def save_npz_atomic(path: str | os.PathLike[str], arrays: Mapping[str, Any]) -> None:
    """``numpy.savez`` of ``arrays`` plus the member ``linrnn_signature``, written atomically (:func:`atomic_file`)."""
    import numpy as np

    if SIGNATURE_KEY in arrays:
        raise ValueError(f"{SIGNATURE_KEY} is reserved for the signature")
    members = {k: np.asanyarray(v) for k, v in arrays.items()}
    with atomic_file(path, "wb") as fh:
        np.savez(fh, **members, **{SIGNATURE_KEY: np.asarray(_signature(_npz_digest(members)))})


def _npz_is_signed(path: Path) -> bool:
    import zipfile

    import numpy as np

    try:
        with zipfile.ZipFile(path) as zf:  # a signature member, and only arrays: else nothing is loaded
            names = zf.namelist()
        if f"{SIGNATURE_KEY}.npy" not in names or not all(n.endswith(".npy") for n in names):
            return False
        with np.load(path, allow_pickle=False) as z:
            members = {k: z[k] for k in z.files}
    except Exception:  # noqa: BLE001 - whatever cannot be read as a signed archive is not linrnn's
        return False
    sig = members.pop(SIGNATURE_KEY)
    return sig.shape == () and _signature_digest(str(sig)) == _npz_digest(members)


def _digest_without(fh: IO[bytes], skip: tuple[int, int]) -> str:
    """SHA-256 of the open file ``fh`` without the bytes ``skip[0]:skip[1]``, read in blocks."""
    h = hashlib.sha256()
    fh.seek(0)
    for start, stop in ((0, skip[0]), (skip[1], None)):
        fh.seek(start)
        left = None if stop is None else stop - start
        while left is None or left > 0:
            block = fh.read(1 << 20 if left is None else min(1 << 20, left))
            if not block:
                break
            h.update(block)
            if left is not None:
                left -= len(block)
    return h.hexdigest()


def _contains(fh: IO[bytes], needle: bytes) -> bool:
    fh.seek(0)
    tail = b""
    for block in iter(lambda: fh.read(1 << 20), b""):
        if needle in tail + block:
            return True
        tail = block[-len(needle):]
    return False


def written_by_linrnn(path: str | os.PathLike[str]) -> bool:
    """Whether the regular file ``path`` carries a linrnn signature that matches its content (module docstring).

    The kind is told by content (a PDF header, a zip archive, JSON, else text), not by
    the name. A file without a signature is told apart by its first line, its last
    kilobytes or a scan, without loading it whole.
    """
    p = Path(path)
    if p.is_symlink() or not p.is_file():
        return False
    try:
        with p.open("rb") as fh:
            head = fh.read(512)
            if head.startswith(b"PK\x03\x04"):
                return _npz_is_signed(p)
            if head.startswith(b"%PDF-"):
                size = fh.seek(0, os.SEEK_END)
                base = max(0, size - 4096)
                fh.seek(base)
                tail = fh.read()
                at = tail.rfind(b"%%EOF")
                if at < 0 or tail[at + 5:].strip():
                    return False
                start = max(tail.rfind(b"\n", 0, at - 1), tail.rfind(b"\r", 0, at - 1)) + 1
                m = _SIGNED.fullmatch(tail[start:at])
                return m is not None and _digest_without(fh, (base + start, base + at)) == m.group(1).decode()
            if head.lstrip().startswith(b"{"):
                if not _contains(fh, f'"{SIGNATURE_KEY}"'.encode()):
                    return False
                fh.seek(0)
                obj = json.loads(fh.read())
                if not isinstance(obj, dict):
                    return False
                return _signature_digest(obj.pop(SIGNATURE_KEY, None)) == _json_digest(obj)
            m = _SIGNED.match(head)
            return m is not None and _digest_without(fh, (0, m.end())) == m.group(1).decode()
    except (OSError, ValueError, RecursionError):  # unreadable, not JSON, NaN: not linrnn's
        return False


def check_new_file(path: str | os.PathLike[str], what: str, *, force: bool) -> Path:
    """:func:`check_output_file`, and an existing file at ``path`` may be replaced: else one sentence (exit 2).

    Replaced: a file that linrnn wrote and nobody changed since (:func:`written_by_linrnn`),
    or anything with ``force`` (the replacement is a rename, so a symbolic link is replaced,
    not the file it points to). Never replaced: a FIFO, device or socket.
    """
    p = check_output_file(path, what)
    text = os.fspath(path)
    if not os.path.lexists(p):
        return p
    if not p.is_symlink() and not p.is_file():
        raise OutputError(f"{what} {text} exists and is not a regular file (a pipe or a device); "
                          f"choose another name")
    if not force and not written_by_linrnn(p):
        raise OutputError(f"{what} {text} already exists and linrnn did not write it (or it was changed since); "
                          f"pass --force to replace it")
    return p
