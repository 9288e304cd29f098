"""Monte Carlo over independent draws: the lag NTK and the NNGP of wide linear RNNs.

For R draws at width n, each draw gives its exact lag NTK Theta_r (shape
(L, n_y, n_x, L, n_y, n_x), :func:`linrnn.verify.ntk.lag_ntk_from_krylov`) and its initial
impulse response L_r (shape (L, n_y, n_x)). We accumulate, in float64:

* the mean and standard error of every entry of Theta;
* the mean and standard error of every entry of the second-moment tensor
  P_r[(i,a,b),(j,a',b')] = L_r,i[a,b] L_r,j[a',b'], whose mean is the NNGP
  covariance of L(0) across lags, outputs and inputs (E L(0) = 0 exactly, by the
  symmetry C -> -C, so the uncentred estimator is the unbiased one);
* for each theory array T given, the per-draw relative error
  e_r = ||Theta_r - T||_F / ||T||_F (its mean and standard error), used for rates.

Draws are batched and chunked: a chunk of r draws holds r copies of W and the
per-draw work arrays (:func:`bytes_per_draw`), and r is the largest count that fits
``max_memory`` (NumPy additionally caps a chunk at 16 MB, :data:`CPU_CHUNK_BYTES`, so
that the chunk's matrices stay in cache across the passes; batching on a CPU only
saves Python overhead). Random numbers come from independent streams per draw and
per block of rows of W (:mod:`linrnn.verify.draws`, ``numpy.random.SeedSequence``
spawning keyed by (seed, n, draw, block)), filled by ``workers`` threads: the next
chunk is drawn by helper threads while the current one is processed (when the
budget holds both), and the calling thread fills what is left when it needs the
chunk. So both cores generate, the time per draw approaches the larger of drawing
with both cores and the passes over W, and the numbers, hence the results, do not
depend on the number of workers, on the chunk size, on the other widths of a sweep
or on the order in which they run. BLAS is held to one thread on NumPy: the passes
are memory-bound matrix-vector products, one thread streams W nearly as fast as
many, and spare threads would only compete with the generators (on a shared machine
a spinning BLAS pool slows a matrix-vector product by several times).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from linrnn.core.errors import UsageError
from linrnn.verify.backend import Backend, array_namespace
from linrnn.core.spec import ModelSpec
from linrnn.core.validate import check_size
from linrnn.verify.ntk import lag_ntk_and_impulse, split_point_items
from linrnn.core.machine import default_workers
from linrnn.verify.draws import DrawMaker
from linrnn.core.validate import parse_memory  # noqa: F401  (re-exported: verify's callers use it)
from linrnn.verify.threads import blas_threads
from linrnn.verify.stats import Moments

#: NumPy chunks stay within this many bytes, so that a chunk's W stays in the last-level
#: cache across its 2 (lags - 1) passes (the L3 of current server CPUs is 32 MB or more).
CPU_CHUNK_BYTES = 16 * 10**6


def bytes_per_draw(n: int, n_in: int, n_out: int, lags: int, itemsize: int, theories: int = 0) -> int:
    """Peak working memory of one draw in a chunk (bytes), an upper estimate.

    In the working dtype: W, F, C, (n^2 + n (n_x + n_y)) items; the Krylov vectors and
    their transposed copy, (lags + 2) n (n_x + n_y); the split-point sum of the W-part,
    :func:`linrnn.verify.ntk.split_point_items` (O(lags^2 n_x^2 n_y^2): the tilted FFT
    convolution, or the exact sum's Toeplitz blocks); the lag NTK and its parts, 4 M^2
    with M = lags n_x n_y. In float64: the NTK and NNGP second moment, their deviations
    from the chunk mean, and the relative errors against each theory, (4 + 2 theories) M^2.
    """
    M2 = (lags * n_in * n_out) ** 2
    working = n * n + n * (n_in + n_out) * (lags + 2) + split_point_items(lags, n_in, n_out) + 4 * M2
    return int(working * itemsize + 8 * (4 + 2 * theories) * M2)


def chunk_size(per_draw: int, max_memory: int, replicas: int, backend_name: str, *, n: int,
               flag: str = "--max-memory") -> int:
    """Draws per chunk: as many as fit ``max_memory`` (and :data:`CPU_CHUNK_BYTES` on NumPy), at most ``replicas``.

    One draw that does not fit is a :class:`UsageError` whose sentence names ``flag``,
    the setting that raises the budget where the caller reads it.
    """
    if per_draw > max_memory:
        from linrnn.core.validate import format_bytes

        raise UsageError(
            f"one draw at width {n} needs about {format_bytes(per_draw)} of memory, beyond the budget of "
            f"{format_bytes(max_memory)}; raise {flag} or lower the width or the lags"
        )
    budget = max_memory if backend_name != "numpy" else min(max_memory, CPU_CHUNK_BYTES)
    return max(1, min(replicas, budget // per_draw))


def stream_seed(seed: int | None, n: int, stream: int) -> int | None:
    """An integer seed for generator ``stream`` (0: W, 1: F, 2: C) at width n, from ``seed``."""
    if seed is None:
        return None
    state = np.random.SeedSequence([int(seed), int(n), int(stream)]).generate_state(2, dtype=np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


@dataclass
class WidthEstimate:
    """Monte Carlo results at one width (NumPy float64 arrays on the host)."""

    n: int
    replicas: int
    ntk_mean: np.ndarray
    ntk_stderr: np.ndarray
    nngp_mean: np.ndarray
    nngp_stderr: np.ndarray
    rel_error_mean: dict[str, float] = field(default_factory=dict)
    rel_error_stderr: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    chunk: int = 1
    prefetch: bool = False
    workers: int = 1
    first_draw: dict[str, np.ndarray] | None = None


def estimate_width(
    backend: Backend,
    spec: ModelSpec,
    n: int,
    *,
    lags: int,
    replicas: int,
    max_memory: int = 4 * 10**9,
    theories: Mapping[str, np.ndarray] | None = None,
    keep_first: bool = False,
    on_chunk: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> WidthEstimate:
    """Mean and standard error of the lag NTK and of the NNGP second moment over ``replicas`` draws.

    ``theories`` maps names to arrays of the lag-NTK shape; for each, the per-draw
    relative Frobenius error is averaged (module docstring). ``keep_first`` keeps the
    raw W, F, C and the lag NTK of the first draw (host copies). ``on_chunk(r)`` is
    called after every chunk of r draws (for a progress bar). ``workers`` threads draw the
    random numbers (default min(2, cores)); draw r's numbers come from streams of its own
    (:mod:`linrnn.verify.draws`), so the result does not depend on ``workers`` or on the chunking.
    """
    n, lags = check_size("width n", n), check_size("lags", lags)
    n_in, n_out = spec.n_in, spec.n_out
    replicas = check_size("replicas", replicas, 2)
    theories = dict(theories or {})
    itemsize = backend.itemsize
    per_draw = bytes_per_draw(n, n_in, n_out, lags, itemsize, len(theories))
    chunk_size(per_draw, max_memory, replicas, backend.name, n=n)  # raises if one draw does not fit
    # the next chunk is drawn (by the helper threads) while this one is processed, when the
    # budget holds the next chunk's parameters as well
    in_flight = (n * n + n * (n_in + n_out)) * itemsize
    pipelined = backend.name != "cupy" and per_draw + in_flight <= max_memory
    chunk = chunk_size(per_draw + in_flight if pipelined else per_draw, max_memory, replicas, backend.name, n=n)
    workers = default_workers() if workers is None else check_size("workers", workers)

    # theory arrays come from the host (linrnn.derive); their flat float64 copies go to the device once
    dev_theories = {name: backend.asarray(np.reshape(np.asarray(t), (-1,)), dtype="float64") for name, t in theories.items()}
    theory_norms = {name: float(np.linalg.norm(np.asarray(t))) for name, t in theories.items()}
    ntk_m, nngp_m = Moments(), Moments()
    rel = {name: Moments() for name in theories}
    first: dict[str, np.ndarray] | None = None
    M = lags * n_out * n_in
    t0 = time.perf_counter()
    with blas_threads(1) if backend.name == "numpy" else nullcontext(), DrawMaker(backend, spec, n, workers=workers) as maker:
        pending: Any = maker.start(0, min(chunk, replicas))
        while pending is not None:
            current = pending
            draw = maker.finish(current)
            after = current.first + current.count
            pending = maker.start(after, min(chunk, replicas - after)) if after < replicas else None
            r = int(draw.W.shape[0])
            theta, L = lag_ntk_and_impulse(draw, lags)
            xp = array_namespace(theta)
            theta64 = xp.astype(xp.reshape(theta, (r, M * M)), xp.float64)
            L64 = xp.astype(xp.reshape(L, (r, M)), xp.float64)
            second = L64[:, :, None] * L64[:, None, :]
            # chunk summaries on the device; only their (M^2,) means and sums of squares cross to the host
            for acc, values in ((ntk_m, theta64), (nngp_m, xp.reshape(second, (r, M * M)))):
                mean = xp.mean(values, axis=0)
                m2 = xp.sum((values - mean) ** 2, axis=0)
                acc.add_summary(r, backend.to_numpy(mean), backend.to_numpy(m2))
            for name, t in dev_theories.items():
                errs = xp.sqrt(xp.sum((theta64 - t) ** 2, axis=1)) / theory_norms[name]
                rel[name].add(backend.to_numpy(errs))
            if keep_first and first is None:
                first = {
                    "W": backend.to_numpy(draw.W[0, ...]).copy(),
                    "F": backend.to_numpy(draw.F[0, ...]).copy(),
                    "C": backend.to_numpy(draw.C[0, ...]).copy(),
                    "ntk": backend.to_numpy(theta[0, ...]).copy(),
                }
            del draw, theta, L, theta64, L64, second
            maker.recycle(current)
            if on_chunk is not None:
                on_chunk(r)
    backend.synchronize()
    shape = (lags, n_out, n_in, lags, n_out, n_in)
    assert ntk_m.mean is not None and nngp_m.mean is not None
    return WidthEstimate(
        n=n,
        replicas=replicas,
        ntk_mean=ntk_m.mean.reshape(shape),
        ntk_stderr=ntk_m.stderr.reshape(shape),
        nngp_mean=nngp_m.mean.reshape(shape),
        nngp_stderr=nngp_m.stderr.reshape(shape),
        rel_error_mean={k: float(v.mean) for k, v in rel.items()},  # type: ignore[arg-type]
        rel_error_stderr={k: float(v.stderr) for k, v in rel.items()},
        seconds=time.perf_counter() - t0,
        chunk=chunk,
        prefetch=pipelined and workers > 1,
        workers=workers,
        first_draw=first,
    )
