"""Self-contained HTML reports of an explanation and/or a flip, rendered from Jinja2 templates.

One report is one HTML file that opens offline from disk: the plots are
inline PNG images, the audio players inline WAV data (or relative links to a
saved run's WAV files), the style inline CSS, and nothing is fetched from
anywhere. Files are written atomically. The page is ``templates/explanation.html``;
this module only gathers what it shows. Evaluation reports are in
:mod:`freqrex.viz.evaluation_report`.

>>> from freqrex.viz.report import write_explanation_report             # doctest: +SKIP
>>> write_explanation_report(e, "report.html", model_name="MSD_musicnn")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from ..errors import ParameterError
from ..explanation import SET_NAMES, Explanation
from ._common import SET_COLORS, _first_attr, band_text, require_matplotlib
from .html import (fmt_count, fmt_hz, fmt_num, fmt_seconds, href_of_path, png_data_uri, render_page, wav_data_uri,
                   write_page)

__all__ = ["explanation_html", "write_explanation_report", "write_flip_report"]

PathLike = Union[str, "os.PathLike[str]"]

SET_TITLES = {
    "original": "original",
    "sufficient": "sufficient",
    "sufficient_necessary": "sufficient & necessary",
    "complete": "complete",
}
SET_ABOUT = {
    "original": "the clip as the model heard it",
    "sufficient": "Kept alone, these frequencies are enough for the model's decision",
    "sufficient_necessary": "Enough for the decision, and removing them changes it",
    "complete": "Keeps the decision and the original score (within tolerance)",
}
_ORIGINAL_COLOR = "#3d405b"
_FLIP_COLOR = "#6a4c93"
_MAX_ROWS = 25  # band rows shown before the rest fold into <details>
_MAX_ALL_ROWS = 2000  # band rows written at most (the rest are in summary.json / explanation.npz)


def _kv(key: str, value: Any, cls: Optional[str] = None) -> Dict[str, Any]:
    return {"key": key, "value": value if isinstance(value, str) else fmt_num(value), "cls": cls}


def _option(v: Any) -> Any:
    import json

    if v is None:
        return "—"
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v)
    return v


# =========================================================================== sets
def _band_rows(e: Explanation, name: str) -> List[List[str]]:
    """Cells (from, to, width, bins[, time span]) of every band of a set."""
    m = e.get_set(name)
    if m is None:
        return []
    m = np.asarray(m, dtype=bool)
    f = np.asarray(e.frequencies)
    df = float(f[1] - f[0]) if f.size > 1 else 0.0
    rows = []
    for a, b in e.band_bins(name):
        lo, hi = float(f[a]), float(f[b])
        row = [fmt_hz(lo), fmt_hz(hi), fmt_hz(hi - lo + df), f"{int(b - a + 1):,}"]
        if m.ndim == 2 and e.times is not None:
            frames = np.flatnonzero(m[:, a: b + 1].any(axis=1))
            t = np.asarray(e.times)
            row.append(f"{t[frames[0]]:.2f}–{t[frames[-1]]:.2f} s ({frames.size} frames)")
        rows.append(row)
    return rows


def _sets(e: Explanation) -> List[Dict[str, Any]]:
    unit = "cells" if e.space == "stft" else "bins"
    out = []
    for name in SET_NAMES:
        block: Dict[str, Any] = {"title": SET_TITLES[name], "color": SET_COLORS[name], "absent": None}
        m = e.get_set(name)
        if m is None:
            block["absent"] = (e.reasons or {}).get(name) or "absent"
            out.append(block)
            continue
        size = int(np.sum(m))
        score = (e.set_scores or {}).get(name)
        rows = _band_rows(e, name)
        margins = (getattr(e, "set_margins", None) or {}).get(name) or {}
        kept = margins.get("kept_margin")
        block["meta"] = (f"{fmt_count(size, unit)} ({100.0 * size / max(m.size, 1):.3g}% of the space), "
                         f"{fmt_count(len(rows), 'bands')}" + (f", score {score:.3f}" if score is not None else "")
                         + (f", margin kept {kept:.3f}" if isinstance(kept, (int, float)) else "")
                         + f". {SET_ABOUT[name]}.")
        block["rows"] = rows[:_MAX_ROWS]
        shown = rows[:_MAX_ALL_ROWS]
        block["more"] = shown[_MAX_ROWS:]
        block["more_label"] = (f"all {len(rows):,} bands" if len(rows) == len(shown)
                               else f"the first {len(shown):,} of {len(rows):,} bands (all are in summary.json)")
        out.append(block)
    return out


# =========================================================================== audio
def _linked_wav(e, name: str, link_dir: Optional[Path]) -> Optional[str]:
    """Relative URL of a saved explanation's WAV file, for pages that link rather than embed audio."""
    directory = getattr(e, "directory", None)
    if link_dir is None or directory is None or name == "flipped":
        return None
    wav = Path(directory) / f"{name}.wav"
    return href_of_path(wav, link_dir) if wav.is_file() else None


