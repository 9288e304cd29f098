"""The shifted family (linrnn.families.shifted): specification, sampler, empirical NTK, derivation, kernel, check.

The sampler and the structured empirical NTK are checked against a naive reference (the
shifted W_e built by hand from its Gaussian part, explicit matrix powers, central finite
differences); the derived Krylov rule against the non-commutative expansion and the
issue's formula; the kernel at a = 0 against the Gaussian family's lag weights, its
evaluation against SymPy's own; the Monte Carlo check passes with its controls rejected.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import sympy as sp

import linrnn
from linrnn.core.errors import UsageError


def test_the_specification_validates_the_shift() -> None:
    model = linrnn.family("shifted", shift=-0.4, sigma_w2=0.3)
    assert model.spec.family == "shifted" and model.spec.shift == -0.4
    assert linrnn.family("shifted").spec.shift == 1.0  # the IRNN's identity
    for bad in ("x", float("nan"), float("inf"), True):
        with pytest.raises(UsageError, match="shift must be a"):
            linrnn.family("shifted", shift=bad)
    with pytest.raises(UsageError, match="not diagonal in the lags"):
        model.spec.derivation_law()


def _naive_impulse(Ge: np.ndarray, F: np.ndarray, C: np.ndarray, spec, lags: int) -> np.ndarray:  # noqa: ANN001
    """L_j = C_e (a I + alpha_W G)^j F_e by explicit matrix powers, from the Gaussian part G."""
    n = Ge.shape[0]
    a_c, a_f, a_w = spec.scales(n)
    W_e = spec.shift * np.eye(n) + a_w * Ge
    return np.stack([a_c * C @ np.linalg.matrix_power(W_e, j) @ (a_f * F) for j in range(lags)])


@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_the_draw_and_the_empirical_ntk_against_a_naive_reference(param: str) -> None:
    model = linrnn.family("shifted", param=param, shift=0.7, sigma_w2=0.4, n_in=2, n_out=2, lr_c=0.5, lr_f=1.3,
                          lr_w=0.8)
    spec, n, lags = model.spec, 4, 4
    d = model.init(width=n, seed=3)
    W, F, C = (np.asarray(x) for x in (d.W, d.F, d.C))
    Ge = W - np.eye(n) * spec.shift / spec.scales(n)[2]  # the Gaussian part of the raw W
    assert np.allclose(np.asarray(model.impulse(d, lags)), _naive_impulse(Ge, F, C, spec, lags), rtol=1e-12,
                       atol=1e-13)
    # the NTK by central differences with respect to the raw Gaussian part, F and C
    params, h = [C, F, Ge], 1e-6
    grads = []
    for idx, P in enumerate(params):
        cols = []
        for flat in range(P.size):
            up = [x.copy() for x in params]
            dn = [x.copy() for x in params]
            up[idx].flat[flat] += h
            dn[idx].flat[flat] -= h
            diff = _naive_impulse(up[2], up[1], up[0], spec, lags) - _naive_impulse(dn[2], dn[1], dn[0], spec, lags)
            cols.append((diff / (2 * h)).ravel())
        grads.append(np.stack(cols, axis=1))
    s = spec.ntk_prefactor(n)
    ref = s * sum(eta * J @ J.T for eta, J in zip((spec.lr_c, spec.lr_f, spec.lr_w), grads))
    got = np.asarray(model.empirical_ntk(d, lags)).reshape(ref.shape)
    assert np.allclose(got, ref, rtol=1e-6, atol=1e-8)
    wrong = linrnn.family("shifted", **{**spec.as_dict(), "shift": 0.6})  # the comparison can fail
    Wg = Ge + np.eye(n) * 0.6 / spec.scales(n)[2]
    assert not np.allclose(np.asarray(wrong.empirical_ntk((Wg, F, C), lags)).reshape(ref.shape), ref, rtol=1e-3)


def test_the_monte_carlo_draws_carry_the_shift() -> None:
    from linrnn.verify.backend import get_backend
    from linrnn.verify.draws import DrawMaker

    spec = linrnn.family("shifted", shift=0.5, sigma_w2=0.25).spec
    n = 64
    with DrawMaker(get_backend("numpy", seed=1), spec, n, workers=1) as maker:
        draw = maker.finish(maker.start(0, 50))
    W_e = np.asarray(draw.W) * spec.scales(n)[2]
    G = W_e - 0.5 * np.eye(n)  # entries of variance q / n
    assert abs(np.mean(G) / (np.std(G) / np.sqrt(G.size))) < 5
    assert abs(np.var(G) * n / 0.25 - 1) < 0.02


def test_the_derived_krylov_rule() -> None:
    from linrnn.families.shifted import derivation as D

    der = D.derive_shifted("ntk")
    issue = sp.Sum(sp.binomial(D.p, D.m) * sp.binomial(D.r, D.m) * D.a ** (D.p + D.r - 2 * D.m) * sp.Symbol("q",
                   positive=True) ** D.m, (D.m, 0, sp.Min(D.p, D.r)))  # the issue's g(j, k): a check
    for pp in range(5):
        for rr in range(5):
            got = der.g_sum.subs({D.p: pp, D.r: rr}).doit()
            assert sp.expand(got - issue.subs({D.p: pp, D.r: rr}).doit()) == 0
            assert sp.expand(got - D.expanded_rule(pp, rr, sp.Symbol("q", positive=True))) == 0
    assert D.check_krylov_rule(der.g_sum, 3)
    assert not D.check_krylov_rule(der.g_sum.subs(D.a, 2 * D.a), 2)  # a wrong rule is caught
    with pytest.raises(ValueError, match="not a word"):
        D.tau_word([D.X, D.X_adj], 1)
    assert der.orders == {"C": 0, "F": 0, "W": 0}
    assert D.derive_shifted("standard").orders["F"] == -1  # as the Gaussian family's standard parameterization


@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_at_shift_zero_the_kernel_is_the_gaussian_familys(param: str) -> None:
    from linrnn.core.spec import ModelSpec
    from linrnn.derive import nngp_variance, weights

    kw = dict(param=param, sigma_w2=0.7, sigma_c2=1.3, sigma_f2=0.8, n_in=2, lr_c=0.4, lr_f=1.1, lr_w=0.9)
    k = linrnn.family("shifted", shift=0.0, **kw).kernel(9)
    gauss = ModelSpec(**kw)
    assert np.allclose(k["ntk"][:, 0, 0, :, 0, 0], np.diag(weights(gauss, 9)), rtol=1e-13, atol=0)
    assert np.allclose(k["nngp"][:, 0, 0, :, 0, 0], np.diag(nngp_variance(gauss, 9)), rtol=1e-13, atol=0)
    assert np.array_equal(k["ntk"][:, 0, 1, :, 0, 1], k["ntk"][:, 0, 0, :, 0, 0]) and not k["ntk"][:, 0, 0, :, 0, 1].any()


def test_the_kernel_evaluation_against_sympy() -> None:
    from linrnn.derive import symbols as S
    from linrnn.families.shifted import derivation as D

    model = linrnn.family("shifted", shift=-0.6, sigma_w2=0.35, sigma_c2=1.2, lr_c=0.3, lr_f=0.9, lr_w=1.7)
    der = model.closed_forms()
    k = model.kernel(5)
    values = {D.a: sp.Rational(-3, 5), S.q: sp.Rational(7, 20), S.sigma_c2: sp.Rational(6, 5), S.sigma_f2: 1,
              S.n_x: 1, S.eta_c: sp.Rational(3, 10), S.eta_f: sp.Rational(9, 10), S.eta_w: sp.Rational(17, 10)}
    g = sp.Lambda((D.p, D.r), der.g_sum.subs(values))
    for name in ("ntk", "nngp"):
        expr = getattr(der, name).subs(values)  # the split sums first (g symbolic), then g's own sums: exact
        exact = np.array([[float(expr.subs({D.j: jj, D.k: kk}).doit().replace(D.g, g).doit()) for kk in range(5)]
                          for jj in range(5)])
        assert np.allclose(k[name][:, 0, 0, :, 0, 0], exact, rtol=1e-13, atol=1e-15)
    assert not np.allclose(k["ntk"], k["ntk"] * np.eye(5)[:, None, None, :, None, None])  # not lag-diagonal
    with pytest.raises(UsageError, match="at most 256 lags"):
        model.kernel(257)
    with pytest.raises(UsageError, match="exceeds float64"):
        linrnn.family("shifted", shift=30.0, sigma_w2=1.0).kernel(120)


def test_the_split_convolution_is_the_direct_sum() -> None:
    from linrnn.families.shifted.kernel import split_convolution

    G = np.random.default_rng(0).standard_normal((7, 7))
    direct = np.array([[sum(G[s, t] * G[x - s, y - t] for s in range(x + 1) for t in range(y + 1)) for y in range(7)]
                       for x in range(7)])
    assert np.allclose(split_convolution(G), direct, rtol=1e-13, atol=1e-13)


def test_verify_ntk_passes_and_rejects_its_controls() -> None:
    from linrnn.verify.check_ntk import check_lag_ntk

    spec = linrnn.family("shifted", param="standard", shift=-0.5, sigma_w2=0.3, lr_f=0.5).spec
    r = check_lag_ntk(spec, [256], lags=5, replicas=256, seed=3, backend="numpy", progress=False, pilot=0)
    assert r.design.mean_theory == "richardson"
    assert r.statistic_outcome == "pass", r.table()
    assert set(r.controls) == {f"{kind}:{name}" for kind in ("ntk", "nngp")
                               for name in ("forced_diagonal", "spectral_twin", "no_shift")}
    assert r.controls_rejected and r.verdict == "pass", r.table()
    assert "family=shifted shift=-0.5" in r.table() and r.to_json()["config"]["shift"] == -0.5
    with pytest.raises(UsageError, match="no exact finite-width"):
        check_lag_ntk(spec, [64], lags=4, mean="exact", progress=False)
    with pytest.raises(UsageError, match="use lags >= 2"):
        check_lag_ntk(spec, [64], lags=1, progress=False)
    with pytest.raises(UsageError, match="no number of lags separates them"):
        check_lag_ntk(spec.replace(shift=0.0), [64], lags=4, progress=False)


def test_the_claim_is_registered_and_checks_its_setting() -> None:
    from linrnn.families import claims
    from linrnn.families.shifted.claim import Config, check

    claim = claims()["shifted_kernel"]
    assert claim.family == "shifted" and claim.section == "shifted"
    spec = linrnn.family("shifted").spec
    check(Config(), spec)
    with pytest.raises(UsageError, match="no number of lags separates them"):
        check(Config(shift=0.0), spec)
    with pytest.raises(UsageError, match="shifted.lags must be at least 2"):
        Config(lags=1)


def _linrnn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "linrnn", *args], capture_output=True, text=True, timeout=120)


def test_the_commands(tmp_path) -> None:  # noqa: ANN001
    import json

    out = _linrnn("derive", "kernel", "--family", "shifted", "--shift", "0.5", "--lags", "8", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["family"] == "shifted" and got["model"]["shift"] == 0.5 and len(got["ntk"]) == 8
    assert got["ntk"][0][1] != 0
    tex = tmp_path / "shifted.tex"
    out = _linrnn("derive", "latex", "--family", "shifted", "-o", str(tex))
    assert out.returncode == 0, out.stderr
    assert r"\section{The Krylov rule of a shifted circular matrix}" in tex.read_text()
    out = _linrnn("derive", "weights", "--family", "shifted")
    assert out.returncode == 2 and "not diagonal in the lags" in out.stderr and "Traceback" not in out.stderr
    out = _linrnn("derive", "kernel", "--family", "shifted", "--shift", "nan")
    assert out.returncode == 2 and "--shift must be a finite number" in out.stderr
