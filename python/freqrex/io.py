"""Reading, fitting and writing audio.

Decoding uses the ``soundfile`` wheel, which bundles libsndfile 1.2.2: WAV,
FLAC, OGG/Vorbis, Opus and MP3 load without ffmpeg.  Resampling uses
:func:`scipy.signal.resample_poly` (through the spectrum for pathological
pairs of rates, see :func:`resample`).
"""

from __future__ import annotations

import math
import numbers
import os
import re
import stat
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Optional, Tuple, Union

import numpy as np
import soundfile as sf

from ._atomic import atomic_writer
from ._checks import MAX_ABS_SAMPLE, MAX_SAMPLE_RATE
from .errors import AudioFileError, FreqrexWarning, ParameterError

__all__ = ["load_audio", "resample", "fit_length", "save_wav", "demo_clip", "DEMO_CLIP_PATH"]

PathLike = Union[str, "os.PathLike[str]"]

#: Path of the demo clip shipped with freqrex (30 s, 16 kHz, mono FLAC).
DEMO_CLIP_PATH = Path(__file__).resolve().parent / "data" / "demo.flac"

#: Most samples (frames x channels) :func:`load_audio` decodes from one file (256 MiB of
#: float32; 70 minutes of 16 kHz mono); use ``duration``/``offset`` to read a part of a longer file.
MAX_DECODED_SAMPLES = 1 << 26
#: Most channels :func:`load_audio` accepts.
MAX_CHANNELS = 256
_BLOCK_FRAMES = 1 << 16
_SHOULD_BE = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)

_FIT_POLICIES = ("center", "start")
_WAV_SUBTYPES = ("PCM_16", "FLOAT", "auto")


def _check_rate(value, name: str = "sample_rate") -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 < value <= MAX_SAMPLE_RATE:
        raise ParameterError(f"{name} must be a positive integer (Hz) up to {MAX_SAMPLE_RATE}, got {value!r}")
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
        The file is missing, not a regular file (a named pipe would block),
        unreadable, cannot be decoded, holds no samples in the requested
        range, holds non-finite samples or samples beyond 1e6, or its header
        declares a sample rate, channel count or length beyond the limits
        (:data:`MAX_DECODED_SAMPLES` samples to decode, 1.536 MHz, 256
        channels), checked before anything is decoded.
    ParameterError
        A bad `sample_rate`, `duration` or `offset`.

    Warns
    -----
    FreqrexWarning
        The file is truncated (its header declares more audio data than it
        holds); the samples present are returned.

    Notes
    -----
    Integer PCM is scaled to [-1, 1) by libsndfile (divided by its full
    scale); float files are read as stored.
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
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise AudioFileError(f"audio file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise AudioFileError(f"cannot open audio file {path}: {exc}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise AudioFileError(f"audio path is a directory, not a file: {path}")
    if not stat.S_ISREG(st.st_mode):
        # A named pipe would block the read forever; a device has no end.
        raise AudioFileError(f"audio path is not a regular file (a named pipe, device or socket): {path}")

    try:
        with sf.SoundFile(path) as f:
            file_rate = int(f.samplerate)
            data = _read_checked(f, path, offset, duration)
            declared = _declared_shortfall(f)
    except AudioFileError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError, OverflowError, MemoryError) as exc:
        raise AudioFileError(f"cannot decode audio file {path}: {exc}") from exc
    if declared is not None:
        warnings.warn(
            f"audio file {path} is truncated: its header declares {declared[0]} bytes of audio data, "
            f"the file holds {declared[1]}; loaded the {data.shape[0] / file_rate:.3f} s present",
            FreqrexWarning,
            stacklevel=2,
        )

    if data.shape[0] == 0:
        raise AudioFileError(f"no audio samples read from {path} (offset {offset} s)")
    if not np.isfinite(data).all():
        raise AudioFileError(f"audio file {path} contains NaN or infinite samples")
    peak = float(np.max(np.abs(data)))
    if peak > MAX_ABS_SAMPLE:
        raise AudioFileError(f"audio file {path} holds samples up to {peak:.3g}; audio is expected in [-1, 1]")

    audio = data.mean(axis=1, dtype=np.float32) if mono else np.ascontiguousarray(data.T)
    if sample_rate is not None and data.size * sample_rate / file_rate > MAX_DECODED_SAMPLES:
        raise AudioFileError(
            f"resampling {path} from {file_rate} Hz to {sample_rate} Hz would make more than "
            f"{MAX_DECODED_SAMPLES} samples; pass a shorter duration="
        )
    if sample_rate is not None and sample_rate != file_rate:
        audio = resample(audio, file_rate, sample_rate)
        rate = sample_rate
    else:
        rate = file_rate
    return audio.astype(np.float32, copy=False), rate


