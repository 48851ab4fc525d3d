"""Spectral panels: :func:`plot_responsibility` and :func:`plot_sets` (``ax=`` in, Axes out)."""

from __future__ import annotations

import math

import numpy as np

from ..errors import ParameterError
from ._common import (
    _DB_RANGE,
    _NAMES,
    _RESP_COLOR,
    _SPEC_COLOR,
    SET_COLORS,
    SET_LABELS,
    _count,
    _db,
    _empty_panel,
    _fmin,
    _fmt_hz,
    _hop_seconds,
    _hz_axis,
    _layer_bands,
    _layers,
    _log_floor,
    _log_xmin,
    _magnitude,
    _new_axes,
    _pool_grid,
    _pool_line,
    _runs,
    _short,
    _times,
    band_text,
    mathtext_escape,
)

__all__ = ["plot_responsibility", "plot_sets"]


def plot_responsibility(e, ax=None, scale: str = "linear", *, colorbar: bool = True):
    """Responsibility over frequency (``fft``) or time-frequency (``stft``).

    Parameters
    ----------
    e : Explanation
    ax : matplotlib Axes, optional
    scale : {"linear", "log"}
        Frequency axis. On a log axis the 0 Hz bin is not shown.
    colorbar : bool
        Add a colour bar (``stft`` heatmap only).

    Returns
    -------
    matplotlib Axes
    """
    if scale not in ("linear", "log"):
        raise ParameterError(f"scale must be 'linear' or 'log', got {scale!r}")
    log = scale == "log"
    ax = _new_axes(ax, (8.0, 3.0))
    resp = np.asarray(e.responsibility, dtype=np.float64)
    freqs = np.asarray(e.frequencies, dtype=np.float64)
    title = f"responsibility ({scale} frequency)"
    if e.space == "fft" or resp.ndim == 1:
        r = resp.reshape(-1)
        f, v = _pool_line(freqs, r, log)
        if f.size == 0:
            return _empty_panel(ax, title, "nothing to show on a log axis")
        ax.fill_between(f, 0, v, color=_RESP_COLOR, alpha=0.25, lw=0, step="mid")
        ax.plot(f, v, color=_RESP_COLOR, lw=0.9, drawstyle="steps-mid")
        if log:
            ax.set_xscale("log")
            ax.set_xlim(_log_xmin(freqs, _fmin(e)), freqs[-1])
        else:
            ax.set_xlim(freqs[0], freqs[-1])
        top = float(np.max(r)) if r.size else 0.0
        ax.set_ylim(0, (top or 1.0) * 1.18)
        if top > 0:
            i = int(np.argmax(r))
            x0, x1 = ax.get_xlim()
            if log:
                frac = (math.log(max(freqs[i], x0)) - math.log(x0)) / (math.log(x1) - math.log(x0))
            else:
                frac = (freqs[i] - x0) / ((x1 - x0) or 1.0)
            ha = "left" if frac < 0.15 else ("right" if frac > 0.85 else "center")
            ax.annotate(f"max at {_fmt_hz(freqs[i])} Hz", (freqs[i], top), xytext=(0, 3), textcoords="offset points",
                        fontsize=8, color=_RESP_COLOR, ha=ha, va="bottom")
        ax.set_xlabel("frequency (Hz)")
        ax.set_ylabel("responsibility")
        _hz_axis(ax.xaxis, log)
    else:
        hop_s = _hop_seconds(e)
        times = _times(e, resp.shape[0])
        t_edges, f_edges, z = _pool_grid(resp, times, freqs, log, hop_s)
        mesh = ax.pcolormesh(t_edges, f_edges, z.T, cmap="magma", shading="flat", vmin=0,
                             vmax=max(float(resp.max()), 1e-12), rasterized=True)
        if log:
            ax.set_yscale("log")
            ax.set_ylim(_log_floor(f_edges), f_edges[-1])
        ax.set_xlabel("time (s)")
        ax.set_ylabel("frequency (Hz)")
        _hz_axis(ax.yaxis, log)
        if colorbar:
            ax.figure.colorbar(mesh, ax=ax, label="responsibility", pad=0.01, fraction=0.04)
    ax.set_title(title, loc="left", fontsize=10)
    return ax


