"""A researcher's own pytest file: my diagonal linear RNN, initialised by my code, checked against linrnn's theory.

My network has n complex units with eigenvalues on a ring (|lambda|^2 uniform on
[r_min^2, r_max^2], arg lambda uniform on [0, theta_max]) and, as in the LRU (Orvieto et
al. 2023), an input gain gamma = sqrt(1 - |lambda|^2) per unit: its theory is linrnn's
``lru`` family. Run it with the plugin that linrnn installs::

    pytest examples/test_my_rnn.py                          # passes, in seconds
    MY_RNN_THEORY=diagonal pytest examples/test_my_rnn.py   # a wrong theory: fails

The wrong theory is the ``diagonal`` family (the same ring, no input gain): the same
network, written in that family's raw parameters (the gain folded into b), does not have
the diagonal family's lag NTK, and one draw at width 1024 shows it.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import linrnn
from linrnn.testing import draw_of, to_host

RING = {"r_min": 0.4, "r_max": 0.95, "theta_max": 0.5}
THEORY = linrnn.family(os.environ.get("MY_RNN_THEORY", "lru"), **RING)
WIDTH = 1024


def my_init(width: int, seed: int) -> dict[str, np.ndarray]:
    """My initialiser: c, b ~ CN(0, 1), lambda on the ring, the input gain gamma = sqrt(1 - |lambda|^2)."""
    rng = np.random.default_rng(seed)
    radius = np.sqrt(rng.uniform(RING["r_min"] ** 2, RING["r_max"] ** 2, width))
    angle = rng.uniform(0.0, RING["theta_max"], width)
    c = (rng.normal(size=(1, width)) + 1j * rng.normal(size=(1, width))) / np.sqrt(2)
    b = (rng.normal(size=(width, 1)) + 1j * rng.normal(size=(width, 1))) / np.sqrt(2)
    return {"c": c, "b": b, "lam": radius * np.exp(1j * angle), "gamma": np.sqrt(1 - radius**2)}


def in_theory_parameters(p: dict[str, np.ndarray], family: str) -> dict[str, np.ndarray]:
    """My network in the raw parameters of the family that the theory names (docs/conventions.md)."""
    if family == "lru":  # lambda = exp(-exp(nu_log) + i exp(theta_log)), gamma = exp(gamma_log)
        return {"c": p["c"], "b": p["b"], "gamma_log": np.log(p["gamma"]), "nu_log": np.log(-np.log(np.abs(p["lam"]))),
                "theta_log": np.log(np.angle(p["lam"]))}
    return {"c": p["c"], "b": p["b"] * p["gamma"][:, None], "lam": p["lam"]}  # the gain folded into b


def test_my_initialiser_draws_from_the_theory(linrnn_claim) -> None:
    """One draw of my initialiser: its lag NTK and impulse response against the theory's (a Monte Carlo test)."""
    params = in_theory_parameters(my_init(WIDTH, seed=7), THEORY.spec.family)
    linrnn_claim.draw(params, THEORY, lags=6, replicas=1999)


def test_the_theory_holds_at_my_configuration(linrnn_claim) -> None:
    """The theory's own claim (derived kernels = Monte Carlo means) at my ring, at the tiny size."""
    linrnn_claim(f"{THEORY.spec.family}_kernel", THEORY)


@pytest.mark.parametrize("width", [256])
def test_my_impulse_response_matches_the_family_code(width: int) -> None:
    """My forward map (plain NumPy) equals the family's impulse response for the same parameters."""
    p = my_init(width, seed=1)
    mine = np.real((p["c"][0] * p["gamma"] * p["b"][:, 0]) * p["lam"][None, :] ** np.arange(6)[:, None]).sum(1)
    draw = draw_of(in_theory_parameters(p, THEORY.spec.family), THEORY)
    theirs = to_host(THEORY.impulse(draw, 6))[:, 0, 0] * np.sqrt(width)
    assert np.allclose(mine, theirs, rtol=1e-10, atol=1e-12)