def _read_checked(f: "sf.SoundFile", path: str, offset: float, duration: Optional[float]) -> np.ndarray:
    """Read (frames, channels) float32 from an open file after checking what its header
    declares (rate, channels, length) against the limits; decode in blocks so that
    memory follows the data present, not the header's claim."""
    file_rate, channels, declared = int(f.samplerate), int(f.channels), int(f.frames)
    if not 0 < file_rate <= MAX_SAMPLE_RATE:
        raise AudioFileError(f"audio file {path} declares a sample rate of {file_rate} Hz (at most {MAX_SAMPLE_RATE})")
    if not 0 < channels <= MAX_CHANNELS:
        raise AudioFileError(f"audio file {path} declares {channels} channels (at most {MAX_CHANNELS})")
    start = int(round(offset * file_rate))
    if declared >= 0 and start > 0 and start >= declared:
        raise AudioFileError(
            f"offset {offset} s is at or past the end of {path} ({declared / file_rate:.3f} s)"
        )
    wanted = declared - start if declared >= 0 else None
    if duration is not None:
        frames = max(1, int(round(duration * file_rate)))
        wanted = frames if wanted is None else min(wanted, frames)
    if wanted is None or wanted * channels > MAX_DECODED_SAMPLES:
        raise AudioFileError(
            f"audio file {path} declares {'an unknown number of' if wanted is None else wanted} frames of "
            f"{channels} channel(s) to read, more than the {MAX_DECODED_SAMPLES} samples load_audio decodes "
            "at once; pass duration= (and offset=) to read a part"
        )
    if start > 0:
        f.seek(start)
    blocks = []
    got = 0
    while got < wanted:
        block = f.read(min(_BLOCK_FRAMES, wanted - got), dtype="float32", always_2d=True)
        if block.shape[0] == 0:
            break
        blocks.append(block)
        got += block.shape[0]
    if not blocks:
        return np.zeros((0, channels), np.float32)
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def _declared_shortfall(f: "sf.SoundFile") -> Optional[Tuple[int, int]]:
    """(declared, present) bytes of audio data when libsndfile saw a header claiming
    more data than the file holds (a truncated file), else None."""
    try:
        m = _SHOULD_BE.search(f.extra_info)
    except Exception:  # extra_info is best-effort diagnostics
        return None
    if m is None or int(m.group(2)) >= int(m.group(1)):
        return None
    return int(m.group(1)), int(m.group(2))


#: Largest up or down factor (of the reduced ratio ``target_rate / orig_rate``) resampled with the
#: polyphase filter, whose length grows with it (20 taps per unit of the larger factor): every pair of
#: the usual rates (8 kHz to 192 kHz, both 44.1 kHz and 48 kHz families) lies far below it.
MAX_POLYPHASE_FACTOR = 1 << 14


