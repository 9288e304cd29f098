"""The outcomes of a claim, a control and a run, and the exit statuses they map to.

Every statistical check ends in one of three outcomes, plus one for a check that
could not be computed:

* ``pass``: the experiment is consistent with the theory at the stated level, the claim
  has at least one negative control, and every negative control was rejected (the check
  had the power to see a wrong theory);
* ``fail``: the experiment refutes the theory at the stated level (false-failure rate
  at most the claim's stated alpha when the theory is true);
* ``inconclusive``: the theory is not refuted, but some control was not rejected (the
  run lacks power, and the result says what size would decide it), or no control is
  left (:data:`UNTESTED`);
* ``error``: a statistic is not finite (an overflow, an underflow, a division by zero);
  the result carries one sentence that names the cause. Never a pass.

A control's own outcome is ``rejected``, ``not_rejected`` or ``error``.

The rule of the controls, the same for every claim and command:

* a control that coincides with the theory at the sizes asked (the same lag weights,
  the same kernel, the same interpolant) is no control: it is left out (and listed as
  skipped where the command prints its controls);
* a claim whose statistic passes but which has no control left has tested nothing: it
  is ``inconclusive`` (:data:`UNTESTED`), never ``pass``;
* where that is known before any work (the configuration alone decides it), the command
  refuses the configuration as bad input in one sentence that names the setting and
  what would make it testable (:func:`untestable`), before any draw or experiment.

Exit statuses of the commands: 0 pass, 1 fail (or error: nothing was decided and the
message says why), 2 bad input, 3 inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from linrnn.core.errors import UsageError

OUTCOMES: tuple[str, ...] = ("pass", "fail", "inconclusive", "error")
STATISTIC_OUTCOMES: tuple[str, ...] = ("pass", "fail", "error")
CONTROL_OUTCOMES: tuple[str, ...] = ("rejected", "not_rejected", "error")

#: Exit status of a command whose overall outcome is the key.
EXIT_STATUS: dict[str, int] = {"pass": 0, "fail": 1, "error": 1, "inconclusive": 3}
EXIT_BAD_INPUT = 2

#: Precedence when outcomes combine: a refutation is the strongest finding, then a
#: check that could not be computed, then a lack of power.
_PRECEDENCE = ("fail", "error", "inconclusive", "pass")

#: Why a claim whose statistic passed is inconclusive when it has no control left.
UNTESTED = "untested: no negative control differs from the theory at these sizes"


def _check(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def claim_outcome(statistic: str, controls: Iterable[str]) -> str:
    """Combine a claim's own test outcome with its controls' outcomes.

    error if the statistic or any control is an error; else fail if the statistic
    fails; else inconclusive if there is no control (:data:`UNTESTED`: a check that
    no wrong theory could fail has tested nothing) or any control was not rejected;
    else pass. ``controls`` are the valid controls only: one that coincides with the
    theory at the sizes asked is left out by the caller.
    """
    _check(statistic, STATISTIC_OUTCOMES, "a statistic's outcome")
    ctrl = [_check(c, CONTROL_OUTCOMES, "a control's outcome") for c in controls]
    if statistic == "error" or "error" in ctrl:
        return "error"
    if statistic == "fail":
        return "fail"
    if not ctrl or "not_rejected" in ctrl:
        return "inconclusive"
    return "pass"


def untested(statistic: str, controls: Iterable[str]) -> bool:
    """Whether :func:`claim_outcome` is inconclusive because no control is left (:data:`UNTESTED`)."""
    return statistic == "pass" and not list(controls)


def untestable(setting: str, what: str, detail: str, remedy: str) -> UsageError:
    """The one sentence that refuses a configuration under which every control equals the theory.

    ``setting``: the setting as the user wrote it (``"--lags = 1"``, ``"[ntk] lags = 1"``);
    ``what``: what the claim tests; ``detail``: why no control is left; ``remedy``: what
    would make it testable. For example "lags = 1 cannot test the lag weights: every
    negative control equals the derived theory at lag 0; use lags >= 2".
    """
    return UsageError(f"{setting} cannot test {what}: {detail}; {remedy}")


def combine(outcomes: Iterable[str]) -> str:
    """The outcome of a run from its claims' outcomes (fail > error > inconclusive > pass); pass if none."""
    seen = {_check(o, OUTCOMES, "an outcome") for o in outcomes}
    for o in _PRECEDENCE:
        if o in seen:
            return o
    return "pass"


def exit_status(outcome: str) -> int:
    """0 pass, 1 fail or error, 3 inconclusive."""
    return EXIT_STATUS[_check(outcome, OUTCOMES, "an outcome")]


def finite_or_error(value: float, cause: str) -> str | None:
    """None when ``value`` is finite, else the one-sentence cause of the error (for a result's ``error`` field)."""
    return None if math.isfinite(value) else cause
