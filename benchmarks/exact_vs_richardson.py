"""Power of the lag-NTK checks: the exact finite-width mean against today's bias-corrected test.

One run of :func:`linrnn.verify.check_lag_ntk` per mode on the same configuration
(default: the quick profile's ``[ntk]`` sweep and ``[model]``), same seed and design:

* ``exact``: the raw Monte Carlo mean at the largest width n against E[Theta](n)
  (linrnn.families.gaussian.finite_width); no companion width;
* ``richardson``: the two-point estimate at n and n/2 against the wide limit.

Printed and saved (``benchmarks/results/exact_vs_richardson.json``): per control the
replicas per width the design says reject it with power 0.999 (from the main stage),
their ratio richardson / exact, the median ratio of the standard errors of the tested
diagonal entries at the sizes used, rescaled to equal replicas, and the wall seconds
of each run. Usage::

    python benchmarks/exact_vs_richardson.py [--seed S] [--lags L] [--widths 64,128,...]
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from linrnn import suite
from linrnn.verify.check_ntk import check_lag_ntk
from linrnn.verify.montecarlo import parse_memory


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lags", type=int, default=None)
    ap.add_argument("--widths", default=None)
    ap.add_argument("-o", "--output", default=str(Path(__file__).parent / "results" / "exact_vs_richardson.json"))
    args = ap.parse_args()
    cfg = suite.with_family_alpha(suite.resolve_config("quick"), list(__import__(
        "linrnn.verify.claims", fromlist=["REGISTRY"]).REGISTRY))
    ntk, model = cfg["ntk"], cfg.model
    widths = [int(w) for w in args.widths.split(",")] if args.widths else list(ntk.widths)
    lags = args.lags or ntk.lags
    runs = {}
    for mode in ("exact", "richardson"):
        r = check_lag_ntk(model, widths, lags=lags, replicas=ntk.replicas, seed=args.seed, backend="numpy",
                          max_memory=parse_memory(ntk.max_memory), alpha=ntk.alpha, progress=False,
                          pilot=ntk.pilot, max_replicas=ntk.max_replicas, mean=mode)
        j = r.to_json()
        idx = [(k, 0, 0, k, 0, 0) for k in range(lags)]
        se = np.array([np.asarray(j["corrected_stderr"])[d] for d in idx]) * math.sqrt(j["replicas"])
        runs[mode] = {"verdict": j["verdict"], "replicas": j["replicas"], "seconds": j["seconds"],
                      "needed": j["design"]["needed_main"], "per_replica_sd_diag": se.tolist(),
                      "checks": {c["name"]: c["outcome"] for c in j["checks"]},
                      "controls": {k: v["verdict"] for k, v in j["controls"].items()}}
    ratio_needed = {k: (runs["richardson"]["needed"][k] / runs["exact"]["needed"][k]
                        if runs["exact"]["needed"].get(k) and runs["richardson"]["needed"].get(k) else None)
                    for k in runs["exact"]["needed"]}
    sd_ratio = float(np.median(np.array(runs["richardson"]["per_replica_sd_diag"])
                               / np.array(runs["exact"]["per_replica_sd_diag"])))
    out = {"config": {"model": model.as_dict(), "widths": widths, "lags": lags, "replicas": ntk.replicas,
                      "pilot": ntk.pilot, "max_replicas": ntk.max_replicas, "alpha": ntk.alpha, "seed": args.seed},
           "runs": runs, "needed_ratio_richardson_over_exact": ratio_needed,
           "median_sd_ratio_richardson_over_exact": sd_ratio,
           "seconds_ratio_richardson_over_exact": runs["richardson"]["seconds"] / runs["exact"]["seconds"]}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    for mode, r in runs.items():
        print(f"{mode:>10}: verdict {r['verdict']}, {r['replicas']} replicas per width, {r['seconds']:.1f} s, "
              f"needed {r['needed']}")
    print("needed replicas, richardson / exact:", {k: (None if v is None else round(v, 2)) for k, v in ratio_needed.items()})
    print(f"median per-replica sd of the tested diagonal entries, richardson / exact: {sd_ratio:.2f}")
    print(f"wall seconds, richardson / exact: {out['seconds_ratio_richardson_over_exact']:.2f}")
    print(f"saved {args.output}")


if __name__ == "__main__":
    main()
