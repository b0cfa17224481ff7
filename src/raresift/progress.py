"""Progress of long work (embedding): a tqdm bar on a terminal, plain lines elsewhere.

Under ``nohup``, in CI or into a log file a redrawn bar is either silent or a wall of carriage
returns; there :class:`ProgressLines` writes one line now and then instead, with the rate and
the time left, so a person reading the log knows how long to wait.

>>> import io
>>> clock = iter([0.0, 30.0, 60.0, 61.0]).__next__
>>> out = io.StringIO()
>>> lines = ProgressLines(1000, desc="embedding", unit="image", stream=out, clock=clock)
>>> lines.update(300)
>>> lines.update(200)
>>> lines.close()
>>> print(out.getvalue(), end="")
embedding: 300/1,000 images (30 %), 10.0 images/s, about 1 min 10 s left
embedding: 500/1,000 images (50 %), 8.3 images/s, about 1 min left
embedding: 500/1,000 images in 1 min 1 s (8.2 images/s)
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

EVERY_SECONDS = 15.0


def duration(seconds: float) -> str:
    """A duration as a person says it.

    >>> duration(4.2), duration(75), duration(3 * 3600 + 120)
    ('4 s', '1 min 15 s', '3 h 2 min')
    """
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h" + (f" {rest // 60} min" if rest // 60 else "")


class ProgressLines:
    """tqdm's ``update`` / ``close`` as plain lines: at most one every ``every`` seconds (the
    first at the first update), and a last one saying how long it all took.

    ``initial`` counts work done before (a resumed run); the rate counts only this run's work.
    """

    def __init__(
        self,
        total: int,
        initial: int = 0,
        desc: str = "working",
        unit: str = "item",
        every: float = EVERY_SECONDS,
        stream: TextIO | None = None,
        clock=time.monotonic,
    ):
        self.total, self.n, self.start_n = int(total), int(initial), int(initial)
        self.desc, self.unit, self.every = desc, unit, float(every)
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.started = clock()
        self.last_line = None

    def _units(self, n: int) -> str:
        return self.unit if n == 1 else self.unit + "s"

    def _rate(self, now: float) -> float:
        elapsed = now - self.started
        return (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        now = self.clock()
        if self.last_line is not None and now - self.last_line < self.every:
            return
        self.last_line = now
        rate = self._rate(now)
        text = (
            f"{self.desc}: {self.n:,}/{self.total:,} {self._units(self.total)} "
            f"({100 * self.n / max(1, self.total):.0f} %), {rate:.1f} {self._units(2)}/s"
        )
        if rate > 0 and self.n < self.total:
            text += f", about {duration((self.total - self.n) / rate)} left"
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        now = self.clock()
        done = self.n - self.start_n
        resumed = f" ({self.start_n:,} done before)" if self.start_n else ""
        print(
            f"{self.desc}: {self.n:,}/{self.total:,} {self._units(self.total)}{resumed} in "
            f"{duration(now - self.started)} ({self._rate(now):.1f} {self._units(2)}/s)"
            if done
            else f"{self.desc}: {self.n:,}/{self.total:,} {self._units(self.total)}, nothing to do",
            file=self.stream,
            flush=True,
        )


def progress(total: int, initial: int = 0, desc: str = "working", unit: str = "item", show=None):
    """A tqdm bar when stderr is a terminal, :class:`ProgressLines` when it is not, or a silent
    bar when ``show`` is False (``show=None`` or True: shown either way)."""
    from tqdm.auto import tqdm

    if show is False:
        return tqdm(total=total, initial=initial, disable=True)
    if sys.stderr.isatty():
        return tqdm(total=total, initial=initial, desc=desc, unit=unit)
    return ProgressLines(total, initial, desc=desc, unit=unit)
