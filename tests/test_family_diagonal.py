"""The diagonal family (linrnn.families.diagonal): specification, sampler, structured NTK, derivation, claim, commands.

The derived closed forms are checked against quadrature of the initialisation law (the
model's own NTK of one unit, integrated over c, b, |lambda|^2 and arg lambda) to 1e-9
and against the issue's first derivation; the structured empirical NTK against central
finite differences of the recurrence and a dense Jacobian written entry by entry; the
claim passes and rejects its controls.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import linrnn
from linrnn.core.errors import UsageError
from tests.diagonal_reference import dense_jacobian_ntk, finite_difference_ntk, law_quadrature


def _unit_draw(model):  # noqa: ANN001, ANN202
    from linrnn.families.diagonal.model import DiagonalDraw

    def make(rho, phi, c, b):  # noqa: ANN001, ANN202
        return DiagonalDraw(c=c[:, None, None], b=b[:, None, None], lam=(rho * np.exp(1j * phi))[:, None],
                            spec=model.spec)

    return make


def test_the_specification_validates_its_fields() -> None:
    model = linrnn.family("diagonal", r_min=0.2, r_max=0.95, theta_max=0.5, lr_w=0.3)
    assert model.spec.family == "diagonal" and model.spec.r_max == 0.95
    with pytest.raises(UsageError, match=r"r_min \(0.9\) must be at most r_max \(0.5\)"):
        linrnn.family("diagonal", r_min=0.9, r_max=0.5)
    with pytest.raises(UsageError, match="theta_max must be at most 2 pi"):
        linrnn.family("diagonal", theta_max=7.0)
    with pytest.raises(UsageError, match="r_max must be at most 1"):
        linrnn.family("diagonal", r_max=1.5)
    with pytest.raises(UsageError, match="unknown key sigma_w2"):
        linrnn.family("diagonal", sigma_w2=0.9)
    with pytest.raises(UsageError, match="at least one of lr_c, lr_f, lr_w"):
        linrnn.family("diagonal", lr_c=0, lr_f=0, lr_w=0)


def test_the_sampler_draws_the_ring_law_and_no_matrix() -> None:
    from scipy.stats import kstest

    model = linrnn.family("diagonal", r_min=0.3, r_max=0.9, theta_max=2.0, n_in=2, n_out=3)
    d = model.init(width=50000, seed=2)
    assert d.c.shape == (3, 50000) and d.b.shape == (50000, 2) and d.lam.shape == (50000,)
    s = (np.abs(d.lam) ** 2 - 0.09) / (0.81 - 0.09)
    assert kstest(s, "uniform").pvalue > 1e-4 and kstest(np.angle(d.lam) / 2.0, "uniform").pvalue > 1e-4
    assert kstest((np.abs(d.lam) - 0.3) / 0.6, "uniform").pvalue < 1e-6  # the control's law is not this one
    assert abs(np.var(d.c.real) - 0.5) < 0.02 and abs(np.mean(np.abs(d.b) ** 2) - 1) < 0.03
    a, b = model.init(width=8, seed=5), model.init(width=8, seed=5)
    assert np.array_equal(a.lam, b.lam) and not np.array_equal(a.lam, model.init(width=8, seed=6).lam)


def test_the_structured_ntk_against_finite_differences_and_a_dense_jacobian() -> None:
    model = linrnn.family("diagonal", r_min=0.4, r_max=0.95, theta_max=2.0, n_in=2, n_out=2, lr_c=0.5, lr_f=1.3,
                          lr_w=0.7)
    d = model.init(width=3, seed=4)
    fast = np.asarray(model.empirical_ntk(d, 5))
    assert fast.shape == (5, 2, 2, 5, 2, 2)
    assert np.allclose(fast, dense_jacobian_ntk(d, 5), rtol=1e-12, atol=1e-13)
    assert np.allclose(fast, finite_difference_ntk(d, 5), rtol=1e-7, atol=1e-8)
    from tests.diagonal_reference import pack, recurrence

    assert np.allclose(model.impulse(d, 5), recurrence(model.spec, pack(d)[0], 3, 5), rtol=1e-13, atol=1e-14)
    # a wrong multiplier changes it (the comparison can fail)
    other = linrnn.family("diagonal", **{**model.spec.as_dict(), "lr_w": 0.8})
    assert not np.allclose(fast, dense_jacobian_ntk(type(d)(d.c, d.b, d.lam, other.spec), 5), rtol=1e-6)


def test_the_array_api_strict_namespace_gives_the_numpy_numbers() -> None:
    from linrnn.verify.backend import get_backend

    model = linrnn.family("diagonal", r_max=0.9, n_in=2)
    strict = model.init(width=6, backend=get_backend("array_api_strict", seed=1), batch=2)
    plain = model.init(width=6, seed=1, batch=2)
    be = get_backend("array_api_strict")
    assert np.allclose(be.to_numpy(model.empirical_ntk(strict, 4)), model.empirical_ntk(plain, 4), rtol=1e-13)
    assert np.allclose(be.to_numpy(model.impulse(strict, 4)), model.impulse(plain, 4), rtol=1e-13)


def test_the_derivation_agrees_with_the_first_derivation_quoted_in_the_issue() -> None:
    from linrnn.families.diagonal import derivation as D

    uk = linrnn.family("diagonal").unit_kernel()
    j, k, lo, hi, th = D.j, D.k, D.r_min, D.r_max, D.theta_max
    eta_c, eta_f, eta_w = (uk.mults[m] for m in ("lr_c", "lr_f", "lr_w"))

    def R(p):  # noqa: ANN001, ANN202
        return 2 * (hi ** (p + 2) - lo ** (p + 2)) / ((p + 2) * (hi**2 - lo**2))

    def Phi(dd):  # noqa: ANN001, ANN202
        return sp.sin(dd * th) / (dd * th) if dd != 0 else 1

    values = {lo: sp.Rational(1, 5), hi: sp.Rational(19, 20), th: sp.Rational(7, 10), eta_c: 2, eta_f: 3,
              eta_w: sp.Rational(1, 2)}
    for a in range(6):
        for b in range(6):
            issue = Phi(a - b) * ((eta_c + eta_f) * R(a + b) + (eta_w * a * b * R(a + b - 2) if a * b else 0))
            mine = uk.ntk.subs({j: a, k: b})
            assert abs(sp.N((mine - issue).subs(values), 30)) < 1e-25, (a, b)
            assert abs(sp.N((uk.nngp_expr.subs({j: a, k: b}) - Phi(a - b) * R(a + b) / 2).subs(values), 30)) < 1e-25
    assert "width" in [s.label for s in uk.steps] and uk.steps["width"].rhs == sp.Function("theta_unit")(j, k)


@pytest.mark.parametrize("law", [dict(r_min=0.0, r_max=0.9, theta_max=1.0), dict(r_min=0.3, r_max=1.0, theta_max=2.5),
                                 dict(r_min=0.7, r_max=0.7, theta_max=0.4), dict(r_min=0.2, r_max=0.8, theta_max=0.0)])
def test_the_closed_forms_agree_with_quadrature_of_the_law(law: dict) -> None:
    model = linrnn.family("diagonal", **law, lr_c=0.6, lr_f=1.4, lr_w=0.9)
    derived = {name: a[:, 0, 0, :, 0, 0] for name, a in model.kernel(6).items()}
    quad = law_quadrature(model, _unit_draw(model), 6)
    for name in ("ntk", "nngp"):
        assert np.max(np.abs(derived[name] - quad[name])) < 1e-9, (name, derived[name] - quad[name])
    # the other radial law's kernel is far from the quadrature (the check can fail) where the ring is not a circle
    if law["r_min"] != law["r_max"]:
        wrong = model.kernel(6, radial_law="radius")["ntk"][:, 0, 0, :, 0, 0]
        assert np.max(np.abs(wrong - quad["ntk"])) > 1e-3


def test_the_kernel_is_finite_at_r_max_1_and_long_lags_and_continuous_in_the_law() -> None:
    K = linrnn.family("diagonal", r_min=0.5, r_max=1.0, theta_max=0.1).kernel(2000)["ntk"][:, 0, 0, :, 0, 0]
    assert np.all(np.isfinite(K)) and np.allclose(K, K.T)
    ring = linrnn.family("diagonal", r_min=0.7 - 1e-9, r_max=0.7, theta_max=1e-9).kernel(40)["ntk"]
    circle = linrnn.family("diagonal", r_min=0.7, r_max=0.7, theta_max=0.0).kernel(40)["ntk"]
    assert np.allclose(ring, circle, rtol=1e-6, atol=1e-12)
    k = linrnn.family("diagonal", r_min=0.0, r_max=0.9, n_in=2, n_out=3).kernel(4)
    assert k["ntk"].shape == (4, 3, 2, 4, 3, 2) and k["ntk"][1, 0, 0, 1, 1, 0] == 0.0


def test_the_monte_carlo_mean_is_the_kernel_at_width_8() -> None:
    model = linrnn.family("diagonal", r_min=0.2, r_max=0.95, theta_max=0.8)
    draws, lags = 20000, 6
    d = model.init(width=8, seed=11, batch=draws)
    ntk = np.asarray(model.empirical_ntk(d, lags))[:, :, 0, 0, :, 0, 0]
    mean, se = ntk.mean(axis=0), ntk.std(axis=0, ddof=1) / math.sqrt(draws)
    tri = np.triu_indices(lags)
    z = ((mean - model.kernel(lags)["ntk"][:, 0, 0, :, 0, 0]) / se)[tri]
    assert np.max(np.abs(z)) < 4.5, z  # Bonferroni over 21 entries at about 1e-4
    forced = model.kernel(lags)["ntk"][:, 0, 0, :, 0, 0] * np.eye(lags)
    assert np.max(np.abs(((mean - forced) / se)[tri])) > 4.5


def test_the_claim_passes_and_rejects_its_controls() -> None:
    from linrnn.families.diagonal.claim import CLAIM, Config

    spec = linrnn.family("diagonal", r_min=0.1, r_max=0.95, theta_max=0.7).spec
    res = CLAIM.run(Config(widths=(8, 64), lags=6), spec, seed=3)
    assert res.statistic_verdict == "pass" and res.verdict == "pass"
    assert [c["id"] for c in res.controls] == ["diagonal_kernel:radius", "diagonal_kernel:forced_diagonal"]
    assert all(c["verdict"] == "rejected" for c in res.controls)


@pytest.mark.parametrize("law, control", [(dict(theta_max=math.pi), "forced_diagonal"),
                                          (dict(r_min=0.6, r_max=0.6), "radius")])
def test_the_claim_refuses_a_law_where_a_control_equals_the_theory(law: dict, control: str) -> None:
    from linrnn.families.diagonal.claim import CLAIM, Config

    with pytest.raises(UsageError, match=f"the negative control '{control}'"):
        CLAIM.check(Config(lags=6), linrnn.family("diagonal", **law).spec)


def _linrnn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "linrnn", *args], capture_output=True, text=True, timeout=300)


def test_derive_kernel_prints_the_family_kernel() -> None:
    out = _linrnn("derive", "kernel", "--family", "diagonal", "--r-max", "0.99", "--lags", "8", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["family"] == "diagonal" and got["model"]["r_max"] == 0.99 and got["layout"] == "(lag, lag)"
    model = linrnn.family("diagonal", r_max=0.99)
    assert np.allclose(got["ntk"], model.kernel(8)["ntk"][:, 0, 0, :, 0, 0], rtol=1e-15)
    assert np.allclose(got["nngp"], model.kernel(8)["nngp"][:, 0, 0, :, 0, 0], rtol=1e-15)
    assert got["ntk"][0][0] == 2.0 and abs(got["ntk"][0][1]) > 0.1  # eta_C + eta_F at lag 0; not diagonal


@pytest.mark.parametrize("command", [["derive", "weights"], ["derive", "finite-width"]])
# derive latex prints any family's derivation; verify train runs its training claim (tests/test_family_training.py);
# verify ntk checks its kernels (tests/test_verify_ntk_family.py)
def test_the_dense_commands_refuse_the_family_in_one_sentence(command: list) -> None:
    out = _linrnn(*command, "--family", "diagonal")
    assert out.returncode == 2 and out.stderr.strip().count("\n") == 0, out.stderr
    assert "dense RNN families only" in out.stderr and "diagonal" in out.stderr


def test_the_flags_of_the_ring_law_belong_to_the_diagonal_families() -> None:
    from linrnn.cli import build_parser
    from linrnn.model_flags import spec_from_args

    args = build_parser().parse_args(["derive", "kernel", "--family", "diagonal", "--r-min", "0.2", "--theta-max", "0.5"])
    assert spec_from_args(args) == linrnn.family("diagonal", r_min=0.2, theta_max=0.5).spec
    args = build_parser().parse_args(["derive", "kernel", "--r-min", "0.2"])
    with pytest.raises(UsageError, match="--r-min is not a parameter of the gaussian family"):
        spec_from_args(args)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["derive", "kernel", "--family", "diagonal", "--theta-max", "7"])


def test_the_one_channel_fast_path_equals_the_general_layout() -> None:
    """scalar_ntk (two real Grams of [Re P, Im P], the lambda part shifted by one lag) against unit_ntk with the
    derivative array."""
    import numpy as np

    import linrnn
    from linrnn.families.diagonal.model import lag_index, powers, scalar_ntk, shifted, unit_ntk

    model = linrnn.family("diagonal", r_min=0.3, r_max=0.95, theta_max=2.0, lr_c=0.7, lr_f=1.3, lr_w=0.4)
    d = model.init(width=64, seed=5, batch=2)
    P = powers(d.lam, 9)
    s = model.spec
    general = unit_ntk(P, d.c, d.b, s.lr_c, s.lr_f, [(s.lr_w, lag_index(P) * shifted(P), False)])
    fast = scalar_ntk(P, d.c, d.b, s.lr_c, s.lr_f, s.lr_w)
    assert fast.shape == general.shape and np.allclose(fast, general, rtol=1e-12, atol=1e-13)
    assert np.array_equal(np.asarray(model.empirical_ntk(d, 9)), np.asarray(fast))
    assert not np.allclose(scalar_ntk(P, d.c, d.b, s.lr_c, s.lr_f, 0.0), general)  # the lambda part counts
