"""Start-up cost of the command line with the derivation cached (issue 11, item 3).

Each command runs in a fresh interpreter (``python -m linrnn ...``) with a cache
directory warmed once beforehand, best and median of several runs. Cases:

* ``startup_help``, ``startup_derive_weights``, ``startup_verify_ntk``: wall seconds
  of ``linrnn --help`` (limit 0.2 s), ``linrnn derive weights`` and
  ``linrnn verify ntk --width 256 --lags 8`` (limit 1 s each); ``ratio`` is
  limit / median seconds, so ``ratio >= target = 1`` means the command is within
  its limit;
* ``startup_without_sympy``: the same ``verify ntk`` command against itself run
  after importing SymPy and scipy.stats first (what every numeric command imported
  before the formulas were cached as data): ``ratio`` = that baseline's median / the
  command's median (no target: it states what the change saved).

Run: ``python benchmarks/bench_startup.py [--quick]``; the harness
(``benchmarks/run.py``) calls :func:`cases`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VERIFY = ["verify", "ntk", "--width", "256", "--lags", "8"]
DERIVE = ["derive", "weights", "--lags", "32", "--sigma-w2", "0.9"]
#: runs the CLI after importing what the numeric paths used to import at start-up
_PRELUDE = "import sys, sympy, scipy.stats; from linrnn.cli import main; sys.exit(main(sys.argv[1:]))"


def _timed(cmd: list[str], env: dict[str, str], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        out.append(time.perf_counter() - t0)
        if proc.returncode not in (0, 3):
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return out


def _summary(times: list[float]) -> dict[str, float]:
    return {"best": min(times), "median": statistics.median(times), "runs": len(times)}


def cases(quick: bool = False) -> list[dict[str, Any]]:
    """The start-up cases (module docstring), measured side by side in this call."""
    repeats = 3 if quick else 7
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="linrnn-startup-") as cache:
        env = {**os.environ, "LINRNN_CACHE_DIR": cache}
        env.pop("LINRNN_NO_CACHE", None)
        for argv in (DERIVE, VERIFY, ["derive", "weights", "--lags", "4", "--param", "standard"]):  # warm the cache
            _timed([py, "-m", "linrnn", *argv], env, 1)
        help_t, derive_t, verify_t, prelude_t = [], [], [], []
        for _ in range(repeats):  # interleaved: every command sees the same machine load
            help_t += _timed([py, "-m", "linrnn", "--help"], env, 1)
            derive_t += _timed([py, "-m", "linrnn", *DERIVE], env, 1)
            verify_t += _timed([py, "-m", "linrnn", *VERIFY], env, 1)
            prelude_t += _timed([py, "-c", _PRELUDE, *VERIFY], env, 1)
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    out = []
    for name, argv, times, limit in (("startup_help", ["--help"], help_t, 0.2),
                                     ("startup_derive_weights", DERIVE, derive_t, 1.0),
                                     ("startup_verify_ntk", VERIFY, verify_t, 1.0)):
        med = statistics.median(times)
        out.append({
            "name": name, "ratio": limit / med, "target": 1.0,
            "baseline": f"the limit of issue 11: {limit:g} s wall", "subject": f"linrnn {' '.join(argv)} (warm cache)",
            "seconds": {"subject": _summary(times), "limit": limit},
            "command": f"linrnn {' '.join(argv)}",
            "detail": {"meets_limit": med < limit, "load_average_1_5_15": load,
                       "note": "ratio = limit / median wall seconds of a fresh interpreter"},
        })
    out.append({
        "name": "startup_without_sympy", "ratio": statistics.median(prelude_t) / statistics.median(verify_t),
        "target": None, "baseline": "the same command after importing sympy and scipy.stats (the former start-up)",
        "subject": f"linrnn {' '.join(VERIFY)} (warm cache: no SymPy, no scipy.stats)",
        "seconds": {"baseline": _summary(prelude_t), "subject": _summary(verify_t)},
        "command": f"linrnn {' '.join(VERIFY)}",
        "detail": {"load_average_1_5_15": load},
    })
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer runs")
    p.add_argument("--out", type=Path, default=None, help="write the cases as JSON here")
    args = p.parse_args(argv)
    res = cases(args.quick)
    for c in res:
        t = c["seconds"].get("subject", {})
        print(f"{c['name']:<26} ratio {c['ratio']:6.2f} (target {c['target']}) median {t.get('median', 0):.3f} s")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