def _flip_freqs(flip) -> List[float]:
    hz = _first_attr(flip, ("frequencies_hz", "frequencies", "changed_hz", "hz"))
    if hz is None:
        return []
    try:
        return [float(v) for v in np.unique(np.asarray(hz, dtype=np.float64).reshape(-1))]
    except (TypeError, ValueError):
        return []


def _players(e: Optional[Explanation], flip, flip_wave: Optional[Tuple[np.ndarray, int]],
             link_dir: Optional[Path], original: Optional[np.ndarray]) -> Tuple[List[Dict[str, Any]], str]:
    """The players (original, the sets, the flipped clip) and the note on their levels."""
    waves: List[Dict[str, Any]] = []
    if e is not None:
        unit = "cells" if e.space == "stft" else "bins"
        for name in ("original",) + tuple(SET_NAMES):
            p = {"key": name, "title": SET_TITLES[name], "meta": "", "x": None, "absent": None,
                 "color": _ORIGINAL_COLOR if name == "original" else SET_COLORS[name], "rate": e.sample_rate}
            waves.append(p)
            if name != "original" and e.get_set(name) is None:
                p["absent"] = f"absent: {(e.reasons or {}).get(name) or 'absent'}"
                continue
            try:
                p["x"] = np.asarray(e.audio(name), dtype=np.float64)
            except Exception as exc:  # a saved run without its WAV files
                p["absent"] = f"audio unavailable: {exc}"
                continue
            if name == "original":
                p["meta"] = f"{p['x'].size / e.sample_rate:.1f} s at {e.sample_rate:,} Hz — {SET_ABOUT[name]}"
            else:
                score = (e.set_scores or {}).get(name)
                p["meta"] = (fmt_count(e.size(name), unit) + (f", score {score:.3f}" if score is not None else "")
                             + f" — {band_text(e.bands(name), 3)}")
    rate = flip_wave[1] if flip_wave is not None else _first_attr(flip, ("sample_rate", "sr"))
    if e is None and original is not None and rate:
        x = np.asarray(original, dtype=np.float64).ravel()
        rate = int(rate)
        waves.append({"key": "original", "title": "original", "x": x, "absent": None, "color": _ORIGINAL_COLOR,
                      "meta": f"{x.size / rate:.1f} s at {rate:,} Hz — the clip before the change", "rate": rate})
    if flip_wave is not None:
        y, rate = flip_wave
        hz = _flip_freqs(flip)
        success = _first_attr(flip, ("success",))
        meta = ("would change " if success is not None and not success else "changed ") + (
            ", ".join(f"{fmt_hz(v)} Hz" for v in hz[:5]) + (" …" if len(hz) > 5 else "") if hz else "the spectrum")
        new = _first_attr(flip, ("new_name", "new_class"))
        if success and new is not None:
            meta += f" — now '{new}'"
        waves.append({"key": "flipped", "title": "flipped" if success or success is None
                      else "perturbed (best attempt, not flipped)", "meta": meta, "x": y, "absent": None,
                      "color": _FLIP_COLOR, "rate": rate})
    peak = max((float(np.max(np.abs(w["x"]))) for w in waves if w["x"] is not None and w["x"].size), default=1.0)
    gain = 1.0 if peak <= 1.0 else 0.999 / peak
    for w in waves:
        w["uri"] = None
        if w["x"] is not None:
            linked = _linked_wav(e, w["key"], link_dir) if gain == 1.0 and e is not None else None
            w["uri"] = linked or wav_data_uri(w["x"], int(w["rate"]), gain)
        if w["absent"] is None:
            w["absent"] = "absent"
    if gain != 1.0:
        note = (f"All players are scaled by {20 * math.log10(gain):.1f} dB so that none clips; "
                "their levels stay comparable.")
    else:
        note = "Levels are as analysed (not normalised), so the sets sound as loud as they are in the clip."
    return waves, note


