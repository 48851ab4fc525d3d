"""Self-contained HTML reports of explanations, flips and evaluations.

One report is one HTML file that opens offline from disk: the plots are
inline PNG images, the audio players inline WAV data, the style inline CSS,
and nothing is fetched from anywhere. Files are written atomically (a
temporary file renamed into place).

>>> from freqrex.report import write_explanation_report             # doctest: +SKIP
>>> write_explanation_report(e, "report.html", model_name="MSD_musicnn")  # doctest: +SKIP

A directory written by :meth:`freqrex.Explanation.save` can be rendered
later, without the model, with :func:`load_explanation_dir` (or ``freqrex
report DIR``).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import numpy as np

from ._atomic import write_text
from .errors import ParameterError
from .explanation import SET_NAMES, Explanation

__all__ = [
    "SavedExplanation",
    "explanation_html",
    "load_explanation_dir",
    "load_flip_dir",
    "read_records",
    "write_evaluation_report",
    "write_explanation_report",
    "write_flip_report",
]

PathLike = Union[str, "os.PathLike[str]"]

_SET_TITLES = {
    "original": "original",
    "sufficient": "sufficient",
    "sufficient_necessary": "sufficient & necessary",
    "complete": "complete",
}
_SET_ABOUT = {
    "original": "the clip as the model heard it",
    "sufficient": "Kept alone, these frequencies are enough for the model's decision",
    "sufficient_necessary": "Enough for the decision, and removing them changes it",
    "complete": "Keeps the decision and the original score (within tolerance)",
}
_MAX_ROWS = 25  # band rows shown before the rest fold into <details>
_MAX_ALL_ROWS = 2000  # band rows written at most (the rest are in summary.json / explanation.npz)


# =========================================================================== loading
@dataclass
class SavedExplanation(Explanation):
    """An :class:`~freqrex.Explanation` read back from a saved directory.

    It has no frequency space, so ``audio(name)`` returns the WAV files the
    explanation saved (16-bit PCM, as a listener hears them) rather than
    resynthesising.
    """

    directory: Optional[Path] = None
    model_name: Optional[str] = None
    source: Optional[str] = None

    def audio(self, name: str) -> np.ndarray:
        if name == "original" and self._audio is not None:
            return self._audio
        if name != "original" and self.get_set(name) is None:
            raise ParameterError(f"the {name} set does not exist: {self.reasons.get(name, 'absent')}")
        path = None if self.directory is None else self.directory / f"{name}.wav"
        if path is None or not path.is_file():
            raise ParameterError(f"no {name}.wav in {self.directory}")
        from .io import load_audio

        x, _ = load_audio(path)
        return x


def load_explanation_dir(path: PathLike) -> SavedExplanation:
    """Rebuild an explanation from the files :meth:`Explanation.save` wrote.

    Reads ``summary.json`` and ``explanation.npz``; the waveforms come from
    ``original.wav`` and the sets' WAV files when present. No model is needed.

    Raises
    ------
    ParameterError
        When the directory lacks ``summary.json`` or ``explanation.npz`` or
        they cannot be read.
    """
    d = Path(path)
    if not d.is_dir():
        raise ParameterError(f"not a directory: {d}")
    spath, npath = d / "summary.json", d / "explanation.npz"
    if not spath.is_file() or not npath.is_file():
        raise ParameterError(f"{d} is not a saved explanation (it needs summary.json and explanation.npz)")
    try:
        s = json.loads(spath.read_text())
    except (OSError, ValueError) as exc:
        raise ParameterError(f"cannot read {spath}: {exc}") from exc
    try:
        with np.load(npath, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in z.files}
    except Exception as exc:  # zipfile / format errors
        raise ParameterError(f"cannot read {npath}: {exc}") from exc
    for key in ("responsibility", "frequencies"):
        if key not in arrays:
            raise ParameterError(f"{npath} lacks the array {key!r}")
    try:
        sets = s.get("sets", {})
        space = str(s["space"])
        resp = arrays["responsibility"]
        masks = {}
        for name in SET_NAMES:
            m = arrays.get(name)
            masks[name] = None if m is None else m.astype(bool).reshape(resp.shape)
        times = arrays.get("times")
        options = dict(s.get("options") or {})
        sr = int(s["sample_rate"])
        if times is None and space == "stft" and resp.ndim == 2:
            times = np.arange(resp.shape[0]) * (float(options.get("hop_length", 512)) / sr)
        original = None
        opath = d / "original.wav"
        if opath.is_file():
            from .io import load_audio

            original, _ = load_audio(opath)
        stats = dict(s.get("stats") or {})
        e = SavedExplanation(
            target=int(s["target"]),
            score=float(s["score"]),
            space=space,
            responsibility=resp.astype(np.float64, copy=False),
            frequencies=arrays["frequencies"].astype(np.float64, copy=False),
            ranking=arrays.get("ranking", np.zeros(0, dtype=np.int64)),
            sufficient=masks["sufficient"],
            sufficient_necessary=masks["sufficient_necessary"],
            complete=masks["complete"],
            set_scores={n: (sets.get(n) or {}).get("score") for n in SET_NAMES},
            reasons={n: (sets.get(n) or {}).get("reason") for n in SET_NAMES if masks[n] is None},
            queries=int(s.get("queries", 0)),
            search_queries=int(s.get("search_queries", 0)),
            extraction_queries=int(s.get("extraction_queries", 0)),
            seed=int(s.get("seed", options.get("seed", 0))),
            options=options,
            sample_rate=sr,
            n_samples=int(s.get("n_samples", 0 if original is None else original.size)),
            elapsed=float(s.get("elapsed_s", s.get("elapsed", 0.0)) or 0.0),
            stats=stats,
            times=times,
            target_name=s.get("target_name"),
            _audio=original,
            directory=d,
            model_name=s.get("model"),
            source=s.get("audio", s.get("source")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ParameterError(f"{spath} is not a freqrex summary: {exc}") from exc
    return e


def _load_flip_dir(d: Path, e: Optional[Explanation]):
    """A saved flip next to an explanation (``flip.json`` + a perturbed WAV), or None."""
    fpath = d / "flip.json"
    if not fpath.is_file():
        return None
    try:
        data = json.loads(fpath.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    ns = SimpleNamespace(**{k: v for k, v in data.items() if isinstance(k, str) and k.isidentifier()})
    from .io import load_audio

    for name in ("perturbed.wav", "flipped.wav", "flip.wav"):
        if (d / name).is_file():
            ns.perturbed, rate = load_audio(d / name)
            break
    else:
        return None
    if (d / "original.wav").is_file():
        ns.original_audio, _ = load_audio(d / "original.wav")
    ns.sample_rate = getattr(ns, "sample_rate", None) or (e.sample_rate if e is not None else rate)
    return ns


def load_flip_dir(path: PathLike):
    """A flip saved by ``freqrex flip --out DIR`` (``flip.json``, ``perturbed.wav``, ``original.wav``).

    Returns a namespace with the fields of ``flip.json``, ``perturbed`` and
    ``original_audio`` (waveforms), or raises ParameterError.
    """
    d = Path(path)
    ns = _load_flip_dir(d, None) if d.is_dir() else None
    if ns is None:
        raise ParameterError(f"{d} is not a saved flip (it needs flip.json and perturbed.wav)")
    return ns


# =========================================================================== encoding
def _png_data_uri(fig, dpi: int = 100) -> Tuple[str, Tuple[int, int]]:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    w, h = fig.get_size_inches() * dpi
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), (int(w), int(h))


def _wav_data_uri(x: np.ndarray, sample_rate: int, gain: float = 1.0) -> str:
    import soundfile as sf

    y = np.clip(np.asarray(x, dtype=np.float64).ravel() * gain, -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, y.astype(np.float32), int(sample_rate), format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _atomic_write(path: Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, text)
    return path


# =========================================================================== html bits
def _esc(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _hz(v: float) -> str:
    if v >= 100 or v == 0:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return "—"
        if math.isinf(f):
            return "∞" if f > 0 else "−∞"
        if f != 0 and (abs(f) >= 1e5 or abs(f) < 10 ** (-digits)):
            return f"{f:.{digits}g}"
        return f"{f:,.{digits}f}"
    return str(v)


def _count(n: int, unit: str) -> str:
    """``"1 bin"``, ``"2,048 bins"``."""
    n = int(n)
    return f"{n:,} {unit[:-1] if n == 1 and unit.endswith('s') else unit}"


def _seconds(v: Optional[float]) -> str:
    if v is None:
        return "—"
    v = float(v)
    if v < 1:
        return f"{v * 1000:.0f} ms"
    if v < 120:
        return f"{v:.1f} s"
    return f"{int(v // 60)} min {v % 60:.0f} s"


_CSS = """
:root { --ink:#1f2430; --muted:#667085; --line:#e4e7ec; --bg:#f6f7f9; --card:#fff;
  --suff:#d1495b; --sn:#edae49; --comp:#00798c; --orig:#3d405b; --flip:#6a4c93; }
* { box-sizing: border-box; }
html { background: var(--bg); }
body { margin: 0 auto; max-width: 1180px; padding: 28px 28px 60px; color: var(--ink);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 26px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 19px; margin: 34px 0 12px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 0 0 8px; }
p.lead { color: var(--muted); margin: 0 0 18px; }
a { color: #2f5fb3; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(160px, 1fr)); gap: 12px; margin: 16px 0 6px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .v { font-size: 20px; font-weight: 600; margin-top: 2px; overflow-wrap: anywhere; }
.card .s { color: var(--muted); font-size: 12.5px; }
.players { display: grid; grid-template-columns: repeat(auto-fit, minmax(330px, 1fr)); gap: 12px; }
.player { background: var(--card); border: 1px solid var(--line); border-left: 5px solid var(--c, #999);
  border-radius: 10px; padding: 12px 14px; }
.player audio { width: 100%; margin-top: 8px; height: 36px; }
.player .meta { color: var(--muted); font-size: 13px; }
.player.absent { background: repeating-linear-gradient(135deg, #fff, #fff 8px, #f7f7f9 8px, #f7f7f9 16px); }
.chip { display: inline-block; width: 11px; height: 11px; border-radius: 3px; background: var(--c, #999);
  margin-right: 6px; vertical-align: -1px; }
figure { margin: 0; background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 10px; }
figure img { display: block; width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 13px; padding: 8px 4px 2px; }
table { border-collapse: collapse; width: 100%; background: var(--card); font-size: 13.5px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f0f2f5; font-weight: 600; white-space: nowrap; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) td { background: #fafbfc; }
.tablewrap { border: 1px solid var(--line); border-radius: 10px; overflow: auto; }
.tablewrap table { border: 0; }
.sets { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 14px; }
.set { background: var(--card); border: 1px solid var(--line); border-top: 4px solid var(--c, #999);
  border-radius: 10px; padding: 12px 14px; }
.set .meta { color: var(--muted); font-size: 13px; margin-bottom: 8px; }
.set table { font-size: 13px; }
.set th, .set td { padding: 5px 7px; }
.sets.wide { grid-template-columns: 1fr; }
details summary { cursor: pointer; color: #2f5fb3; margin: 8px 0; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 14px; }
.kv th { width: 40%; font-weight: 500; color: #475467; background: #f7f8fa; }
.note { color: var(--muted); font-size: 13px; }
.ok { color: #067647; font-weight: 600; } .bad { color: #b42318; font-weight: 600; }
footer { margin-top: 40px; color: var(--muted); font-size: 12.5px; border-top: 1px solid var(--line); padding-top: 10px; }
.back { font-size: 13px; margin-bottom: 12px; display: inline-block; }
figure + .tablewrap, figure + .note { margin-top: 12px; }
"""


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta name=\"generator\" content=\"freqrex\">\n"
        "<link rel=\"icon\" href=\"data:,\">\n"
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _kv_table(rows: Iterable[Tuple[str, Any]]) -> str:
    out = ["<div class=\"tablewrap\"><table class=\"kv\"><tbody>"]
    for k, v in rows:
        out.append(f"<tr><th>{_esc(k)}</th><td>{v if isinstance(v, _Raw) else _esc(_num(v))}</td></tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


class _Raw(str):
    """Already-escaped HTML."""


def _footer() -> str:
    from . import __version__

    now = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (f"<footer>Written by freqrex {_esc(__version__)} on {_esc(now)}. "
            "This page is self-contained: it opens offline and fetches nothing.</footer>")


# =========================================================================== explanation
def _player(key: str, title: str, meta: str, uri: Optional[str], absent: Optional[str] = None,
            color: str = "#999") -> str:
    if uri is None:
        return (f"<div class=\"player absent\" style=\"--c:{color}\"><h3><span class=\"chip\"></span>{_esc(title)}</h3>"
                f"<div class=\"meta\">{_esc(absent or 'absent')}</div></div>")
    return (f"<div class=\"player\" style=\"--c:{color}\"><h3><span class=\"chip\"></span>{_esc(title)}</h3>"
            f"<div class=\"meta\">{meta}</div>"
            f"<audio id=\"audio-{_esc(key)}\" controls preload=\"metadata\" src=\"{uri}\"></audio></div>")


def _set_color(name: str) -> str:
    from .plots import SET_COLORS

    return SET_COLORS.get(name, "#3d405b")


def _band_rows(e: Explanation, name: str) -> List[Tuple[float, float, int, str]]:
    """(lo Hz, hi Hz, bins, time span text) of every band of a set."""
    m = e.get_set(name)
    if m is None:
        return []
    m = np.asarray(m, dtype=bool)
    f = np.asarray(e.frequencies)
    rows = []
    for a, b in e.band_bins(name):
        span = ""
        if m.ndim == 2 and e.times is not None:
            frames = np.flatnonzero(m[:, a: b + 1].any(axis=1))
            t = np.asarray(e.times)
            span = f"{t[frames[0]]:.2f}–{t[frames[-1]]:.2f} s ({frames.size} frames)"
        rows.append((float(f[a]), float(f[b]), int(b - a + 1), span))
    return rows


def _sets_html(e: Explanation) -> str:
    stft = e.space == "stft"
    df = float(e.frequencies[1] - e.frequencies[0]) if len(e.frequencies) > 1 else 0.0
    blocks = []
    for name in SET_NAMES:
        color = _set_color(name)
        title = _SET_TITLES[name]
        m = e.get_set(name)
        if m is None:
            reason = (e.reasons or {}).get(name) or "absent"
            blocks.append(f"<div class=\"set\" style=\"--c:{color}\"><h3><span class=\"chip\"></span>{_esc(title)}</h3>"
                          f"<div class=\"meta\">absent: {_esc(reason)}</div></div>")
            continue
        size = int(np.sum(m))
        score = (e.set_scores or {}).get(name)
        rows = _band_rows(e, name)
        unit = "cells" if stft else "bins"
        meta = (f"{_count(size, unit)} ({100.0 * size / max(m.size, 1):.3g}% of the space), "
                f"{len(rows)} band{'s' if len(rows) != 1 else ''}"
                + (f", score {score:.3f}" if score is not None else "")
                + f". {_esc(_SET_ABOUT[name])}.")
        head = ("<tr><th class=\"n\">from (Hz)</th><th class=\"n\">to (Hz)</th>"
                "<th class=\"n\">width (Hz)</th><th class=\"n\">bins</th>" + ("<th>time</th>" if stft else "") + "</tr>")

        def row(i, r):
            lo, hi, nb, span = r
            return (f"<tr><td class=\"n\">{_hz(lo)}</td><td class=\"n\">{_hz(hi)}</td>"
                    f"<td class=\"n\">{_hz(hi - lo + df)}</td><td class=\"n\">{nb:,}</td>"
                    + (f"<td>{_esc(span)}</td>" if stft else "") + "</tr>")

        first = "".join(row(i, r) for i, r in enumerate(rows[:_MAX_ROWS]))
        table = f"<div class=\"tablewrap\"><table><thead>{head}</thead><tbody>{first}</tbody></table></div>"
        if len(rows) > _MAX_ROWS:
            shown = rows[:_MAX_ALL_ROWS]
            rest = "".join(row(i, r) for i, r in enumerate(shown) if i >= _MAX_ROWS)
            label = (f"all {len(rows):,} bands" if len(rows) == len(shown)
                     else f"the first {len(shown):,} of {len(rows):,} bands (all are in summary.json)")
            table += (f"<details><summary>{label}</summary><div class=\"tablewrap\"><table>"
                      f"<thead>{head}</thead><tbody>{rest}</tbody></table></div></details>")
        if not rows:
            table = "<div class=\"note\">empty set</div>"
        blocks.append(f"<div class=\"set\" style=\"--c:{color}\"><h3><span class=\"chip\"></span>{_esc(title)}</h3>"
                      f"<div class=\"meta\">{meta}</div>{table}</div>")
    return f"<div class=\"sets{' wide' if stft else ''}\">" + "".join(blocks) + "</div>"


def _audio_section(e: Optional[Explanation], flip, flip_audio: Optional[Tuple[np.ndarray, int]],
                   link_dir: Optional[Path] = None, original: Optional[np.ndarray] = None) -> str:
    from .plots import band_text

    waves: List[Tuple[str, str, str, Optional[np.ndarray], Optional[str], str]] = []
    sr = None
    if e is not None:
        sr = e.sample_rate
        unit = "cells" if e.space == "stft" else "bins"
        for name in ("original",) + SET_NAMES:
            color = "#3d405b" if name == "original" else _set_color(name)
            if name != "original" and e.get_set(name) is None:
                waves.append((name, _SET_TITLES[name], "", None,
                              f"absent: {(e.reasons or {}).get(name) or 'absent'}", color))
                continue
            try:
                x = np.asarray(e.audio(name), dtype=np.float64)
            except Exception as exc:
                waves.append((name, _SET_TITLES[name], "", None, f"audio unavailable: {exc}", color))
                continue
            if name == "original":
                meta = f"{x.size / e.sample_rate:.1f} s at {e.sample_rate:,} Hz — {_SET_ABOUT[name]}"
            else:
                score = (e.set_scores or {}).get(name)
                meta = (_count(e.size(name), unit) + (f", score {score:.3f}" if score is not None else "")
                        + f" — {band_text(e.bands(name), 3)}")
            waves.append((name, _SET_TITLES[name], meta, x, None, color))
    if flip_audio is not None:
        y, fsr = flip_audio
        sr = sr or fsr
        if e is None and original is not None:
            x = np.asarray(original, dtype=np.float64).ravel()
            waves.append(("original", "original", f"{x.size / fsr:.1f} s at {fsr:,} Hz — the clip before the change",
                          x, None, "#3d405b"))
        bins = _flip_freqs(flip)
        from .plots import _first_attr

        meta = ("changed " + (", ".join(f"{_hz(v)} Hz" for v in bins[:5]) + (" …" if len(bins) > 5 else "")
                              if bins else "the spectrum"))
        success = _first_attr(flip, ("success",))
        title = "flipped" if success or success is None else "perturbed (best attempt, not flipped)"
        new = _first_attr(flip, ("new_name", "new_class"))
        if success and new is not None:
            meta += f" — now '{new}'"
        waves.append(("flipped", title, meta, y, None, "#6a4c93"))
    present = [w[3] for w in waves if w[3] is not None]
    peak = max((float(np.max(np.abs(w))) for w in present if w.size), default=1.0)
    gain = 1.0 if peak <= 1.0 else 0.999 / peak
    out = ["<div class=\"players\">"]
    for key, title, meta, x, absent, color in waves:
        uri = None
        if x is not None:
            linked = _linked_wav(e, key, link_dir) if gain == 1.0 else None
            rate = flip_audio[1] if (key == "flipped" or e is None) and flip_audio is not None else sr
            uri = linked or _wav_data_uri(x, rate, gain)
        out.append(_player(key, title, _esc(meta), uri, absent, color))
    out.append("</div>")
    if gain != 1.0:
        out.append(f"<p class=\"note\">All players are scaled by {20 * math.log10(gain):.1f} dB so that none clips; "
                   "their levels stay comparable.</p>")
    else:
        out.append("<p class=\"note\">Levels are as analysed (not normalised), so the sets sound as loud as they "
                   "are in the clip.</p>")
    return "".join(out)


def _linked_wav(e, name: str, link_dir: Optional[Path]) -> Optional[str]:
    """Relative URL of a saved explanation's WAV file, for pages that link rather than embed audio."""
    directory = getattr(e, "directory", None)
    if link_dir is None or directory is None or name == "flipped":
        return None
    wav = Path(directory) / f"{name}.wav"
    if not wav.is_file():
        return None
    from urllib.parse import quote

    rel = os.path.relpath(wav.resolve(), Path(link_dir).resolve())
    return _esc(quote(Path(rel).as_posix()))


def _flip_freqs(flip) -> List[float]:
    from .plots import _first_attr

    hz = _first_attr(flip, ("frequencies_hz", "frequencies", "changed_hz", "hz"))
    if hz is None:
        return []
    try:
        return [float(v) for v in np.unique(np.asarray(hz, dtype=np.float64).reshape(-1))]
    except (TypeError, ValueError):
        return []


def _flip_section(flip, audio, sample_rate, stft_params=(None, None)) -> Tuple[str, Optional[Tuple[np.ndarray, int]]]:
    """(html, (perturbed, sr)) of a flip."""
    from .plots import _first_attr, _flip_waves, plot_flip

    parts = []
    wave = None
    drawable = False
    try:
        x, y, sr = _flip_waves(flip, audio, sample_rate)
        wave, drawable = (y, int(sr)), True
    except ParameterError as exc:
        parts.append(f"<p class=\"note\">No flip plot: {_esc(exc)}</p>")
        from .plots import _wave_attr

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
            uri, (w, h) = _png_data_uri(fig, dpi=100)
            parts.append(f"<figure><img id=\"img-flip\" src=\"{uri}\" width=\"{w}\" height=\"{h}\" "
                         "alt=\"original versus perturbed spectrum around the changed bins\">"
                         "<figcaption>Original versus perturbed spectrum around the changed bins"
                         " (for an STFT flip: one frame, with the original's masking threshold).</figcaption></figure>")
        except Exception as exc:  # a flip we cannot draw must not lose the rest of the report
            parts.append(f"<p class=\"note\">No flip plot: {_esc(type(exc).__name__)}: {_esc(exc)}</p>")
    rows = []
    success = _first_attr(flip, ("success",))
    if success is not None:
        rows.append(("success", _Raw(f"<span class=\"{'ok' if success else 'bad'}\">{'yes' if success else 'no'}</span>")))
    def cls(which):
        name = _first_attr(flip, (f"{which}_name", f"{which}_class_name"))
        index = _first_attr(flip, (f"{which}_class",))
        if name is None:
            return index
        return f"{name}" + (f" (index {index})" if index is not None else "")

    for label, keys in (
        ("space", ("space",)),
        ("strategy", ("strategy", "method")),
        ("original class", cls("original")),
        ("original score", ("original_score",)),
        ("new class", cls("new")),
        ("new score", ("new_score",)),
        ("original class's new score", ("original_class_score",)),
        ("target", ("target",)),
        ("change", ("change",)),
        ("gain (dB)", ("gain_db",)),
        ("phase (rad)", ("phase_rad",)),
        ("k (most changed)", ("k",)),
        ("changed", ("n_changed",)),
        ("SNR (dB)", ("snr_db",)),
        ("inaudible", ("inaudible",)),
        ("margin under the masking threshold (dB)", ("margin_db",)),
        ("change scaled by", ("scale",)),
        ("queries", ("queries",)),
        ("flip queries", ("flip_queries",)),
        ("budget", ("budget",)),
        ("seed", ("seed",)),
        ("seconds", ("elapsed", "elapsed_s", "seconds")),
    ):
        v = _first_attr(flip, keys) if isinstance(keys, tuple) else keys
        if v is None:
            continue
        if isinstance(v, np.ndarray):
            v = float(np.min(v)) if v.size else None
        rows.append((label, v))
    hz = _flip_freqs(flip)
    if hz:
        shown = ", ".join(f"{_hz(v)}" for v in hz[:40]) + (" …" if len(hz) > 40 else "")
        rows.append(("changed frequencies (Hz)", shown))
    times = _first_attr(flip, ("times_s",))
    if times is not None and np.size(times):
        t = np.unique(np.asarray(times, dtype=np.float64).reshape(-1))
        rows.append(("changed frames at (s)", ", ".join(f"{v:.2f}" for v in t[:40]) + (" …" if t.size > 40 else "")))
    parts.append(_kv_table(rows))
    return "".join(parts), wave


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
) -> str:
    """The HTML text of :func:`write_explanation_report` (see there).

    `link_audio_from`: the directory the page will live in; when given and
    `e` is a :class:`SavedExplanation`, its WAV files are linked by relative
    URL instead of embedded.
    """
    from .plots import plot_explanation

    if e is None and flip is None:
        raise ParameterError("nothing to report: give an explanation, a flip or both")
    from .plots import require_matplotlib

    require_matplotlib()
    model_name = model_name or getattr(e, "model_name", None)
    source = source or getattr(e, "source", None)
    body = []
    if index_href:
        body.append(f"<a class=\"back\" href=\"{_esc(index_href)}\">← all clips</a>")
    if e is not None:
        name = e.target_name or f"class {e.target}"
        heading = title or f"Why '{name}'?"
        body.append(f"<h1>{_esc(heading)}</h1>")
        dur = e.n_samples / e.sample_rate if e.sample_rate else 0.0
        body.append(
            f"<p class=\"lead\">freqrex explanation of {_esc(model_name or 'the model')}'s decision on "
            f"{_esc(source or 'a clip')} ({dur:.1f} s at {e.sample_rate:,} Hz), by causal analysis of the "
            f"{_esc(e.space.upper())} space.</p>"
        )
        unit = "cells" if e.space == "stft" else "bins"
        cards = [
            ("top class", name, f"index {e.target}"),
            ("score", f"{e.score:.3f}", "of the original clip"),
            ("space", e.space.upper(), _count(e.responsibility.size, unit)
             + ("" if e.responsibility.ndim == 1 else " (" + " × ".join(str(v) for v in e.responsibility.shape) + ")")),
        ]
        for n in SET_NAMES:
            size = e.size(n)
            cards.append((_SET_TITLES[n], "absent" if size is None else _count(size, unit),
                          "" if size is None else _count(len(e.bands(n)), "bands")))
        cards.append(("queries", f"{e.queries:,}", f"search {e.search_queries:,}, extraction {e.extraction_queries:,}"))
        cards.append(("time", _seconds(e.elapsed), f"seed {e.seed}"))
        body.append("<div class=\"cards\">" + "".join(
            f"<div class=\"card\"><div class=\"k\">{_esc(k)}</div><div class=\"v\">{_esc(v)}</div>"
            f"<div class=\"s\">{_esc(s)}</div></div>" for k, v, s in cards) + "</div>")
    else:
        body.append(f"<h1>{_esc(title or 'freqrex flip')}</h1>")
        body.append(f"<p class=\"lead\">A manipulation of {_esc(model_name or 'the model')}'s decision on "
                    f"{_esc(source or 'a clip')}.</p>")

    flip_html, flip_wave = ("", None)
    if flip is not None:
        orig = original_audio
        if orig is None and e is not None:
            try:
                orig = e.audio("original")
            except Exception:
                orig = None
        params = (None, None)
        if e is not None and e.space == "stft":
            params = (e.options.get("n_fft"), e.options.get("hop_length"))
        flip_html, flip_wave = _flip_section(flip, orig, e.sample_rate if e is not None else None, params)

    body.append("<h2>Listen</h2>")
    body.append(_audio_section(e, flip, flip_wave, link_audio_from,
                               original_audio if e is None else None))

    if e is not None:
        body.append("<h2>Figure</h2>")
        fig = plot_explanation(e)
        uri, (w, h) = _png_data_uri(fig, dpi=100)
        body.append(
            f"<figure><img id=\"img-explanation\" src=\"{uri}\" width=\"{w}\" height=\"{h}\" "
            "alt=\"waveform, responsibility, sets and resynthesised signals\">"
            "<figcaption>(a) the original waveform; (b) responsibility of every frequency, on a linear and a "
            "log-frequency axis; (c) the sufficient set, the bins the sufficient-and-necessary set adds, and the "
            "bins the complete set adds; (d) the sufficient set resynthesised; (e) the sufficient-and-necessary "
            "set resynthesised.</figcaption></figure>")
    if flip is not None:
        body.append("<h2>Flip</h2>")
        body.append(flip_html)
    if e is not None:
        body.append("<h2>The sets, in Hz</h2>")
        body.append(_sets_html(e))
        body.append("<h2>The run</h2>")
        from . import __version__

        run_rows = [
            ("model", model_name or "—"),
            ("audio", source or "—"),
            ("target", f"{e.target_name or '—'} (index {e.target})"),
            ("score", e.score),
            ("space", e.space),
            ("shape", " × ".join(str(v) for v in e.responsibility.shape)),
            ("sample rate (Hz)", e.sample_rate),
            ("samples", e.n_samples),
            ("seed", e.seed),
            ("queries", e.queries),
            ("search queries", e.search_queries),
            ("extraction queries", e.extraction_queries),
            ("elapsed", _seconds(e.elapsed)),
            ("freqrex", __version__),
        ]
        opts = [(k, _option(v)) for k, v in sorted((e.options or {}).items()) if not str(k).startswith("_")]
        stats = [(k, _option(v)) for k, v in sorted((e.stats or {}).items())]
        body.append("<div class=\"grid2\"><div><h3>Run</h3>" + _kv_table(run_rows) + "</div><div><h3>Options</h3>"
                    + _kv_table(opts) + ("<h3 style=\"margin-top:14px\">Search</h3>" + _kv_table(stats) if stats else "")
                    + "</div></div>")
    body.append(_footer())
    page_title = ("freqrex: " + (e.target_name or f"class {e.target}")) if e is not None else "freqrex flip"
    if source:
        page_title += f" — {Path(str(source)).name}"
    return _page(page_title, "\n".join(body))


def _option(v: Any) -> Any:
    if v is None:
        return "—"
    if isinstance(v, (list, tuple, dict)):
        return json.dumps(v)
    return v


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
        A flip of the same clip (read by duck typing; see :func:`freqrex.plots.plot_flip`).
    title : str, optional
        Page heading.
    index_href : str, optional
        Link back to an index page (evaluation reports).
    embed_audio : bool
        True (default): the audio is inline, the file stands alone. False,
        for an explanation loaded by :func:`load_explanation_dir`: the players
        link to its WAV files by relative URL (a much smaller page that still
        opens offline, as long as it stays beside the run directory).

    Returns
    -------
    pathlib.Path
    """
    text = explanation_html(e, model_name=model_name, source=source, flip=flip, title=title,
                            index_href=index_href, link_audio_from=None if embed_audio else Path(path).parent)
    return _atomic_write(Path(path), text)


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
        ``model_name``, ``source``, ``title``: as :func:`write_explanation_report`.
    """
    e = explanation if explanation is not None else getattr(flip, "explanation", None)
    if e is not None and not isinstance(e, Explanation):
        e = None
    text = explanation_html(e, flip=flip, original_audio=None if audio is None else np.asarray(audio), **kwargs)
    return _atomic_write(Path(path), text)



# =========================================================================== evaluation
def read_records(source: Union[PathLike, Iterable[Mapping[str, Any]]]) -> Tuple[List[Dict[str, Any]], int]:
    """Records of an evaluation JSONL file (or an iterable of dicts) and the count of unreadable lines."""
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if not p.is_file():
            raise ParameterError(f"no such results file: {p}")
        records, bad = [], 0
        with open(p, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    r = json.loads(line)
                except ValueError:
                    bad += 1
                    continue
                if isinstance(r, dict):
                    records.append(r)
                else:
                    bad += 1
        return records, bad
    return [dict(r) for r in source], 0


def _flatten(d: Mapping[str, Any], prefix: str = "", out: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    out = {} if out is None else out
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            _flatten(v, key + ".", out)
        elif isinstance(v, (list, tuple)):
            if len(v) <= 6 and all(isinstance(x, (int, float, str, bool)) or x is None for x in v):
                out[key] = ", ".join(_num(x) if not isinstance(x, str) else x for x in v)
            else:
                out[key] = f"[{len(v)} items]"
        else:
            out[key] = v
    return out


_ID_KEYS = ("clip", "file", "path", "audio", "name", "id", "source")
_LINK_KEYS = ("report", "report_html", "html", "explanation_dir", "out_dir", "out", "dir", "run_dir", "directory")


def _is_summary_record(r: Mapping[str, Any]) -> bool:
    return str(r.get("type", r.get("kind", r.get("record", "")))).lower() == "summary"


def _column_stats(rows: List[Dict[str, Any]], columns: List[str]) -> List[Tuple[str, str, str, str, str, str]]:
    out = []
    for c in columns:
        vals = [r.get(c) for r in rows if r.get(c) is not None]
        if not vals:
            continue
        if all(isinstance(v, bool) for v in vals):
            rate = sum(vals) / len(vals)
            out.append((c, f"{len(vals)}", f"{100 * rate:.1f}% true", "", "", ""))
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            ints = all(isinstance(v, int) for v in vals)
            a = np.asarray(vals, dtype=np.float64)
            a = a[np.isfinite(a)]
            if a.size == 0:
                continue

            def fmt(v, exact=False):
                return _num(int(v)) if ints and (exact or float(v).is_integer()) else _num(float(v))

            out.append((c, f"{a.size}", _num(float(a.mean()), 4 if not ints else 1), fmt(np.median(a)),
                        fmt(a.min(), True), fmt(a.max(), True)))
    return out


def _find_summary(path: Optional[Path]) -> Optional[Any]:
    if path is None:
        return None
    for cand in (path.with_suffix(".summary.json"), path.parent / f"{path.stem}_summary.json",
                 path.parent / "summary.json"):
        if cand.is_file():
            try:
                return json.loads(cand.read_text())
            except (OSError, ValueError):
                continue
    return None


def _summary_html(summary: Any) -> str:
    if isinstance(summary, Mapping):
        rows = summary.get("rows") if isinstance(summary.get("rows"), list) else None
        if rows and all(isinstance(r, Mapping) for r in rows):
            return _records_table([_flatten(r) for r in rows], None)
        flat = _flatten(summary)
        return _kv_table((k, _option(v)) for k, v in flat.items() if k not in ("type", "kind", "record"))
    if isinstance(summary, list) and all(isinstance(r, Mapping) for r in summary):
        return _records_table([_flatten(r) for r in summary], None)
    return f"<pre>{_esc(json.dumps(summary, indent=2, default=str))}</pre>"


def _records_table(rows: List[Dict[str, Any]], links: Optional[List[Optional[str]]]) -> str:
    columns: List[str] = []
    for r in rows:
        for k in r:
            if k not in columns:
                columns.append(k)
    ident = [c for c in columns if c.split(".")[-1] in _ID_KEYS][:1]
    columns = ident + [c for c in columns if c not in ident]
    head = "".join(f"<th class=\"{'n' if _numeric(rows, c) else ''}\">{_esc(c)}</th>" for c in columns)
    body = []
    for i, r in enumerate(rows):
        cells = []
        for j, c in enumerate(columns):
            v = r.get(c)
            text = _esc(_num(v) if not isinstance(v, str) else v)
            if c in ident and isinstance(v, str):
                text = _esc(Path(v).name or v)
            if j == 0 and links is not None and links[i]:
                text = f"<a href=\"{_esc(links[i])}\">{text}</a>"
            cls = " class=\"n\"" if _numeric(rows, c) else ""
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (f"<div class=\"tablewrap\"><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
            "</table></div>")


def _numeric(rows: List[Dict[str, Any]], c: str) -> bool:
    vals = [r.get(c) for r in rows if r.get(c) is not None]
    return bool(vals) and all(isinstance(v, (int, float)) for v in vals)


def _clip_page(record: Mapping[str, Any], base: Path, pages_dir: Path, index: int, index_href_from_page: str,
               render: bool, embed_audio: bool) -> Optional[str]:
    """Link (relative to the index's directory) to a per-clip page, rendering one when possible."""
    for key in _LINK_KEYS:
        v = record.get(key)
        if not isinstance(v, str) or not v:
            continue
        p = Path(v)
        if not p.is_absolute():
            p = (base / p) if (base / p).exists() else p
        if p.is_file() and p.suffix.lower() in (".html", ".htm"):
            return os.path.relpath(p, pages_dir.parent)
        if p.is_dir():
            if (p / "report.html").is_file():
                return os.path.relpath(p / "report.html", pages_dir.parent)
            if render and (p / "summary.json").is_file() and (p / "explanation.npz").is_file():
                e = load_explanation_dir(p)
                name = next((record.get(k) for k in _ID_KEYS if isinstance(record.get(k), str)), None)
                target = pages_dir / f"clip-{index:04d}.html"
                write_explanation_report(e, target, source=name or e.source,
                                         model_name=record.get("model") if isinstance(record.get("model"), str) else None,
                                         flip=_load_flip_dir(p, e), index_href=index_href_from_page,
                                         embed_audio=embed_audio)
                return os.path.relpath(target, pages_dir.parent)
    return None


def _results_markdown(records: List[Dict[str, Any]]) -> Optional[str]:
    """The evaluation's results table (Markdown, laid out like the paper's), from freqrex.evaluate."""
    try:
        from .evaluation import summarize, summary_markdown

        return summary_markdown(summarize(records))
    except Exception:  # another layout, or no evaluate module: the generic tables still show
        return None


def _inline_md(text: str) -> str:
    import re

    out = _esc(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", out)


def _markdown_html(md: str) -> str:
    """Pipe tables and paragraphs of simple Markdown as HTML."""
    blocks: List[str] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            align = []
            if len(rows) > 1 and all(set(c) <= set(":- ") for c in rows[1]):
                align = ["n" if c.endswith(":") else "" for c in rows[1]]
                rows = [rows[0]] + rows[2:]
            head = "".join(f"<th class=\"{align[j] if j < len(align) else ''}\">{_inline_md(c)}</th>"
                           for j, c in enumerate(rows[0]))
            body = "".join("<tr>" + "".join(f"<td class=\"{align[j] if j < len(align) else ''}\">{_inline_md(c)}</td>"
                                            for j, c in enumerate(r)) + "</tr>" for r in rows[1:])
            blocks.append(f"<div class=\"tablewrap\" style=\"margin:12px 0\"><table><thead><tr>{head}</tr></thead>"
                          f"<tbody>{body}</tbody></table></div>")
            continue
        if line:
            para = [line]
            i += 1
            while i < len(lines) and lines[i].strip() and not lines[i].strip().startswith("|"):
                para.append(lines[i].strip())
                i += 1
            blocks.append(f"<p class=\"note\">{_inline_md(' '.join(para))}</p>")
            continue
        i += 1
    return "".join(blocks)


def _flip_records_table(records: List[Dict[str, Any]], links: List[Optional[str]]) -> str:
    """One row per (clip, model) of a ``freqrex evaluate`` JSONL: the smallest k that flipped, per strategy."""
    strategies: List[str] = []
    for r in records:
        for s in (r.get("fft_flips") or {}):
            if s not in strategies:
                strategies.append(s)
    stft = any(isinstance(r.get("stft_flips"), Mapping) for r in records)
    head = ["clip", "model", "top class", "score", "sufficient (bins)"]
    head += [f"{s}: smallest k flipped" for s in strategies]
    if stft:
        head += [f"{s}: STFT" for s in strategies]
    head += ["seconds"]
    numeric = {"score", "sufficient (bins)", "seconds"}
    out = ["<div class=\"tablewrap\"><table><thead><tr>"
           + "".join(f"<th class=\"{'n' if h in numeric else ''}\">{_esc(h)}</th>" for h in head)
           + "</tr></thead><tbody>"]
    for r, link in zip(records, links):
        original = r.get("original") or {}
        name = _esc(r.get("clip") or Path(str(r.get("file", "?"))).stem)
        if link:
            name = f"<a href=\"{_esc(link)}\">{name}</a>"
        if r.get("status", "ok") != "ok":
            cells = [name, _esc(r.get("model", "")),
                     f"<span class=\"bad\">{_esc(r.get('error') or r.get('status'))}</span>"]
            cells += [""] * (len(head) - 3)
            out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            continue
        size = (((r.get("fft_explanation") or {}).get("sets") or {}).get("sufficient") or {}).get("size")
        cells = [name, _esc(r.get("model", "")), _esc(original.get("name") or original.get("class", "")),
                 _esc(_num(original.get("score"))), _esc(_num(size))]
        for s in strategies:
            by_k = (r.get("fft_flips") or {}).get(s) or {}
            ks = sorted(int(k) for k, v in by_k.items() if isinstance(v, Mapping) and v.get("success"))
            cells.append(f"<span class=\"ok\">k = {ks[0]}</span>" if ks else "—")
        if stft:
            for s in strategies:
                v = (r.get("stft_flips") or {}).get(s)
                if not isinstance(v, Mapping):
                    cells.append("")
                elif v.get("success"):
                    cells.append("<span class=\"ok\">flipped</span>" + (" (inaudible)" if v.get("inaudible") else " (audible)"))
                else:
                    cells.append("—")
        cells.append(_esc(_num(r.get("seconds"), 1)))
        out.append("<tr>" + "".join(f"<td class=\"{'n' if h in numeric else ''}\">{c}</td>"
                                    for h, c in zip(head, cells)) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def write_evaluation_report(
    records_jsonl: Union[PathLike, Iterable[Mapping[str, Any]]],
    path: PathLike,
    *,
    title: Optional[str] = None,
    summary: Any = None,
    pages: bool = True,
    embed_audio: bool = False,
) -> Path:
    """Write an HTML report of an evaluation: the summary and one row per clip.

    Parameters
    ----------
    records_jsonl : path or iterable of dict
        The evaluation's JSONL file (one JSON object per clip), or the records.
        Nested fields are shown as dotted columns. Records whose ``type`` is
        ``"summary"`` are shown as the summary.
    path : str or os.PathLike
        The index HTML file to write.
    title : str, optional
    summary : dict, list or path, optional
        The evaluation's summary table (e.g. its summary JSON). When None, a
        ``<results>.summary.json``, ``<results>_summary.json`` or
        ``summary.json`` beside the JSONL file is used if present. Per-column
        statistics of the records are always shown.
    pages : bool
        Link every clip to its page: a record field (``report``, ``out``,
        ``explanation_dir``, ...) naming an HTML file or a directory with
        ``report.html`` is linked as is; a saved explanation directory is
        rendered into ``<index stem>_clips/clip-NNNN.html`` beside the index.
    embed_audio : bool
        False (default): rendered clip pages link to the run directories' WAV
        files (pages of ~1 MB instead of ~6 MB for 30 s clips). True: every
        clip page is self-contained.

    Returns
    -------
    pathlib.Path
        The index file.
    """
    path = Path(path)
    src = Path(records_jsonl) if isinstance(records_jsonl, (str, os.PathLike)) else None
    records, bad = read_records(records_jsonl)
    summaries = [r for r in records if _is_summary_record(r)]
    records = [r for r in records if not _is_summary_record(r)]
    if summary is not None and isinstance(summary, (str, os.PathLike)):
        try:
            summary = json.loads(Path(summary).read_text())
        except (OSError, ValueError) as exc:
            raise ParameterError(f"cannot read the summary {summary}: {exc}") from exc
    if summary is None and summaries:
        summary = summaries[-1]
    if summary is None:
        summary = _find_summary(src)

    base = src.parent if src is not None else Path.cwd()
    pages_dir = path.parent / f"{path.stem}_clips"
    links: List[Optional[str]] = []
    for i, r in enumerate(records):
        link = None
        if pages:
            try:
                link = _clip_page(r, base, pages_dir, i, os.path.relpath(path, pages_dir), True, embed_audio)
            except ParameterError:
                link = None
        links.append(link)
    flat = [_flatten(r) for r in records]
    columns: List[str] = []
    for r in flat:
        for k in r:
            if k not in columns:
                columns.append(k)

    body = [f"<h1>{_esc(title or 'freqrex evaluation')}</h1>"]
    lead = f"{len(records):,} clip{'s' if len(records) != 1 else ''}"
    if src is not None:
        lead += f" from <code>{_esc(src.name)}</code>"
    if bad:
        lead += f"; {bad} line{'s' if bad != 1 else ''} could not be read"
    n_linked = sum(1 for x in links if x)
    if n_linked:
        lead += f"; {n_linked} with a page of their own (follow the first column)"
    body.append(f"<p class=\"lead\">{lead}.</p>")
    flips_layout = any(isinstance(r.get("fft_flips"), Mapping) for r in records)
    results_md = _results_markdown(records) if flips_layout else None
    if results_md:
        body.append("<h2>Results</h2>")
        body.append(_markdown_html(results_md))
    if summary is not None:
        body.append("<h2>Summary</h2>" if not results_md else "<details><summary>the summary, field by field</summary>")
        body.append(_summary_html(summary))
        if results_md:
            body.append("</details>")
    stats = _column_stats(flat, columns)
    if stats:
        head = ("<tr><th>column</th><th class=\"n\">n</th><th class=\"n\">mean / rate</th><th class=\"n\">median</th>"
                "<th class=\"n\">min</th><th class=\"n\">max</th></tr>")
        rows = "".join(f"<tr><td>{_esc(c)}</td>" + "".join(f"<td class=\"n\">{_esc(x)}</td>" for x in rest) + "</tr>"
                       for c, *rest in stats)
        table = f"<div class=\"tablewrap\"><table><thead>{head}</thead><tbody>{rows}</tbody></table></div>"
        if flips_layout:
            body.append(f"<details><summary>per-column statistics ({len(stats)} columns)</summary>{table}</details>")
        else:
            body.append("<h2>Per-column statistics</h2>" + table)
    body.append("<h2>Clips</h2>")
    if not flat:
        body.append("<p class=\"note\">No records.</p>")
    elif flips_layout:
        body.append(_flip_records_table(records, links))
        body.append(f"<details><summary>every field of every record ({len(columns)} columns)</summary>"
                    f"{_records_table(flat, None)}</details>")
    else:
        body.append(_records_table(flat, links))
    body.append(_footer())
    return _atomic_write(path, _page(title or "freqrex evaluation", "\n".join(body)))
