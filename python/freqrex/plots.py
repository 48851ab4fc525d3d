"""Plots of explanations and flips (the paper's Figure 1), with matplotlib.

matplotlib is imported only inside these functions (``pip install
freqrex[plot]``). Nothing here touches ``matplotlib.pyplot`` or selects a
backend: figures are plain :class:`matplotlib.figure.Figure` objects, so they
work headless (Agg), in notebooks and in scripts alike, and are never kept
alive by a global figure manager.

Every single-panel function takes ``ax=`` (a new figure is made when it is
None) and returns the Axes it drew on (``ax.figure`` is its Figure);
:func:`plot_explanation` returns a whole Figure.

Colours: the sufficient set, the bins the sufficient-and-necessary set adds,
and the bins the complete set adds are drawn in :data:`SET_COLORS`.

>>> from freqrex.plots import plot_explanation            # doctest: +SKIP
>>> plot_explanation(e).savefig("figure1.png")            # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .errors import ParameterError

__all__ = [
    "SET_COLORS",
    "SET_LABELS",
    "plot_explanation",
    "plot_flip",
    "plot_responsibility",
    "plot_sets",
    "plot_waveform",
    "require_matplotlib",
]

#: Colour of each set layer: the sufficient set, the bins the
#: sufficient-and-necessary set adds to it, the bins the complete set adds.
SET_COLORS: Dict[str, str] = {
    "sufficient": "#d1495b",
    "sufficient_necessary": "#edae49",
    "complete": "#00798c",
}
#: Legend text of each layer.
SET_LABELS: Dict[str, str] = {
    "sufficient": "sufficient",
    "sufficient_necessary": "+ sufficient & necessary",
    "complete": "+ complete",
}
_NAMES = ("sufficient", "sufficient_necessary", "complete")
_WAVE_COLOR = "#3d405b"
_RESP_COLOR = "#3d5a80"
_SPEC_COLOR = "#8d8d8d"
_MAX_POINTS = 3000  # display resolution of line plots (max-pooled)
_MAX_FRAMES = 700  # display resolution of heatmaps (max-pooled)
_MAX_ROWS = 400
_DB_RANGE = 80.0


# --------------------------------------------------------------------------- helpers
def require_matplotlib() -> None:
    """Raise a clear ParameterError when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ParameterError(
            "plots and HTML reports need matplotlib: pip install 'freqrex[plot]' (or pip install matplotlib)"
        ) from exc


def _new_axes(ax, figsize=(8.0, 3.0)):
    if ax is not None:
        return ax
    require_matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig.add_subplot()


def _count(n: int, unit: str) -> str:
    return f"{n:,} {unit[:-1] if n == 1 and unit.endswith('s') else unit}"


def _fmt_hz(v: float) -> str:
    if v >= 100 or v == 0:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def band_text(bands: Sequence[Tuple[float, float]], max_items: int = 3) -> str:
    """``"972–1010, 1700 Hz (+3 more)"``: a short text of Hz bands."""
    if not bands:
        return "no bands"
    parts = [_fmt_hz(lo) if lo == hi else f"{_fmt_hz(lo)}–{_fmt_hz(hi)}" for lo, hi in bands[:max_items]]
    more = f" (+{len(bands) - max_items} more)" if len(bands) > max_items else ""
    return ", ".join(parts) + " Hz" + more


