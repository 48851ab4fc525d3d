"""Reading, fitting and writing audio.

Decoding uses the ``soundfile`` wheel, which bundles libsndfile 1.2.2: WAV,
FLAC, OGG/Vorbis, Opus and MP3 load without ffmpeg.  Resampling uses
:func:`scipy.signal.resample_poly`.
"""

from __future__ import annotations

import math
import numbers
import os
from fractions import Fraction
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
import soundfile as sf

from ._atomic import atomic_writer
from .errors import AudioFileError, ParameterError

__all__ = ["load_audio", "resample", "fit_length", "save_wav", "demo_clip", "DEMO_CLIP_PATH"]

PathLike = Union[str, "os.PathLike[str]"]

#: Path of the demo clip shipped with freqrex (30 s, 16 kHz, mono FLAC).
DEMO_CLIP_PATH = Path(__file__).resolve().parent / "data" / "demo.flac"

_FIT_POLICIES = ("center", "start")
_WAV_SUBTYPES = ("PCM_16", "FLOAT")


def _check_rate(value, name: str = "sample_rate") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ParameterError(f"{name} must be a positive integer (Hz), got {value!r}")
    return int(value)


def _check_seconds(value, name: str, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(f"{name} must be a number of seconds, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ParameterError(f"{name} must be finite and {bound} seconds, got {value!r}")
    return value


def load_audio(
    path: PathLike,
    *,
    sample_rate: Optional[int] = None,
    mono: bool = True,
    duration: Optional[float] = None,
    offset: float = 0.0,
) -> Tuple[np.ndarray, int]:
    """Load an audio file as float32 samples in [-1, 1].

    Parameters
    ----------
    path : str or os.PathLike
        Any file the bundled libsndfile decodes: WAV, FLAC, OGG/Vorbis,
        Opus, MP3, AIFF and more.
    sample_rate : int, optional
        Resample to this rate (Hz); None keeps the file's rate.  See
        :func:`resample` for the filter used.
    mono : bool, default True
        Mix all channels to one by averaging them.  With False the result
        has shape ``(channels, samples)`` (also for a mono file).
    duration : float, optional
        Read at most this many seconds (None: to the end of the file).
    offset : float, default 0.0
        Start reading this many seconds into the file.

    Returns
    -------
    audio : numpy.ndarray of float32
        Shape ``(samples,)`` when `mono`, else ``(channels, samples)``.
    sample_rate : int
        The rate of `audio` (the requested one, or the file's).

    Raises
    ------
    AudioFileError
        The file is missing, unreadable, cannot be decoded, holds no samples
        in the requested range, or holds non-finite samples.
    ParameterError
        A bad `sample_rate`, `duration` or `offset`.
    """
    if sample_rate is not None:
        sample_rate = _check_rate(sample_rate)
    offset = _check_seconds(offset, "offset", allow_zero=True)
    if duration is not None:
        duration = _check_seconds(duration, "duration", allow_zero=False)
    try:
        path = os.fspath(path)
    except TypeError as exc:
        raise ParameterError(f"path must be a str or os.PathLike, got {type(path).__name__}") from exc
    if not os.path.exists(path):
        raise AudioFileError(f"audio file not found: {path}")
    if os.path.isdir(path):
        raise AudioFileError(f"audio path is a directory, not a file: {path}")

    try:
        with sf.SoundFile(path) as f:
            file_rate = int(f.samplerate)
            start = int(round(offset * file_rate))
            if start > 0:
                if f.frames > 0 and start >= f.frames:
                    raise AudioFileError(
                        f"offset {offset} s is at or past the end of {path} "
                        f"({f.frames / file_rate:.3f} s)"
                    )
                f.seek(start)
            frames = -1 if duration is None else max(1, int(round(duration * file_rate)))
            data = f.read(frames, dtype="float32", always_2d=True)
    except AudioFileError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as exc:
        raise AudioFileError(f"cannot decode audio file {path}: {exc}") from exc

    if data.shape[0] == 0:
        raise AudioFileError(f"no audio samples read from {path} (offset {offset} s)")
    if not np.isfinite(data).all():
        raise AudioFileError(f"audio file {path} contains NaN or infinite samples")

    audio = data.mean(axis=1, dtype=np.float32) if mono else np.ascontiguousarray(data.T)
    if sample_rate is not None and sample_rate != file_rate:
        audio = resample(audio, file_rate, sample_rate)
        rate = sample_rate
    else:
        rate = file_rate
    return audio.astype(np.float32, copy=False), rate


def resample(audio: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample along the last axis with a polyphase FIR filter.

    The factor is the exact rational ``target_rate / orig_rate`` reduced by
    their greatest common divisor (44.1 kHz -> 16 kHz is up 160, down 441),
    applied by :func:`scipy.signal.resample_poly` with scipy's default
    anti-aliasing filter: a Kaiser-windowed sinc FIR (``window=("kaiser",
    5.0)``), cut off at the lower of the two Nyquist frequencies, with zero
    padding at the edges.  The output has ``ceil(n * up / down)`` samples.

    Parameters
    ----------
    audio : numpy.ndarray
        Samples, time on the last axis.
    orig_rate, target_rate : int
        Sample rates in Hz.

    Returns
    -------
    numpy.ndarray of float32
    """
    orig_rate = _check_rate(orig_rate, "orig_rate")
    target_rate = _check_rate(target_rate, "target_rate")
    audio = np.asarray(audio, dtype=np.float32)
    if orig_rate == target_rate:
        return audio.copy()
    from scipy.signal import resample_poly  # imported here: scipy.signal is slow to import

    factor = Fraction(target_rate, orig_rate)  # reduced by the gcd
    out = resample_poly(audio, factor.numerator, factor.denominator, axis=-1)
    return out.astype(np.float32, copy=False)


def fit_length(audio: np.ndarray, n_samples: int, *, policy: str = "center") -> np.ndarray:
    """Crop or zero-pad audio to exactly `n_samples` along the last axis.

    Parameters
    ----------
    audio : numpy.ndarray
        Samples, time on the last axis (1-D, or batched/multi-channel).
    n_samples : int
        Length wanted.
    policy : {"center", "start"}, default "center"
        Which part to keep when `audio` is longer: ``"center"`` keeps the
        middle `n_samples` (starting at ``(len - n_samples) // 2``),
        ``"start"`` keeps the first `n_samples`.  Shorter audio is always
        zero-padded at the end, whatever the policy.

    Returns
    -------
    numpy.ndarray
        A new array (never a view of `audio`), same dtype.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples <= 0:
        raise ParameterError(f"n_samples must be a positive integer, got {n_samples!r}")
    if policy not in _FIT_POLICIES:
        raise ParameterError(f"policy must be one of {_FIT_POLICIES}, got {policy!r}")
    audio = np.asarray(audio)
    if audio.ndim == 0:
        raise ParameterError("audio must have at least one dimension")
    n = audio.shape[-1]
    n_samples = int(n_samples)
    if n == n_samples:
        return audio.copy()
    if n > n_samples:
        start = (n - n_samples) // 2 if policy == "center" else 0
        return audio[..., start : start + n_samples].copy()
    pad = [(0, 0)] * (audio.ndim - 1) + [(0, n_samples - n)]
    return np.pad(audio, pad)


def save_wav(
    path: PathLike,
    audio: np.ndarray,
    sample_rate: int,
    *,
    subtype: str = "PCM_16",
    normalize: bool = False,
) -> Path:
    """Write a WAV file atomically.

    The data go to a temporary file in the destination's directory, which
    then replaces `path` with :func:`os.replace`: readers never see a
    half-written file and a failed write leaves any existing file as it was.

    Parameters
    ----------
    path : str or os.PathLike
        Destination; its directory must exist.  An existing file is replaced
        (keeping its permission bits); a new file gets mode 0o644.
    audio : numpy.ndarray
        Float samples, shape ``(samples,)`` or ``(channels, samples)``.
    sample_rate : int
        Sample rate in Hz.
    subtype : {"PCM_16", "FLOAT"}, default "PCM_16"
        ``"PCM_16"``, for listening: 16-bit integer PCM; samples outside
        [-1, 1] are clipped to full scale (not wrapped), so loud audio
        distorts unless `normalize` is set.  ``"FLOAT"``: 32-bit float PCM,
        stored exactly, never clipped.
    normalize : bool, default False
        Scale the audio so that its peak absolute value is 1.0 (silence is
        left as it is).  Off by default so that levels stay comparable
        between files.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ParameterError
        Bad audio (empty, wrong rank, NaN or infinite samples) or options.
    AudioFileError
        The file cannot be written.
    """
    sample_rate = _check_rate(sample_rate)
    if subtype not in _WAV_SUBTYPES:
        raise ParameterError(f"subtype must be one of {_WAV_SUBTYPES}, got {subtype!r}")
    data = np.asarray(audio)
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise ParameterError(f"audio must be a real numeric array, got dtype {data.dtype}")
    data = data.astype(np.float32)
    if data.ndim not in (1, 2) or data.size == 0:
        raise ParameterError(
            f"audio must be a non-empty array of shape (samples,) or (channels, samples), got {data.shape}"
        )
    if not np.isfinite(data).all():
        raise ParameterError("audio contains NaN or infinite samples")
    if normalize:
        peak = float(np.max(np.abs(data)))
        if peak > 0:
            data = data / np.float32(peak)
    if subtype == "PCM_16":
        data = np.clip(data, -1.0, 1.0)
    frames = data.T if data.ndim == 2 else data  # soundfile wants (frames, channels)

    try:
        path = Path(os.fspath(path))
    except TypeError as exc:
        raise ParameterError(f"path must be a str or os.PathLike, got {type(path).__name__}") from exc
    try:
        with atomic_writer(path) as fh:
            sf.write(fh, frames, sample_rate, subtype=subtype, format="WAV")
    except (OSError, RuntimeError) as exc:
        raise AudioFileError(f"cannot write {path}: {exc}") from exc
    return path


def demo_clip(*, sample_rate: Optional[int] = None) -> Tuple[np.ndarray, int]:
    """Load the demo clip shipped with freqrex.

    A 30 s excerpt of "nostalgic_electronic_s411" from the MIT-licensed PyPI
    package ``immich-memories-music`` 0.1.0 (generated music: electronic,
    84 bpm, G minor), mixed to mono and resampled to 16 kHz; see
    ``freqrex/data/DEMO-ATTRIBUTION.txt``.

    Parameters
    ----------
    sample_rate : int, optional
        Resample to this rate (default: the stored 16 kHz).

    Returns
    -------
    audio : numpy.ndarray of float32, shape (480000,) at 16 kHz
    sample_rate : int
    """
    return load_audio(DEMO_CLIP_PATH, sample_rate=sample_rate)
