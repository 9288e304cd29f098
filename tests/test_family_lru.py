"""The LRU family (linrnn.families.lru): specification, sampler, structured NTK, derivation, claim, commands.

As for the diagonal family: the closed forms against quadrature of the initialisation
law (1e-9), the structured NTK against finite differences of the recurrence and a dense
Jacobian, the claim with its three controls (the wrong radial law, the kernel forced
diagonal, the kernel without the factor 1/2 of the real parameters).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import linrnn
from linrnn.core.errors import UsageError
from tests.diagonal_reference import dense_jacobian_ntk, finite_difference_ntk, law_quadrature, pack, recurrence


def _unit_draw(model):  # noqa: ANN001, ANN202
    from linrnn.families.lru.model import LRUDraw

    def make(rho, phi, c, b):  # noqa: ANN001, ANN202
        return LRUDraw(c=c[:, None, None], b=b[:, None, None], gamma_log=(0.5 * np.log1p(-(rho**2)))[:, None],
                       nu_log=np.log(-np.log(rho))[:, None], theta_log=np.log(phi)[:, None], spec=model.spec)

    return make


def test_the_specification_validates_its_fields() -> None:
    spec = linrnn.family("lru", r_min=0.5, r_max=1.0, theta_max=0.3, lr_theta=0.2).spec
    assert spec.family == "lru" and spec.lr_theta == 0.2
    with pytest.raises(UsageError, match="theta_max > 0"):
        linrnn.family("lru", theta_max=0.0)
    with pytest.raises(UsageError, match="r_min < 1"):
        linrnn.family("lru", r_min=1.0, r_max=1.0)
    with pytest.raises(UsageError, match="unknown key lr_w"):
        linrnn.family("lru", lr_w=1.0)


def test_the_sampler_draws_the_lru_parameters_of_the_ring_law() -> None:
    from scipy.stats import kstest

    model = linrnn.family("lru", r_min=0.4, r_max=0.99, theta_max=0.5)
    d = model.init(width=40000, seed=3)
    lam = d.eigenvalues()
    assert kstest((np.abs(lam) ** 2 - 0.16) / (0.99**2 - 0.16), "uniform").pvalue > 1e-4
    assert kstest(np.exp(d.theta_log) / 0.5, "uniform").pvalue > 1e-4
    assert np.allclose(np.exp(2 * d.gamma_log), 1 - np.abs(lam) ** 2, rtol=1e-12)


def test_the_structured_ntk_against_finite_differences_and_a_dense_jacobian() -> None:
    model = linrnn.family("lru", r_min=0.3, r_max=0.95, theta_max=2.0, n_in=2, n_out=2, lr_c=0.5, lr_f=1.3,
                          lr_gamma=0.7, lr_nu=1.1, lr_theta=0.4)
    d = model.init(width=3, seed=4)
    fast = np.asarray(model.empirical_ntk(d, 5))
    assert np.allclose(fast, dense_jacobian_ntk(d, 5), rtol=1e-12, atol=1e-13)
    assert np.allclose(fast, finite_difference_ntk(d, 5), rtol=1e-7, atol=1e-8)
    assert np.allclose(model.impulse(d, 5), recurrence(model.spec, pack(d)[0], 3, 5), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("law", [dict(r_min=0.0, r_max=0.9, theta_max=1.0), dict(r_min=0.5, r_max=1.0, theta_max=2.5),
                                 dict(r_min=0.8, r_max=0.8, theta_max=0.3)])
def test_the_closed_forms_agree_with_quadrature_of_the_law(law: dict) -> None:
    model = linrnn.family("lru", **law, lr_c=0.6, lr_f=1.4, lr_gamma=0.9, lr_nu=1.2, lr_theta=0.7)
    derived = {name: a[:, 0, 0, :, 0, 0] for name, a in model.kernel(6).items()}
    quad = law_quadrature(model, _unit_draw(model), 6)
    for name in ("ntk", "nngp"):
        assert np.max(np.abs(derived[name] - quad[name])) < 1e-9, (name, derived[name] - quad[name])
    doubled = linrnn.family("lru", **law, lr_c=0.6, lr_f=1.4, lr_gamma=1.8, lr_nu=2.4, lr_theta=1.4)
    assert np.max(np.abs(doubled.kernel(6)["ntk"][:, 0, 0, :, 0, 0] - quad["ntk"])) > 1e-3  # the check can fail


def test_the_theta_part_is_not_diagonal_even_for_a_uniform_phase() -> None:
    only_theta = linrnn.family("lru", r_min=0.0, r_max=0.9, theta_max=2 * math.pi, lr_c=0, lr_f=0, lr_gamma=0, lr_nu=0)
    K = only_theta.kernel(6)["ntk"][:, 0, 0, :, 0, 0]
    assert np.max(np.abs(K - np.diag(np.diag(K)))) > 1e-2
    only_c = linrnn.family("lru", r_min=0.0, r_max=0.9, theta_max=2 * math.pi, lr_f=0, lr_gamma=0, lr_nu=0, lr_theta=0)
    Kc = only_c.kernel(6)["ntk"][:, 0, 0, :, 0, 0]
    assert np.max(np.abs(Kc - np.diag(np.diag(Kc)))) < 1e-15


def test_the_claim_passes_and_rejects_its_three_controls() -> None:
    from linrnn.families.lru.claim import CLAIM, Config

    spec = linrnn.family("lru", r_min=0.2, r_max=0.95, theta_max=0.7).spec
    res = CLAIM.run(Config(widths=(8, 64), lags=5), spec, seed=3)
    assert res.statistic_verdict == "pass" and res.verdict == "pass"
    assert [c["id"].split(":")[1] for c in res.controls] == ["radius", "forced_diagonal", "no_half"]
    assert all(c["verdict"] == "rejected" for c in res.controls)


def test_the_claim_refuses_a_setting_without_real_parameters_to_halve() -> None:
    from linrnn.families.lru.claim import CLAIM, Config

    with pytest.raises(UsageError, match="the negative control 'no_half'"):
        CLAIM.check(Config(lags=5), linrnn.family("lru", lr_gamma=0, lr_nu=0, lr_theta=0).spec)


def _linrnn(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "linrnn", *args], capture_output=True, text=True, timeout=300)


def test_derive_kernel_and_the_refusals() -> None:
    out = _linrnn("derive", "kernel", "--family", "lru", "--r-max", "1", "--r-min", "0.9", "--lags", "6", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    model = linrnn.family("lru", r_min=0.9, r_max=1.0)
    assert got["family"] == "lru" and np.allclose(got["ntk"], model.kernel(6)["ntk"][:, 0, 0, :, 0, 0], rtol=1e-15)
    bad = _linrnn("verify", "train", "--family", "lru")  # verify ntk checks it: tests/test_verify_ntk_family.py
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "lru" in bad.stderr