# =========================================================================== flip
def _flip(flip, audio, sample_rate, stft_params=(None, None)) -> Tuple[Dict[str, Any], Optional[Tuple[np.ndarray, int]]]:
    """(the flip section, (perturbed, rate) or None)."""
    from .flip import _flip_waves, _wave_attr, plot_flip

    section: Dict[str, Any] = {"notes": [], "figure": None, "rows": [], "vulnerability": None}
    wave = None
    drawable = False
    try:
        _, y, sr = _flip_waves(flip, audio, sample_rate)
        wave, drawable = (y, int(sr)), True
    except ParameterError as exc:
        section["notes"].append(f"No flip plot: {exc}")
        y = _wave_attr(flip, ("perturbed", "perturbed_audio", "adversarial", "flipped_audio", "audio_perturbed",
                              "audio"))
        sr = sample_rate or _first_attr(flip, ("sample_rate", "sr"))
        if y is not None and sr:
            wave = (np.asarray(y, dtype=np.float64), int(sr))
    if drawable:
        try:
            from matplotlib.figure import Figure

            fig = Figure(figsize=(11.0, 3.8), layout="constrained")
            plot_flip(flip, ax=fig.add_subplot(), audio=audio, sample_rate=sample_rate, n_fft=stft_params[0],
                      hop_length=stft_params[1])
            uri, (w, h) = png_data_uri(fig, dpi=100)
            section["figure"] = {"uri": uri, "width": w, "height": h}
        except Exception as exc:  # a flip we cannot draw must not lose the rest of the report
            section["notes"].append(f"No flip plot: {type(exc).__name__}: {exc}")
    spectrum = getattr(flip, "vulnerability", None)
    if spectrum is not None:
        section["vulnerability"] = _vulnerability(spectrum)
    rows = section["rows"]
    success = _first_attr(flip, ("success",))
    if success is not None:
        rows.append(_kv("success", "yes" if success else "no", "ok" if success else "bad"))
    # A failed flip changed nothing: its new class, scores, SNR and elements are those of the closest
    # attempt (not saved unless asked), and are labelled so.
    failed = success is not None and not success
    attempt = " (closest attempt, not made)" if failed else ""
    if failed:
        section["notes"].append("The flip failed: nothing was changed. The new class, scores, SNR and the "
                                "frequencies and frames listed are those of the closest attempt, which was "
                                "not kept as a result.")

    def cls(which):
        name = _first_attr(flip, (f"{which}_name", f"{which}_class_name"))
        index = _first_attr(flip, (f"{which}_class",))
        if name is None:
            return index
        return f"{name}" + (f" (index {index})" if index is not None else "")

    for label, keys in (
        ("space", ("space",)), ("strategy", ("strategy", "method")), ("original class", cls("original")),
        ("original score", ("original_score",)), ("new class" + attempt, cls("new")),
        ("new score" + attempt, ("new_score",)),
        ("original class's new score" + attempt, ("original_class_score",)), ("target", ("target",)),
        ("change", ("change",)), ("gain (dB)", ("gain_db",)), ("phase (rad)", ("phase_rad",)),
        ("k (most changed)", ("k",)), ("changed", ("n_changed",)), ("SNR (dB)" + attempt, ("snr_db",)),
        ("inaudible" + attempt, ("inaudible",)),
        ("margin under the masking threshold (dB)" + attempt, ("margin_db",)),
        ("change scaled by", ("scale",)), ("queries", ("queries",)), ("flip queries", ("flip_queries",)),
        ("budget", ("budget",)), ("seed", ("seed",)), ("seconds", ("elapsed", "elapsed_s", "seconds")),
    ):
        v = _first_attr(flip, keys) if isinstance(keys, tuple) else keys
        if v is None:
            continue
        if isinstance(v, np.ndarray):
            v = float(np.min(v)) if v.size else None
        rows.append(_kv(label, v))
    hz = _flip_freqs(flip)
    what = "closest attempt's frequencies (Hz), not changed" if failed else "changed frequencies (Hz)"
    if hz:
        rows.append(_kv(what, ", ".join(fmt_hz(v) for v in hz[:40]) + (" …" if len(hz) > 40 else "")))
    times = _first_attr(flip, ("times_s",))
    if times is not None and np.size(times):
        t = np.unique(np.asarray(times, dtype=np.float64).reshape(-1))
        what = "closest attempt's frames at (s), not changed" if failed else "changed frames at (s)"
        rows.append(_kv(what, ", ".join(f"{v:.2f}" for v in t[:40]) + (" …" if t.size > 40 else "")))
    return section, wave


