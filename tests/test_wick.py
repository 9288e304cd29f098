"""Tests for :mod:`linrnn.families.gaussian.wick`, the exact finite-width oracle by Wick enumeration.

Three layers:

1. the engine against a *different* exact method at tiny concrete sizes: build the
   raw matrices as SymPy symbols, differentiate ``L_j = C_e W_e^j F_e`` with
   ``sympy.diff``, expand into monomials of the raw entries and take the expectation
   monomial by monomial with the one-dimensional Gaussian moments
   ``E[x^e] = (e-1)!! v^{e/2}`` (``e`` even, else 0) - no pairings, no union-find;
2. exact facts that must come out (hand computations written next to them);
3. the wide limit of the exact finite-n expressions against the lead derivation in
   :mod:`linrnn.derive.lag_weights` (which uses the n -> infinity rules instead).
"""

from __future__ import annotations

from functools import lru_cache

import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import linrnn.derive
from linrnn.derive import symbols as S
from linrnn.families.gaussian.wick import (
    PARTS,
    exact_lag_ntk,
    exact_lag_ntk_part,
    exact_nngp_cov,
    finite_width_correction,
    large_width_coefficients,
    wide_limit,
)
from linrnn.core.errors import UsageError

PARAMS = ("ntk", "standard")
n = S.n

# generic exact values for the model symbols (distinct, so that a term attached to the
# wrong symbol cannot hide); the sizes n, n_x are set per case
VALUES: dict[sp.Symbol, sp.Expr] = {
    S.q: sp.Rational(7, 5),
    S.sigma_c2: sp.Rational(2, 3),
    S.sigma_f2: sp.Rational(5, 4),
    S.eta_c: sp.Integer(3),
    S.eta_f: sp.Rational(5, 2),
    S.eta_w: sp.Rational(11, 3),
}


# ---------------------------------------------------------------------------
# 1. brute force: explicit entries, sympy.diff, moment of each monomial


