"""The outcome of a flip, and its symmetric ``save`` / ``load``."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from .._atomic import write_text

__all__ = ["FlipResult"]

_ARRAYS = ("bins", "frequencies_hz", "frames", "times_s", "directions")


def _num(v: Any) -> Any:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else (None if math.isnan(v) else ("inf" if v > 0 else "-inf"))


def _unnum(v: Any) -> Any:
    if v in ("inf", "-inf"):
        return float(v)
    return v


@dataclass
class FlipResult:
    """The outcome of :func:`freqrex.flip`.

    Attributes
    ----------
    success : bool
        Whether the top-1 class moved away from the original (or, for a
        targeted flip, onto ``target``).
    strategy : {"causal", "random", "magnitude", "tone_scan"}
    space : {"fft", "stft"}
    k : int
        Largest number of elements allowed to change (``fft``; for the
        ``stft`` envelope search, the change spreads over as many cells as it
        needs and ``n_changed`` says how many).
    original_class, original_name, original_score
        The model's top-1 class on the original clip, its name and score.
    new_class, new_name, new_score
        Top-1 class of the perturbed clip, its name and score.  When the flip
        failed these describe the best attempt (the smallest gap between the
        original class and the runner-up), and ``audio`` is that attempt.
    original_class_score : float
        Score of the original class on the perturbed clip.
    target : int or None
        The class asked for (targeted flip), or None.
    change : str or None
        ``"add"`` (in phase with the coefficient: amplify, or add a tone),
        ``"subtract"`` (anti-phase: attenuate, remove, or beyond), ``"mixed"``
        (both, per element, see ``directions``), ``"masked"`` (``stft``
        envelope search), or a fixed change ``"remove"``, ``"gain"``,
        ``"phase"``.
    gain_db, phase_rad : float or None
        Size of a fixed ``"gain"`` / ``"phase"`` change.
    scale : float or None
        ``stft`` fixed changes: factor applied to keep them under the
        masking threshold.
    amplitude : float or None
        Amplitude-searched changes: magnitude of each element's complex
        difference (rFFT units, ``fft``).
    bins, frequencies_hz : ndarray
        Frequency bin (and Hz) of every changed element.
    frames, times_s : ndarray or None
        ``stft`` only: frame index and centre time of every changed cell.
    directions : ndarray of int8 or None
        +1 (add) or -1 (subtract) per element, for searched changes.
    audio : ndarray of float32
        The perturbed clip.
    snr_db, db_x, margin_db : float
        Audibility of the change (see :mod:`freqrex.manipulation.perturbation`).
    inaudible : bool or None
        Every frame's margin under the masking threshold is >= 0 dB.
    queries : int
        All model evaluations of this flip: the explanation's (causal), the
        original clip's when it was evaluated here, and ``flip_queries``.
    flip_queries : int
        Perturbed clips evaluated by the search (``<= budget``).
    explanation_queries : int
    attempts : int
        Equal to ``flip_queries``.
    budget, seed : int
    elapsed : float
        Seconds (the explanation included when it was computed here).
    sample_rate : int
    method : str
        ``"quietest"`` (amplitude search), ``"masked"`` (``stft`` envelope
        search) or ``"fixed"`` (enumeration of fixed changes).
    """

    success: bool
    strategy: str
    space: str
    k: int
    original_class: int
    original_name: Optional[str]
    original_score: float
    new_class: int
    new_name: Optional[str]
    new_score: float
    original_class_score: float
    target: Optional[int]
    change: Optional[str]
    gain_db: Optional[float]
    phase_rad: Optional[float]
    scale: Optional[float]
    bins: np.ndarray
    frequencies_hz: np.ndarray
    frames: Optional[np.ndarray]
    times_s: Optional[np.ndarray]
    audio: np.ndarray = field(repr=False)
    snr_db: float
    inaudible: Optional[bool]
    margin_db: Optional[float]
    queries: int
    flip_queries: int
    explanation_queries: int
    attempts: int
    budget: int
    seed: int
    elapsed: float
    sample_rate: int
    db_x: Optional[float] = None
    amplitude: Optional[float] = None
    directions: Optional[np.ndarray] = None
    method: str = "fixed"

    @property
    def n_changed(self) -> int:
        """Number of changed elements (0 when the flip failed)."""
        return int(self.bins.size) if self.success else 0

    def summary(self) -> Dict[str, Any]:
        """A JSON-ready summary (everything but the audio)."""
        out: Dict[str, Any] = {}
        for f in fields(self):
            if f.name == "audio":
                continue
            v = getattr(self, f.name)
            if f.name in _ARRAYS:
                out[f.name] = None if v is None else np.asarray(v).tolist()
            elif isinstance(v, (float, np.floating)):
                out[f.name] = _num(v)
            elif isinstance(v, (np.integer,)):
                out[f.name] = int(v)
            elif isinstance(v, np.bool_):
                out[f.name] = bool(v)
            else:
                out[f.name] = v
        out["elapsed_s"] = out.pop("elapsed")
        out["n_changed"] = self.n_changed
        return out

    def save(self, directory: "os.PathLike[str] | str") -> Path:
        """Write ``flip.json`` and ``perturbed.wav`` (float32, lossless) atomically."""
        from ..io import save_wav

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        save_wav(out / "perturbed.wav", self.audio, self.sample_rate, subtype="FLOAT")
        write_text(out / "flip.json", json.dumps(self.summary(), indent=2))
        return out

    @classmethod
    def load(cls, directory: "os.PathLike[str] | str") -> "FlipResult":
        """Read a flip written by :meth:`save` (the audio included)."""
        import soundfile as sf

        from ..errors import AudioFileError

        d = Path(directory)
        try:
            s = json.loads((d / "flip.json").read_text())
            audio, _ = sf.read(str(d / "perturbed.wav"), dtype="float32")
        except (OSError, ValueError, RuntimeError) as exc:
            raise AudioFileError(f"cannot read a saved flip from {d}: {exc}") from exc
        kwargs: Dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "audio":
                kwargs["audio"] = np.asarray(audio, dtype=np.float32)
            elif f.name == "elapsed":
                kwargs["elapsed"] = float(s["elapsed_s"])
            elif f.name in _ARRAYS:
                v = s.get(f.name)
                dtype = np.float64 if f.name in ("frequencies_hz", "times_s") else (
                    np.int8 if f.name == "directions" else np.int64)
                kwargs[f.name] = None if v is None else np.asarray(v, dtype=dtype)
            elif f.name in s:
                kwargs[f.name] = _unnum(s[f.name])
        return cls(**kwargs)
