"""A tiny progress bar on stderr, shown only for work that lasts longer than a second."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``with Progress(total, "label") as bar: bar.advance(k, note)``.

    Nothing is written during the first ``delay`` seconds, so short runs stay silent;
    afterwards the bar is redrawn in place (carriage return) at most ``rate`` times a
    second and closed with a newline. Disabled entirely with ``enabled=False``.
    """

    def __init__(
        self,
        total: float,
        label: str,
        *,
        stream: TextIO | None = None,
        delay: float = 1.0,
        rate: float = 10.0,
        width: int = 30,
        enabled: bool = True,
    ) -> None:
        self.total = max(float(total), 1e-300)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.delay = delay
        self.interval = 1.0 / rate
        self.width = width
        self.enabled = enabled
        self.done = 0.0
        self.start = time.perf_counter()
        self.last = -1.0
        self.shown = False

    def __enter__(self) -> Progress:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.shown:
            if exc[0] is None:
                self._draw("done", force=True)
            self.stream.write("\n")
            self.stream.flush()

    def advance(self, amount: float, note: str = "") -> None:
        self.done = min(self.total, self.done + amount)
        self._draw(note)

    def _draw(self, note: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        elapsed = now - self.start
        if not force and (elapsed < self.delay or now - self.last < self.interval):
            return
        self.last = now
        frac = self.done / self.total
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        eta = f" eta {elapsed * (1 - frac) / frac:5.1f}s" if 0 < frac < 1 else ""
        self.stream.write(f"\r{self.label} [{bar}] {100 * frac:5.1f}% {elapsed:6.1f}s{eta} {note}".ljust(100)[:100])
        self.stream.flush()
        self.shown = True
