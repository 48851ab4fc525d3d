"""A dependency-free progress bar on stderr."""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class ProgressBar:
    """Draws ``label [#####.....] done/total`` on a terminal; quiet elsewhere.

    Usable as the ``progress`` callback of :func:`freqrex.explain`
    (``bar(phase, done, total)``). When the stream is not a terminal it
    prints nothing until :meth:`close` (one final line), so logs stay clean.
    """

    def __init__(self, label: str = "", *, stream: Optional[TextIO] = None, width: int = 30, enabled: bool = True):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self._last = 0.0
        self.text = ""

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        frac = min(1.0, done / total) if total else 1.0
        if phase != "search":
            frac = 1.0
        filled = int(round(frac * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.perf_counter() - self.start
        self.text = f"{self.label} {phase:<7} [{bar}] {done} queries {elapsed:5.1f}s"
        now = time.perf_counter()
        if self.tty and now - self._last > 0.1:
            self._last = now
            self.stream.write("\r" + self.text)
            self.stream.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + self.text + "\n")
        elif self.text:
            self.stream.write(self.text + "\n")
        self.stream.flush()
