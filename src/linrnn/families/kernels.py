r"""Input-space kernels of a family, as neural-tangents' ``kernel_fn`` gives them: from the lag kernels to sequences.

A linear RNN is the causal convolution y_t = sum_j L_j x_{t-j} (the conventions, "The
model"), so its output on a sequence x is linear in the impulse response L, and every
kernel of the outputs is a lag kernel seen through the data. For the lag NTK Theta (and
likewise the NNGP covariance E[L_j[a,b] L_k[a',b']]), in the layout
(lag, output, input) of ``model.kernel``,

    Theta(x, x')[t, a; t', a'] = sum_{j <= t, k <= t'} sum_{b, b'} x_{t-j}[b] Theta[(j,a,b), (k,a',b')] x'_{t'-k}[b'],

which is d y_t(x)[a] / dP . d y_t'(x')[a'] / dP summed over the parameters with the
conventions' factor s eta_P: the NTK of the outputs (or their covariance at
initialisation, for the NNGP). Computed with two matrix products over the Toeplitz
(lag) expansion X[s, t, (j, b)] = x^s_{t-j}[b] (zero for j > t), built by one gather:
O(B1 T^3 n_x^2 n_y^2 + B1 B2 T^3 n_y^2 n_x) operations and no loop over time. A general
lag kernel (the diagonal families' is full) has no convolution structure of its own, so
no FFT shortcut applies to the second index.

Layout, as neural-tangents writes a kernel with ``trace_axes=()`` (each output axis
doubled, the two copies side by side): shape (B1, B2, T1, T2, n_y, n_y), entry
[s, s', t, t', a, a'] = Theta(x1^s, x2^{s'})[t, a; t', a']. Sequences of different lengths
T1, T2 are allowed (the lag kernel is taken for max(T1, T2) lags).

The arrays go through the Array API (:func:`linrnn.verify.backend.array_namespace`):
NumPy, CuPy, PyTorch (CPU or CUDA) and JAX inputs give outputs of the same library, on
the inputs' device, in their floating dtype (float64 for integer inputs).
"""

from __future__ import annotations

import collections
import functools
from typing import Any

from linrnn.core.errors import UsageError

#: The kernels a ``kernel_fn`` can give, in neural-tangents' names.
KERNELS = ("nngp", "ntk")


@functools.lru_cache(maxsize=None)
def _kernel_tuple(fields: tuple[str, ...]) -> type:
    """A named tuple class with the requested kernels as fields (neural-tangents' ``Kernel`` for a tuple ``get``)."""
    return collections.namedtuple("Kernel", fields)  # type: ignore[misc]


def check_get(get: Any) -> tuple[str, ...]:
    """``get`` (one kernel's name or a tuple of them) as a tuple of names; one sentence otherwise."""
    names = (get,) if isinstance(get, str) else get
    try:
        names = tuple(names)
    except TypeError:
        raise UsageError(f"get must be 'nngp', 'ntk' or a tuple of them, got {get!r}") from None
    if not names or any(g not in KERNELS for g in names) or len(set(names)) != len(names):
        raise UsageError(f"get must be 'nngp', 'ntk' or a tuple of them (each once), got {get!r}")
    return names


def _sequences(name: str, x: Any, n_in: int) -> tuple[Any, Any]:
    """(namespace, x) for a batch of sequences ``x`` (B, T, n_x), checked, in a floating dtype."""
    from linrnn.verify.backend import array_namespace

    try:
        xp = array_namespace(x)
    except TypeError:
        raise UsageError(f"{name} must be an array (NumPy, PyTorch, JAX, CuPy) of shape (batch, T, n_x), "
                         f"got {type(x).__name__}") from None
    shape = tuple(x.shape)
    if len(shape) != 3 or min(shape) < 1:
        raise UsageError(f"{name} must have shape (batch, T, n_x) with every size at least 1, got {shape}")
    if shape[2] != n_in:
        raise UsageError(f"{name} has {shape[2]} input channels but the model has n_in = {n_in}")
    if not xp.isdtype(x.dtype, "real floating"):
        if not xp.isdtype(x.dtype, ("integral", "bool")):
            raise UsageError(f"{name} must hold real numbers, got dtype {x.dtype}")
        x = xp.astype(x, xp.float64)
    return xp, x