def _vulnerability(spectrum) -> Dict[str, Any]:
    """The vulnerability section: the plot, and the most vulnerable bands as a table."""
    from .vulnerability import plot_vulnerability

    out: Dict[str, Any] = {"figure": None, "notes": [], "rows": [],
                           "head": ["from (Hz)", "to (Hz)", "margin cut", "quietest flip (SNR dB)", "headroom (dB)"]}
    try:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(11.0, 3.4), layout="constrained")
        plot_vulnerability(spectrum, ax=fig.add_subplot())
        uri, (w, h) = png_data_uri(fig, dpi=100)
        out["figure"] = {"uri": uri, "width": w, "height": h}
    except Exception as exc:  # a spectrum we cannot draw must not lose the rest of the report
        out["notes"].append(f"No vulnerability plot: {type(exc).__name__}: {exc}")
    for band in spectrum.most_vulnerable(10):
        share = band["cut_share"]
        out["rows"].append([fmt_hz(band["lo_hz"]), fmt_hz(band["hi_hz"]),
                            "—" if share is None else f"{100 * share:.1f}%",
                            "—" if band["flip_snr_db"] is None else f"{band['flip_snr_db']:.1f}",
                            "—" if band["headroom_db"] is None else f"{band['headroom_db']:.1f}"])
    out["lead"] = (f"{spectrum.n_bands} bands, {spectrum.queries} queries; tones {spectrum.level_db:+g} dB "
                   "relative to the masking threshold (the lower of freqrex's and ART's).")
    return out


