"""The ``linrnn report`` command group: argument parsing only, standard library at import time.

* ``linrnn report [-o DIR] [--profile quick|full] [--config FILE.toml] [--backend ...]
  [--seed N] [--force] [--no-cache] [--workers K]`` runs the claim suite
  (:func:`linrnn.suite.run_report`) and writes the report directory; exit 0 pass, 1 fail
  or error, 2 bad input, 3 inconclusive (:mod:`linrnn.core.outcome`).
* ``linrnn report render RESULTS.json -o DIR [--force]`` re-renders a report from its
  results file alone (:func:`linrnn.reports.render.render`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _claims(text: str) -> list[str]:
    """Claim ids separated by commas (``--claims`` of report and calibrate); checked against the registry later."""
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected claim ids separated by commas")
    return names


def register(groups: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """Add the ``report`` group to the top-level subparsers ``groups``."""
    parser = groups.add_parser(
        name, help=help_text,
        description=(
            "Derive, verify and present: run the claim suite (derived formulas, Monte Carlo checks with negative "
            "controls) and write DIR/report.html, report.md, report.json, report.tex, figures/ and "
            "derivation.tex. Exit status 0 when every claim passes (its statistic and every control rejected), "
            "1 when a claim fails or errs (the report is still written), 2 for bad input, 3 when a claim is "
            "inconclusive (a control not rejected)."
        ),
    )
    parser.add_argument("-o", "--output", default="linrnn-report", metavar="DIR",
                        help="report directory (default ./linrnn-report)")
    from linrnn.suite import profile_names

    parser.add_argument("--profile", choices=profile_names(), default="quick",
                        help="quick: a few minutes on a CPU (default); full: paper-scale, meant for a GPU "
                             "(profiles are the TOML files of linrnn/profiles)")
    parser.add_argument("--config", metavar="FILE.toml",
                        help="TOML file overriding profile fields, e.g. [model] sigma_w2 = 0.8 or "
                             "[ntk] widths = [128, 256, 512]")
    parser.add_argument("--claims", type=_claims, default=None, metavar="ID,...",
                        help="run only these claims (and the derivation), each at alpha = family_alpha / m over "
                             "the m claims run (default: every claim of the registry)")
    parser.add_argument("--backend", choices=("auto", "numpy", "cupy"), default=None,
                        help="array backend (default: numpy for quick, auto for full)")
    parser.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing report in DIR (only a directory holding a linrnn report and "
                             "nothing else is ever replaced; any other directory is refused)")
    parser.add_argument("--no-cache", action="store_true",
                        help="neither reuse nor store experiment results in DIR/.cache")
    parser.add_argument("--workers", type=_positive, default=None, metavar="K",
                        help="worker processes running the claims (default: min(2, cores); 1: in this process); "
                             "the report does not depend on it")
    from linrnn.suite import DEFAULT_MAX_MEMORY

    parser.add_argument("--max-memory", default=DEFAULT_MAX_MEMORY, metavar="SIZE",
                        help=f"memory budget: the largest experiments run at once must fit it, checked before any "
                             f"work, e.g. 4GB or 24GiB (default {DEFAULT_MAX_MEMORY})")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    from linrnn.model_flags import add_model_flags

    add_model_flags(parser.add_argument_group("model (laid over the profile's and --config's [model] table)"))
    parser.set_defaults(func=run_report)
    sub = parser.add_subparsers(dest="report_command", metavar="{render}", parser_class=type(parser))
    sub.required = False
    r = sub.add_parser("render", help="re-render a report from its results file alone",
                       description="Re-render report.html, report.md, report.tex and figures from RESULTS.json "
                                   "(a report.json written by `linrnn report`) into DIR.")
    r.add_argument("results", metavar="RESULTS.json", help="the results file")
    r.add_argument("-o", "--output", dest="render_output", required=True, metavar="DIR", help="report directory")
    r.add_argument("--force", dest="render_force", action="store_true",
                   help="replace an existing report in DIR (never a directory that is not a linrnn report)")
    r.set_defaults(func=run_render)
    return parser


def _log(args: argparse.Namespace) -> Any:
    if args.quiet:
        return None
    return lambda msg: print(f"linrnn report: {msg}", file=sys.stderr, flush=True)


def run_report(args: argparse.Namespace) -> int:
    from linrnn.suite import DEFAULT_MAX_MEMORY, main_summary, run_report as run

    argv = ["-o", args.output, "--profile", args.profile]
    if args.config:
        argv += ["--config", args.config]
    if args.claims:
        argv += ["--claims", ",".join(args.claims)]
    if args.backend:
        argv += ["--backend", args.backend]
    argv += ["--seed", str(args.seed)] + (["--force"] if args.force else []) + (["--no-cache"] if args.no_cache else [])
    if args.workers is not None:
        argv += ["--workers", str(args.workers)]
    if args.max_memory != DEFAULT_MAX_MEMORY:
        argv += ["--max-memory", str(args.max_memory)]
    from linrnn.model_flags import with_model_flags

    config, words = with_model_flags(args, args.config)
    argv += words
    try:
        result = run(args.output, profile=args.profile, config=config, backend=args.backend, seed=args.seed,
                     force=args.force, use_cache=not args.no_cache, log=_log(args), argv=argv, workers=args.workers,
                     max_memory=args.max_memory, claims=args.claims)
    except KeyboardInterrupt:
        print(f"linrnn: interrupted; no report was written; finished experiments are kept in "
              f"{args.output}/.cache and a re-run resumes from them.", file=sys.stderr)
        return 130
    print(main_summary(result.results))
    print(f"report: {result.output / 'report.html'}")
    return result.exit_status


def run_render(args: argparse.Namespace) -> int:
    from linrnn.reports.render import render

    results = render(args.results, args.render_output, force=args.render_force)
    print(f"rendered {args.render_output}/report.html from {args.results} (verdict {results['verdict']})")
    from linrnn.core.outcome import exit_status

    return exit_status(results["verdict"])
