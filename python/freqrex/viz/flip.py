"""Flips: :func:`plot_flip` (one panel: ``ax=`` in, Axes out), the original against the perturbed spectrum."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from ..errors import ParameterError
from ._common import (
    _DB_RANGE,
    _SPEC_COLOR,
    SET_COLORS,
    _count,
    _db,
    _first_attr,
    _fmt_hz,
    _hz_axis,
    _new_axes,
    _pool_line,
    mathtext_escape,
)

__all__ = ["plot_flip"]


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
    text = f"'{mathtext_escape(name)}'" if name is not None else (f"class {cls}" if cls is not None else "?")
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
    from ..psychoacoustic import masking_threshold, power_spectrum_db, stft

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