def _gaussian_power_moment(e: int, var: sp.Expr) -> sp.Expr:
    """E[x^e] for x ~ N(0, var): (e-1)!! var^(e/2) for even e, 0 for odd e."""
    return sp.Integer(0) if e % 2 else sp.factorial2(e - 1) * var ** (e // 2)


@lru_cache(maxsize=None)
def brute_force(
    quantity: str,
    param: str,
    i: int,
    j: int,
    *,
    n_: int,
    n_x: int = 1,
    n_y: int = 1,
    a: int = 0,
    b: int = 0,
    a2: int = 0,
    b2: int = 0,
) -> sp.Expr:
    """Exact E[...] at concrete sizes by expanding in the raw entries.

    ``quantity`` is ``"nngp"`` (``E[L_i[a,b] L_j[a',b']]``) or a part ``"C"``, ``"F"``,
    ``"W"`` (``E[s eta_P sum_{x in P} dL_i[a,b]/dx dL_j[a',b']/dx]``). Scales,
    variances and s are applied literally from docs/conventions.md at the values ``VALUES``.
    """
    eff = {"C": VALUES[S.sigma_c2] / n_, "F": VALUES[S.sigma_f2] / n_x, "W": VALUES[S.q] / n_}
    if param == "ntk":  # raw N(0, 1), P_e = sqrt(effective variance) P, s = 1
        alpha = {k: sp.sqrt(v) for k, v in eff.items()}
        var = {k: sp.Integer(1) for k in eff}
        s = sp.Integer(1)
    else:  # raw = effective, s = 1/n
        alpha = {k: sp.Integer(1) for k in eff}
        var = eff
        s = sp.Rational(1, n_)
    raw = {
        "C": sp.Matrix(n_y, n_, lambda r, c: sp.Symbol(f"C{r}_{c}")),
        "F": sp.Matrix(n_, n_x, lambda r, c: sp.Symbol(f"F{r}_{c}")),
        "W": sp.Matrix(n_, n_, lambda r, c: sp.Symbol(f"W{r}_{c}")),
    }

    def impulse(lag: int) -> sp.Matrix:
        return (alpha["C"] * raw["C"]) * (alpha["W"] * raw["W"]) ** lag * (alpha["F"] * raw["F"])

    left = sp.expand(impulse(i)[a, b])
    right = sp.expand(impulse(j)[a2, b2])
    if quantity == "nngp":
        expr = left * right
    else:
        eta = VALUES[{"C": S.eta_c, "F": S.eta_f, "W": S.eta_w}[quantity]]
        expr = s * eta * sp.Add(*(sp.diff(left, x) * sp.diff(right, x) for x in raw[quantity]))
    gens = [x for mat in raw.values() for x in mat]
    owner = {x: name for name, mat in raw.items() for x in mat}
    total = sp.Integer(0)
    for exps, coeff in sp.Poly(sp.expand(expr), *gens).terms():
        term = coeff
        for x, e in zip(gens, exps):
            if e:
                term *= _gaussian_power_moment(e, var[owner[x]])
        total += term
    return sp.radsimp(total)


def engine_value(quantity: str, param: str, i: int, j: int, *, same_output: bool, same_input: bool) -> sp.Expr:
    if quantity == "nngp":
        return exact_nngp_cov(i, j, same_output=same_output, same_input=same_input, param=param)
    return exact_lag_ntk_part(param, quantity, i, j, same_output=same_output, same_input=same_input)


def check_against_brute_force(
    quantity: str, param: str, i: int, j: int, *, n_: int, n_x: int = 1, n_y: int = 1, a2: int = 0, b2: int = 0
) -> sp.Expr:
    expected = brute_force(quantity, param, i, j, n_=n_, n_x=n_x, n_y=n_y, a2=a2, b2=b2)
    exact = engine_value(quantity, param, i, j, same_output=a2 == 0, same_input=b2 == 0)
    got = exact.subs(VALUES).subs({n: n_, S.n_x: n_x, S.n_y: n_y})
    assert sp.simplify(got - expected) == 0, (quantity, param, i, j, n_, n_x, exact, expected)
    return expected


QUANTITIES = ("C", "F", "W", "nngp")

# (i, j, n, n_x): diagonal and off-diagonal lags (i + j even: non-zero at finite n),
# widths 2 and 3, one and two inputs
SIZES = [(0, 0, 3, 1), (1, 1, 3, 1), (2, 2, 3, 1), (0, 2, 3, 1), (2, 2, 2, 2), (1, 3, 2, 1), (3, 3, 2, 1)]


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("quantity", QUANTITIES)
@pytest.mark.parametrize(("i", "j", "n_", "n_x"), SIZES)
def test_engine_matches_brute_force(param: str, quantity: str, i: int, j: int, n_: int, n_x: int) -> None:
    expected = check_against_brute_force(quantity, param, i, j, n_=n_, n_x=n_x)
    if quantity == "W" and 0 in (i, j):
        assert expected == 0  # no W to differentiate
    else:
        assert expected != 0  # a real check, not 0 == 0


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("quantity", QUANTITIES)
@pytest.mark.parametrize(("n_y", "n_x", "a2", "b2"), [(2, 1, 1, 0), (1, 2, 0, 1), (2, 2, 1, 1)])
def test_engine_matches_brute_force_different_coordinates(
    param: str, quantity: str, n_y: int, n_x: int, a2: int, b2: int
) -> None:
    # a != a' or b != b': both sides must be exactly 0 (see test_different_coordinates_vanish)
    assert check_against_brute_force(quantity, param, 1, 1, n_=2, n_x=n_x, n_y=n_y, a2=a2, b2=b2) == 0
    assert check_against_brute_force(quantity, param, 0, 2, n_=2, n_x=n_x, n_y=n_y, a2=a2, b2=b2) == 0


@pytest.mark.parametrize("param", PARAMS)
@pytest.mark.parametrize("quantity", QUANTITIES)
def test_engine_matches_brute_force_different_output_same_input(param: str, quantity: str) -> None:
    # two outputs present, the entry with the same output: n_y must not leak in
    check_against_brute_force(quantity, param, 2, 2, n_=2, n_x=2, n_y=2)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
    quantity=st.sampled_from(QUANTITIES),
    param=st.sampled_from(PARAMS),
    i=st.integers(0, 3),
    j=st.integers(0, 3),
    n_x=st.integers(1, 2),
)
def test_engine_matches_brute_force_property(quantity: str, param: str, i: int, j: int, n_x: int) -> None:
    check_against_brute_force(quantity, param, i, j, n_=2, n_x=n_x)


