"""Notebook display of explanations and flips: a short ``repr`` and a ``_repr_html_``.

Jupyter shows an :class:`~freqrex.explanation.Explanation` or a
:class:`~freqrex.manipulation.result.FlipResult` as a summary table, the plot
as an inline PNG (when matplotlib is installed) and audio players with inline
WAV data.  Rendering never raises: a part that cannot be drawn is left out.
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any, List, Optional, Tuple

import numpy as np

__all__ = ["explanation_repr", "explanation_html", "flip_repr", "flip_html", "flip_original", "wav_data_uri",
           "png_data_uri"]

# Longest audio embedded in a notebook (seconds): keeps a saved notebook small.
_MAX_AUDIO_S = 60.0


def wav_data_uri(x: np.ndarray, sample_rate: int) -> str:
    """``data:audio/wav;base64,...`` of `x` as 16-bit PCM (clipped to [-1, 1]): the reports' own."""
    from .viz.html import wav_data_uri as encode

    return encode(x, sample_rate)


def png_data_uri(fig) -> str:
    """``data:image/png;base64,...`` of a matplotlib figure (closed afterwards)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    finally:
        plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _num(v: Any, fmt: str = ".3f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return format(v, fmt) if isinstance(v, (float, np.floating)) else str(v)


def _hz(lo: float, hi: float) -> str:
    return f"{lo:.1f} Hz" if lo == hi else f"{lo:.1f}-{hi:.1f} Hz"


def _bands_text(bands: List[Tuple[float, float]], limit: int = 4) -> str:
    shown = ", ".join(_hz(lo, hi) for lo, hi in bands[:limit])
    return shown + (f", ... ({len(bands)} bands)" if len(bands) > limit else "")


def _table(rows: List[Tuple[str, str]]) -> str:
    cells = "".join(
        f"<tr><th style='text-align:left;padding-right:1em'>{html.escape(k)}</th>"
        f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    return f"<table>{cells}</table>"


def _player(label: str, x: Optional[np.ndarray], sample_rate: int) -> str:
    if x is None:
        return ""
    x = np.asarray(x)[: int(_MAX_AUDIO_S * sample_rate)]
    try:
        uri = wav_data_uri(x, sample_rate)
    except Exception:
        return ""
    return (
        f"<div style='margin:2px 0'><span style='display:inline-block;width:14em'>{html.escape(label)}</span>"
        f"<audio controls preload='none' src='{uri}'></audio></div>"
    )


def _figure(draw) -> str:
    try:
        fig = draw()
        return f"<img alt='plot' style='max-width:100%' src='{png_data_uri(fig)}'/>"
    except Exception:  # no matplotlib, or a plot that cannot be drawn: the summary still shows
        return ""


def _class(name: Optional[str], index: Optional[int]) -> str:
    if index is None:
        return "-"
    return f"'{name}' ({index})" if name is not None else str(index)


# ------------------------------------------------------------------ Explanation


def explanation_repr(e) -> str:
    """One line: the decision, the space and the sets' sizes."""
    sizes = ", ".join(
        f"{name}={'absent' if e.get_set(name) is None else e.size(name)}"
        for name in ("sufficient", "sufficient_necessary", "complete")
    )
    return (
        f"<Explanation {_class(e.target_name, e.target)} score {e.score:.3f}, {e.space} space "
        f"{tuple(np.shape(e.responsibility))}, {sizes}, {e.queries} queries>"
    )


