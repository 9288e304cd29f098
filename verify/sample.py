"""Sampling linear RNNs and their Krylov vectors and impulse responses.

Conventions (``docs/conventions.md``; the scales are :meth:`linrnn.core.spec.ModelSpec.scales`): parameters C (n_y x n), F (n x n_x),
W (n x n); effective matrices C_e = alpha_C C, F_e = alpha_F F, W_e = alpha_W W with

* ``ntk``:      raw entries iid N(0, 1), alpha_C = sigma_C / sqrt(n),
  alpha_F = sigma_F / sqrt(n_x), alpha_W = sigma_W / sqrt(n);
* ``standard``: the raw parameters are the effective matrices (all alphas are 1),
  drawn entrywise C ~ N(0, sigma_C^2 / n), F ~ N(0, sigma_F^2 / n_x),
  W ~ N(0, sigma_W^2 / n).

The impulse response (Markov parameters) is L_j = C_e W_e^j F_e, j = 0 .. lags-1,
an array of shape (lags, n_y, n_x). Everything here works on a leading batch axis
of independent draws as well, and uses only the Array API standard (the namespace of
the input arrays, :func:`linrnn.verify.backend.array_namespace`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from linrnn.core.errors import UsageError
from linrnn.core.spec import ModelSpec
from linrnn.core.validate import check_size
from linrnn.verify.backend import Backend, array_namespace, get_backend

@dataclass(frozen=True)
class RNNDraw:
    """Raw parameters of one draw (or a batch of draws along a leading axis), with the spec that defines them.

    ``W``: (..., n, n), ``F``: (..., n, n_x), ``C``: (..., n_y, n), raw parameters in
    the parameterization of ``spec`` (whose variances define the effective matrices).
    """

    W: Any
    F: Any
    C: Any
    spec: ModelSpec

    def __post_init__(self) -> None:
        shapes = {name: tuple(getattr(a, "shape", ())) for name, a in (("W", self.W), ("F", self.F), ("C", self.C))}
        if any(len(sh) < 2 for sh in shapes.values()):
            raise UsageError(f"W, F and C must be matrices (with an optional batch axis), got shapes {shapes}")
        n = shapes["W"][-1]
        if shapes["W"][-2] != n:
            raise UsageError(f"W must be a square (n, n) matrix, got shape {shapes['W']}")
        if shapes["F"][-2] != n or shapes["C"][-1] != n:
            raise UsageError(f"F must have shape (n, n_x) and C shape (n_y, n) with n = {n} from W, "
                             f"got F {shapes['F']} and C {shapes['C']}")
        if not (shapes["W"][:-2] == shapes["F"][:-2] == shapes["C"][:-2]):
            raise UsageError(f"W, F and C must have the same batch axes, got shapes {shapes}")
        if (shapes["F"][-1], shapes["C"][-2]) != (self.spec.n_in, self.spec.n_out):
            raise UsageError(f"F {shapes['F']} and C {shapes['C']} do not match the spec's n_in = {self.spec.n_in} "
                             f"and n_out = {self.spec.n_out}")

    @property
    def n(self) -> int:
        return int(self.W.shape[-1])

    @property
    def n_in(self) -> int:
        return int(self.F.shape[-1])

    @property
    def n_out(self) -> int:
        return int(self.C.shape[-2])

    def scales(self) -> tuple[float, float, float]:
        """(alpha_C, alpha_F, alpha_W) of this draw: :meth:`ModelSpec.scales` at its width."""
        return self.spec.scales(self.n)


def sample_rnn(
    backend: Backend | str,
    spec: ModelSpec,
    n: int,
    *,
    batch: int | None = None,
    streams: Sequence[Backend] | None = None,
    seed: int | None = None,
) -> RNNDraw:
    """Draw the raw parameters of ``batch`` independent linear RNNs of ``spec`` at width ``n`` (one if None).

    ``backend`` is a :class:`Backend` or the name of one (``"numpy"``, ``"cupy"``,
    ``"auto"``), in which case it is made with ``seed`` (0 if None); ``seed`` is
    refused beside a Backend object, which carries its own generator.

    W comes from iid N(0, std_W^2) entries mapped by the family's :meth:`ModelSpec.transition`
    (the Gaussian family keeps them). The backend's seeded generator draws W, then F, then C, each as one array
    (with the batch axis first), in the backend's dtype. With ``streams`` (three
    backends of the same namespace) W, F and C come from ``streams[0]``, ``[1]``
    and ``[2]``, so that a batch of r draws equals r single draws in sequence.
    """
    if isinstance(backend, str):
        backend = get_backend(backend, seed=0 if seed is None else seed)
    elif seed is not None:
        raise UsageError("seed is given by the Backend object's generator; pass seed only with a backend name")
    n = check_size("width n", n)
    std_c, std_f, std_w = spec.raw_stds(n)
    lead: tuple[int, ...] = () if batch is None else (check_size("batch", batch),)
    gen_w, gen_f, gen_c = (backend, backend, backend) if streams is None else tuple(streams)
    W = spec.transition(gen_w.normal(lead + (n, n), std_w))  # the family's law of W (Gaussian: as drawn)
    F = gen_f.normal(lead + (n, spec.n_in), std_f)
    C = gen_c.normal(lead + (spec.n_out, n), std_c)
    return RNNDraw(W, F, C, spec)


def _krylov(W: Any, start: Any, lags: int, scale: float, *, rows: bool) -> Any:
    """Krylov sequences of W without transposing it, shape (..., lags, k, n).

    ``rows``: x_0 = start (..., k, n) and x_{m+1} = scale * x_m W (row vectors, i.e.
    columns of (W^T)^m start^T). Otherwise x_0 = start (..., n, k) and
    x_{m+1} = scale * W x_m (column vectors), returned transposed to (..., lags, k, n).
    W is only ever the left or right factor as stored, so no backend has to copy a
    transposed view of it. Each step is a fresh product, scaled in place; the steps
    are joined by one concatenation at the end (the Array API has no ``out=``; this
    copies O(lags n k) numbers, small against the 2 (lags - 1) passes over the n x n
    matrix W), and column vectors are transposed into rows by one row-major reshape.
    """
    xp = array_namespace(W)
    steps = [start]
    x = start
    for _ in range(1, lags):
        x = x @ W if rows else W @ x
        x *= scale  # in place: the product is a fresh array
        steps.append(x)
    lead, (a, b) = tuple(start.shape[:-2]), tuple(start.shape[-2:])
    if rows:  # (..., lags k, n) -> (..., lags, k, n), a view
        return xp.reshape(xp.concat(steps, axis=-2), lead + (lags, a, b))
    # (..., n, lags k) -> rows (..., lags k, n), copied in row-major order -> (..., lags, k, n)
    Y = xp.matrix_transpose(xp.concat(steps, axis=-1))
    return xp.reshape(xp.reshape(Y, lead + (lags * b * a,)), lead + (lags, b, a))


def krylov_vectors(draw: RNNDraw, lags: int) -> tuple[Any, Any]:
    """The Krylov vectors v_m^b = W_e^m f_b and u_k^a = (W_e^T)^k c_a, m, k = 0 .. lags-1.

    f_b is column b of F_e and c_a is row a of C_e (as a column). Returns ``V`` of
    shape (..., lags, n_x, n) and ``U`` of shape (..., lags, n_y, n), vectors along the
    last axis: v_m = W_e v_{m-1} as columns, u_k^T = u_{k-1}^T W_e as rows.
    Cost: 2 (lags - 1) passes over W, i.e. O(lags n^2 (n_x + n_y)). The scale
    alpha_W is applied to the vectors, never to W, so W is neither copied nor changed.
    """
    lags = check_size("lags", lags)
    a_c, a_f, a_w = draw.scales()
    V = _krylov(draw.W, draw.F * a_f, lags, a_w, rows=False)
    U = _krylov(draw.W, draw.C * a_c, lags, a_w, rows=True)
    return V, U


def impulse_response_from_krylov(V: Any, C_e: Any) -> Any:
    """L_j[a, b] = <c_a, v_j^b>: (..., lags, n_x, n) and C_e (..., n_y, n) -> (..., lags, n_y, n_x)."""
    return C_e[..., None, :, :] @ array_namespace(V).matrix_transpose(V)


def impulse_response(draw: RNNDraw, lags: int) -> Any:
    """L_j = C_e W_e^j F_e for j = 0 .. lags-1, shape (..., lags, n_y, n_x).

    Uses only the forward Krylov vectors v_j (lags - 1 passes over W).
    """
    lags = check_size("lags", lags)
    a_c, a_f, a_w = draw.scales()
    V = _krylov(draw.W, draw.F * a_f, lags, a_w, rows=False)
    return impulse_response_from_krylov(V, draw.C * a_c)
