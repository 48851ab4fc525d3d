"""Shared pieces of the plots: colours, display pooling, axes helpers, text escaping.

matplotlib is imported only inside functions. Nothing here is public API
except :data:`SET_COLORS`, :data:`SET_LABELS`, :func:`band_text`,
:func:`require_matplotlib` and :func:`mathtext_escape` (re-exported by
:mod:`freqrex.viz`).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ParameterError

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
    from ..psychoacoustic import stft

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
    return f"'{mathtext_escape(name)}' (score {e.score:.3f})"


def mathtext_escape(text: Any) -> str:
    """`text` as matplotlib shows it literally: every ``$`` escaped, so no mathtext is parsed.

    A class name such as ``"$x^{"`` would otherwise be parsed as mathtext
    and make ``savefig`` fail. Use it on every name that comes from a model
    or a user before it goes into a title, a label or a legend.
    """
    return str(text).replace("$", r"\$")


def _first_attr(obj, names: Sequence[str]):
    """The first of `names` that `obj` (an object or a dict) has and is not None."""
    for n in names:
        v = getattr(obj, n, None)
        if v is None and isinstance(obj, dict):
            v = obj.get(n)
        if v is not None:
            return v
    return None


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


def _short(text: str, n: int = 48) -> str:
    text = str(text)
    return text if len(text) <= n else text[: n - 1] + "…"