def explanation_html(e) -> str:
    """Summary table, Figure 1 as a PNG, and players for the original and the sets."""
    rows = [
        ("decision", f"{_class(e.target_name, e.target)}, score {e.score:.3f}"),
        ("clip", f"{e.n_samples / e.sample_rate:.2f} s at {e.sample_rate} Hz"),
        ("space", f"{e.space}, {int(np.size(e.responsibility))} elements"),
    ]
    for name in ("sufficient", "sufficient_necessary", "complete"):
        label = name.replace("_", " & ")
        if e.get_set(name) is None:
            rows.append((label, f"absent: {e.reasons.get(name, 'absent')}"))
            continue
        score = e.set_scores.get(name)
        rows.append((label, f"{e.size(name)} elements, score {_num(score)}: {_bands_text(e.bands(name))}"))
    rows.append(("queries", f"{e.queries} (search {e.search_queries}, extraction {e.extraction_queries})"))
    for line in getattr(e, "warnings", None) or []:
        rows.append(("warning", str(line)))

    def draw():
        from .plots import plot_explanation

        return plot_explanation(e)

    players = []
    for name in ("original", "sufficient", "sufficient_necessary", "complete"):
        try:
            x = e.audio(name)
        except Exception:
            continue
        players.append(_player(name.replace("_", " & "), x, e.sample_rate))
    return "<div>" + _table(rows) + _figure(draw) + "".join(players) + "</div>"


# ------------------------------------------------------------------ FlipResult


def flip_repr(r) -> str:
    """One line: flipped or not, from which class to which, how many changes and how loud."""
    what = "cells" if r.space == "stft" else "bins"
    outcome = "flipped" if r.success else "not flipped"
    return (
        f"<FlipResult {outcome}: {_class(r.original_name, r.original_class)} -> {_class(r.new_name, r.new_class)}, "
        f"{r.n_changed} {what} ({r.space}, {r.strategy}), SNR {_num(r.snr_db, '.1f')} dB, {r.queries} queries>"
    )


def flip_html(r) -> str:
    """Summary table, the flip's plot as a PNG, and players for the original and the perturbed clip.

    A :class:`~freqrex.manipulation.result.FlipResult` does not hold the
    original clip: it is rebuilt from the perturbed clip and the change
    (:func:`flip_original`) and drawn against it with
    :func:`freqrex.viz.plot_flip`; where it cannot be rebuilt, the plot shows
    the perturbed spectrum alone and says so.  A failed flip's audio is its
    closest attempt, labelled as such, and the rows describing a change are
    left out (it changed nothing).
    """
    what = "cells" if r.space == "stft" else "bins"
    audio = getattr(r, "audio", None)
    has_audio = audio is not None and np.size(audio) > 0
    rows = [
        ("outcome", "flipped" if r.success else "not flipped within the budget"),
        ("original", f"{_class(r.original_name, r.original_class)}, score {r.original_score:.3f}"),
        ("now" if r.success else "closest attempt",
         f"{_class(r.new_name, r.new_class)}, score {r.new_score:.3f} "
         f"(original class now {r.original_class_score:.3f})"),
    ]
    if r.success:
        freqs = ", ".join(f"{f:.1f} Hz" for f in np.asarray(r.frequencies_hz)[:8])
        if np.size(r.frequencies_hz) > 8:
            freqs += f", ... ({np.size(r.frequencies_hz)} in all)"
        rows += [
            ("change", f"{r.change} of {r.n_changed} {what} ({r.strategy}, k <= {r.k})"),
            ("frequencies", freqs or "-"),
            ("loudness", f"SNR {_num(r.snr_db, '.1f')} dB, dB_x {_num(r.db_x, '.1f')}, "
                         f"{'inaudible' if r.inaudible else 'audible'} (margin {_num(r.margin_db, '.1f')} dB)"),
        ]
    else:
        margin = getattr(r, "closest_margin", None)
        if margin is not None:
            other = _class(getattr(r, "closest_name", None), getattr(r, "closest_class", None))
            rows.append(("closest margin", f"{_num(margin)} (score gap to {other}; a flip needs > 0)"))
    rows.append(("queries", f"{r.queries} (explanation {r.explanation_queries}, flip {r.flip_queries})"))

    original, why = flip_original(r) if has_audio else (None, "")
    if has_audio and original is None:
        rows.append(("plot", f"the perturbed spectrum only: the original clip is not held and {why}; "
                             "plot_flip(result, audio=original) draws both"))

    def draw():
        from .viz import plot_flip

        if original is not None:
            return plot_flip(r, audio=original).figure
        return _perturbed_only_figure(r)

    figure = _figure(draw) if has_audio else ""
    players = [_player("original", original, r.sample_rate)]
    if has_audio:
        players.append(_player("perturbed" if r.success else "closest attempt (not a flip)", audio, r.sample_rate))
    return "<div>" + _table(rows) + figure + "".join(players) + "</div>"


