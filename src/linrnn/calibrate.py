"""``linrnn calibrate``: run every claim over many seeds on Dask and measure its error rates.

Each (claim, seed) is one task, except that the claims of one computation (the three
NTK claims share one memoised sweep) run as one task per seed. Tasks run on a Dask
``distributed`` cluster: a ``LocalCluster`` over this machine's cores (worker
processes, one thread each), or a running scheduler (``--scheduler ADDRESS``: ``dask
scheduler`` with ``dask worker``s, or a dask-jobqueue cluster).

Configuration: resolved as ``linrnn report`` resolves it (profile TOML, ``--config``
overrides; the model from ``[model]``), and each claim's ``alpha`` is the profile's
``family_alpha`` split by Bonferroni over *every claim of the registry* (the family of a
full ``linrnn report``), whichever claims are calibrated, so the rates measured are
those of the report.

Store (``DIR/records/``): one JSON record per (claim, configuration hash, seed),
written atomically (a temporary file, then ``os.replace``) as each task finishes; the
hash covers the claim's configuration, the model, backend, dtype and the code
(:func:`linrnn.suite.code_hash`). A re-run skips the records it finds, so a killed run
loses at most the tasks in flight. At the end, ``DIR/calibration.json`` (versioned,
:data:`CALIBRATION_VERSION`) summarises the records of the requested seeds, and
:mod:`linrnn.reports.calibration` renders ``calibration.html`` and ``calibration.md``
from it alone.

Summary per claim: the outcome counts; the false-failure rate (the share of seeds at
which the claim's own statistic failed; every claim's theory is true, so each one is a
false failure) with its Clopper-Pearson 95% interval and the stated alpha; the median
seconds per task; and per negative control, its power (share of runs rejected) with
its Clopper-Pearson 95% interval.

Verdict (:func:`calibration_outcome`, with one sentence saying why) and exit status:
``fail`` (1) when some claim's statistic failed (a false failure: the theories are true)
or a claim erred at some seed; else ``inconclusive`` (3) when some control's power is
short of :data:`POWER_TARGET`, a claim has no control, or the calibration is too small
to support its rate claims (fewer than :data:`MIN_RUNS` runs); else ``pass`` (0); 2 for
bad input. A power short of the target is a lack of power, never a refuted theory.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import platform
import signal
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linrnn import __version__
from linrnn.core.errors import UsageError
from linrnn.core.files import exclusive_lock, write_text_atomic
from linrnn.core.machine import available_cores, check_workers

CALIBRATION_VERSION = 1
#: A control's power below this makes ``linrnn calibrate`` inconclusive (exit 3).
POWER_TARGET = 0.98
#: The fewest runs per claim and control that support the rate claims: 1 / (1 - POWER_TARGET) = 50. With fewer,
#: a control at exactly the target power is expected to be missed less than once, so the share of rejections
#: cannot tell the target from far lower powers (2 of 2 rejected: 95% interval [0.16, 1]).
MIN_RUNS = math.ceil(round(1 / (1 - POWER_TARGET), 9))
RECORDS = "records"
#: Bytes one record may take while the summary holds every record of the run: its JSON is about 4-5 kB (the
#: claim's result without figures), parsed into Python objects several times that; an upper estimate.
RECORD_BYTES = 64_000
#: The largest seed (a signed 64-bit integer).
MAX_SEED = 2**63 - 1


def clopper_pearson(k: int, n: int, level: float = 0.95) -> list[float] | None:
    """The exact (Clopper-Pearson) ``level`` interval of a binomial rate k / n; None when n = 0."""
    if n == 0:
        return None
    from scipy.stats import beta

    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return [lo, hi]


# ------------------------------------------------------------------ the store


def config_hash(claim: str, config: Any, model: Any, backend: str, dtype: str) -> str:
    from linrnn.core.jsonclean import jsonable as _clean
    from linrnn.suite import code_hash

    blob = json.dumps({"claim": claim, "config": _clean(config), "model": _clean(model), "backend": backend,
                       "dtype": dtype, "code": code_hash()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def record_path(directory: Path, claim: str, chash: str, seed: int) -> Path:
    return directory / RECORDS / f"{claim}-{chash}-{seed}.json"


def write_atomic(path: Path, text: str) -> None:
    write_text_atomic(path, text)


def read_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path``, or None when there is none that can be used (the task is then run again).

    Unusable, like a missing, truncated or garbage file: a record of another claim,
    configuration or seed than its name says, and a malformed one (a result that is
    not an object, seconds or alpha that are not numbers, controls without an id and
    a verdict, nesting too deep to read).
    """
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return rec if _record_usable(rec, path) else None


