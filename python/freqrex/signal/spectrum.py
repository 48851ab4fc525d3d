"""Validation, the freqrex STFT, the normalised PSD and the SNR (NumPy only).

The calibration: the loudest STFT cell of a clip reads :data:`REFERENCE_PEAK_DB`
(96 dB SPL), one constant for the whole clip (Qin et al. 2019), see
:mod:`freqrex.signal.masking`.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Tuple

import numpy as np

from .. import _stft
from .._checks import check_int
from ..errors import ParameterError

__all__ = [
    "FULL_SCALE_OFFSET_DB",
    "PSD_FLOOR_DB",
    "REFERENCE_PEAK_DB",
    "as_audio",
    "power_spectrum_db",
    "snr_db",
    "stft",
]

#: Level (dB SPL) given to the loudest STFT cell of a clip.
REFERENCE_PEAK_DB = 96.0

#: PSD offset (dB) at which a full-scale sine on a bin centre reads 96 dB:
#: ``|X / n_fft| = 1/4`` for such a sine under the periodic Hann window, so the
#: offset is ``96 - 20 log10(1/4)`` (about 108.04 dB).  Used for silent clips.
FULL_SCALE_OFFSET_DB = REFERENCE_PEAK_DB - 20.0 * math.log10(0.25)


#: Lowest PSD value reported (dB); exact zeros and negligible cells read this.
PSD_FLOOR_DB = -200.0

# ---------------------------------------------------------------------------
# validation helpers


def as_audio(audio, name: str = "audio") -> np.ndarray:
    try:
        x = np.asarray(audio)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ParameterError(f"{name} must be an array of samples") from exc
    if x.dtype == object or np.iscomplexobj(x) or not np.issubdtype(x.dtype, np.number):
        raise ParameterError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if x.ndim != 1:
        raise ParameterError(f"{name} must be 1-D (samples,), got shape {x.shape}")
    if x.size == 0:
        raise ParameterError(f"{name} is empty")
    x = x.astype(np.float64, copy=False)
    if not np.all(np.isfinite(x)):
        raise ParameterError(f"{name} contains NaN or infinite samples")
    return x


def check_fft(n_fft, hop_length) -> Tuple[int, int]:
    """``n_fft`` in ``4..=MAX_N_FFT`` (the bound of :class:`freqrex.ExplainOptions`) and
    ``hop_length`` in ``1..=n_fft // 2``, or ParameterError."""
    from ..options import MAX_N_FFT

    n_fft = check_int(n_fft, "n_fft", 4, MAX_N_FFT)
    hop_length = check_int(hop_length, "hop_length", 1, n_fft // 2)
    return n_fft, hop_length


#: Lowest sample rate (Hz) the psychoacoustic functions accept: what :func:`freqrex.explain` and
#: :func:`freqrex.io.load_audio` accept (a positive whole number of Hz is at least 1).
MIN_SAMPLE_RATE = 1.0


def check_rate(sample_rate) -> float:
    """A finite sample rate (Hz) of at least :data:`MIN_SAMPLE_RATE`, or ParameterError."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Real):
        raise ParameterError(f"sample_rate must be a positive number (Hz), got {sample_rate!r}")
    rate = float(sample_rate)
    if not math.isfinite(rate) or rate <= 0:
        raise ParameterError(f"sample_rate must be a positive number (Hz), got {sample_rate!r}")
    if rate < MIN_SAMPLE_RATE:
        raise ParameterError(f"sample_rate must be at least {MIN_SAMPLE_RATE:g} Hz, got {sample_rate!r}")
    return rate


def _real_samples(values, name: str) -> np.ndarray:
    """Real samples as float64 (any shape), or ParameterError (strings that are not numbers,
    objects, complex values)."""
    try:
        if np.iscomplexobj(values):
            raise ParameterError(f"{name} must hold real numbers, not complex ones")
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, ParameterError):
            raise
        raise ParameterError(f"{name} must be an array of real samples: {exc}") from None


def check_finite(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ParameterError(f"{name} must be a finite number, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------
# STFT and PSD


def stft(audio, *, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Short-time Fourier transform in the freqrex convention.

    The window is the periodic Hann window ``w[n] = 0.5 - 0.5 cos(2 pi n /
    n_fft)``.  Frames are centred: ``n_fft // 2`` zeros are put before the
    clip, there are ``n_frames = 1 + len(audio) // hop_length`` frames, and
    zeros are appended so that the padded signal has ``(n_frames - 1) *
    hop_length + n_fft`` samples.  Frame ``t`` is ``rfft(w * padded[t * hop :
    t * hop + n_fft])`` with no normalisation.  Weighted overlap-add with the
    same window, divided by the overlap-added squared window, inverts it
    exactly.

    Parameters
    ----------
    audio : array_like
        Real samples, shape ``(samples,)``, finite.
    n_fft : int, default 2048
        Frame (and FFT) length, in ``4..=MAX_N_FFT`` (65536, as
        :func:`freqrex.explain` accepts).
    hop_length : int, default 512
        Frame step, in ``1..=n_fft // 2`` (the range in which the STFT is
        invertible).

    Returns
    -------
    numpy.ndarray
        Complex128 array of shape ``(n_frames, n_fft // 2 + 1)``.

    Raises
    ------
    ParameterError
        If `audio` is empty, not 1-D or not finite, or an option is invalid.
    """
    x = as_audio(audio)
    n_fft, hop_length = check_fft(n_fft, hop_length)
    return _stft.stft(x, n_fft, hop_length)


def power_spectrum_db(
    stft_matrix, n_fft: int, *, reference: Optional[float] = None
) -> Tuple[np.ndarray, float]:
    """Normalised power spectral density (dB) of an STFT, as in Qin et al.

    The PSD is ``10 log10(|X / n_fft|^2) + offset``.  With ``reference=None``
    the offset is chosen per clip (one constant for all frames) so that the
    largest value of the matrix is :data:`REFERENCE_PEAK_DB` (96 dB):
    ``offset = 96 - max(10 log10(|X / n_fft|^2))``.  With this calibration a
    full-scale sine reads about 96 dB (exactly when it is loudest in the clip
    and centred on a bin).  An all-zero matrix gets :data:`FULL_SCALE_OFFSET_DB`.

    To compare a perturbation with the original, compute the original's PSD
    first and pass its offset as `reference` for the perturbation's STFT.

    Parameters
    ----------
    stft_matrix : array_like
        STFT coefficients, e.g. from :func:`stft`, shape ``(n_frames, bins)``
        (any shape is accepted).
    n_fft : int
        FFT length used for the STFT (the PSD divides ``X`` by it).
    reference : float, optional
        Offset (dB) to apply instead of the per-clip one.

    Returns
    -------
    psd_db : numpy.ndarray
        PSD in dB, same shape as `stft_matrix`, floored at
        :data:`PSD_FLOOR_DB` (exact zeros read the floor).
    offset_db : float
        The offset that was added.

    Raises
    ------
    ParameterError
        If `n_fft` or `reference` is invalid or the matrix is not finite.
    """
    n_fft = check_int(n_fft, "n_fft", 1)
    spec = np.asarray(stft_matrix)
    if spec.size == 0:
        raise ParameterError("stft_matrix is empty")
    if not np.all(np.isfinite(spec)):
        raise ParameterError("stft_matrix contains NaN or infinite values")
    scaled = spec.astype(np.complex128, copy=False) / n_fft
    with np.errstate(over="ignore"):
        power = np.abs(scaled) ** 2
    with np.errstate(divide="ignore"):
        raw = 10.0 * np.log10(power)
    huge = np.isinf(power)
    if huge.any():  # |X / n_fft|^2 beyond the float range: the same level, from scaled parts
        raw[huge] = _level_db(scaled[huge])
    if reference is None:
        peak = float(np.max(raw))
        offset = FULL_SCALE_OFFSET_DB if peak == -np.inf else REFERENCE_PEAK_DB - peak
    else:
        offset = check_finite(reference, "reference")
    return np.maximum(raw + offset, PSD_FLOOR_DB), offset



def _level_db(values: np.ndarray) -> np.ndarray:
    """``10 log10(|v|^2)`` of finite complex values whose square overflows, without overflow."""
    v = np.asarray(values, dtype=np.complex128)
    top = np.maximum(np.abs(v.real), np.abs(v.imag))
    re, im = v.real / top, v.imag / top
    return 20.0 * np.log10(top) + 10.0 * np.log10(re * re + im * im)


def _energy_db(v: np.ndarray) -> float:
    """``10 log10(sum(v^2))`` of finite samples, scaled so that it neither overflows nor underflows
    (``-inf`` for all zeros)."""
    top = float(np.max(np.abs(v)))
    if top == 0.0:
        return -math.inf
    u = v / top
    return 20.0 * math.log10(top) + 10.0 * math.log10(float(np.sum(u * u)))


def snr_db(original, perturbed) -> float:
    """Signal-to-noise ratio of a perturbation, in dB.

    ``10 log10(sum(x^2) / sum((x' - x)^2))``; ``inf`` when the signals are
    identical, ``-inf`` when the original is silent and the perturbed is not.
    Sums that would overflow or underflow (samples near 1e200 or 1e-200) are
    taken from scaled samples, so the result is never NaN.

    Parameters
    ----------
    original, perturbed : array_like
        Real samples of the same shape.

    Returns
    -------
    float
        SNR in dB.

    Raises
    ------
    ParameterError
        If the shapes differ or the samples are empty, not finite or not real
        numbers.
    """
    x = _real_samples(original, "original")
    y = _real_samples(perturbed, "perturbed")
    if x.shape != y.shape:
        raise ParameterError(f"original and perturbed differ in shape: {x.shape} vs {y.shape}")
    if x.size == 0:
        raise ParameterError("audio is empty")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ParameterError("audio contains NaN or infinite samples")
    with np.errstate(over="ignore", under="ignore"):
        d = y - x
        signal = float(np.sum(x * x))
        noise = float(np.sum(d * d))
    if not np.any(d):  # identical (d is exact: y - x is zero only where y == x)
        return math.inf
    if not np.any(x):
        return -math.inf
    if 0.0 < signal < math.inf and 0.0 < noise < math.inf:
        return 10.0 * math.log10(signal / noise)
    # the sums overflow or underflow: the same ratio from scaled samples (y - x from halves when it
    # overflows itself)
    if np.all(np.isfinite(d)):
        noise_db = _energy_db(d)
    else:
        noise_db = _energy_db(y * 0.5 - x * 0.5) + 20.0 * math.log10(2.0)
    return _energy_db(x) - noise_db
