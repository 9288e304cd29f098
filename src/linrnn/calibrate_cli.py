"""The ``linrnn calibrate`` command: argument parsing only, standard library at import time.

``linrnn calibrate [--profile quick] [--claims id,...] [--seeds N] [--first-seed S]
[-o DIR] [--scheduler ADDRESS [--scheduler-timeout SECONDS]] [--workers K] [--config FILE.toml]`` runs every
(claim, seed) on Dask (:func:`linrnn.calibrate.run_calibration`). Exit status 0 when
no claim failed or erred at any seed, every negative control's power is at least 0.98 and
there are enough seeds to say so (50); 1 when a claim failed or erred; 3 (inconclusive)
when a power falls short of 0.98, a claim has no control, or there are too few seeds;
2 for bad input (including a missing ``distributed``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from linrnn.report_cli import _claims, _positive, _seed


def _num(x: Any) -> str:
    return f"{x:.3g}" if isinstance(x, float) else str(x)


def _ci(ci: Any) -> str:
    """' [95% CI a, b]' for a Clopper-Pearson interval, '' without one."""
    return f" [95% CI {ci[0]:.3g}, {ci[1]:.3g}]" if ci else ""


def register(groups: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    from linrnn.suite import profile_names

    parser = groups.add_parser(
        name, help=help_text,
        description=(
            "Run every claim (or --claims) at --seeds seeds as tasks on Dask distributed (a LocalCluster over this "
            "machine's cores, or --scheduler ADDRESS), store one record per (claim, configuration, seed) in "
            "DIR/records (a re-run resumes), and write DIR/calibration.json, .html and .md: per claim the outcome "
            "counts, the false-failure rate with its Clopper-Pearson 95% interval against the stated alpha, and "
            "each control's power. Needs pip install 'linrnn-bias[distributed]'. Exit status 0 when no claim "
            "failed or erred and every control's power is >= 0.98 over at least 50 seeds; 1 when a claim failed or "
            "erred; 3 (inconclusive) when a power is short of 0.98, a claim has no control, or there are too few "
            "seeds to support the rates; 2 for bad input."
        ),
    )
    parser.add_argument("--profile", choices=profile_names(), default="quick", help="profile (default quick)")
    parser.add_argument("--config", metavar="FILE.toml", help="TOML overrides, in the layout of a profile")
    parser.add_argument("--claims", type=_claims, default=None, metavar="ID,...",
                        help="claims to calibrate (default: every claim of the registry)")
    parser.add_argument("--seeds", type=_positive, default=50, metavar="N", help="seeds per claim (default 50)")
    parser.add_argument("--first-seed", type=_seed, default=0, metavar="S", help="first seed (default 0)")
    parser.add_argument("-o", "--output", default="linrnn-calibration", metavar="DIR",
                        help="store and summary directory (default ./linrnn-calibration); a re-run resumes")
    parser.add_argument("--force", action="store_true",
                        help="replace calibration.json, .html or .md in DIR even if linrnn did not write them")
    parser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                        help="a running Dask scheduler (tcp://host:8786); default: a LocalCluster on this machine")
    parser.add_argument("--scheduler-timeout", type=float, default=None, metavar="SECONDS",
                        help="seconds to wait for the --scheduler to answer before giving up (default 10)")
    parser.add_argument("--workers", type=_positive, default=None, metavar="K",
                        help="worker processes of the LocalCluster, at most the cores this process may use "
                             "(default: all of them)")
    parser.add_argument("--max-memory", default="8GB", metavar="SIZE",
                        help="memory budget of one machine: its workers' largest claims together must fit it, "
                             "checked before the cluster starts (default 8GB)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or lines on stderr")
    from linrnn.model_flags import add_model_flags

    add_model_flags(parser.add_argument_group("model (laid over the profile's and --config's [model] table)"))
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from linrnn.calibrate import run_calibration

    argv = ["--profile", args.profile, "--seeds", str(args.seeds), "--first-seed", str(args.first_seed),
            "-o", args.output]
    for flag, v in (("--config", args.config), ("--scheduler", args.scheduler), ("--workers", args.workers)):
        if v is not None:
            argv += [flag, str(v)]
    if args.claims:
        argv += ["--claims", ",".join(args.claims)]
    log = None if args.quiet else (lambda msg: print(f"linrnn calibrate: {msg}", file=sys.stderr, flush=True))
    from linrnn.model_flags import with_model_flags

    config, words = with_model_flags(args, args.config)
    argv += words
    try:
        result = run_calibration(args.output, profile=args.profile, config=config, claims=args.claims,
                                 seeds=args.seeds, first_seed=args.first_seed, scheduler=args.scheduler,
                                 workers=args.workers, progress=not args.quiet, log=log, argv=argv,
                                 max_memory=args.max_memory, force=args.force,
                                 scheduler_timeout=args.scheduler_timeout)
    except KeyboardInterrupt:
        print(f"linrnn: interrupted; finished records are kept in {args.output}/records and a re-run resumes "
              f"from them.", file=sys.stderr)
        return 130
    s = result.summary
    for c in s["claims"]:
        ff = c["false_failure"]
        print(f"{c['id']:<24} seeds {c['seeds']:>4}  pass {c['pass']:>4}  fail {c['fail']:>3}  "
              f"inconclusive {c['inconclusive']:>3}  error {c['error']:>3}  false-failure "
              f"{ff['failures']}/{c['seeds']}{_ci(ff.get('ci95'))} (alpha {_num(ff['stated'])})")
        for x in c["controls"]:
            print(f"  control {x['id']:<22} power {x['rejected']}/{x['runs']}{_ci(x.get('power_ci'))}")
    print(f"verdict: {s['verdict'].upper()}" + (f" ({s['verdict_reason']})" if s.get("verdict_reason") else ""))
    print(f"calibration: {result.output / 'calibration.html'}")
    return result.exit_status
