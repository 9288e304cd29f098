"""The lag NTK of a linear RNN with JAX: vjp+jvp (vmapped) and neural-tangents' structured kernel.

Shared by ``benchmarks/bench_ntk_jax.py`` (JAX 0.10, in the project's environment) and run as a
script by it in a separate environment for neural-tangents 0.6.5 (which imports only with
JAX 0.4.23):

    python benchmarks/peers/jax_ntk.py DRAW.npz OUT.json --lags L --repeats R --impl nt3

The model is the ``ntk`` parameterization (raw entries N(0, 1), W_e = sqrt(q / n) W,
F_e = sqrt(sigma_F^2 / n_x) F, C_e = sqrt(sigma_C^2 / n) C, eta = 1): the impulse response
L_j = C_e W_e^j F_e (j < L) as a ``lax.scan`` over the lags, and Theta = J J^T with J the
Jacobian of L with respect to the raw (C, F, W).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def impulse_fn(lags: int, n: int, q: float, sf: float = 1.0, sc: float = 1.0, nx: int = 1):
    import jax
    import jax.numpy as jnp

    aw, af, ac = (q / n) ** 0.5, (sf / nx) ** 0.5, (sc / n) ** 0.5

    def impulse(params):
        We, Fe, Ce = aw * params["W"], af * params["F"], ac * params["C"]

        def step(v, _):
            return We @ v, (Ce @ v)[0, 0]

        _, out = jax.lax.scan(step, Fe, None, length=lags)
        return out  # (lags,)

    return impulse


def vjp_jvp_ntk(lags: int, n: int, q: float):
    """Theta = J J^T column by column: e_i -> J^T e_i (vjp) -> J J^T e_i (jvp), vmapped over i, jitted."""
    import jax
    import jax.numpy as jnp

    f = impulse_fn(lags, n, q)

    @jax.jit
    def ntk(params):
        _, pullback = jax.vjp(f, params)

        def column(e):
            (g,) = pullback(e)
            return jax.jvp(f, (params,), (g,))[1]

        return jax.vmap(column)(jnp.eye(lags, dtype=params["W"].dtype))

    return ntk


def nt_ntk(lags: int, n: int, q: float, implementation: int = 3):
    """neural-tangents' empirical NTK (implementation 3: structured derivatives), jitted."""
    import jax
    import neural_tangents as nt

    f = impulse_fn(lags, n, q)

    def apply_fn(params, x):
        return f(params)[None, :] * x  # (1, lags); x is a (1, 1) array of ones

    kernel = nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=None,
                                 implementation=nt.NtkImplementation(implementation))
    x = np.ones((1, 1))
    fn = jax.jit(lambda params: kernel(x, None, params)[0, 0])
    return fn


def time_it(fn, params, repeats: int, progress: str | None = None) -> tuple[float, float, np.ndarray]:
    """(first call incl. compilation, best of ``repeats`` later calls, result); ``progress``: a file that gets
    the first call's time as soon as it is known (a caller that times out can still bound the later calls)."""
    t = time.perf_counter()
    out = np.asarray(fn(params).block_until_ready())
    first = time.perf_counter() - t
    if progress:
        with open(progress, "w") as fh:
            json.dump({"first_call_s": first, "repeats": repeats}, fh)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        out = np.asarray(fn(params).block_until_ready())
        best = min(best, time.perf_counter() - t)
    return first, best, out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("draw")
    p.add_argument("out")
    p.add_argument("--lags", type=int, required=True)
    p.add_argument("--q", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--impl", choices=("nt3", "vjp_jvp"), default="nt3")
    p.add_argument("--progress", default=None, help="file that gets the first call's time as soon as it is known")
    args = p.parse_args()
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    d = np.load(args.draw)
    params = {k: jnp.asarray(d[k], dtype=jnp.float64) for k in ("C", "F", "W")}
    n = d["W"].shape[0]
    fn = nt_ntk(args.lags, n, args.q) if args.impl == "nt3" else vjp_jvp_ntk(args.lags, n, args.q)
    first, best, out = time_it(fn, params, args.repeats, args.progress)
    versions = {"jax": jax.__version__}
    try:
        import neural_tangents as nt

        versions["neural_tangents"] = getattr(nt, "__version__", None)
    except ImportError:
        pass
    np.save(args.out + ".npy", out)
    with open(args.out, "w") as fh:
        json.dump({"first_call_s": first, "best_s": best, "versions": versions, "impl": args.impl}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
