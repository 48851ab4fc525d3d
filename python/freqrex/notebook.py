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

__all__ = ["explanation_repr", "explanation_html", "flip_repr", "flip_html", "wav_data_uri", "png_data_uri"]

# Longest audio embedded in a notebook (seconds): keeps a saved notebook small.
_MAX_AUDIO_S = 60.0


def wav_data_uri(x: np.ndarray, sample_rate: int) -> str:
    """``data:audio/wav;base64,...`` of `x` as 16-bit PCM (clipped to [-1, 1])."""
    import soundfile as sf

    buf = io.BytesIO()
    pcm = np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0)
    sf.write(buf, pcm, int(sample_rate), format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


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
    """Summary table, the flip's plot as a PNG, and a player for the perturbed clip."""
    freqs = ", ".join(f"{f:.1f} Hz" for f in np.asarray(r.frequencies_hz)[:8])
    if np.size(r.frequencies_hz) > 8:
        freqs += f", ... ({np.size(r.frequencies_hz)} in all)"
    rows = [
        ("outcome", "flipped" if r.success else "not flipped within the budget"),
        ("original", f"{_class(r.original_name, r.original_class)}, score {r.original_score:.3f}"),
        ("now", f"{_class(r.new_name, r.new_class)}, score {r.new_score:.3f} "
                f"(original class now {r.original_class_score:.3f})"),
        ("change", f"{r.change} of {r.n_changed} {'cells' if r.space == 'stft' else 'bins'} ({r.strategy}, k <= {r.k})"),
        ("frequencies", freqs or "-"),
        ("loudness", f"SNR {_num(r.snr_db, '.1f')} dB, dB_x {_num(r.db_x, '.1f')}, "
                     f"{'inaudible' if r.inaudible else 'audible'} (margin {_num(r.margin_db, '.1f')} dB)"),
        ("queries", f"{r.queries} (explanation {r.explanation_queries}, flip {r.flip_queries})"),
    ]
    original = getattr(r, "original_audio", None)

    def draw():
        from .plots import plot_flip

        ax = plot_flip(r, audio=original) if original is not None else plot_flip(r)
        return ax.figure

    players = [_player("original", original, r.sample_rate), _player("perturbed", r.audio, r.sample_rate)]
    return "<div>" + _table(rows) + _figure(draw) + "".join(players) + "</div>"