def lag_expansion(x: Any, lags: int) -> Any:
    """The Toeplitz (lag) expansion X[s, t, j, b] = x[s, t - j, b] for j <= t, 0 otherwise, j < ``lags``.

    ``x`` (B, T, n_x) -> (B, T, lags, n_x), by one gather along time and one mask (no loop over time).
    """
    from linrnn.verify.backend import array_namespace, device

    xp = array_namespace(x)
    B, T, nx = (int(v) for v in x.shape)
    dev = device(x)
    t = xp.reshape(xp.arange(T, device=dev), (T, 1))
    j = xp.reshape(xp.arange(lags, device=dev), (1, lags))
    inside = j <= t
    src = xp.where(inside, t - j, xp.zeros_like(t - j))  # any valid index where masked
    X = xp.reshape(xp.take(x, xp.reshape(src, (T * lags,)), axis=1), (B, T, lags, nx))
    return X * xp.reshape(xp.astype(inside, x.dtype), (1, T, lags, 1))


def input_kernel(lag_kernel: Any, x1: Any, x2: Any) -> Any:
    """Theta(x1, x2) (B1, B2, T1, T2, n_y, n_y) from a lag kernel (L, n_y, n_x, L, n_y, n_x), L >= max(T1, T2).

    The formula and the layout are the module docstring's. ``lag_kernel`` may be a NumPy
    array (it is moved to the inputs' namespace, device and dtype); ``x1`` and ``x2`` are
    checked arrays of one namespace (:func:`kernel_fn` checks them).
    """
    from linrnn.verify.backend import array_namespace, device

    xp = array_namespace(x1, x2)
    B1, T1, nx = (int(v) for v in x1.shape)
    B2, T2 = int(x2.shape[0]), int(x2.shape[1])
    ny = int(lag_kernel.shape[1])
    dtype = xp.result_type(x1.dtype, x2.dtype)
    K = xp.asarray(lag_kernel, dtype=dtype, device=device(x1))
    K = K[:T1, :, :, :T2, :, :]  # only lags j <= t < T1 and k <= t' < T2 meet the data
    X1 = xp.reshape(xp.astype(lag_expansion(x1, T1), dtype), (B1 * T1, T1 * nx))  # rows (s, t), columns (j, b)
    X2 = xp.reshape(xp.astype(lag_expansion(x2, T2), dtype), (B2 * T2, T2 * nx))  # rows (s', t'), columns (k, b')
    # K as (j, b) x (a, a', k, b'), so the first product leaves (s, t, a, a') x (k, b') for the second
    Km = xp.reshape(xp.permute_dims(K, (0, 2, 1, 4, 3, 5)), (T1 * nx, ny * ny * T2 * nx))
    A = xp.reshape(X1 @ Km, (B1 * T1 * ny * ny, T2 * nx))
    out = xp.reshape(A @ xp.matrix_transpose(X2), (B1, T1, ny, ny, B2, T2))  # [s, t, a, a', s', t']
    return xp.permute_dims(out, (0, 4, 1, 5, 2, 3))


def kernel_fn(model: Any, x1: Any, x2: Any = None, get: Any = KERNELS) -> Any:
    """The wide-limit input-space kernels of ``model`` on the sequences ``x1`` (B1, T1, n_x), ``x2`` (B2, T2, n_x).

    ``x2`` None means ``x1``. ``get``: ``"nngp"`` or ``"ntk"`` gives that array; a tuple of
    names gives a named tuple with those fields, in that order (neural-tangents' ``Kernel``).
    The lag kernels come from ``model.kernel(max(T1, T2))`` (the family's derivation); the
    layout and the formula are the module docstring's.
    """
    from linrnn.verify.backend import array_namespace

    names = check_get(get)
    n_in = int(model.spec.n_in)
    _, x1 = _sequences("x1", x1, n_in)
    _, x2 = (None, x1) if x2 is None else _sequences("x2", x2, n_in)
    try:
        array_namespace(x1, x2)
    except TypeError:
        raise UsageError(f"x1 and x2 must come from one array library, got {type(x1).__name__} "
                         f"and {type(x2).__name__}") from None
    lags = max(int(x1.shape[1]), int(x2.shape[1]))
    lag = model.kernel(lags)
    out = {name: input_kernel(lag[name], x1, x2) for name in names}
    if isinstance(get, str):
        return out[get]
    return _kernel_tuple(names)(**out)
