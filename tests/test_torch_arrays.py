"""PyTorch tensors and JAX arrays through the families' core paths (``init``, ``impulse``, ``empirical_ntk``,
``kernel_fn``) and the predictions, by array-api-compat.

Marked ``torch`` (and ``jax``) and skipped where the library is missing: the test extra does not install
them (PyPI's ``torch`` on x86_64 is a CUDA build of several GB); CI (``.ci/run``) installs the torch CPU
wheel before the test command, so the torch tests run there (JAX's are skipped). To run them here, install
the CPU wheel first (``pip install torch==2.13.0`` takes the CPU build on this project's machines, about
75 s and 0.9 GB; ``pip install jax`` about 45 s and 0.6 GB), then ``python -m pytest -m "torch or jax"``.
A draw of the ``torch``/``jax`` backends comes from NumPy's generator of the same seed and is
transferred, so it equals the NumPy draw; the results are compared with NumPy's to rounding.
CUDA runs where PyTorch sees a device (``torch:cuda``), and is skipped otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import linrnn

FAMILIES = [("gaussian", {"sigma_w2": 0.8, "n_in": 2, "n_out": 3}), ("orthogonal", {"sigma_w2": 0.8}),
            ("diagonal", {"n_in": 2, "n_out": 2}), ("lru", {})]
RTOL = 1e-12


def close(got: Any, ref: Any) -> bool:
    got, ref = np.asarray(got), np.asarray(ref)
    return got.shape == ref.shape and float(np.max(np.abs(got - ref), initial=0.0)) <= RTOL * max(
        float(np.max(np.abs(ref), initial=0.0)), 1.0)


def to_host(a: Any) -> np.ndarray:
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def check_core_paths(kind: str, is_native: Any, convert: Any, families: list = FAMILIES) -> None:
    """init (kind), impulse, empirical_ntk (a draw of kind, and the user's own arrays), kernel_fn, predictions."""
    for name, params in families:
        model = linrnn.family(name, **params)
        ref = model.init(width=8, seed=5, batch=2)
        draw = model.init(width=8, seed=5, batch=2, backend=kind)
        L, K = model.impulse(draw, 4), model.empirical_ntk(draw, 4)
        assert is_native(L) and is_native(K), name
        assert close(to_host(L), model.impulse(ref, 4)) and close(to_host(K), model.empirical_ntk(ref, 4)), name
        # the user's own arrays: raw (W, F, C) for a dense family, the draw's fields for a diagonal one
        if isinstance(ref, tuple) or hasattr(ref, "W"):
            own = tuple(convert(a) for a in (ref.W, ref.F, ref.C))
        else:
            own = dataclasses.replace(ref, **{f.name: convert(getattr(ref, f.name))
                                              for f in dataclasses.fields(ref) if f.name != "spec"})
        assert is_native(model.impulse(own, 4)) and close(to_host(model.empirical_ntk(own, 4)), model.empirical_ntk(ref, 4))
    model = linrnn.family("gaussian", sigma_w2=0.8, n_in=2, n_out=3)
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 4, 2)), rng.standard_normal((3, 4, 2))
    k = model.kernel_fn(convert(x1), convert(x2))
    assert is_native(k.ntk) and close(to_host(k.ntk), model.kernel_fn(x1, x2, "ntk"))
    # one training sequence: a well-conditioned kernel (condition number about 30), so the libraries agree to rounding
    x, y = x1[:1], rng.standard_normal((1, 4, 3))
    ens = linrnn.predict.gradient_descent_mse_ensemble(model, convert(x), convert(y), learning_rate=0.5)
    ref = linrnn.predict.gradient_descent_mse_ensemble(model, x, y, learning_rate=0.5)
    for t in (3.0, None):
        got = ens(t, convert(x2))
        assert is_native(got) and close(to_host(got), ref(t, x2)), t


@pytest.mark.torch
def test_torch_cpu_tensors_through_the_core_paths() -> None:
    torch = pytest.importorskip("torch")
    check_core_paths("torch", lambda a: isinstance(a, torch.Tensor) and a.device.type == "cpu", torch.from_numpy)


@pytest.mark.torch
def test_torch_cuda_tensors_through_the_core_paths() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("PyTorch sees no CUDA device on this machine")
    check_core_paths("torch:cuda", lambda a: isinstance(a, torch.Tensor) and a.device.type == "cuda",
                     lambda a: torch.from_numpy(a).cuda())


@pytest.fixture
def jax_x64() -> Iterator[Any]:
    """JAX with float64 enabled for the test (the setting is global: restored afterwards)."""
    jax = pytest.importorskip("jax")
    before = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", True)
    try:
        yield jax
    finally:
        jax.config.update("jax_enable_x64", before)


@pytest.mark.jax
def test_jax_arrays_through_the_core_paths(jax_x64: Any) -> None:
    jnp = jax_x64.numpy
    # the diagonal family's complex arrays (kernel_fn and the predictions run on the gaussian family's kernel):
    # JAX compiles every operation for every new shape, over a minute for all four families on two cores
    check_core_paths("jax", lambda a: isinstance(a, jax_x64.Array), jnp.asarray, [FAMILIES[2]])


@pytest.mark.jax
def test_jax_without_x64_is_refused_in_one_sentence() -> None:
    jax = pytest.importorskip("jax")
    from linrnn.core.errors import UsageError

    if jax.config.read("jax_enable_x64"):
        pytest.skip("x64 is enabled in this session")
    with pytest.raises(UsageError, match="JAX computes in float32 unless x64 is enabled"):
        linrnn.family("gaussian").init(width=4, backend="jax")


def test_missing_frameworks_are_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without PyTorch the torch backend is refused in one sentence (import blocked here)."""
    import sys

    from linrnn.core.errors import UsageError

    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(UsageError, match=r"the torch backend needs PyTorch \(pip install torch\)"):
        linrnn.family("gaussian").init(width=4, backend="torch")
