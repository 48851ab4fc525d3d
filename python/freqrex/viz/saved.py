"""Saved runs read back without the model: explanations (``Explanation.save``) and flips (``freqrex flip --out``).

These are what ``freqrex report DIR`` renders. :func:`load_explanation_dir`
rebuilds a :class:`SavedExplanation` from ``summary.json`` and
``explanation.npz`` (its ``audio(name)`` reads the saved WAV files);
:func:`load_flip_dir` reads ``flip.json`` and the WAV files beside it.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from types import SimpleNamespace
from typing import List, Optional, Union

import numpy as np

from ..errors import ParameterError
from ..explanation import SET_NAMES, Explanation, load_class_maps

__all__ = ["SavedExplanation", "load_explanation_dir", "load_flip_beside", "load_flip_dir"]

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class SavedExplanation(Explanation):
    """An :class:`~freqrex.Explanation` read back from a saved directory.

    It has no frequency space, so ``audio(name)`` returns the WAV files the
    explanation saved (16-bit PCM as a listener hears them, or float for a
    clip louder than full scale) rather than resynthesising.
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
        from ..io import load_audio

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
            from ..io import load_audio

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
        _read_optional_fields(e, s, arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise ParameterError(f"{spath} is not a freqrex summary: {exc}") from exc
    return e


_SET_MARGIN_KEYS = ("kept_margin", "kept_class", "removed_margin", "removed_class")


def _read_optional_fields(e: Explanation, s: dict, arrays: dict) -> None:
    """The fields a summary holds only in newer versions, set when this Explanation has them.

    Read defensively, so that loading works for saves from before and after
    a field was added: runner-up, margin, contrast, warnings, each set's
    margins, per-class maps and the partition.
    """
    names = {f.name for f in fields(e)}
    if "runner_up" in names and s.get("runner_up") is not None:
        e.runner_up = int(s["runner_up"])
    for name in ("margin", "contrast"):
        if name in names and name in s:
            setattr(e, name, s[name])
    if "warnings" in names and isinstance(s.get("warnings"), list):
        e.warnings = [str(w) for w in s["warnings"]]
    if "set_margins" in names:
        e.set_margins = {name: {k: v[k] for k in _SET_MARGIN_KEYS if k in v}
                         for name, v in (s.get("sets") or {}).items()
                         if isinstance(v, dict) and any(k in v for k in _SET_MARGIN_KEYS)}
    if "class_responsibility" in names:
        e.class_responsibility = load_class_maps(arrays)
    if "parts" in names and "parts" in arrays:
        e.parts = np.asarray(arrays["parts"], dtype=np.float64)
    band = s.get("band")
    if isinstance(band, list) and len(band) == 2:
        e.options["_band"] = (int(band[0]), int(band[1]))
    if "original_scores" in names and isinstance(s.get("original_scores"), list):
        e.original_scores = np.asarray(s["original_scores"], dtype=np.float64)
    keys, shadowed = s.get("metadata_keys"), s.get("metadata_shadowed")
    if "metadata" in names and isinstance(keys, list) and isinstance(shadowed, dict):
        e.metadata = {str(k): shadowed[k] if k in shadowed else s.get(k) for k in keys}


def _check_flip(d: Path) -> None:
    """Verify a saved flip against ``flip-manifest.json`` (:func:`freqrex._atomic.check_saved`).

    A flip that :meth:`FlipResult.save` wrote into an explanation's folder has its own manifest;
    a ``flip.json`` there without one was not written by a complete save (or its manifest was
    removed), and is refused like an interrupted save. A folder with no manifest at all (freqrex
    before 0.2) is read unverified.
    """
    from .._atomic import MANIFEST, check_saved, manifest_name
    from ..errors import ResultFileError

    if not (d / manifest_name("flip")).exists() and (d / MANIFEST).exists():
        try:
            kind = json.loads((d / MANIFEST).read_text()).get("kind")
        except (OSError, ValueError, AttributeError):
            kind = None
        if kind == "explanation":
            raise ResultFileError(
                f"{d / 'flip.json'} has no {manifest_name('flip')}: it was not written by a complete "
                "FlipResult.save (an interrupted save, or a file put there by hand)")
    check_saved(d, "flip")


def _read_flip(d: Path, e: Optional[Explanation]) -> SimpleNamespace:
    """The fields of ``flip.json`` and the waveforms beside it (raises on anything unreadable)."""
    from .._atomic import read_json
    from ..io import load_audio

    data = read_json(d / "flip.json")
    if not isinstance(data, dict):
        raise ValueError("flip.json does not hold a JSON object")
    ns = SimpleNamespace(**{k: v for k, v in data.items() if isinstance(k, str) and k.isidentifier()})
    rate = None
    for name in ("perturbed.wav", "flipped.wav", "flip.wav", "closest_attempt.wav"):
        if (d / name).is_file():  # a failed flip saves no perturbed.wav (its closest attempt only when asked)
            ns.perturbed, rate = load_audio(d / name)
            break
    if (d / "original.wav").is_file():
        ns.original_audio, original_rate = load_audio(d / "original.wav")
        rate = rate or original_rate
    ns.sample_rate = getattr(ns, "sample_rate", None) or (e.sample_rate if e is not None else rate)
    return ns


def load_flip_beside(d: PathLike, e: Optional[Explanation] = None, *, notes: Optional[List[str]] = None):
    """A saved flip in directory `d` (``flip.json``, and ``perturbed.wav`` and ``original.wav`` when there), or None.

    A failed flip has no ``perturbed.wav``: its numbers are still read (and
    ``closest_attempt.wav`` when it was saved).

    The flip is checked against its manifest (``flip-manifest.json``), as
    :meth:`FlipResult.load` checks it. A flip that is not a complete save (an
    interrupted save, a file changed or removed since, an unreadable file) is
    not shown: None is returned and a note saying why is appended to `notes`
    (a list), or, without `notes`, issued as a
    :class:`~freqrex.errors.FreqrexWarning`. None without a note when there is
    no ``flip.json``.
    """
    from .._atomic import reading_saved
    from ..errors import FreqrexError, FreqrexWarning

    d = Path(d)
    if not (d / "flip.json").is_file():
        return None
    try:
        with reading_saved(d, "flip"):
            _check_flip(d)
            return _read_flip(d, e)
    except FreqrexError as exc:
        note = f"The flip saved in {d} is not shown: {exc}"
        if notes is not None:
            notes.append(note)
        else:
            warnings.warn(note, FreqrexWarning, stacklevel=2)
        return None


def load_flip_dir(path: PathLike):
    """A flip saved by ``freqrex flip --out DIR`` (``flip.json``; ``perturbed.wav``, ``original.wav`` when there).

    Returns a namespace with the fields of ``flip.json``, ``perturbed`` and
    ``original_audio`` (waveforms).

    Raises
    ------
    ParameterError
        `path` is not a directory holding ``flip.json``.
    ResultFileError
        The flip is not a complete save: interrupted, changed since it was
        saved (checked against ``flip-manifest.json``, as :meth:`FlipResult.load`
        does), or unreadable.
    """
    from .._atomic import reading_saved

    d = Path(path)
    if not d.is_dir() or not (d / "flip.json").is_file():
        raise ParameterError(f"{d} is not a saved flip (it needs a readable flip.json)")
    with reading_saved(d, "flip"):
        _check_flip(d)
        return _read_flip(d, None)