#: A rebuilt original must give the flip's SNR and dB_x to this many dB.
_REBUILD_TOLERANCE_DB = 1e-3
#: Sign combinations of an ambiguous subtraction tried at most when rebuilding an original.
_REBUILD_MAX_COMBINATIONS = 64


def flip_original(r) -> Tuple[Optional[np.ndarray], str]:
    """The original clip of a flip result: ``(clip, "")``, or ``(None, why not)``.

    The result's ``original_audio`` when it has one; otherwise, for an ``fft``
    change, the perturbed clip minus the change, rebuilt from the changed
    bins of the perturbed spectrum: an amplitude-searched addition or
    subtraction (in phase with the clip's coefficient, or the seeded tones of
    the ``additive`` search), or a fixed gain or phase change.  A rebuilt
    clip is returned only when it gives the result's ``snr_db`` and ``db_x``
    to :data:`_REBUILD_TOLERANCE_DB` (so it is the clip the flip started
    from, to float32 rounding).  A removal, an ``stft`` change or a result
    without audio cannot be undone.  Never raises.
    """
    held = getattr(r, "original_audio", None)
    if held is not None:
        return np.asarray(held), ""
    try:
        return _rebuild_original(r)
    except Exception as exc:  # a result object missing fields, or odd values: no original
        return None, f"it could not be rebuilt ({type(exc).__name__})"


def _snr_dbx(x: np.ndarray, d: np.ndarray) -> Tuple[float, float]:
    from .manipulation.perturbation import db_x, snr_db

    return snr_db(x, d), db_x(x, d)


def _close(a: float, b: Optional[float]) -> float:
    """How far apart two dB values are (0 for equal infinities; inf when b is missing)."""
    if b is None:
        return 0.0
    b = float(b)
    if not (math.isfinite(a) and math.isfinite(b)):
        return 0.0 if a == b else math.inf
    return abs(a - b)


def _rebuild_original(r) -> Tuple[Optional[np.ndarray], str]:
    import itertools

    y = np.asarray(r.audio, dtype=np.float64).ravel()
    if y.size == 0:
        return None, "the result holds no audio"
    if getattr(r, "space", "fft") != "fft":
        return None, "an stft change cannot be undone from the perturbed clip"
    bins = np.asarray(r.bins, dtype=np.int64).ravel()
    if bins.size == 0:
        if math.isinf(float(r.snr_db)) and float(r.snr_db) > 0:  # nothing was changed
            return np.asarray(r.audio, dtype=np.float32), ""
        return None, "the result lists no changed bins"
    coef = np.fft.rfft(y)
    if bins.min() < 0 or bins.max() >= coef.size:
        return None, "its changed bins do not fit the clip"
    p = coef[bins]
    hypotheses = _change_hypotheses(r, bins, p)
    if not hypotheses:
        return None, f"a '{r.change}' change cannot be undone from the perturbed clip"
    best: Optional[Tuple[float, np.ndarray]] = None
    for per_bin in hypotheses:
        if math.prod(len(o) for o in per_bin) > _REBUILD_MAX_COMBINATIONS:
            continue
        for choice in itertools.product(*per_bin):
            spec = np.zeros_like(coef)
            spec[bins] = np.asarray(choice, dtype=np.complex128)
            x = (y - np.fft.irfft(spec, n=y.size)).astype(np.float32)  # the original was float32
            snr, dbx = _snr_dbx(x.astype(np.float64), y - x)
            miss = max(_close(snr, r.snr_db), _close(dbx, getattr(r, "db_x", None)))
            if best is None or miss < best[0]:
                best = (miss, x)
    if best is None or not best[0] <= _REBUILD_TOLERANCE_DB:
        return None, "no change it could have made matches its SNR and dB_x"
    return best[1], ""


