"""Symbolic checks of the derivation: structure, identities, exact LaTeX strings."""

from __future__ import annotations

import pytest
import sympy as sp

from linrnn.derive import symbols as S
from linrnn.derive.weight_consequences import consequences
from linrnn.derive.lag_weights import check_gradient_rules, derive_lag_weights, evaluate_sums, parameterization
from linrnn.derive.latex import latex, render_step

PARAMS = ("ntk", "standard")


def _vanishes(expr: sp.Expr) -> bool:
    """``simplify(expr) == 0`` after the defining identity of Lambert W.

    Every branch satisfies ``W(x) exp(W(x)) = x``, so ``exp(W(x))`` is replaced
    by ``x / W(x)``; powers are first written as exponentials so that the
    exponential of a Lambert W term is exposed.
    """
    e = sp.expand(sp.expand_power_exp(expr.rewrite(sp.exp)))
    e = e.replace(lambda t: t.func == sp.exp and isinstance(t.args[0], sp.LambertW),
                  lambda t: t.args[0].args[0] / t.args[0])
    return sp.simplify(sp.powsimp(e.rewrite(sp.exp), force=True)) == 0


def test_gradient_rules_match_sympy_diff_up_to_lag_four() -> None:
    assert check_gradient_rules(max_lag=4, size=2)


def test_orders_in_n_show_which_parts_vanish() -> None:
    # ntk: every contribution is O(1); standard: the F-part is O(1/n) and vanishes
    assert derive_lag_weights("ntk").orders == {"C": 0, "F": 0, "W": 0}
    assert derive_lag_weights("standard").orders == {"C": 0, "F": -1, "W": 0}
    steps = derive_lag_weights("standard").steps
    assert steps["limit-F"].rhs == 0
    assert "vanishes" in steps["order-F"].note


@pytest.mark.parametrize("param", PARAMS)
def test_limit_kernel_is_diagonal_in_lag_output_and_input(param: str) -> None:
    der = derive_lag_weights(param)
    expected = der.weight.subs(S.j, S.i) * sp.KroneckerDelta(S.i, S.j) * sp.KroneckerDelta(S.a, S.a2) \
        * sp.KroneckerDelta(S.b, S.b2)
    assert sp.simplify(der.kernel - expected) == 0
    # off the diagonal the kernel vanishes
    assert der.kernel.subs({S.i: 2, S.j: 3}) == 0
    assert der.kernel.subs({S.a: 0, S.a2: 1}) == 0


@pytest.mark.parametrize("param", PARAMS)
def test_weight_is_geometric_times_linear(param: str) -> None:
    der = derive_lag_weights(param)
    A, B = der.linear_form
    assert sp.simplify(der.weight - S.q**S.j * (A + B * S.j)) == 0
    assert B != 0 and not B.has(S.j) and not A.has(S.j)


def test_delta_sum_evaluation_on_a_known_double_sum() -> None:
    # sum_{k<i} sum_{l<j} delta_kl delta_{i-1-k, j-1-l} = i delta_ij, by hand
    k, l, i, j = S.k, S.l, S.i, S.j
    expr = sp.Sum(sp.KroneckerDelta(k, l) * sp.KroneckerDelta(i - 1 - k, j - 1 - l), (l, 0, j - 1), (k, 0, i - 1))
    got = evaluate_sums(expr)
    assert sp.simplify(got - i * sp.KroneckerDelta(i, j)) == 0


def test_parameterizations_share_the_law_of_the_effective_matrices() -> None:
    ntk, std = parameterization("ntk"), parameterization("standard")
    for part in ("C", "F", "W"):
        assert sp.simplify(ntk.entry_variance(part) - std.entry_variance(part)) == 0
    assert derive_lag_weights("ntk").nngp == derive_lag_weights("standard").nngp


@pytest.mark.parametrize("param", PARAMS)
def test_generating_function_equals_direct_sum(param: str) -> None:
    c = consequences(param)
    direct = sp.piecewise_fold(sp.Sum(c.weight * S.z**S.j, (S.j, 0, sp.oo)).doit())
    assert isinstance(direct, sp.Piecewise)
    value, cond = direct.args[0]
    assert sp.simplify(value - c.generating_function) == 0
    # both converge on the same set |q z| < 1
    assert cond == c.generating_condition


@pytest.mark.parametrize("param", PARAMS)
def test_total_equals_direct_sum_and_converges_only_below_one(param: str) -> None:
    c = consequences(param)
    direct = sp.piecewise_fold(sp.Sum(c.weight, (S.j, 0, sp.oo)).doit())
    value, cond = direct.args[0]
    assert sp.simplify(value - c.total) == 0
    assert c.total_condition == sp.Lt(S.q, 1)
    # with a W-path (eta_W > 0) the closed form has a double pole at q = 1
    eta_w_pos = sp.Symbol("eta_W_pos", positive=True)
    assert sp.limit(c.total.subs(S.eta_w, eta_w_pos), S.q, 1, "-") == sp.oo


