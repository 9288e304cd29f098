"""Merge calibration directories of `linrnn calibrate` into one summary (later directories win per claim).

Used when some claims were re-calibrated after a change that touched only them: the
summary keeps every claim's entry from the last directory that calibrated it, recounts
the family-wise line from the per-seed records of those same runs, records every
source command in ``provenance.merged_from``, and renders calibration.json/.html/.md.

    python benchmarks/merge_calibrations.py DIR_A DIR_B [...] -o OUT
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from linrnn.calibrate import calibration_verdict, clopper_pearson
from linrnn.reports.calibration import write_calibration


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dirs", nargs="+", type=Path)
    p.add_argument("-o", "--output", type=Path, required=True)
    a = p.parse_args()
    summaries = [json.loads((d / "calibration.json").read_text()) for d in a.dirs]
    claims: dict[str, dict] = {}
    owner: dict[str, tuple[Path, str]] = {}
    for d, s in zip(a.dirs, summaries):
        for c in s["claims"]:
            claims[c["id"]] = c
            owner[c["id"]] = (d, s["provenance"]["config_hashes"][c["id"]])
    order = [c["id"] for s in summaries for c in s["claims"]]
    names = list(dict.fromkeys(order))
    by_seed: dict[int, list[str]] = {}
    for name in names:
        d, h = owner[name]
        for f in sorted((d / "records").glob(f"{name}-{h}-*.json")):
            r = json.loads(f.read_text())
            by_seed.setdefault(int(r["seed"]), []).append(r["result"].get("statistic_verdict", "error"))
    complete = [s for s, v in by_seed.items() if len(v) == len(names)]
    failed = sum("fail" in by_seed[s] for s in complete)
    out = dict(summaries[-1])
    out["claims"] = [claims[n] for n in names]
    out["family"] = {**summaries[-1]["family"], "claims": names, "runs": len(complete), "failed": failed,
                     "rate": failed / len(complete) if complete else None, "ci95": clopper_pearson(failed, len(complete))}
    out["verdict"] = calibration_verdict(out["claims"])
    out["provenance"] = {**summaries[-1]["provenance"],
                         "merged_from": [{"dir": str(d), "command": s["provenance"]["command"],
                                          "claims": [c["id"] for c in s["claims"]],
                                          "config_hashes": s["provenance"]["config_hashes"],
                                          "seconds": s["provenance"]["seconds"]} for d, s in zip(a.dirs, summaries)]}
    out["provenance"]["config_hashes"] = {n: owner[n][1] for n in names}
    a.output.mkdir(parents=True, exist_ok=True)
    for path in write_calibration(out, a.output):
        print(path)


if __name__ == "__main__":
    main()
