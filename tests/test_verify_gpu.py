"""CuPy backend against NumPy, statistically (random streams differ between backends).

Deselected by default (``-m 'not gpu'``); run with ``pytest -m gpu`` on a machine with
CuPy and an NVIDIA GPU. Each statistical comparison is a Holm-corrected two-sample
z-test at alpha = 1e-3 with a negative control (a deliberately shifted theory).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from linrnn.families.gaussian import GaussianSpec
from linrnn.core.errors import UsageError
from linrnn.verify.backend import get_backend
from linrnn.verify.check_ntk import check_lag_ntk
from linrnn.verify.montecarlo import estimate_width  # noqa: F401

from helpers import estimate
from linrnn.verify.ntk import empirical_lag_ntk
from linrnn.verify.sample import RNNDraw, sample_rnn
from linrnn.verify.stats import entry_test

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module", autouse=True)
def gpu():
    try:
        return get_backend("cupy", seed=0)
    except UsageError as exc:
        pytest.skip(str(exc))


def test_same_draw_same_ntk(gpu) -> None:
    """Deterministic algebra on the same input: agreement to rounding (not bit for bit)."""
    spec = GaussianSpec(param="standard", n_in=2, n_out=2, lr_c=0.5, lr_f=2.0, lr_w=1.5)
    host = sample_rnn(get_backend("numpy", seed=1), spec, 300)
    dev = RNNDraw(*(gpu.asarray(a) for a in (host.W, host.F, host.C)), spec)
    a = empirical_lag_ntk(host, 8)
    b = gpu.to_numpy(empirical_lag_ntk(dev, 8))
    assert np.max(np.abs(a - b)) <= 1e-10 * np.max(np.abs(a))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_cupy_and_numpy_agree_statistically(dtype: str) -> None:
    kw = {"lags": 6, "n_in": 1, "n_out": 2, "replicas": 256, "sigma_w2": 0.9}
    a = estimate(get_backend("numpy", seed=3, dtype=dtype), 256, **kw)
    b = estimate(get_backend("cupy", seed=4, dtype=dtype), 256, **kw)
    dof = kw["replicas"] - 1
    for mean_a, se_a, mean_b, se_b in ((a.ntk_mean, a.ntk_stderr, b.ntk_mean, b.ntk_stderr),
                                       (a.nngp_mean, a.nngp_stderr, b.nngp_mean, b.nngp_stderr)):
        se = np.sqrt(se_a**2 + se_b**2)
        same = entry_test("diff", mean_a - mean_b, se, np.zeros_like(se), alpha=1e-3, dof=dof)
        assert same.passed, same.summary()
    # negative control: a 5% change of the NTK is seen by the same two-sample test
    se = np.sqrt(a.ntk_stderr**2 + b.ntk_stderr**2)
    shifted = entry_test("diff", a.ntk_mean - 1.05 * b.ntk_mean, se, np.zeros_like(se), alpha=1e-3, dof=dof)
    assert not shifted.passed


def test_default_run_on_gpu() -> None:
    r = check_lag_ntk(GaussianSpec(), [1024], lags=16, replicas=64, seed=0, backend="cupy", progress=False)
    assert r.backend["backend"] == "cupy"
    assert r.theory_passed and r.controls_rejected, r.table()
    assert math.isfinite(r.seconds)
