"""Run the training claims of the quick profile over seeds and tabulate their outcomes (issue 9).

    nice python benchmarks/train_claims_over_seeds.py OUT.jsonl 1,2,3 [dynamics_equivalence,min_norm,short_memory]
    python benchmarks/train_claims_over_seeds.py --table OUT.jsonl [MORE.jsonl ...]

Each line of OUT.jsonl: seed, claim, outcome, the claim's own verdict, CPU and wall seconds,
main-stage replicas, sizes needed per control, each control's verdict and predicted power.
"""

from __future__ import annotations

import collections
import json
import sys
import time


def run(out: str, seeds: list[int], names: list[str]) -> None:
    from linrnn.suite import resolve_config, with_family_alpha
    from linrnn.verify.claims import REGISTRY

    cfg = with_family_alpha(resolve_config("quick"), list(REGISTRY))  # each claim's alpha as in `linrnn report`
    with open(out, "a", encoding="utf-8") as fh:
        for s in seeds:
            for name in names:
                c = REGISTRY[name]
                t, tp = time.time(), time.process_time()
                r = c.run(cfg[c.section], cfg.model, seed=s, backend="numpy", dtype="float64", progress=None).claim_dict()
                fh.write(json.dumps({
                    "seed": s, "claim": name, "verdict": r["verdict"], "stat": r["statistic_verdict"],
                    "wall": time.time() - t, "cpu": time.process_time() - tp, "R": r["design"]["replicas"],
                    "needed": r["design"]["needed"],
                    "controls": {cc["id"]: [cc["verdict"], cc.get("power")] for cc in r["controls"]},
                    "statistic": r["statistic"].get("value")}) + "\n")
                fh.flush()


def table(paths: list[str]) -> None:
    by = collections.defaultdict(list)
    for p in paths:
        for line in open(p, encoding="utf-8"):
            r = json.loads(line)
            by[r["claim"]].append(r)
    for c, rs in by.items():
        ctrl = collections.defaultdict(list)
        for r in rs:
            for k, v in r["controls"].items():
                ctrl[k].append(v[0] == "rejected")
        cpu, R = [r["cpu"] for r in rs], [r["R"] for r in rs]
        print(f"{c}: {len(rs)} seeds, false failures {sum(r['stat'] == 'fail' for r in rs)}, errors "
              f"{sum(r['stat'] == 'error' for r in rs)}, inconclusive {sum(r['verdict'] == 'inconclusive' for r in rs)}; "
              f"CPU s/seed mean {sum(cpu) / len(cpu):.1f} max {max(cpu):.1f}; replicas {min(R)}-{max(R)}")
        for k, v in ctrl.items():
            print(f"    {k}: rejected {sum(v)}/{len(v)}")


if __name__ == "__main__":
    if sys.argv[1] == "--table":
        table(sys.argv[2:])
    else:
        run(sys.argv[1], [int(x) for x in sys.argv[2].split(",")],
            (sys.argv[3] if len(sys.argv) > 3 else "dynamics_equivalence,min_norm,short_memory").split(","))
