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
:class:`NumericalRangeError` 1       a float64 value over- or underflowed
:class:`ExternalToolError`   1       a LaTeX engine or a browser failed
===========================  ======  ==============================================
"""

from __future__ import annotations

from collections.abc import Iterable


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
    """A float64 evaluation overflowed or underflowed; the message says how to get exact values.

    ``remedy``: the Python argument that helps, as (name, value), and ``advice`` what it gives;
    the message names the argument as a Python call takes it (``pass dps=30 ...``), and
    :meth:`cli_message` as the command's flag (``rerun with --dps 30 ...``), or leaves the
    advice out for a command without that flag.
    """

    def __init__(self, message: str, remedy: tuple[str, object] | None = None, advice: str = "") -> None:
        self.base, self.remedy, self.advice = message, remedy, advice
        super().__init__(self._text(None if remedy is None else f"pass {remedy[0]}={remedy[1]}"))

    def _text(self, how: str | None) -> str:
        return self.base + (f"; {how} {self.advice}".rstrip() if how else "") + "."

    def cli_message(self, flags: Iterable[str] = ()) -> str:
        """The message for a command whose argparse destinations are ``flags``: the remedy as its flag, if it has it."""
        if self.remedy is None or self.remedy[0] not in set(flags):
            return self._text(None)
        name, value = self.remedy
        return self._text(f"rerun with --{name.replace('_', '-')} {value}")


class ExternalToolError(RuntimeError):
    """An external program (a LaTeX engine, a browser) failed; the message says where its log is."""
