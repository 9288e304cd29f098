"""Benchmark of the lag NTK: structured vs dense Jacobian, and Monte Carlo throughput vs the floor.

Every figure is a ratio measured in this one run (``python benchmarks/bench_ntk.py``):

1. ``empirical_lag_ntk`` (Krylov vectors, Gram tensors, split-point sum) against two
   references on the same draw, both forming the full Jacobian J of the impulse
   response w.r.t. all n^2 + n (n_x + n_y) raw parameters and then J diag(s eta) J^T
   (time ratio and relative agreement max|A - B| / max|B|):
   the reverse-mode autodiff Jacobian emulated in NumPy
   (:func:`linrnn.verify.reference.autodiff_lag_ntk`, one vector-Jacobian product per output,
   vectorised over outputs, dL/dW accumulated step by step: the issue's comparator)
   and the stronger dense-Jacobian reference (:func:`linrnn.verify.reference.dense_jacobian_lag_ntk`,
   the same sums of outer products as one matrix product per lag).
2. Monte Carlo throughput: seconds per draw of :func:`linrnn.verify.montecarlo.estimate_width`
   (median over repeated runs of ``--replicas`` draws)
   against this machine's floor for the work, the larger of (a) the time to draw
   the n x n random matrix with the backend's generator and (b) the time of the
   2 (lags - 1) memory passes over W that the Krylov vectors need, each pass timed
   as one matrix-vector product with W (the fastest streaming read of W available).
3. The effective memory bandwidth of the Krylov passes, 2 (lags - 1) n^2 itemsize /
   time, and on a GPU its fraction of the device's peak (memory clock x bus width).

Results go to ``benchmarks/results/bench_ntk_<backend>.json`` (or ``--out``).

For the suite (``python benchmarks/run.py``), :func:`cases` measures, side by side:

* ``lag_ntk_fft_vs_exact``: ``empirical_lag_ntk`` (the tilted FFT route of the W-part) against
  the same function with the exact split-point sum in one block, the algorithm before
  issue 11, at n = 512, L = 512 (target >= 50x), and their agreement relative to
  sqrt(Theta_ii Theta_jj);
* ``lag_ntk_L1024``: the time per draw at n = 512, L = 1024 against the budget of 0.5 s
  (ratio = 0.5 s / time, target >= 1);
* ``lag_ntk_vs_autodiff`` and ``lag_ntk_vs_dense_jacobian`` at n = 512, L = 32 (item 1 above);
* ``split_point_switch``: the route ``auto`` takes against the faster of the two routes,
  at short horizons and several n_x = n_y (ratio = chosen / fastest, target <= 2);
* ``montecarlo_floor``: ``linrnn verify ntk``'s per-draw time at n = 2048, L = 16
  (``estimate_width``, two workers) against the floor of both cores, the larger of drawing
  the n x n matrix with two generator streams in two threads and the 2 (L - 1) passes
  over W (target <= 1.2).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from linrnn.verify.backend import Backend, get_backend
from linrnn.core.spec import ModelSpec
from linrnn.verify.montecarlo import estimate_width
from linrnn.verify import ntk as ntk_mod
from linrnn.verify.ntk import empirical_lag_ntk
from linrnn.verify.reference import autodiff_lag_ntk, dense_jacobian_lag_ntk
from linrnn.verify.sample import RNNDraw, krylov_vectors, sample_rnn
from linrnn.verify.threads import blas_threads

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402


def timed(fn: Callable[[], Any], backend: Backend, repeats: int) -> tuple[float, Any]:
    """Median wall time of ``fn`` over ``repeats`` runs (after one warm-up), synchronised."""
    out = fn()
    backend.synchronize()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        backend.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def timed_best(fn: Callable[[], Any], backend: Backend, repeats: int) -> tuple[float, Any, str]:
    """:func:`timed` with the ambient BLAS thread pool and with one thread; the faster of the two.

    On a shared machine a multi-threaded BLAS can be several times slower than one
    thread; each contender (and the floor) is measured at its best setting.
    """
    if backend.name != "numpy":
        t_dev, out = timed(fn, backend, repeats)
        return t_dev, out, "device"
    # one thread first: an idle OpenBLAS pool keeps spinning for a while after a call
    with blas_threads(1):
        t_one, out = timed(fn, backend, repeats)
    t_many, out = timed(fn, backend, repeats)
    return (t_one, out, "1 BLAS thread") if t_one < t_many else (t_many, out, "default BLAS threads")


def peak_bandwidth(backend: Backend) -> float | None:
    """Theoretical device memory bandwidth in bytes/s (GPU only): 2 x memory clock x bus width."""
    if backend.name != "cupy":
        return None
    import cupy  # type: ignore[import-not-found]

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    return 2.0 * props["memoryClockRate"] * 1e3 * props["memoryBusWidth"] / 8


def bench_structured_vs_dense(backend: Backend, n: int, lags: int, repeats: int) -> dict[str, Any]:
    draw = sample_rnn(backend, ModelSpec(), n)
    host = RNNDraw(*(backend.to_numpy(a) for a in (draw.W, draw.F, draw.C)), draw.spec)
    t_fast, fast, how_fast = timed_best(lambda: empirical_lag_ntk(draw, lags), backend, 4 * repeats)
    cpu = get_backend("numpy")
    t_dense, dense, how_dense = timed_best(lambda: dense_jacobian_lag_ntk(host, lags), cpu, max(1, repeats // 2))
    t_auto, auto, how_auto = timed_best(lambda: autodiff_lag_ntk(host, lags), cpu, max(1, repeats // 5))
    fast = backend.to_numpy(fast)
    return {
        "n": n, "lags": lags, "n_x": 1, "n_y": 1, "dtype": backend.dtype_name,
        "structured_s": t_fast, "structured_backend": backend.name, "structured_setting": how_fast,
        "autodiff_s": t_auto, "autodiff_setting": how_auto,
        "autodiff_reference": "reverse-mode autodiff Jacobian emulated in NumPy (verify.reference.autodiff_lag_ntk)",
        "speedup_vs_autodiff": t_auto / t_fast,
        "agreement_vs_autodiff": float(np.max(np.abs(fast - auto)) / np.max(np.abs(auto))),
        "dense_jacobian_s": t_dense, "dense_jacobian_setting": how_dense,
        "dense_reference": "dense-Jacobian reference, one GEMM per lag (verify.reference.dense_jacobian_lag_ntk)",
        "speedup_vs_dense": t_dense / t_fast,
        "agreement_vs_dense": float(np.max(np.abs(fast - dense)) / np.max(np.abs(dense))),
    }


def bench_montecarlo(backend: Backend, n: int, lags: int, replicas: int, repeats: int) -> dict[str, Any]:
    # the Monte Carlo first, after a pause: an OpenBLAS pool used with several threads
    # just before keeps spinning for a while and would steal the cores it needs
    time.sleep(1.0)
    runs = []
    for _ in range(max(1, repeats // 2)):
        t0 = time.perf_counter()
        est = estimate_width(backend, ModelSpec(), n, lags=lags, replicas=replicas)
        backend.synchronize()
        runs.append((time.perf_counter() - t0) / replicas)
    per_draw = statistics.median(runs)
    # (a) drawing the n x n matrix
    t_draw, W = timed(lambda: backend.normal((n, n)), backend, repeats)
    # (b) one memory pass over W, timed as a matrix-vector product
    x = backend.normal((n, 1))
    t_pass, _, how_pass = timed_best(lambda: W @ x, backend, 20 * repeats)
    passes = 2 * (lags - 1)
    floor = max(t_draw, passes * t_pass)
    # the Krylov passes as the estimator runs them
    draw = RNNDraw(W, backend.normal((n, 1)), backend.normal((1, n)), ModelSpec())
    t_krylov, _, how_krylov = timed_best(lambda: krylov_vectors(draw, lags), backend, repeats)
    itemsize = backend.itemsize
    bandwidth = passes * n * n * itemsize / t_krylov
    peak = peak_bandwidth(backend)
    return {
        "n": n, "lags": lags, "replicas": replicas, "dtype": backend.dtype_name, "chunk": est.chunk, "drawing_in_worker_thread": est.prefetch,
        "seconds_per_draw": per_draw, "seconds_per_draw_runs": runs, "draw_matrix_s": t_draw, "one_pass_s": t_pass, "passes": passes,
        "passes_s": passes * t_pass, "pass_setting": how_pass, "krylov_setting": how_krylov, "floor_s": floor, "floor_is": "draw" if t_draw >= passes * t_pass else "passes",
        "ratio_to_floor": per_draw / floor, "krylov_s": t_krylov,
        "krylov_bandwidth_GBps": bandwidth / 1e9,
        "peak_bandwidth_GBps": None if peak is None else peak / 1e9,
        "bandwidth_fraction": None if peak is None else bandwidth / peak,
    }


def _rel_to_diagonal(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / sqrt(b_ii b_jj) (entries whose diagonals are normal numbers)."""
    K = int(round(np.sqrt(b.size)))
    d = np.abs(np.diagonal(b.reshape(K, K)))
    keep = d >= np.finfo(np.float64).smallest_normal / np.finfo(np.float64).eps
    norm = np.sqrt(d[:, None] * d[None, :])
    mask = keep[:, None] & keep[None, :]
    return float(np.max(np.abs(a - b).reshape(K, K)[mask] / norm[mask]))


