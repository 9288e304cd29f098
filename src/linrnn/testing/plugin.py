"""The pytest plugin of :mod:`linrnn.testing`: a fixture and a marker for claims, and one false-failure budget.

Registered through the ``pytest11`` entry point ``linrnn`` (``pyproject.toml``), so pytest
loads it wherever linrnn is installed; it stays inactive (no import beyond pytest, no
output) unless a test uses it:

* the fixture ``linrnn_claim``: ``linrnn_claim(name, model, size="tiny", seed=None)``
  asserts a registry claim (:func:`linrnn.testing.assert_claim`) and
  ``linrnn_claim.draw(params, model, **options)`` one draw of the user's own parameters
  (:func:`linrnn.testing.check_draw`), each at the claim's share of the session's alpha;
* the marker ``linrnn_claim(claims=1)``: declares how many claims (assertions through the
  fixture) the test makes; a test that uses the fixture without the marker declares one.

The budget: every claim asserted in one pytest session shares a family-wise false-failure
rate ``linrnn_family_alpha`` (an ini option, default 1e-3). After collection (and after
``-k``/``-m`` deselection) the plugin adds up the claims declared by the selected tests,
m, and gives each claim alpha = linrnn_family_alpha / m (Bonferroni: by the union bound,
the probability that any true claim of the session fails is at most the family-wise
alpha). A test that asserts more claims than it declared fails with one sentence (its
extra claims would spend alpha the session does not have). Under pytest-xdist every
worker collects the whole selection, so m and the shares are the same in every worker.

Outcomes: a refuted claim or a rejected draw fails the test with the verdict paragraph;
an inconclusive claim (a control not rejected: no power) is a skip whose reason is the
paragraph. The terminal summary (section "linrnn claims") gives the number of claims
checked and budgeted, the family-wise alpha and the share, each claim's outcome, and its
controls' predicted power at the sizes used (and, for the tiny size, the measured power
of the committed calibration when there is one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

MARKER = "linrnn_claim"
ALPHA_INI = "linrnn_family_alpha"
DEFAULT_FAMILY_ALPHA = "1e-3"


@dataclass
class Record:
    """One assertion made through the fixture, for the summary."""

    nodeid: str
    kind: str  # "claim" or "draw"
    what: str
    outcome: str
    alpha: float
    controls: list[tuple[str, str, float | None]]
    size: str = ""


@dataclass
class State:
    """The session's budget and what was asserted."""

    family_alpha: float = 1e-3
    declared: dict[str, int] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)

    @property
    def budget(self) -> int:
        return sum(self.declared.values())

    @property
    def share(self) -> float:
        return self.family_alpha / max(1, self.budget)


STATE = pytest.StashKey[State]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(ALPHA_INI, help="family-wise false-failure rate of the linrnn claims asserted in one session, "
                                  "split among them by Bonferroni (default 1e-3)", default=DEFAULT_FAMILY_ALPHA)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(claims=1): the test asserts this many linrnn claims through the "
                                       f"fixture {MARKER}; they share the session's {ALPHA_INI}")
    raw = config.getini(ALPHA_INI)
    try:
        alpha = float(raw)
    except (TypeError, ValueError):
        alpha = float("nan")
    if not 0 < alpha < 1:
        raise pytest.UsageError(f"{ALPHA_INI} must be a number strictly between 0 and 1, got {raw!r}")
    config.stash[STATE] = State(family_alpha=alpha)


def declared_claims(item: pytest.Item) -> int:
    """The claims ``item`` declares: its marker's ``claims`` (or first argument), 1 for the fixture alone, else 0."""
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return 1 if MARKER in getattr(item, "fixturenames", ()) else 0
    claims = marker.kwargs.get("claims", marker.args[0] if marker.args else 1)
    if isinstance(claims, bool) or not isinstance(claims, int) or claims < 1:
        raise pytest.UsageError(f"{item.nodeid}: {MARKER}(claims=...) must be a positive integer, got {claims!r}")
    return claims


def pytest_collection_finish(session: pytest.Session) -> None:
    state = session.config.stash[STATE]
    state.declared = {item.nodeid: k for item in session.items if (k := declared_claims(item))}


