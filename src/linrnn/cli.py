"""The ``linrnn`` command: a thin layer that parses arguments and calls plain functions.

Each subcommand group is a module of the application layer (``derive_cli.py``,
``verify_cli.py`` with ``train_cli.py``, ``report_cli.py``, ``calibrate_cli.py``), so it may
reach every layer below, the model families included, and exposes ``register(subparsers)``. Those
modules import only the standard library at import time, so ``linrnn --help`` and
every subcommand's ``--help`` answer without importing SymPy, NumPy or matplotlib.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from linrnn import __version__
from linrnn.core.errors import DiskFullError, ExternalToolError, NumericalRangeError, UsageError

_GROUPS = (
    ("derive", "linrnn.derive_cli", "closed forms in q = sigma_W^2: lag weights, NNGP, LaTeX derivation"),
    ("verify", "linrnn.verify_cli", "Monte Carlo checks of the derived formulas on wide linear RNNs"),
    ("report", "linrnn.report_cli", "run the claim suite and write a self-contained report"),
    ("calibrate", "linrnn.calibrate_cli", "run every claim over many seeds on Dask: false-failure rates and power"),
)


class _Parser(argparse.ArgumentParser):
    """argparse with errors as one sentence and exit status 2."""

    def error(self, message: str) -> None:  # pragma: no cover - exercised via CLI tests
        self.exit(2, f"linrnn: error: {message}.\n" if not message.endswith(".") else f"linrnn: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="linrnn",
        description=(
            "Derive and verify the implicit bias of wide linear RNNs "
            "(Emami et al., 'Implicit Bias of Linear RNNs', ICML 2021)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"linrnn-bias {__version__}")
    groups = parser.add_subparsers(dest="group", metavar="{derive,verify,report,calibrate}", parser_class=_Parser)
    groups.required = True
    for name, module_name, help_text in _GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a group not built yet
            if exc.name != module_name:
                raise
            continue
        module.register(groups, name, help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every error the user can act on ends as one sentence on stderr.

    Exit statuses (:mod:`linrnn.core.errors`, :mod:`linrnn.core.outcome`): 0 pass,
    1 fail (or a claim that erred, a full disk, a failed external tool), 2 bad input
    or an unwritable output, 3 inconclusive, 130 interrupted (Ctrl-C, or SIGTERM, which
    ``timeout`` and batch schedulers send: it cleans up as Ctrl-C does).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with sigterm_as_interrupt():
            status = args.func(args)
    except UsageError as exc:
        print(f"linrnn: error: {_sentence(exc)}", file=sys.stderr)
        return 2
    except DiskFullError as exc:
        print(f"linrnn: error: {_sentence(exc.strerror or exc)}", file=sys.stderr)
        return 1
    except NumericalRangeError as exc:
        print(f"linrnn: {exc.cli_message(vars(args))}", file=sys.stderr)
        return 1
    except ExternalToolError as exc:
        print(f"linrnn: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("linrnn: interrupted; nothing was written.", file=sys.stderr)
        return 130
    except OSError as exc:  # one that no writer classified: name the path and the reason
        from linrnn.core.files import write_error

        err = write_error(exc, exc.filename or "an output file")
        print(f"linrnn: error: {_sentence(err.strerror if isinstance(err, OSError) else err)}", file=sys.stderr)
        return 1 if isinstance(err, DiskFullError) else 2
    return int(status or 0)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block SIGTERM raises KeyboardInterrupt, so that it cleans up as Ctrl-C does (temporary files
    and folders removed, locks released, finished work kept) and the command exits with 130."""
    try:
        old = signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread: leave the handler alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _sentence(exc: object) -> str:
    """One line ending with a full stop."""
    text = " ".join(str(exc).split())
    return text if text.endswith((".", "?", "!")) else text + "."


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
