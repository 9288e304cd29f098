"""Independent replicas on every core: a process pool whose results do not depend on its size.

A replica (one independent draw of an RNN, trained) is a pure function of its index:
its random numbers come from a generator seeded by (seed, width, index)
(:func:`linrnn.verify.claims.training.draw_rnn`), never from a shared stream, so running
the indices in any order, in any number of processes, gives the same numbers. Each
replica runs with one BLAS thread (:func:`linrnn.verify.threads.blas_threads`) in
every mode, ``workers = 1`` included: the training step is a sequence of
vector-matrix passes that a BLAS thread pool only slows down, and a fixed thread
count keeps the floating-point summation order, hence the bits, the same whatever
the number of workers. The processes are spawned (no fork of a process holding
threads), as in the report's pool (:func:`linrnn.parallel.process_pool`).

With ``K`` workers, this process is one of them: it works through the indices from
the start while ``K - 1`` spawned processes start (about 0.3 s each, in parallel on
this 2-core machine) and then join in, each index taken by whoever is free next
(:func:`_shared_map`). A short run therefore never waits for start-up it cannot
use: at width 256, eight replicas of 100 steps take about 0.9 s on one core, of
which a spawned process's start-up would be a third.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from linrnn.core.machine import check_workers

T = TypeVar("T")


def _worker_init() -> None:
    """Before a spawned worker loads NumPy: one OpenBLAS / OpenMP thread (the cores are the workers')."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"


def _one_thread(fn: Callable[[int], T], index: int) -> T:
    import numpy  # noqa: F401 - OpenBLAS must be loaded for blas_threads to find it

    from linrnn.verify.threads import blas_threads

    with blas_threads(1):
        return fn(index)


@contextmanager
def replica_pool(workers: int = 1) -> Iterator[Callable[[Callable[[int], Any], Sequence[int]], list[Any]]]:
    """A mapper ``run(fn, indices) -> [fn(i) for i in indices]`` over ``workers`` processes (this one included).

    ``fn`` must be picklable (a top-level function or a ``functools.partial`` of one) and
    depend on nothing but its arguments. Results come back in the order of ``indices``;
    each call runs with one BLAS thread. ``workers = 1`` runs in this process; otherwise
    this process and ``workers - 1`` spawned ones share the indices (the pool is spawned
    once, on first use, and serves every ``run`` inside the block).
    """
    workers = check_workers(workers)
    pool: Any = None

    def run(fn: Callable[[int], Any], indices: Sequence[int]) -> list[Any]:
        nonlocal pool
        indices = list(indices)
        if workers == 1 or len(indices) < 2:
            return [_one_thread(fn, i) for i in indices]
        if pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            pool = ProcessPoolExecutor(max_workers=workers - 1, initializer=_worker_init,
                                       mp_context=multiprocessing.get_context("spawn"))
        return _shared_map(pool, workers - 1, fn, indices)

    try:
        yield run
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def _shared_map(pool: Any, children: int, fn: Callable[[int], T], indices: list[int]) -> list[T]:
    """``[fn(i) for i in indices]``: this process and the pool's ``children`` processes each take the next index
    when free (one feeder thread per child waits on its task, so this process's thread computes meanwhile)."""
    import threading

    order = iter(range(len(indices)))
    lock = threading.Lock()
    out: list[Any] = [None] * len(indices)
    errors: list[BaseException] = []
    stop = threading.Event()

    def take() -> int | None:
        with lock:
            return None if stop.is_set() else next(order, None)

    def feed() -> None:
        try:
            while (k := take()) is not None:
                out[k] = pool.submit(_one_thread, fn, indices[k]).result()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            errors.append(exc)
            stop.set()

    feeders = [threading.Thread(target=feed, name=f"linrnn-replica-feeder-{c}", daemon=True) for c in range(children)]
    for t in feeders:
        t.start()
    try:
        while (k := take()) is not None:
            out[k] = _one_thread(fn, indices[k])
    except BaseException:
        stop.set()
        raise
    finally:
        for t in feeders:
            t.join()
    if errors:
        raise errors[0]
    return out


def map_replicas(fn: Callable[[int], T], indices: Sequence[int], workers: int = 1) -> list[T]:
    """``[fn(i) for i in indices]`` in ``workers`` processes (:func:`replica_pool` for one call)."""
    with replica_pool(workers) as run:
        return run(fn, indices)
