"""The ``linrnn verify`` command group: argument parsing only, standard library at import time.

Each subcommand is registered by its own small function (:func:`_register_ntk`,
:func:`_register_train`) and calls one plain Python function; NumPy, SymPy and the
Monte Carlo code are imported inside the handlers so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from linrnn.core.errors import UsageError


def register(groups: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """Add the ``linrnn.verify`` group with its subcommands to the top-level subparsers ``groups``."""
    parser = groups.add_parser(name, help=help_text, description=help_text)
    sub = parser.add_subparsers(dest="command", metavar="{ntk,train}", parser_class=type(parser))
    sub.required = True
    _register_ntk(sub)
    _register_train(sub)
    return parser


def _register_train(sub: Any) -> None:
    """``verify train``, registered by :mod:`linrnn.train_cli` (standard library only at import)."""
    from linrnn.train_cli import register as register_train

    register_train(sub)


def _int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    return value


def _width_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 256,512,1024, got {text!r}") from None


def _register_ntk(sub: Any) -> None:
    p = sub.add_parser(
        "ntk",
        help="Monte Carlo lag NTK and NNGP of wide linear RNNs against the derived lag weights",
        description=(
            "Estimate the empirical lag NTK and the NNGP of the initial impulse response over independent "
            "draws of a linear RNN, and test them entrywise (Holm correction) against the formulas of `derive`, "
            "with negative controls: the Monte Carlo mean against the exact finite-width mean where it is derived "
            "(lags <= 16), else the two-point bias-corrected estimate against the wide limit (--mean); with --widths, also the rate at "
            "which the per-draw relative error falls with the width. The size is designed: a pilot of fresh "
            "draws estimates each negative control's effect, and the main stage draws as many new replicas "
            "as power 0.999 against every control needs (at least --replicas, at most --max-replicas and "
            "--budget-seconds); --pilot 0 runs exactly --replicas draws."
        ),
        epilog=(
            "exit status: 0 pass (the theory is not refuted and every control was rejected); 1 fail (the "
            "theory is refuted at level --alpha) or error (a statistic is not finite, e.g. float32 overflow "
            "or underflow: the message names the cause); 2 bad input; 3 inconclusive (the theory is not "
            "refuted but a control was not rejected: the run lacks power, and the message says about how "
            "many replicas per width would decide it)."
        ),
    )
    w = p.add_mutually_exclusive_group()
    w.add_argument("--width", type=_int, metavar="n", help="one width n (default 1024)")
    w.add_argument("--widths", type=_width_list, metavar="n1,n2,...", help="a width sweep (two or more widths)")
    p.add_argument("--lags", type=_int, default=16, metavar="L", help="lags j = 0..L-1 (default 16)")
    from linrnn.model_flags import add_model_flags

    add_model_flags(p)  # --param, --sigma-w2, ..., --lr-w: one definition for every command
    p.add_argument("--replicas", type=_int, default=None, metavar="R",
                   help="draws per width in the main stage: the minimum the design may raise, or with --pilot 0 "
                        "the fixed size (default 64; 16 for a family whose kernels are exact at every width)")
    p.add_argument("--pilot", type=_int, default=None, metavar="P",
                   help="fresh pilot draws per width that size the main stage for power 0.999 against every "
                        "control; 0: no design, exactly --replicas draws (default 32; 8 for a family whose kernels "
                        "are exact at every width, at least 4; 16 with --max-skew)")
    p.add_argument("--max-replicas", type=_int, default=4096, metavar="R",
                   help="the most draws per width the design may ask for (default 4096)")
    p.add_argument("--budget-seconds", type=float, default=None, metavar="S",
                   help="cap the main stage at what S seconds allow at the pilot's cost per replica (default none)")
    p.add_argument("--seed", type=_int, default=0, help="random seed (default 0)")
    p.add_argument("--backend", choices=("auto", "numpy", "cupy"), default="auto", help="array backend (default auto)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="working dtype (default float64)")
    p.add_argument("--max-memory", default="4GB", metavar="SIZE", help="peak memory of the draws, e.g. 4GB (default)")
    p.add_argument("--alpha", type=float, default=1e-3, help="family-wise false-failure level (default 1e-3)")
    p.add_argument("--mean", choices=("auto", "exact", "richardson"), default="auto",
                   help="compare the Monte Carlo mean with the exact finite-width expectation (exact; lags <= 16) "
                        "or the two-point bias-corrected estimate with the wide limit (richardson); auto: exact "
                        "wherever it reaches (default)")
    p.add_argument("--max-skew", type=float, default=None, metavar="G",
                   help="a family whose kernels are exact at every width (diagonal, lru): size the main stage "
                        "also for a skewness of every tested mean below G (the claims use 0.05: thousands of draws, "
                        "as the NNGP values L_j L_k stay skewed at every width); default: no such bound")
    p.add_argument("--json", action="store_true", help="print the results object as JSON on stdout, nothing else")
    p.add_argument("--save", metavar="PATH.npz", help="save the first draw's W, F, C and its exact lag NTK")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --save file that linrnn did not write (checked before the run)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run_ntk)


def run_ntk(args: argparse.Namespace) -> int:
    """Handler of ``linrnn verify ntk``: exit 0 pass, 1 fail or error, 3 inconclusive (2 bad input, raised)."""
    from linrnn.verify.check_ntk import check_lag_ntk
    from linrnn.verify.montecarlo import parse_memory

    if args.save is not None and not str(args.save).endswith(".npz"):
        raise UsageError(f"--save needs a path ending in .npz, got {args.save!r}")
    if args.save is not None:
        from linrnn.core.files import check_new_file

        check_new_file(args.save, "the --save file", force=args.force)
    from linrnn.model_flags import spec_from_args

    spec = spec_from_args(args)
    exact = spec.exact_at_every_width  # iid units: the mean is the derived kernel at every width
    if args.replicas is None:
        args.replicas = 16 if exact else 64
    if args.pilot is None:  # the skewness bound needs skewness estimates (16 draws)
        args.pilot = (8 if args.max_skew is None else 16) if exact else 32
    widths = args.widths if args.widths is not None else [args.width if args.width is not None else 1024]
    if args.widths is not None and len(set(args.widths)) < 2:
        raise UsageError("--widths needs at least two different widths; use --width for one")
    for n in widths:
        if n < 1:
            raise UsageError(f"every width must be at least 1, got {n}")
    if args.seed < 0:
        raise UsageError(f"--seed must be non-negative, got {args.seed}")
    if args.pilot < 0 or args.pilot == 1:
        raise UsageError(f"--pilot must be 0 (no design) or at least 2, got {args.pilot}")
    if args.pilot and args.max_replicas < args.replicas:
        raise UsageError(f"--max-replicas ({args.max_replicas}) is below --replicas ({args.replicas})")
    if args.budget_seconds is not None and not args.budget_seconds > 0:
        raise UsageError(f"--budget-seconds must be positive, got {args.budget_seconds}")
    from linrnn.core.spec import ModelSpec

    if exact:
        return _run_exact_kernel(args, spec, widths)
    if args.max_skew is not None:
        raise UsageError(f"--max-skew applies to the families whose kernels are exact at every width, not to the "
                         f"{spec.family} family")
    if not isinstance(spec, ModelSpec):
        raise UsageError(f"verify ntk runs the dense RNN families only (gaussian, orthogonal), not the {spec.family} "
                         f"family; its kernels are checked by its claim in linrnn report")
    result = check_lag_ntk(
        spec, widths, lags=args.lags, replicas=args.replicas, seed=args.seed,
        backend=args.backend, dtype=args.dtype, max_memory=parse_memory(args.max_memory), alpha=args.alpha,
        progress=not args.no_progress, keep_first=args.save is not None, pilot=args.pilot,
        max_replicas=args.max_replicas, budget_seconds=args.budget_seconds, mean=args.mean, lags_flag="--lags",
    )
    if args.save is not None:
        first = result.top.first_draw
        assert first is not None
        from linrnn.core.files import save_npz_atomic

        save_npz_atomic(args.save, dict(
            W=first["W"], F=first["F"], C=first["C"], ntk=first["ntk"],
            sigma_w2=spec.sigma_w2, sigma_f2=spec.sigma_f2, sigma_c2=spec.sigma_c2,
            lr_c=spec.lr_c, lr_f=spec.lr_f, lr_w=spec.lr_w, param=spec.param,
            lags=args.lags, width=result.verdict_width, seed=args.seed, dtype=result.backend["dtype"],
        ))
    if args.json:
        json.dump(result.to_json(), sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print(result.table())
        if args.save is not None:
            print(f"saved the first draw at n = {result.verdict_width} to {args.save}")
    from linrnn.core.outcome import exit_status

    return exit_status(result.verdict)


def _run_exact_kernel(args: argparse.Namespace, spec: Any, widths: list[int]) -> int:
    """``verify ntk`` for a family whose derived kernels are exact at every width (:mod:`linrnn.verify.kernel_check`)."""
    from linrnn.core.outcome import exit_status
    from linrnn.families import model_of
    from linrnn.verify.kernel_check import verify_kernel
    from linrnn.verify.montecarlo import parse_memory

    for flag, given in (("--save", args.save is not None), ("--mean", args.mean != "auto"),
                        ("--budget-seconds", args.budget_seconds is not None)):
        if given:
            raise UsageError(f"{flag} does not apply to the {spec.family} family, whose derived kernels are exact at "
                             f"every width (its check has no dense draw to save, no finite-width mean to choose and "
                             f"a design capped by --max-replicas)")
    max_skew = args.max_skew
    flags = {"widths": sorted(set(widths)), "lags": args.lags, "replicas": args.replicas, "pilot": args.pilot,
             "max_replicas": args.max_replicas, "max_skew": max_skew, "seed": args.seed, "alpha": args.alpha,
             "max_memory": args.max_memory, "backend": args.backend, "dtype": args.dtype}
    result = verify_kernel(model_of(spec), widths, lags=args.lags, replicas=args.replicas, pilot=args.pilot,
                           max_replicas=args.max_replicas, max_skew=max_skew, alpha=args.alpha,
                           max_memory=parse_memory(args.max_memory), seed=args.seed, backend=args.backend,
                           dtype=args.dtype, progress=not args.no_progress, flags=flags)
    if args.json:
        json.dump(result.to_json(), sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print(result.table())
    return exit_status(result.verdict)