class Claims:
    """What the fixture ``linrnn_claim`` gives a test: call it for a claim, ``.draw`` for a draw."""

    def __init__(self, state: State, nodeid: str) -> None:
        self._state, self._nodeid, self._used = state, nodeid, 0

    @property
    def alpha(self) -> float:
        """Each claim's false-failure rate in this session (the Bonferroni share of the family-wise alpha)."""
        return self._state.share

    def _take(self) -> None:
        allowed = self._state.declared.get(self._nodeid, 1)
        self._used += 1
        if self._used > allowed:
            pytest.fail(f"this test declared {allowed} linrnn claim{'s' if allowed > 1 else ''} and asserts another: "
                        f"mark it @pytest.mark.{MARKER}(claims={self._used}) so that the session's {ALPHA_INI} "
                        f"stays family-wise", pytrace=False)

    def __call__(self, name: str, model: Any, size: str = "tiny", seed: int | None = None) -> Any:
        """Assert the claim ``name`` for ``model`` at ``size`` (:func:`linrnn.testing.assert_claim`) at this session's
        share of alpha; inconclusive is a skip."""
        from linrnn.testing import run_claim

        self._take()
        check = run_claim(name, model, size, seed, alpha=self.alpha)
        self._state.records.append(Record(self._nodeid, "claim", f"{name} for {check.model}", check.outcome,
                                          check.alpha, check.control_power, size))
        if check.outcome in ("fail", "error"):
            from linrnn.testing import ClaimError

            raise (AssertionError if check.outcome == "fail" else ClaimError)(check.paragraph())
        if check.outcome == "inconclusive":
            pytest.skip(check.paragraph())
        return check

    def draw(self, params: Any, model: Any, **options: Any) -> Any:
        """Assert that ``params`` is one draw of ``model``'s law (:func:`linrnn.testing.check_draw`) at this session's
        share of alpha (its ``level``)."""
        from linrnn.testing.draw import check_draw

        if "level" in options:
            raise pytest.UsageError(f"the level of a draw checked through the fixture {MARKER} is the session's "
                                    f"share of {ALPHA_INI}; call linrnn.testing.check_draw for another level")
        self._take()
        result = check_draw(params, model, level=self.alpha, **options)
        self._state.records.append(Record(self._nodeid, "draw", f"one width-{result.width} draw of {result.model}",
                                          result.verdict, result.level, []))
        if not result.passed:
            raise AssertionError(result.paragraph())
        return result


@pytest.fixture
def linrnn_claim(request: pytest.FixtureRequest) -> Claims:
    """Assert linrnn claims at this session's share of the family-wise alpha (module docstring)."""
    return Claims(request.config.stash[STATE], request.node.nodeid)


def _power(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3g}"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(STATE, None)
    if state is None or not (state.records or state.budget):
        return
    tr = terminalreporter
    tr.write_sep("-", "linrnn claims")
    counts: dict[str, int] = {}
    for r in state.records:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    tally = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none run"
    tr.write_line(f"{len(state.records)} claims checked of {state.budget} budgeted; family-wise alpha "
                  f"{state.family_alpha:g} ({ALPHA_INI}), Bonferroni share {state.share:.3g} per claim; {tally}")
    powers = [p for r in state.records for _, _, p in r.controls if p is not None]
    for r in state.records:
        ctrl = "; ".join(f"{cid} {verdict.replace('_', ' ')} (predicted power {_power(p)})" for cid, verdict, p in
                         r.controls) or ("a Monte Carlo test of one draw (no negative control)" if r.kind == "draw"
                                         else "no control")
        tr.write_line(f"  {r.outcome:<12} {r.what} [{r.nodeid}] alpha {r.alpha:.3g}; controls: {ctrl}")
    if powers:
        tr.write_line(f"controls' predicted power at the sizes used: min {min(powers):.3g} over {len(powers)} controls "
                      "(the designs size each run for 0.999)")
    if any(r.size == "tiny" for r in state.records):
        from linrnn.testing import calibration

        cal = calibration()
        if cal is None:
            tr.write_line("the tiny size's calibration over seeds is not committed yet: the powers above are the "
                          "designs' predictions, not measurements (benchmarks/calibrate_tiny.py)")
        else:
            for c in cal.get("claims", []):
                if any(r.what.startswith(c["id"] + " ") for r in state.records):
                    ff = c["false_failure"]
                    ctl = ", ".join(f"{x['id']} {_power(x['power'])}" for x in c["controls"])
                    tr.write_line(f"calibration of {c['id']} at size tiny ({c['seeds']} seeds, alpha "
                                  f"{ff['stated']:.3g}): false failures {ff['failures']}/{c['seeds']}, "
                                  f"controls' measured power {ctl}")
