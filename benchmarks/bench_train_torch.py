"""One RNN training step: the correlation/Krylov engine against torch autograd BPTT.

PyTorch is not a dependency of linrnn-bias; this benchmark runs where it is
installed and says so otherwise. Both start from the same raw parameters and data
(N sequences of length T, ntk parameterization, loss ``all``, float64, CPU); torch
runs the recurrence over every sequence (batched over N) and backpropagates
through time with autograd. The trajectories of the first few steps are compared,
then the time per step of each is measured in one run and the ratio saved.

    python benchmarks/bench_train_torch.py --n-seq 64 --seq-len 64 --width 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

# Each side gets its best thread setting: the engine's small matrix-vector products
# run fastest on one BLAS thread, torch gets every core for its OpenMP kernels.
# (NumPy's OpenBLAS threads spinning beside torch's OpenMP threads slow both down.)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-seq", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_train_torch.json"))
    args = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed; this benchmark needs it (pip install torch).", file=sys.stderr)
        return 2

    from linrnn.core.spec import ModelSpec
    from linrnn.verify.sample import RNNDraw
    from linrnn.verify.backend import get_backend
    from linrnn.verify.scnn import auto_lr_rnn
    from linrnn.verify.train import lagged_correlations, train_rnn

    N, T, n, q = args.n_seq, args.seq_len, args.width, 0.9
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, 1))
    y = np.cumsum(x, axis=1) * 0.1
    W0, F0, C0 = rng.standard_normal((n, n)), rng.standard_normal((n, 1)), rng.standard_normal((1, n))
    backend = get_backend("numpy", seed=0)
    corr = lagged_correlations(x, y, T, "all", backend)
    lr = auto_lr_rnn(corr, ModelSpec(sigma_w2=q))
    aW, aF, aC = (q / n) ** 0.5, 1.0, (1.0 / n) ** 0.5

    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(os.cpu_count() or 1)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)

    def torch_run(steps: int) -> tuple[np.ndarray, float]:
        W = torch.from_numpy(W0.copy()).requires_grad_()
        F = torch.from_numpy(F0.copy()).requires_grad_()
        C = torch.from_numpy(C0.copy()).requires_grad_()
        t0 = time.perf_counter()
        for _ in range(steps):
            h = torch.zeros(N, n)
            loss = 0.0
            for t in range(T):
                h = h @ (aW * W).T + xt[:, t, :] @ (aF * F).T
                loss = loss + ((yt[:, t, :] - h @ (aC * C).T) ** 2).sum()
            loss = loss / (2 * N)
            gW, gF, gC = torch.autograd.grad(loss, (W, F, C))
            with torch.no_grad():
                W -= lr * gW
                F -= lr * gF
                C -= lr * gC
        elapsed = time.perf_counter() - t0
        return W.detach().numpy().copy(), elapsed

    def engine_run(steps: int) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        res = train_rnn(RNNDraw(W0, F0, C0, ModelSpec(param="ntk", sigma_w2=q)), x, y, loss="all", lr=lr, steps=steps,
                        backend=backend, record_impulse=False, corr=corr)
        return np.asarray(res.W), time.perf_counter() - t0

    W_torch, _ = torch_run(args.steps)
    W_engine, _ = engine_run(args.steps)
    rel = float(np.linalg.norm(W_engine - W_torch) / np.linalg.norm(W_torch - W0))
    t_torch = min(torch_run(args.steps)[1] for _ in range(args.repeats)) / args.steps
    t_engine = min(engine_run(args.steps)[1] for _ in range(args.repeats)) / args.steps
    result = {
        "benchmark": "one GD step: correlation/Krylov engine vs torch autograd BPTT",
        "N": N, "T": T, "n": n, "param": "ntk", "loss": "all", "dtype": "float64", "lr": lr,
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "numpy": np.__version__,
        "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
        "machine": platform.machine(), "python": platform.python_version(),
        "seconds_per_step_torch": t_torch, "seconds_per_step_engine": t_engine, "speedup": t_torch / t_engine,
        "relative_difference_of_W_update_after_steps": rel, "steps_compared": args.steps,
    }
    print(f"training step N={N} T={T} n={n}: engine {t_engine * 1e3:.2f} ms, torch autograd BPTT "
          f"{t_torch * 1e3:.1f} ms: {t_torch / t_engine:.1f}x faster; W updates after {args.steps} steps agree "
          f"to {rel:.1e} relative")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def cases(quick: bool) -> list[dict]:
    """The suite's case: one training step, engine vs torch autograd BPTT (N = T = 64, n = 256; quick: n = 64).

    (Run inside ``benchmarks/run.py`` NumPy is loaded before this module, so its OpenBLAS
    keeps the environment's thread setting.)
    """
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import harness

    n = 64 if quick else 256
    name, cmd = f"torch_bptt_step_n{n}", "python benchmarks/run.py --only train_torch" + (" --quick" if quick else "")
    subject, baseline = "train_rnn step (correlation/Krylov engine)", "torch autograd BPTT step"
    try:
        import torch  # noqa: F401
    except ImportError:
        return [harness.skipped(name, "PyTorch is not installed (pip install '.[bench]')", subject=subject,
                                baseline=baseline, target=None, command=cmd)]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        main(["--width", str(n), "--repeats", "2" if quick else "5", "--out", str(out)])
        r = json.loads(out.read_text())
    return [harness.case(name, subject=subject, baseline=f"{baseline} (torch {r['torch']})",
                         seconds={"subject": r["seconds_per_step_engine"], "baseline": r["seconds_per_step_torch"]},
                         target=None, command=cmd,
                         detail={k: r[k] for k in ("N", "T", "n", "loss", "relative_difference_of_W_update_after_steps")})]


if __name__ == "__main__":
    sys.exit(main())