# --------------------------------------------------------------------------- sets
def plot_sets(e, ax=None, *, scale: str = "log", label_bands: int = 6):
    """The spectrum with the three nested sets in three colours.

    ``fft``: the magnitude spectrum (dB) of the original with the bands of the
    sufficient set, of the bins the sufficient-and-necessary set adds, and of
    the bins the complete set adds shaded in :data:`SET_COLORS`, and the
    sufficient set's bands labelled in Hz. ``stft``: the spectrogram (dB,
    grey) with the cells of the three layers overlaid. Absent sets are named
    in the legend with the reason.

    Parameters
    ----------
    e : Explanation
    ax : matplotlib Axes, optional
    scale : {"log", "linear"}
        Frequency axis.
    label_bands : int
        Label at most this many bands of the sufficient set (``fft``).

    Returns
    -------
    matplotlib Axes
    """
    from matplotlib.patches import Patch

    if scale not in ("linear", "log"):
        raise ParameterError(f"scale must be 'linear' or 'log', got {scale!r}")
    log = scale == "log"
    ax = _new_axes(ax, (8.0, 3.2))
    freqs = np.asarray(e.frequencies, dtype=np.float64)
    layers = _layers(e)
    mag = _magnitude(e)
    handles = []
    for name in _NAMES:
        layer = layers[name]
        if layer is None:
            reason = (getattr(e, "reasons", None) or {}).get(name) or "absent"
            handles.append(Patch(facecolor="none", edgecolor=SET_COLORS[name], hatch="///",
                                 label=f"{SET_LABELS[name]}: absent ({mathtext_escape(_short(reason))})"))
            continue
        used = layer if layer.ndim == 1 else layer.any(axis=0)
        unit = "bins" if e.space == "fft" else "cells"
        if not layer.any():
            handles.append(Patch(color=SET_COLORS[name], alpha=0.85,
                                 label=f"{SET_LABELS[name]}: adds nothing"))
            continue
        handles.append(Patch(color=SET_COLORS[name], alpha=0.85,
                             label=f"{SET_LABELS[name]}: {_count(int(layer.sum()), unit)}, "
                                   f"{band_text(_layer_bands(freqs, used), 2)}"))
    if e.space == "fft" or np.asarray(e.responsibility).ndim == 1:
        _plot_sets_fft(e, ax, freqs, layers, mag, log, label_bands)
    else:
        _plot_sets_stft(e, ax, freqs, layers, mag, log)
    from matplotlib.transforms import ScaledTranslation

    below = ax.transAxes + ScaledTranslation(0, -32 / 72, ax.figure.dpi_scale_trans)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, 0.0), bbox_transform=below,
              ncol=3, fontsize=7.5, frameon=False, handlelength=1.4, columnspacing=1.2, borderaxespad=0.0)
    ax.set_title("the sets on the spectrum", loc="left", fontsize=10)
    return ax



