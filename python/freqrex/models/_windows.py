"""Windows for models whose input is shorter than the clip.

A model that takes at most ``window`` samples (an AST classifier: about
10.24 s; an ONNX file with a fixed sample dimension) sees a longer clip as
windows of ``window`` samples that start every ``hop`` samples; the last
window ends where the clip ends, so that every sample is seen.  The clip's
scores are the mean of its windows' probabilities.  A clip no longer than
one window is one window (the adapter pads it, as the model expects).
"""

from __future__ import annotations

import numbers
from typing import Optional

import numpy as np

from ..errors import ParameterError

__all__ = ["window_starts", "split_windows", "mean_over_windows", "check_window"]


def check_window(window, hop, *, name: str = "window") -> tuple:
    """Validate ``(window, hop)`` in samples; ``hop`` None means ``window`` (no overlap)."""
    if window is None:
        if hop is not None:
            raise ParameterError(f"{name}_hop needs {name} (the window length) to be set")
        return None, None
    for value, what in ((window, name), (hop, f"{name}_hop")):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
            raise ParameterError(f"{what} must be a positive number of samples, got {value!r}")
    window = int(window)
    hop = window if hop is None else int(hop)
    if hop > window:
        raise ParameterError(f"the hop ({hop} samples) must not exceed the window ({window}): samples would be skipped")
    return window, hop


def window_starts(n_samples: int, window: int, hop: int) -> np.ndarray:
    """Start of every window over a clip of ``n_samples`` (one window, at 0, when it fits)."""
    if n_samples <= window:
        return np.zeros(1, dtype=np.int64)
    last = n_samples - window
    starts = np.arange(0, last + 1, hop, dtype=np.int64)
    if starts[-1] != last:
        starts = np.append(starts, last)  # the last window ends with the clip
    return starts


def split_windows(waves: np.ndarray, window: int, hop: int) -> tuple:
    """``(windows, n_windows)``: each row of ``waves`` cut into windows, row-major.

    ``windows`` has shape ``(batch * n_windows, min(window, samples))``:
    the windows of waveform 0, then those of waveform 1, ...
    """
    batch, n = waves.shape
    starts = window_starts(n, window, hop)
    width = min(window, n)
    index = starts[:, None] + np.arange(width)[None, :]
    windows = waves[:, index].reshape(batch * starts.size, width)
    return np.ascontiguousarray(windows), int(starts.size)


def mean_over_windows(scores: np.ndarray, batch: int, n_windows: int) -> np.ndarray:
    """Average ``(batch * n_windows, classes)`` window scores back to ``(batch, classes)``."""
    if n_windows == 1:
        return scores
    return scores.reshape(batch, n_windows, -1).mean(axis=1, dtype=np.float64)


def describe(window: Optional[int], hop: Optional[int], sample_rate: int) -> str:
    """Human-readable window, for reprs and errors."""
    if window is None:
        return "whole clip"
    return f"{window / sample_rate:.3g} s windows every {hop / sample_rate:.3g} s"