def _hz_axis(axis, log: bool) -> None:
    """Hz tick labels (20, 50, 100, ..., 1k, 2k, ...) on a frequency axis."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    def fmt(v, _pos=None):
        if v <= 0:
            return "0"
        if v >= 1000:
            k = v / 1000
            return f"{k:.0f}k" if abs(k - round(k)) < 1e-6 else f"{k:g}k"
        return f"{v:g}"

    axis.set_major_formatter(FuncFormatter(fmt))
    if log:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_minor_formatter(NullFormatter())


def _empty_panel(ax, title: str, message: str):
    ax.set_title(title, loc="left", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_linestyle((0, (3, 3)))
        s.set_color("#b0b0b0")
    ax.text(0.5, 0.5, message, transform=ax.transAxes, ha="center", va="center", fontsize=10,
            color="#6b6b6b", wrap=True)
    return ax


def _try_audio(e, name: str) -> Tuple[Optional[np.ndarray], str]:
    """(waveform, "") or (None, why not)."""
    if name != "original":
        try:
            present = e.get_set(name) is not None
        except Exception:
            present = False
        if not present:
            reason = (getattr(e, "reasons", None) or {}).get(name) or "absent"
            return None, f"no {name.replace('_', '-and-')} set: {reason}"
    try:
        return np.asarray(e.audio(name), dtype=np.float64), ""
    except Exception as exc:  # a saved explanation without the WAV, or without audio at all
        return None, f"{name.replace('_', ' ')} audio unavailable: {exc}"


def _pool_index(freqs: np.ndarray, n: int, log: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Start indices of display bins over ascending `freqs` and the kept range.

    Returns (starts, keep) where keep is the index of the first bin shown
    (bins at 0 Hz are dropped on a log axis).
    """
    first = 0
    if log:
        first = int(np.searchsorted(freqs, 0.0, side="right"))
    f = freqs[first:]
    if f.size <= n:
        return np.arange(f.size), first
    if log:
        edges = np.geomspace(f[0], f[-1], n + 1)[:-1]
    else:
        edges = np.linspace(f[0], f[-1], n + 1)[:-1]
    starts = np.unique(np.searchsorted(f, edges, side="left"))
    starts = starts[starts < f.size]
    if starts[0] != 0:
        starts = np.concatenate([[0], starts])
    return starts, first


def _pool_line(freqs: np.ndarray, y: np.ndarray, log: bool, n: int = _MAX_POINTS) -> Tuple[np.ndarray, np.ndarray]:
    """Max-pool a curve over frequency for display (peaks are kept)."""
    starts, first = _pool_index(freqs, n, log)
    f, v = freqs[first:], y[first:]
    if starts.size == f.size:
        return f, v
    ends = np.concatenate([starts[1:], [f.size]]) - 1
    return 0.5 * (f[starts] + f[ends]), np.maximum.reduceat(v, starts)