# =========================================================================== page
def _explanation_facts(e: Explanation, model_name, source, title) -> Dict[str, Any]:
    from .._core import __version__
    from .figure import plot_explanation

    name = e.target_name or f"class {e.target}"
    unit = "cells" if e.space == "stft" else "bins"
    dur = e.n_samples / e.sample_rate if e.sample_rate else 0.0
    shape = " × ".join(str(v) for v in e.responsibility.shape)
    decision = e.decision
    other = decision is not None and decision != e.target  # explain(target=...) of another class
    cards = [
        {"key": "explained class" if other else "top class", "value": name,
         "sub": f"index {e.target}" + (f"; the model's decision: class {decision}" if other else "")},
        {"key": "score", "value": f"{e.score:.3f}", "sub": "of the original clip"},
        {"key": "space", "value": e.space.upper(),
         "sub": fmt_count(e.responsibility.size, unit) + ("" if e.responsibility.ndim == 1 else f" ({shape})")},
    ]
    for n in SET_NAMES:
        size = e.size(n)
        cards.append({"key": SET_TITLES[n], "value": "absent" if size is None else fmt_count(size, unit),
                      "sub": "" if size is None else fmt_count(len(e.bands(n)), "bands")})
    cards.append({"key": "queries", "value": f"{e.queries:,}",
                  "sub": f"search {e.search_queries:,}, extraction {e.extraction_queries:,}"})
    cards.append({"key": "time", "value": fmt_seconds(e.elapsed), "sub": f"seed {e.seed}"})
    uri, (w, h) = png_data_uri(plot_explanation(e), dpi=100)
    run = [
        _kv("model", model_name or "—"), _kv("audio", source or "—"),
        _kv("target", f"{e.target_name or '—'} (index {e.target})"), _kv("score", e.score), _kv("space", e.space),
        _kv("shape", shape), _kv("sample rate (Hz)", e.sample_rate), _kv("samples", e.n_samples),
        _kv("seed", e.seed), _kv("queries", e.queries), _kv("search queries", e.search_queries),
        _kv("extraction queries", e.extraction_queries), _kv("elapsed", fmt_seconds(e.elapsed)),
        _kv("freqrex", __version__),
    ]
    for label, value in (("runner-up class", getattr(e, "runner_up", None)), ("margin", getattr(e, "margin", None)),
                         ("contrast class", getattr(e, "contrast", None))):
        if value is not None:
            run.insert(4, _kv(label, value))
    return {
        "heading": title or f"Why '{name}'?",
        "lead": (f"freqrex explanation of {model_name or 'the model'}'s "
                 + (f"class '{name}' (not its decision, class {decision})" if other else "decision")
                 + f" on {source or 'a clip'} "
                 f"({dur:.1f} s at {e.sample_rate:,} Hz), by causal analysis of the {e.space.upper()} space."),
        "cards": cards,
        "warnings": [str(w) for w in (getattr(e, "warnings", None) or [])],
        "figure": {"uri": uri, "width": w, "height": h},
        "sets": _sets(e),
        "stft": e.space == "stft",
        "band_head": ["from (Hz)", "to (Hz)", "width (Hz)", "bins"] + (["time"] if e.space == "stft" else []),
        "run": run,
        "options": [_kv(k, _option(v)) for k, v in sorted((e.options or {}).items()) if not str(k).startswith("_")],
        "search": [_kv(k, _option(v)) for k, v in sorted((e.stats or {}).items())],
    }


def explanation_html(
    e: Optional[Explanation],
    *,
    model_name: Optional[str] = None,
    source: Optional[str] = None,
    flip=None,
    title: Optional[str] = None,
    index_href: Optional[str] = None,
    link_audio_from: Optional[Path] = None,
    original_audio: Optional[np.ndarray] = None,
    notes: Optional[List[str]] = None,
) -> str:
    """The HTML text of :func:`write_explanation_report` (see there).

    `link_audio_from`: the directory the page will live in; when given and
    `e` is a saved explanation (:class:`freqrex.viz.saved.SavedExplanation`),
    its WAV files are linked by relative URL instead of embedded.
    """
    if e is None and flip is None:
        raise ParameterError("nothing to report: give an explanation, a flip or both")
    require_matplotlib()
    model_name = model_name or getattr(e, "model_name", None)
    source = source or getattr(e, "source", None)
    context: Dict[str, Any] = {"index_href": index_href, "cards": [], "figure": None, "sets": [], "run": None,
                               "flip": None, "warnings": []}
    if e is not None:
        context.update(_explanation_facts(e, model_name, source, title))
    else:
        context["heading"] = title or "freqrex flip"
        context["lead"] = f"A manipulation of {model_name or 'the model'}'s decision on {source or 'a clip'}."
    context["warnings"] = list(context["warnings"]) + [str(n) for n in (notes or ())]
    flip_wave = None
    if flip is not None:
        orig = original_audio
        if orig is None and e is not None:
            try:
                orig = e.audio("original")
            except Exception:  # a saved run without original.wav: the flip is drawn from what it holds
                orig = None
        params = (None, None)
        if e is not None and e.space == "stft":
            params = (e.options.get("n_fft"), e.options.get("hop_length"))
        context["flip"], flip_wave = _flip(flip, orig, e.sample_rate if e is not None else None, params)
    context["players"], context["players_note"] = _players(e, flip, flip_wave, link_audio_from,
                                                           original_audio if e is None else None)
    page_title = ("freqrex: " + (e.target_name or f"class {e.target}")) if e is not None else "freqrex flip"
    if source:
        page_title += f" — {Path(str(source)).name}"
    return render_page("explanation.html", page_title=page_title, **context)