def _number_or_none(x: Any) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x))


def _record_usable(rec: Any, path: Path) -> bool:
    if not isinstance(rec, dict) or not isinstance(rec.get("result"), dict):
        return False
    seed, res = rec.get("seed"), rec["result"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        return False
    parts = path.stem.rsplit("-", 2)  # claim-hash-seed (record_path)
    if len(parts) != 3 or parts != [rec.get("claim"), rec.get("config_hash", parts[1]), str(seed)]:
        return False
    controls = res.get("controls") or []
    return (_number_or_none(rec.get("seconds")) and _number_or_none(res.get("alpha"))
            and all(isinstance(res.get(k, ""), str) for k in ("verdict", "statistic_verdict"))
            and isinstance(controls, list)
            and all(isinstance(c, dict) and isinstance(c.get("id"), str) and isinstance(c.get("verdict"), str)
                    for c in controls))


# ------------------------------------------------------------------ summary


def summarize_claim(name: str, records: Sequence[Mapping[str, Any]], stated: float | None) -> dict[str, Any]:
    """The calibration entry of one claim from its records."""
    counts = {k: 0 for k in ("pass", "fail", "inconclusive", "error")}
    false = 0
    controls: dict[str, list[int]] = {}
    for rec in records:
        res = rec["result"]
        counts[res.get("verdict", "error") if res.get("verdict") in counts else "error"] += 1
        false += res.get("statistic_verdict") == "fail"
        for c in res.get("controls") or []:
            runs = controls.setdefault(c["id"], [0, 0])
            runs[0] += 1
            runs[1] += c.get("verdict") == "rejected"
    n = len(records)
    seconds = [float(r["seconds"]) for r in records if r.get("seconds") is not None]
    alphas = {r["result"].get("alpha") for r in records} - {None}
    if alphas:
        stated = max(alphas)
    return {
        "id": name, "seeds": n, **counts,
        "false_failure": {"failures": false, "rate": false / n if n else None, "ci95": clopper_pearson(false, n),
                          "stated": stated},
        "seconds": statistics.median(seconds) if seconds else None,
        "controls": [{"id": cid, "runs": r, "rejected": k, "power": k / r if r else None,
                      "power_ci": clopper_pearson(k, r)} for cid, (r, k) in controls.items()],
    }


def _ci(ci: Sequence[float] | None) -> str:
    return "" if not ci else f" [95% CI {ci[0]:.3g}, {ci[1]:.3g}]"


def _share(k: int, n: int, ci: Sequence[float] | None) -> str:
    return f"{k}/{n} = {k / n:.3g}{_ci(ci)}" if n else "0/0"


def calibration_outcome(claims: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(verdict, one sentence saying why) of a calibration from its claims' summaries (:func:`summarize_claim`).

    ``fail``: some claim's statistic failed (every theory is true, so each is a false
    failure) or a claim erred at some seed. Else ``inconclusive`` when a control's power
    is short of :data:`POWER_TARGET`, a claim has no control (it tested nothing), or fewer
    than :data:`MIN_RUNS` runs stand behind a rate; else ``pass``.
    """
    if not claims:
        return "inconclusive", "no claim was calibrated"
    bad = [f"claim {c['id']}'s statistic failed at {c['false_failure']['failures']} of {c['seeds']} seeds "
           f"(false-failure rate {_share(c['false_failure']['failures'], c['seeds'], c['false_failure']['ci95'])}"
           f", stated alpha {c['false_failure']['stated']})" for c in claims if c["false_failure"]["failures"]]
    bad += [f"claim {c['id']} erred at {c['error']} of {c['seeds']} seeds" for c in claims if c["error"]]
    if bad:
        return "fail", "; ".join(bad)
    short = [f"claim {c['id']}: control {x['id']}'s power {_share(x['rejected'], x['runs'], x['power_ci'])} is "
             f"short of the {POWER_TARGET:g} target" for c in claims for x in c["controls"]
             if x["power"] is None or x["power"] < POWER_TARGET]
    short += [f"claim {c['id']} has no negative control (untested: no wrong theory could fail it)"
              for c in claims if not c["controls"]]
    if short:
        return "inconclusive", "no claim failed at any seed; " + "; ".join(short)
    n = min([c["seeds"] for c in claims] + [x["runs"] for c in claims for x in c["controls"]])
    c0 = min(claims, key=lambda c: c["seeds"])
    x0 = min((x for c in claims for x in c["controls"]), key=lambda x: (x["runs"], x["power"]))
    ff = c0["false_failure"]
    rates = (f"control {x0['id']}'s power {_share(x0['rejected'], x0['runs'], x0['power_ci'])}; claim {c0['id']}'s "
             f"false-failure rate {_share(ff['failures'], c0['seeds'], ff['ci95'])}")
    if n < MIN_RUNS:
        return "inconclusive", (f"no claim failed at any seed, but the calibration is too small to support its rate "
                                f"claims: {n} runs, fewer than the {MIN_RUNS} at which a share of rejections can "
                                f"resolve the {POWER_TARGET:g} power target ({rates})")
    return "pass", (f"no claim failed or erred at any seed and every control's power is at least the "
                    f"{POWER_TARGET:g} target (lowest: {rates})")


def calibration_verdict(claims: Sequence[Mapping[str, Any]]) -> str:
    """The verdict of :func:`calibration_outcome`: "pass", "fail" or "inconclusive"."""
    return calibration_outcome(claims)[0]


# ------------------------------------------------------------------ the run


@dataclass
class CalibrationRun:
    summary: dict[str, Any]
    output: Path
    exit_status: int
    computed: int
    reused: int


def _sigterm_as_interrupt() -> Callable[[], None]:
    """SIGTERM raises KeyboardInterrupt (the cluster is closed, finished records kept); returns the undo."""
    try:
        old = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    except ValueError:  # not the main thread
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, old)


def run_calibration(
    output: str | os.PathLike[str] = "linrnn-calibration",
    *,
    profile: str = "quick",
    config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    claims: Sequence[str] | None = None,
    seeds: int = 50,
    first_seed: int = 0,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    argv: Sequence[str] | None = None,
    max_memory: str | int = "8GB",
    force: bool = False,
    scheduler_timeout: float | None = None,
) -> CalibrationRun:
    """Run ``claims`` (default: every registry claim) at seeds ``first_seed .. first_seed + seeds - 1``.

    Checked before the cluster starts: the scheduler's address (``scheme://host:port``)
    and ``scheduler_timeout`` (default :data:`linrnn.parallel.SCHEDULER_TIMEOUT`
    seconds, the longest wait for the scheduler to answer), the arguments, the
    configuration (every field, and memory: the ``workers`` largest claims together
    must fit ``max_memory``), and the store ``output`` (writable; a second calibration
    on the same store stops at once, one sentence; a summary file there that linrnn did
    not write is replaced only with ``force``). Nothing is written to the store and
    nothing is printed before the cluster or the scheduler answers.
    """
    from linrnn import parallel, suite
    from linrnn.families import claims as all_claims

    REGISTRY = all_claims()

    say = log or (lambda _msg: None)
    if scheduler is not None:
        parallel.check_scheduler(scheduler)
    timeout = parallel.check_scheduler_timeout(
        parallel.SCHEDULER_TIMEOUT if scheduler_timeout is None else scheduler_timeout)
    for what, v, low in (("--seeds", seeds, 1), ("--first-seed", first_seed, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise UsageError(f"{what} must be an integer >= {low}, got {v!r}")
    if first_seed + seeds - 1 > MAX_SEED:
        raise UsageError(f"the seeds --first-seed .. --first-seed + --seeds - 1 must stay within 64 bits "
                         f"(at most 2^63 - 1); lower --first-seed or --seeds")
    if workers is not None:
        check_workers(workers)
    names = list(REGISTRY) if not claims else list(dict.fromkeys(claims))
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise UsageError(f"unknown claim{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                         f"choose from {', '.join(REGISTRY)}")
    parallel.import_distributed()  # before any work: one sentence on how to install it
    overrides = suite.load_toml(config) if isinstance(config, (str, os.PathLike)) else (config or {})
    cfg = suite.with_family_alpha(suite.resolve_config(profile, overrides), list(REGISTRY))
    if cfg.backend not in suite.BACKEND_CHOICES:
        raise UsageError(f"unknown backend {cfg.backend!r}; choose one of auto, numpy, cupy")
    from linrnn.verify.backend import get_backend

    backend = get_backend(cfg.backend, seed=first_seed).name
    dtype = "float64"
    configs = {n: cfg.sections[REGISTRY[n].section] for n in names}
    from linrnn.core.validate import parse_memory

    budget = parse_memory(max_memory)
    suite.check_claims(configs, cfg.model, workers or available_cores(), budget)
    from linrnn.core.validate import check_memory

    check_memory(f"the summary of {seeds} seeds x {len(names)} claims ({seeds * len(names)} records held at once)",
                 seeds * len(names) * RECORD_BYTES, budget, "--max-memory (or lower --seeds)")
    out = check_store(output, force)
    with exclusive_lock(out.parent / f".{out.name}.lock", f"the calibration store {os.fspath(output)}"):
        return _calibrate_locked(out, names, configs, cfg, backend, dtype, seeds, first_seed, scheduler, workers,
                                 progress, say, argv, profile, timeout)


#: The summary files a calibration writes into its store (:func:`linrnn.reports.calibration.write_calibration`).
SUMMARY_FILES = ("calibration.json", "calibration.html", "calibration.md")


def check_store(output: str | os.PathLike[str], force: bool = False) -> Path:
    """The calibration directory (absolute), once it is known that it can be created and written.

    A store is added to, never emptied: an existing folder is used as it is (a re-run
    resumes from its records), so its writability is checked, and that each summary
    file already there is one that linrnn wrote (else it is replaced only with
    ``force``, :func:`linrnn.core.files.check_new_file`).
    """
    from linrnn.core.files import check_new_file, check_output_dir

    text = os.fspath(output)
    out = Path(text).resolve() if text.strip() else Path(text)
    if text.strip() and out.is_dir():
        for name in SUMMARY_FILES:
            check_new_file(out / name, "the calibration file", force=force)
        return out
    return check_output_dir(output, "the calibration store")


def _calibrate_locked(out: Path, names: list[str], configs: Mapping[str, Any], cfg: Any, backend: str, dtype: str,
                      seeds: int, first_seed: int, scheduler: str | None, workers: int | None, progress: bool,
                      say: Callable[[str], None], argv: Sequence[str] | None, profile: str,
                      timeout: float) -> CalibrationRun:
    """The body of :func:`run_calibration` once everything is checked and the store's lock is held.

    The cluster (or the scheduler) is reached before the store is created or a line
    is printed: a scheduler that does not answer within ``timeout`` seconds leaves
    nothing behind.
    """
    from linrnn import parallel
    from linrnn.families import claims as all_claims

    REGISTRY = all_claims()

    hashes = {n: config_hash(n, configs[n], cfg.model, backend, dtype) for n in names}
    seed_list = list(range(first_seed, first_seed + seeds))
    groups = parallel.group_by_experiment(names, {n: REGISTRY[n].experiment for n in names})
    tasks: list[tuple[list[str], int]] = []
    reused = 0
    for seed in seed_list:
        for g in groups:
            have = [n for n in g if read_record(record_path(out, n, hashes[n], seed)) is not None]
            if len(have) == len(g):
                reused += 1
            else:
                tasks.append((g, seed))
    total = reused + len(tasks)
    computed = 0
    t_start = time.perf_counter()
    undo = _sigterm_as_interrupt()
    try:
        client, cluster = parallel.dask_client(scheduler, workers, timeout) if tasks else (None, None)
        try:
            out.mkdir(parents=True, exist_ok=True)
            say(f"{total} tasks ({len(names)} claims in {len(groups)} experiments x {seeds} seeds); "
                f"{reused} reused from {out / RECORDS}")
            if tasks:
                computed = _run_tasks(out, tasks, configs, cfg.model, backend, dtype, hashes, scheduler, client,
                                      total, reused, progress, say)
        finally:
            for closer in (client, cluster):
                if closer is not None:
                    try:
                        closer.close()
                    except Exception:  # noqa: BLE001 - closing after an interrupt; the records are already safe
                        pass
    finally:
        undo()
    summary = _summary(out, names, configs, hashes, seed_list, cfg, profile, backend, dtype, scheduler, workers,
                       argv, time.perf_counter() - t_start, computed, reused)
    from linrnn.reports.calibration import write_calibration

    write_calibration(summary, out)
    say(f"wrote {out}/calibration.json, calibration.html and calibration.md (verdict {summary['verdict']})")
    from linrnn.core.outcome import exit_status

    return CalibrationRun(summary, out, exit_status(summary["verdict"]), computed, reused)


class TaskProgress:
    """The count of finished tasks on ``stream`` (default stderr).

    On a terminal: tqdm's bar, redrawn in place. Anywhere else (a log file, a pipe,
    a batch system's output) nothing is redrawn and no carriage return is written:
    one plain line ``calibrate: 12/400 tasks (3%), 95 s`` at most every ``every``
    seconds, and one for the last task (the way :class:`linrnn.verify.progress.Progress`
    keeps log files readable).
    """

    def __init__(self, total: int, initial: int = 0, *, stream: Any = None, enabled: bool = True,
                 every: float = 30.0) -> None:
        self.total, self.done, self.every, self.enabled = total, initial, every, enabled
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty()) if callable(isatty) else False
        self.start = self.last = time.perf_counter()
        self._bar: Any = None

    def __enter__(self) -> TaskProgress:
        self.start = self.last = time.perf_counter()
        if self.enabled and self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, initial=self.done, desc="calibrate", unit="task", file=self.stream,
                             dynamic_ncols=True)
        return self

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        if self.enabled and (now - self.last >= self.every or self.done >= self.total):
            self.last = now
            pct = 100 * self.done / self.total if self.total else 100.0
            self.stream.write(f"calibrate: {self.done}/{self.total} tasks ({pct:.0f}%), {now - self.start:.0f} s\n")
            self.stream.flush()

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _run_tasks(out: Path, tasks: Sequence[tuple[list[str], int]], configs: Mapping[str, Any], model: Any,
               backend: str, dtype: str, hashes: Mapping[str, str], scheduler: str | None, client: Any,
               total: int, reused: int, progress: bool, say: Callable[[str], None]) -> int:
    """Submit ``tasks`` to the Dask ``client`` and write each record as its task finishes; return the tasks
    computed (the caller closes the client and its cluster)."""
    from linrnn import parallel

    distributed = parallel.import_distributed()
    done = 0
    say(f"Dask: {'scheduler ' + scheduler if scheduler else 'local cluster'} with "
        f"{len(client.scheduler_info().get('workers', {}))} workers")
    futures = [client.submit(parallel.run_claims, g, {n: configs[n] for n in g}, model, seed, backend, dtype,
                             pure=False, key=f"calibrate-{'+'.join(g)}-{seed}-{os.getpid()}-{i}")
               for i, (g, seed) in enumerate(tasks)]
    with TaskProgress(total, reused, stream=sys.stderr, enabled=progress) as bar:
        for fut in distributed.as_completed(futures):
            for rec in fut.result():
                name = rec["claim"]
                rec = {"calibration_version": CALIBRATION_VERSION, "config_hash": hashes[name], **rec}
                write_atomic(record_path(out, name, hashes[name], rec["seed"]),
                             json.dumps(rec, sort_keys=True, allow_nan=False) + "\n")
            done += 1
            bar.update(1)
            fut.release()
    return done


def _summary(out: Path, names: Sequence[str], configs: Mapping[str, Any], hashes: Mapping[str, str],
             seed_list: Sequence[int], cfg: Any, profile: str, backend: str, dtype: str, scheduler: str | None,
             workers: int | None, argv: Sequence[str] | None, seconds: float, computed: int,
             reused: int) -> dict[str, Any]:
    from linrnn.core.provenance import package_versions

    records = {n: [r for s in seed_list if (r := read_record(record_path(out, n, hashes[n], s))) is not None]
               for n in names}
    claims = [summarize_claim(n, records[n], getattr(configs[n], "alpha", None)) for n in names]
    by_seed: dict[int, list[str]] = {}
    for n in names:
        for r in records[n]:
            by_seed.setdefault(int(r["seed"]), []).append(r["result"].get("statistic_verdict", "error"))
    complete = [s for s, v in by_seed.items() if len(v) == len(names)]
    failed = sum("fail" in by_seed[s] for s in complete)
    verdict, reason = calibration_outcome(claims)
    return {
        "calibration_version": CALIBRATION_VERSION,
        "tool": {"name": "linrnn-bias", "version": __version__},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "profile": profile,
        "seeds": {"first": seed_list[0], "count": len(seed_list)},
        "power_target": POWER_TARGET,
        "claims": claims,
        "family": {"claims": list(names), "runs": len(complete), "failed": failed,
                   "rate": failed / len(complete) if complete else None,
                   "ci95": clopper_pearson(failed, len(complete)), "stated": cfg.family_alpha,
                   "note": "seeds at which any calibrated claim's statistic failed (all claims recorded)"},
        "verdict": verdict,
        "verdict_reason": reason,
        "config": cfg.as_dict(),
        "provenance": {
            "command": " ".join(["linrnn", "calibrate", *(argv or [])]),
            "python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "packages": package_versions(), "backend": backend, "dtype": dtype,
            "scheduler": scheduler or "LocalCluster", "workers": workers,
            "tasks_computed": computed, "tasks_reused": reused, "seconds": round(seconds, 3),
            "config_hashes": dict(hashes),
        },
    }