def resample(audio: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Resample along the last axis.

    The factor is the exact rational ``target_rate / orig_rate`` reduced by
    their greatest common divisor (44.1 kHz -> 16 kHz is up 160, down 441),
    applied by :func:`scipy.signal.resample_poly` with scipy's default
    anti-aliasing filter: a Kaiser-windowed sinc FIR (``window=("kaiser",
    5.0)``), cut off at the lower of the two Nyquist frequencies, with zero
    padding at the edges.  The output has ``ceil(n * up / down)`` samples.

    That filter has about ``20 * max(up, down)`` taps, so a pathological pair
    of rates (coprime ones: 1,535,999 Hz -> 16 kHz is up 16000, down
    1,535,999, a 30-million-tap filter) would cost time and memory out of all
    proportion to the clip.  When ``max(up, down)`` exceeds
    :data:`MAX_POLYPHASE_FACTOR` (16384; no pair of the usual rates comes
    near it) the clip is resampled instead through its spectrum
    (:func:`scipy.signal.resample`: the rFFT truncated or zero-padded at the
    lower Nyquist frequency, which treats the clip as periodic): the ratio is
    still exact, the length still ``ceil(n * up / down)``, and the cost
    ``O(m log m)`` for ``m`` the longer of input and output.

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
    factor = Fraction(target_rate, orig_rate)  # reduced by the gcd
    up, down = factor.numerator, factor.denominator
    if max(up, down) > MAX_POLYPHASE_FACTOR:
        return _resample_spectral(audio, up, down)
    from scipy.signal import resample_poly  # imported here: scipy.signal is slow to import

    out = resample_poly(audio, up, down, axis=-1)
    return out.astype(np.float32, copy=False)


def _resample_spectral(audio: np.ndarray, up: int, down: int) -> np.ndarray:
    """Resample by ``up / down`` through the rFFT (see :func:`resample`), to ``ceil(n * up / down)`` samples."""
    if audio.ndim == 0:
        raise ParameterError("audio must have at least one dimension")
    n = audio.shape[-1]
    n_out = -(-n * up // down)
    if n == 0 or n_out == 0:
        return np.zeros(audio.shape[:-1] + (n_out,), dtype=np.float32)
    from scipy.signal import resample as fft_resample

    out = fft_resample(audio.astype(np.float64), n_out, axis=-1)
    return np.asarray(out, dtype=np.float32)


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
    subtype : {"PCM_16", "FLOAT", "auto"}, default "PCM_16"
        ``"PCM_16"``, for listening: 16-bit integer PCM; samples outside
        [-1, 1] are clipped to full scale (not wrapped), so loud audio
        distorts unless `normalize` is set.  ``"FLOAT"``: 32-bit float PCM,
        stored exactly, never clipped.  ``"auto"`` (what freqrex's own saves
        use): ``"PCM_16"`` for audio within [-1, 1], ``"FLOAT"`` for louder
        audio, which 16 bits would clip.
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
    data = wav_bytes(audio, sample_rate, subtype=subtype, normalize=normalize)
    try:
        path = Path(os.fspath(path))
    except TypeError as exc:
        raise ParameterError(f"path must be a str or os.PathLike, got {type(path).__name__}") from exc
    try:
        with atomic_writer(path) as fh:
            fh.write(data)
    except AudioFileError:
        raise  # from atomic_writer: already says which file
    except OSError as exc:
        raise AudioFileError(f"cannot write {path}: {exc}") from exc
    return path


def wav_bytes(audio: np.ndarray, sample_rate: int, *, subtype: str = "PCM_16", normalize: bool = False) -> bytes:
    """The bytes :func:`save_wav` writes for the same arguments: the same audio gives the same bytes
    (libsndfile's PEAK chunk of a float file, which holds the time of writing, is left out)."""
    import io as _io

    frames, sample_rate, subtype = _wav_frames(audio, sample_rate, subtype, normalize)
    buf = _io.BytesIO()
    try:
        sf.write(buf, frames, sample_rate, subtype=subtype, format="WAV")
    except RuntimeError as exc:  # libsndfile's refusal (e.g. a size beyond what a WAV file holds)
        raise ParameterError(f"cannot encode the audio as WAV: {exc}") from exc
    return _without_chunk(buf.getvalue(), b"PEAK")


def _without_chunk(data: bytes, chunk: bytes) -> bytes:
    """A RIFF/WAVE file's bytes without its ``chunk`` chunks (the RIFF size mended); other files as they are."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return data
    parts, i = [data[:12]], 12
    while i + 8 <= len(data):
        size = int.from_bytes(data[i + 4 : i + 8], "little")
        end = min(len(data), i + 8 + size + (size & 1))
        if data[i : i + 4] != chunk:
            parts.append(data[i:end])
        i = end
    parts.append(data[i:])
    out = b"".join(parts)
    return out[:4] + (len(out) - 8).to_bytes(4, "little") + out[8:]


def _wav_frames(audio, sample_rate, subtype: str, normalize: bool) -> Tuple[np.ndarray, int, str]:
    """Checked samples as soundfile's (frames, channels), the rate and the subtype ("auto" decided)."""
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
    if subtype == "auto":
        subtype = "PCM_16" if float(np.max(np.abs(data))) <= 1.0 else "FLOAT"
    if subtype == "PCM_16":
        data = np.clip(data, -1.0, 1.0)
    return (data.T if data.ndim == 2 else data), sample_rate, subtype  # soundfile wants (frames, channels)


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