def _pool_grid(z: np.ndarray, times: np.ndarray, freqs: np.ndarray, log: bool, hop_s: float,
               reduce=np.maximum) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Max-pool a (frames, bins) grid for display; returns (t_edges, f_edges, grid)."""
    n_frames, n_bins = z.shape
    df = freqs[1] - freqs[0] if freqs.size > 1 else 1.0
    step = max(1, math.ceil(n_frames / _MAX_FRAMES))
    tstarts = np.arange(0, n_frames, step)
    zt = reduce.reduceat(z, tstarts, axis=0) if step > 1 else z
    t_edges = np.concatenate([times[tstarts] - hop_s / 2, [times[-1] + hop_s / 2]])
    starts, first = _pool_index(freqs, _MAX_ROWS, log)
    zf = zt[:, first:]
    f = freqs[first:]
    if starts.size != f.size:
        zf = reduce.reduceat(zf, starts, axis=1)
    lo_edge = f[starts] - df / 2
    if log:
        lo_edge = np.maximum(lo_edge, f[0] / 2 if f[0] > 0 else df / 2)
    f_edges = np.concatenate([lo_edge, [f[-1] + df / 2]])
    return t_edges, f_edges, zf


def _magnitude(e) -> Optional[np.ndarray]:
    """|coefficients| of the original, shape (n_frames, n_bins), or None without audio."""
    space = getattr(e, "_space", None)
    if space is not None:
        try:
            return np.abs(np.asarray(space.coefficients()))
        except Exception:
            pass
    x, _ = _try_audio(e, "original")
    if x is None:
        return None
    return _coefficients_of(e, x)


def _coefficients_of(e, x: np.ndarray) -> np.ndarray:
    if e.space == "fft":
        return np.abs(np.fft.rfft(x))[None, :]
    from .psychoacoustic import stft

    opts = e.options or {}
    return np.abs(stft(x, n_fft=int(opts.get("n_fft", 2048)), hop_length=int(opts.get("hop_length", 512))))


def _db(mag: np.ndarray, ref: float) -> np.ndarray:
    ref = ref if ref > 0 else 1.0
    return 20.0 * np.log10(np.maximum(mag, ref * 10 ** (-_DB_RANGE * 1.5 / 20)) / ref)


def _layers(e) -> Dict[str, Optional[np.ndarray]]:
    """The three disjoint layers: sufficient, S&N minus sufficient, complete minus S&N."""
    out: Dict[str, Optional[np.ndarray]] = {}
    prev = None
    for name in _NAMES:
        m = e.get_set(name)
        if m is None:
            out[name] = None
            continue
        m = np.asarray(m, dtype=bool)
        out[name] = m if prev is None else (m & ~prev)
        prev = m if prev is None else (prev | m)
    return out


def _runs(mask: np.ndarray) -> List[Tuple[int, int]]:
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]])
    return list(zip(starts.tolist(), ends.tolist()))


def _layer_bands(freqs: np.ndarray, mask: np.ndarray) -> List[Tuple[float, float]]:
    return [(float(freqs[a]), float(freqs[b])) for a, b in _runs(mask)]


def _is_explanation(obj) -> bool:
    return hasattr(obj, "responsibility") and hasattr(obj, "get_set") and hasattr(obj, "audio")


def _title(e) -> str:
    name = e.target_name if getattr(e, "target_name", None) else f"class {e.target}"
    return f"'{name}' (score {e.score:.3f})"


# --------------------------------------------------------------------------- waveform
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


# --------------------------------------------------------------------------- responsibility
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


def _log_xmin(freqs: np.ndarray, fmin: Optional[float] = None) -> float:
    """Lower limit of a log frequency axis: 20 Hz (the bottom of hearing), or fmin when lower."""
    pos = freqs[freqs > 0]
    if pos.size == 0:
        return 1.0
    floor = 20.0 if not fmin or fmin <= 0 else min(20.0, float(fmin))
    return min(max(float(pos[0]), floor), float(pos[-1]) / 2)


def _fmin(e) -> Optional[float]:
    v = (getattr(e, "options", None) or {}).get("fmin")
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def _log_floor(f_edges: np.ndarray) -> float:
    """Lower limit of a log frequency axis: 20 Hz unless the grid starts above it."""
    return float(min(max(f_edges[0], 20.0), f_edges[-1] / 2))


def _hop_seconds(e) -> float:
    times = getattr(e, "times", None)
    if times is not None and len(times) > 1:
        return float(times[1] - times[0])
    return float((e.options or {}).get("hop_length", 512)) / float(e.sample_rate)


def _times(e, n_frames: int) -> np.ndarray:
    times = getattr(e, "times", None)
    if times is not None and len(times) == n_frames:
        return np.asarray(times, dtype=np.float64)
    return np.arange(n_frames) * _hop_seconds(e)


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
                                 label=f"{SET_LABELS[name]}: absent ({_short(reason)})"))
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


def _short(text: str, n: int = 48) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"


def _plot_sets_fft(e, ax, freqs, layers, mag, log, label_bands) -> None:
    from matplotlib.transforms import blended_transform_factory

    df = float(freqs[1] - freqs[0]) if freqs.size > 1 else 1.0
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    lo_y, hi_y = -_DB_RANGE, 5.0
    if mag is not None:
        m = mag.reshape(-1)
        db = _db(m, float(m.max()))
        f, v = _pool_line(freqs, db, log)
        ax.plot(f, v, color=_SPEC_COLOR, lw=0.7, zorder=3, label="_spectrum")
        ax.set_ylabel("magnitude (dB)")
        ax.set_ylim(lo_y, hi_y)
    else:
        ax.set_yticks([])
        ax.text(0.01, 0.95, "(no original audio: spectrum not shown)", transform=ax.transAxes, fontsize=8,
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


# --------------------------------------------------------------------------- figure 1
def plot_explanation(e, *, figsize: Optional[Tuple[float, float]] = None, title: Optional[str] = None):
    """The paper's Figure 1 for one explanation, as a new Figure.

    Panels: (a) the original waveform; (b) responsibility over frequency on a
    linear and a log-frequency axis (heatmaps for ``stft``); (c) the sets on
    the spectrum (spectrogram for ``stft``); (d) the resynthesised sufficient
    signal; (e) the sufficient-and-necessary signal (for ``stft``,
    spectrograms of both, on the original's dB scale). An absent set gives an
    annotated empty panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    require_matplotlib()
    from matplotlib.figure import Figure

    stft = e.space == "stft" and np.asarray(e.responsibility).ndim == 2
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


# --------------------------------------------------------------------------- flips
def _first_attr(obj, names: Sequence[str]):
    for n in names:
        v = getattr(obj, n, None)
        if v is None and isinstance(obj, dict):
            v = obj.get(n)
        if v is not None:
            return v
    return None


def _wave_attr(obj, names: Sequence[str]):
    v = _first_attr(obj, names)
    if v is None or isinstance(v, (str, bytes, bool)) or np.ndim(v) != 1:
        return None
    return v


def _flip_waves(result, audio=None, sample_rate=None):
    """(original, perturbed, rate). A FlipResult's ``audio`` is the perturbed clip."""
    y = _wave_attr(result, ("perturbed", "perturbed_audio", "adversarial", "flipped_audio", "audio_perturbed"))
    if y is None:
        y = _wave_attr(result, ("audio",))
    x = audio if audio is not None else _wave_attr(result, ("original_audio", "original_waveform", "original_wave"))
    if y is None:
        raise ParameterError("the flip result holds no perturbed waveform (expected its attribute 'audio')")
    if x is None:
        delta = _first_attr(result, ("delta", "perturbation"))
        if delta is not None:
            x = np.asarray(y, dtype=np.float64) - np.asarray(delta, dtype=np.float64)
    if x is None:
        raise ParameterError("the flip result holds no original waveform; pass audio=the original clip")
    sr = sample_rate if sample_rate is not None else _first_attr(result, ("sample_rate", "sr", "rate"))
    if sr is None:
        raise ParameterError("the flip result holds no sample rate; pass sample_rate=")
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ParameterError(f"original and perturbed waveforms differ in length ({x.size} vs {y.size})")
    return x, y, float(sr)


def _flip_space(result) -> str:
    space = _first_attr(result, ("space",))
    if space is None:
        space = "stft" if _first_attr(result, ("inaudible", "margin_db", "cells", "frames")) is not None else "fft"
    return str(space)


def _flip_stft_params(result, n_fft=None, hop_length=None) -> Tuple[int, int]:
    opts = _first_attr(result, ("options",)) or {}
    opts = opts if isinstance(opts, dict) else {}
    n_fft = n_fft or _first_attr(result, ("n_fft",)) or opts.get("n_fft") or 2048
    hop = hop_length or _first_attr(result, ("hop_length", "hop")) or opts.get("hop_length") or 512
    return int(n_fft), int(hop)


def _class_label(result, which: str) -> str:
    name = _first_attr(result, (f"{which}_name", f"{which}_class_name"))
    cls = _first_attr(result, (f"{which}_class",))
    score = _first_attr(result, (f"{which}_score",))
    text = f"'{name}'" if name is not None else (f"class {cls}" if cls is not None else "?")
    if score is not None:
        try:
            text += f" ({float(score):.3f})"
        except (TypeError, ValueError):
            pass
    return text


def plot_flip(result, ax=None, *, audio=None, sample_rate: Optional[float] = None, zoom: bool = True,
              n_fft: Optional[int] = None, hop_length: Optional[int] = None):
    """Original versus perturbed spectrum around the bins a flip changed.

    ``fft`` flips: the magnitude spectra (dB) of the original and the
    perturbed clip around the changed bins, each change drawn as a stem from
    the original to the new level. ``stft`` flips: for the frame with the most
    changed cells (psychoacoustic dB scale, the clip's loudest cell at 96 dB),
    the original's PSD, the perturbed PSD, the PSD of the change and the
    original's masking threshold (:func:`freqrex.psychoacoustic.masking_threshold`):
    a change is predicted inaudible where it stays below the threshold.

    Parameters
    ----------
    result : FlipResult
        Read by duck typing: the perturbed clip (``audio``, as
        :class:`freqrex.FlipResult` holds it, or ``perturbed``),
        ``sample_rate``, ``space``, the changed bins (``bins`` or
        ``frequencies_hz``; for ``stft`` with ``frames``, or ``cells`` as
        (frame, bin) pairs), ``success``, classes, names and scores,
        ``snr_db``, ``inaudible``, ``margin_db``. Changed bins are found from
        the spectra when the result does not list them.
    ax : matplotlib Axes, optional
    audio : array_like
        The original clip (a FlipResult does not hold it; ``original_audio``
        is read when present).
    sample_rate : float, optional
    zoom : bool
        Limit the frequency axis to the neighbourhood of the changed bins.
    n_fft, hop_length : int, optional
        STFT of an ``stft`` flip (default: the result's, else 2048 and 512).

    Returns
    -------
    matplotlib Axes
    """
    x, y, sr = _flip_waves(result, audio, sample_rate)
    ax = _new_axes(ax, (8.0, 3.4))
    space = _flip_space(result)
    if space == "stft":
        _plot_flip_stft(result, ax, x, y, sr, zoom, _flip_stft_params(result, n_fft, hop_length))
    else:
        _plot_flip_fft(result, ax, x, y, sr, zoom)
    success = _first_attr(result, ("success",))
    verdict = " succeeded" if success else (" failed" if success is not None else "")
    head = f"{space.upper()} flip{verdict}: {_class_label(result, 'original')} → {_class_label(result, 'new')}"
    extra = []
    snr = _first_attr(result, ("snr_db",))
    if snr is not None:
        try:
            extra.append(f"SNR {float(snr):.1f} dB")
        except (TypeError, ValueError):
            pass
    q = _first_attr(result, ("queries",))
    if q is not None:
        extra.append(f"{q} queries")
    ax.set_title(head + ("; " + ", ".join(extra) if extra else ""), loc="left", fontsize=10)
    return ax


def _changed_fft_bins(result, X: np.ndarray, Y: np.ndarray, sr: float, n: int) -> np.ndarray:
    bins = _first_attr(result, ("bins", "changed_bins", "indices"))
    if bins is not None:
        b = np.asarray(bins).reshape(-1).astype(np.int64)
        if b.size and b.min() >= 0 and b.max() < X.size:
            return np.unique(b)
    hz = _first_attr(result, ("frequencies", "frequencies_hz", "changed_hz", "hz"))
    if hz is not None:
        f = np.asarray(hz, dtype=np.float64).reshape(-1)
        if f.size:
            return np.unique(np.clip(np.rint(f * n / sr), 0, X.size - 1).astype(np.int64))
    diff = np.abs(Y - X)
    return np.flatnonzero(diff > 1e-6 * max(float(np.abs(X).max()), 1e-12))


def _plot_flip_fft(result, ax, x, y, sr, zoom) -> None:
    n = x.size
    X, Y = np.fft.rfft(x), np.fft.rfft(y)
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    ref = float(np.abs(X).max()) or 1.0
    dx, dy = _db(np.abs(X), ref), _db(np.abs(Y), ref)
    changed = _changed_fft_bins(result, X, Y, sr, n)
    df = freqs[1] - freqs[0] if freqs.size > 1 else 1.0
    if zoom and changed.size:
        span = freqs[changed[-1]] - freqs[changed[0]]
        pad = max(30 * df, 0.15 * span, 20.0)
        lo, hi = max(0.0, freqs[changed[0]] - pad), min(freqs[-1], freqs[changed[-1]] + pad)
    else:
        lo, hi = 0.0, float(freqs[-1])
    sel = (freqs >= lo) & (freqs <= hi)
    f, vx = _pool_line(freqs[sel], dx[sel], False)
    _, vy = _pool_line(freqs[sel], dy[sel], False)
    ylo = -_DB_RANGE - 5
    ax.plot(f, vy, color=SET_COLORS["sufficient"], lw=2.2, alpha=0.45, label="perturbed", drawstyle="steps-mid")
    ax.plot(f, vx, color="#444444", lw=0.8, label="original", drawstyle="steps-mid")
    if changed.size:
        cf = freqs[changed]
        ox, oy = np.maximum(dx[changed], ylo + 1.5), np.maximum(dy[changed], ylo + 1.5)
        ax.vlines(cf, np.minimum(ox, oy), np.maximum(ox, oy), color="#222222", lw=1.2, zorder=5)
        ax.scatter(cf, ox, s=18, color=_SPEC_COLOR, edgecolor="#222222", zorder=6, label="original level")
        ax.scatter(cf, oy, s=28, marker="x", color=SET_COLORS["sufficient"], zorder=7, label="new level")
        for k, (b, fv) in enumerate(zip(changed[:8], cf[:8])):
            text = f"{_fmt_hz(fv)} Hz" + (" removed" if dy[b] <= ylo else "")
            ax.annotate(text, (fv, max(ox[k], oy[k])), xytext=(0, 6 + 9 * (k % 2)),
                        textcoords="offset points", ha="center", fontsize=7.5)
    ax.set_xlim(lo, hi)
    ax.set_ylim(ylo, 8)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("magnitude (dB re. peak)")
    _hz_axis(ax.xaxis, False)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5, frameon=False, borderaxespad=0.0)


