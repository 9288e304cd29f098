"""Independent replicas on every core: a process pool whose results do not depend on its size.

A replica (one independent draw of an RNN, trained) is a pure function of its index:
its random numbers come from a generator seeded by (seed, width, index)
(:func:`linrnn.verify.claims_train.draw_rnn`), never from a shared stream, so running
the indices in any order, in any number of processes, gives the same numbers. Each
replica runs with one BLAS thread (:func:`linrnn.verify.threads.blas_threads`) in
every mode, ``workers = 1`` included: the training step is a sequence of
vector-matrix passes that a BLAS thread pool only slows down, and a fixed thread
count keeps the floating-point summation order, hence the bits, the same whatever
the number of workers. The processes are spawned (no fork of a process holding
threads), as in the report's pool (:func:`linrnn.parallel.process_pool`).
"""

from __future__ import annotations

import functools
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
    """A mapper ``run(fn, indices) -> [fn(i) for i in indices]`` over one pool of ``workers`` processes.

    ``fn`` must be picklable (a top-level function or a ``functools.partial`` of one) and
    depend on nothing but its arguments. Results come back in the order of ``indices``;
    each call runs with one BLAS thread. ``workers = 1`` runs in this process; the pool
    (spawned once, on first use) serves every ``run`` inside the block.
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

            pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                                       mp_context=multiprocessing.get_context("spawn"))
        return list(pool.map(functools.partial(_one_thread, fn), indices))

    try:
        yield run
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


def map_replicas(fn: Callable[[int], T], indices: Sequence[int], workers: int = 1) -> list[T]:
    """``[fn(i) for i in indices]`` in ``workers`` processes (:func:`replica_pool` for one call)."""
    with replica_pool(workers) as run:
        return run(fn, indices)
