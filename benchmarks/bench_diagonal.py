"""The diagonal families' empirical lag NTK against the matrix product it is made of (issue 19, item 8).

A diagonal family's exact lag NTK of one draw is a sum over units of products of per-unit
lag vectors: for n units and L lags, products of (L x n) and (n x L) arrays, O(n L^2),
never an n x n matrix. The baseline is ONE complex (L x n) @ (n x L) product at the same
sizes; the issue's target is that the empirical NTK costs within 2x of it
(``ratio`` = baseline seconds / subject seconds >= 0.5).

Cases ``diagonal_ntk`` and ``lru_ntk``: n = 4096, L = 256 (quick: n = 512, L = 64), best of
several runs after a warm-up, in one process, the subject and the baseline one after the
other; ``detail.one_blas_thread``: the same pair with one BLAS thread (the NTK's elementwise
work runs on one core either way). Cases ``diagonal_step`` and ``lru_step``: one training step
(``model.loss_and_grad`` on the lagged correlations of 16 white sequences of L steps, then
``model.step``: the structured gradient, O(n L) lag sums) against the same product; the
issue's target for the step is the same (within 2x of the product). Run: ``python benchmarks/bench_diagonal.py [--quick]``; the harness
(``benchmarks/run.py``) calls :func:`cases`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


def cases(quick: bool = False) -> list[dict[str, Any]]:
    import linrnn
    from linrnn.verify.threads import blas_threads

    n, L = (512, 64) if quick else (4096, 256)
    repeats = 3 if quick else 5
    rng = np.random.default_rng(0)
    A = rng.standard_normal((L, n)) + 1j * rng.standard_normal((L, n))
    B = rng.standard_normal((n, L)) + 1j * rng.standard_normal((n, L))
    base, _ = harness.best_time(lambda: A @ B, repeats)
    with blas_threads(1):  # the same pair with one BLAS thread: a shared machine's spinning threads left out
        base1, _ = harness.best_time(lambda: A @ B, repeats)
    out = []
    for name in ("diagonal", "lru"):
        model = linrnn.family(name)
        params = model.init(width=n, seed=1)
        t, theta = harness.best_time(lambda: model.empirical_ntk(params, L), repeats)
        with blas_threads(1):
            t1, _ = harness.best_time(lambda: model.empirical_ntk(params, L), repeats)
        theta = np.asarray(theta).reshape(L, L)
        detail = {"n": n, "lags": L, "symmetric": bool(np.allclose(theta, theta.T)),
                  "finite": bool(np.all(np.isfinite(theta))),
                  "one_blas_thread": {"subject": t1, "baseline": base1, "ratio": base1 / t1}}
        out.append(harness.case(f"{name}_ntk", subject=f"{name} empirical lag NTK (one draw)",
                                baseline="one complex (L x n) @ (n x L) product", seconds={"subject": t, "baseline": base},
                                target=0.5, command=f"python benchmarks/bench_diagonal.py{' --quick' if quick else ''}",
                                detail=detail))
    from linrnn.verify.teachers import white_inputs
    from linrnn.verify.backend import get_backend
    from linrnn.verify.train import lagged_correlations

    be = get_backend("numpy", seed=2)
    x = white_inputs(16, L, 1, be)
    y = np.cumsum(np.asarray(x), axis=1) * 0.1  # any target: the step's cost does not depend on it
    corr = lagged_correlations(x, y, L, "all", be)
    for name in ("diagonal", "lru"):
        model = linrnn.family(name)
        params = model.init(width=n, seed=1)

        def one_step() -> Any:
            _, _, grads = model.loss_and_grad(params, corr)
            return model.step(params, grads, 1e-3)

        t, _ = harness.best_time(one_step, repeats)
        with blas_threads(1):
            t1, _ = harness.best_time(one_step, repeats)
        out.append(harness.case(f"{name}_step", subject=f"{name} training step (loss, structured gradient, update)",
                                baseline="one complex (L x n) @ (n x L) product", seconds={"subject": t, "baseline": base},
                                target=0.5, command=f"python benchmarks/bench_diagonal.py{' --quick' if quick else ''}",
                                detail={"n": n, "lags": L, "sequences": 16,
                                        "one_blas_thread": {"subject": t1, "baseline": base1, "ratio": base1 / t1}}))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    for c in cases(args.quick):
        print(json.dumps(c))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
