"""Waveforms: :func:`plot_waveform` (one panel: ``ax=`` in, Axes out)."""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..errors import ParameterError
from ._common import _MAX_POINTS, _WAVE_COLOR, _empty_panel, _is_explanation, _new_axes, _try_audio

__all__ = ["plot_waveform"]


def plot_waveform(audio, sample_rate: Optional[float] = None, ax=None, *, name: str = "original",
                  title: Optional[str] = None, color: Optional[str] = None, reference=None):
    """A waveform over time (a min/max envelope for long clips).

    Parameters
    ----------
    audio : array_like or Explanation
        Samples, or an Explanation (then ``e.audio(name)`` at its rate).
    sample_rate : float, optional
        Hz; required for an array.
    ax : matplotlib Axes, optional
    name : str
        Which waveform of an Explanation: original, sufficient, sufficient_necessary, complete.
    title : str, optional
    color : str, optional
    reference : array_like, optional
        Another waveform (e.g. the original) drawn faintly behind.

    Returns
    -------
    matplotlib Axes
    """
    ax = _new_axes(ax, (8.0, 2.2))
    if _is_explanation(audio):
        e = audio
        sample_rate = e.sample_rate
        x, why = _try_audio(e, name)
        if title is None:
            title = name.replace("_", " & ") if name == "sufficient_necessary" else name
        if x is None:
            return _empty_panel(ax, title, why)
    else:
        if sample_rate is None:
            raise ParameterError("plot_waveform needs sample_rate for an array")
        x = np.asarray(audio, dtype=np.float64).ravel()
    sr = float(sample_rate)
    if x.size == 0:
        return _empty_panel(ax, title or "", "empty waveform")
    color = color or _WAVE_COLOR
    if reference is not None:
        _envelope(ax, np.asarray(reference, dtype=np.float64).ravel(), sr, "#d9d9d9", label="original")
    _envelope(ax, x, sr, color)
    ax.set_xlim(0, x.size / sr)
    peak = float(np.max(np.abs(x))) if x.size else 1.0
    if reference is not None:
        peak = max(peak, float(np.max(np.abs(reference))))
    ax.set_ylim(-1.05 * (peak or 1.0), 1.05 * (peak or 1.0))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    if title:
        ax.set_title(title, loc="left", fontsize=10)
    ax.margins(x=0)
    return ax


def _envelope(ax, x: np.ndarray, sr: float, color: str, label=None) -> None:
    n = x.size
    if n <= 2 * _MAX_POINTS:
        ax.plot(np.arange(n) / sr, x, color=color, lw=0.7, label=label)
        return
    step = math.ceil(n / _MAX_POINTS)
    starts = np.arange(0, n, step)
    hi = np.maximum.reduceat(x, starts)
    lo = np.minimum.reduceat(x, starts)
    t = (starts + step / 2) / sr
    ax.fill_between(t, lo, hi, color=color, lw=0.3, label=label, step="mid")

