"""The paper's Figure 1: :func:`plot_explanation` (several panels: ``fig=`` in, Figure out)."""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from ._common import (
    _DB_RANGE,
    SET_COLORS,
    _coefficients_of,
    _count,
    _db,
    _empty_panel,
    _hop_seconds,
    _hz_axis,
    _log_floor,
    _magnitude,
    _pool_grid,
    _times,
    _title,
    _try_audio,
    require_matplotlib,
)
from .spectrum import plot_responsibility, plot_sets
from .waveform import plot_waveform

__all__ = ["plot_explanation"]


def plot_explanation(e, fig=None, *, figsize: Optional[Tuple[float, float]] = None, title: Optional[str] = None):
    """The paper's Figure 1 for one explanation, drawn on `fig` or on a new Figure.

    Panels: (a) the original waveform; (b) responsibility over frequency on a
    linear and a log-frequency axis (heatmaps for ``stft``); (c) the sets on
    the spectrum (spectrogram for ``stft``); (d) the resynthesised sufficient
    signal; (e) the sufficient-and-necessary signal (for ``stft``,
    spectrograms of both, on the original's dB scale). An absent set gives an
    annotated empty panel.

    Parameters
    ----------
    e : Explanation
    fig : matplotlib Figure or SubFigure, optional
        Where to draw (it should be empty; a SubFigure puts Figure 1 beside
        other plots). A new Figure (constrained layout) when None.
    figsize : (float, float), optional
        Inches of the new Figure (ignored when `fig` is given).
    title : str, optional
        The heading (default: the class, its score and the space).

    Returns
    -------
    matplotlib.figure.Figure
        `fig`, or the new Figure.
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    stft = e.space == "stft" and np.asarray(e.responsibility).ndim == 2
    if fig is None:
        fig = Figure(figsize=figsize or (11.0, 14.0 if stft else 12.5), layout="constrained")
    heights = [0.8, 1.1, 1.25, 0.8, 0.8] if not stft else [0.7, 1.1, 1.25, 1.0, 1.0]
    gs = fig.add_gridspec(5, 2, height_ratios=heights)
    axes = {
        "a": fig.add_subplot(gs[0, :]),
        "b1": fig.add_subplot(gs[1, 0]),
        "b2": fig.add_subplot(gs[1, 1]),
        "c": fig.add_subplot(gs[2, :]),
        "d": fig.add_subplot(gs[3, :]),
        "e": fig.add_subplot(gs[4, :]),
    }
    plot_waveform(e, ax=axes["a"], name="original", title="(a) original")
    plot_responsibility(e, ax=axes["b1"], scale="linear")
    plot_responsibility(e, ax=axes["b2"], scale="log")
    axes["b1"].set_title("(b) responsibility, linear frequency", loc="left", fontsize=10)
    axes["b2"].set_title("(b) responsibility, log frequency", loc="left", fontsize=10)
    plot_sets(e, ax=axes["c"])
    axes["c"].set_title("(c) the sets on the " + ("spectrogram" if stft else "spectrum"), loc="left", fontsize=10)
    original, _ = _try_audio(e, "original")
    for key, name, label in (("d", "sufficient", "(d) sufficient"),
                             ("e", "sufficient_necessary", "(e) sufficient & necessary")):
        ax = axes[key]
        x, why = _try_audio(e, name)
        if x is None:
            _empty_panel(ax, label, why)
            continue
        score = (getattr(e, "set_scores", None) or {}).get(name)
        size = e.size(name)
        unit = "bins" if not stft else "cells"
        full = f"{label}: {_count(size, unit)}" + (f", score {score:.3f}" if score is not None else "")
        if stft:
            _plot_signal_spectrogram(e, ax, x, full)
        else:
            plot_waveform(x, e.sample_rate, ax=ax, title=full, color=SET_COLORS[name], reference=original)
    head = title if title is not None else f"freqrex explanation of {_title(e)} — {e.space} space"
    fig.suptitle(head, fontsize=12, x=0.01, ha="left")
    return fig


def _plot_signal_spectrogram(e, ax, x: np.ndarray, title: str) -> None:
    freqs = np.asarray(e.frequencies, dtype=np.float64)
    mag = _coefficients_of(e, x)
    ref = _magnitude(e)
    peak = float(ref.max()) if ref is not None and ref.size else float(mag.max())
    db = _db(mag, peak)
    times = _times(e, mag.shape[0])
    t_edges, f_edges, z = _pool_grid(db, times, freqs[: mag.shape[1]], True, _hop_seconds(e))
    mesh = ax.pcolormesh(t_edges, f_edges, z.T, cmap="magma", vmin=-_DB_RANGE, vmax=0, shading="flat",
                         rasterized=True)
    ax.set_yscale("log")
    ax.set_ylim(_log_floor(f_edges), f_edges[-1])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    _hz_axis(ax.yaxis, True)
    ax.set_title(title + " (spectrogram, 0 to -80 dB re. the original's peak)", loc="left", fontsize=10)
    return mesh


