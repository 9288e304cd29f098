"""Synthetic teachers (impulse responses) and inputs, and the data sets they make.

A teacher is an impulse response L* of shape (T, n_y, n_x) (conventions, "Arrays"),
here a scalar lag profile times a fixed gain matrix B (n_y x n_x):

* ``decay``:      L*_j = rho^j B                    (geometric memory, |rho| < 1 for short memory);
* ``spike``:      L*_j = [j = d] B                  (a pure delay by d steps);
* ``oscillator``: L*_j = r^j cos(omega j) B         (a damped oscillator).

The default gain B has every entry 1/sqrt(n_x), so each output has unit gain on
white unit-variance inputs. Inputs are white noise N(0, 1) or a stationary AR(1)
process x_t = phi x_{t-1} + sqrt(1 - phi^2) e_t (unit marginal variance), and the
outputs are y_t = sum_{j<=t} L*_j x_{t-j} + noise_std * e'_t.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from linrnn.core.errors import UsageError
from linrnn.verify.backend import Backend, array_namespace, get_backend

TEACHERS: tuple[str, ...] = ("decay", "spike", "oscillator")
INPUTS: tuple[str, ...] = ("white", "ar1")


def _check_len(T: int) -> int:
    try:
        t = int(T)
    except (TypeError, ValueError):
        raise UsageError(f"the sequence length must be a positive integer, got {T!r}") from None
    if t != T or t < 1:
        raise UsageError(f"the sequence length must be a positive integer, got {T!r}")
    return t


def _check_finite(name: str, value: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise UsageError(f"{name} must be finite, got {value!r}")
    return v


def _gain(n_y: int, n_x: int, gain: Any) -> np.ndarray:
    if int(n_x) != n_x or int(n_y) != n_y or n_x < 1 or n_y < 1:
        raise UsageError(f"n_x and n_y must be positive integers, got n_x={n_x!r}, n_y={n_y!r}")
    if gain is None:
        return np.full((n_y, n_x), 1.0 / math.sqrt(n_x))
    b = np.asarray(gain, dtype=np.float64)
    if b.ndim == 0:
        return np.full((n_y, n_x), float(b))
    if b.shape != (n_y, n_x) or not np.all(np.isfinite(b)):
        raise UsageError(f"the teacher gain must be a finite (n_y, n_x) = {(n_y, n_x)} matrix, got shape {b.shape}")
    return b


def _outer(profile: np.ndarray, b: np.ndarray) -> np.ndarray:
    return profile[:, None, None] * b[None, :, :]


def decay_teacher(T: int, rho: float, *, n_x: int = 1, n_y: int = 1, gain: Any = None) -> np.ndarray:
    """Geometric decay L*_j = rho^j B, j = 0..T-1 (shape (T, n_y, n_x))."""
    T = _check_len(T)
    rho = _check_finite("rho", rho)
    return _outer(rho ** np.arange(T, dtype=np.float64), _gain(n_y, n_x, gain))


def spike_teacher(T: int, delay: int, *, n_x: int = 1, n_y: int = 1, gain: Any = None) -> np.ndarray:
    """Delayed spike L*_j = [j = delay] B: the output repeats the input ``delay`` steps later."""
    T = _check_len(T)
    if int(delay) != delay or not 0 <= delay < T:
        raise UsageError(f"the spike delay must be an integer in 0..{T - 1} (T = {T}), got {delay!r}")
    profile = np.zeros(T)
    profile[int(delay)] = 1.0
    return _outer(profile, _gain(n_y, n_x, gain))


def oscillator_teacher(
    T: int, r: float, omega: float, *, n_x: int = 1, n_y: int = 1, gain: Any = None
) -> np.ndarray:
    """Damped oscillator L*_j = r^j cos(omega j) B (omega in radians per step)."""
    T = _check_len(T)
    r = _check_finite("r", r)
    omega = _check_finite("omega", omega)
    j = np.arange(T, dtype=np.float64)
    return _outer(r**j * np.cos(omega * j), _gain(n_y, n_x, gain))


def teacher_impulse(name: str, T: int, *, n_x: int = 1, n_y: int = 1, gain: Any = None, **options: float) -> np.ndarray:
    """Dispatch by name: ``decay`` (rho), ``spike`` (delay), ``oscillator`` (r, omega)."""
    makers = {
        "decay": (decay_teacher, ("rho",)),
        "spike": (spike_teacher, ("delay",)),
        "oscillator": (oscillator_teacher, ("r", "omega")),
    }
    if name not in makers:
        raise UsageError(f"unknown teacher {name!r}; choose one of {', '.join(TEACHERS)}")
    fn, needed = makers[name]
    extra = sorted(set(options) - set(needed))
    missing = [k for k in needed if k not in options]
    if extra or missing:
        raise UsageError(f"the {name} teacher takes the options {', '.join(needed)}; got {', '.join(sorted(options)) or 'none'}")
    return fn(T, *(options[k] for k in needed), n_x=n_x, n_y=n_y, gain=gain)


def white_inputs(N: int, T: int, n_x: int, backend: Backend) -> Any:
    """x ~ iid N(0, 1), shape (N, T, n_x), from the backend's seeded generator."""
    return backend.normal((N, T, n_x))