def _plot_sets_fft(e, ax, freqs, layers, mag, log, label_bands,
                   no_spectrum: str = "no original audio: spectrum not shown") -> None:
    from matplotlib.transforms import blended_transform_factory

    df = float(freqs[1] - freqs[0]) if freqs.size > 1 else 1.0
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    lo_y, hi_y = -_DB_RANGE, 5.0
    if mag is not None and mag.size != freqs.size:
        # an original of another length (a damaged or replaced original.wav of a saved run): its
        # spectrum would not line up with the explanation's bins
        mag, no_spectrum = None, "the original audio does not match the explanation's bins: spectrum not shown"
    if mag is not None:
        m = mag.reshape(-1)
        db = _db(m, float(m.max()))
        f, v = _pool_line(freqs, db, log)
        ax.plot(f, v, color=_SPEC_COLOR, lw=0.7, zorder=3, label="_spectrum")
        ax.set_ylabel("magnitude (dB)")
        ax.set_ylim(lo_y, hi_y)
    else:
        ax.set_yticks([])
        ax.text(0.01, 0.95, f"({no_spectrum})", transform=ax.transAxes, fontsize=8,
                color="#6b6b6b", va="top")
    # Shaded bands (with an edge so that a one-bin band is still >= 1 px wide), and a rug.
    rows = {"sufficient": (0.0, 0.04), "sufficient_necessary": (0.04, 0.04), "complete": (0.08, 0.04)}
    for name in reversed(_NAMES):
        layer = layers[name]
        if layer is None:
            continue
        runs = _runs(layer)
        if not runs:
            continue
        spans = [(freqs[a] - df / 2, (b - a + 1) * df) for a, b in runs]
        if log:
            spans = [(max(s, freqs[1] / 2 if freqs.size > 1 else s), w) for s, w in spans]
        color = SET_COLORS[name]
        ax.broken_barh(spans, (0, 1), transform=trans, facecolors=color, edgecolors=color, linewidth=0.6,
                       alpha=0.28, zorder=1)
        ax.broken_barh(spans, rows[name], transform=trans, facecolors=color, edgecolors=color, linewidth=0.8,
                       alpha=1.0, zorder=4)
    if log:
        ax.set_xscale("log")
        ax.set_xlim(_log_xmin(freqs, _fmin(e)), freqs[-1])
    else:
        ax.set_xlim(freqs[0], freqs[-1])
    ax.set_xlabel("frequency (Hz)")
    _hz_axis(ax.xaxis, log)
    # Hz labels on the sufficient set's bands.
    suff = layers["sufficient"]
    if suff is not None and label_bands > 0:
        runs = _runs(suff)
        resp = np.asarray(e.responsibility, dtype=np.float64).reshape(-1)
        order = sorted(runs, key=lambda r: -float(resp[r[0]: r[1] + 1].max()))[:label_bands]
        for k, (a, b) in enumerate(sorted(order)):
            lo, hi = freqs[a], freqs[b]
            text = f"{_fmt_hz(lo)} Hz" if a == b else f"{_fmt_hz(lo)}–{_fmt_hz(hi)} Hz"
            x = math.sqrt(max(lo, 1e-9) * max(hi, 1e-9)) if log else (lo + hi) / 2
            ax.annotate(text, (x, 0.84 - 0.09 * (k % 3)), xycoords=trans, fontsize=7.5, ha="center",
                        color=SET_COLORS["sufficient"], fontweight="bold", zorder=6,
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))


def _plot_sets_stft(e, ax, freqs, layers, mag, log) -> None:
    from matplotlib.colors import ListedColormap

    shape = np.asarray(e.responsibility).shape
    hop_s = _hop_seconds(e)
    times = _times(e, shape[0])
    if mag is not None and mag.shape == shape:
        db = _db(mag, float(mag.max()))
        t_edges, f_edges, z = _pool_grid(db, times, freqs, log, hop_s)
        ax.pcolormesh(t_edges, f_edges, z.T, cmap="Greys", vmin=-_DB_RANGE, vmax=0, shading="flat", rasterized=True)
    cat = np.zeros(shape, dtype=np.int8)
    for code, name in ((1, "complete"), (2, "sufficient_necessary"), (3, "sufficient")):
        if layers[name] is not None:
            cat[layers[name]] = code
    t_edges, f_edges, z = _pool_grid(cat, times, freqs, log, hop_s)
    for code, name, alpha in ((1, "complete", 0.35), (2, "sufficient_necessary", 0.7), (3, "sufficient", 0.8)):
        sel = np.ma.masked_not_equal(z, code)
        if sel.count() == 0:
            continue
        ax.pcolormesh(t_edges, f_edges, sel.T, cmap=ListedColormap([SET_COLORS[name]]), alpha=alpha,
                      shading="flat", rasterized=True)
    if log:
        ax.set_yscale("log")
    ax.set_ylim(_log_floor(f_edges) if log else f_edges[0], f_edges[-1])
    ax.set_xlim(t_edges[0], t_edges[-1])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    _hz_axis(ax.yaxis, log)

