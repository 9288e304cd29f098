"""Consequences of a family's lag kernel (``linrnn.families.consequences``), each checked by a second route."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import linrnn
from linrnn.cli import main
from linrnn.families import FAMILIES
from linrnn.families.consequences import (RANK_CUTOFF, compare, consequences, consequences_of, effective_rank,
                                          horizon_fraction, horizon_threshold, lag_kernel, neighbour_correlation,
                                          normalised_distance, participation_ratio, rkhs_norm)


def _ar1(diag: np.ndarray, rho: float) -> np.ndarray:
    """D K D with K_jk = rho^|j-k| (a correlation matrix): every neighbouring pair has correlation rho exactly."""
    j = np.arange(diag.size)
    root = np.sqrt(diag)
    return root[:, None] * rho ** np.abs(j[:, None] - j[None, :]) * root[None, :]


def test_hand_made_kernel_horizons_rank_and_smoothness() -> None:
    T = 20
    d = 2.0 ** -np.arange(T)  # sum_{j<=h} = 2 (1 - 2^-(h+1)) >= 0.9 * 2 (1 - 2^-T) first at h = 3
    theta = np.diag(d)
    assert horizon_fraction(theta) == 3
    assert horizon_threshold(theta) == 10  # 2^-10 < 1e-3 <= 2^-9
    assert effective_rank(theta) == 20 and neighbour_correlation(theta) == 0.0
    assert participation_ratio(theta) == pytest.approx(d.sum() ** 2 / (d * d).sum(), rel=1e-13)
    # the same diagonal, now correlated: the horizons are unchanged, the neighbour correlation is rho
    for rho in (0.3, -0.5, 0.95):
        k = _ar1(d, rho)
        assert horizon_fraction(k) == 3 and horizon_threshold(k) == 10
        assert neighbour_correlation(k) == pytest.approx(rho, rel=1e-12)
        lam = np.linalg.eigvalsh(k)  # a second eigensolver (LAPACK syevd through NumPy)
        assert effective_rank(k) == np.count_nonzero(lam > RANK_CUTOFF * lam[-1])
        assert effective_rank(_ar1(np.linspace(1.0, 2.0, T), rho)) == T  # a well-conditioned one: full rank
    # "for good": a diagonal that dips below eps and comes back does not end the memory there
    assert horizon_threshold(np.diag([1.0, 1e-4, 1.0, 1e-4, 1e-4])) == 3
    assert horizon_threshold(np.diag([1.0, 1e-4, 1.0])) is None
    assert horizon_threshold(np.diag([1.0, 1e-4]), eps=1e-5) is None
    # an exact 90% counts (rounding allowed): ten equal lags hold 90% at lag 8
    assert horizon_fraction(np.eye(10)) == 8
    # eigenvalues on both sides of the cutoff
    assert effective_rank(np.diag([1.0, 1e-3, 2e-6, 5e-7, 0.0])) == 3
    assert participation_ratio(np.eye(7)) == pytest.approx(7.0, rel=1e-14)
    assert participation_ratio(np.ones((7, 7))) == pytest.approx(1.0, rel=1e-12)
    assert neighbour_correlation(np.ones((1, 1))) is None


def test_rank_of_a_sum_of_rank_one_terms() -> None:
    rng = np.random.default_rng(3)
    T = 40
    for k in (1, 2, 5, 17, 40):
        v = rng.standard_normal((k, T))
        theta = v.T @ v  # sum of k rank-one terms v v^T
        assert effective_rank(theta) == k
        # (sum lambda)^2 / sum lambda^2 = (tr Theta)^2 / ||Theta||_F^2 for a symmetric matrix
        assert participation_ratio(theta) == pytest.approx(np.trace(theta) ** 2 / np.sum(theta * theta), rel=1e-10)


def test_rkhs_norm_against_the_interpolation_problem() -> None:
    rng = np.random.default_rng(4)
    T = 30
    # full rank: solve Theta alpha = h by least squares, the interpolant's norm is alpha^T Theta alpha
    a = rng.standard_normal((T, T))
    theta = a @ a.T + 0.1 * np.eye(T)
    h = rng.standard_normal(T)
    alpha = np.linalg.lstsq(theta, h, rcond=RANK_CUTOFF)[0]
    assert np.allclose(theta @ alpha, h, atol=1e-10)
    assert rkhs_norm(theta, h) == pytest.approx(math.sqrt(alpha @ theta @ alpha), rel=1e-9)
    # a diagonal kernel: ||h||^2 = sum h_j^2 / Theta_jj
    d = rng.uniform(0.5, 2.0, T)
    assert rkhs_norm(np.diag(d), h) == pytest.approx(math.sqrt(np.sum(h * h / d)), rel=1e-12)
    # rank deficient: h = Theta w lies in the RKHS, any such w gives the norm w^T Theta w; lstsq agrees
    v = rng.standard_normal((5, T))
    low = v.T @ v
    w = rng.standard_normal(T)
    h_in = low @ w
    alpha = np.linalg.lstsq(low, h_in, rcond=RANK_CUTOFF)[0]
    assert rkhs_norm(low, h_in) == pytest.approx(math.sqrt(w @ low @ w), rel=1e-8)
    assert rkhs_norm(low, h_in) == pytest.approx(math.sqrt(alpha @ low @ alpha), rel=1e-8)
    # the part of h outside the retained eigenvectors is dropped (the pseudo-inverse), as lstsq drops it
    null = np.linalg.svd(v)[2][5:]  # orthonormal rows spanning the null space of low
    assert rkhs_norm(low, null[0]) == pytest.approx(0.0, abs=1e-6)
    assert rkhs_norm(low, h_in + 3.0 * null[1]) == pytest.approx(rkhs_norm(low, h_in), rel=1e-8)
    with pytest.raises(ValueError, match="one entry per lag"):
        rkhs_norm(low, h_in[:-1])


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_has_finite_consequences(name: str) -> None:
    model = linrnn.family(name)
    theta, is_block = lag_kernel(model, 48)
    assert not is_block and theta.shape == (48, 48)
    c = consequences(model, 48)
    assert c == consequences_of(theta) and c.lags == 48
    assert 0 <= c.horizon_90 < 48 and 1 <= c.effective_rank <= 48
    assert math.isfinite(c.participation_ratio) and 1.0 <= c.participation_ratio <= 48.0 + 1e-9
    assert c.neighbour_correlation is not None and math.isfinite(c.neighbour_correlation)
    assert math.isfinite(rkhs_norm(theta, 0.9 ** np.arange(48)))
    dense = np.allclose(theta, np.diag(np.diagonal(theta)), rtol=0.0, atol=0.0)
    if dense:  # the dense families' lag kernel is diagonal in the lags
        assert c.neighbour_correlation == 0.0
    else:
        assert c.neighbour_correlation > 0.0
    assert dense == (name in ("gaussian", "orthogonal"))


def test_gaussian_horizons_match_derive_weights_and_the_issue() -> None:
    from linrnn.derive.report import weights_report

    model = linrnn.family("gaussian", sigma_w2=0.81)
    c = consequences(model, 400)
    assert c.horizon_eps == weights_report(model.spec, 400, eps=1e-3).horizon_lag  # the closed-form horizon
    assert c.horizon_90 == 17  # the first derivation's 90% lag at q = 0.81 (issue 19)
    # the LRU's readout part alone (c and b trained) keeps 90% within lag 3 at r_max = 0.9 (issue 19)
    readout = linrnn.family("lru", r_max=0.9, lr_gamma=0.0, lr_nu=0.0, lr_theta=0.0)
    assert consequences(readout, 400).horizon_90 == 3


def test_channels_use_the_first_block() -> None:
    model = linrnn.family("gaussian", sigma_w2=0.5, n_in=2, n_out=3)
    theta, is_block = lag_kernel(model, 6)
    full = model.kernel(6)["ntk"]
    assert is_block and np.array_equal(theta, full[:, 0, 0, :, 0, 0])
    assert consequences(model, 6).block == "(output 0, input 0)"


def test_same_spectrum_different_bias() -> None:
    r, L = 0.9, 64
    dense = linrnn.family("gaussian", sigma_w2=r * r)
    diag = linrnn.family("diagonal", r_min=0.0, r_max=r, theta_max=2 * math.pi)  # uniform on the same disc
    got = compare(dense, diag, L)
    # by hand: the Gaussian family's lag weights at unit variances, (2 + j) q^j (Emami et al.), against the
    # diagonal family's (issue 19): Phi(d) = 0 at theta_max = 2 pi, Theta_jj = 2 R(2j) + j^2 R(2j - 2) with
    # R(p) = E|lambda|^p = 2 r^p / (p + 2) for r_min = 0
    j = np.arange(L, dtype=np.float64)
    q = r * r
    gauss = np.diag((2 + j) * q ** j)
    ring = np.diag(2 * q ** j / (j + 1) + j * q ** np.maximum(j - 1, 0))
    assert got.distance == pytest.approx(normalised_distance(gauss, ring), rel=1e-10)
    a, b = gauss / np.trace(gauss), ring / np.trace(ring)
    assert got.distance == pytest.approx(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b)),
                                         rel=1e-10)
    assert got.distance > 0.05
    assert got.a == consequences(dense, L) and got.b == consequences(diag, L)
    assert got.a.horizon_90 == horizon_fraction(gauss) and got.b.horizon_90 == horizon_fraction(ring)
    # the distance is symmetric, blind to scale and zero for the same kernel
    assert compare(diag, dense, L).distance == pytest.approx(got.distance, rel=1e-12)
    assert normalised_distance(3.0 * gauss, gauss) == pytest.approx(0.0, abs=1e-15)
    assert compare(dense, linrnn.family("orthogonal", sigma_w2=q), L).distance == pytest.approx(0.0, abs=1e-12)


def test_derive_kernel_prints_the_consequences(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["derive", "kernel", "--family", "lru", "--r-max", "0.95", "--lags", "12", "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    want = consequences(linrnn.family("lru", r_max=0.95), 12)
    assert {"horizon_90", "horizon_eps", "effective_rank", "participation_ratio",
            "neighbour_correlation"} <= set(obj["consequences"])
    assert obj["consequences"] == want.as_dict()
    assert main(["derive", "kernel", "--family", "lru", "--r-max", "0.95", "--lags", "12"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-6:] == want.lines()
    assert f"lags 0..{want.horizon_90} hold 90%" in out[-5] and f"= {want.participation_ratio:.4g}" in out[-2]
