"""The exact empirical lag NTK of one linear RNN (or a batch), from Krylov vectors.

Conventions (``docs/conventions.md``): L_i = C_e W_e^i F_e and

    Theta[(i,a,b), (j,a',b')] = s * sum_{P in C,F,W} eta_P <dL_i[a,b]/dP, dL_j[a',b']/dP>,

with s = 1 (``ntk``) or 1/n (``standard``), gradients taken with respect to the raw
parameters P, and P_e = alpha_P P (:meth:`linrnn.core.spec.ModelSpec.scales`).

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

from typing import Any

from linrnn.core.spec import ModelSpec
from linrnn.core.validate import check_size
from linrnn.verify.backend import array_namespace, device
from linrnn.verify.sample import RNNDraw, impulse_response_from_krylov, krylov_vectors


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


def lag_ntk_from_krylov(V: Any, U: Any, spec: ModelSpec, n: int) -> Any:
    """Assemble Theta (..., L, n_y, n_x, L, n_y, n_x) from Krylov vectors V (..., L, n_x, n), U (..., L, n_y, n).

    The prefactor s, the scales (alpha_C, alpha_F, alpha_W) and the multipliers
    (eta_C, eta_F, eta_W) come from ``spec`` at width ``n``; see the module docstring
    for the formula.
    """
    xp = array_namespace(V)
    s = spec.ntk_prefactor(n)
    a_c, a_f, a_w = spec.scales(n)
    eta_c, eta_f, eta_w = spec.lr_mults
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


def lag_ntk_and_impulse(draw: RNNDraw, lags: int) -> tuple[Any, Any]:
    """Theta and the impulse response L(0) of ``draw`` (batched or not) from one set of Krylov vectors.

    Returns (Theta of shape (..., lags, n_y, n_x, lags, n_y, n_x), L of shape (..., lags, n_y, n_x)).
    L_j[a,b] = <u_0^a, v_j^b> since u_0^a = c_a. The learning-rate multipliers are the draw's spec's.
    """
    lags = check_size("lags", lags)
    V, U = krylov_vectors(draw, lags)
    theta = lag_ntk_from_krylov(V, U, draw.spec, draw.n)
    return theta, impulse_response_from_krylov(V, U[..., 0, :, :])


def empirical_lag_ntk(draw: RNNDraw, lags: int) -> Any:
    """The exact lag NTK of the linear RNN ``draw`` (raw parameters W, F, C and their spec).

    Theta[(i,a,b), (j,a',b')] = s * sum_{P in C,F,W} eta_P <dL_i[a,b]/dP, dL_j[a',b']/dP>
    for i, j = 0 .. lags-1 (``docs/conventions.md``), returned with shape
    (lags, n_y, n_x, lags, n_y, n_x) (a leading batch axis of W, F, C is kept), in the
    array namespace and dtype of ``W``. s, the scales alpha_P and the multipliers
    eta_P come from ``draw.spec``.

    Computed from the Krylov vectors and their Gram tensors (module docstring), at
    cost O(lags n^2 (n_x + n_y)) plus terms independent of n.
    """
    lags = check_size("lags", lags)
    V, U = krylov_vectors(draw, lags)
    return lag_ntk_from_krylov(V, U, draw.spec, draw.n)
