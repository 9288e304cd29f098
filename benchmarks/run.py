"""The benchmark suite: every ``benchmarks/bench_*.py`` case, measured side by side in one run.

    python benchmarks/run.py [--quick] [--only NAME[,NAME]] [-o FILE]
    python benchmarks/run.py --readme [-o FILE]      # only regenerate the README table

Each module ``bench_NAME.py`` exposes ``cases(quick: bool) -> list[dict]`` (the record is
described in ``benchmarks/harness.py``; a module may leave out ``status``, ``goal`` and
``met``, and may give a time as a summary dict with ``median`` and ``best``): a case times a subject against its baseline
in the same process, one after the other, so that both see the same machine load, and
reports their ratio with the target it must meet. The runner imports the modules,
runs their cases, prints one line per case and writes ``benchmarks/results/bench.json``
(schema ``linrnn-bias/bench/1``: the cases, the machine, library versions, the load
average before and after). ``--only`` runs the named modules (``ntk``, ``ntk_torch``,
...) and keeps the other modules' cases of an existing results file. A full run that
writes the default file also regenerates the performance table of ``README.md``
between the markers ``<!-- bench:start -->`` and ``<!-- bench:end -->``; ``--quick``
runs small sizes (a smoke test of the harness) into ``bench-quick.json`` and leaves
the README alone. A case whose peer library is missing is recorded as skipped with
the reason; a case that raises is recorded as an error; neither stops the run.

Why a runner of our own and not asv or pytest-benchmark: the targets are ratios of
two implementations timed side by side in one run (the subject against a peer library
or the previous algorithm, on the same draw, with their agreement checked), on a
shared machine whose load moves absolute times. asv times one function per benchmark
across the commits of a repository and needs its environment builder for every
commit; pytest-benchmark times functions and compares runs saved earlier, but has no
notion of a case made of two timings, a ratio and a target, and would make the
benchmarks part of the test suite, whose tests must not assert times. What we need
(discover, run, ratio, JSON, a table) is about 150 lines.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import inspect
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "bench.json"
QUICK_RESULTS = HERE / "results" / "bench-quick.json"
README = ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
SCHEMA = "linrnn-bias/bench/1"

sys.path.insert(0, str(HERE))
import harness  # noqa: E402


def modules() -> dict[str, Path]:
    """NAME -> path of every benchmarks/bench_NAME.py."""
    return {p.stem[len("bench_"):]: p for p in sorted(HERE.glob("bench_*.py"))}


def load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(f"linrnn_bench_{name}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run_module(name: str, path: Path, quick: bool, backend: str = "numpy") -> list[dict[str, Any]]:
    """The cases of one module, each tagged with the module; an exception becomes one error case.

    ``backend`` other than numpy: a module whose ``cases`` takes a ``backend`` keyword runs its
    cases on it; any other module (the CPU peers, the start-up times) gives one skipped case."""
    t0 = time.perf_counter()
    load0 = harness.load_average()
    try:
        mod = load(name, path)
        if not hasattr(mod, "cases"):
            return []
        if backend == "numpy":
            out = list(mod.cases(quick))
        elif "backend" in inspect.signature(mod.cases).parameters:
            out = list(mod.cases(quick, backend=backend))
        else:
            out = [harness.skipped(f"{name}:{backend}", f"bench_{name}.py measures the CPU (NumPy) path only",
                                   subject=name, baseline="", target=None,
                                   command=f"python benchmarks/run.py --only {name}")]
    except Exception as exc:
        traceback.print_exc()
        out = [{"name": f"{name}:error", "status": "error", "reason": f"{type(exc).__name__}: {exc}",
                "subject": None, "baseline": None, "seconds": {}, "ratio": None, "target": None, "goal": ">=",
                "met": None, "command": f"python benchmarks/run.py --only {name}", "detail": {}}]
    load1 = harness.load_average()
    for c in out:
        normalise(c)
        c["module"] = name
        c["load_average"] = [load0, load1]  # 1-minute load at the module's start and end
        c.setdefault("detail", {})["module_seconds"] = round(time.perf_counter() - t0, 2)
    return out


def _seconds(v: Any) -> float | None:
    """A time in the record: a number, or a summary dict (its median, else its best)."""
    if isinstance(v, dict):
        v = v.get("median", v.get("best"))
    return None if v is None else float(v)


def normalise(c: dict[str, Any]) -> dict[str, Any]:
    """Fill the fields a module may leave out: status, goal, met (from ratio, target and goal)."""
    c.setdefault("status", "ok")
    c.setdefault("goal", ">=")
    c.setdefault("detail", {})
    c.setdefault("seconds", {})
    if "met" not in c:
        r, t = c.get("ratio"), c.get("target")
        c["met"] = None if r is None or t is None else bool(r >= t if c["goal"] == ">=" else r <= t)
    return c


def line(c: dict[str, Any]) -> str:
    if c["status"] != "ok":
        return f"{c['name']}: {c['status']} ({c.get('reason', '')})"
    target = "" if c.get("target") is None else f" (target {c['goal']} {c['target']:g}: {'met' if c['met'] else 'NOT met'})"
    secs = ", ".join(f"{k} {1e3 * _seconds(v):.3g} ms" for k, v in c["seconds"].items() if _seconds(v) is not None)
    ratio = "n/a" if c.get("ratio") is None else f"{c['ratio']:.3g}x"
    return f"{c['name']}: {ratio}{target}; {secs}"


def _fmt_seconds(v: Any) -> str:
    s = _seconds(v)
    if s is None:
        return ""
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def _fmt_load(c: dict[str, Any]) -> str:
    loads = c.get("load_average") or []
    return "-".join(f"{x:.1f}" for x in loads if x is not None)


def table(result: dict[str, Any]) -> str:
    """The README performance table (Markdown) of a results file."""
    lines = [
        f"Measured by `python benchmarks/run.py` on {result['machine'].get('cpu_model', result['machine']['machine'])}, "
        f"{result['machine']['cpu_count']} cores, load average {result['load_average_start']:.2f} at the start and "
        f"{result['load_average_end']:.2f} at the end (a shared machine), {result['created']}; results in "
        "`benchmarks/results/bench.json`. Each ratio is the baseline's time over the subject's, measured side by "
        "side in the same run (for a floor: the subject's time over the floor's); load: the 1-minute load average at "
        "the start and end of the case's module (2 cores; other engineers' jobs share them).",
        "",
        "| case | subject | baseline | subject time | baseline time | ratio | target | met | load | command |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in result["cases"]:
        if c["status"] != "ok":
            lines.append(f"| {c['name']} | {c['subject'] or ''} | {c['baseline'] or ''} | | | {c['status']}: "
                         f"{c.get('reason', '')} | {'' if c['target'] is None else c['goal'] + ' ' + format(c['target'], 'g')} "
                         f"| | {_fmt_load(c)} | `{c['command']}` |")
            continue
        s = c["seconds"]
        target = "" if c["target"] is None else f"{c['goal']} {c['target']:g}"
        met = "" if c["met"] is None else ("yes" if c["met"] else "**no**")
        bound = bool(c.get("detail", {}).get("lower_bound"))
        ratio = "" if c.get("ratio") is None else (">= " if bound else "") + f"{c['ratio']:.3g}x"
        base_t = s.get("baseline", s.get("limit", s.get("baseline_lower_bound")))
        if bound and base_t is not None:
            base_t = f"> {_fmt_seconds(base_t)}"
        lines.append(f"| {c['name']} | {c['subject']} | {c['baseline'] or ''} | {_fmt_seconds(s.get('subject'))} | "
                     f"{base_t if isinstance(base_t, str) else _fmt_seconds(base_t)} | {ratio} | {target} | {met} | "
                     f"{_fmt_load(c)} | `{c['command']}` |")
    libs = ", ".join(f"{k} {v}" for k, v in result["libraries"].items() if v)
    lines += ["", f"Versions: {libs}."]
    return "\n".join(lines)


def write_readme(result: dict[str, Any], readme: Path = README) -> bool:
    """Replace the text between the bench markers of ``readme``; False when the markers are missing."""
    text = readme.read_text()
    if START not in text or END not in text:
        return False
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + START + "\n" + table(result) + "\n" + END + tail)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke test of every case")
    p.add_argument("--only", default=None, metavar="NAME[,NAME]", help="run only these modules (bench_NAME.py)")
    p.add_argument("-o", "--out", type=Path, default=None, help="results file (default benchmarks/results/bench.json)")
    p.add_argument("--readme", action="store_true", help="regenerate the README table from the results file; run nothing")
    p.add_argument("--backend", choices=("numpy", "cupy"), default="numpy",
                   help="array backend of the cases that take one (bench_ntk, bench_train); cupy needs a GPU and "
                        "writes benchmarks/results/bench-cupy.json unless -o is given (default numpy)")
    args = p.parse_args(argv)
    out = args.out or (QUICK_RESULTS if args.quick else RESULTS if args.backend == "numpy"
                       else RESULTS.with_name(f"bench-{args.backend}.json"))
    if args.backend != "numpy" and not args.readme:
        try:
            from linrnn.verify.backend import get_backend

            get_backend(args.backend)
        except Exception as exc:  # no CuPy or no device: one sentence, exit 2, nothing written
            print(f"the {args.backend} backend is not available here ({exc})", file=sys.stderr)
            return 2
    if args.readme:
        if not out.exists():
            print(f"no results file {out}; run the benchmarks first", file=sys.stderr)
            return 2
        ok = write_readme(json.loads(out.read_text()))
        print("README table regenerated" if ok else f"README.md has no {START} / {END} markers", file=sys.stderr)
        return 0 if ok else 2
    found = modules()
    names = list(found) if args.only is None else [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [n for n in names if n not in found]
    if unknown:
        print(f"unknown benchmark module(s) {', '.join(unknown)}; choose from {', '.join(found)}", file=sys.stderr)
        return 2
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick,
        "backend": args.backend,
        "machine": harness.machine_info(),
        "libraries": harness.library_versions(),
        "load_average_start": harness.load_average(),
        "cases": [],
    }
    for name in names:
        print(f"== {name}", flush=True)
        for c in run_module(name, found[name], args.quick, args.backend):
            print("  " + line(c), flush=True)
            result["cases"].append(c)
    result["load_average_end"] = harness.load_average()
    if args.only is not None and out.exists():  # keep the other modules' cases
        old = json.loads(out.read_text())
        kept = [c for c in old.get("cases", []) if c.get("module") not in names]
        result["cases"] = kept + result["cases"]
        result["partial_runs"] = old.get("partial_runs", []) + [{"command": result["command"], "created": result["created"]}]
    order = {n: i for i, n in enumerate(found)}
    result["cases"].sort(key=lambda c: order.get(c.get("module", ""), len(order)))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"wrote {out}")
    if out.resolve() == RESULTS.resolve() and not args.quick and write_readme(result):
        print("README table regenerated")
    failed = [c["name"] for c in result["cases"] if c["status"] == "error"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
