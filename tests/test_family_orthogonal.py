"""The orthogonal family (linrnn.families.orthogonal): its Haar moments, sampler, derivation, claim and commands.

Every claim is checked twice: the Haar moments E tr(O^m) by the hook count, by SymPy's
sum of the same expansion, by exact integration over O(2) and by Monte Carlo of the
family's own sampler at n = 4, 8, 16 (with a wrong moment rejected); the empirical lag
NTK of an orthogonal draw against central finite differences and the dense Jacobian;
the wide-limit kernel against the Gaussian family's derivation (it comes out equal);
the exact finite-width NNGP against the claim's Monte Carlo (with the Gaussian family's
exact mean, the control, rejected).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import linrnn
from linrnn.core.errors import UsageError
from linrnn.families.orthogonal.law import trace_moment, trace_moment_expr


def test_trace_moments_by_hooks_agree_with_the_symbolic_hook_sum() -> None:
    m, n = sp.Symbol("m", integer=True, nonnegative=True), sp.Symbol("n", positive=True, integer=True)
    expr = trace_moment_expr(m, n)
    for width in range(1, 13):
        for power in range(0, 41):
            assert trace_moment(power, width) == expr.subs({m: power, n: width}), (power, width)
    assert [trace_moment(p, 5) for p in range(7)] == [5, 0, 1, 0, 1, 0, 1]


def test_trace_moments_at_n_2_by_exact_integration_over_the_orthogonal_group() -> None:
    # O(2): rotations R(t), t uniform, and reflections (eigenvalues 1 and -1), each with probability 1/2
    t = sp.Symbol("t", real=True)
    for power in range(0, 9):
        rotation = sp.integrate(2 * sp.cos(power * t), (t, 0, 2 * sp.pi)) / (2 * sp.pi)
        reflection = 1 + (-1) ** power
        assert sp.nsimplify((rotation + reflection) / 2) == trace_moment(power, 2), power


@pytest.mark.parametrize("width", [4, 8, 16])
def test_trace_moments_against_monte_carlo_of_the_family_sampler(width: int) -> None:
    """z-tests of E tr(O^m), m = 1..6, over 20000 draws (Bonferroni at 1e-6 over the 18 entries of the three
    widths); the wrong moment "0 for every m >= 1" (the Gaussian-like guess) must be rejected at the even m."""
    from scipy.stats import norm

    model = linrnn.family("orthogonal", param="standard", sigma_w2=1.0)
    draws = 20000
    O = np.asarray(model.init(width=width, seed=100 + width, batch=draws).W)
    assert np.allclose(O[0] @ O[0].T, np.eye(width), atol=1e-12)
    powers = np.arange(1, 7)
    traces = np.empty((draws, len(powers)))
    P = np.broadcast_to(np.eye(width), O.shape).copy()
    for k in range(len(powers)):
        P = P @ O
        traces[:, k] = np.trace(P, axis1=1, axis2=2)
    mean, se = traces.mean(axis=0), traces.std(axis=0, ddof=1) / np.sqrt(draws)
    crit = norm.isf(1e-6 / (2 * 18))
    exact = np.array([trace_moment(int(p), width) for p in powers], dtype=float)
    z = (mean - exact) / se
    assert np.all(np.abs(z) < crit), z
    z_wrong = mean / se  # the control: E tr O^m = 0 for every m >= 1
    assert np.all(np.abs(z_wrong[1::2]) > crit), z_wrong


@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_the_sampler_draws_scaled_orthogonal_matrices_in_both_parameterizations(param: str) -> None:
    model = linrnn.family("orthogonal", param=param, sigma_w2=0.7)
    d = model.init(width=12, seed=3, batch=4)
    alpha_w = model.spec.scales(12)[2]
    We = np.asarray(d.W) * alpha_w
    assert np.allclose(We @ np.swapaxes(We, 1, 2), 0.7 * np.eye(12), atol=1e-12)
    g = linrnn.family("gaussian", param=param, sigma_w2=0.7).init(width=12, seed=3, batch=4)
    assert np.array_equal(d.F, g.F) and np.array_equal(d.C, g.C)  # C and F as the Gaussian family draws them


def test_the_sampler_runs_in_the_array_api_strict_namespace() -> None:
    from linrnn.verify.backend import get_backend

    model = linrnn.family("orthogonal", sigma_w2=0.9)
    d = model.init(width=6, backend=get_backend("array_api_strict", seed=1), batch=2)
    W = np.asarray(d.W) * model.spec.scales(6)[2]
    assert np.allclose(W @ np.swapaxes(W, 1, 2), 0.9 * np.eye(6), atol=1e-12)


def test_the_empirical_ntk_of_an_orthogonal_draw_against_finite_differences_and_the_dense_jacobian() -> None:
    from linrnn.verify.reference import dense_jacobian_lag_ntk, finite_difference_lag_ntk

    model = linrnn.family("orthogonal", sigma_w2=0.8, n_in=2, n_out=2, lr_c=0.5, lr_w=1.5)
    d = model.init(width=5, seed=4)
    fast = np.asarray(model.empirical_ntk(d, 4))
    assert np.allclose(fast, dense_jacobian_lag_ntk(d, 4), rtol=1e-10, atol=1e-12)
    assert np.allclose(fast, finite_difference_lag_ntk(d, 4), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_the_derived_wide_limit_comes_out_equal_to_the_gaussian_one(param: str) -> None:
    spec = {"param": param, "sigma_w2": 0.9, "lr_c": 0.7, "lr_f": 1.3, "lr_w": 0.4}
    orth, gauss = linrnn.family("orthogonal", **spec), linrnn.family("gaussian", **spec)
    do, dg = orth.derivation(), gauss.derivation()
    assert sp.simplify(do.weight - dg.weight) == 0 and sp.simplify(do.nngp - dg.nngp) == 0
    assert "Haar" in do.steps["rule-W"].note and "Haar" not in dg.steps["rule-W"].note  # derived by another rule
    for name in ("ntk", "nngp"):
        assert np.array_equal(orth.kernel(8)[name], gauss.kernel(8)[name])


def test_the_exact_nngp_has_no_diagonal_correction_and_tends_to_the_limit() -> None:
    model = linrnn.family("orthogonal", sigma_w2=0.9, sigma_c2=1.3, sigma_f2=0.6)
    limit = model.kernel(6)["nngp"].reshape(6, 6)
    for n in (4, 16):
        nngp = model.finite_width(6, n)["nngp"]
        assert np.allclose(np.diag(nngp), np.diag(limit), rtol=1e-14)
        assert np.isclose(nngp[0, 2], 1.3 * 0.6 * 0.9 / n) and nngp[0, 1] == 0.0  # E tr O^2 = 1, E tr O = 0
    gaps = [np.max(np.abs(model.finite_width(6, n)["nngp"] - limit)) for n in (10**3, 10**4)]
    assert np.isclose(gaps[0] / gaps[1], 10.0)
    assert model.finite_width(6, 16)["ntk"] is None


def test_the_claim_passes_and_rejects_the_gaussian_finite_width_mean() -> None:
    from linrnn.families.orthogonal.claim import CLAIM, Config

    spec = linrnn.family("orthogonal", sigma_w2=0.9).spec
    res = CLAIM.run(Config(widths=(8, 16), lags=8, max_replicas=32768, ntk_replicas=256), spec, seed=5)
    assert res.statistic_verdict == "pass" and res.controls[0]["verdict"] == "rejected" and res.verdict == "pass"
    ratio = res.data["ntk_sd_ratio"]["per_width"]
    assert [r["width"] for r in ratio] == [8, 16] and all(0 < r["median_ratio"] < 1 for r in ratio)


def test_the_claim_refuses_lags_at_which_the_control_equals_the_theory() -> None:
    from linrnn.families.orthogonal.claim import CLAIM, Config

    spec = linrnn.family("orthogonal").spec
    with pytest.raises(UsageError, match=r"\[orthogonal\] lags = 2 .* use \[orthogonal\] lags >= 3"):
        CLAIM.check(Config(lags=2), spec)


def test_a_model_table_names_the_family_and_the_report_runs_the_family_claim_on_its_own_spec() -> None:
    from linrnn import suite
    from linrnn.families import claim_model, claims

    cfg = suite.resolve_config("quick", {"model": {"family": "orthogonal", "sigma_w2": 0.8}})
    assert cfg.model.family == "orthogonal" and cfg.model.sigma_w2 == 0.8
    assert claim_model(claims()["finite_width"], cfg.model).family == "gaussian"  # the Gaussian family's claim
    gauss = suite.resolve_config("quick").model
    assert claim_model(claims()["orthogonal_nngp"], gauss).family == "orthogonal"
    with pytest.raises(UsageError, match="unknown model family 'unitary'"):
        suite.resolve_config("quick", {"model": {"family": "unitary"}})


def _linrnn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "linrnn", *args], capture_output=True, text=True, timeout=300)


def test_commands_take_the_family() -> None:
    o = json.loads(_linrnn("derive", "kernel", "--family", "orthogonal", "--lags", "5", "--json").stdout)
    g = json.loads(_linrnn("derive", "kernel", "--lags", "5", "--json").stdout)
    assert o["family"] == "orthogonal" and g["family"] == "gaussian" and o["ntk"] == g["ntk"]
    fw = json.loads(_linrnn("derive", "finite-width", "--family", "orthogonal", "--lags", "4", "--width", "8",
                            "--json").stdout)
    assert fw["ntk"] is None and fw["nngp"][0][2] == pytest.approx(1 / 8) and "not derived" in fw["note"]
    bad = _linrnn("verify", "ntk", "--family", "orthogonal", "--mean", "exact", "--lags", "4", "--width", "16")
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "richardson" in bad.stderr
