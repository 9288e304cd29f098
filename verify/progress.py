"""A progress bar on stderr (a thin wrapper over tqdm), shown only for work that lasts longer than a second."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm


class Progress:
    """``with Progress(total, "label") as bar: bar.advance(k, note)``.

    Nothing is written during the first ``delay`` seconds, so short runs stay silent.
    On a terminal the bar is tqdm's, redrawn in place at most ``rate`` times a second
    and closed with a newline. When the stream is not a terminal (a log file, a pipe)
    nothing is redrawn: one plain line ``label: done in 3.2 s`` is written at the end
    (only if the work lasted at least ``delay`` seconds). Disabled entirely with
    ``enabled=False``.
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
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty()) if callable(isatty) else False
        self._bar: tqdm | None = None

    def __enter__(self) -> Progress:
        self.start = time.perf_counter()
        if self.enabled and self.tty:
            self._bar = tqdm(
                total=self.total,
                desc=self.label,
                file=self.stream,
                delay=self.delay,
                mininterval=self.interval,
                miniters=0,
                leave=True,
                bar_format="{desc} [{bar:%d}] {percentage:5.1f}%% {elapsed}<{remaining}{postfix}" % self.width,
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            return
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        if elapsed < self.delay:
            return
        if exc[0] is None:
            self.stream.write(f"{self.label}: done in {elapsed:.1f} s\n")
        else:
            self.stream.write(f"{self.label}: stopped after {elapsed:.1f} s at {100 * self.done / self.total:.0f}%\n")
        self.stream.flush()

    def advance(self, amount: float, note: str = "") -> None:
        step = min(self.total - self.done, float(amount))
        self.done += step
        if self._bar is not None:
            if note:
                self._bar.set_postfix_str(note, refresh=False)
            self._bar.update(step)
