"""Progress of explanations, flips and evaluations on stderr, with tqdm: the one progress module.

Two displays share one behaviour (a tqdm bar on a terminal; elsewhere a
plain line every `interval` seconds and one at the end, with the rate and an
ETA): :class:`ProgressBar` counts the model queries of one task, and
:class:`RunProgress` the clips (and their queries) of a whole run.

:class:`ProgressBar` is the ``progress`` callback of :func:`freqrex.explain`,
:func:`freqrex.flip` and the evaluation (``bar(phase, done, total)``). On a
terminal it is a tqdm bar; elsewhere (a log file, a pipe, CI) it writes a
plain line every `interval` seconds and one at the end, so a long run in a
log shows where it is. Both count every model query of every phase, with the
rate and an ETA.

How queries are counted: a caller reports ``done``, the queries of its
current run so far. There are two kinds of counter: a flip's search (phase
``"flip"``) counts its own queries; the explainer counts on across all its
phases (``original``, ``search``, ``extract``, ``check``, ...). A report
with ``done == 0``, or with a lower ``done`` than the last one of its kind,
starts a new run, whose queries are added to those before. The total (for the ETA) is `total` when
given, else the sum of the budgets the runs report, so it grows as a flip
moves from its explanation to its search.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Dict, Optional, TextIO

__all__ = ["ProgressBar", "RunProgress", "record_queries"]

def _is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (a bar), not a file, a pipe or a buffer (plain lines)."""
    return bool(getattr(stream, "isatty", lambda: False)())


#: Phases with a counter of their own; every other phase is the explainer's (one counter across its phases).
_OWN_COUNTER_PHASES = ("flip",)


class ProgressBar:
    """A progress callback: a tqdm bar on a terminal, periodic plain lines elsewhere.

    Parameters
    ----------
    label : str
        Shown before the bar (e.g. the command and the clip).
    stream : file, optional
        Where to write (default: stderr).
    enabled : bool
        False: write nothing (``--quiet``).
    total : int, optional
        All the queries expected, when the caller knows them (e.g. an
        explanation's budget plus a flip's); otherwise the sum of the budgets
        the runs report.
    interval : float
        Seconds between plain lines when `stream` is not a terminal.
    tty : bool, optional
        Force the terminal (True) or plain-line (False) mode; default: ask
        ``stream.isatty()``.

    Examples
    --------
    >>> bar = ProgressBar("explain")                                   # doctest: +SKIP
    >>> e = freqrex.explain(x, sr, model, progress=bar); bar.close()  # doctest: +SKIP
    """

    def __init__(self, label: str = "", *, stream: Optional[TextIO] = None, enabled: bool = True,
                 total: Optional[int] = None, interval: float = 10.0, tty: Optional[bool] = None):
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(enabled)
        self.interval = float(interval)
        self.tty = self.enabled and (bool(tty) if tty is not None else _is_terminal(self.stream))
        self.fixed_total = None if total is None else int(total)
        self.queries = 0  # every query counted so far, over every run
        self.phase = ""
        self._last: Dict[str, int] = {}  # per counter: the last `done` reported
        self._budgets: Dict[str, int] = {}  # per counter: the budget of its current run
        self._closed_budgets = 0  # budgets of the runs that ended
        self.start = time.monotonic()
        self._last_line = self.start
        self._bar = None
        self.text = ""
        if self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=self.fixed_total, desc=label, unit=" queries", file=self.stream, leave=True,
                             dynamic_ncols=True, mininterval=0.1,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} queries "
                                        "[{elapsed}<{remaining}, {rate_fmt}{postfix}]")

    # ------------------------------------------------------------------ counting
    @property
    def total(self) -> Optional[int]:
        """All the queries expected, as known now (None before the first report)."""
        if self.fixed_total is not None:
            return self.fixed_total
        if not self._budgets and not self._closed_budgets:
            return None
        return max(self.queries, self._closed_budgets + sum(self._budgets.values()))

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        key = str(phase) if phase in _OWN_COUNTER_PHASES else "explain"
        done, total = int(done), int(total)
        last = self._last.get(key)
        if last is None or done == 0 or done < last:  # a new run of this kind
            if last is not None:
                self._closed_budgets += max(last, self._budgets.get(key, 0))
            last = 0
        self.queries += done - last
        self._last[key] = done
        self._budgets[key] = max(total, done)
        self.phase = phase
        self._show()

    def _show(self, final: bool = False) -> None:
        from tqdm import tqdm

        total = self.total
        elapsed = time.monotonic() - self.start
        prefix = self.label if self.phase in ("", self.label) else f"{self.label} ({self.phase})".strip()
        self.text = tqdm.format_meter(self.queries, total, elapsed, prefix=prefix, unit=" queries", ncols=0)
        if self._bar is not None:
            if total is not None and self._bar.total != total:
                self._bar.total = total
            self._bar.set_postfix_str(self.phase, refresh=False)
            self._bar.update(self.queries - self._bar.n)
            return
        now = time.monotonic()
        if final or now - self._last_line >= self.interval:
            self._last_line = now
            self.stream.write(self.text + "\n")
            self.stream.flush()

    def close(self) -> None:
        """End the bar (a terminal) or write the last line (elsewhere)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._show()
            self._bar.close()
            self._bar = None
        elif self.queries or self.phase:
            self._show(final=True)
        self.enabled = False

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------- a whole run
def record_queries(rec: Dict[str, Any]) -> int:
    """Model queries a clip record spent: its explanations and every flip search.

    ``rec`` is a record of :func:`freqrex.evaluation.evaluate_clip` (its
    ``fft_explanation``/``stft_explanation`` queries and every flip's
    ``flip_queries``); a record that is not ``ok`` counts 0.
    """
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
        self.tty = bool(enabled) and _is_terminal(self.stream)
        self.total = 0
        self.done = 0
        self.errors = 0
        self.queries = 0
        self._bar: Any = None
        self._start = time.monotonic()
        self._last_line = self._start

    def start(self, total: int) -> None:
        """Begin a run of ``total`` clips (the bar appears on a terminal)."""
        self.total = int(total)
        self._start = self._last_line = time.monotonic()
        if self.enabled and self.tty:
            from tqdm import tqdm

            self._bar = tqdm(total=self.total, desc=self.label, unit="clip", file=self.stream, dynamic_ncols=True)

    def update(self, rec: Dict[str, Any]) -> None:
        """Count one finished clip, its record ``rec`` (its queries, or an error)."""
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
        """Write the plain line if `interval` seconds have passed (not on a terminal)."""
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
        """End the bar (a terminal) or write the last line (elsewhere)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.total:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
