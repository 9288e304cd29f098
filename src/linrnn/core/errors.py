"""The one exception type that the command line turns into a sentence and exit 2."""

from __future__ import annotations


class UsageError(ValueError):
    """A problem the user can fix (bad flag, impossible value, missing engine).

    The command line prints ``str(err)`` as a single sentence on stderr and exits
    with status 2; library callers get an ordinary ``ValueError`` subclass.
    """


class NumericalRangeError(ArithmeticError):
    """A float64 evaluation overflowed; the message says how to get finite values."""


class ExternalToolError(RuntimeError):
    """An external program (a LaTeX engine, a browser) failed; the message says where its log is."""
