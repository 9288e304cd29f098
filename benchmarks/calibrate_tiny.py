"""Calibrate the ``tiny`` size of ``linrnn.testing.assert_claim``: false-failure rate and controls' power over seeds.

Every supported claim (or those of ``--claims``) runs at size ``tiny`` for seeds
``first .. first + seeds - 1`` at the stated ``--alpha`` (default 1e-3, what
``assert_claim`` states alone; the plugin's share of its family-wise alpha is smaller,
and the designs size each run for power 0.999 at whatever alpha they get), on the model
the report's quick profile runs (``[model]``, sigma_w2 = 0.9; a family's claim on that
family's specification with the shared fields, as ``linrnn report`` does). Every theory
is true, so each failed statistic is a false failure; each negative control's rejection
share is its power. The summary per claim is :func:`linrnn.calibrate.summarize_claim`'s
(Clopper-Pearson 95% intervals) and the verdict :func:`linrnn.calibrate.calibration_outcome`'s
(fewer than 50 seeds: inconclusive, too small to support the rates).

Output: ``--out`` (default ``src/linrnn/testing/calibration_tiny.json``, the file the
plugin's summary and the docs quote; commit it). One process per worker (``--workers``),
one task per (claim, seed). About ``seconds per seed x seeds / workers``: on one core,
nngp and ntk_limit ~1.5 s each (each task draws the sweep unless its worker has it
memoised), finite_width ~0.5-1.5 s, orthogonal_nngp ~2.5 s, diagonal_kernel ~0.7 s,
lru_kernel ~2.2 s a seed (measured on one core of a shared 2-core machine), so 200 seeds
of all six take about 200 x 9.5 s = 32 minutes on one core (about 16 with two workers),
plus the derivations' first run (SymPy, cached after).

    python benchmarks/calibrate_tiny.py --claims diagonal_kernel --seeds 3   # does it run?
    python benchmarks/calibrate_tiny.py --seeds 200 --workers 2              # the calibration
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "src" / "linrnn" / "testing" / "calibration_tiny.json"


def _model(name: str) -> Any:
    from linrnn.families import claim_model, claims
    from linrnn.suite import resolve_config

    return claim_model(claims()[name], resolve_config("quick").model)


def _task(args: tuple[str, int, float]) -> dict[str, Any]:
    name, seed, alpha = args
    from linrnn.testing import run_claim

    start = time.perf_counter()
    check = run_claim(name, _model(name), "tiny", seed, alpha=alpha)
    r = check.result
    return {"claim": name, "seed": seed, "seconds": time.perf_counter() - start,
            "result": {"verdict": r.verdict, "statistic_verdict": r.statistic_verdict, "alpha": r.alpha,
                       "controls": [{"id": c["id"], "verdict": c["verdict"], "power": c.get("power")}
                                    for c in r.controls]}}


def main(argv: list[str] | None = None) -> int:
    from linrnn.calibrate import MIN_RUNS, calibration_outcome, summarize_claim
    from linrnn.testing import SUPPORTED, describe_model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--claims", default=",".join(SUPPORTED), help="comma-separated claims (default: every supported)")
    p.add_argument("--seeds", type=int, default=200, help="seeds per claim (default 200)")
    p.add_argument("--first", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--alpha", type=float, default=1e-3, help="each claim's stated alpha (default 1e-3)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--out", default=str(DEFAULT_OUT), help=f"JSON output (default {DEFAULT_OUT.relative_to(ROOT)})")
    a = p.parse_args(argv)
    names = [c for c in a.claims.split(",") if c]
    bad = [c for c in names if c not in SUPPORTED]
    if bad or a.seeds < 1 or a.workers < 1 or not 0 < a.alpha < 1:
        print(f"calibrate_tiny: claims must be among {', '.join(SUPPORTED)} (got {', '.join(bad) or 'them'}), "
              "seeds and workers positive, alpha in (0, 1)", file=sys.stderr)
        return 2
    tasks = [(n, s, a.alpha) for n in names for s in range(a.first, a.first + a.seeds)]
    start = time.perf_counter()
    records: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    with ProcessPoolExecutor(a.workers) as pool:
        for i, rec in enumerate(pool.map(_task, tasks, chunksize=1), 1):
            records[rec["claim"]].append(rec)
            print(f"[{i}/{len(tasks)}] {rec['claim']} seed {rec['seed']}: {rec['result']['verdict']} "
                  f"({rec['seconds']:.2f} s)", flush=True)
    claims = [summarize_claim(n, records[n], a.alpha) for n in names]
    verdict, why = calibration_outcome(claims)
    out = {"version": 1, "size": "tiny", "alpha": a.alpha, "seeds": [a.first, a.first + a.seeds - 1],
           "min_runs": MIN_RUNS, "models": {n: describe_model(_model(n)) for n in names},
           "claims": claims, "verdict": verdict, "why": why, "wall_seconds": time.perf_counter() - start,
           "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    for c in claims:
        ff = c["false_failure"]
        ctl = ", ".join(f"{x['id']} {x['rejected']}/{x['runs']}" for x in c["controls"])
        print(f"{c['id']}: false failures {ff['failures']}/{c['seeds']} (95% CI {ff['ci95']}), stated alpha "
              f"{ff['stated']:.3g}; controls rejected: {ctl}; median {c['seconds']:.2f} s a seed")
    print(f"verdict: {verdict} ({why}); wrote {a.out}")
    return {"pass": 0, "fail": 1, "inconclusive": 3}.get(verdict, 1)


if __name__ == "__main__":
    sys.exit(main())