def write_explanation_report(
    e: Optional[Explanation],
    path: PathLike,
    *,
    model_name: Optional[str] = None,
    source: Optional[str] = None,
    flip=None,
    title: Optional[str] = None,
    index_href: Optional[str] = None,
    embed_audio: bool = True,
    notes: Optional[List[str]] = None,
) -> Path:
    """Write one self-contained HTML report of an explanation (and a flip).

    The page holds: players for the original, sufficient,
    sufficient-and-necessary and complete audio (and the flipped audio), the
    Figure 1 plot, the flip plot, the sets as tables of Hz bands, and the
    run's model, options, seed, queries and timing. Everything is inline
    (PNG and WAV data URIs, CSS); nothing is fetched.

    Parameters
    ----------
    e : Explanation or None
        The explanation (None for a flip-only page).
    path : str or os.PathLike
        The HTML file to write (atomically; parent directories are made).
    model_name, source : str, optional
        Shown as the model and the audio file.
    flip : FlipResult, optional
        A flip of the same clip (read by duck typing; see :func:`freqrex.viz.plot_flip`).
    title : str, optional
        Page heading.
    index_href : str, optional
        Link back to an index page (evaluation reports): a relative path or
        a ``file:`` URL; any other scheme is a ParameterError.
    embed_audio : bool
        True (default): the audio is inline, the file stands alone. False,
        for an explanation loaded by :func:`freqrex.viz.saved.load_explanation_dir`:
        the players link to its WAV files by relative URL (a much smaller page
        that still opens offline, as long as it stays beside the run directory).
    notes : list of str, optional
        Shown at the top of the page, like the explanation's warnings (e.g.
        a saved flip that was left out, from :func:`freqrex.viz.saved.load_flip_beside`).

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    text = explanation_html(e, model_name=model_name, source=source, flip=flip, title=title,
                            index_href=index_href, link_audio_from=None if embed_audio else path.parent,
                            notes=notes)
    return write_page(path, text)


def write_flip_report(flip, path: PathLike, *, explanation: Optional[Explanation] = None, audio=None,
                      **kwargs) -> Path:
    """Write a report of a flip: its plot, the original and perturbed audio, and its numbers.

    Parameters
    ----------
    flip : FlipResult
    path : str or os.PathLike
    explanation : Explanation, optional
        The explanation of the same clip (or ``flip.explanation``); the page
        then is the explanation's report with the flip added.
    audio : array_like, optional
        The original clip (a FlipResult holds only the perturbed one); needed
        for the flip plot and the original's player when there is no explanation.
    **kwargs
        ``model_name``, ``source``, ``title``, ``notes``: as :func:`write_explanation_report`.
    """
    e = explanation if explanation is not None else getattr(flip, "explanation", None)
    if e is not None and not isinstance(e, Explanation):
        e = None
    text = explanation_html(e, flip=flip, original_audio=None if audio is None else np.asarray(audio), **kwargs)
    return write_page(path, text)