def _one_block_exact(draw: RNNDraw, lags: int) -> Any:
    """empirical_lag_ntk with the exact split-point sum in one Toeplitz block: the algorithm before issue 11."""
    old = ntk_mod.EXACT_BLOCK_BYTES
    ntk_mod.EXACT_BLOCK_BYTES = 2**62
    try:
        return empirical_lag_ntk(draw, lags, method="exact")
    finally:
        ntk_mod.EXACT_BLOCK_BYTES = old


def case_fft_vs_exact(n: int, lags: int, repeats: int, command: str) -> dict[str, Any]:
    be = get_backend("numpy", seed=0)
    draw = sample_rnn(be, ModelSpec(), n)
    t_new, new = harness.best_time(lambda: empirical_lag_ntk(draw, lags), repeats)
    t_old, old = harness.best_time(lambda: _one_block_exact(draw, lags), max(1, repeats // 3), warmup=0)
    return harness.case(
        f"lag_ntk_fft_vs_exact_n{n}_L{lags}", subject="empirical_lag_ntk (tilted FFT route)",
        baseline="empirical_lag_ntk, exact split-point sum in one block (before issue 11)",
        seconds={"subject": t_new, "baseline": t_old}, target=50.0 if (n, lags) == (512, 512) else None, command=command,
        detail={"n": n, "lags": lags, "n_x": 1, "n_y": 1, "dtype": "float64", "q": 1.0,
                "agreement_rel_to_sqrt_diag": _rel_to_diagonal(new, old), "blas": "default threads"})


def case_budget(n: int, lags: int, repeats: int, command: str, budget: float = 0.5) -> dict[str, Any]:
    be = get_backend("numpy", seed=1)
    draw = sample_rnn(be, ModelSpec(sigma_w2=0.9), n)
    t, _ = harness.best_time(lambda: empirical_lag_ntk(draw, lags), repeats)
    return harness.case(
        f"lag_ntk_n{n}_L{lags}_budget", subject=f"empirical_lag_ntk at n = {n}, L = {lags}",
        baseline=f"budget {budget:g} s per draw (issue 11)", seconds={"subject": t, "baseline": budget},
        target=1.0, command=command, detail={"n": n, "lags": lags, "q": 0.9, "seconds_per_draw": t})


def cases_dense(n: int, lags: int, repeats: int, command: str) -> list[dict[str, Any]]:
    s = bench_structured_vs_dense(get_backend("numpy", seed=0), n, lags, repeats)
    det = {"n": n, "lags": lags, "dtype": "float64", "structured_setting": s["structured_setting"]}
    return [
        harness.case(f"lag_ntk_vs_autodiff_n{n}_L{lags}", subject="empirical_lag_ntk",
                     baseline="reverse-mode autodiff Jacobian NTK emulated in NumPy (verify.reference)",
                     seconds={"subject": s["structured_s"], "baseline": s["autodiff_s"]}, target=None, command=command,
                     detail={**det, "agreement": s["agreement_vs_autodiff"]}),
        harness.case(f"lag_ntk_vs_dense_jacobian_n{n}_L{lags}", subject="empirical_lag_ntk",
                     baseline="dense-Jacobian NTK, one GEMM per lag (verify.reference)",
                     seconds={"subject": s["structured_s"], "baseline": s["dense_jacobian_s"]}, target=None,
                     command=command, detail={**det, "agreement": s["agreement_vs_dense"]}),
    ]


def case_switch(configs: list[tuple[int, int]], repeats: int, command: str) -> dict[str, Any]:
    """The route ``auto`` takes against the faster route, at each (L, n_x = n_y); the worst ratio."""
    rows = []
    with blas_threads(1):
        for lags, k in configs:
            be = get_backend("numpy", seed=lags + k)
            V, U = krylov_vectors(sample_rnn(be, ModelSpec(n_in=k, n_out=k), 64), lags)
            Gu, Gv = ntk_mod.gram(U), ntk_mod.gram(V)
            t_exact, _ = harness.best_time(lambda: ntk_mod.split_point_sum_exact(Gu, Gv), repeats)
            t_fft, _ = harness.best_time(lambda: ntk_mod.split_point_sum_fft(Gu, Gv), repeats)
            t_auto, _ = harness.best_time(lambda: ntk_mod.split_point_sum(Gu, Gv), repeats)
            chosen = "exact" if ntk_mod._exact_cheaper(lags, k, k) else "fft"
            rows.append({"lags": lags, "n_x": k, "n_y": k, "exact_s": t_exact, "fft_s": t_fft, "auto_s": t_auto,
                         "chosen": chosen, "ratio": t_auto / min(t_exact, t_fft)})
    worst = max(rows, key=lambda r: r["ratio"])
    return harness.case(
        "split_point_switch", subject="split_point_sum(method='auto')", baseline="the faster of the exact and FFT routes",
        seconds={"subject": worst["auto_s"], "baseline": min(worst["exact_s"], worst["fft_s"])}, ratio=worst["ratio"],
        goal="<=", target=2.0, command=command, detail={"configs": rows, "worst": worst, "blas": "1 thread"})


def two_stream_draw(n: int, itemsize: int = 8) -> float:
    """Seconds to fill an n x n matrix with standard normals from two generators in two threads (best of 5)."""
    import threading

    W = np.empty((n, n), dtype=np.float64 if itemsize == 8 else np.float32)
    halves = ((0, n // 2), (n // 2, n))

    def once() -> None:
        gens = [np.random.default_rng(k) for k in range(2)]
        ts = [threading.Thread(target=g.standard_normal, kwargs={"dtype": W.dtype, "out": W[a:b]})
              for g, (a, b) in zip(gens, halves)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    return harness.best_time(once, 5)[0]


def case_montecarlo(n: int, lags: int, replicas: int, repeats: int, command: str) -> dict[str, Any]:
    """Per-draw time of the Monte Carlo against the floor of both cores, paired: each repeat times the
    Monte Carlo (2 workers, then 1) and right after it the floor's two parts, so that both see the same state
    of the machine (the pass over a 32 MB W moved by 1.5x between runs, with the L3 cache as large as W); the
    ratio is the median of the repeats' ratios."""
    be = get_backend("numpy", seed=0)
    time.sleep(1.0)  # an OpenBLAS pool used with several threads just before keeps spinning for a while
    per: dict[int, list[float]] = {2: [], 1: []}
    draws, pass_times, ratios = [], [], []
    passes = 2 * (lags - 1)
    for _ in range(repeats):
        for w in (2, 1):
            t0 = time.perf_counter()
            estimate_width(be, ModelSpec(), n, lags=lags, replicas=replicas, workers=w)
            per[w].append((time.perf_counter() - t0) / replicas)
        draws.append(two_stream_draw(n))
        W = be.normal((n, n))
        x = be.normal((n, 1))
        with blas_threads(1):
            pass_times.append(passes * harness.median_time(lambda: W @ x, 20))
        ratios.append(per[2][-1] / max(draws[-1], pass_times[-1]))
    t_draw2, t_passes = statistics.median(draws), statistics.median(pass_times)
    floor = max(t_draw2, t_passes)
    # the issue's floor lets the draw (both cores) and the passes (one core) overlap for free; the two compete for
    # the same two cores, so the work itself needs (2 draw + passes) / 2 at the least
    work_floor = max(floor, (2 * t_draw2 + t_passes) / 2)
    return harness.case(
        f"montecarlo_floor_n{n}_L{lags}", subject="estimate_width per draw, 2 workers (linrnn verify ntk)",
        baseline="floor of both cores: max(draw W with two streams, 2 (L-1) passes over W)",
        seconds={"subject": statistics.median(per[2]), "baseline": floor, "one_worker": statistics.median(per[1]),
                 "draw_two_streams": t_draw2, "passes": t_passes},
        ratio=statistics.median(ratios), goal="<=", target=1.2 if (n, lags) == (2048, 16) else None,
        command=command,
        detail={"n": n, "lags": lags, "replicas": replicas, "repeats": repeats,
                "floor_is": "draw" if t_draw2 >= t_passes else "passes", "ratio_is": "median of paired ratios",
                "paired_ratios": ratios, "per_draw_runs_2_workers": per[2], "per_draw_runs_1_worker": per[1],
                "floor_draw_runs": draws, "floor_passes_runs": pass_times, "floor_work_conserving": work_floor,
                "ratio_to_work_conserving_floor": statistics.median(per[2]) / work_floor})


def device_cases(quick: bool, backend_name: str) -> list[dict[str, Any]]:
    """On a device backend (``run.py --backend cupy``): the structured lag NTK against the dense-Jacobian
    reference on that backend, and the Monte Carlo per draw against its floor with the effective memory
    bandwidth of the Krylov passes as a fraction of the device's peak."""
    be = get_backend(backend_name, seed=0)
    cmd = f"python benchmarks/run.py --only ntk --backend {backend_name}" + (" --quick" if quick else "")
    n, lags = (128, 16) if quick else (512, 32)
    s = bench_structured_vs_dense(be, n, lags, 2 if quick else 5)
    out = [harness.case(
        f"lag_ntk_vs_dense_jacobian_n{n}_L{lags}_{backend_name}", subject=f"empirical_lag_ntk on {backend_name}",
        baseline=f"dense-Jacobian reference on {backend_name}",
        seconds={"subject": s["structured_s"], "baseline": s["dense_jacobian_s"]}, target=None, command=cmd,
        detail={k: v for k, v in s.items() if isinstance(v, (int, float, str, type(None)))})]
    for n_mc in ((256,) if quick else (1024, 4096, 8192)):
        m = bench_montecarlo(be, n_mc, 8 if quick else 16, 4 if quick else 16, 2 if quick else 3)
        out.append(harness.case(
            f"montecarlo_floor_n{n_mc}_L{m['lags']}_{backend_name}", subject=f"Monte Carlo per draw on {backend_name}",
            baseline="floor: drawing the matrix or the Krylov passes, whichever is larger",
            seconds={"subject": m["seconds_per_draw"], "limit": m["floor_s"]}, ratio=m["ratio_to_floor"], goal="<=",
            target=None, command=cmd,
            detail={k: v for k, v in m.items() if isinstance(v, (int, float, str, type(None)))}))
    return out


def cases(quick: bool, backend: str = "numpy") -> list[dict[str, Any]]:
    """The suite's NTK cases (module docstring); ``quick``: small sizes; ``backend``: see :func:`device_cases`."""
    if backend != "numpy":
        return device_cases(quick, backend)
    cmd = "python benchmarks/run.py --only ntk" + (" --quick" if quick else "")
    out: list[dict[str, Any]] = []
    if quick:
        out.append(case_fft_vs_exact(128, 96, 3, cmd))
        out.append(case_budget(128, 256, 2, cmd))
        out += cases_dense(128, 16, 2, cmd)
        out.append(case_switch([(16, 1), (64, 1)], 3, cmd))
        out.append(case_montecarlo(256, 8, 4, 1, cmd))
        return out
    out.append(case_fft_vs_exact(512, 512, 3, cmd))
    out.append(case_fft_vs_exact(512, 256, 5, cmd))
    out.append(case_budget(512, 1024, 3, cmd))
    out += cases_dense(512, 32, 5, cmd)
    out.append(case_switch([(8, 1), (16, 1), (32, 1), (64, 1), (16, 2), (32, 2), (16, 4), (32, 4), (48, 4)], 5, cmd))
    out.append(case_montecarlo(2048, 16, 16, 5, cmd))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("numpy", "cupy", "auto"), default="numpy")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--n-jac", type=int, default=512)
    p.add_argument("--lags-jac", type=int, default=32)
    p.add_argument("--n-mc", type=int, nargs="+", default=[1024])
    p.add_argument("--lags-mc", type=int, default=16)
    p.add_argument("--replicas", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    backend = get_backend(args.backend, seed=0, dtype=args.dtype)
    result: dict[str, Any] = {
        "schema": "linrnn-bias/bench-ntk/1",
        "backend": backend.describe(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1min_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "numpy": np.__version__,
        "command": "python benchmarks/bench_ntk.py " + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    s = bench_structured_vs_dense(backend, args.n_jac, args.lags_jac, args.repeats)
    result["structured_vs_dense"] = s
    print(f"lag NTK n={s['n']} lags={s['lags']} {s['dtype']}: structured {1e3 * s['structured_s']:.2f} ms "
          f"({s['structured_backend']}, {s['structured_setting']})")
    print(f"  vs reverse-mode autodiff Jacobian (NumPy emulation) {1e3 * s['autodiff_s']:.1f} ms: "
          f"{s['speedup_vs_autodiff']:.1f}x faster, relative agreement {s['agreement_vs_autodiff']:.1e}")
    print(f"  vs dense-Jacobian reference (one GEMM per lag) {1e3 * s['dense_jacobian_s']:.1f} ms: "
          f"{s['speedup_vs_dense']:.1f}x faster, relative agreement {s['agreement_vs_dense']:.1e}")
    result["montecarlo"] = []
    for n in args.n_mc:
        m = bench_montecarlo(backend, n, args.lags_mc, args.replicas, args.repeats)
        result["montecarlo"].append(m)
        bw = f", {100 * m['bandwidth_fraction']:.0f}% of peak {m['peak_bandwidth_GBps']:.0f} GB/s" \
            if m["bandwidth_fraction"] is not None else ""
        print(f"Monte Carlo n={n} lags={m['lags']} {m['dtype']}: {1e3 * m['seconds_per_draw']:.1f} ms per draw; "
              f"floor {1e3 * m['floor_s']:.1f} ms (draw {1e3 * m['draw_matrix_s']:.1f} ms, "
              f"{m['passes']} passes {1e3 * m['passes_s']:.1f} ms): {m['ratio_to_floor']:.2f}x the floor; "
              f"Krylov passes at {m['krylov_bandwidth_GBps']:.1f} GB/s{bw}")
    if hasattr(os, "getloadavg"):
        result["load_average_1min_at_end"] = os.getloadavg()[0]
    out = args.out or Path(__file__).parent / "results" / f"bench_ntk_{backend.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
