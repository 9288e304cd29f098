"""Compare the claims' statistics and the controls' statistics of two report.json files (relative 1e-10).

Usage: python benchmarks/compare_reports.py BASE/report.json NEW/report.json [claim_id,claim_id,...]
Exit 0 when every statistic (and verdict) agrees; thresholds are printed, not required to agree.
"""
import json, math, sys

def load(p):
    r = json.load(open(p))
    claims = {c["id"]: c for c in r["claims"]}
    ctrls = {(c["claim"], c["id"]): c for c in r["controls"]}
    return claims, ctrls

def close(a, b, rtol=1e-10):
    if a is None or b is None:
        return a is b
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(close(x, y, rtol) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], rtol) for k in a)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or abs(a - b) <= rtol * max(abs(a), abs(b))
    return a == b

def relerr(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a != b:
        return abs(a - b) / max(abs(a), abs(b))
    return 0.0

base, new = sys.argv[1], sys.argv[2]
ids = sys.argv[3].split(",") if len(sys.argv) > 3 else None
bc, bx = load(base)
nc, nx = load(new)
ok = True
for cid in (ids or sorted(set(bc) & set(nc))):
    b, n = bc[cid], nc[cid]
    numeric = {k: v for k, v in b["statistic"].items() if k != "name"}
    nnum = {k: v for k, v in n["statistic"].items() if k != "name"}
    same = close(numeric, nnum) and b["verdict"] == n["verdict"]
    ok &= same
    thr_note = "threshold equal to 1e-10" if close(b["threshold"]["value"], n["threshold"]["value"]) else \
        f"threshold differs: {b['threshold']['value']} -> {n['threshold']['value']}"
    print(f"{cid:22s} statistic {b['statistic']['value']!r:>24} -> {n['statistic']['value']!r:>24} "
          f"rel {relerr(b['statistic']['value'], n['statistic']['value']):.1e} verdict {b['verdict']}->{n['verdict']} "
          f"{'OK' if same else 'DIFFERENT'}; {thr_note}")
    for key in sorted(k for k in bx if k[0] == cid):
        bb, nn = bx[key], nx.get(key)
        same = nn is not None and close({k: v for k, v in bb["statistic"].items() if k != "name"},
                                        {k: v for k, v in nn["statistic"].items() if k != "name"}) \
            and bb["verdict"] == nn["verdict"]
        ok &= same
        print(f"  control {key[1]:28s} {bb['statistic']['value']!r:>24} -> "
              f"{(nn or {}).get('statistic', {}).get('value')!r:>24} {'OK' if same else 'DIFFERENT'}")
print("ALL EQUAL (1e-10 relative)" if ok else "SOME DIFFER")
sys.exit(0 if ok else 1)