def _change_hypotheses(r, bins: np.ndarray, p: np.ndarray) -> List[List[List[complex]]]:
    """Per hypothesis, per changed bin, the complex differences the change may have had there."""
    out: List[List[List[complex]]] = []
    kind = getattr(r, "change", None)
    mag = np.abs(p)
    if kind in ("add", "subtract", "mixed"):
        amp, dirs = getattr(r, "amplitude", None), getattr(r, "directions", None)
        if amp is None or dirs is None or np.size(dirs) != bins.size:
            return out
        a = float(amp)
        dirs = np.asarray(dirs).ravel()
        if np.all(mag > 0):
            unit = p / mag
            # in phase with the original coefficient c: p = (|c| + dir a) u, so u = +-p / |p|; a subtraction
            # may have gone beyond removal (|c| < a) only where |p| <= a
            out.append([[a * u] if s > 0 else ([-a * u, a * u] if m <= a else [-a * u])
                        for s, u, m in zip(dirs, unit, mag)])
        if np.all(dirs > 0):  # the additive search's tones: seeded phases, one amplitude
            from .manipulation.additive import tone_phase

            out.append([[a * np.exp(1j * ph)] for ph in tone_phase(int(r.seed), bins)])
    elif kind == "gain" and getattr(r, "gain_db", None) is not None:
        g = 10.0 ** (float(r.gain_db) / 20.0)
        if g > 0:
            out.append([[v - v / g] for v in p])  # p = c g
    elif kind == "phase" and getattr(r, "phase_rad", None) is not None:
        turn = np.exp(-1j * float(r.phase_rad))
        out.append([[v - v * turn] for v in p])  # p = c e^{i phase}
    return out


def _perturbed_only_figure(r):
    """The perturbed clip's spectrum around the changed bins (no original to draw against)."""
    from .viz._common import _DB_RANGE, SET_COLORS, _db, _hz_axis, _new_axes, _pool_line, mathtext_escape

    y = np.asarray(r.audio, dtype=np.float64).ravel()
    sr = float(r.sample_rate)
    spec = np.abs(np.fft.rfft(y))
    freqs = np.fft.rfftfreq(y.size, 1.0 / sr)
    level = _db(spec, float(spec.max()) or 1.0)
    changed = np.unique(np.asarray(r.frequencies_hz, dtype=np.float64).ravel())
    lo, hi = 0.0, float(freqs[-1])
    if changed.size:
        df = freqs[1] - freqs[0] if freqs.size > 1 else 1.0
        pad = max(30 * df, 0.15 * float(changed[-1] - changed[0]), 20.0)
        lo, hi = max(0.0, float(changed[0]) - pad), min(hi, float(changed[-1]) + pad)
    sel = (freqs >= lo) & (freqs <= hi)
    f, v = _pool_line(freqs[sel], level[sel], False)
    ax = _new_axes(None, (8.0, 3.4))
    ylo = -_DB_RANGE - 5
    ax.plot(f, v, color=SET_COLORS["sufficient"], lw=1.2, label="perturbed" if r.success else "closest attempt",
            drawstyle="steps-mid")
    for i, hz in enumerate(changed):
        ax.axvline(hz, color="#222222", lw=0.8, ls=":", label="changed" if i == 0 else None)
    ax.set_xlim(lo, hi)
    ax.set_ylim(ylo, 8)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("magnitude (dB re. peak)")
    _hz_axis(ax.xaxis, False)
    verdict = "succeeded" if r.success else "failed"
    name = mathtext_escape(r.original_name) if r.original_name is not None else f"class {r.original_class}"
    ax.set_title(f"{str(r.space).upper()} flip {verdict} from '{name}': original clip not held, "
                 "only the perturbed spectrum is drawn", loc="left", fontsize=9)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7.5, frameon=False, borderaxespad=0.0)
    return ax.figure
