"""The outcome of a flip, and its symmetric ``save`` / ``load``."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Optional

import numpy as np

from .. import notebook as _notebook
from .._atomic import begin_save, check_saved, finish_save, read_json, reading_saved, write_text

__all__ = ["FlipResult"]

_ARRAYS = ("bins", "frequencies_hz", "frames", "times_s", "directions")

#: File of a flip's perturbed clip (written only when the flip succeeded).
PERTURBED_WAV = "perturbed.wav"
#: File of a failed flip's closest attempt (written only when asked).
CLOSEST_WAV = "closest_attempt.wav"


def _num(v: Any) -> Any:
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else (None if math.isnan(v) else ("inf" if v > 0 else "-inf"))


def _unnum(v: Any) -> Any:
    if v in ("inf", "-inf"):
        return float(v)
    return v


#: The original clip in a saved flip's (or explanation's) folder.
ORIGINAL_WAV = "original.wav"


def check_beside_explanation(directory: "os.PathLike[str] | str", original: np.ndarray, sample_rate: int) -> bool:
    """Whether ``directory`` holds an explanation of the clip ``original`` (True: a flip saved there
    leaves its ``original.wav`` as it is); False when it holds no explanation.  An explanation of
    another clip (its ``original.wav`` holds other samples, or another rate or length), or one whose
    ``original.wav`` is missing or unreadable, is a ParameterError: the flip's ``original.wav`` would
    break or mislabel it."""
    import soundfile as sf

    from .._atomic import explanation_in
    from ..errors import ParameterError
    from ..io import wav_bytes

    out = Path(directory)
    if not explanation_in(out):
        return False
    held_path = out / ORIGINAL_WAV
    try:
        info = sf.info(str(held_path))
        held, rate = sf.read(str(held_path), dtype="float32", always_2d=False)
    except Exception as exc:  # noqa: BLE001 - missing, unreadable, not audio: one message
        raise ParameterError(
            f"{out} holds an explanation whose original.wav cannot be read ({type(exc).__name__}); a flip saved "
            "there would pass its own clip off as the explanation's: save it to another folder "
            "(nothing was written)") from None
    x = np.asarray(original, dtype=np.float32).reshape(-1)
    same = rate == int(sample_rate) and held.ndim == 1 and held.size == x.size
    if same:  # the samples the explanation's save wrote, in its file's own format (an older save's too)
        import io as _io

        subtype = info.subtype if info.subtype in ("PCM_16", "FLOAT") else "auto"
        expected, _ = sf.read(_io.BytesIO(wav_bytes(x, sample_rate, subtype=subtype)), dtype="float32")
        same = bool(np.array_equal(held, expected))
    if not same:
        raise ParameterError(
            f"{out} holds an explanation of another clip (its original.wav differs from this flip's clip: "
            "another file, duration, offset or sample rate); save the flip to another folder (nothing was written)")
    return True


@dataclass
class FlipResult:
    """The outcome of :func:`freqrex.flip`.

    Attributes
    ----------
    success : bool
        Whether the top-1 class moved away from the original (or, for a
        targeted flip, onto ``target``).
    strategy : {"causal", "random", "magnitude", "tone_scan", "additive"}
    space : {"fft", "stft"}
    k : int
        Largest number of elements allowed to change (``fft``; for the
        ``stft`` envelope search, the change spreads over as many cells as it
        needs and ``n_changed`` says how many).
    original_class, original_name, original_score
        The model's top-1 class on the original clip, its name and score.
    new_class, new_name, new_score
        Top-1 class of the perturbed clip, its name and score.  When the flip
        failed these describe the closest attempt (the smallest gap between the
        original class and the runner-up; see ``closest_margin``), and
        ``audio`` is that attempt: it is not a result, and :meth:`save` writes
        it only when asked, as ``closest_attempt.wav``.
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
    snr_db, db_x : float
        SNR of the change over the whole clip, and Carlini & Wagner's dB_x.
    margin_db : float or None
        The smallest margin (dB) of the change under the two masking
        thresholds (freqrex's and ART's), over all cells: ``-max(max_excess_db,
        art_max_excess_db)``.
    inaudible : bool or None
        The change is under both thresholds in every cell.
    quietest_frame_snr_db : float or None
        The smallest per-frame SNR (2048-sample frames, hop 512).
    over_threshold_share, max_excess_db : float or None
        Share of STFT cells where the change is over freqrex's masking
        threshold, and its largest excess (dB; negative: the margin under it).
    art_over_threshold_share, art_max_excess_db : float or None
        The same under ART 1.20.1's threshold on ART's framing
        (:mod:`freqrex.signal.qin`); None for clips shorter than 2048 samples.
    louder_than_clip_share : float or None
        Share of STFT cells where the change is louder than the clip.
    closest_margin : float or None
        Score margin of the returned change: the target's score minus the best
        other class's (untargeted: the best other class's score minus the
        original class's).  Positive for a flip; for a failed flip, how close
        the best attempt came (0 or negative).
    closest_class, closest_name : int / str or None
        The class that margin is measured against: the class the change
        came closest to making the top-1 (untargeted), or the target.
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
    quietest_frame_snr_db: Optional[float] = None
    over_threshold_share: Optional[float] = None
    max_excess_db: Optional[float] = None
    art_over_threshold_share: Optional[float] = None
    art_max_excess_db: Optional[float] = None
    louder_than_clip_share: Optional[float] = None
    closest_margin: Optional[float] = None
    closest_class: Optional[int] = None
    closest_name: Optional[str] = None

    #: The ``additive`` strategy's vulnerability spectrum (:class:`~freqrex.manipulation.vulnerability.
    #: VulnerabilitySpectrum`); None for other strategies and for a loaded flip (it has its own ``save``).
    vulnerability = None
    #: The exact level (dB SNR) of an ``fft`` quietest flip's change, for ``flip(start_from=...)``;
    #: None for other flips and for a loaded one (which has its ``snr_db``).
    _level_db = None

    def __repr__(self) -> str:
        return _notebook.flip_repr(self)

    def _repr_html_(self) -> str:  # Jupyter: summary, plot and audio player (freqrex.notebook)
        return _notebook.flip_html(self)

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

    def to_dict(self) -> Dict[str, Any]:
        """The summary as an evaluation record needs it (same as :meth:`summary`)."""
        return self.summary()

    def summary_with(self, extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """:meth:`summary` and further fields (``flip.json`` as :meth:`save` writes it); a field of the
        summary is never overwritten."""
        summary = self.summary()
        summary.update({k: v for k, v in (extra or {}).items() if k not in summary})
        return summary

    def save(self, directory: "os.PathLike[str] | str", *, closest_attempt: bool = False,
             original: Optional[np.ndarray] = None, extra: Optional[Dict[str, Any]] = None) -> Path:
        """Write ``flip.json`` and, for a flip, ``perturbed.wav`` (float32, lossless), atomically.

        A failed flip writes no ``perturbed.wav`` (one left in `directory` by an
        earlier flip is removed, so the directory never shows a result that is
        not there); with ``closest_attempt=True`` its closest attempt is written
        as ``closest_attempt.wav``. ``original``: the original clip, written as
        ``original.wav`` (16-bit PCM, or float for a clip louder than full scale); in a folder that
        holds an explanation of another clip (its ``original.wav`` differs) nothing is written and a
        :class:`~freqrex.errors.ParameterError` says so; ``extra``: further fields of ``flip.json`` (the command
        line's model and audio names); both are part of the save its manifest
        (``flip-manifest.json``) checks.
        """
        from ..io import save_wav

        if original is not None:  # before anything is written: an explanation of another clip stays intact
            same_original = check_beside_explanation(directory, original, self.sample_rate)
        out = begin_save(directory, "flip")  # manifest.json: incomplete now, written last
        for name in (PERTURBED_WAV, CLOSEST_WAV):
            try:
                (out / name).unlink(missing_ok=True)
            except OSError as exc:  # e.g. a folder of that name: freqrex's error, still an OSError
                from ..errors import AudioFileError

                raise AudioFileError(f"cannot replace {out / name}: {exc.strerror or exc}") from exc
        written = ["flip.json"]
        if self.success:
            save_wav(out / PERTURBED_WAV, self.audio, self.sample_rate, subtype="FLOAT")
            written.append(PERTURBED_WAV)
        elif closest_attempt and self.audio is not None and self.audio.size:
            save_wav(out / CLOSEST_WAV, self.audio, self.sample_rate, subtype="FLOAT")
            written.append(CLOSEST_WAV)
        if original is not None:
            if not same_original:  # the explanation's own original.wav, byte for byte, is left as it is
                save_wav(out / ORIGINAL_WAV, np.asarray(original), self.sample_rate, subtype="auto")
            written.append(ORIGINAL_WAV)
        write_text(out / "flip.json", json.dumps(self.summary_with(extra), indent=2))
        finish_save(out, "flip", written)
        return out

    @classmethod
    def load(cls, directory: "os.PathLike[str] | str") -> "FlipResult":
        """Read a flip written by :meth:`save`: the audio is ``perturbed.wav`` for a flip,
        ``closest_attempt.wav`` for a failed one when it was written, else empty.

        Raises :class:`~freqrex.errors.ResultFileError` (an AudioFileError) for a folder that
        is not a complete save: interrupted, changed since, or malformed.
        """
        with reading_saved(directory, "flip"):
            check_saved(directory, "flip")
            return cls._load(directory)

    @classmethod
    def _load(cls, directory: "os.PathLike[str] | str") -> "FlipResult":
        import soundfile as sf

        from ..errors import AudioFileError

        d = Path(directory)
        try:
            s = read_json(d / "flip.json")
            wav = d / (PERTURBED_WAV if s.get("success") else CLOSEST_WAV)
            if s.get("success") or wav.exists():
                audio, _ = sf.read(str(wav), dtype="float32")
            else:
                audio = np.zeros(0, dtype=np.float32)
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
