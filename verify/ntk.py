"""The exact empirical lag NTK of one linear RNN (or a batch), from Krylov vectors.

Conventions (``shared/CONVENTIONS.md``): L_i = C_e W_e^i F_e and

    Theta[(i,a,b), (j,a',b')] = s * sum_{P in C,F,W} eta_P <dL_i[a,b]/dP, dL_j[a',b']/dP>,

with s = 1 (``ntk``) or 1/n (``standard``), gradients taken with respect to the raw
parameters P, and P_e = alpha_P P (:func:`linrnn.verify.sample.effective_scales`).

With the Krylov vectors v_m^b = W_e^m f_b (f_b column b of F_e) and
u_k^a = (W_e^T)^k c_a (c_a row a of C_e) the three gradients of
L_i[a,b] = c_a^T W_e^i f_b are

    dL_i[a,b]/dC[a2,:] = alpha_C delta_{a a2} v_i^b,
    dL_i[a,b]/dF[:,b2] = alpha_F delta_{b b2} u_i^a,
    dL_i[a,b]/dW       = alpha_W sum_{k=0}^{i-1} u_k^a (v_{i-1-k}^b)^T,

so with the Gram tensors G_v[m,b,p,b'] = <v_m^b, v_p^b'> and G_u[k,a,l,a'] = <u_k^a, u_l^a'>

    Theta = s eta_C alpha_C^2 delta_{aa'} G_v[i,b,j,b']
          + s eta_F alpha_F^2 delta_{bb'} G_u[i,a,j,a']
          + s eta_W alpha_W^2 sum_{k<i, l<j} G_u[k,a,l,a'] G_v[i-1-k,b,j-1-l,b'].

The last sum is the 2-D linear convolution of G_u and G_v over the lag indices,
evaluated at (i-1, j-1); it is computed exactly (no FFT, so entries that decay like
q^i keep their relative accuracy) as one matrix product of a Toeplitz arrangement
of G_u with a Toeplitz arrangement of G_v.

Cost per draw: 2 (lags - 1) passes over W for the Krylov vectors,
O(lags n^2 (n_x + n_y)); the Gram tensors O(lags^2 n (n_x^2 + n_y^2)); the
convolution O(lags^4 n_x^2 n_y^2), independent of n. No Jacobian is ever formed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from linrnn.core.errors import UsageError
from linrnn.verify.backend import array_namespace, device
from linrnn.verify.sample import (
    RNNDraw,
    check_param,
    check_size,
    impulse_response_from_krylov,
    krylov_vectors,
    ntk_prefactor,
)


def check_lr(lr: Sequence[float]) -> tuple[float, float, float]:
    """Validate (eta_C, eta_F, eta_W): three finite non-negative numbers, not all zero."""
    try:
        values = tuple(float(x) for x in lr)
    except (TypeError, ValueError):
        raise UsageError(f"lr must be three numbers (eta_C, eta_F, eta_W), got {lr!r}") from None
    if len(values) != 3 or not all(math.isfinite(x) and x >= 0 for x in values):
        raise UsageError(f"lr must be three finite non-negative numbers (eta_C, eta_F, eta_W), got {lr!r}")
    if not any(values):
        raise UsageError("at least one of the learning-rate multipliers eta_C, eta_F, eta_W must be positive")
    return values  # type: ignore[return-value]


def gram(X: Any) -> Any:
    """G[..., m, b, p, b'] = <X[..., m, b, :], X[..., p, b', :]> for X of shape (..., L, k, n)."""
    xp = array_namespace(X)
    lead, (L, k, n) = tuple(X.shape[:-3]), tuple(X.shape[-3:])
    flat = xp.reshape(X, lead + (L * k, n))
    return xp.reshape(flat @ xp.matrix_transpose(flat), lead + (L, k, L, k))


def split_point_sum(Gu: Any, Gv: Any) -> Any:
    """T[i,a,b,j,a',b'] = sum_{k<i, l<j} Gu[k,a,l,a'] Gv[i-1-k,b,j-1-l,b'] (zero where i or j is 0).

    ``Gu``: (..., L, n_y, L, n_y), ``Gv``: (..., L, n_x, L, n_x); result
    (..., L, n_y, n_x, L, n_y, n_x). This is the W-part of the lag NTK before its
    prefactor: the sum over the split points k (first gradient) and l (second) of the
    product of the two Gram tensors, i.e. the full 2-D convolution of Gu and Gv taken
    at (i-1, j-1). With m = i-1-k it reads T[i,j] = sum_{m,l} K[i,m,l] B[m,j,l] where
    K[i,m,l] = Gu[i-1-m, l] and B[m,j,l] = Gv[m, j-1-l] (zero for negative indices),
    one batched matrix product of shapes (L n_y^2, (L-1)^2) x ((L-1)^2, L n_x^2).
    """
    xp = array_namespace(Gu)
    lead = tuple(Gu.shape[:-4])
    nd = len(lead)
    L, ny, nx = Gu.shape[-4], Gu.shape[-3], Gv.shape[-3]
    dev = device(Gu)
    if L < 2:
        return xp.zeros(lead + (L, ny, nx, L, ny, nx), dtype=Gu.dtype, device=dev)
    M = L - 1  # split points and lags of the factors run over 0 .. L-2

    # the Toeplitz index i - 1 - m over (i, m) in (L, M), flattened for xp.take (0 where
    # negative, and masked); the same index serves K (i, m) and Bt (j, l)
    i = xp.arange(L, device=dev)[:, None]
    m = xp.arange(M, device=dev)[None, :]
    idx = i - 1 - m
    valid = idx >= 0
    mask = xp.astype(valid, Gu.dtype)  # (L, M)
    idx = xp.reshape(xp.where(valid, idx, xp.zeros_like(idx)), (L * M,))
    A = Gu[..., :M, :, :M, :]  # (..., M, ny, M, ny): indices k, a, l, a'
    # K[..., i, m, a, l, a'] = A[..., i-1-m, a, l, a'] (zero when i-1-m < 0)
    K = xp.reshape(xp.take(A, idx, axis=nd), lead + (L, M, ny, M, ny)) * mask[:, :, None, None, None]
    B = Gv[..., :M, :, :, :]  # (..., M, nx, L, nx): indices m, b, p, b'
    # Bt[..., m, b, j, l, b'] = B[..., m, b, j-1-l, b'] (zero when j-1-l < 0)
    Bt = xp.reshape(xp.take(B, idx, axis=nd + 2), lead + (M, nx, L, M, nx)) * mask[:, :, None]
    # contract over (m, l): K -> (..., i, a, a', m, l), Bt -> (..., m, l, b, j, b')
    keep = tuple(range(nd))
    Kmat = xp.reshape(xp.permute_dims(K, keep + tuple(nd + d for d in (0, 2, 4, 1, 3))), lead + (L * ny * ny, M * M))
    Bmat = xp.reshape(xp.permute_dims(Bt, keep + tuple(nd + d for d in (0, 3, 1, 2, 4))), lead + (M * M, nx * L * nx))
    T = xp.reshape(Kmat @ Bmat, lead + (L, ny, ny, nx, L, nx))  # i, a, a', b, j, b'
    return xp.permute_dims(T, keep + tuple(nd + d for d in (0, 1, 3, 4, 2, 5)))


def lag_ntk_from_krylov(
    V: Any,
    U: Any,
    *,
    n: int,
    param: str,
    scales: tuple[float, float, float],
    lr: tuple[float, float, float],
) -> Any:
    """Assemble Theta (..., L, n_y, n_x, L, n_y, n_x) from Krylov vectors V (..., L, n_x, n), U (..., L, n_y, n).

    ``scales`` = (alpha_C, alpha_F, alpha_W) and ``lr`` = (eta_C, eta_F, eta_W); see the
    module docstring for the formula.
    """
    xp = array_namespace(V)
    s = ntk_prefactor(param, n)
    a_c, a_f, a_w = scales
    eta_c, eta_f, eta_w = lr
    L, nx, ny = V.shape[-3], V.shape[-2], U.shape[-2]
    Gv = gram(V)  # (..., L, nx, L, nx)
    Gu = gram(U)  # (..., L, ny, L, ny)
    dev = device(V)
    theta = xp.zeros(tuple(V.shape[:-3]) + (L, ny, nx, L, ny, nx), dtype=V.dtype, device=dev)
    if eta_c:
        eye_y = xp.eye(ny, dtype=V.dtype, device=dev)[None, :, None, None, :, None]
        theta += (s * eta_c * a_c**2) * Gv[..., :, None, :, :, None, :] * eye_y
    if eta_f:
        eye_x = xp.eye(nx, dtype=V.dtype, device=dev)[None, None, :, None, None, :]
        theta += (s * eta_f * a_f**2) * Gu[..., :, :, None, :, :, None] * eye_x
    if eta_w and L > 1:
        theta += (s * eta_w * a_w**2) * split_point_sum(Gu, Gv)
    return theta


def lag_ntk_and_impulse(draw: RNNDraw, lags: int, lr: Sequence[float] = (1.0, 1.0, 1.0)) -> tuple[Any, Any]:
    """Theta and the impulse response L(0) of ``draw`` (batched or not) from one set of Krylov vectors.

    Returns (Theta of shape (..., lags, n_y, n_x, lags, n_y, n_x), L of shape (..., lags, n_y, n_x)).
    L_j[a,b] = <u_0^a, v_j^b> since u_0^a = c_a.
    """
    lags = check_size("lags", lags)
    lr3 = check_lr(lr)
    V, U = krylov_vectors(draw, lags)
    theta = lag_ntk_from_krylov(V, U, n=draw.n, param=draw.param, scales=draw.scales(), lr=lr3)
    return theta, impulse_response_from_krylov(V, U[..., 0, :, :])


def check_shapes(W: Any, F: Any, C: Any) -> tuple[int, int, int]:
    """(n, n_x, n_y) of raw parameters W (..., n, n), F (..., n, n_x), C (..., n_y, n), or a UsageError."""
    shapes = {name: tuple(getattr(a, "shape", ())) for name, a in (("W", W), ("F", F), ("C", C))}
    if any(len(sh) < 2 for sh in shapes.values()):
        raise UsageError(f"W, F and C must be matrices (with an optional batch axis), got shapes {shapes}")
    n = shapes["W"][-1]
    if shapes["W"][-2] != n:
        raise UsageError(f"W must be square (n x n), got shape {shapes['W']}")
    if shapes["F"][-2] != n or shapes["C"][-1] != n:
        raise UsageError(f"F must be n x n_x and C n_y x n with n = {n} from W, got F {shapes['F']} and C {shapes['C']}")
    if not (shapes["W"][:-2] == shapes["F"][:-2] == shapes["C"][:-2]):
        raise UsageError(f"W, F and C must have the same batch axes, got shapes {shapes}")
    return n, shapes["F"][-1], shapes["C"][-2]


def empirical_lag_ntk(
    W: Any,
    F: Any,
    C: Any,
    lags: int,
    *,
    param: str = "ntk",
    sigma_w2: float = 1.0,
    sigma_f2: float = 1.0,
    sigma_c2: float = 1.0,
    lr: Sequence[float] = (1.0, 1.0, 1.0),
) -> Any:
    """The exact lag NTK of the linear RNN with raw parameters (W, F, C).

    Theta[(i,a,b), (j,a',b')] = s * sum_{P in C,F,W} eta_P <dL_i[a,b]/dP, dL_j[a',b']/dP>
    for i, j = 0 .. lags-1 (``shared/CONVENTIONS.md``), returned with shape
    (lags, n_y, n_x, lags, n_y, n_x) (a leading batch axis of W, F, C is kept), in the
    array namespace and dtype of ``W``. ``lr`` = (eta_C, eta_F, eta_W). The sigmas
    matter only for ``param="ntk"``, where they define alpha_P (see
    :func:`linrnn.verify.sample.effective_scales`).

    Computed from the Krylov vectors and their Gram tensors (module docstring), at
    cost O(lags n^2 (n_x + n_y)) plus terms independent of n.
    """
    check_param(param)
    lags = check_size("lags", lags)
    lr3 = check_lr(lr)
    check_shapes(W, F, C)
    for name, value in (("sigma_w2", sigma_w2), ("sigma_f2", sigma_f2), ("sigma_c2", sigma_c2)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise UsageError(f"{name} must be a finite positive number, got {value!r}")
    draw = RNNDraw(W, F, C, param, float(sigma_w2), float(sigma_f2), float(sigma_c2))
    V, U = krylov_vectors(draw, lags)
    return lag_ntk_from_krylov(V, U, n=draw.n, param=param, scales=draw.scales(), lr=lr3)
