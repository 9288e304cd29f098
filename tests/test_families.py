"""The model-family entry point: ``linrnn.family(name, **spec)`` and the Gaussian family's object.

The derived kernel is checked by an independent route: the exact finite-width mean of
the lag NTK (``linrnn.families.gaussian.finite_width_arrays``, loop equations of the Gaussian
transition matrix, not the lag-weight derivation) tends to it as n grows, and the
Monte Carlo mean of the object's own empirical NTK agrees with that exact mean at a
small width, where a wrong theory (q replaced by 1.3 q) is rejected.
"""

from __future__ import annotations

import numpy as np
import pytest

import linrnn
from linrnn.core.errors import UsageError
from linrnn.families.gaussian import GaussianSpec


def test_family_makes_a_validated_model_and_refuses_unknown_names() -> None:
    model = linrnn.family("gaussian", sigma_w2=0.9, lr_w=0.5)
    assert model.spec == GaussianSpec(sigma_w2=0.9, lr_w=0.5) and model.name == "gaussian"
    from linrnn.families import FAMILIES

    with pytest.raises(UsageError, match=f"unknown model family 'lstm'; known families: {', '.join(sorted(FAMILIES))}$"):
        linrnn.family("lstm")
    with pytest.raises(UsageError, match="unknown key q in the gaussian family's parameters"):
        linrnn.family("gaussian", q=0.9)
    with pytest.raises(UsageError, match="sigma_w2"):
        linrnn.family("gaussian", sigma_w2=-1.0)


def test_init_is_reproducible_from_a_plain_seed_and_gives_the_documented_shapes() -> None:
    model = linrnn.family("gaussian", sigma_w2=0.8, n_in=2, n_out=3)
    a, b = model.init(width=32, seed=7), model.init(width=32, seed=7)
    assert np.array_equal(a.W, b.W) and not np.array_equal(a.W, model.init(width=32, seed=8).W)
    assert model.impulse(a, 5).shape == (5, 3, 2)
    assert model.empirical_ntk(a, 5).shape == (5, 3, 2, 5, 3, 2)
    k = model.kernel(5)
    assert k["ntk"].shape == k["nngp"].shape == (5, 3, 2, 5, 3, 2)
    # raw arrays from elsewhere, as a (W, F, C) tuple, give the same numbers
    assert np.allclose(model.impulse((a.W, a.F, a.C), 5), model.impulse(a, 5))
    with pytest.raises(UsageError, match="drawn for"):
        linrnn.family("gaussian", sigma_w2=0.5).impulse(a, 5)
    with pytest.raises(UsageError, match="params must be"):
        model.impulse([a.W, a.F], 5)


@pytest.mark.parametrize("param", ["ntk", "standard"])
def test_the_derived_kernel_is_the_limit_of_the_exact_finite_width_mean(param: str) -> None:
    from linrnn.families.gaussian.finite_width_arrays import exact_matrices

    model = linrnn.family("gaussian", param=param, sigma_w2=0.9, lr_c=0.7, lr_f=1.3, lr_w=0.4)
    k = {name: a.reshape(6, 6) for name, a in model.kernel(6).items()}
    # the exact mean is the limit plus O(1/n): the gap shrinks tenfold from n = 10^6 to 10^7
    gaps = []
    for n in (10**6, 10**7):
        theta, nngp = exact_matrices(model.spec, 6, n)
        gaps.append(max(np.max(np.abs(theta - k["ntk"])), np.max(np.abs(nngp - k["nngp"]))))
    assert 0 < gaps[1] < 1e-5 and 8 < gaps[0] / gaps[1] < 12, gaps


def test_monte_carlo_of_the_empirical_ntk_agrees_with_the_exact_mean_and_rejects_a_wrong_q() -> None:
    from linrnn.families.gaussian.finite_width_arrays import exact_matrices

    model = linrnn.family("gaussian", sigma_w2=0.9)
    lags, width, draws = 4, 48, 600
    params = model.init(width=width, seed=3, batch=draws)
    ntk = np.asarray(model.empirical_ntk(params, lags)).reshape(draws, lags, lags)
    mean, se = ntk.mean(axis=0), ntk.std(axis=0, ddof=1) / np.sqrt(draws)
    tri = np.triu_indices(lags)
    crit = 4.6  # two-sided, Bonferroni over the 10 entries at 1e-4 (normal approximation, 600 draws)
    exact = exact_matrices(model.spec, lags, width)[0]
    z = (mean - exact) / se
    assert np.max(np.abs(z[tri])) < crit, z
    wrong = exact_matrices(model.spec.replace(sigma_w2=1.3 * 0.9), lags, width)[0]
    assert np.max(np.abs(((mean - wrong) / se)[tri])) > crit


def test_a_report_on_a_family_that_is_not_dense_is_refused_in_one_sentence(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The report's claims on [model] run dense recurrences; a diagonal family's own claims run in every report."""
    import subprocess
    import sys

    out = tmp_path / "rep"
    r = subprocess.run([sys.executable, "-m", "linrnn", "report", "--family", "diagonal", "-o", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
    assert "not a dense recurrence" in r.stderr and "diagonal_kernel" in r.stderr and not out.exists()
