r"""The diagonal family's model object (:class:`DiagonalRNN`) and the array code every diagonal family shares.

A draw holds, per unit i, the complex read-out c_i (n_y), input b_i (n_x) and
eigenvalue lambda_i, as arrays c (..., n_y, n), b (..., n, n_x), lam (..., n): never
an n x n matrix. On the Array API (:mod:`linrnn.verify.backend`), batch axes kept.

The empirical lag NTK (:func:`unit_ntk`) is exact and structured: with G_j = g lambda^j
(g the unit's input gain: 1 here, gamma for the LRU) as an (L x n) array,

* c (real and imaginary parts): delta_aa' Re sum_i (G_ji b_ib) conj(G_ki b_ib') / n;
* b: delta_bb' Re sum_i (c_ai G_ji) conj(c_a'i G_ki) / n;
* a complex per-unit parameter (lambda) with du/dlambda = c_a b_b D_j:
  Re sum_i (c_ai b_ib D_ji) conj(c_a'i b_ib' D_ki) / n;
* a real per-unit parameter with d(c g lambda^j b)/dt = c_a b_b D_j: sum_i Re(c_ai b_ib D_ji) Re(...) / n,

each a product of an (L n_y n_x x n) and an (n x L n_y n_x) array: O(n L^2) for one
channel. For a holomorphic f of z = x + i y, d Re f / dx = Re f' and d Re f / dy =
-Im f', so the sum over the two real coordinates is Re(f'_j conj f'_k).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from linrnn.core.errors import UsageError
from linrnn.core.validate import check_size
from linrnn.families.diagonal.spec import DiagonalSpec
from linrnn.verify.kernel_check import Control


def complex_dtype(xp: Any, real: Any) -> Any:
    """The complex dtype of the namespace ``xp`` that matches the real array ``real``."""
    return xp.complex64 if real.dtype == xp.float32 else xp.complex128


def as_complex(re: Any, im: Any) -> Any:
    """re + i im from two real arrays, in their namespace."""
    from linrnn.verify.backend import array_namespace

    xp = array_namespace(re)
    cdt = complex_dtype(xp, re)
    return xp.astype(re, cdt) + xp.astype(im, cdt) * 1j


def draw_ring(be: Any, spec: Any, width: int, batch: int | None) -> tuple[Any, Any, Any, Any]:
    """(rho, phi, c, b) of the ring law: |lambda|^2 ~ U[r_min^2, r_max^2], arg lambda ~ U[0, theta_max] (in that
    order from the backend's generator), then c (..., n_y, n) and b (..., n, n_x) with CN(0, 1) entries."""
    from linrnn.verify.backend import array_namespace

    lead = () if batch is None else (check_size("batch", batch),)
    n = check_size("width", width)
    u1, u2 = be.uniform((*lead, n)), be.uniform((*lead, n))
    xp = array_namespace(u1)
    rho = xp.sqrt(u1 * (spec.r_max**2 - spec.r_min**2) + spec.r_min**2)
    phi = u2 * spec.theta_max
    s = math.sqrt(0.5)
    c = as_complex(be.normal((*lead, spec.n_out, n), s), be.normal((*lead, spec.n_out, n), s))
    b = as_complex(be.normal((*lead, n, spec.n_in), s), be.normal((*lead, n, spec.n_in), s))
    return rho, phi, c, b


def powers(lam: Any, lags: int) -> Any:
    """lambda^j, j < ``lags``, by repeated products: shape (..., lags, n)."""
    from linrnn.verify.backend import array_namespace

    return powers_from(array_namespace(lam).ones_like(lam), lam, lags)


def powers_from(start: Any, lam: Any, lags: int) -> Any:
    """start lambda^j, j < ``lags``, by repeated products: shape (..., lags, n) (``start`` and ``lam`` (..., n)).

    On NumPy and CuPy each product is written in place into one array (no list, no stacking copy:
    a few times faster at large n); elsewhere the rows are stacked. The same numbers either way.
    """
    from array_api_compat import is_cupy_array, is_numpy_array

    from linrnn.verify.backend import array_namespace

    xp = array_namespace(lam)
    if is_numpy_array(lam) or is_cupy_array(lam):
        mod = np if is_numpy_array(lam) else __import__("cupy")
        start, lam = mod.broadcast_arrays(start, lam)
        out = mod.empty((*lam.shape[:-1], lags, lam.shape[-1]), dtype=mod.result_type(start, lam))
        out[..., 0, :] = start
        for j in range(1, lags):
            mod.multiply(out[..., j - 1, :], lam, out=out[..., j, :])
        return out
    rows = [start * xp.ones_like(lam)]
    for _ in range(lags - 1):
        rows.append(rows[-1] * lam)
    return xp.stack(rows, axis=-2)


def unit_impulse(G: Any, c: Any, b: Any) -> Any:
    """L_j[a, b] = Re(sum_i c_ai G_ji b_ib) / sqrt(n) from G (..., L, n): shape (..., L, n_y, n_x), real."""
    from linrnn.verify.backend import array_namespace

    xp = array_namespace(G)
    n = G.shape[-1]
    return xp.real(xp.matmul(G[..., :, None, :] * c[..., None, :, :], b[..., None, :, :])) / math.sqrt(n)


def _gram(A: Any, n: int, real: bool) -> Any:
    """Re(A A^H) / n (``real``: Re(A) Re(A)^T / n) for complex A (..., m, n).

    Re(A A^H) = Re A Re A^T + Im A Im A^T, so it is ONE real product of [Re A, Im A] (m x 2n)
    with its transpose: half the real multiply-adds of the complex product A A^H.
    """
    from linrnn.verify.backend import array_namespace

    xp = array_namespace(A)
    R = xp.real(A) if real else xp.concat([xp.real(A), xp.imag(A)], axis=-1)
    return xp.matmul(R, xp.matrix_transpose(R)) / n


def unit_ntk(G: Any, c: Any, b: Any, eta_c: float, eta_f: float,
             per_unit: list[tuple[float, Any, bool]]) -> Any:
    """The exact lag NTK (..., L, n_y, n_x, L, n_y, n_x) of a diagonal family (module docstring).

    ``G``: g lambda^j (..., L, n); ``per_unit``: (multiplier, D (..., L, n), real?) per per-unit parameter
    with d(c_a g lambda^j b_b)/dt = c_a b_b D_j (``real``: a real parameter, else a complex one).
    """
    from linrnn.verify.backend import array_namespace

    xp = array_namespace(G)
    L, n = G.shape[-2], G.shape[-1]
    ny, nx = c.shape[-2], b.shape[-1]
    lead = tuple(G.shape[:-2])
    rdt = xp.real(G[..., :1, :1]).dtype
    out = xp.zeros((*lead, L, ny, nx, L, ny, nx), dtype=rdt)
    eye_y, eye_x = xp.eye(ny, dtype=rdt), xp.eye(nx, dtype=rdt)
    if eta_c and eta_f and ny == nx == 1:
        # one input, one output: the c part Re(G diag|b|^2 G^H) and the b part Re(G diag|c|^2 G^H) are one
        # weighted Gram, Re(G diag(eta_c |b|^2 + eta_f |c|^2) G^H)
        w = eta_c * xp.abs(b[..., :, 0]) ** 2 + eta_f * xp.abs(c[..., 0, :]) ** 2  # (..., n)
        A = G * xp.sqrt(w)[..., None, :]
        out = out + xp.reshape(_gram(A, n, False), (*lead, L, 1, 1, L, 1, 1))
        eta_c = eta_f = 0.0
    if eta_c:
        A = xp.reshape(G[..., :, None, :] * xp.matrix_transpose(b)[..., None, :, :], (*lead, L * nx, n))
        gram = xp.reshape(_gram(A, n, False), (*lead, L, 1, nx, L, 1, nx))
        out = out + eta_c * gram * xp.reshape(eye_y, (ny, 1, 1, ny, 1))
    if eta_f:
        A = xp.reshape(G[..., :, None, :] * c[..., None, :, :], (*lead, L * ny, n))
        gram = xp.reshape(_gram(A, n, False), (*lead, L, ny, 1, L, ny, 1))
        out = out + eta_f * gram * xp.reshape(eye_x, (nx, 1, 1, nx))
    cb = c[..., :, None, :] * xp.matrix_transpose(b)[..., None, :, :]  # (..., n_y, n_x, n)
    for eta, D, real in per_unit:
        if not eta:
            continue
        A = xp.reshape(D[..., :, None, None, :] * cb[..., None, :, :, :], (*lead, L * ny * nx, n))
        out = out + eta * xp.reshape(_gram(A, n, real), (*lead, L, ny, nx, L, ny, nx))
    return out


def real_parts(Z: Any) -> Any:
    """[Re Z_0, Im Z_0, Re Z_1, Im Z_1, ...] along the last axis of a complex Z (..., m, n): real (..., m, 2n).

    The layout complex numbers have in memory, so on NumPy and CuPy a view (no copy) of a C-contiguous Z;
    stacked in other namespaces. Re(Z diag(w) Z^H) = X diag(w interleaved with w) X^T for X = real_parts(Z).
    """
    from array_api_compat import is_cupy_array, is_numpy_array

    from linrnn.verify.backend import array_namespace

    if (is_numpy_array(Z) or is_cupy_array(Z)) and Z.flags.c_contiguous:
        return Z.view(Z.real.dtype)
    xp = array_namespace(Z)
    return xp.reshape(xp.stack([xp.real(Z), xp.imag(Z)], axis=-1), (*Z.shape[:-1], 2 * Z.shape[-1]))


def interleave(a: Any, b: Any) -> Any:
    """[a_0, b_0, a_1, b_1, ...] along the last axis (per-unit weights of the columns of :func:`real_parts`)."""
    from linrnn.verify.backend import array_namespace

    xp = array_namespace(a)
    a, b = xp.broadcast_arrays(a, b)
    return xp.reshape(xp.stack([a, b], axis=-1), (*a.shape[:-1], 2 * a.shape[-1]))


def weighted(X: Any, w: Any, buf: Any = None) -> Any:
    """X * w (w (..., k) over the rows of X (..., m, k)); on NumPy and CuPy written into ``buf`` (an earlier result
    with at least m rows) where given, which spares a fresh allocation of the size of X."""
    from array_api_compat import is_cupy_array, is_numpy_array

    w = w[..., None, :]
    if buf is not None and (is_numpy_array(X) or is_cupy_array(X)):
        mod = np if is_numpy_array(X) else __import__("cupy")
        return mod.multiply(X, w, out=buf[..., :X.shape[-2], :])
    return X * w


def real_gram(X: Any, n: int) -> Any:
    """X X^T / n for a real X (..., m, k): one symmetric product (BLAS syrk on NumPy)."""
    from linrnn.verify.backend import array_namespace

    xp = array_namespace(X)
    return xp.matmul(X, xp.matrix_transpose(X)) / n


def lag_scaled(M: Any, first: int) -> Any:
    """j k M[j - first, k - first] for j, k >= ``first`` (0 elsewhere): M (..., L - first, L - first) -> (..., L, L)."""
    from linrnn.verify.backend import array_namespace

    xp = array_namespace(M)
    m = M.shape[-1]
    L = m + first
    lead = tuple(M.shape[:-2])
    j = xp.reshape(xp.arange(first, L, dtype=M.dtype), (m, 1))
    out = (j * xp.matrix_transpose(j)) * M
    if first:
        out = xp.concat([xp.zeros((*lead, first, m), dtype=M.dtype), out], axis=-2)
        out = xp.concat([xp.zeros((*lead, L, first), dtype=M.dtype), out], axis=-1)
    return out


def _one_channel(out: Any) -> Any:
    return out[..., :, None, None, :, None, None]


def scalar_ntk(P: Any, c: Any, b: Any, eta_c: float, eta_f: float, eta_w: float) -> Any:
    """The diagonal family's lag NTK for one input and one output, as two Grams of real features of the powers.

    With P_j = lambda^j (..., L, n) and X = [Re P, Im P] (..., L, 2n, :func:`real_parts`): the c and b parts
    together are Re(P diag(w) P^H) / n = (X diag(w, w) X^T) / n with w = eta_c |b|^2 + eta_f |c|^2; the lambda
    part, with d(lambda^j)/d lambda = j lambda^{j-1}, is eta_w j k Re(P diag|c b|^2 P^H)[j-1, k-1] / n
    (the phase of c b cancels in a complex parameter's Gram): the same Gram with the weight |c b|^2,
    over lags 0 .. L-2, shifted by one lag and scaled by j k. Both are real symmetric products
    (syrk) of (L x 2n) arrays, 4 L^2 n multiply-adds in all: half those of one complex (L x n)(n x L)
    product. The general layout (:func:`unit_ntk`) gives the same numbers to rounding (a test
    compares them).
    """
    from linrnn.verify.backend import array_namespace

    xp = array_namespace(P)
    L, n = P.shape[-2], P.shape[-1]
    b0, c0 = b[..., :, 0], c[..., 0, :]
    X = real_parts(P)
    s1 = xp.sqrt(eta_c * xp.abs(b0) ** 2 + eta_f * xp.abs(c0) ** 2)
    Z = weighted(X, interleave(s1, s1))
    out = real_gram(Z, n)
    if eta_w and L > 1:
        s2 = xp.abs(c0 * b0)
        out = out + eta_w * lag_scaled(real_gram(weighted(X[..., :-1, :], interleave(s2, s2), Z), n), 1)
    return _one_channel(out)


def scalar_impulse(H: Any) -> Any:
    """L_j = Re(sum_i H_ji) / sqrt(n) from H = c g lambda^j b (..., L, n): shape (..., L, 1, 1)."""
    from linrnn.verify.backend import array_namespace

    xp = array_namespace(H)
    return (xp.sum(xp.real(H), axis=-1) / math.sqrt(H.shape[-1]))[..., :, None, None]


def lag_index(G: Any) -> Any:
    """The lags j = 0 .. L-1 as a (L, 1) array of G's real dtype (for j lambda^j)."""
    from linrnn.verify.backend import array_namespace

    xp = array_namespace(G)
    rdt = xp.real(G[..., :1, :1]).dtype
    return xp.reshape(xp.arange(G.shape[-2], dtype=rdt), (G.shape[-2], 1))


def shifted(P: Any) -> Any:
    """lambda^{j-1} for j >= 1 and 0 at j = 0, from the powers P (..., L, n)."""
    from linrnn.verify.backend import array_namespace

    xp = array_namespace(P)
    return xp.concat([xp.zeros_like(P[..., :1, :]), P[..., :-1, :]], axis=-2)


def full_layout(K: np.ndarray, n_out: int, n_in: int) -> np.ndarray:
    """A scalar lag kernel K (L, L) in the layout (L, n_y, n_x, L, n_y, n_x), times delta_aa' delta_bb'."""
    return np.einsum("jk,ac,bd->jabkcd", K, np.eye(n_out), np.eye(n_in))


@dataclass(frozen=True)
class DiagonalDraw:
    """Parameters of one draw (or a batch) of the diagonal family: c (..., n_y, n), b (..., n, n_x), lam (..., n),
    complex arrays of one namespace."""

    c: Any
    b: Any
    lam: Any
    spec: DiagonalSpec


def _radius(model: Any, lags: int) -> dict[str, np.ndarray]:
    return model.kernel(lags, radial_law="radius")


def _forced_diagonal(model: Any, lags: int) -> dict[str, np.ndarray]:
    k = model.kernel(lags)
    mask = np.eye(lags)[:, None, None, :, None, None]
    return {name: k[name] * mask for name in ("ntk", "nngp")}


#: The negative controls of every diagonal family's kernels (:class:`linrnn.verify.kernel_check.Control`).
RING_CONTROLS = (
    Control("radius", "the kernels derived with |lambda| uniform on [r_min, r_max] (instead of |lambda|^2)", _radius),
    Control("forced_diagonal", "the derived kernels with every entry j != k set to 0", _forced_diagonal),
)


@dataclass(frozen=True)
class RingModel:
    """What the diagonal families' models share: ``name``, ``kernel``, ``kernel_fn``, ``unit_kernel``,
    ``derivation`` (from the derived unit kernel) and the check of a draw.

    A subclass sets ``DRAW`` (its draw class, with the article the sentences use),
    ``DERIVATION`` (the module whose ``kernel_derivation(radial_law)`` derives its unit kernel)
    and ``TRAINED`` (the trained fields of its draw with their multipliers), and gives ``init``,
    ``impulse``, ``empirical_ntk``, ``eigenvalues`` and ``impulse_vjp`` (the training step is
    shared: ``loss_and_grad``, ``step``, ``train``).
    """

    spec: Any
    DRAW: ClassVar[tuple[type, str]]
    DERIVATION: ClassVar[str]
    TRAINED: ClassVar[tuple[tuple[str, str], ...]]
    #: the module of the family's training claim (``linrnn verify train`` runs its width sweep), or None
    TRAINING_CLAIM: ClassVar[str | None] = None

    #: What makes every control differ from the theory (the remedy of a refused setting).
    CONTROL_REMEDY: ClassVar[str] = ("choose r_min < r_max and a theta_max at which the lags correlate (not a "
                                     "multiple of pi)")

    @property
    def name(self) -> str:
        return self.spec.family

    def kernel_controls(self) -> tuple[Control, ...]:
        """The negative controls of :meth:`kernel` (:mod:`linrnn.verify.kernel_check`): the wrong radial law and
        the kernels forced diagonal (a family adds its own)."""
        return RING_CONTROLS

    def describe_law(self) -> str:
        """The initialisation law's settings, as a refusal names them."""
        s = self.spec
        return f"r_min = {s.r_min:g}, r_max = {s.r_max:g}, theta_max = {s.theta_max:g}"

    def bytes_per_draw(self, width: int, lags: int) -> int:
        """Peak bytes of one draw's lag NTK and impulse response: the powers, gradients and their products
        (complex, (L n_y n_x) x n, a few copies) and the lag NTK (L n_y n_x)^2, float64 and complex128; never an
        n x n array."""
        m = lags * self.spec.n_in * self.spec.n_out
        return 16 * (8 * m * width + 2 * m * m) + 16 * width * (self.spec.n_in + self.spec.n_out + 4)

    def kernel(self, lags: int, radial_law: str = "area") -> dict[str, np.ndarray]:
        """The derived lag NTK and NNGP, float64, in the layout of :meth:`empirical_ntk` (exact at every width).

        ``radial_law``: ``"area"`` (the family's law) or ``"radius"`` (|lambda| uniform: a negative control).
        """
        from linrnn.families.diagonal.kernel import kernel_matrices

        K = kernel_matrices(self.unit_kernel(radial_law), self.spec, check_size("lags", lags))
        return {name: full_layout(K[name], self.spec.n_out, self.spec.n_in) for name in ("ntk", "nngp")}

    def kernel_fn(self, x1: Any, x2: Any = None, get: Any = ("nngp", "ntk")) -> Any:
        """The NNGP and NTK of the outputs on batches of sequences x1 (B1, T, n_x), x2 (B2, T, n_x).

        Theta(x, x')[t, t'] = sum_{j,k} x_{t-j} Theta_jk x'_{t'-k} from :meth:`kernel`, shape
        (B1, B2, T1, T2, n_y, n_y), as neural-tangents' ``kernel_fn`` (:mod:`linrnn.families.kernels`).
        """
        from linrnn.families.kernels import kernel_fn

        return kernel_fn(self, x1, x2, get)

    def unit_kernel(self, radial_law: str = "area") -> Any:
        """The derived closed forms (:class:`linrnn.families.diagonal.derivation.UnitKernel`)."""
        import importlib

        return importlib.import_module(self.DERIVATION).kernel_derivation(radial_law)

    def derivation(self) -> Any:
        """The SymPy derivation of the kernels (:class:`linrnn.derive.steps.Derivation`)."""
        return self.unit_kernel().steps

    def eigenvalues(self, params: Any) -> Any:
        """The eigenvalues lambda_i of a draw, complex (..., n)."""
        raise NotImplementedError

    def impulse_vjp(self, params: Any, gbar: Any) -> dict[str, Any]:
        """The gradient of a loss with dLoss/dL = ``gbar`` (lags, n_y, n_x) with respect to every trained parameter
        of one draw, by the recurrence's structure (:mod:`linrnn.families.diagonal.training`): {field: array of its
        shape}, a complex parameter's as dLoss/dRe + i dLoss/dIm."""
        raise NotImplementedError

    def loss_and_grad(self, params: Any, corr: Any, *, need_grads: bool = True) -> tuple[float, Any, Any]:
        """(Loss, L (lags, n_y, n_x), gradients or None) of one draw on the loss of the correlations ``corr``
        (:class:`linrnn.verify.train.Correlations`, every lag of the sequences)."""
        from linrnn.verify.train import impulse_loss_and_grad

        d = self._draw(params)
        if self.eigenvalues(d).ndim != 1:
            raise UsageError("gradient descent trains one draw at a time (init without batch)")
        if corr.lags != corr.seq_len:
            raise UsageError(f"training needs the correlations at every lag (lags = T = {corr.seq_len}), got lags "
                             f"= {corr.lags}")
        if (corr.n_y, corr.n_x) != (self.spec.n_out, self.spec.n_in):
            raise UsageError(f"the data have n_y = {corr.n_y}, n_x = {corr.n_x}; the model has n_out = "
                             f"{self.spec.n_out}, n_in = {self.spec.n_in}")
        L = self.impulse(d, corr.lags)
        loss, gbar = impulse_loss_and_grad(L, corr)
        return loss, L, (self.impulse_vjp(d, gbar) if need_grads else None)

    def step(self, params: Any, grads: dict[str, Any], lr: float) -> Any:
        """One step P <- P - lr eta_P dLoss/dP of every trained parameter P (``TRAINED``: field, multiplier)."""
        import dataclasses

        d = self._draw(params)
        new = {}
        for field_name, mult in self.TRAINED:
            eta = float(getattr(self.spec, mult))
            if eta:
                new[field_name] = getattr(d, field_name) - (lr * eta) * grads[field_name]
        return dataclasses.replace(d, **new)

    def train(self, params: Any, corr: Any, *, lr: float, steps: int) -> Any:
        """Full-batch gradient descent from ``params`` (:func:`linrnn.families.diagonal.training.train_ring`)."""
        from linrnn.families.diagonal.training import train_ring

        return train_ring(self, self._draw(params), corr, lr=lr, steps=steps)

    def _draw(self, params: Any) -> Any:
        kind, article = self.DRAW
        if not isinstance(params, kind):
            raise UsageError(f"params must be what init() returned ({article} {kind.__name__})")
        if params.spec != self.spec:
            raise UsageError(f"these parameters were drawn for {params.spec}, not for this model ({self.spec})")
        return params


@dataclass(frozen=True)
class DiagonalRNN(RingModel):
    """The diagonal family's model: ``init``, ``impulse``, ``empirical_ntk``, ``kernel``, ``derivation``."""

    spec: DiagonalSpec
    DRAW: ClassVar[tuple[type, str]] = (DiagonalDraw, "a")
    DERIVATION: ClassVar[str] = "linrnn.families.diagonal.derivation"
    TRAINED: ClassVar[tuple[tuple[str, str], ...]] = (("c", "lr_c"), ("b", "lr_f"), ("lam", "lr_w"))
    #: the claim ``linrnn verify train`` runs for this family (its width sweep)
    TRAINING_CLAIM: ClassVar[str | None] = "linrnn.families.diagonal.training_claim"

    def init(self, *, width: int, seed: int | None = 0, backend: Any = "numpy", batch: int | None = None) -> DiagonalDraw:
        """One draw at width ``width`` (or ``batch`` draws on a leading axis); ``backend`` a name seeded with
        ``seed`` or a :class:`linrnn.verify.backend.Backend` (its own generator)."""
        from linrnn.verify.backend import Backend, array_namespace, get_backend

        be = backend if isinstance(backend, Backend) else get_backend(backend, seed=seed)
        rho, phi, c, b = draw_ring(be, self.spec, width, batch)
        xp = array_namespace(rho)
        return DiagonalDraw(c=c, b=b, lam=as_complex(rho * xp.cos(phi), rho * xp.sin(phi)), spec=self.spec)

    def impulse(self, params: DiagonalDraw, lags: int) -> Any:
        """L_j = Re(sum_i c_i lambda_i^j b_i) / sqrt(n), j < ``lags``: shape (..., lags, n_y, n_x)."""
        d = self._draw(params)
        return unit_impulse(powers(d.lam, check_size("lags", lags)), d.c, d.b)

    def empirical_ntk(self, params: DiagonalDraw, lags: int) -> Any:
        """The exact lag NTK of the draw (trained: c, b, lambda): shape (..., lags, n_y, n_x, lags, n_y, n_x)."""
        d = self._draw(params)
        P = powers(d.lam, check_size("lags", lags))
        s = self.spec
        if s.n_in == s.n_out == 1:
            return scalar_ntk(P, d.c, d.b, s.lr_c, s.lr_f, s.lr_w)
        D = lag_index(P) * shifted(P)  # d lambda^j / d lambda = j lambda^{j-1}
        return unit_ntk(P, d.c, d.b, s.lr_c, s.lr_f, [(s.lr_w, D, False)])

    def eigenvalues(self, params: DiagonalDraw) -> Any:
        """lambda_i, complex (..., n)."""
        return self._draw(params).lam

    def impulse_vjp(self, params: DiagonalDraw, gbar: Any) -> dict[str, Any]:
        """dLoss/dc, dLoss/db, dLoss/dlambda (complex, dLoss/dRe + i dLoss/dIm) of one draw from dLoss/dL = ``gbar``:
        the lag sums of lambda^j and of j lambda^{j-1} (:mod:`linrnn.families.diagonal.training`), O(n L)."""
        from linrnn.families.diagonal.training import channel_sum, lag_sums, readout_grads
        from linrnn.verify.backend import array_namespace

        d = self._draw(params)
        xp = array_namespace(d.lam)
        P = powers(d.lam, gbar.shape[0])
        gc, gb = readout_grads(lag_sums(gbar, P), d.c, d.b)
        H = lag_sums(gbar, lag_index(P) * shifted(P))
        return {"c": gc, "b": gb, "lam": xp.conj(channel_sum(d.c, d.b, H)) / math.sqrt(d.lam.shape[-1])}

    def empirical_ntk_and_impulse(self, params: DiagonalDraw, lags: int) -> tuple[Any, Any]:
        """:meth:`empirical_ntk` and :meth:`impulse` of the draw from one set of powers."""
        d = self._draw(params)
        s = self.spec
        if not s.n_in == s.n_out == 1:
            return self.empirical_ntk(d, lags), self.impulse(d, lags)
        P = powers(d.lam, check_size("lags", lags))
        return (scalar_ntk(P, d.c, d.b, s.lr_c, s.lr_f, s.lr_w),
                scalar_impulse(P * (d.c[..., 0, :] * d.b[..., :, 0])[..., None, :]))


def make(**params: Any) -> DiagonalRNN:
    """A diagonal RNN with the :class:`~linrnn.families.diagonal.spec.DiagonalSpec` fields ``params``."""
    return DiagonalRNN(DiagonalSpec.from_mapping(params, where="the diagonal family's parameters"))
