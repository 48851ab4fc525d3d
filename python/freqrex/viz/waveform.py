"""Waveforms: :func:`plot_waveform` (one panel: ``ax=`` in, Axes out)."""

from __future__ import annotations

import math
import numbers
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
        Mono samples (1-D; a ``(1, N)`` or ``(N, 1)`` array is taken as its
        one channel), or an Explanation (then ``e.audio(name)`` at its rate).
        Several channels are refused, not mixed: mix them first (e.g.
        ``x.mean(axis=0)``). Non-finite samples (NaN, inf) are refused.
    sample_rate : float, optional
        Hz, positive and finite (at most ``freqrex.io.MAX_SAMPLE_RATE``);
        required for an array.
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

    Raises
    ------
    ParameterError
        A missing or bad sample rate, several channels, or non-finite samples
        (of `audio` or `reference`). An Explanation's unusable audio gives an
        empty panel saying why instead.
    """
    if _is_explanation(audio):
        e = audio
        ax = _new_axes(ax, (8.0, 2.2))
        if title is None:
            title = name.replace("_", " & ") if name == "sufficient_necessary" else name
        try:
            sr = _rate(e.sample_rate)
        except ParameterError as exc:
            return _empty_panel(ax, title, str(exc))
        x, why = _try_audio(e, name)
        if x is None:
            return _empty_panel(ax, title, why)
        try:
            x = _mono(x, name)
        except ParameterError as exc:
            return _empty_panel(ax, title, str(exc))
    else:
        if sample_rate is None:
            raise ParameterError("plot_waveform needs sample_rate for an array")
        sr = _rate(sample_rate)
        x = _mono(audio, "audio")
        ax = _new_axes(ax, (8.0, 2.2))
    if reference is not None:
        reference = _mono(reference, "reference")
    if x.size == 0:
        return _empty_panel(ax, title or "", "empty waveform")
    color = color or _WAVE_COLOR
    if reference is not None and reference.size:
        _envelope(ax, reference, sr, "#d9d9d9", label="original")
    _envelope(ax, x, sr, color)
    ax.set_xlim(0, x.size / sr)
    peak = float(np.max(np.abs(x))) if x.size else 1.0
    if reference is not None and reference.size:
        peak = max(peak, float(np.max(np.abs(reference))))
    ax.set_ylim(-1.05 * (peak or 1.0), 1.05 * (peak or 1.0))
    ax.set_xlabel("time (s)")
    ax.set_ylabel("amplitude")
    if title:
        ax.set_title(title, loc="left", fontsize=10)
    ax.margins(x=0)
    return ax


def _rate(value) -> float:
    """A sample rate in Hz: a positive, finite number up to ``freqrex.io.MAX_SAMPLE_RATE``."""
    from .._checks import MAX_SAMPLE_RATE

    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
    if ok:
        try:
            v = float(value)
        except (TypeError, ValueError, OverflowError):
            ok = False
        else:
            ok = math.isfinite(v) and 0 < v <= MAX_SAMPLE_RATE
    if not ok:
        raise ParameterError(f"sample_rate must be a positive number (Hz) up to {MAX_SAMPLE_RATE}, got {value!r}")
    return v


def _mono(audio, what: str) -> np.ndarray:
    """1-D float64 samples: one channel (length-1 axes dropped); several channels or non-finite samples refused."""
    try:
        x = np.asarray(audio, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{what} must be an array of samples: {exc}") from exc
    if x.ndim > 1:
        x = x.reshape([n for n in x.shape if n != 1]) if sum(n != 1 for n in x.shape) <= 1 else x
    if x.ndim > 1:
        raise ParameterError(f"{what} has shape {x.shape}: plot_waveform draws one channel; mix the channels "
                             "to mono first (e.g. x.mean(axis=0)) or plot each one")
    x = x.reshape(-1)
    if x.size and not np.all(np.isfinite(x)):
        raise ParameterError(f"{what} holds non-finite samples (NaN or inf)")
    return x


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