def _changed_cells(result, n_frames: int, n_bins: int, sx: np.ndarray, sy: np.ndarray, sr: float, n_fft: int):
    """(frames, bins) of the changed cells."""
    cells = _first_attr(result, ("cells", "changed_cells"))
    if cells is not None:
        c = np.asarray(cells)
        if c.ndim == 2 and c.shape[1] == 2 and np.issubdtype(c.dtype, np.integer):
            return c[:, 0].astype(np.int64), c[:, 1].astype(np.int64)
    bins = _first_attr(result, ("bins", "changed_bins", "indices"))
    frames = _first_attr(result, ("frames", "changed_frames"))
    if bins is not None:
        b = np.asarray(bins)
        if b.ndim == 2 and b.shape[1] == 2:
            return b[:, 0].astype(np.int64), b[:, 1].astype(np.int64)
        b = b.reshape(-1).astype(np.int64)
        if frames is not None and np.size(frames) == b.size:
            return np.asarray(frames).reshape(-1).astype(np.int64), b
        if b.size and b.max() >= n_bins:  # flat indices over (frames, bins)
            return b // n_bins, b % n_bins
    diff = np.abs(sy - sx)
    t, f = np.nonzero(diff > 1e-3 * max(float(np.abs(sx).max()), 1e-12))
    return t, f


