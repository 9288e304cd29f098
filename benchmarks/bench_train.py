"""One RNN training step: lagged-correlation engine vs plain backpropagation through time.

Both start from the same initial weights and data (issue 4 setting: N = 64 sequences,
T = 64, width n = 256, n_x = n_y = 1, CPU, float64, loss ``all``, ``ntk``
parameterization). The script

1. checks that the two give identical trajectories for a few steps (impulse
   responses, raw parameters and losses, 1e-10 relative);
2. times one training step of each (best of several repeats, and the median), the
   engine's one-off correlation pass separately;
3. prints the speed ratio and saves JSON with the machine information to
   ``benchmarks/results/bench_train.json``.

The BPTT reference is written here independently of :mod:`linrnn.verify.train` and is an
honest implementation: vectorised over sequences (batched matmuls over N), one matmul
per time step forward and backward, and the weight gradients as single large matmuls
over all (time, sequence) pairs.

Run: ``python benchmarks/bench_train.py`` (``--help`` for options).

Training replicas on both cores (issue 11, item 2): :func:`cases` (called by the
harness ``benchmarks/run.py``, or ``python benchmarks/bench_train.py --cases``)
measures, side by side in one run, 8 independent replicas trained at n = 256 and
n = 512 by today's loop (one process, one replica after the other, as
``train_single`` did before) against :func:`linrnn.train_cli.train_single`
with ``workers = 2`` (this process and one spawned process sharing the replicas, one
BLAS thread each, the spawn's start-up included),
and checks that both give the same replicas.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any


def _threads_from_argv(argv: list[str]) -> str | None:
    """The value of ``--threads`` (it must reach the environment before NumPy loads its BLAS)."""
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return None


if __name__ == "__main__" and (_threads := _threads_from_argv(sys.argv[1:])):
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads

import numpy as np  # noqa: E402

from linrnn.verify.backend import get_backend  # noqa: E402
from linrnn.verify.teachers import decay_teacher, make_dataset  # noqa: E402
from linrnn.core.spec import ModelSpec  # noqa: E402
from linrnn.verify.sample import RNNDraw  # noqa: E402
from linrnn.verify.train import lagged_correlations, train_rnn  # noqa: E402

SCHEMA = "linrnn-bias/bench_train/1"
TARGET = 20.0


# ------------------------------------------------------------------ BPTT reference


def bptt_step(Ce: np.ndarray, Fe: np.ndarray, We: np.ndarray, x: np.ndarray, y: np.ndarray, last: bool):
    """Loss and effective-matrix gradients by forward recurrence and adjoints, batched over N.

    h_t = W_e h_{t-1} + F_e x_t, yhat_t = C_e h_t; e_t = (yhat_t - y_t) / N (only t = T-1 for
    'last'); a_t = C_e^T e_t + W_e^T a_{t+1}; dW_e = sum_t a_t h_{t-1}^T, dF_e = sum_t a_t x_t^T,
    dC_e = sum_t e_t h_t^T (each summed over sequences).
    """
    N, T, _ = x.shape
    n = We.shape[0]
    xt = np.ascontiguousarray(x.transpose(1, 0, 2))  # (T, N, n_x)
    yt = np.ascontiguousarray(y.transpose(1, 0, 2))
    hs = np.empty((T + 1, N, n))
    hs[0] = 0.0
    drive = (xt.reshape(T * N, -1) @ Fe.T).reshape(T, N, n)
    for t in range(T):
        hs[t + 1] = hs[t] @ We.T + drive[t]
    yhat = (hs[1:].reshape(T * N, n) @ Ce.T).reshape(T, N, -1)
    err = (yhat - yt) / N
    if last:
        err[: T - 1] = 0.0
    loss = 0.5 * N * float(np.sum(err * err))
    back = (err.reshape(T * N, -1) @ Ce).reshape(T, N, n)  # C_e^T e_t as rows
    adj = np.empty((T, N, n))
    a = np.zeros((N, n))
    for t in reversed(range(T)):
        a = back[t] + a @ We if t < T - 1 else back[t].copy()
        adj[t] = a
    adj2 = adj.reshape(T * N, n)
    d_we = adj2.T @ hs[:-1].reshape(T * N, n)
    d_fe = adj2.T @ xt.reshape(T * N, -1)
    d_ce = err.reshape(T * N, -1).T @ hs[1:].reshape(T * N, n)
    return loss, d_ce, d_fe, d_we


def bptt_train(C, F, W, x, y, *, lr, steps, sigma_w2, sigma_f2, sigma_c2, last):
    """Full-batch GD in the ``ntk`` parameterization (multipliers 1); impulse responses by unit impulses."""
    n, n_x = F.shape
    ac, af, aw = math.sqrt(sigma_c2 / n), math.sqrt(sigma_f2 / n_x), math.sqrt(sigma_w2 / n)
    T = x.shape[1]
    losses, imps = [], []
    for k in range(steps + 1):
        Ce, Fe, We = ac * C, af * F, aw * W
        loss, d_ce, d_fe, d_we = bptt_step(Ce, Fe, We, x, y, last)
        losses.append(loss)
        h, imp = Fe.copy(), np.empty((T, C.shape[0], n_x))
        for j in range(T):
            imp[j] = Ce @ h
            h = We @ h
        imps.append(imp)
        if k < steps:
            C = C - lr * ac * d_ce
            F = F - lr * af * d_fe
            W = W - lr * aw * d_we
    return C, F, W, np.array(losses), np.array(imps)


def bptt_steps(C, F, W, x, y, *, lr, steps, sigma_w2, sigma_f2, sigma_c2, last):
    """``steps`` BPTT training steps (gradient pass + update), nothing recorded: what is timed."""
    n, n_x = F.shape
    ac, af, aw = math.sqrt(sigma_c2 / n), math.sqrt(sigma_f2 / n_x), math.sqrt(sigma_w2 / n)
    for _ in range(steps):
        _, d_ce, d_fe, d_we = bptt_step(ac * C, af * F, aw * W, x, y, last)
        C = C - lr * ac * d_ce
        F = F - lr * af * d_fe
        W = W - lr * aw * d_we
    return C, F, W


# ------------------------------------------------------------------ timing


def _time(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "thread_env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ},
    }
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        info["blas"] = {k: blas.get(k) for k in ("name", "version")}
    except Exception:  # pragma: no cover - older NumPy
        info["blas"] = None
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return info


def rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-seq", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--loss", choices=("all", "last"), default="all")
    p.add_argument("--check-steps", type=int, default=5, help="steps compared between the two (default 5)")
    p.add_argument("--steps", type=int, default=20, help="engine steps per timed run (default 20)")
    p.add_argument("--bptt-steps", type=int, default=3, help="BPTT steps per timed run (default 3)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--sigma-w2", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="BLAS threads for both (default: the environment's)")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "bench_train.json")
    args = p.parse_args(argv)

    N, T, n = args.n_seq, args.seq_len, args.width
    sig = {"sigma_w2": args.sigma_w2, "sigma_f2": 1.0, "sigma_c2": 1.0}
    be = get_backend("numpy", seed=args.seed)
    x, y = make_dataset(decay_teacher(T, 0.9), N, noise_std=0.1, backend=be)
    x, y = be.to_numpy(x), be.to_numpy(y)
    rng = np.random.default_rng(args.seed + 1)
    C0, F0, W0 = rng.standard_normal((1, n)), rng.standard_normal((n, 1)), rng.standard_normal((n, n))
    last = args.loss == "last"
    corr = lagged_correlations(x, y, None, args.loss, be)
    spec = ModelSpec(param="ntk", n_in=1, **sig)
    # a stable step: half the largest-curvature limit of the wide-limit dynamics, if derive is there
    try:
        from linrnn.verify.scnn import auto_lr_rnn

        lr = auto_lr_rnn(corr, spec)
        lr_rule = "auto (1/mu_max of the lag-weighted curvature, derived lag weights)"
    except Exception as exc:  # derive.weights not available
        lr, lr_rule = 1e-3, f"fixed (auto unavailable: {type(exc).__name__})"

    # 1. identical trajectories
    ks = args.check_steps
    eng = train_rnn(RNNDraw(W0, F0, C0, spec), None, None, loss=args.loss, lr=lr, steps=ks, corr=corr)
    if eng.diverged:
        print(f"the engine diverged at step {eng.diverged_step} with lr = {lr:g}; choose another --sigma-w2", file=sys.stderr)
        return 1
    Cb, Fb, Wb, lb, ib = bptt_train(C0, F0, W0, x, y, lr=lr, steps=ks, last=last, **sig)
    check = {
        "steps": ks,
        "impulse_rel": rel(eng.impulse, ib),
        "C_rel": rel(eng.C, Cb),
        "F_rel": rel(eng.F, Fb),
        "W_rel": rel(eng.W, Wb),
        "loss_rel_max": float(np.max(np.abs(eng.loss - lb) / np.abs(lb))),
        "impulse_moved": rel(ib[-1], ib[0]),
        "tolerance": 1e-10,
    }
    check["identical"] = bool(
        not eng.diverged and max(v for k, v in check.items() if k.endswith("_rel") or k == "loss_rel_max") < 1e-10
    )

    # 2. timings (per step), interleaved so that both see the same machine load
    s_eng, s_bptt = args.steps, args.bptt_steps
    t_corr = _time(lambda: lagged_correlations(x, y, None, args.loss, be), args.repeats)
    eng_step: list[float] = []
    bptt_step_t: list[float] = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        train_rnn(RNNDraw(W0, F0, C0, spec), None, None, loss=args.loss, lr=lr, steps=s_eng, corr=corr,
                  record_impulse=True)
        t1 = time.perf_counter()
        bptt_steps(C0, F0, W0, x, y, lr=lr, steps=s_bptt, last=last, **sig)
        t2 = time.perf_counter()
        eng_step.append((t1 - t0) / s_eng)
        bptt_step_t.append((t2 - t1) / s_bptt)
    # train_rnn with s steps also evaluates (and records) the loss and impulse response of
    # the final iterate, so its per-step time is slightly pessimistic.
    best_ratio = min(bptt_step_t) / min(eng_step)
    median_ratio = statistics.median(bptt_step_t) / statistics.median(eng_step)
    paired_ratio = statistics.median(b / e for b, e in zip(bptt_step_t, eng_step))
    timings = {
        "engine_step_s": {"best": min(eng_step), "median": statistics.median(eng_step)},
        "bptt_step_s": {"best": min(bptt_step_t), "median": statistics.median(bptt_step_t)},
        "correlations_once_s": {"best": min(t_corr), "median": statistics.median(t_corr)},
        "repeats": args.repeats,
        "engine_steps_per_run": s_eng,
        "bptt_steps_per_run": s_bptt,
    }
    result = {
        "schema": SCHEMA,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": {
            "n_seq": N, "seq_len": T, "width": n, "n_x": 1, "n_y": 1, "loss": args.loss, "param": "ntk",
            "dtype": "float64", "backend": "numpy", "lr": lr, "lr_rule": lr_rule, **sig, "seed": args.seed,
            "blas_threads_requested": args.threads,
        },
        "machine": machine_info(),
        "check": check,
        "timings": timings,
        "speedup": {
            "best_of": best_ratio,
            "median": median_ratio,
            "paired_median": paired_ratio,
            "target": TARGET,
            # judged on the median of paired (interleaved) runs, the statistic least moved by
            # other processes on a shared machine
            "meets_target": bool(paired_ratio >= TARGET),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"N={N} T={T} n={n} loss={args.loss} float64 CPU, lr={lr:.4g} ({lr_rule})")
    print(
        f"identical trajectories over {ks} steps: {check['identical']} "
        f"(impulse rel {check['impulse_rel']:.1e}, W rel {check['W_rel']:.1e}, loss rel {check['loss_rel_max']:.1e})"
    )
    print(
        f"one step: engine {1e3 * min(eng_step):.3f} ms, BPTT {1e3 * min(bptt_step_t):.2f} ms (best of {args.repeats}); "
        f"correlations once {1e3 * min(t_corr):.2f} ms"
    )
    print(
        f"speed ratio: {best_ratio:.1f}x best-of, {median_ratio:.1f}x median, "
        f"{paired_ratio:.1f}x median of paired runs (target >= {TARGET:g}x)"
    )
    print(f"saved {args.out}")
    return 0 if check["identical"] else 1


def step_cases(quick: bool) -> list[dict[str, Any]]:
    """The suite's cases (``benchmarks/run.py``): one training step, engine vs BPTT (target >= 20x).

    Quick: width 64 and fewer repeats. The full-size run is the issue 4 setting.
    """
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import harness

    n = 64 if quick else 256
    cmd = "python benchmarks/run.py --only train" + (" --quick" if quick else "")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        argv = ["--width", str(n), "--out", str(out)] + (["--repeats", "2", "--steps", "5"] if quick else [])
        main(argv)
        r = json.loads(out.read_text())
    return [harness.case(
        f"train_step_vs_bptt_n{n}", subject="train_rnn step (lagged correlations, Krylov vectors)",
        baseline="BPTT step, vectorised over sequences (this file)",
        seconds={"subject": r["timings"]["engine_step_s"]["median"], "baseline": r["timings"]["bptt_step_s"]["median"]},
        ratio=r["speedup"]["paired_median"], target=TARGET, command=cmd,
        detail={"config": r["config"], "identical_trajectories": r["check"]["identical"],
                "ratio_is": "median of paired (interleaved) runs"})]


# ------------------------------------------------------------------ replicas on both cores (harness cases)


def _replica_config(quick: bool, replicas: int) -> Any:
    from linrnn.verify.claims import dynamics_equivalence
    from linrnn.core.configure import configure

    # a fixed step, so that both sides do exactly the same work (no curvature pass)
    return configure(dynamics_equivalence.Config(), {"seq_len": 32 if quick else 64, "n_seq": 32,
                                                      "steps": 20 if quick else 100, "seeds": replicas,
                                                      "lr": 2e-3}, "bench")


def todays_loop(config: Any, model: Any, width: int, seed: int = 0) -> list[dict[str, float]]:
    """The replica loop of ``train_single`` before issue 11: one process, replicas in sequence, default BLAS threads."""
    from linrnn.derive import weights
    from linrnn.verify.claims.training import draw_rnn, make_data, resolve_backend
    from linrnn.verify.scnn import scnn_trajectory
    from linrnn.verify.train import impulse_loss_and_grad

    backend = resolve_backend("numpy")
    x, y, teacher = make_data(config, backend, seed)
    corr = lagged_correlations(x, y, None, config.loss, backend)
    lam = np.asarray(weights(model, config.seq_len), dtype=np.float64)
    norm = float(np.linalg.norm(teacher))
    reps = []
    for r in range(config.seeds):
        draw = draw_rnn(seed, model, int(width), r, backend)
        res = train_rnn(draw, None, None, loss=config.loss, lr=float(config.lr), steps=config.steps, corr=corr)
        res.raise_if_diverged()
        scnn = scnn_trajectory(res.impulse[0], corr, lam, lr=float(config.lr), steps=config.steps)
        d = float(np.max(np.sqrt(np.sum((res.impulse - scnn) ** 2, axis=(1, 2, 3))))) / norm
        reps.append({"loss_rnn_initial": float(res.loss[0]), "loss_rnn_final": float(res.loss[-1]),
                     "loss_scnn_final": float(impulse_loss_and_grad(scnn[-1], corr)[0]), "distance": d})
    return reps


def cases(quick: bool = False, backend: str = "numpy") -> list[dict[str, Any]]:
    """The cases of this module for the harness (``benchmarks/run.py``): one step against BPTT, and the
    replicas on both cores (on a device ``backend``: the replicas there, timed alone)."""
    if backend != "numpy":
        return replica_cases(quick, backend)
    return step_cases(quick) + replica_cases(quick)


def replica_cases(quick: bool = False, backend: str = "numpy") -> list[dict[str, Any]]:
    """Training 8 replicas at n = 256 and 512: today's loop against two worker processes (target 1.7x).

    Each width is measured ``repeats`` times, the two sides interleaved so that they
    see the same machine load; the ratio is the median of the paired ratios. On
    ``backend = "cupy"`` the replicas run on the one device in this process, so only
    the loop is timed there (ratio null).
    """
    from linrnn.train_cli import train_single

    model = ModelSpec(sigma_w2=0.9)
    replicas, workers = 8, 2
    cfg = _replica_config(quick, replicas)
    repeats = 1 if quick else 3
    out = []
    for n in (256, 512):
        if backend != "numpy":
            t0 = time.perf_counter()
            train_single(cfg, model, n, seed=0, backend=backend, workers=1)
            sec = time.perf_counter() - t0
            out.append({"name": f"train_replicas_n{n}_{backend}", "ratio": None, "target": None,
                        "baseline": None, "subject": f"train_single on {backend}, {replicas} replicas",
                        "seconds": {"subject": sec}, "command": "python benchmarks/run.py --backend " + backend,
                        "detail": {"width": n, "seq_len": cfg.seq_len, "steps": cfg.steps}})
            continue
        base_t, subj_t, one_t = [], [], []
        same = True
        for _ in range(repeats):
            t0 = time.perf_counter()
            base = todays_loop(cfg, model, n)
            t1 = time.perf_counter()
            run = train_single(cfg, model, n, seed=0, workers=workers)
            t2 = time.perf_counter()
            one = train_single(cfg, model, n, seed=0, workers=1)  # the same loop, one BLAS thread, one process
            t3 = time.perf_counter()
            base_t.append(t1 - t0)
            subj_t.append(t2 - t1)
            one_t.append(t3 - t2)
            same &= one["replicas"] == run["replicas"]
            for a, b in zip(base, run["replicas"]):
                same &= all(abs(a[k] - b[k]) <= 1e-9 * max(abs(a[k]), 1e-300) for k in a)
        paired = statistics.median(b / s for b, s in zip(base_t, subj_t))
        paired_one = statistics.median(o / s for o, s in zip(one_t, subj_t))
        out.append({
            "name": f"train_replicas_n{n}", "ratio": paired, "target": 1.7,
            "baseline": f"today's loop: {replicas} replicas in sequence in one process (default BLAS threads)",
            "subject": (f"train_single(workers={workers}): this process and {workers - 1} spawned, one BLAS thread each, "
                        "start-up included"),
            "seconds": {"baseline": {"best": min(base_t), "median": statistics.median(base_t)},
                        "subject": {"best": min(subj_t), "median": statistics.median(subj_t)},
                        "one_worker": {"best": min(one_t), "median": statistics.median(one_t)}},
            "command": (f"linrnn verify train --width {n} --seq-len {cfg.seq_len} --n-seq {cfg.n_seq} --steps "
                        f"{cfg.steps} --lr {cfg.lr:g} --replicas {replicas} --workers {workers}"),
            "detail": {"width": n, "replicas": replicas, "workers": workers, "seq_len": cfg.seq_len,
                       "steps": cfg.steps, "repeats": repeats, "same_replicas_1e-9": bool(same),
                       # how much of the ratio is the second process alone: train_single(workers=1), one BLAS
                       # thread in this process, against workers=2 (the rest is the BLAS thread pool's spinning)
                       "ratio_two_workers_vs_one_worker": paired_one,
                       "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                       "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None},
        })
    return out


if __name__ == "__main__":
    if "--cases" in sys.argv[1:]:
        _quick = "--quick" in sys.argv[1:]
        _res = replica_cases(_quick)
        for _c in _res:
            print(f"{_c['name']:<22} ratio {_c['ratio']:.2f}x (target {_c['target']}) "
                  f"baseline {_c['seconds']['baseline']['median']:.2f} s, subject {_c['seconds']['subject']['median']:.2f} s, "
                  f"two workers vs one {_c['detail']['ratio_two_workers_vs_one_worker']:.2f}x, "
                  f"same replicas: {_c['detail']['same_replicas_1e-9']}, load {_c['detail']['load_average_1_5_15']}")
        _out = Path(__file__).parent / "results" / "bench_train_replicas.json"
        if not _quick:
            _out.write_text(json.dumps(_res, indent=2) + "\n")
        raise SystemExit(0)
    raise SystemExit(main())