@pytest.mark.parametrize("param", PARAMS)
def test_horizon_solves_its_equation(param: str) -> None:
    c = consequences(param)
    assert _vanishes(c.weight.subs(S.j, c.horizon) - S.eps * S.lam_max)
    assert c.horizon.has(sp.LambertW(c.horizon.atoms(sp.LambertW).pop().args[0], -1))
    geometric = c.weight.subs(S.eta_w, 0)
    assert _vanishes(geometric.subs(S.j, c.horizon_geometric) - S.eps * S.lam_max)


@pytest.mark.parametrize("param", PARAMS)
def test_peak_threshold_and_ratio(param: str) -> None:
    c = consequences(param)
    jc = c.peak_threshold
    assert _vanishes(c.weight.subs(S.j, jc + 1) - c.weight.subs(S.j, jc))
    assert sp.simplify(c.ratio - c.weight.subs(S.j, S.j + 1) / c.weight) == 0
    assert c.ratio_limit == S.q
    # the continuous stationary point is where d log(lambda)/dj vanishes
    dlog = sp.diff(sp.expand_log(sp.log(c.weight), force=True), S.j)
    assert sp.simplify(dlog.subs(S.j, c.peak_continuous)) == 0


def test_regimes() -> None:
    c = consequences("ntk")
    by_name = {r.name: r for r in c.regimes}
    assert by_name["decaying"].limit == 0
    assert by_name["critical"].limit == sp.oo and by_name["exploding"].limit == sp.oo
    assert by_name["critical"].ratio_limit == 1
    assert sp.simplify(by_name["decaying"].ratio_limit - S.q) == 0


def test_controls_are_wrong_theories_made_from_the_derived_form() -> None:
    der = derive_lag_weights("ntk")
    A, _ = der.linear_form
    assert sp.simplify(der.controls["no_linear_term"] - A * S.q**S.j) == 0
    assert sp.simplify(der.controls["q_times_1.1"] - der.weight.subs(S.q, sp.Rational(11, 10) * S.q)) == 0
    assert sp.simplify(der.controls["no_linear_term"] - der.weight) != 0


# ------------------------------------------------------------------ exact LaTeX strings


def test_latex_of_lag_weights_ntk() -> None:
    assert latex(derive_lag_weights("ntk").weight) == (
        r"\frac{q^{j} \sigma_{C}^{2} \sigma_{F}^{2} \left(\eta_{C} + \eta_{F} + \eta_{W} j\right)}{n_{x}}"
    )


def test_latex_of_lag_weights_standard() -> None:
    assert latex(derive_lag_weights("standard").weight) == (
        r"\frac{q^{j - 1} \sigma_{F}^{2} \left(\eta_{C} q + \eta_{W} j \sigma_{C}^{2}\right)}{n_{x}}"
    )


def test_latex_of_nngp() -> None:
    assert latex(derive_lag_weights("ntk").nngp) == r"\frac{q^{j} \sigma_{C}^{2} \sigma_{F}^{2}}{n_{x}}"


def test_latex_of_w_gradient_step() -> None:
    step = derive_lag_weights("ntk").steps["grad-W"]
    assert render_step(step).splitlines()[:3] == [
        r"\begin{dmath}\label{eq:grad-W}",
        r"\frac{\partial L_{j}[a,b]}{\partial W_{e}} = \sum_{k=0}^{j - 1} "
        r"\left(W_{e}^{T}\right)^{k} c_{a} f_{b}^{T} \left(W_{e}^{T}\right)^{j - k - 1}",
        r"\end{dmath}",
    ]


def test_latex_of_horizon_uses_lower_branch() -> None:
    text = latex(consequences("ntk").horizon)
    assert text.startswith(r"\frac{W_{-1}\left(")


@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_numeric_and_symbolic_parameterizations_agree(param: str) -> None:
    """The core's float scales (no SymPy on the numeric paths) are the derivation's symbolic ones at numbers."""
    import sympy as sp

    from linrnn.core.spec import ModelSpec
    from linrnn.derive import symbols as S
    from linrnn.derive.lag_weights import parameterization

    spec = ModelSpec(param=param, sigma_w2=0.7, sigma_c2=1.3, sigma_f2=0.6, n_in=3)
    n = 37
    at = {S.n: n, S.q: sp.Rational(7, 10), S.sigma_c2: sp.Rational(13, 10), S.sigma_f2: sp.Rational(6, 10), S.n_x: 3}
    par = parameterization(param)
    for k, part in enumerate("CFW"):
        assert float(par.scale[part].subs(at)) == pytest.approx(spec.scales(n)[k], rel=1e-15)
        assert float(sp.sqrt(par.raw_variance[part]).subs(at)) == pytest.approx(spec.raw_stds(n)[k], rel=1e-15)
    assert float(par.ntk_prefactor.subs(at)) == pytest.approx(spec.ntk_prefactor(n), rel=1e-15)