def test_negative_control_brute_force_rejects_a_wrong_value() -> None:
    # the comparison can fail: the W part at lag 2 with the limit value in place of the
    # exact finite-n value (2 + 2/n^2 -> 2) differs from the brute force at n = 3
    wrong = 2 * S.eta_w * S.q**2 * S.sigma_c2 * S.sigma_f2 / S.n_x
    expected = brute_force("W", "ntk", 2, 2, n_=3)
    assert sp.simplify(wrong.subs(VALUES).subs({S.n_x: 1}) - expected) != 0


# ---------------------------------------------------------------------------
# 2. exact facts


@pytest.mark.parametrize("param", PARAMS)
def test_nngp_lag_zero_is_exact(param: str) -> None:
    # L_0[a,b] = sum_h C_e[a,h] F_e[h,b]: n terms of variance (sigma_C^2/n)(sigma_F^2/n_x)
    assert sp.simplify(exact_nngp_cov(0, 0, param=param) - S.sigma_c2 * S.sigma_f2 / S.n_x) == 0


def test_nngp_lag_two_by_hand() -> None:
    # E[(C W W F)[a,b]^2] over raw N(0,1): C pairs fix h0 = h0', F pairs fix h2 = h2';
    # of the 3 pairings of the 4 W's, the "parallel" one leaves h0, h1, h2 free (n^3),
    # the two others collapse everything to one class (n each): n^3 + 2n, times
    # (sigma_C^2/n)(sigma_F^2/n_x)(q/n)^2.
    by_hand = S.q**2 * S.sigma_c2 * S.sigma_f2 / S.n_x * (1 + 2 / n**2)
    for param in PARAMS:
        assert sp.simplify(exact_nngp_cov(2, 2, param=param) - by_hand) == 0


def test_ntk_w_part_lag_two_by_hand() -> None:
    # dL_2/dW[p,r] / (alpha_C alpha_F alpha_W^2) = C[a,p] (W F)[r,b] + (C W)[a,p] F[r,b].
    # Squares: E sum_{p,r} C[a,p]^2 (WF)[r,b]^2 = n * n^2, the same for the other term;
    # cross term: C pair g = p, F pair h = r, then W[r,h] W[g,p] = W[r,r] W[p,p] needs
    # r = p: n. Total 2n^3 + 2n, times eta_W (sigma_C^2/n)(sigma_F^2/n_x)(q/n)^2.
    by_hand = 2 * S.eta_w * S.q**2 * S.sigma_c2 * S.sigma_f2 / S.n_x * (1 + 1 / n**2)
    assert sp.simplify(exact_lag_ntk_part("ntk", "W", 2, 2) - by_hand) == 0


@pytest.mark.parametrize("param", PARAMS)
def test_off_lag_nngp_is_order_one_over_n(param: str) -> None:
    # E[W_e^2] = (q/n) I exactly (sum_k E[W_e[r,k] W_e[k,c]] needs r = k = c), so with
    # E over C and F first, E[L_0[a,b] L_2[a,b]] = (sigma_C^2 sigma_F^2/(n n_x)) tr E[W_e^2]
    # = q sigma_C^2 sigma_F^2 / (n n_x): non-zero at finite n, 0 in the limit, where the
    # NNGP is diagonal in the lag. Every even i + j with i != j is exactly O(1/n) (a
    # "crossing" pairing links the two W chains); odd i + j means an odd number of W
    # entries, so exactly 0.
    value = exact_nngp_cov(0, 2, param=param)
    assert sp.simplify(value - S.q * S.sigma_c2 * S.sigma_f2 / (n * S.n_x)) == 0
    for i, j in [(0, 2), (1, 3), (0, 4), (2, 4), (1, 5), (3, 5)]:
        value = exact_nngp_cov(i, j, param=param)
        assert wide_limit(value) == 0
        assert sp.simplify(finite_width_correction(value)) != 0  # exactly order 1/n
    for i, j in [(0, 1), (1, 2), (0, 3), (2, 5)]:
        assert exact_nngp_cov(i, j, param=param) == 0


