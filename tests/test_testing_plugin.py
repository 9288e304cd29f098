"""The pytest plugin of ``linrnn.testing`` in pytester sessions: a passing claim, a failing wrong theory, the
budget split, the terminal summary, and the researcher's example file (``examples/test_my_rnn.py``) right and wrong.

The inner sessions run in this process (``runpytest``), with the plugin loaded by its ``pytest11`` entry point as
in a researcher's project. The wrong theory is the diagonal family's kernel derived under the wrong radial law
(|lambda| uniform instead of |lambda|^2): the claim's own control, which the design sizes for power 0.999.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# Imported before the inner sessions: pytester restores sys.modules after each, so a module imported for the first
# time inside one is imported again by the next (a C extension cannot be loaded twice, and SymPy objects cached by
# a module that stays would belong to the SymPy that went).
import mpmath
import numpy
import scipy.stats
import sympy

import linrnn.testing.draw  # noqa: F401
import linrnn
from linrnn.families import claims

for _name in ("diagonal", "lru"):
    linrnn.family(_name).kernel(2)  # the derivations the inner sessions use, imported (and cached) out here
claims()
PRELOADED = (mpmath, numpy, scipy.stats, sympy, linrnn.testing.draw)

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]

CLAIMS = """
import linrnn
from linrnn.families.diagonal.model import DiagonalRNN, RingModel

MODEL = linrnn.family("diagonal")


def test_true_theory(linrnn_claim):
    check = linrnn_claim("diagonal_kernel", MODEL)
    assert check.outcome == "pass" and check.alpha == linrnn_claim.alpha


def test_wrong_theory(linrnn_claim, monkeypatch):
    def swapped(self, lags, radial_law="area"):  # the theory under the wrong radial law
        return RingModel.kernel(self, lags, "radius" if radial_law == "area" else "area")

    monkeypatch.setattr(DiagonalRNN, "kernel", swapped)
    linrnn_claim("diagonal_kernel", MODEL)
"""


def test_a_true_claim_passes_and_a_wrong_theory_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_claims=CLAIMS)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    # the failure carries the claim's verdict paragraph: statistic, threshold, controls, alpha, how to rerun
    result.stdout.fnmatch_lines(["*AssertionError: Claim diagonal_kernel (Diagonal units: exact lag kernels) is "
                                 "REFUTED for diagonal(*) at size 'tiny', seed *: max over entries*threshold*"
                                 "Negative controls: diagonal_kernel:radius*Stated false-failure rate alpha = 0.0005*"
                                 "Rerun: linrnn.testing.assert_claim('diagonal_kernel'*"])
    # the summary: claims checked and budgeted, the family-wise alpha and its share, outcomes, the controls' power
    result.stdout.fnmatch_lines([
        "*linrnn claims*",
        "2 claims checked of 2 budgeted; family-wise alpha 0.001 (linrnn_family_alpha), Bonferroni share 0.0005 "
        "per claim; fail 1, pass 1",
        "  pass         diagonal_kernel for diagonal(*test_true_theory] alpha 0.0005; controls: "
        "diagonal_kernel:radius rejected (predicted power *",
        "  fail         diagonal_kernel for diagonal(*test_wrong_theory] alpha 0.0005; *",
        "controls' predicted power at the sizes used: min * over 4 controls*",
    ])
    assert "calibration" in out


BUDGET = """
import pytest


@pytest.mark.linrnn_claim(claims=3)
def test_three(linrnn_claim):
    assert linrnn_claim.alpha == pytest.approx(0.01 / 5)


def test_one(linrnn_claim):
    assert linrnn_claim.alpha == pytest.approx(0.01 / 5)


@pytest.mark.linrnn_claim
def test_marked_only(linrnn_claim):
    pass


def test_unrelated():
    pass


def test_too_many(linrnn_claim):
    linrnn_claim._take()
    linrnn_claim._take()
"""


def test_the_family_wise_alpha_is_split_over_the_claims_declared(pytester: pytest.Pytester) -> None:
    """Bonferroni over the selected tests' declared claims (3 + 1 + 1 + 1 = 6 with -k keeping five of six tests
    ... 5 without test_too_many); the ini option sets the family-wise alpha; an extra claim is one sentence."""
    pytester.makeini("[pytest]\nlinrnn_family_alpha = 0.01\n")
    pytester.makepyfile(test_budget=BUDGET)
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "not too_many")
    result.assert_outcomes(passed=4, deselected=1)
    result.stdout.fnmatch_lines(["0 claims checked of 5 budgeted; family-wise alpha 0.01 (linrnn_family_alpha), "
                                 "Bonferroni share 0.002 per claim; none run"])
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "too_many")
    result.assert_outcomes(failed=1, deselected=4)
    result.stdout.fnmatch_lines(["*this test declared 1 linrnn claim and asserts another: mark it "
                                 "@pytest.mark.linrnn_claim(claims=2)*"])


def test_inactive_unless_used_and_bad_ini(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "linrnn claims" not in result.stdout.str()
    pytester.makeini("[pytest]\nlinrnn_family_alpha = 2\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*linrnn_family_alpha must be a number strictly between 0 and 1, got '2'*"])


INCONCLUSIVE = """
import linrnn
import linrnn.testing
from linrnn.testing import ClaimCheck


def test_underpowered(linrnn_claim, monkeypatch):
    real = linrnn.testing.run_claim

    def no_power(*args, **kwargs):  # the real run, with its controls turned 'not rejected'
        check = real(*args, **kwargs)
        controls = [{**c, "verdict": "not_rejected"} for c in check.result.controls]
        result = type(check.result).from_dict({**check.result.as_dict(), "controls": controls})
        return ClaimCheck(**{**check.__dict__, "result": result})

    monkeypatch.setattr(linrnn.testing, "run_claim", no_power)
    linrnn_claim("diagonal_kernel", linrnn.family("diagonal"))
"""


def test_an_inconclusive_claim_is_a_skip_with_its_paragraph(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inconclusive=INCONCLUSIVE)
    result = pytester.runpytest("-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["1 claims checked of 1 budgeted*inconclusive 1",
                                 "SKIPPED*Claim diagonal_kernel*is INCONCLUSIVE*not rejected*"])


def test_the_researchers_example_passes_and_fails_with_a_wrong_theory(pytester: pytest.Pytester,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/test_my_rnn.py as its README says: it passes; with MY_RNN_THEORY=diagonal its draw check fails."""
    shutil.copy(ROOT / "examples" / "test_my_rnn.py", pytester.path / "test_my_rnn.py")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["2 claims checked of 2 budgeted*pass 2"])
    monkeypatch.setenv("MY_RNN_THEORY", "diagonal")
    result = pytester.runpytest("-p", "no:cacheprovider", "-k", "draws_from_the_theory")
    result.assert_outcomes(failed=1, deselected=2)
    result.stdout.fnmatch_lines(["*AssertionError: check_draw: this width-1024 draw is NOT a draw of the diagonal(*"])
