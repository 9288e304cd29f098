"""The measuring steps of ``benchmarks/gpu/run.sh``: training on the backend, memory bandwidth, the summary.

* ``train``: the training cases of ``benchmarks/bench_train.py`` (:func:`replica_cases`) on the
  backend; on CuPy the replicas run on the one device (seconds, no ratio).
* ``bandwidth``: the effective memory bandwidth of the operation every step of the
  Monte Carlo and of training repeats, a matrix-vector pass over an n x n matrix
  (n^2 itemsize bytes read per pass, float64), and of a device-to-device copy (2 x
  bytes moved), as fractions of the device's peak: 2 x memoryClockRate (kHz) x 1e3 x
  memoryBusWidth / 8 bytes/s from ``cupy.cuda.runtime.getDeviceProperties`` (on the
  CPU, in the dry run, no peak is known: fraction null).
* ``summary``: the steps' records (exit status, seconds, log tails) with the device's
  properties and every result file, as one JSON.

Run by ``benchmarks/gpu/run.sh``; each subcommand also runs on its own (``--help``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # benchmarks/ (bench_train)


def device_properties(backend: str) -> dict[str, Any]:
    """Name, memory, clocks and the peak memory bandwidth of the device (CuPy), or the host's description."""
    if backend != "cupy":
        return {"backend": backend, "device": platform.processor() or platform.machine(), "peak_bandwidth_Bps": None,
                "cpus": os.cpu_count()}
    import cupy  # type: ignore[import-not-found]

    dev = cupy.cuda.Device()
    props = cupy.cuda.runtime.getDeviceProperties(dev.id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    peak = 2.0 * props["memoryClockRate"] * 1e3 * props["memoryBusWidth"] / 8
    return {"backend": "cupy", "device": name, "total_memory_bytes": int(props["totalGlobalMem"]),
            "memory_clock_khz": int(props["memoryClockRate"]), "memory_bus_width_bits": int(props["memoryBusWidth"]),
            "multiprocessors": int(props["multiProcessorCount"]), "compute_capability": f"{props['major']}.{props['minor']}",
            "peak_bandwidth_Bps": peak, "peak_rule": "2 x memoryClockRate (kHz) x 1e3 x memoryBusWidth / 8",
            "cupy": cupy.__version__, "cuda_runtime": int(cupy.cuda.runtime.runtimeGetVersion())}


def _timer(backend: str):
    if backend == "cupy":
        import cupy  # type: ignore[import-not-found]

        def sync() -> None:
            cupy.cuda.Stream.null.synchronize()
    else:
        def sync() -> None:
            return None

    def best(fn: Any, repeats: int) -> float:
        fn()
        sync()
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            sync()
            out.append(time.perf_counter() - t0)
        return min(out)

    return best


def bandwidth(backend: str, quick: bool) -> dict[str, Any]:
    """Effective bandwidth of a matrix-vector pass and of a copy, and their fractions of the peak."""
    if backend == "cupy":
        import cupy as xp  # type: ignore[import-not-found]
    else:
        import numpy as xp  # type: ignore[no-redef]
    best = _timer(backend)
    props = device_properties(backend)
    peak = props["peak_bandwidth_Bps"]
    sizes = [512, 1024] if quick else [4096, 8192, 16384]
    rows = []
    rng = xp.random.default_rng(0)
    for n in sizes:
        W = rng.standard_normal((n, n))
        v = rng.standard_normal((n, 1))
        passes = 8
        def run() -> None:
            x = v
            for _ in range(passes):
                x = W @ x
        t = best(run, 3 if quick else 10) / passes
        eff = n * n * 8 / t
        buf = xp.empty_like(W)
        tc = best(lambda: xp.copyto(buf, W), 3 if quick else 10)
        copy_bw = 2 * n * n * 8 / tc
        rows.append({"n": n, "matvec_s": t, "matvec_Bps": eff, "matvec_fraction": (eff / peak) if peak else None,
                     "copy_s": tc, "copy_Bps": copy_bw, "copy_fraction": (copy_bw / peak) if peak else None})
        del W, buf
    top = max(rows, key=lambda r: r["matvec_Bps"])
    return {"schema": "linrnn-bias/gpu-bandwidth/1", "device": props, "rows": rows,
            "effective_bandwidth_Bps": top["matvec_Bps"], "fraction_of_peak": top["matvec_fraction"],
            "rule": "matrix-vector pass over an n x n float64 matrix: n^2 * 8 bytes / seconds per pass (best n)"}


def train(backend: str, quick: bool) -> dict[str, Any]:
    import bench_train

    return {"schema": "linrnn-bias/gpu-train/1", "device": device_properties(backend),
            "cases": bench_train.replica_cases(quick, backend=backend)}


def summary(steps: Path, results: Path, start: float, dry: bool) -> dict[str, Any]:
    records = [json.loads(line) for line in steps.read_text().splitlines() if line.strip()]
    files = {}
    for p in sorted(results.glob("*.json")):
        if p.name == "summary.json":
            continue
        try:
            files[p.stem] = json.loads(p.read_text())
        except (OSError, ValueError):
            files[p.stem] = None
    bw = files.get("bandwidth") or {}
    backend = "numpy" if dry else "cupy"
    try:
        props = device_properties(backend)
    except Exception as exc:  # noqa: BLE001 - CuPy missing: say so
        props = {"backend": backend, "error": f"{type(exc).__name__}: {exc}"}
    return {
        "schema": "linrnn-bias/gpu-run/1", "dry_run": dry,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "total_seconds": time.time() - start, "limit_seconds": 480,
        "all_ok": all(r["ok"] for r in records), "steps": records, "device": props,
        "effective_bandwidth_Bps": bw.get("effective_bandwidth_Bps"), "fraction_of_peak": bw.get("fraction_of_peak"),
        "results": files,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("train", "bandwidth"):
        s = sub.add_parser(name)
        s.add_argument("--backend", choices=("numpy", "cupy"), default="cupy")
        s.add_argument("--quick", action="store_true")
        s.add_argument("--out", type=Path, required=True)
    s = sub.add_parser("summary")
    s.add_argument("--steps", type=Path, required=True)
    s.add_argument("--results", type=Path, required=True)
    s.add_argument("--start", type=float, required=True)
    s.add_argument("--dry-run", type=int, default=0)
    s.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.cmd == "train":
        res = train(args.backend, args.quick)
        for c in res["cases"]:
            print(f"{c['name']}: ratio {c['ratio']} seconds {c['seconds']}")
    elif args.cmd == "bandwidth":
        res = bandwidth(args.backend, args.quick)
        for r in res["rows"]:
            frac = "" if r["matvec_fraction"] is None else f" ({100 * r['matvec_fraction']:.0f}% of peak)"
            print(f"n = {r['n']}: matvec {r['matvec_Bps'] / 1e9:.1f} GB/s{frac}, copy {r['copy_Bps'] / 1e9:.1f} GB/s")
    else:
        res = summary(args.steps, args.results, args.start, bool(args.dry_run))
        print(f"{'dry run' if res['dry_run'] else 'GPU run'}: {len(res['steps'])} steps, all ok: {res['all_ok']}, "
              f"{res['total_seconds']:.0f} s (limit {res['limit_seconds']} s); bandwidth fraction {res['fraction_of_peak']}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2, default=str) + "\n")
        return 0 if res["all_ok"] else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