@pytest.mark.parametrize("param", PARAMS)
def test_different_coordinates_vanish(param: str) -> None:
    # E[C[a,h] C[a',h']] = v_C delta(a,a') delta(h,h'): every C pairing, or the delta
    # left by d/dC, forces a = a'; likewise F forces b = b'. So a != a' or b != b'
    # gives exactly 0 at every width, for the NNGP and every part of the lag NTK.
    for i, j in [(0, 0), (1, 1), (2, 2), (1, 3), (0, 2)]:
        for flags in [(False, True), (True, False), (False, False)]:
            so, si = flags
            assert exact_nngp_cov(i, j, same_output=so, same_input=si, param=param) == 0
            for part in PARTS:
                assert exact_lag_ntk_part(param, part, i, j, same_output=so, same_input=si) == 0


@pytest.mark.parametrize("param", PARAMS)
def test_nngp_same_in_both_parameterizations_and_symmetric(param: str) -> None:
    for i in range(4):
        for j in range(4):
            value = exact_nngp_cov(i, j, param=param)
            assert sp.simplify(value - exact_nngp_cov(i, j, param="ntk")) == 0
            assert sp.simplify(value - exact_nngp_cov(j, i, param=param)) == 0
            assert sp.simplify(exact_lag_ntk(param, i, j) - exact_lag_ntk(param, j, i)) == 0


def test_results_are_rational_in_n_and_free_of_n_y() -> None:
    for param in PARAMS:
        for j in range(6):
            value = exact_lag_ntk(param, j, j)
            assert S.n_y not in value.free_symbols
            assert sp.together(value).is_rational_function(n)


def test_bad_arguments_raise_usage_errors() -> None:
    with pytest.raises(UsageError, match="parameterization"):
        exact_lag_ntk("mup", 1, 1)
    with pytest.raises(UsageError, match="parameter block"):
        exact_lag_ntk_part("ntk", "X", 1, 1)
    with pytest.raises(UsageError, match="non-negative integer"):
        exact_nngp_cov(-1, 0)
    with pytest.raises(UsageError, match="too slow"):
        exact_nngp_cov(8, 8)


# ---------------------------------------------------------------------------
# 3. cross-check against the lead derivation (n -> infinity rules)

LAGS = range(6)


@pytest.fixture(scope="module", params=PARAMS)
def derivation(request: pytest.FixtureRequest) -> tuple[str, object]:
    return request.param, linrnn.derive.derive_lag_weights(request.param)


def test_wide_limit_of_diagonal_is_lag_weight(derivation: tuple[str, object]) -> None:
    param, der = derivation
    for jj in LAGS:
        expected = der.weight.subs(S.j, jj)  # type: ignore[attr-defined]
        assert sp.simplify(wide_limit(exact_lag_ntk(param, jj, jj)) - expected) == 0, (param, jj)


def test_wide_limit_of_nngp_variance(derivation: tuple[str, object]) -> None:
    param, der = derivation
    for jj in LAGS:
        expected = der.nngp.subs(S.j, jj)  # type: ignore[attr-defined]
        assert sp.simplify(wide_limit(exact_nngp_cov(jj, jj, param=param)) - expected) == 0, (param, jj)


def test_parts_leading_order_match_derivation(derivation: tuple[str, object]) -> None:
    # per part, the leading large-n term of the exact value equals the derivation's
    # part with its power of n (``parts_exact``, order ``orders``): a compensating
    # error between parts cannot hide in the sum (standard: the F part is O(1/n))
    param, der = derivation
    for part in PARTS:
        order = der.orders[part]  # type: ignore[attr-defined]
        for jj in LAGS:
            exact = exact_lag_ntk_part(param, part, jj, jj)
            expected = der.parts_exact[part].subs(S.j, jj)  # type: ignore[attr-defined]
            assert sp.simplify(wide_limit(exact * n ** (-order)) - wide_limit(expected * n ** (-order))) == 0


def test_off_diagonal_wide_limits_vanish() -> None:
    for param in PARAMS:
        for i in range(5):
            for j in range(5):
                if i != j:
                    assert wide_limit(exact_lag_ntk(param, i, j)) == 0, (param, i, j)
                    assert wide_limit(exact_nngp_cov(i, j, param=param)) == 0, (param, i, j)
            for so, si in [(False, True), (True, False)]:
                assert wide_limit(exact_lag_ntk(param, i, i, same_output=so, same_input=si)) == 0