def ar1_inputs(N: int, T: int, n_x: int, phi: float, backend: Backend) -> Any:
    """Stationary AR(1): x_0 ~ N(0, 1), x_t = phi x_{t-1} + sqrt(1 - phi^2) e_t (unit variance)."""
    phi = _check_finite("phi", phi)
    if not abs(phi) < 1:
        raise UsageError(f"the AR(1) coefficient phi must satisfy |phi| < 1 for a stationary input, got {phi!r}")
    e = backend.normal((N, T, n_x))
    scale = math.sqrt(1.0 - phi * phi)
    x = array_namespace(e).empty_like(e)
    x[:, 0, :] = e[:, 0, :]
    for t in range(1, T):
        x[:, t, :] = phi * x[:, t - 1, :] + scale * e[:, t, :]
    return x


def convolve(L: Any, x: Any, backend: Backend) -> Any:
    """Causal convolution y_t = sum_{j <= t, j < lags} L_j x_{t-j}: (N, T, n_x) -> (N, T, n_y)."""
    L = backend.asarray(L)
    x = backend.asarray(x)
    xp = array_namespace(x)
    N, T, n_x = x.shape
    if L.ndim != 3 or L.shape[2] != n_x:
        raise UsageError(f"the impulse response must have shape (lags, n_y, n_x={n_x}), got {tuple(L.shape)}")
    y = xp.zeros((N, T, L.shape[1]), dtype=backend.dtype, device=backend.device)
    for j in range(min(int(L.shape[0]), T)):
        y[:, j:, :] += x[:, : T - j, :] @ L[j, ...].T
    return y


def make_dataset(
    L: Any,
    N: int,
    *,
    inputs: str = "white",
    phi: float = 0.0,
    noise_std: float = 0.0,
    backend: Backend | None = None,
) -> tuple[Any, Any]:
    """A data set (x, y) of shapes (N, T, n_x), (N, T, n_y) from a teacher impulse response.

    x is drawn by ``inputs`` (``white`` or ``ar1`` with coefficient ``phi``), then
    y_t = sum_{j<=t} L_j x_{t-j} + noise_std * e_t with e_t ~ iid N(0, I). Random numbers
    come from ``backend.rng`` (seed it through :func:`linrnn.verify.backend.get_backend`);
    arrays are returned on the backend.
    """
    backend = backend if backend is not None else get_backend("numpy")
    L = backend.asarray(L)
    if L.ndim != 3 or min(L.shape) < 1:
        raise UsageError(f"the teacher impulse response must have shape (T, n_y, n_x), got {tuple(L.shape)}")
    if int(N) != N or N < 1:
        raise UsageError(f"the number of sequences must be a positive integer, got {N!r}")
    noise_std = _check_finite("noise_std", noise_std)
    if noise_std < 0:
        raise UsageError(f"noise_std must be non-negative, got {noise_std!r}")
    T, n_y, n_x = (int(v) for v in L.shape)
    if inputs == "white":
        x = white_inputs(int(N), T, n_x, backend)
    elif inputs == "ar1":
        x = ar1_inputs(int(N), T, n_x, phi, backend)
    else:
        raise UsageError(f"unknown input process {inputs!r}; choose one of {', '.join(INPUTS)}")
    y = convolve(L, x, backend)
    if noise_std > 0:
        y = y + backend.normal((int(N), T, n_y), noise_std)
    return x, y
