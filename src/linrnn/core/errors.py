"""The exception types that the command line turns into one sentence and an exit status.

===========================  ======  ==============================================
exception                    exit    meaning
===========================  ======  ==============================================
:class:`UsageError`          2       bad input the user can fix (a flag, a value, a
                                     size beyond the memory budget, a missing engine)
:class:`OutputError`         2       an output path that cannot be written (a
                                     missing folder, no permission, a read-only or
                                     special file system); a :class:`UsageError`
:class:`BusyError`           2       another run holds the output's lock
:class:`DiskFullError`       1       the disk filled while writing (not a claim
                                     failure: the message names the path)
:class:`NumericalRangeError` 1       a float64 evaluation overflowed
:class:`ExternalToolError`   1       a LaTeX engine or a browser failed
===========================  ======  ==============================================
"""

from __future__ import annotations


class UsageError(ValueError):
    """A problem the user can fix (bad flag, impossible value, missing engine).

    The command line prints ``str(err)`` as a single sentence on stderr and exits
    with status 2; library callers get an ordinary ``ValueError`` subclass.
    """


class OutputError(UsageError):
    """An output path that cannot be written; the message names the path (exit 2)."""


class BusyError(UsageError):
    """Another linrnn process holds the lock of an output directory or cache (exit 2)."""


class DiskFullError(OSError):
    """The disk (or a quota) filled up while writing ``path``: exit 1, worded apart from a failing claim."""


class NumericalRangeError(ArithmeticError):
    """A float64 evaluation overflowed; the message says how to get finite values."""


class ExternalToolError(RuntimeError):
    """An external program (a LaTeX engine, a browser) failed; the message says where its log is."""
