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
evaluated at (i-1, j-1) (:func:`split_point_sum`). Two routes compute it:

* exactly, as matrix products of Toeplitz arrangements of G_u and G_v over blocks of
  split points (:func:`split_point_sum_exact`): O(lags^4 n_x^2 n_y^2) time, every entry a
  plain sum of products (the reference);
* by a tilted 2-D FFT convolution (:func:`split_point_sum_fft`): the Grams are scaled by
  rho^-(k+l), convolved by real FFTs and scaled back by rho^(i+j-2), with the tilt rho
  chosen from the Gram diagonals (:func:`choose_tilt`) so that entries that decay or grow
  like q^((i+j)/2) keep their relative accuracy; O(lags^2 log(lags) n_x^2 n_y^2) time and
  O(lags^2 n_x^2 n_y^2) memory, with an a-posteriori error estimate per draw.

The default (``auto``) takes the exact sum where a cost model says it is faster (small
lags, large n_x n_y) and the FFT otherwise, falling back to the exact sum for any draw
whose estimated error relative to sqrt(Theta_ii Theta_jj) exceeds 5e-13 (float64), so
that every entry is within 1e-12 of the exact sum.

Cost per draw: 2 (lags - 1) passes over W for the Krylov vectors,
O(lags n^2 (n_x + n_y)); the Gram tensors O(lags^2 n (n_x^2 + n_y^2)); the
convolution as above, independent of n. No Jacobian is ever formed.
"""

from __future__ import annotations

import math
from typing import Any

from linrnn.core.errors import UsageError

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


#: Methods of :func:`split_point_sum`.
SPLIT_METHODS = ("auto", "exact", "fft")
#: The estimated error relative to sqrt(T_ii T_jj) up to which ``auto`` keeps the FFT route, in units of
#: the dtype's machine epsilon: 2250 eps64 = 5.0e-13 in float64 (2.7e-4 in float32), half of the 1e-12
#: promised against the exact sum; the other half covers the exact sum's own rounding (up to about
#: 3e-14 measured) and the estimate's margin.
FFT_TOLERANCE_EPS = 2250.0
#: Constant of the a-posteriori error estimate of the tilted FFT convolution, per level:
#: max |error| ~ FFT_ERROR_FACTOR eps sqrt(log2(nf0 nf1)) ||A~||_F ||B~||_F (:func:`split_point_sum_fft`).
#: With 1 the measured error of a single full-size convolution was at most 0.9 times the estimate
#: (L = 64 .. 256, n = 8 .. 1024, q = 0.3 .. 1.5, n_x = n_y = 1 .. 3).
FFT_ERROR_FACTOR = 1.0
#: Bytes of the Toeplitz blocks that one step of the exact sum forms (it loops over blocks of split points).
EXACT_BLOCK_BYTES = 64 * 2**20
#: Largest |exponent| of one tilt factor rho^(-k/2) (exp(709) is the float64 limit); a tilt beyond it
#: (|log rho| (L - 2) / 2 > 700, e.g. q < 0.065 at L = 1024) means the Gram entries it would lift have
#: underflowed, and the exact sum is used.
_MAX_TILT_EXPONENT = 700.0


def _fast_length(n: int) -> int:
    """The smallest 5-smooth integer (2^a 3^b 5^c) >= n: an efficient FFT length."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def split_point_sum_exact(Gu: Any, Gv: Any, *, block_bytes: int | None = None) -> Any:
    """T[i,a,b,j,a',b'] = sum_{k<i, l<j} Gu[k,a,l,a'] Gv[i-1-k,b,j-1-l,b'] (zero where i or j is 0), summed exactly.

    ``Gu``: (..., L, n_y, L, n_y), ``Gv``: (..., L, n_x, L, n_x); result
    (..., L, n_y, n_x, L, n_y, n_x). With m = i-1-k it reads T[i,j] = sum_{m,l} K[i,m,l] B[m,j,l]
    where K[i,m,l] = Gu[i-1-m, l] and B[m,j,l] = Gv[m, j-1-l] (zero for negative indices):
    a matrix product of shapes (L n_y^2, (L-1)^2) x ((L-1)^2, L n_x^2), taken over blocks of
    the split point m so that the Toeplitz arrangements of one block stay within
    ``block_bytes`` (default :data:`EXACT_BLOCK_BYTES`; memory O(L^2 (n_x^2 + n_y^2)) beyond that,
    time O(L^4 n_x^2 n_y^2)). With one block (a ``block_bytes`` above the whole arrangement) this is
    the algorithm used before the FFT route, whose Toeplitz arrangements take O(L^3) memory.
    Every entry is a plain sum of products, so entries that decay like q^(i+j) keep
    their relative accuracy: this is the reference the FFT route is tested against.
    """
    xp = array_namespace(Gu)
    lead = tuple(Gu.shape[:-4])
    nd = len(lead)
    L, ny, nx = Gu.shape[-4], Gu.shape[-3], Gv.shape[-3]
    dev = device(Gu)
    if L < 2:
        return xp.zeros(lead + (L, ny, nx, L, ny, nx), dtype=Gu.dtype, device=dev)
    M = L - 1  # split points and lags of the factors run over 0 .. L-2
    batch = 1
    for s in lead:
        batch *= s
    per_m = 8 * batch * L * M * (nx * nx + ny * ny) * 2  # K and Bt, and their permuted copies
    block_bytes = EXACT_BLOCK_BYTES if block_bytes is None else block_bytes
    step = max(1, min(M, block_bytes // max(per_m, 1)))
    keep = tuple(range(nd))
    i = xp.arange(L, device=dev)[:, None]
    A = Gu[..., :M, :, :M, :]  # (..., M, ny, M, ny): indices k, a, l, a'
    B = Gv[..., :M, :, :, :]  # (..., M, nx, L, nx): indices m, b, p, b'
    # the Toeplitz index j - 1 - l over (j, l) in (L, M), the same for every block
    lj = xp.arange(M, device=dev)[None, :]
    jdx = i - 1 - lj
    jvalid = jdx >= 0
    jmask = xp.astype(jvalid, Gu.dtype)
    jdx = xp.reshape(xp.where(jvalid, jdx, xp.zeros_like(jdx)), (L * M,))
    T = None
    for m0 in range(0, M, step):
        mb = min(step, M - m0)
        m = xp.arange(m0, m0 + mb, device=dev)[None, :]
        idx = i - 1 - m  # (L, mb): k = i - 1 - m
        valid = idx >= 0
        mask = xp.astype(valid, Gu.dtype)
        idx = xp.reshape(xp.where(valid, idx, xp.zeros_like(idx)), (L * mb,))
        # K[..., i, m, a, l, a'] = A[..., i-1-m, a, l, a'] (zero when i-1-m < 0)
        K = xp.reshape(xp.take(A, idx, axis=nd), lead + (L, mb, ny, M, ny)) * mask[:, :, None, None, None]
        Kmat = xp.reshape(xp.permute_dims(K, keep + tuple(nd + d for d in (0, 2, 4, 1, 3))), lead + (L * ny * ny, mb * M))
        # Bt[..., m, b, j, l, b'] = B[..., m, b, j-1-l, b'] (zero when j-1-l < 0), for this block of m
        Bb = xp.reshape(xp.take(B[..., m0:m0 + mb, :, :, :], jdx, axis=nd + 2), lead + (mb, nx, L, M, nx)) * jmask[:, :, None]
        Bmat = xp.reshape(xp.permute_dims(Bb, keep + tuple(nd + d for d in (0, 3, 1, 2, 4))), lead + (mb * M, nx * L * nx))
        part = Kmat @ Bmat
        T = part if T is None else T + part
        del K, Kmat, Bb, Bmat, part
    T = xp.reshape(T, lead + (L, ny, ny, nx, L, nx))  # i, a, a', b, j, b'
    return xp.permute_dims(T, keep + tuple(nd + d for d in (0, 1, 3, 4, 2, 5)))


def _logsumexp(x: Any, axis: int) -> Any:
    """log sum exp(x) along ``axis`` (finite inputs), computed stably."""
    xp = array_namespace(x)
    top = xp.max(x, axis=axis, keepdims=True)
    return xp.squeeze(top, axis=axis) + xp.log(xp.sum(xp.exp(x - top), axis=axis))


def _log_diagonal(G: Any, M: int, floor: float) -> Any:
    """log of d[k] = sum_a |G[..., k, a, k, a]| for k < M, with log 0 replaced by ``floor``."""
    xp = array_namespace(G)
    L, k = G.shape[-4], G.shape[-3]
    lead = tuple(G.shape[:-4])
    flat = xp.reshape(G, lead + (L * k, L * k))
    d = xp.abs(xp.linalg.diagonal(flat))  # (..., L k)
    d = xp.sum(xp.reshape(d, lead + (L, k)), axis=-1)[..., :M]
    pos = d > 0
    return xp.where(pos, xp.log(xp.where(pos, d, xp.ones_like(d))), xp.full_like(d, floor))


def _diagonal_profile(Gu: Any, Gv: Any) -> tuple[Any, Any, Any, Any]:
    """(log d_u, log d_v, log D_t, representable rows) from the Gram diagonals, per draw.

    d_u[k] = sum_a |Gu[k,a,k,a]|, d_v likewise (log 0 -> -1e4), for k < L-1;
    D_t = sum_{k<=t} d_u[k] d_v[t-k], the pairing k = l of the diagonal T_{t+1,t+1} (a proxy
    for it); a row t is representable when D_t >= smallest normal / eps of the dtype (below
    that, the Grams have underflowed and no route keeps relative accuracy).
    """
    xp = array_namespace(Gu)
    dev = device(Gu)
    L = Gu.shape[-4]
    M = L - 1
    floor = -1e4  # log of an exact zero: below anything a float64 can hold
    lu, lv = _log_diagonal(Gu, M, floor), _log_diagonal(Gv, M, floor)
    # log D_t = log sum_{k<=t} d_u[k] d_v[t-k], t = 0 .. M-1, as one (M, M) gather
    t = xp.arange(M, device=dev)[:, None]
    k = xp.arange(M, device=dev)[None, :]
    idx = t - k
    valid = idx >= 0
    idx = xp.reshape(xp.where(valid, idx, xp.zeros_like(idx)), (M * M,))
    nd = len(lu.shape) - 1
    lv_tk = xp.reshape(xp.take(lv, idx, axis=nd), tuple(lv.shape[:-1]) + (M, M))
    pair = xp.where(valid, lu[..., None, :] + lv_tk, xp.full_like(lv_tk, floor))
    logD = _logsumexp(pair, axis=-1)  # (..., M)
    finfo = xp.finfo(Gu.dtype)
    representable = logD >= math.log(float(finfo.smallest_normal) / float(finfo.eps))
    return lu, lv, logD, representable


def choose_tilt(Gu: Any, Gv: Any, grid: int = 33, *, profile: tuple[Any, Any, Any, Any] | None = None) -> Any:
    """The log of the tilt rho, per draw (shape of the batch axes), chosen from the Gram diagonals.

    The FFT route convolves A~[k,l] = rho^-(k+l) Gu[k,l] and B~[m,p] = rho^-(m+p) Gv[m,p]. Its
    rounding error is about eps ||A~||_F ||B~||_F in every entry of the tilted result
    T~[i,j] = rho^-(i+j-2) T[i,j], while the entry is to be accurate relative to
    sqrt(T~_ii T~_jj). With the diagonals d_u[k] = sum_a Gu[k,a,k,a], d_v[m] and
    D_t = sum_k d_u[k] d_v[t-k] (the pairing k = l of T_{t+1,t+1}, a proxy for it), g = log rho
    minimises the predicted worst relative error

        h(g) = log sum_k d_u[k] e^(-2kg) + log sum_m d_v[m] e^(-2mg) + max_t (2tg - log D_t),

    (the traces bound the Frobenius norms of the positive semi-definite tilted Grams). h is
    convex in g (log-sum-exp and max of affine functions), so a grid over the range of
    the diagonals' step-to-step rates, refined once around its best point, finds it.
    Entries that decay like q^(i+j)/2 or grow like that give rho near sqrt(q); profiles
    that are not geometric (finite width) get the rho that balances their two ends.
    """
    xp = array_namespace(Gu)
    dev = device(Gu)
    M = Gu.shape[-4] - 1
    lu, lv, logD, representable = _diagonal_profile(Gu, Gv) if profile is None else profile
    # the bracket: the extreme step-to-step rates of the diagonals (half, as rho^2 is the rate)
    steps = xp.concat([lu[..., 1:] - lu[..., :-1], lv[..., 1:] - lv[..., :-1]], axis=-1) / 2
    ok = xp.abs(steps) < 1e3
    lo = xp.min(xp.where(ok, steps, xp.full_like(steps, 1e3)), axis=-1)
    hi = xp.max(xp.where(ok, steps, xp.full_like(steps, -1e3)), axis=-1)
    lo = xp.clip(xp.minimum(lo, hi), -50.0, 50.0)
    hi = xp.clip(xp.maximum(lo, hi), -50.0, 50.0)
    kk = xp.astype(xp.arange(M, device=dev), Gu.dtype)

    def objective(g: Any) -> Any:  # g (..., S) -> h (..., S)
        e = -2.0 * g[..., :, None] * kk
        norm_u = _logsumexp(lu[..., None, :] + e, axis=-1)
        norm_v = _logsumexp(lv[..., None, :] + e, axis=-1)
        worst = xp.max(xp.where(representable[..., None, :], -e - logD[..., None, :], xp.full_like(e, -1e30)), axis=-1)
        return norm_u + norm_v + worst

    s = xp.astype(xp.arange(grid, device=dev), Gu.dtype) / (grid - 1)
    for _ in range(2):
        g = lo[..., None] + (hi - lo)[..., None] * s
        h = objective(g)
        best = xp.argmax(-h, axis=-1)  # (...,)
        width = (hi - lo) / (grid - 1)
        pick = xp.astype(xp.arange(grid, device=dev) == best[..., None], Gu.dtype)
        centre = xp.sum(g * pick, axis=-1)
        lo, hi = centre - width, centre + width
    return centre


def _levels(M: int) -> list[tuple[int, int]]:
    """Dyadic row ranges [r0, r1) of the conv index t = i - 1 in 0 .. M-1: [0,1), [1,2), [2,4), [4,8), ..."""
    out, r0, r1 = [], 0, 1
    while r0 < M:
        out.append((r0, min(r1, M)))
        r0, r1 = r1, 2 * r1
    return out


def split_point_sum_fft(
    Gu: Any, Gv: Any, log_rho: Any | None = None, *, profile: tuple[Any, Any, Any, Any] | None = None
) -> tuple[Any, Any]:
    """The split-point sum by tilted 2-D FFT convolutions, and its estimated relative error per draw.

    With g = log rho (:func:`choose_tilt` unless given; one per draw),
    A~[k,a,l,a'] = e^(-g(k+l)) Gu[k,a,l,a'] and B~ likewise from Gv (k, l < L-1), the 2-D
    linear convolution over the lag axes C~[t,u] = sum_{k,l} A~[k,l] B~[t-k,u-l] gives
    T[i,j] = e^(g(i-1)) e^(g(j-1)) C~[i-1, j-1]: the tilt cancels exactly because
    e^(-g k) e^(-g (t-k)) = e^(-g t).

    Rows come in dyadic levels t in [r0, r1) = [0,1), [1,2), [2,4), ...: row t needs only
    the first t+1 rows of A~ and B~, so each level convolves A~[:r1] with B~[:r1] by real
    FFTs of lengths nf0 >= 2 r1 - 1 - r0 and nf1 >= 2(L-1) - 1 - r0 (zero padding; what
    wraps around lands below r0 and is not used), and keeps its rows. The entries with
    u >= t come from the level of t; the others from symmetry, T[i,a,b,j,a',b'] =
    T[j,a',b',i,a,b] (Gram tensors are symmetric). Cost O(L^2 log L) per component,
    about that of one full-size FFT convolution; memory O(L^2 n_x^2 n_y^2).

    Accuracy: the rounding error of an FFT convolution is about
    eps sqrt(log2(nf0 nf1)) ||A~_aa'||_F ||B~_bb'||_F (norms over the rows the level uses) in
    every tilted entry; divided by sqrt(m m'), m the smallest tilted diagonal of the level
    (less its own error) and m' that of all later rows, it bounds the error of the level's
    entries relative to sqrt(T_ii T_jj). The largest over levels and components, times
    :data:`FFT_ERROR_FACTOR`, is returned with the sum (shape of the batch axes; inf where a
    diagonal is not positive). The levels keep the small rows (few split points, small
    diagonals) from inheriting the error of the whole array. Needs the namespace's ``fft``.
    """
    xp = array_namespace(Gu)
    lead = tuple(Gu.shape[:-4])
    nd = len(lead)
    L, ny, nx = Gu.shape[-4], Gu.shape[-3], Gv.shape[-3]
    dev = device(Gu)
    dt = Gu.dtype
    if L < 2:
        return (xp.zeros(lead + (L, ny, nx, L, ny, nx), dtype=dt, device=dev), xp.zeros(lead, dtype=dt, device=dev))
    M = L - 1
    profile = _diagonal_profile(Gu, Gv) if profile is None else profile
    g = choose_tilt(Gu, Gv, profile=profile) if log_rho is None else xp.asarray(log_rho, dtype=dt, device=dev)
    g = xp.broadcast_to(g, lead)
    k = xp.astype(xp.arange(M, device=dev), dt)
    # rho^-k per axis, as one factor where no factor overflows, else as two factors rho^(-k/2), so
    # that the entries it lifts (about rho^(k+l) Gu[0,0]) stay representable on the way
    parts = 1 if float(xp.max(xp.abs(g))) * M <= _MAX_TILT_EXPONENT else 2
    factor = xp.exp(-(g[..., None] * k) / parts)  # (..., M)
    A, B = Gu[..., :M, :, :M, :], Gv[..., :M, :, :M, :]
    for _ in range(parts):
        A = A * factor[..., :, None, None, None]
        A = A * factor[..., None, None, :, None]
        B = B * factor[..., :, None, None, None]
        B = B * factor[..., None, None, :, None]
    eps = float(xp.finfo(dt).eps)
    # squared norms of the rows of A~ and B~ per component pair, cumulated: ||A~[:r]_aa'||_F^2
    rows_a = xp.cumulative_sum(xp.sum(A * A, axis=nd + 2), axis=nd)  # (..., M, ny, ny)
    rows_b = xp.cumulative_sum(xp.sum(B * B, axis=nd + 2), axis=nd)  # (..., M, nx, nx)
    blocks, bounds = [], []
    for r0, r1 in _levels(M):
        nf0 = _fast_length(max(2 * r1 - 1 - r0, 1))
        nf1 = _fast_length(2 * M - 1 - r0)
        Ah = xp.fft.rfftn(A[..., :r1, :, :, :], s=(nf0, nf1), axes=(nd, nd + 2))  # (..., nf0, ny, nf1//2+1, ny)
        Bh = xp.fft.rfftn(B[..., :r1, :, :, :], s=(nf0, nf1), axes=(nd, nd + 2))
        P = Ah[..., :, :, None, :, :, None] * Bh[..., :, None, :, :, None, :]  # p, a, b, q, a', b'
        del Ah, Bh
        blocks.append(xp.fft.irfftn(P, s=(nf0, nf1), axes=(nd, nd + 3))[..., r0:r1, :, :, :M, :, :])
        del P
        na = xp.sqrt(rows_a[..., r1 - 1, :, :])  # (..., ny, ny)
        nb = xp.sqrt(rows_b[..., r1 - 1, :, :])  # (..., nx, nx)
        scale = FFT_ERROR_FACTOR * eps * math.sqrt(math.log2(max(nf0 * nf1, 2)))
        bounds.append(scale * na[..., :, None, :, None] * nb[..., None, :, None, :])  # (..., a, b, a', b')
    C = xp.concat(blocks, axis=nd) if len(blocks) > 1 else blocks[0]
    del blocks
    # the upper triangle u >= t from the rows' own level, the rest by symmetry
    t = xp.arange(M, device=dev)
    upper = (t[:, None] <= t[None, :])[:, None, None, :, None, None]
    keep = tuple(range(nd))
    mirror = xp.permute_dims(C, keep + tuple(nd + d for d in (3, 4, 5, 0, 1, 2)))
    C = xp.where(upper, C, mirror)
    del mirror
    # the error estimate relative to sqrt(T~_ii T~_jj), level by level
    K = M * ny * nx
    diag = xp.reshape(xp.linalg.diagonal(xp.reshape(C, lead + (K, K))), lead + (M, ny, nx))
    # rows below the normal range of the dtype (underflowed Grams, q^i at long lags) carry no
    # relative accuracy in any route and are left out of the estimate
    counted = profile[3][..., :, None, None]
    diag = xp.where(counted, diag, xp.full_like(diag, float(xp.finfo(dt).max)))
    rel = xp.zeros(lead, dtype=dt, device=dev)
    later = None  # min over the rows of this and later levels of the diagonal, less its error
    for (r0, r1), bound in reversed(list(zip(_levels(M), bounds))):
        own = xp.reshape(xp.linalg.diagonal(xp.reshape(bound, lead + (ny * nx, ny * nx))), lead + (ny, nx))
        low = xp.min(diag[..., r0:r1, :, :], axis=nd) - own  # (..., ny, nx)
        later = low if later is None else xp.minimum(later, low)
        ok = xp.all(xp.reshape((low > 0) & (later > 0), lead + (ny * nx,)), axis=-1)
        lo = xp.where(low > 0, low, xp.ones_like(low))
        la = xp.where(later > 0, later, xp.ones_like(later))
        ratio = xp.reshape(bound / xp.sqrt(lo[..., :, :, None, None] * la[..., None, None, :, :]), lead + (ny * nx * ny * nx,))
        level = xp.where(ok, xp.max(ratio, axis=-1), xp.full(lead, math.inf, dtype=dt, device=dev))
        rel = xp.maximum(rel, level)
    back = xp.exp((g[..., None] * k) / parts)  # (..., M): rho^((i-1)/parts)
    for _ in range(parts):
        C = C * back[..., :, None, None, None, None, None]
        C *= back[..., None, None, None, :, None, None]
    # zero row and column for i = 0 and j = 0
    out = xp.zeros(lead + (L, ny, nx, L, ny, nx), dtype=dt, device=dev)
    out[..., 1:, :, :, 1:, :, :] = C
    return out, rel


def _exact_cheaper(L: int, nx: int, ny: int) -> bool:
    """Whether the exact sum is expected to be faster than the FFT route (a cost model, measured on a CPU).

    Exact: the matrix product's 2 L^2 (L-1)^2 n_x^2 n_y^2 flops plus the copies of its Toeplitz
    arrangements, L (L-1)^2 (n_x^2 + n_y^2) items. FFT: a fixed cost and one per row level, the transforms of the two
    Grams, nf^2 log2(nf) (n_x^2 + n_y^2), the product and inverse transform,
    nf^2 log2(nf) n_x^2 n_y^2, and the tilt choice, O((L-1)^2). The constants below (seconds per
    item) were measured on this project's 2-core x86 machine with one BLAS thread (the
    crossover: L about 60 for n_x = n_y = 1, about 32 for n_x = n_y = 2 and about 40 for 4); the case
    ``split_point_switch`` of ``benchmarks/bench_ntk.py`` times both sides of it.
    """
    M = L - 1
    nf = _fast_length(2 * M - 1)
    lg = nf * nf * math.log2(max(nf, 2))
    exact = _EXACT_FLOP_S * 2.0 * L * L * M * M * nx * nx * ny * ny + _EXACT_COPY_S * L * M * M * (nx * nx + ny * ny)
    fft = (_FFT_FIXED_S + _FFT_LEVEL_S * len(_levels(M)) + _FFT_PRODUCT_S * lg * nx * nx * ny * ny
           + _FFT_GRAM_S * lg * (nx * nx + ny * ny) + _TILT_ITEM_S * M * M)
    return exact <= fft


#: Cost-model constants (seconds per item) of :func:`_exact_cheaper`.
_EXACT_FLOP_S = 4.5e-11
_EXACT_COPY_S = 2.0e-9
_FFT_FIXED_S = 3.0e-4
_FFT_LEVEL_S = 1.2e-4
_FFT_PRODUCT_S = 5.0e-9
_FFT_GRAM_S = 7.0e-10
_TILT_ITEM_S = 1.0e-8


def split_point_items(lags: int, n_in: int, n_out: int, batch: int = 1) -> int:
    """Peak working items (of the working dtype, an upper estimate) of :func:`split_point_sum` for ``batch`` draws.

    The FFT route holds the tilted Grams, their transforms and the transformed product,
    about 4 nf^2 n_x^2 n_y^2 + 3 nf^2 (n_x^2 + n_y^2) items with nf <= 2.2 lags, and the
    tilt choice 6 (lags - 1)^2; the exact route holds at most :data:`EXACT_BLOCK_BYTES` of
    Toeplitz blocks for the whole batch (or all of them, 4 lags^3 (n_x^2 + n_y^2), when
    smaller) and the result, 2 lags^2 n_x^2 n_y^2. ``auto`` may take either, so both count:
    O(lags^2 n_x^2 n_y^2) in all.
    """
    L, M = lags, max(lags - 1, 1)
    nf = _fast_length(2 * M - 1)
    sq = n_in * n_in * n_out * n_out
    fft = 4 * nf * nf * sq + 3 * nf * nf * (n_in * n_in + n_out * n_out) + 6 * M * M + 3 * L * L * sq
    toeplitz = min(4 * L * M * M * (n_in * n_in + n_out * n_out), EXACT_BLOCK_BYTES // (4 * max(batch, 1)))
    return int(max(fft, toeplitz + 2 * L * L * sq))


def split_point_sum(Gu: Any, Gv: Any, method: str = "auto", *, tol: float | None = None) -> Any:
    """T[i,a,b,j,a',b'] = sum_{k<i, l<j} Gu[k,a,l,a'] Gv[i-1-k,b,j-1-l,b'] (zero where i or j is 0).

    ``Gu``: (..., L, n_y, L, n_y), ``Gv``: (..., L, n_x, L, n_x); result
    (..., L, n_y, n_x, L, n_y, n_x). This is the W-part of the lag NTK before its
    prefactor: the sum over the split points k (first gradient) and l (second) of the
    product of the two Gram tensors, i.e. the full 2-D convolution of Gu and Gv taken
    at (i-1, j-1).

    ``method``: ``exact`` sums the products (:func:`split_point_sum_exact`, O(L^4));
    ``fft`` convolves by the tilted FFT (:func:`split_point_sum_fft`, O(L^2 log L));
    ``auto`` (default) takes the exact sum where its cost model says it is faster
    (small L, large n_x n_y) or where the namespace has no ``fft``, and otherwise the
    FFT, keeping its result only for the draws whose estimated error relative to
    sqrt(T_ii T_jj) is within ``tol`` (default :data:`FFT_TOLERANCE_EPS` times the
    dtype's epsilon, 5e-13 in float64, so that the result is within 1e-12 of the exact
    sum); the other draws get the exact sum.
    """
    if method not in SPLIT_METHODS:
        raise UsageError(f"unknown split-point method {method!r}; choose one of {', '.join(SPLIT_METHODS)}")
    xp = array_namespace(Gu)
    L, ny, nx = Gu.shape[-4], Gu.shape[-3], Gv.shape[-3]
    if method == "exact" or L < 3:
        return split_point_sum_exact(Gu, Gv)
    if method == "fft":
        return split_point_sum_fft(Gu, Gv)[0]
    if not hasattr(xp, "fft") or _exact_cheaper(L, nx, ny):
        return split_point_sum_exact(Gu, Gv)
    if tol is None:
        tol = FFT_TOLERANCE_EPS * float(xp.finfo(Gu.dtype).eps)
    if not bool(xp.all(xp.isfinite(Gu))) or not bool(xp.all(xp.isfinite(Gv))):
        return split_point_sum_exact(Gu, Gv)  # overflowed Grams: the plain sums say where
    profile = _diagonal_profile(Gu, Gv)
    g = choose_tilt(Gu, Gv, profile=profile)
    if float(xp.max(xp.abs(g))) * (L - 2) / 2 > _MAX_TILT_EXPONENT:
        return split_point_sum_exact(Gu, Gv)
    T, rel = split_point_sum_fft(Gu, Gv, g, profile=profile)
    good = rel <= tol
    if bool(xp.all(good)):
        return T
    exact = split_point_sum_exact(Gu, Gv)
    if not good.shape:
        return exact
    return xp.where(xp.reshape(good, good.shape + (1,) * 6), T, exact)


def lag_ntk_from_krylov(V: Any, U: Any, spec: ModelSpec, n: int, *, method: str = "auto") -> Any:
    """Assemble Theta (..., L, n_y, n_x, L, n_y, n_x) from Krylov vectors V (..., L, n_x, n), U (..., L, n_y, n).

    The prefactor s, the scales (alpha_C, alpha_F, alpha_W) and the multipliers
    (eta_C, eta_F, eta_W) come from ``spec`` at width ``n``; see the module docstring
    for the formula. ``method`` chooses the route of the W-part (:func:`split_point_sum`).
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
        theta += (s * eta_w * a_w**2) * split_point_sum(Gu, Gv, method)
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


def empirical_lag_ntk(draw: RNNDraw, lags: int, *, method: str = "auto") -> Any:
    """The exact lag NTK of the linear RNN ``draw`` (raw parameters W, F, C and their spec).

    Theta[(i,a,b), (j,a',b')] = s * sum_{P in C,F,W} eta_P <dL_i[a,b]/dP, dL_j[a',b']/dP>
    for i, j = 0 .. lags-1 (``docs/conventions.md``), returned with shape
    (lags, n_y, n_x, lags, n_y, n_x) (a leading batch axis of W, F, C is kept), in the
    array namespace and dtype of ``W``. s, the scales alpha_P and the multipliers
    eta_P come from ``draw.spec``.

    Computed from the Krylov vectors and their Gram tensors (module docstring), at
    cost O(lags n^2 (n_x + n_y)) plus terms independent of n. ``method``: the route of
    the W-part, ``auto`` (default), ``fft`` or ``exact`` (:func:`split_point_sum`).
    """
    lags = check_size("lags", lags)
    if method not in SPLIT_METHODS:
        raise UsageError(f"unknown split-point method {method!r}; choose one of {', '.join(SPLIT_METHODS)}")
    V, U = krylov_vectors(draw, lags)
    return lag_ntk_from_krylov(V, U, draw.spec, draw.n, method=method)
