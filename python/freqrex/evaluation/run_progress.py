"""Progress of a whole run: one tqdm bar on a terminal, a plain line now and then elsewhere."""

from __future__ import annotations

import sys
import time
from typing import Any, Dict, Optional, TextIO


def record_queries(rec: Dict[str, Any]) -> int:
    """Model queries a clip record spent: its explanations and every flip search."""
    if rec.get("status") != "ok":
        return 0
    n = int((rec.get("fft_explanation") or {}).get("queries") or 0)
    n += int((rec.get("stft_explanation") or {}).get("queries") or 0)
    for field in ("fft_flips", "fft_flips_given_explanation"):
        for per_k in (rec.get(field) or {}).values():
            n += sum(int(v.get("flip_queries") or 0) for v in per_k.values())
    for field in ("stft_flips", "stft_flips_given_explanation"):
        n += sum(int(v.get("flip_queries") or 0) for v in (rec.get(field) or {}).values())
    return n


class RunProgress:
    """Clips done, queries and the ETA of a run.

    On a terminal: one ``tqdm`` bar.  Elsewhere (a log file, CI): one line
    every ``interval`` seconds and a last one at the end, so a long run shows
    that it lives without filling the log.

    Parameters
    ----------
    label : str
    stream : file, optional
        Default ``sys.stderr``.
    enabled : bool
        False: silent.
    interval : float
        Seconds between plain lines (not on a terminal).
    """

    def __init__(self, label: str = "evaluate", *, stream: Optional[TextIO] = None, enabled: bool = True,
                 interval: float = 30.0):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.interval = float(interval)
        self.tty = bool(enabled and hasattr(self.stream, "isatty") and self.stream.isatty())
        self.total = 0
        self.done = 0
        self.errors = 0
        self.queries = 0
        self._bar: Any = None
        self._start = time.monotonic()
        self._last_line = self._start

    def start(self, total: int) -> None:
        self.total = int(total)
        self._start = self._last_line = time.monotonic()
        if self.enabled and self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=self.label, unit="clip", file=self.stream, dynamic_ncols=True)

    def update(self, rec: Dict[str, Any]) -> None:
        self.done += 1
        self.errors += int(rec.get("status") != "ok")
        self.queries += record_queries(rec)
        if self._bar is not None:
            self._bar.set_postfix_str(self._postfix(), refresh=False)
            self._bar.update(1)
        self.tick()

    def _postfix(self) -> str:
        return f"{self.queries} queries" + (f", {self.errors} errors" if self.errors else "")

    def line(self) -> str:
        """The plain progress line: clips done/total, queries, elapsed and ETA."""
        from tqdm import tqdm

        return tqdm.format_meter(self.done, self.total or None, time.monotonic() - self._start,
                                 prefix=self.label, unit="clip", postfix=self._postfix(), ncols=0)

    def tick(self) -> None:
        if not self.enabled or self.tty:
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval:
            self._last_line = now
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def write(self, message: str) -> None:
        """Print a line (above the bar on a terminal)."""
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
        else:
            self.stream.write(message + "\n")
            self.stream.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.total:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
