r"""Predictions of gradient descent on the squared loss from a kernel, as neural-tangents' ``nt.predict`` makes them.

Under full-batch gradient descent with base step eta on the conventions' loss ``all``,
Loss = (1 / 2N) sum_s sum_t ||y_t^s - f_t(x^s)||^2 (N training sequences), a network's
outputs on the training set f = f(x_train) move, to first order in eta, as

    f <- f - (eta / N) Theta (f - y),

Theta the input-space NTK of the outputs (``model.kernel_fn``; the lag NTK already holds
the conventions' factor s and the multipliers eta_P, so eta is the base step ``lr`` of
``linrnn verify train`` and :func:`linrnn.verify.train.train_rnn`). In the wide limit
Theta is constant, and the continuous-time flow after t steps (absolute time eta t) is

    f_train(t) = y + e^{-eta t Theta / N} (f_train(0) - y),
    f_test(t)  = f_test(0) + Theta_test,train Theta^{-1} (e^{-eta t Theta / N} - I) (f_train(0) - y),

(Jacot et al., NeurIPS 2018; Lee et al., NeurIPS 2019, eqs. 9-11): neural-tangents'
``gradient_descent_mse`` with one difference of convention, the normalization: it divides
by ``y_train.size`` (the mean over every entry), here by N = ``y_train.shape[0]`` (the
conventions' loss sums over times and channels and averages over sequences). Its
``learning_rate`` times ``y_train.size / N`` is the ``learning_rate`` here. Gradient
descent with a finite step eta takes (I - eta Theta / N)^t instead of the exponential;
the two agree to O(eta Theta / N) per step and at convergence.

Kernels are laid out as neural-tangents writes them with ``trace_axes=()``: a kernel
between outputs of shapes (N1, ...) and (N2, ...) has shape ``zip`` of the two shapes
((N1, N2, T, T, n_y, n_y) for ``kernel_fn``'s sequences), every output axis kept (no
channel axis is traced out). Arrays go through the Array API (NumPy, PyTorch, JAX, CuPy).

* :func:`gradient_descent_mse` (kernel arrays in, ``predict_fn(t, fx_train_0, fx_test_0,
  k_test_train)`` out): the flow of one network from its initial outputs;
* :func:`gradient_descent_mse_ensemble` (a model or ``kernel_fn`` and the training data
  in, ``predict_fn(t, x_test, get)`` out): the mean over initialisations, f(0) having mean
  zero, i.e. the formulas above with f_train(0) = f_test(0) = 0. This is what the mean of
  many trained wide networks converges to.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from linrnn.core.errors import UsageError
from linrnn.core.validate import check_nonnegative, check_positive

__all__ = ["gradient_descent_mse", "gradient_descent_mse_ensemble"]


def _namespace(*arrays: Any) -> Any:
    from linrnn.verify.backend import array_namespace

    try:
        return array_namespace(*arrays)
    except TypeError:
        raise UsageError("the kernels and targets must be arrays of one array library (NumPy, PyTorch, JAX, CuPy), got "
                         + ", ".join(type(a).__name__ for a in arrays)) from None


def _as_matrix(xp: Any, k: Any, rows: tuple[int, ...], cols: tuple[int, ...], name: str) -> Any:
    """A kernel of shape zip(rows, cols) (axes interleaved) as a (prod rows, prod cols) matrix."""
    want = tuple(v for pair in zip(rows, cols) for v in pair)
    if tuple(k.shape) != want:
        raise UsageError(f"{name} must have shape {want} (the outputs' shapes {rows} and {cols}, axes interleaved "
                         f"as neural-tangents lays out a kernel with trace_axes=()), got {tuple(k.shape)}")
    nd = len(rows)
    perm = tuple(range(0, 2 * nd, 2)) + tuple(range(1, 2 * nd, 2))
    return xp.reshape(xp.permute_dims(k, perm), (math.prod(rows), math.prod(cols)))


def gradient_descent_mse(k_train_train: Any, y_train: Any, learning_rate: float = 1.0, diag_reg: float = 0.0,
                         diag_reg_absolute_scale: bool = False) -> Callable[..., Any]:
    """The outputs of gradient flow on the conventions' squared loss, from the training kernel (module docstring).

    ``k_train_train``: the NTK between the training outputs, shape ``zip(y_train.shape,
    y_train.shape)`` ((N, N, T, T, n_y, n_y) for sequences); ``y_train`` (N, ...): the targets;
    ``learning_rate``: the base step eta (time t is in steps: absolute time eta t);
    ``diag_reg``: Theta + diag_reg I is used in place of Theta, diag_reg in units of the mean
    diagonal entry of Theta unless ``diag_reg_absolute_scale``. Returns

        ``predict_fn(t=None, fx_train_0=0., fx_test_0=None, k_test_train=None)``

    with neural-tangents' meaning: ``t`` a scalar or an array of times (the result gets
    ``t.shape`` as leading axes), None or inf for convergence; ``fx_train_0``, ``fx_test_0``:
    the network's outputs at t = 0 (scalars or arrays; None: not predicted; the test outputs
    need ``k_test_train``, of shape ``zip(test_shape, y_train.shape)``). Returns
    ``fx_train_t``, ``fx_test_t`` or the pair ``(fx_train_t, fx_test_t)``.

    Every time, convergence included, is computed in the eigenbasis of Theta (one
    eigendecomposition, kept for later calls). Unlike neural-tangents' (a Cholesky solve at
    convergence), Theta may be singular, and for a linear RNN it usually is: its outputs
    on N sequences of length T span at most T n_x n_y dimensions of the N T n_y, so with
    N > n_x sequences the targets cannot all be fitted. Eigenvalues at or below
    size * eps * lambda_max count as zero; along them nothing moves, and at convergence the
    training outputs are f_train(0) plus the projection of y - f_train(0) onto Theta's range
    (``y_train`` itself where Theta is invertible) and the test outputs use Theta's
    pseudo-inverse. With ``diag_reg`` the training outputs are still those of the
    unregularized flow at convergence; pass ``k_test_train=k_train_train`` for the
    regularized ones, as in neural-tangents.
    """
    xp = _namespace(k_train_train, y_train)
    lr = check_positive("learning_rate", learning_rate)
    reg = check_nonnegative("diag_reg", diag_reg)
    y_shape = tuple(int(v) for v in y_train.shape)
    if len(y_shape) < 1 or min(y_shape) < 1:
        raise UsageError(f"y_train must have shape (N, ...) with every size at least 1, got {y_shape}")
    n_seq, size = y_shape[0], math.prod(y_shape)
    dtype = xp.result_type(k_train_train.dtype, y_train.dtype)
    K = xp.astype(_as_matrix(xp, k_train_train, y_shape, y_shape, "k_train_train"), dtype)
    if reg:
        scale = 1.0 if diag_reg_absolute_scale else float(xp.sum(xp.linalg.diagonal(K))) / size
        K = K + (reg * scale) * xp.eye(size, dtype=dtype, device=_device(K))
    y = xp.reshape(xp.astype(y_train, dtype), (size,))
    cache: dict[str, Any] = {}

    def eig() -> tuple[Any, Any]:
        """Eigenvalues and eigenvectors of the (symmetrized) training kernel, computed once."""
        if "eig" not in cache:
            cache["eig"] = xp.linalg.eigh((K + xp.matrix_transpose(K)) / 2)
        return cache["eig"]

    def cutoff() -> float:
        """Eigenvalues at or below size * eps * lambda_max are rounding of zero (a singular PSD kernel)."""
        lam = eig()[0]
        return size * float(xp.finfo(dtype).eps) * max(float(xp.max(lam)), 0.0)

    def outputs(name: str, f: Any, shape: tuple[int, ...]) -> Any:
        """An initial output (a scalar or an array of ``shape``), flat, in the working dtype."""
        f = xp.asarray(f, dtype=dtype, device=_device(y)) if not hasattr(f, "shape") else xp.astype(f, dtype)
        if tuple(f.shape) not in ((), shape):
            raise UsageError(f"{name} must be a scalar or an array of shape {shape}, got shape {tuple(f.shape)}")
        return xp.reshape(xp.broadcast_to(f, shape), (math.prod(shape),))

    def predict_fn(t: Any = None, fx_train_0: Any = 0.0, fx_test_0: Any = None, k_test_train: Any = None) -> Any:
        """Outputs at time(s) ``t`` (in steps of size ``learning_rate``): see :func:`gradient_descent_mse`."""
        if fx_test_0 is not None and k_test_train is None:
            raise UsageError("predictions on a test set (fx_test_0) need k_test_train, the kernel between the test "
                             "and the training outputs")
        times, lead = _times(xp, t, dtype, _device(y))
        r = -y if fx_train_0 is None else outputs("fx_train_0", fx_train_0, y_shape) - y  # f_train(0) - y
        Ktx = f_test = None
        if fx_test_0 is not None:
            test_shape = tuple(int(v) for v in k_test_train.shape[0::2])
            _namespace(K, k_test_train)
            Ktx = xp.astype(_as_matrix(xp, k_test_train, test_shape, y_shape, "k_test_train"), dtype)
            f_test = outputs("fx_test_0", fx_test_0, test_shape)
        lam, V = eig()
        null = lam <= cutoff()  # directions the flow never moves (the kernel's null space, up to rounding)
        safe = xp.where(null, xp.ones_like(lam), lam)
        if times is None:  # convergence: the residual's component in the kernel's range is gone
            decay = xp.where(null, xp.zeros_like(lam), -xp.ones_like(lam))[None, :]  # e^{-lambda tau} - 1
            ratio = decay / safe  # -1 / lambda on the range, 0 on the null space (the pseudo-inverse)
        else:
            tau = xp.reshape(times, (-1, 1)) * (lr / n_seq)  # (n_t, 1): absolute time over N
            decay = xp.where(null, xp.zeros_like(lam), xp.expm1(-lam * tau))  # e^{-lambda tau} - 1, (n_t, size)
            ratio = xp.where(null, -tau * xp.ones_like(lam), decay / safe)  # (e^{-lambda tau} - 1) / lambda
        rv = xp.matrix_transpose(V) @ r  # f_train(0) - y in the eigenbasis
        train = test = None
        if fx_train_0 is not None:
            train = xp.reshape((y + r) + (decay * rv) @ xp.matrix_transpose(V), lead + y_shape)
        if Ktx is not None:
            test = xp.reshape(f_test + (ratio * rv) @ xp.matrix_transpose(Ktx @ V), lead + test_shape)
        if test is None:
            return train
        return test if train is None else (train, test)

    return predict_fn


def gradient_descent_mse_ensemble(kernel_fn: Any, x_train: Any, y_train: Any, learning_rate: float = 1.0,
                                  diag_reg: float = 0.0, diag_reg_absolute_scale: bool = False) -> Callable[..., Any]:
    """The mean outputs, over initialisations, of wide networks trained by gradient descent (module docstring).

    ``kernel_fn``: a family's model (its ``kernel_fn``) or a function ``kernel_fn(x1, x2, get)``
    returning kernels in neural-tangents' layout; ``x_train`` (N, T, n_x), ``y_train`` (N, T, n_y).
    Returns ``predict_fn(t=None, x_test=None, get="ntk")``: the mean outputs on ``x_test`` (on
    the training set if None) after ``t`` steps of size ``learning_rate`` (None or inf: at
    convergence), E f(t) = Theta_x,train Theta^{-1} (I - e^{-eta t Theta / N}) y, with the NTK
    (``get="ntk"``: gradient descent on every parameter) or the NNGP (``get="nngp"``: the same
    flow with the NNGP kernel in place of Theta, neural-tangents' NNGP ensemble; at
    convergence the posterior mean of Bayesian inference with that prior). A tuple ``get``
    gives a dict of the two. Kernels are computed on first use and kept.
    """
    fn = getattr(kernel_fn, "kernel_fn", kernel_fn)
    if not callable(fn):
        raise UsageError("kernel_fn must be a family's model or a function kernel_fn(x1, x2, get)")
    lr = check_positive("learning_rate", learning_rate)
    cache: dict[Any, Any] = {}

    def train_kernel(get: str) -> Callable[..., Any]:
        if get not in cache:
            cache[get] = gradient_descent_mse(fn(x_train, None, get), y_train, lr, diag_reg, diag_reg_absolute_scale)
        return cache[get]

    def predict_fn(t: Any = None, x_test: Any = None, get: Any = "ntk") -> Any:
        """Mean outputs on ``x_test`` (the training set if None) at time(s) ``t``: see :func:`gradient_descent_mse_ensemble`."""
        if not isinstance(get, str):
            return {g: predict_fn(t, x_test, g) for g in get}
        if get not in ("nngp", "ntk"):
            raise UsageError(f"get must be 'nngp', 'ntk' or a tuple of them, got {get!r}")
        flow = train_kernel(get)
        if x_test is None:
            return flow(t, 0.0, None, None)
        return flow(t, None, 0.0, fn(x_test, x_train, get))

    return predict_fn


def _device(a: Any) -> Any:
    from linrnn.verify.backend import device

    return device(a)


def _times(xp: Any, t: Any, dtype: Any, dev: Any) -> tuple[Any, tuple[int, ...]]:
    """(``t`` as a flat array of finite non-negative times, its shape), or (None, ()) for convergence (None or inf)."""
    if t is None:
        return None, ()
    try:
        times = xp.asarray(t, dtype=dtype, device=dev)
    except (TypeError, ValueError):
        raise UsageError(f"t must be None, a number or an array of numbers, got {t!r}") from None
    lead = tuple(int(v) for v in times.shape)
    times = xp.reshape(times, (-1,))
    if times.shape[0] and bool(xp.all(xp.isinf(times) & (times > 0))):
        return None, ()
    if not bool(xp.all(xp.isfinite(times))) or bool(xp.any(times < 0)):
        raise UsageError("t must hold finite non-negative times, or be None or inf for convergence (not a mixture)")
    return times, lead