def test_off_diagonal_ntk_nonzero_at_finite_width() -> None:
    # the limit rule <W^k f, W^l f'>/n -> delta_kl q^k <f,f'>/n is only a limit: at
    # finite n, E[W_e^2] = (q/n) I makes lags 0 and 2 interact (i + j even)
    value = exact_lag_ntk("ntk", 0, 2)
    assert value != 0 and wide_limit(value) == 0
    assert sp.simplify(finite_width_correction(value)) != 0


# ---------------------------------------------------------------------------
# 4. large-n expansion


def test_finite_width_correction_by_hand() -> None:
    # (3n^2 + 5n + 1)/(n^2 + n) = 3 + (2n + 1)/(n (n + 1))
    #   = 3 + (2/n + 1/n^2)(1 - 1/n + ...) = 3 + 2/n - 1/n^2 + O(1/n^3)
    expr = (3 * n**2 + 5 * n + 1) / (n**2 + n)
    assert wide_limit(expr) == 3
    assert finite_width_correction(expr) == 2
    assert large_width_coefficients(expr, 2) == [3, 2, -1]
    # standard F part at lag 0: dL_0[a,b]/dF[p,r] = C[a,p] delta(r,b), so the part is
    # (1/n) eta_F sum_p E[C[a,p]^2] = (1/n) eta_F n (sigma_C^2/n) = eta_F sigma_C^2 / n:
    # limit 0, correction eta_F sigma_C^2
    part = exact_lag_ntk_part("standard", "F", 0, 0)
    assert sp.simplify(part - S.eta_f * S.sigma_c2 / n) == 0
    assert finite_width_correction(exact_lag_ntk("standard", 0, 0)) == S.eta_f * S.sigma_c2
    # off-lag NNGP q sigma_C^2 sigma_F^2 / (n n_x) (see test_off_lag_nngp_is_order_one_over_n)
    assert sp.simplify(finite_width_correction(exact_nngp_cov(0, 2)) - S.q * S.sigma_c2 * S.sigma_f2 / S.n_x) == 0
    # NNGP at lag 2 is (1 + 2/n^2) q^2 sigma_C^2 sigma_F^2 / n_x (test_nngp_lag_two_by_hand):
    # no 1/n term, 1/n^2 coefficient twice the limit
    c0, c1, c2 = large_width_coefficients(exact_nngp_cov(2, 2), 2)
    assert c1 == 0 and sp.simplify(c2 - 2 * c0) == 0
    # not rational in n: SymPy's series, sqrt(1 + 1/n) = 1 + 1/(2n) + ...
    assert finite_width_correction(sp.sqrt(1 + 1 / n)) == sp.Rational(1, 2)
    assert wide_limit((1 + 1 / n) ** n) == sp.E


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    num=st.lists(st.integers(-5, 5), min_size=1, max_size=4),
    den=st.lists(st.integers(-5, 5), min_size=1, max_size=4).filter(lambda c: c[0] != 0),
    extra=st.integers(0, 2),
)
def test_large_width_coefficients_match_sympy_series(num: list[int], den: list[int], extra: int) -> None:
    # a random rational function P(n)/Q(n) with deg P <= deg Q (Q's leading coefficient
    # den[0] != 0, padded by n^extra); compare with SymPy's series in u = 1/n
    pden = sp.Add(*(c * n ** (len(den) - 1 - k) for k, c in enumerate(den))) * n**extra
    pnum = sp.Add(*(c * n ** (len(num) - 1 - k) for k, c in enumerate(num)))
    if sp.degree(pnum, n) > sp.degree(pden, n):
        pnum = sp.Integer(num[0])
    expr = S.q * pnum / pden
    u = sp.Symbol("u", positive=True)
    series = sp.expand(sp.series(expr.subs(n, 1 / u), u, 0, 4).removeO())
    got = large_width_coefficients(expr, 3)
    for k in range(4):
        assert sp.simplify(got[k] - series.coeff(u, k)) == 0
