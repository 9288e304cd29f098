"""``linrnn verify train``: train wide linear RNNs and the SCNN side by side (argument parsing only).

Registered by :func:`linrnn.verify_cli._register_train`. Three modes, each one plain function:

* one width and one q (default): :func:`train_single` trains the RNN and the scaled
  CNN from the RNN's own L(0) and reports the step, final losses and the distance
  d = max_k ||L_rnn(k) - L_scnn(k)|| / ||L*||; ``--save`` keeps the run as ``.npz``;
* ``--widths n1,n2,...``: the dynamics-equivalence claim,
  :mod:`linrnn.verify.claims.dynamics_equivalence`;
* ``--sigma-w2s q1,q2,...``: the short-memory claim, :mod:`linrnn.verify.claims.short_memory`;
* ``--teacher co2``: the CO2 claim, :mod:`linrnn.verify.claims.co2`;
* a family whose model names a training claim (``TRAINING_CLAIM``, e.g. the diagonal
  family's :mod:`linrnn.families.diagonal.training_claim`): that claim's width sweep.

The options are the fields of the claims' configuration dataclasses (``--replicas``
is ``seeds``) and of the model specification; options left out take the dataclass
defaults, shown in ``--help``. The model flags are those of every command (:mod:`linrnn.model_flags`).
Only the standard library and the configuration dataclasses are imported at module
level, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from linrnn.core.errors import UsageError

TEACHER_CHOICES = ("decay", "spike", "oscillator", "co2")

#: Defaults of the single-run mode (the sweeps take theirs from their claims' configuration dataclasses).
SINGLE_DEFAULTS: dict[str, Any] = {"width": 256, "seeds": 1}
#: The memory budget of one training run when --max-memory is not given.
DEFAULT_MAX_MEMORY = "4GB"


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 64,128,256, got {text!r}") from None


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers such as 0.5,0.9,1.2, got {text!r}") from None


def _lr(text: str) -> str | float:
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, got {text!r}") from None


def register(sub: Any) -> None:
    """Add ``train`` to the subparsers of the ``linrnn.verify`` group."""
    from linrnn.verify.claims import co2, dynamics_equivalence, short_memory

    D, S, C = dynamics_equivalence.Config(), short_memory.Config(), co2.Config()
    p = sub.add_parser(
        "train",
        help="train wide linear RNNs and the scaled CNN from the same L(0); width or sigma_W^2 sweeps",
        description=(
            "Train a linear RNN by full-batch gradient descent and the scaled CNN with the derived lag weights "
            "from the RNN's initial impulse response, and compare them. With --widths, test the n^-1/2 "
            "convergence of the two (dynamics equivalence); with --sigma-w2s, compare the test error after "
            "training across sigma_W^2 with the theory (short-memory bias). Options left out take the "
            "defaults of the mode (the configuration dataclasses of verify/claims/)."
        ),
    )
    p.add_argument("--loss", choices=("all", "last"), default=None,
                   help=f"loss over all times or the last (default {D.loss})")
    w = p.add_mutually_exclusive_group()
    w.add_argument("--width", type=_int, metavar="n",
                   help=f"one width (default {SINGLE_DEFAULTS['width']}; {S.width} with --sigma-w2s)")
    w.add_argument("--widths", type=_ints, metavar="n1,n2,...", help="dynamics-equivalence sweep over widths")
    p.add_argument("--seq-len", type=_int, metavar="T", help=f"sequence length T = number of lags (default {D.seq_len})")
    p.add_argument("--n-seq", type=_int, metavar="N", help=f"number of training sequences (default {D.n_seq})")
    p.add_argument("--teacher", default=None, metavar="{" + ",".join(TEACHER_CHOICES) + "}",
                   help=f"teacher impulse response (default {D.teacher})")
    p.add_argument("--rho", type=float, help=f"decay teacher: L*_j = rho^j (default {D.rho:g})")
    p.add_argument("--delay", type=_int, help=f"spike teacher: the delay d (default {D.delay})")
    p.add_argument("--omega", type=float, help=f"oscillator teacher: r^j cos(omega j), omega (default {D.omega:g})")
    p.add_argument("--r", type=float, help=f"oscillator teacher: the damping r (default {D.r:g})")
    p.add_argument("--inputs", choices=("white", "ar1"), default=None, help=f"input process (default {D.inputs})")
    p.add_argument("--phi", type=float, help=f"AR(1) input coefficient (default {D.phi:g})")
    p.add_argument("--noise", type=float, help=f"output noise standard deviation (default {D.noise:g})")
    q = p.add_mutually_exclusive_group()
    q.add_argument("--sigma-w2s", type=_floats, metavar="q1,q2,...", help="short-memory sweep over sigma_W^2")
    from linrnn.model_flags import add_model_flags

    # the model flags of every command (one scalar input and output: no --n-in, --n-out); --sigma-w2 excludes --sigma-w2s
    add_model_flags(p, omit=("n_in", "n_out"), groups={"sigma_w2": q})
    p.add_argument("--steps", type=_int, help=f"gradient steps (default {D.steps}; {S.steps} with --sigma-w2s; "
                                              f"{C.steps} with --teacher co2)")
    p.add_argument("--lr", type=_lr, default=None, metavar="{auto,FLOAT}",
                   help=f"base step; auto = lr-factor / mu_max of the curvature (single runs: the draws' own "
                        f"Gauss-Newton curvature at their initial points; sweeps: the wide limit's lag-weighted "
                        f"curvature, capped at 2 / (1.25 mu_max) of the pilot draws' own curvature at every width) "
                        f"(default {D.lr})")
    p.add_argument("--lr-factor", type=float, help=f"safety factor of --lr auto, in (0, 2) (default {D.lr_factor:g})")
    p.add_argument("--replicas", type=_int, metavar="R",
                   help=f"single run: draws (default {SINGLE_DEFAULTS['seeds']}); sweeps: the fewest main-stage "
                        f"replicas of the design (default {D.min_replicas} / {S.min_replicas})")
    p.add_argument("--seed", type=_int, default=None, help="random seed (default 0)")
    p.add_argument("--backend", choices=("auto", "numpy", "cupy"), default="numpy", help="array backend (default numpy)")
    p.add_argument("--alpha", type=float, help=f"false-failure level of the sweeps' checks (default {D.alpha:g})")
    p.add_argument("--pilot", type=_int, metavar="P",
                   help=f"sweeps: pilot replicas of the two-stage design (default {D.pilot}; {S.pilot} with --sigma-w2s)")
    p.add_argument("--max-replicas", type=_int, metavar="R",
                   help=f"sweeps: most main-stage replicas the design may ask for (default {D.max_replicas})")
    p.add_argument("--budget-seconds", type=float, metavar="S",
                   help="sweeps: time budget; the main stage is capped at what it allows at the pilot's cost per "
                        "replica (default: none)")
    p.add_argument("--workers", type=_int, metavar="K",
                   help="single run: train the replicas in K processes (default min(2, cores), 1 when the "
                        "load average says the cores are busy); the results do not depend on K")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout, nothing else")
    p.add_argument("--save", metavar="PATH.npz", help="single run: save initial weights, data and trajectories")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --save file that linrnn did not write (checked before the run)")
    p.add_argument("--max-memory", default=DEFAULT_MAX_MEMORY, metavar="SIZE",
                   help=f"memory budget of one training run, checked before any work, e.g. 4GB or 24GiB "
                        f"(default {DEFAULT_MAX_MEMORY})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=run_train)


# ------------------------------------------------------------------ the handler


#: Options of the claims' configuration dataclasses: option (argparse dest) -> field.
_FLAG_TO_FIELD = {
    "loss": "loss", "seq_len": "seq_len", "n_seq": "n_seq", "teacher": "teacher", "rho": "rho", "delay": "delay",
    "omega": "omega", "r": "r", "inputs": "inputs", "phi": "phi", "noise": "noise", "steps": "steps", "lr": "lr",
    "lr_factor": "lr_factor", "replicas": "seeds", "alpha": "alpha", "width": "width", "sigma_w2s": "sigma_w2s",
    "pilot": "pilot", "max_replicas": "max_replicas", "budget_seconds": "budget_seconds",
}


def _config(args: argparse.Namespace, base: Any, **extra: Any) -> Any:
    """``base`` (a claim's configuration) with the options given that are its fields, and ``extra``."""
    from linrnn.core.configure import configure, field_names

    fields = set(field_names(base))
    values = {key: getattr(args, flag) for flag, key in _FLAG_TO_FIELD.items()
              if getattr(args, flag, None) is not None and key in fields}
    return configure(base, {**values, **extra}, "verify train")


def _model(args: argparse.Namespace) -> Any:
    """The model specification from the options (:func:`linrnn.model_flags.spec_from_args`: the defaults are the
    specification's, as for every command)."""
    from linrnn.core.spec import ModelSpec
    from linrnn.model_flags import spec_from_args

    spec = spec_from_args(args)
    if not isinstance(spec, ModelSpec):
        raise UsageError(f"verify train trains the dense RNN families only (gaussian, orthogonal), not the "
                         f"{spec.family} family")
    return spec


def _sweep_extra(args: argparse.Namespace) -> dict[str, Any]:
    """In the sweeps, ``--replicas`` is the fewest main-stage replicas of the design (``min_replicas``)."""
    return {} if args.replicas is None else {"min_replicas": args.replicas}


def _seed(args: argparse.Namespace) -> int:
    return 0 if args.seed is None else int(args.seed)


def _workers(args: argparse.Namespace) -> int:
    """``--workers``, by default min(2, cores) on an idle machine and 1 on a busy one.

    Busy: a 1-minute load average above cores - 0.5 (the rule of the Monte Carlo's
    draw-ahead thread). On this project's shared 2-core machine, with other processes
    holding the cores, a second worker only added its start-up (about 1 s) and
    contention; the results are the same for any number of workers.
    """
    if args.workers is not None:
        return int(args.workers)
    import os

    from linrnn.core.machine import available_cores

    cores = available_cores()
    busy = hasattr(os, "getloadavg") and os.getloadavg()[0] > cores - 0.5
    return 1 if busy else max(1, min(2, cores))


def _validate(args: argparse.Namespace) -> None:
    for flag, value in (("--width", args.width), ("--seq-len", args.seq_len), ("--n-seq", args.n_seq),
                        ("--steps", args.steps), ("--replicas", args.replicas), ("--workers", args.workers)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if args.widths is not None:
        if any(n < 1 for n in args.widths):
            raise UsageError(f"every width must be at least 1, got {args.widths}")
        if len(set(args.widths)) < 2:
            raise UsageError("--widths needs at least two different widths; use --width for one")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be non-negative, got {args.seed}")
    if args.workers is not None:
        from linrnn.core.machine import check_workers

        check_workers(args.workers)  # at most the cores this process may use, before any work
    if args.teacher is not None and args.teacher not in TEACHER_CHOICES:
        raise UsageError(f"unknown teacher {args.teacher!r}; choose one of {', '.join(TEACHER_CHOICES)}")
    if args.widths is not None and args.sigma_w2s is not None:
        raise UsageError("give --widths or --sigma-w2s, not both")
    if args.save is not None:
        if not str(args.save).endswith(".npz"):
            raise UsageError(f"--save needs a path ending in .npz, got {args.save!r}")
        if args.widths is not None or args.sigma_w2s is not None:
            raise UsageError("--save keeps a single run; it cannot be combined with --widths or --sigma-w2s")
        from linrnn.core.files import check_new_file

        check_new_file(args.save, "the --save file", force=args.force)
    if isinstance(args.lr, float) and not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr must be 'auto' or a finite positive number, got {args.lr}")


def _check_memory(args: argparse.Namespace, needed: int, what: str) -> None:
    """A run's peak memory (a claim's ``memory(config, model)``) against ``--max-memory``, before any work."""
    from linrnn.core.validate import check_memory, parse_memory

    check_memory(what, needed, parse_memory(args.max_memory), "--max-memory")


def run_train(args: argparse.Namespace) -> int:
    """Handler of ``linrnn verify train``: 0 on success; sweeps: the exit status of the claim's outcome
    (0 pass, 1 fail or error, 3 inconclusive)."""
    _validate(args)
    from linrnn.core.outcome import exit_status

    from linrnn.verify.backend import get_backend
    from linrnn.verify.progress import Progress

    backend = get_backend(args.backend)
    from linrnn.core.spec import ModelSpec
    from linrnn.model_flags import spec_from_args

    spec = spec_from_args(args)
    if not isinstance(spec, ModelSpec):
        return _run_family_claim(args, spec, backend)
    model = _model(args)
    if args.teacher == "co2":
        return _run_co2(args, model, backend)
    if args.widths is not None:
        from linrnn.verify.claims import dynamics_equivalence

        cfg = _config(args, dynamics_equivalence.Config(), widths=args.widths, **_sweep_extra(args))
        _check_memory(args, dynamics_equivalence.memory(cfg, model),
                      f"one training run at width {max(cfg.widths)} (T = {cfg.seq_len}, {cfg.n_seq} sequences, "
                      f"{cfg.steps} steps)")
        total = float(sum(n * n for n in cfg.widths) * (cfg.pilot + cfg.min_replicas))
        with Progress(total, "verify train --widths", enabled=not args.no_progress) as bar:
            t = dynamics_equivalence.run_table(cfg, model, seed=_seed(args), backend=backend, progress=bar.advance)
        out = {"schema_version": 1, "mode": "widths", "widths": t.widths, "distance": t.distance_mean,
               "distance_se": t.distance_se, "slope": t.slope, "slope_ci": t.ci, "verdict": t.claim.verdict,
               "replicas": t.design.replicas, "claim": t.claim.claim_dict()}
        _emit(args, out, TablePrinter().doprint(t))
        return exit_status(t.claim.verdict)
    if args.sigma_w2s is not None:
        from linrnn.verify.claims import short_memory

        cfg = _config(args, short_memory.Config(), **_sweep_extra(args))
        _check_memory(args, short_memory.memory(cfg, model),
                      f"one training run at width {cfg.width} (T = {cfg.seq_len}, {cfg.n_seq} sequences, "
                      f"{cfg.steps} steps)")
        n = cfg.width
        total = float(len(cfg.sigma_w2s) * (cfg.pilot + cfg.min_replicas) * (n * n + (n // 2) ** 2))
        with Progress(total, "verify train --sigma-w2s", enabled=not args.no_progress) as bar:
            t = short_memory.run_table(cfg, model, seed=_seed(args), backend=backend, progress=bar.advance)
        out = {"schema_version": 1, "mode": "sigma_w2s", "sigma_w2s": t.sigma_w2, "theory": t.theory,
               "experiment_mean": t.experiment_mean, "experiment_se": t.experiment_se,
               "bias_corrected": t.bias_corrected, "bias_corrected_se": t.bias_corrected_se,
               "best_q_theory": t.best_q_theory, "best_q_experiment": t.best_q_experiment,
               "verdict": t.claim.verdict, "replicas": t.design.replicas, "claim": t.claim.claim_dict()}
        _emit(args, out, TablePrinter().doprint(t))
        return exit_status(t.claim.verdict)
    from linrnn.verify.claims import dynamics_equivalence

    cfg = _config(args, dynamics_equivalence.Config(),
                  seeds=args.replicas if args.replicas is not None else SINGLE_DEFAULTS["seeds"])
    width = args.width if args.width is not None else SINGLE_DEFAULTS["width"]
    from linrnn.verify.claims.training_config import training_memory

    workers = _workers(args)
    at_once = max(1, min(workers, cfg.seeds))  # replicas trained at the same time, one per worker process
    _check_memory(args, at_once * training_memory(cfg, model, (width,)),
                  f"a training run at width {width} (T = {cfg.seq_len}, {cfg.n_seq} sequences, {cfg.steps} steps)"
                  + (f" in each of {at_once} worker processes" if at_once > 1 else ""))
    with Progress(float(cfg.seeds * (cfg.steps + 1)), "verify train", enabled=not args.no_progress) as bar:
        run = train_single(cfg, model, width, seed=_seed(args), backend=backend, workers=workers,
                           progress=lambda k, loss: bar.advance(1, f"loss {loss:.3g}"))
    if args.save is not None:
        save_run(args.save, run)
    _emit(args, run_summary(run), _single_table(run, args.save))
    return 0


def training_claim(spec: Any) -> Any:
    """The training claim's module of a family that is not dense (its model's ``TRAINING_CLAIM``), or None."""
    import importlib

    from linrnn.families import model_of

    name = getattr(model_of(spec), "TRAINING_CLAIM", None)
    return None if name is None else importlib.import_module(name)


def _run_family_claim(args: argparse.Namespace, spec: Any, backend: Any) -> int:
    """``verify train`` for a family whose model names a training claim (``TRAINING_CLAIM``): its width sweep."""
    from linrnn.core.outcome import exit_status
    from linrnn.families import FAMILIES, family
    from linrnn.verify.progress import Progress

    module = training_claim(spec)
    if module is None:
        with_claim = [f for f in FAMILIES if getattr(family(f), "TRAINING_CLAIM", None) is not None]
        raise UsageError(f"verify train trains the dense RNN families (gaussian, orthogonal) and the families with a "
                         f"training claim ({', '.join(with_claim)}), not the {spec.family} family")
    given = [flag for flag, value in (("--width", args.width), ("--sigma-w2s", args.sigma_w2s),
                                      ("--save", args.save), ("--workers", args.workers)) if value is not None]
    if given or args.teacher == "co2":
        raise UsageError(f"for the {spec.family} family verify train runs its training claim, a width sweep: give "
                         f"--widths (or nothing, for its default widths), not {(given or ['--teacher co2'])[0]}")
    cfg = _config(args, module.Config(), **({"widths": args.widths} if args.widths is not None else {}),
                  **_sweep_extra(args))
    module.check(cfg, spec)
    _check_memory(args, module.memory(cfg, spec),
                  f"one training run at width {max(cfg.widths)} (T = {cfg.seq_len}, {cfg.n_seq} sequences, "
                  f"{cfg.steps} steps)")
    total = float(sum(cfg.widths) * (cfg.pilot + cfg.min_replicas))
    with Progress(total, "verify train", enabled=not args.no_progress) as bar:
        t = module.run_table(cfg, spec, seed=_seed(args), backend=backend, progress=bar.advance)
    out = {"schema_version": 1, "mode": "widths", "family": spec.family, "widths": t.widths,
           "distance": t.distance_mean, "distance_se": t.distance_se, "slope": t.slope, "slope_ci": t.ci,
           "verdict": t.claim.verdict, "replicas": t.design.replicas, "claim": t.claim.claim_dict()}
    _emit(args, out, TablePrinter().doprint(t))
    return exit_status(t.claim.verdict)


def _emit(args: argparse.Namespace, obj: dict[str, Any], table: str) -> None:
    if args.json:
        from linrnn.core.jsonclean import jsonable

        json.dump(jsonable(obj), sys.stdout, allow_nan=False)
        sys.stdout.write("\n")
    else:
        print(table)


# ------------------------------------------------------------ the single run


def train_single(
    config: Any, model: Any, width: int, *, seed: int = 0, backend: Any = None, progress: Any = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Train ``config.seeds`` RNNs of width ``width`` and their SCNNs from the same L(0).

    ``config``: a :class:`linrnn.verify.claims.dynamics_equivalence.Config` (``widths``
    and ``controls`` unused); ``model``: the model specification. Returns a dict with
    the configuration, the step (``lr``, ``lr_auto``), per replica the final RNN and
    SCNN losses and the distance d = max_k ||L_rnn(k) - L_scnn(k)||_F / ||L*||_F, and
    the first replica's arrays (``W0``, ``F0``, ``C0``, ``x``, ``y``, ``impulse``,
    ``scnn``, ``loss_rnn``) as host NumPy arrays. A diverging run raises :class:`UsageError`.

    ``lr = 'auto'`` takes ``lr_factor`` / mu_max with mu_max the largest finite-width
    Gauss-Newton curvature of the replicas' own initial points
    (:func:`linrnn.verify.curvature.rnn_curvature`), one step for all of them. The
    replicas (curvatures, then training) run in ``workers`` processes
    (:func:`linrnn.verify.replicas.map_replicas`; NumPy only, CuPy runs them in this
    process); the result does not depend on ``workers``. ``progress(k, loss)`` is
    called per step with one worker, per finished replica otherwise.
    """
    import functools

    import numpy as np

    from linrnn.verify.claims.base import result_config
    from linrnn.verify.claims.training_config import check_scalar_model
    from linrnn.verify.claims.training import resolve_backend
    from linrnn.core.machine import check_workers
    from linrnn.verify.replicas import replica_pool

    if isinstance(width, bool) or int(width) != width or width < 1:
        raise UsageError(f"the width must be a positive integer, got {width!r}")
    check_scalar_model(model, "single-run")
    workers = check_workers(workers)
    backend = resolve_backend(backend)
    if backend.name != "numpy":
        workers = 1  # one device: the replicas run in this process
    job = _Job(config, model, int(width), int(seed), backend.name, backend.dtype_name)
    x, y, teacher, corr, lam, norm = _job_setup(job)
    indices = range(config.seeds)
    if workers == 1 and progress is not None:
        _PROGRESS[job] = progress
    try:
        with replica_pool(workers) as run:
            if config.lr == "auto":
                lr = float(config.lr_factor) / max(run(functools.partial(_replica_curvature, job), indices))
            else:
                from linrnn.verify.claims.training import choose_lr

                lr = choose_lr(config, corr, model)
            done = run(functools.partial(_train_replica, job, lr), indices)
    finally:
        _PROGRESS.pop(job, None)
    reps = []
    for r, (summary, first_arrays, error) in enumerate(done):
        if error is not None:
            raise UsageError(error)
        reps.append(summary)
        if workers > 1 and progress is not None:
            for k, loss in enumerate(first_arrays.pop("loss_trace")):
                progress(k, loss)
        else:
            first_arrays.pop("loss_trace", None)
    first = done[0][1]
    first.update({"x": backend.to_numpy(x), "y": backend.to_numpy(y)})
    return {"config": result_config(model, config, seed=seed, width=int(width)), "spec": model, "lr": lr,
            "lr_auto": config.lr == "auto", "replicas": reps, "teacher": teacher, "lam": lam,
            "backend": backend.describe(), "workers": workers, **first}


@dataclass(frozen=True)
class _Job:
    """What a replica of :func:`train_single` depends on besides its index (picklable, hashable)."""

    config: Any
    model: Any
    width: int
    seed: int
    backend: str
    dtype: str


#: progress callbacks of jobs run in this process (a callback is not sent to a worker)
_PROGRESS: dict[_Job, Any] = {}


@lru_cache(maxsize=4)
def _job_setup(job: _Job) -> tuple[Any, Any, Any, Any, Any, float]:
    """(x, y, teacher, correlations, lag weights, ||L*||) of a job: the same in every process."""
    import numpy as np

    from linrnn.derive import weights
    from linrnn.verify.claims.training import make_data, resolve_backend
    from linrnn.verify.train import lagged_correlations

    backend = resolve_backend(job.backend, dtype=job.dtype)
    x, y, teacher = make_data(job.config, backend, job.seed)
    corr = lagged_correlations(x, y, None, job.config.loss, backend)
    lam = np.asarray(weights(job.model, job.config.seq_len), dtype=np.float64)
    return x, y, teacher, corr, lam, float(np.linalg.norm(teacher))


def _draw(job: _Job, r: int) -> Any:
    from linrnn.verify.claims.training import draw_rnn

    return draw_rnn(job.seed, job.model, job.width, r, _job_setup(job)[3].backend)


def _replica_curvature(job: _Job, r: int) -> float:
    """mu_max of replica r's Gauss-Newton curvature at its initial point."""
    from linrnn.verify.curvature import rnn_curvature

    return rnn_curvature(_draw(job, r), _job_setup(job)[3]).mu_max


def _train_replica(job: _Job, lr: float, r: int) -> tuple[dict[str, float], dict[str, Any], str | None]:
    """Train replica r and its SCNN: (summary, arrays (replica 0 only, plus the loss trace), error sentence)."""
    import numpy as np

    from linrnn.verify.scnn import scnn_trajectory
    from linrnn.verify.train import impulse_loss_and_grad, train_rnn

    _, _, _, corr, lam, norm = _job_setup(job)
    config = job.config
    draw = _draw(job, r)
    progress = _PROGRESS.get(job)
    res = train_rnn(draw, None, None, loss=config.loss, lr=lr, steps=config.steps, corr=corr, progress=progress)
    try:
        res.raise_if_diverged(auto=config.lr == "auto")
    except UsageError as exc:
        return {}, {}, str(exc)
    assert res.impulse is not None
    try:
        scnn = scnn_trajectory(res.impulse[0], corr, lam, lr=lr, steps=config.steps)
    except UsageError as exc:
        if config.lr != "auto":
            return {}, {}, str(exc)
        return {}, {}, (f"the automatic step lr = {lr:g}, from the RNNs' own curvature, exceeds the stability limit "
                        "of the scaled CNN with the derived lag weights, so the CNN would diverge; lower --lr-factor")
    d = float(np.max(np.sqrt(np.sum((res.impulse - scnn) ** 2, axis=(1, 2, 3))))) / norm
    summary = {"loss_rnn_initial": float(res.loss[0]), "loss_rnn_final": float(res.loss[-1]),
               "loss_scnn_final": float(impulse_loss_and_grad(scnn[-1], corr)[0]), "distance": d}
    arrays: dict[str, Any] = {"loss_trace": [float(v) for v in res.loss] if progress is None else []}
    if r == 0:
        arrays.update({"W0": np.asarray(draw.W), "F0": np.asarray(draw.F), "C0": np.asarray(draw.C),
                       "impulse": res.impulse, "scnn": scnn, "loss_rnn": res.loss})
    return summary, arrays, None


def save_run(path: str, run: dict[str, Any]) -> None:
    """Write the first replica of :func:`train_single` as ``.npz`` (conventions, "Arrays and files")."""
    spec = run["spec"]
    cfg = run["config"]
    from linrnn.core.files import save_npz_atomic

    save_npz_atomic(path, dict(
        W0=run["W0"], F0=run["F0"], C0=run["C0"], x=run["x"], y=run["y"], lr=float(run["lr"]),
        steps=int(cfg["steps"]), param=spec.param, loss=cfg["loss"], sigma_w2=spec.sigma_w2, sigma_f2=spec.sigma_f2,
        sigma_c2=spec.sigma_c2, lr_c=spec.lr_c, lr_f=spec.lr_f, lr_w=spec.lr_w, impulse=run["impulse"],
        scnn=run["scnn"], lag_weights=run["lam"], teacher=run["teacher"], loss_rnn=run["loss_rnn"],
        width=int(cfg["width"]), seed=int(cfg["seed"]), dtype=run["backend"]["dtype"],
    ))


def run_summary(run: dict[str, Any]) -> dict[str, Any]:
    """The JSON-ready summary of :func:`train_single` (no arrays beyond the lag weights)."""
    cfg = {k: v for k, v in run["config"].items() if k not in ("widths", "controls")}
    d = [r["distance"] for r in run["replicas"]]
    return {"schema_version": 1, "mode": "single", "config": cfg, "backend": run["backend"], "lr": run["lr"],
            "lr_auto": run["lr_auto"], "replicas": run["replicas"], "distance_mean": sum(d) / len(d),
            "lag_weights": [float(v) for v in run["lam"]]}


def _single_table(run: dict[str, Any], saved: str | None) -> str:
    cfg = run["config"]
    lines = [
        f"# linear RNN (width {cfg['width']}, {cfg['param']}) vs scaled CNN from the same L(0); "
        f"q = {cfg['sigma_w2']:g}, T = {cfg['seq_len']}, N = {cfg['n_seq']}, loss {cfg['loss']}, "
        f"teacher {cfg['teacher']}",
        f"step lr = {run['lr']:.6g}" + (f" (auto: {cfg['lr_factor']:g} / mu_max of the Gauss-Newton curvature "
                                         "H^1/2 Theta H^1/2 of the width-n draws at their initial points)"
                                         if run["lr_auto"] else " (given)") + f", {cfg['steps']} steps",
        f"{'replica':>8} {'loss(0)':>12} {'RNN loss':>12} {'SCNN loss':>12} {'sup_k |L_rnn-L_scnn|/|L*|':>26}",
    ]
    for i, r in enumerate(run["replicas"]):
        lines.append(f"{i:>8} {r['loss_rnn_initial']:12.5g} {r['loss_rnn_final']:12.5g} {r['loss_scnn_final']:12.5g} "
                     f"{r['distance']:26.4g}")
    if saved:
        lines.append(f"saved replica 0 to {saved}")
    return "\n".join(lines)


class TablePrinter:
    """The tables of ``verify train``: one method ``print_<TypeName>`` per result type, found by the result's type
    (the dispatch of SymPy's printers, ``_print_<ClassName>`` along the class's MRO).

    ``doprint(result)`` returns the table as text; a result of a type without a method is a
    :class:`TypeError` naming it. The result types are those of :mod:`linrnn.verify.claims.training`
    (``DistanceTable``, ``ErrorVsQTable``, ``Co2Table``).
    """

    def doprint(self, result: Any) -> str:
        for cls in type(result).__mro__:
            method = getattr(self, f"print_{cls.__name__}", None)
            if method is not None:
                return method(result)
        raise TypeError(f"{type(self).__name__} has no table for a {type(result).__name__}")

    def print_DistanceTable(self, t: Any) -> str:
        res = t.claim
        lines = [f"# {res.title}: {res.statement}", f"{'n':>6} {'d(n) mean':>12} {'SE':>10}"]
        for n, m, s in zip(t.widths, t.distance_mean, t.distance_se):
            lines.append(f"{n:>6} {m:12.4g} {s:10.3g}")
        lo, hi = t.ci
        lines.append(f"mean per-replica slope {t.slope:.3f}, interval [{lo:.3f}, {hi:.3f}] ({t.threshold})")
        lines.append(self.design_line(t.design))
        lines.append("negative controls (each must be rejected):")
        for c in t.controls:
            lines.append(self.control_line(c))
        lines.append(f"verdict: {res.verdict.upper()}")
        return "\n".join(lines)

    def print_ErrorVsQTable(self, t: Any) -> str:
        res = t.claim
        lines = [f"# {res.title}: {res.statement}",
                 f"{'q':>6} {'theory':>12} {'RNN (c.v.)':>12} {'SE':>10} {'t':>8} {'RNN raw':>12}"]
        for q, th, m, s, z, raw in zip(t.sigma_w2, t.theory, t.bias_corrected, t.bias_corrected_se, t.z,
                                       t.experiment_mean):
            lines.append(f"{q:>6g} {th:12.4g} {m:12.4g} {s:10.3g} {z:8.2f} {raw:12.4g}")
        lines.append(f"best q: theory {t.best_q_theory:g}, experiment {t.best_q_experiment:g}")
        lines.append(f"max |t| {t.max_abs_t:.3g} vs {t.threshold:.3g}" if t.max_abs_t is not None
                     else "max |t|: not finite")
        lines.append(self.design_line(t.design))
        for c in t.controls:
            lines.append(self.control_line(c))
        lines.append(f"verdict: {res.verdict.upper()}")
        return "\n".join(lines)

    def print_Co2Table(self, t: Any) -> str:
        res = t.claim
        lines = [f"# {res.title}: {res.statement}"]
        if t.error:
            return "\n".join([*lines, f"error: {t.error}", f"verdict: {res.verdict.upper()}"])
        lines.append(f"{'q':>6} {'theory':>10} {'RNN (bias-corr.)':>17} {'SE':>8} {'z':>7}   relative test error")
        for q, th, a, s, z in zip(t.sigma_w2, t.theory, t.bias_corrected, t.bias_corrected_se, t.z):
            lines.append(f"{q:>6g} {th:10.4f} {a:17.4f} {s:8.4f} {'-' if z is None else f'{z:7.2f}':>7}")
        lines.append(f"max |z| {'-' if t.max_abs_z is None else f'{t.max_abs_z:.3g}'} vs {t.threshold:.3g} "
                     f"(alpha {t.alpha:g}, {t.replicas} replica pairs after a pilot of {t.pilot})")
        for c in t.controls:
            power = 0 if c.power is None else c.power
            lines.append(f"  control {c.id:<28} {c.verdict.replace('_', ' ')} (predicted power {power:.4f})")
        lines.append("descriptive (no verdict):")
        lines.append(f"{'model':>32} {'q':>6} {'test R^2':>10} {'SE':>8}")
        for r in t.rows:
            q = "" if r.sigma_w2 is None else f"{r.sigma_w2:g}"
            lines.append(f"{r.model:>32} {q:>6} {r.test_r2:10.4f} {r.test_r2_se:8.4f}")
        lines.append(f"verdict: {res.verdict.upper()}")
        return "\n".join(lines)

    @staticmethod
    def design_line(d: Any) -> str:
        """A :class:`linrnn.verify.claims.training.DesignLine` in one line."""
        stages = d.stages
        return (f"design: pilot {d.pilot} + {' + '.join(map(str, stages))} fresh replicas (stage"
                f"{'s' if len(stages) > 1 else ''}) for power {d.power_target} per control"
                + (f" (main stage capped by {d.capped_by})" if d.capped_by else "")
                + (f"; alpha / {d.looks} per look" if d.looks else ""))

    @staticmethod
    def control_line(c: Any) -> str:
        """A :class:`linrnn.verify.claims.training.ControlLine` in one line."""
        extra = "" if c.power is None else f" (predicted power {c.power:.4f})"
        if c.verdict == "not_rejected" and c.decide_with:
            extra += f"; {c.decide_with} replicas would decide it"
        return f"  control {c.id:<32} {c.verdict.replace('_', ' ').upper() if c.verdict != 'rejected' else 'rejected'}{extra}"


def _run_co2(args: argparse.Namespace, model: Any, backend: Any) -> int:
    """``--teacher co2``: the CO2 claim (:mod:`linrnn.verify.claims.co2`) with the options that apply.

    ``--replicas R`` sets the design's least main-stage size (``min_replicas``). Exit
    status of the claim's outcome: 0 pass, 1 fail or error, 3 inconclusive.
    """
    from linrnn.core.outcome import exit_status
    from linrnn.verify.claims import co2
    from linrnn.verify.progress import Progress

    if args.sigma_w2 is not None:
        raise UsageError("the co2 task compares several q: give --sigma-w2s (two or more) instead of --sigma-w2")
    if args.widths is not None or args.save is not None:
        raise UsageError("--teacher co2 runs the CO2 comparison; --widths and --save do not apply")
    base = co2.Config()
    extra: dict[str, Any] = {}
    if args.replicas is not None:
        extra = {"min_replicas": args.replicas, "max_replicas": max(args.replicas, base.max_replicas)}
    cfg = _config(args, base, **extra)
    co2.check(cfg, model)
    _check_memory(args, co2.memory(cfg, model), f"one training run at width {cfg.width} on the CO2 series "
                                                f"(T = {cfg.seq_len}, {cfg.steps} steps)")
    with Progress(1.0, "verify train --teacher co2", enabled=not args.no_progress) as bar:
        t = co2.run_table(cfg, model, seed=_seed(args), backend=backend, progress=bar.advance)
    res = t.claim
    if args.json:
        json.dump({"schema_version": 2, "mode": "co2", "verdict": res.verdict, "claim": res.claim_dict()}, sys.stdout,
                  allow_nan=False)
        sys.stdout.write("\n")
        return exit_status(res.verdict)
    print(TablePrinter().doprint(t))
    return exit_status(res.verdict)
