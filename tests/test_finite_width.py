"""Tests for :mod:`linrnn.families.gaussian.finite_width` (loop equations) and :mod:`linrnn.families.gaussian.corrections`.

1. The engine against :mod:`linrnn.families.gaussian.wick` (Wick enumeration) for every entry both
   reach: all parts, both parameterizations, same and different coordinates.
2. The engine against direct expansion of the polynomial moments of the entries at
   n = 1 and n = 2 (explicit 2 x 2 matrices of symbols, ``E[x^e] = (e-1)!!``), for the
   trace moments themselves and, through :func:`test_wick.brute_force`, for the RNN.
3. Its n -> infinity limits against the lead derivation (:mod:`linrnn.derive.lag_weights`).
4. The closed forms of :mod:`linrnn.families.gaussian.corrections` at lags not used to find them,
   and a wrong form rejected; the width a tolerance needs against a scan.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import linrnn.derive
from linrnn.core.errors import UsageError
from linrnn.core.spec import ModelSpec
from linrnn.families.gaussian import GaussianSpec
from linrnn.families.gaussian import corrections
from linrnn.families.gaussian import finite_width as fw
from linrnn.derive import symbols as S
from linrnn.families.gaussian import wick
from test_wick import VALUES, brute_force

PARAMS = ("ntk", "standard")
n = S.n


# ---------------------------------------------------------------------------
# 1. against the Wick enumeration


@pytest.mark.parametrize("param", PARAMS)
def test_engine_matches_wick_all_entries(param: str) -> None:
    checked = 0
    for i, j in itertools.product(range(6), repeat=2):
        for so, si in itertools.product((True, False), repeat=2):
            for part in fw.PARTS:
                a = wick.exact_lag_ntk_part(param, part, i, j, same_output=so, same_input=si)
                b = fw.exact_lag_ntk_part(param, part, i, j, same_output=so, same_input=si)
                assert sp.simplify(a - b) == 0, (param, part, i, j, so, si)
                checked += a != 0
            a = wick.exact_nngp_cov(i, j, same_output=so, same_input=si, param=param)
            b = fw.exact_nngp_cov(i, j, same_output=so, same_input=si, param=param)
            assert sp.simplify(a - b) == 0, ("nngp", i, j, so, si)
    assert checked > 40  # non-zero entries were compared, not only zeros


@pytest.mark.parametrize(("i", "j"), [(7, 7), (5, 7), (3, 9), (6, 6)])
def test_engine_matches_wick_at_its_largest_nngp(i: int, j: int) -> None:
    assert sp.simplify(wick.exact_nngp_cov(i, j) - fw.exact_nngp_cov(i, j)) == 0


@pytest.mark.parametrize("part", fw.PARTS)
def test_engine_matches_wick_lag_ntk_six(part: str) -> None:
    a = wick.exact_lag_ntk_part("ntk", part, 6, 6)
    assert sp.simplify(a - fw.exact_lag_ntk_part("ntk", part, 6, 6)) == 0


def test_issue_example_lag_four() -> None:
    # the issue's example, from wick: E[L_4^2] = q^4 s_C s_F / n_x (n^4 + 28 n^2 + 28 n + 48) / n^4
    expected = S.q**4 * S.sigma_c2 * S.sigma_f2 / S.n_x * (n**4 + 28 * n**2 + 28 * n + 48) / n**4
    assert sp.simplify(fw.exact_nngp_cov(4, 4) - expected) == 0


# ---------------------------------------------------------------------------
# 2. against direct expansion at n = 1 and n = 2


def _gaussian_power_moment(e: int) -> int:
    return 0 if e % 2 else int(sp.factorial2(e - 1))


@lru_cache(maxsize=None)
def _matrix(size: int) -> sp.Matrix:
    return sp.Matrix(size, size, lambda r, c: sp.Symbol(f"g{r}_{c}"))


def direct_trace_moment(words: tuple[fw.Word, ...], size: int) -> int:
    """E[prod tr(w)] at width ``size`` by expanding in the entries (N(0, 1) each)."""
    g = _matrix(size)
    letters = {0: g, 1: g.T}
    expr = sp.Integer(1)
    for w in words:
        m = sp.eye(size)
        for c in w:
            m = m * letters[c]
        expr *= m.trace()
    gens = list(g)
    total = 0
    for exps, coeff in sp.Poly(sp.expand(expr), *gens).terms():
        term = int(coeff)
        for e in exps:
            term *= _gaussian_power_moment(e)
        total += term
    return total


def _at(p: fw.IntPoly, value: int) -> int:
    return sum(c * value**k for k, c in enumerate(p))


words = st.lists(st.lists(st.integers(0, 1), min_size=0, max_size=5).map(tuple), min_size=1, max_size=3)


@settings(max_examples=30)
@given(words)
def test_trace_moments_match_direct_expansion_at_two(ws: list[fw.Word]) -> None:
    if sum(map(len, ws)) > 8:
        ws = ws[:1]
    got = _at(fw.trace_moment(*ws), 2)
    assert got == direct_trace_moment(tuple(ws), 2), ws


@pytest.mark.parametrize("letters", range(0, 13, 2))
def test_trace_moments_at_one_count_the_pairings(letters: int) -> None:
    # at n = 1 every pairing contributes 1: E g^(2m) = (2m - 1)!!
    expected = int(sp.factorial2(letters - 1)) if letters else 1
    for split in range(letters + 1):
        w = (0,) * split + (1,) * (letters - split)
        assert _at(fw.trace_moment(w), 1) == expected
        assert _at(fw.trace_moment(w[:split], w[split:]), 1) == expected


def test_known_small_moments() -> None:
    assert fw.trace_moment("WT") == (0, 0, 1)  # E tr(G G^T) = n^2
    assert fw.trace_moment("WW") == (0, 1)  # E tr(G^2) = n
    assert fw.trace_moment("W", "W") == (0, 1)
    assert fw.trace_moment("WWTT") == (0, 2, 0, 1)  # n^3 + 2n
    assert fw.trace_moment("W") == ()
    assert fw.trace_moment() == (1,)


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("quantity", ("C", "F", "W", "nngp"))
@pytest.mark.parametrize(("i", "j", "size"), [(1, 1, 1), (3, 3, 1), (2, 2, 2), (1, 3, 2), (3, 3, 2), (0, 2, 2)])
def test_rnn_quantities_match_direct_expansion(param: str, quantity: str, i: int, j: int, size: int) -> None:
    expected = brute_force(quantity, param, i, j, n_=size)
    if quantity == "nngp":
        exact = fw.exact_nngp_cov(i, j, param=param)
    else:
        exact = fw.exact_lag_ntk_part(param, quantity, i, j)
    got = exact.subs(VALUES).subs({n: size, S.n_x: 1})
    assert sp.simplify(got - expected) == 0, (param, quantity, i, j, size)


# ---------------------------------------------------------------------------
# 3. wide limits


@pytest.fixture(scope="module", params=PARAMS)
def derivation(request: pytest.FixtureRequest) -> tuple[str, object]:
    return request.param, linrnn.derive.derive_lag_weights(request.param)


def test_limits_are_the_derived_lag_weights(derivation: tuple[str, object]) -> None:
    param, der = derivation
    for jj in range(13):
        expected = der.weight.subs(S.j, jj)  # type: ignore[attr-defined]
        assert sp.simplify(wick.wide_limit(fw.exact_lag_ntk(param, jj, jj)) - expected) == 0, (param, jj)


def test_limits_are_the_derived_nngp(derivation: tuple[str, object]) -> None:
    _, der = derivation
    for jj in range(17):
        expected = der.nngp.subs(S.j, jj)  # type: ignore[attr-defined]
        assert sp.simplify(wick.wide_limit(fw.exact_nngp_cov(jj, jj)) - expected) == 0, jj


def test_off_diagonal_limits_vanish_but_not_the_finite_values() -> None:
    for i, j in [(0, 2), (3, 5), (4, 12), (12, 10)]:
        for param in PARAMS:
            value = fw.exact_lag_ntk(param, i, j)
            assert value != 0 and wick.wide_limit(value) == 0
        assert wick.wide_limit(fw.exact_nngp_cov(i, j)) == 0


def test_bad_arguments() -> None:
    with pytest.raises(UsageError):
        fw.exact_lag_ntk("mup", 1, 1)
    with pytest.raises(UsageError):
        fw.exact_lag_ntk_part("ntk", "X", 1, 1)
    with pytest.raises(UsageError):
        fw.exact_nngp_cov(-1, 1)
    with pytest.raises(UsageError):
        fw.trace_moment("WX")


# ---------------------------------------------------------------------------
# 4. closed forms and the width needed


def test_closed_forms_are_confirmed_beyond_their_guess() -> None:
    forms = corrections.closed_forms()
    for form in forms.values():
        assert len(form.confirmed_at) >= 3, form.name
        assert min(form.confirmed_at) > max(form.guessed_from)
    j = S.j
    assert forms["t1"].expr == 0 and forms["s1"].expr == 0  # no 1/n term on the diagonal
    assert sp.simplify(forms["o1"].expr - (j + 1)) == 0
    assert sp.simplify(forms["w1"].expr - j * (j + 1)) == 0
    # independent of the fitting code: the exact coefficient at lag 16, [n^15] T(16,16)
    t2 = forms["t2"].expr.subs(j, 16)
    assert t2 == fw.gram_trace(16, 16)[17 - 2]


def test_fit_rejects_a_wrong_form() -> None:
    # negative control: the t2 sequence with one exact value at a confirmation lag changed
    lags = list(range(12))
    values = corrections.sequence("t", 2, lags)
    form = corrections.fit_quasi_polynomial(lags, values)
    check = list(range(12, 17))
    exact = corrections.sequence("t", 2, check)
    assert [form.subs(S.j, k) for k in check] == exact
    for bad in (0, 1):  # an even and an odd lag perturbed
        perturbed = list(values)
        perturbed[10 + bad] += 1
        wrong = corrections.fit_quasi_polynomial(lags, perturbed)
        assert [wrong.subs(S.j, k) for k in check] != exact


@pytest.mark.parametrize("param", PARAMS)
def test_diagonal_ratio_coefficients_match_the_exact_series(param: str) -> None:
    coeffs = corrections.diagonal_ratio_coefficients(param)
    vals = {S.q: sp.Rational(7, 5), S.sigma_c2: sp.Rational(2, 3), S.sigma_f2: sp.Rational(5, 4), S.n_x: 2,
            S.eta_c: 3, S.eta_f: sp.Rational(5, 2), S.eta_w: sp.Rational(11, 3)}
    for jj in (3, 12):
        exact = fw.exact_lag_ntk(param, jj, jj).subs(vals)
        series = wick.large_width_coefficients(exact, 2)
        for k in (1, 2):
            assert sp.simplify(coeffs[k].subs(vals).subs(S.j, jj) - series[k] / series[0]) == 0, (param, jj, k)


def test_off_diagonal_leading_is_one_plus_lag_times_q_lambda() -> None:
    der = linrnn.derive.derive_lag_weights("ntk")
    lead = corrections.off_diagonal_leading("ntk")
    assert sp.simplify(lead - (S.j + 1) * S.q * der.weight) == 0
    for jj in (2, 9):
        exact = fw.exact_lag_ntk("ntk", jj + 2, jj)
        assert sp.simplify(wick.large_width_coefficients(exact, 1)[1] - lead.subs(S.j, jj)) == 0


@pytest.mark.parametrize(("lag", "tol"), [(4, 0.1), (8, 0.01), (12, 0.1)])
def test_width_needed_against_a_scan(lag: int, tol: float) -> None:
    unit = {S.q: 1, S.sigma_c2: 1, S.sigma_f2: 1, S.n_x: 1, S.eta_c: 1, S.eta_f: 1, S.eta_w: 1}
    expr = fw.exact_lag_ntk("ntk", lag, lag).subs(unit)
    limit = wick.wide_limit(expr)
    n0 = corrections.width_needed(expr, limit, tol)
    f = sp.lambdify(n, expr / limit - 1)
    assert abs(f(n0)) <= tol
    assert n0 == 1 or abs(f(n0 - 1)) > tol
    assert all(abs(f(m)) <= tol for m in range(n0, 4 * n0 + 50))


def test_latex_section_is_printed_from_the_steps() -> None:
    from linrnn.derive.latex import render_derivation

    steps = corrections.finite_width_steps("ntk")
    labels = [s.label for s in steps]
    assert labels[:2] == ["fw-T-def", "fw-T6"] and "fw-scaling" in labels
    text = render_derivation(steps)
    assert r"\frac{x^{2}}{24}" in text
    assert sp.latex(corrections.closed_form("t2").expr) in text.replace(r"\left(j \right)", "(j)") or \
        "t_{2}" in text
    # the confirmation lags in the notes are those of the closed forms
    form = corrections.closed_form("s2")
    assert f"confirmed at lags {form.confirmed_at[0]}..{form.confirmed_at[-1]}" in text


def test_collapse_figure_data() -> None:
    fig = corrections.collapse_figure("ntk", widths=(16, 64), lags=9, ntk_lags=9)
    assert fig["kind"] == "panels" and len(fig["panels"]) == 2
    assert fig["scaling_coefficient"] == {"nngp": "1/24", "ntk_diag": "1/24"}
    for panel in fig["panels"]:
        widths = [s for s in panel["series"] if s.get("style") == "points"]
        assert len(widths) == 2 and all(len(s["x"]) == len(s["y"]) for s in widths)
    # at x = j^2/n = 1 the deviation shrinks with the width (j = 4 at n = 16, 8 at 64): the
    # collapse onto x^2/24 is only asymptotic
    at1 = fig["at_x1"]["nngp"]
    assert [p["width"] for p in at1] == [16, 64] and at1[0]["deviation"] > at1[1]["deviation"] > 1 / 24


@pytest.mark.parametrize("spec", [
    GaussianSpec(),
    GaussianSpec(param="standard", sigma_w2=0.7, sigma_c2=1.3, sigma_f2=0.6, n_in=2, lr_c=0.5, lr_f=2.0, lr_w=1.5),
    GaussianSpec(sigma_w2=1.4, lr_w=0.0),
])
@pytest.mark.parametrize("width", [1, 3, 64])
def test_cached_float_arrays_match_the_rational_functions(spec: ModelSpec, width: int) -> None:
    """exact_matrices (printed sources and JSON traces, no SymPy) equals the engine's rational functions at n."""
    from linrnn.families.gaussian import finite_width as fw
    from linrnn.derive import symbols as S
    from linrnn.families.gaussian.finite_width_arrays import exact_matrices

    lags = 6
    theta, nngp = exact_matrices(spec, lags, width)
    values = {S.n: width, S.q: sp.nsimplify(spec.sigma_w2), S.sigma_c2: sp.nsimplify(spec.sigma_c2),
              S.sigma_f2: sp.nsimplify(spec.sigma_f2), S.n_x: spec.n_in, S.eta_c: sp.nsimplify(spec.lr_c),
              S.eta_f: sp.nsimplify(spec.lr_f), S.eta_w: sp.nsimplify(spec.lr_w)}
    for i in range(lags):
        for j in range(lags):
            want_t = float(fw.exact_lag_ntk(spec.param, i, j).subs(values))
            want_g = float(fw.exact_nngp_cov(i, j).subs(values))
            assert theta[i, j] == pytest.approx(want_t, rel=1e-12, abs=0.0), (i, j)
            assert nngp[i, j] == pytest.approx(want_g, rel=1e-12, abs=0.0), (i, j)
