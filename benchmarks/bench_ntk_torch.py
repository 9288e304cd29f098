"""The structured lag NTK against real reverse-mode autodiff (PyTorch), same draw.

PyTorch is not a dependency of linrnn-bias; this benchmark runs where it is
installed (``pip install torch``) and says so otherwise. It builds the impulse
response L_j = C_e W_e^j F_e of the raw parameters in torch, takes the full
Jacobian with ``torch.func.jacrev``, forms Theta = J diag(s eta_P) J^T, and
compares time and values with ``linrnn.verify.empirical_lag_ntk`` on the same draw
(CPU, float64). The ratio is measured in one run; the JSON is saved.

    python benchmarks/bench_ntk_torch.py --n 512 --lags 32
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np


def measure(n: int, lags: int, param: str = "ntk", repeats: int = 3) -> dict:
    """Time torch.func.jacrev's Jacobian NTK and empirical_lag_ntk on one draw; raises ImportError without torch."""
    import torch
    from torch.func import jacrev

    from linrnn.core.spec import ModelSpec
    from linrnn.verify import empirical_lag_ntk
    from linrnn.verify.sample import RNNDraw

    nx, ny = 1, 1
    q, sc, sf = 0.9, 1.0, 1.0
    rng = np.random.default_rng(0)
    W, F, C = rng.standard_normal((n, n)), rng.standard_normal((n, nx)), rng.standard_normal((ny, n))
    if param == "ntk":
        aW, aF, aC, s = (q / n) ** 0.5, (sf / nx) ** 0.5, (sc / n) ** 0.5, 1.0
    else:
        W, F, C = W * (q / n) ** 0.5, F * (sf / nx) ** 0.5, C * (sc / n) ** 0.5
        aW = aF = aC = 1.0
        s = 1.0 / n

    def impulse(Wt: "torch.Tensor", Ft: "torch.Tensor", Ct: "torch.Tensor") -> "torch.Tensor":
        We, Fe, Ce = aW * Wt, aF * Ft, aC * Ct
        out, v = [], Fe
        for _ in range(lags):
            out.append(Ce @ v)
            v = We @ v
        return torch.stack(out)  # (lags, ny, nx)

    torch.set_default_dtype(torch.float64)
    Wt, Ft, Ct = (torch.from_numpy(a) for a in (W, F, C))
    jac = jacrev(impulse, argnums=(0, 1, 2))

    def autodiff_ntk() -> np.ndarray:
        JW, JF, JC = jac(Wt, Ft, Ct)
        m = lags * ny * nx
        theta = sum(s * J.reshape(m, -1) @ J.reshape(m, -1).T for J in (JC, JF, JW))
        return theta.numpy()

    def structured() -> np.ndarray:
        spec = ModelSpec(param=param, sigma_w2=q, sigma_f2=sf, sigma_c2=sc, n_in=nx, n_out=ny)
        return empirical_lag_ntk(RNNDraw(W, F, C, spec), lags)

    def best(fn) -> tuple[float, np.ndarray]:
        times, out = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
        return min(times), out

    t_ad, theta_ad = best(autodiff_ntk)
    t_st, theta_st = best(structured)
    theta_st = np.asarray(theta_st).reshape(lags * ny * nx, lags * ny * nx)
    rel = float(np.linalg.norm(theta_st - theta_ad) / np.linalg.norm(theta_ad))
    result = {
        "benchmark": "lag NTK: structured (Krylov Gram) vs torch.func.jacrev Jacobian NTK",
        "n": n, "lags": lags, "param": param, "dtype": "float64",
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__, "machine": platform.machine(), "python": platform.python_version(),
        "seconds_autodiff": t_ad, "seconds_structured": t_st, "speedup": t_ad / t_st,
        "relative_difference": rel,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--lags", type=int, default=32)
    parser.add_argument("--param", choices=("ntk", "standard"), default="ntk")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "bench_ntk_torch.json"))
    args = parser.parse_args(argv)
    try:
        result = measure(args.n, args.lags, args.param, args.repeats)
    except ImportError:
        print("PyTorch is not installed; this benchmark needs it (pip install torch).", file=sys.stderr)
        return 2
    n, lags, t_st, t_ad, rel = args.n, args.lags, result["seconds_structured"], result["seconds_autodiff"], result["relative_difference"]
    print(f"lag NTK n={n} lags={lags} float64 ({args.param}): structured {t_st * 1e3:.2f} ms, "
          f"torch.func.jacrev Jacobian NTK {t_ad * 1e3:.1f} ms: {t_ad / t_st:.1f}x faster, "
          f"relative agreement {rel:.1e}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def cases(quick: bool) -> list[dict]:
    """The suite's case: torch.func.jacrev Jacobian NTK vs empirical_lag_ntk (n = 512, L = 32; quick: 128, 8)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import harness

    n, lags = (128, 8) if quick else (512, 32)
    name, cmd = f"torch_jacrev_n{n}_L{lags}", "python benchmarks/run.py --only ntk_torch" + (" --quick" if quick else "")
    subject, baseline = "empirical_lag_ntk", "torch.func.jacrev Jacobian, Theta = J J^T"
    try:
        r = measure(n, lags, "ntk", 2 if quick else 3)
    except ImportError:
        return [harness.skipped(name, "PyTorch is not installed (pip install '.[bench]')", subject=subject,
                                baseline=baseline, target=None, command=cmd)]
    return [harness.case(name, subject=subject, baseline=f"{baseline} (torch {r['torch']}, {r['torch_threads']} threads)",
                         seconds={"subject": r["seconds_structured"], "baseline": r["seconds_autodiff"]}, target=None,
                         command=cmd, detail={"n": n, "lags": lags, "agreement": r["relative_difference"]})]


if __name__ == "__main__":
    sys.exit(main())
