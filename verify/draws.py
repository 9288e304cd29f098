"""Draws of wide linear RNNs from independent random streams, generated on several cores.

The Monte Carlo of :mod:`linrnn.verify.montecarlo` is bound by its random numbers at
large widths (an n x n Gaussian matrix per draw against 2 (lags - 1) passes over it).
A single generator runs on one core, so here every draw's numbers come from streams
of their own, and any number of threads may fill them:

* draw r (0-based, counted over the whole width) of width n has
  :func:`streams_per_draw` (n) = S streams for W, each filling one block of rows of W
  (rows split as evenly as possible), and one more stream for F and then C;
* stream s of draw r is the generator ``PCG64(SeedSequence(entropy, spawn_key=(n, r, s)))``
  (``numpy.random.SeedSequence`` spawning: independent streams, and the NumPy way to
  seed parallel generators), ``entropy`` being the backend's seed.

Below n = 64 a stream per draw would cost more than its numbers: there B(n) = 4096 // n^2
consecutive draws share one stream (:func:`draws_per_block`), drawn as a block.

S and B depend on n only, so the numbers of a draw do not depend on the number of worker
threads, on the chunk a draw falls in, or on the order in which blocks are filled:
a run with one worker and a run with eight give the same arrays, bit for bit.

:class:`DrawMaker` runs the blocks of a chunk of draws on ``workers - 1`` helper threads
while the calling thread does other work (the matrix-vector passes of the previous
chunk); when the caller asks for the chunk, it fills the blocks that are left itself.
NumPy's generators release the GIL while they fill an array, so the threads run on
separate cores: the time per draw approaches the larger of drawing the matrix with all
cores and the passes over it. On CuPy the numbers are drawn on the device from one
generator per draw (seeded from the same streams), without threads.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from linrnn.core.machine import default_workers
from linrnn.core.spec import ModelSpec
from linrnn.verify.backend import Backend
from linrnn.verify.sample import RNNDraw

#: W is split into row blocks of at least this many entries, each from its own stream.
BLOCK_ITEMS = 2**18
#: At most this many streams per matrix (more blocks than cores only add bookkeeping).
MAX_STREAMS = 16


#: Below this many entries of W per draw, draws share streams in blocks (:func:`draws_per_block`).
SMALL_DRAW_ITEMS = 2**12


def draws_per_block(n: int) -> int:
    """B(n) = max(1, 4096 // n^2): the draws of width n that share one stream (1 from n = 64 up).

    Seeding a stream costs about 45 us (SeedSequence hashing), as much as drawing 4000
    normals: at small widths a stream per draw would cost ten times the draws. Draws
    r = bB .. bB + B - 1 come from one stream (block b), filled as one array per
    matrix; a chunk that cuts a block draws the block whole and keeps its part, so the
    numbers still depend only on (seed, n, r).
    """
    return max(1, SMALL_DRAW_ITEMS // (int(n) * int(n)))


def block_generator(entropy: int, n: int, block: int) -> np.random.Generator:
    """The stream of block ``block`` of width n (B(n) > 1): SeedSequence(entropy, spawn_key=(n, block, 0, 1))."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy, spawn_key=(int(n), int(block), 0, 1))))


def streams_per_draw(n: int) -> int:
    """S(n) = min(16, max(1, n^2 // 2^18)): the streams (row blocks) of one n x n matrix W.

    One stream up to n = 724, 4 at n = 1024, 16 from n = 2048: a block of 2^18 normals
    takes a few milliseconds, long against the cost of seeding a generator (about 20 us).
    """
    return max(1, min(MAX_STREAMS, (n * n) // BLOCK_ITEMS))


def entropy_of(seed: int | None) -> int:
    """The root entropy of the streams: ``seed``, or fresh entropy from the OS when it is None."""
    return int(seed) if seed is not None else int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]


def generator(entropy: int, n: int, replica: int, stream: int) -> np.random.Generator:
    """Stream ``stream`` of draw ``replica`` at width n: PCG64 seeded by SeedSequence(entropy, spawn_key=(n, r, s))."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy, spawn_key=(int(n), int(replica), int(stream)))))


def _row_blocks(n: int, S: int) -> list[tuple[int, int]]:
    edges = [(n * s) // S for s in range(S + 1)]
    return [(edges[s], edges[s + 1]) for s in range(S)]


@dataclass
class _Chunk:
    """A chunk of draws being filled: host arrays and a countdown of its blocks."""

    first: int
    count: int
    W: np.ndarray
    F: np.ndarray
    C: np.ndarray
    left: int
    done: threading.Condition = field(default_factory=threading.Condition)
    error: BaseException | None = None


class DrawMaker:
    """Chunks of draws of ``spec`` at width ``n`` from the per-draw streams, filled by ``workers`` threads.

    ``start(first, count)`` queues the blocks of draws first .. first+count-1 (helper
    threads begin at once); ``finish(chunk)`` fills what is left in the calling thread,
    waits for the helpers and returns the batch as an :class:`RNNDraw` of the backend
    (shape (count, ...)); ``recycle(chunk)`` hands its arrays back for a later chunk once
    its draws are no longer used. Use as a context manager (the helpers stop at exit).
    """

    def __init__(self, backend: Backend, spec: ModelSpec, n: int, *, workers: int | None = None) -> None:
        self.backend, self.spec, self.n = backend, spec, int(n)
        self.entropy = entropy_of(backend.seed)
        self.S = streams_per_draw(self.n)
        self.B = draws_per_block(self.n)
        self.rows = _row_blocks(self.n, self.S)
        self.stds = spec.raw_stds(self.n)  # (C, F, W)
        self.host = backend.name != "cupy"
        self.workers = max(1, int(workers if workers is not None else default_workers()))
        self._free: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._tasks: queue.SimpleQueue[tuple[_Chunk, Callable[[], None]] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._help, name=f"verify-draws-{k}", daemon=True)
                         for k in range(self.workers - 1 if self.host else 0)]
        for t in self._threads:
            t.start()

    def __enter__(self) -> DrawMaker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for _ in self._threads:
            self._tasks.put(None)
        for t in self._threads:
            t.join()
        self._threads = []

    # -- work items
    def _run(self, chunk: _Chunk, task: Callable[[], None]) -> None:
        try:
            task()
        except BaseException as exc:  # reported by finish() in the calling thread
            chunk.error = exc
        with chunk.done:
            chunk.left -= 1
            chunk.done.notify_all()

    def _help(self) -> None:
        while True:
            item = self._tasks.get()
            if item is None:
                return
            self._run(*item)

    def _w_block(self, W: np.ndarray, i: int, replica: int, s: int) -> Callable[[], None]:
        r0, r1 = self.rows[s]
        std_w = self.stds[2]

        def fill() -> None:
            out = W[i, r0:r1]
            generator(self.entropy, self.n, replica, s).standard_normal(dtype=out.dtype, out=out)
            if std_w != 1.0:
                out *= std_w

        return fill

    def _fc(self, F: np.ndarray, C: np.ndarray, i: int, replica: int) -> Callable[[], None]:
        std_c, std_f, _ = self.stds

        def fill() -> None:
            g = generator(self.entropy, self.n, replica, self.S)
            g.standard_normal(dtype=F.dtype, out=F[i])
            g.standard_normal(dtype=C.dtype, out=C[i])
            if std_f != 1.0:
                F[i] *= std_f
            if std_c != 1.0:
                C[i] *= std_c

        return fill

    def _block(self, chunk: _Chunk, b: int) -> Callable[[], None]:
        """Fill the chunk's draws that fall in block b: the block's stream draws W, F, C of its B draws, whole."""
        std_c, std_f, std_w = self.stds
        n, nx, ny, B = self.n, self.spec.n_in, self.spec.n_out, self.B

        def fill() -> None:
            g = block_generator(self.entropy, n, b)
            dt = chunk.W.dtype
            lo, hi = max(chunk.first, b * B), min(chunk.first + chunk.count, (b + 1) * B)  # draws kept
            src, dst = slice(lo - b * B, hi - b * B), slice(lo - chunk.first, hi - chunk.first)
            for out, shape, std in ((chunk.W, (B, n, n), std_w), (chunk.F, (B, n, nx), std_f),
                                    (chunk.C, (B, ny, n), std_c)):
                block = g.standard_normal(shape, dtype=dt)
                out[dst] = block[src]
                if std != 1.0:
                    out[dst] *= std

        return fill

    # -- chunks
    def start(self, first: int, count: int) -> _Chunk:
        """Queue the blocks of draws ``first`` .. ``first + count - 1``."""
        n, nx, ny = self.n, self.spec.n_in, self.spec.n_out
        dt = np.dtype(self.backend.dtype_name)
        if not self.host:
            return _Chunk(first, count, np.empty(0), np.empty(0), np.empty(0), left=0)
        W, F, C = self._buffers(count, dt)
        if self.B > 1:  # small draws: one task per block of B draws sharing a stream
            blocks = range(first // self.B, (first + count - 1) // self.B + 1)
            chunk = _Chunk(first, count, W, F, C, left=len(blocks))
            for b in blocks:
                self._tasks.put((chunk, self._block(chunk, b)))
            return chunk
        chunk = _Chunk(first, count, W, F, C, left=count * (self.S + 1))
        for i in range(count):
            for s in range(self.S):
                self._tasks.put((chunk, self._w_block(chunk.W, i, first + i, s)))
            self._tasks.put((chunk, self._fc(chunk.F, chunk.C, i, first + i)))
        return chunk

    def _buffers(self, count: int, dt: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Host arrays for a chunk of ``count`` draws: a recycled set of that size, or new ones.

        Reusing the arrays of a chunk that has been processed saves the page faults of
        fresh memory (an n x n matrix per draw, every draw)."""
        for k, bufs in enumerate(self._free):
            if bufs[0].shape[0] == count and bufs[0].dtype == dt:
                return self._free.pop(k)
        n, nx, ny = self.n, self.spec.n_in, self.spec.n_out
        return np.empty((count, n, n), dt), np.empty((count, n, nx), dt), np.empty((count, ny, n), dt)

    def recycle(self, chunk: _Chunk) -> None:
        """Hand back a finished chunk whose draws are no longer used: its arrays serve a later chunk."""
        if self.host and self.backend.name == "numpy" and len(self._free) < 2:
            self._free.append((chunk.W, chunk.F, chunk.C))

    def finish(self, chunk: _Chunk) -> RNNDraw:
        """Fill the chunk's remaining blocks here, wait for the helpers, and return the draws."""
        be = self.backend
        if not self.host:
            return self._device_chunk(chunk)
        while chunk.left > 0:
            try:
                item = self._tasks.get_nowait()
            except queue.Empty:
                break
            if item is None:  # pragma: no cover - only close() queues None
                self._tasks.put(None)
                break
            self._run(*item)
        with chunk.done:
            while chunk.left > 0:
                chunk.done.wait()
        if chunk.error is not None:
            raise chunk.error
        W = self.spec.transition(chunk.W)  # the family's law of W from the iid entries (Gaussian: the array itself)
        if be.name == "numpy":
            return RNNDraw(W, chunk.F, chunk.C, self.spec)
        return RNNDraw(be.asarray(W), be.asarray(chunk.F), be.asarray(chunk.C), self.spec)

    def _device_chunk(self, chunk: _Chunk) -> RNNDraw:
        """CuPy: each draw from a device generator seeded by its first stream's state."""
        be = self.backend
        std_c, std_f, std_w = self.stds
        Ws, Fs, Cs = [], [], []
        for r in range(chunk.first, chunk.first + chunk.count):
            seed = int(generator(self.entropy, self.n, r, 0).integers(2**63))
            dev = be.with_seed(seed)
            Ws.append(dev.normal((self.n, self.n), std_w))
            Fs.append(dev.normal((self.n, self.spec.n_in), std_f))
            Cs.append(dev.normal((self.spec.n_out, self.n), std_c))
        xp: Any = be._xp
        return RNNDraw(self.spec.transition(xp.stack(Ws)), xp.stack(Fs), xp.stack(Cs), self.spec)


def draw_replicas(backend: Backend, spec: ModelSpec, n: int, first: int, count: int, *, workers: int = 1) -> RNNDraw:
    """Draws ``first`` .. ``first + count - 1`` of width n (a batch), exactly as the Monte Carlo draws them."""
    with DrawMaker(backend, spec, n, workers=workers) as maker:
        return maker.finish(maker.start(first, count))
