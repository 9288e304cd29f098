"""Running claims in other processes: tasks grouped by experiment, a process pool, Dask.

A *task* is a list of experiment names run one after another in one process, so that
the claims of one computation (the three NTK claims share one memoised width sweep,
:mod:`linrnn.verify.claims.ntk_sweep`) compute it once: :func:`group_by_experiment`
groups names by their :attr:`Claim.experiment`. A task's function is a top-level,
picklable function of picklable inputs (configuration dataclasses, the
:class:`~linrnn.core.spec.ModelSpec`), so any executor can run it:

* :func:`linrnn.suite.run_experiments` (``linrnn report``): the suite's experiments by
  name, with their contexts (it lives with them: this module imports nothing of the suite);
* :func:`run_claims` (``linrnn calibrate``): registry claims ``run(config, model, seed=...)``.

:func:`process_pool` is the executor of ``linrnn report --workers K``: a standard
library ``ProcessPoolExecutor`` with the ``spawn`` start method (no fork of a process
holding threads). :func:`dask_client` is the Dask ``distributed`` client of ``linrnn
calibrate``: a ``LocalCluster`` over this machine's cores, or a running scheduler.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from linrnn.core.errors import UsageError

DISTRIBUTED_MISSING = ("this command needs Dask distributed; install it with "
                       "pip install 'linrnn-bias[distributed]' (or pip install 'distributed>=2024.1').")


def group_by_experiment(names: Iterable[str], experiment_of: Mapping[str, str]) -> list[list[str]]:
    """``names`` grouped by their experiment (``experiment_of[name]``, default the name), in first-seen order."""
    groups: dict[str, list[str]] = {}
    for n in names:
        groups.setdefault(experiment_of.get(n, n), []).append(n)
    return list(groups.values())


# ------------------------------------------------------------------ task functions


def run_claims(names: Sequence[str], configs: Mapping[str, Any], model: Any, seed: int, backend: str = "numpy",
               dtype: str = "float64") -> list[dict[str, Any]]:
    """Run the registry claims ``names`` (one experiment) at ``seed``; one record body per claim.

    A record: ``claim``, ``seed``, ``seconds`` (of the whole task), and the claim's
    ``claim_dict()`` without its figures (``result``). An exception inside a claim
    becomes a result with verdict ``error`` and the exception's sentence.
    """
    from linrnn.families import claim_model, claims as all_claims

    REGISTRY = all_claims()

    t0 = time.perf_counter()
    results: list[tuple[str, dict[str, Any]]] = []
    for name in names:
        claim = REGISTRY[name]
        try:
            res = claim.run(configs[name], claim_model(claim, model), seed=seed, backend=backend, dtype=dtype, progress=None)
            d = res.claim_dict()
            d.pop("figures", None)
        except Exception as exc:  # noqa: BLE001 - recorded as the outcome "error", never a pass
            d = {"id": name, "verdict": "error", "statistic_verdict": "error", "controls": [],
                 "error": f"the claim raised {type(exc).__name__}: {exc}", "alpha": getattr(configs[name], "alpha", None)}
        results.append((name, d))
    seconds = time.perf_counter() - t0
    return [{"claim": name, "seed": seed, "seconds": seconds, "result": d} for name, d in results]


# ------------------------------------------------------------------ executors


def process_pool(workers: int) -> Any:
    """A ``ProcessPoolExecutor`` of ``workers`` spawned processes."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def import_distributed() -> Any:
    """The ``distributed`` module, or a :class:`UsageError` saying in one sentence how to install it."""
    try:
        import distributed
    except ImportError:
        raise UsageError(DISTRIBUTED_MISSING) from None
    return distributed


#: The schemes of a Dask scheduler address that ``--scheduler`` accepts.
SCHEDULER_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")
#: Seconds ``calibrate`` waits for a running scheduler to answer (``--scheduler-timeout``).
SCHEDULER_TIMEOUT = 10.0
#: The longest wait ``--scheduler-timeout`` accepts (an hour).
MAX_SCHEDULER_TIMEOUT = 3600.0


def check_scheduler(address: Any) -> str:
    """``address`` if it reads ``scheme://host:port`` (a scheme of :data:`SCHEDULER_SCHEMES`, port 1-65535).

    Checked before anything else, with the standard library only, so a malformed
    address is one sentence (:class:`UsageError`), never Dask's own traceback.
    """
    import re

    text = address if isinstance(address, str) else repr(address)
    hint = "write it as tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786"
    m = re.fullmatch(r"([A-Za-z][A-Za-z0-9+.-]*)://(\[[0-9A-Fa-f:.]+\]|[^\s/:\[\]]+):([0-9]{1,5})", text)
    if not isinstance(address, str) or m is None:
        raise UsageError(f"the Dask scheduler address {text!r} is not of the form scheme://host:port; {hint}")
    scheme, port = m.group(1).lower(), int(m.group(3))
    if scheme not in SCHEDULER_SCHEMES:
        raise UsageError(f"the Dask scheduler address {text!r} has the scheme {scheme!r}; use one of "
                         f"{', '.join(SCHEDULER_SCHEMES)} ({hint})")
    if not 1 <= port <= 65535:
        raise UsageError(f"the Dask scheduler address {text!r} has port {port}, outside 1-65535; {hint}")
    return text


def check_scheduler_timeout(seconds: Any) -> float:
    """``seconds`` as a float if it is a finite number in (0, :data:`MAX_SCHEDULER_TIMEOUT`], else UsageError."""
    import math

    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise UsageError(f"--scheduler-timeout must be a number of seconds, got {seconds!r}") from None
    if isinstance(seconds, bool) or not (math.isfinite(value) and 0 < value <= MAX_SCHEDULER_TIMEOUT):
        raise UsageError(f"--scheduler-timeout must be a positive number of seconds up to "
                         f"{MAX_SCHEDULER_TIMEOUT:g}, got {seconds!r}")
    return value


def dask_client(scheduler: str | None, workers: int | None,
                timeout: float = SCHEDULER_TIMEOUT) -> tuple[Any, Any]:
    """(client, cluster): a client of the scheduler at ``scheduler``, or of a new ``LocalCluster``.

    The local cluster has ``workers`` worker processes (default: this machine's
    cores), one thread each, no dashboard, and its logs silenced; ``cluster`` is None
    for a running scheduler, which must answer within ``timeout`` seconds (else a
    :class:`UsageError` that says so). Close both when done.
    """
    import logging

    distributed = import_distributed()
    if scheduler:
        check_scheduler(scheduler)
        logging.getLogger("distributed").setLevel(logging.CRITICAL)  # the sentence below says it all
        try:
            return distributed.Client(scheduler, timeout=f"{timeout:g}s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise UsageError(f"cannot reach the Dask scheduler at {scheduler} within {timeout:g} s ({reason[:200]}); "
                             f"is it running? --scheduler-timeout sets the wait") from None
    n = workers or (os.cpu_count() or 1)
    for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny",
                 "distributed.core", "distributed.http.proxy"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # dashboard_address=None still serves /metrics on :8787 in current distributed: ":0" takes any free
    # port, so two clusters (two calibrations, or a test beside a running one) never collide
    cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       scheduler_port=0, silence_logs=logging.ERROR)
    return distributed.Client(cluster), cluster