def _plot_flip_stft(result, ax, x, y, sr, zoom, params) -> None:
    from .psychoacoustic import masking_threshold, power_spectrum_db, stft

    n_fft, hop = params
    mt = masking_threshold(x, sr, n_fft=n_fft, hop_length=hop)
    sx = stft(x, n_fft=n_fft, hop_length=hop)
    sy = stft(y, n_fft=n_fft, hop_length=hop)
    psd_y, _ = power_spectrum_db(sy, n_fft, reference=mt.offset_db)
    delta = sy - sx
    psd_d, _ = power_spectrum_db(delta, n_fft, reference=mt.offset_db)
    n_frames, n_bins = sx.shape
    frames, bins = _changed_cells(result, n_frames, n_bins, sx, sy, sr, n_fft)
    ok = (frames >= 0) & (frames < n_frames) & (bins >= 0) & (bins < n_bins)
    frames, bins = frames[ok], bins[ok]
    if frames.size:
        counts = np.bincount(frames, minlength=n_frames)
        t = int(np.argmax(counts))
    else:
        t = int(np.argmax(np.abs(delta).sum(axis=1))) if np.abs(delta).any() else 0
    freqs = mt.frequencies
    fb = bins[frames == t]
    pos = freqs > 0
    ax.plot(freqs[pos], mt.psd_db[t, pos], color=_SPEC_COLOR, lw=0.9, label="original PSD")
    ax.plot(freqs[pos], psd_y[t, pos], color=SET_COLORS["sufficient"], lw=0.9, alpha=0.8, label="perturbed PSD")
    ax.plot(freqs[pos], mt.threshold_db[t, pos], color=SET_COLORS["complete"], lw=1.4, ls="--",
            label="masking threshold")
    changed_here = np.abs(delta[t]) > 0
    d = np.where(changed_here, psd_d[t], np.nan)
    ax.plot(freqs[pos], d[pos], color=SET_COLORS["sufficient_necessary"], lw=1.1, label="change (PSD)")
    if fb.size:
        ax.scatter(freqs[fb], psd_d[t, fb], s=22, marker="x", color="#222222", zorder=6, label="changed cells")
        for k, b in enumerate(np.unique(fb)[:8]):
            ax.annotate(f"{_fmt_hz(freqs[b])} Hz", (freqs[b], psd_d[t, b]), xytext=(0, -12 - 9 * (k % 2)),
                        textcoords="offset points", ha="center", fontsize=7.5)
    ax.set_xscale("log")
    if zoom and bins.size:
        lo = max(float(freqs[max(int(bins.min()), 1)]) / 2.5, float(freqs[1]))
        hi = min(float(freqs[int(bins.max())]) * 2.5, float(freqs[-1]))
        ax.set_xlim(lo, hi)
    else:
        ax.set_xlim(max(float(freqs[1]), 20.0), float(freqs[-1]))
    ax.set_ylim(-10, 105)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("dB (loudest cell = 96)")
    _hz_axis(ax.xaxis, True)
    inaud = _first_attr(result, ("inaudible",))
    margin = _first_attr(result, ("margin_db",))
    note = (f"frame {t} (t = {t * hop / sr:.2f} s): {int(fb.size)} of "
            f"{_count(int(frames.size), 'changed cells')}")
    if margin is not None:
        try:
            m = np.asarray(margin, dtype=np.float64)
            m = float(np.min(m)) if m.size else float("nan")
            note += f"; margin {m:.1f} dB"
        except (TypeError, ValueError):
            pass
    if inaud is not None:
        note += "; inaudible" if inaud else "; audible"
    ax.text(0.01, 0.03, note, transform=ax.transAxes, fontsize=8, color="#333333",
            bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.85))
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5, frameon=False, borderaxespad=0.0)
