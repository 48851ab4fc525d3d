"""freqrex's psychoacoustic masking model: is a change to a few STFT cells audible?

This module implements the simultaneous-masking part of the MPEG-1
psychoacoustic model 1 (ISO/IEC 11172-3:1993, Annex D.1; see also Painter &
Spanias, "Perceptual coding of digital audio", Proc. IEEE 88(4), 2000) in the
form adapted for adversarial audio by Qin, Carlini, Cottrell, Goodfellow &
Raffel, "Imperceptible, Robust, and Targeted Adversarial Examples for
Automatic Speech Recognition" (ICML 2019).  For every STFT frame it computes a
*global masking threshold* per frequency bin: a change whose power spectral
density stays below that threshold is predicted to be inaudible.

Pipeline (per frame, vectorised over frames)
--------------------------------------------
1. **PSD.**  ``10 log10(|X / n_fft|^2)`` of the freqrex STFT (:func:`stft`),
   shifted by one constant *per clip* so that the loudest cell of the clip
   reads 96 dB (Qin et al.: ``psd = 96 - max(psd) + psd``).  The same offset
   must be applied to a perturbation's PSD so that the two are comparable;
   :func:`power_spectrum_db` returns it and accepts it back as `reference`.
2. **Bark scale** (Zwicker & Terhardt), :func:`bark`.
3. **Absolute threshold of hearing** (Terhardt), :func:`absolute_threshold_db`,
   lowered by :data:`ATH_OFFSET_DB` (-12 dB, as in Qin et al.'s reference code).
4. **Tonal maskers**: local maxima of the PSD that exceed every line at
   distance 2..J bins by at least 7 dB, with a neighbourhood J that widens
   with Bark (the layer II table of the standard, converted from FFT lines at
   44.1 kHz to Hz and then to the bins of the actual resolution).  The
   masker's power is the power sum of the peak and its two neighbours.
5. **Noise maskers**: per critical band (one Bark wide), the power sum of the
   lines not belonging to a tonal masker's neighbourhood, placed at the bin
   nearest to the geometric mean frequency of the band.
6. **Decimation**: maskers below the absolute threshold are dropped; of any
   two maskers (tonal or noise) closer than 0.5 Bark only the stronger is kept.
7. **Individual thresholds**: masker power + offset
   (``-6.025 - 0.275 z`` for tonal, ``-2.025 - 0.175 z`` for noise maskers, z
   the masker's Bark) + the two-slope spreading function of Qin et al.: 27
   dB/Bark below the masker, ``-27 + 0.37 max(P - 40, 0)`` dB/Bark above it,
   limited to -3 <= dz < 8 Bark as in the standard.
8. **Global threshold**: power sum of the absolute threshold and all
   individual thresholds, in dB, at every FFT bin.

Reference level
---------------
The model is calibrated so that the loudest STFT cell of the *clip* is at
96 dB SPL.  A per-clip (not per-frame) constant is used because the listener
hears the whole clip at one playback volume: normalising each frame
separately would lift quiet frames (pauses) to 96 dB, make the absolute
threshold irrelevant there and wrongly allow large changes in near-silence.
An all-zero clip has no peak; for it the offset is
:data:`FULL_SCALE_OFFSET_DB`, the offset at which a full-scale sine (amplitude
1.0) centred on a bin reads 96 dB, so its threshold is the absolute threshold.

Everything here is NumPy only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .spectrum import (
    as_audio,
    check_finite,
    check_rate,
    power_spectrum_db,
    stft,
)
from ..errors import ParameterError

__all__ = [
    "ATH_OFFSET_DB",
    "MaskingThreshold",
    "absolute_threshold_db",
    "bark",
    "masking_threshold",
    "perturbation_margin_db",
]

#: Shift (dB) applied to Terhardt's absolute threshold inside the masking
#: model.  Qin et al.'s reference implementation subtracts 12 dB; a lower
#: absolute threshold is the conservative choice for an inaudibility test.
ATH_OFFSET_DB = -12.0

#: Frequency (Hz) below which the absolute threshold is held constant.
ATH_MIN_FREQUENCY_HZ = 20.0

_TONAL_MIN_EXCESS_DB = 7.0
_DECIMATION_BARK = 0.5
_SPREAD_LOW_BARK = -3.0
_SPREAD_HIGH_BARK = 8.0

# Tonal neighbourhood of ISO/IEC 11172-3 Annex D.1 (layer II, 1024-point FFT):
# lines k +- 2 for k < 63, +-2..3 for 63 <= k < 127, +-2..6 for 127 <= k < 255
# and +-2..12 above.  At 44.1 kHz one line is 44100/1024 Hz; the region limits
# and the widest offsets are kept in Hz here and turned into Bark limits and
# bin counts for the resolution in use.
_ISO_LINE_HZ = 44100.0 / 1024.0
_TONAL_REGION_LIMITS_HZ = (63 * _ISO_LINE_HZ, 127 * _ISO_LINE_HZ, 255 * _ISO_LINE_HZ)
_TONAL_REGION_WIDTH_HZ = (2 * _ISO_LINE_HZ, 3 * _ISO_LINE_HZ, 6 * _ISO_LINE_HZ, 12 * _ISO_LINE_HZ)

_CHUNK_ELEMENTS = 1 << 22  # bound on temporaries of shape (frames, maskers, bins)


@dataclass(frozen=True)
class MaskingThreshold:
    """Global masking threshold of a clip.

    Attributes
    ----------
    threshold_db : numpy.ndarray
        Global masking threshold, shape ``(n_frames, n_fft // 2 + 1)``, in dB on
        the same scale as `psd_db` (the clip's 96 dB normalisation).
    psd_db : numpy.ndarray
        The clip's normalised PSD, same shape, floored at :data:`PSD_FLOOR_DB`.
    offset_db : float
        Offset added to ``10 log10(|X / n_fft|^2)``; pass it as `reference` to
        :func:`power_spectrum_db` to put a perturbation on the same scale.
    frequencies : numpy.ndarray
        Centre frequency (Hz) of each bin, shape ``(n_fft // 2 + 1,)``.
    ath_db : numpy.ndarray
        Absolute threshold used by the model at each bin (Terhardt's curve plus
        the model's ATH offset, -12 dB by default), shape ``(n_fft // 2 + 1,)``.
    """

    threshold_db: np.ndarray
    psd_db: np.ndarray
    offset_db: float
    frequencies: np.ndarray
    ath_db: np.ndarray


# ---------------------------------------------------------------------------
# Bark scale and absolute threshold


def bark(frequencies_hz):
    """Bark (critical-band rate) of frequencies, after Zwicker & Terhardt (1980).

    ``z(f) = 13 arctan(0.00076 f) + 3.5 arctan((f / 7500)^2)``.

    Parameters
    ----------
    frequencies_hz : float or array_like
        Frequencies in Hz.

    Returns
    -------
    float or numpy.ndarray
        Bark values, same shape as the input (a float for scalar input).
    """
    f = np.asarray(frequencies_hz, dtype=np.float64)
    z = 13.0 * np.arctan(0.00076 * f) + 3.5 * np.arctan((f / 7500.0) ** 2)
    return float(z) if z.ndim == 0 else z


def absolute_threshold_db(frequencies_hz, *, min_frequency_hz: float = ATH_MIN_FREQUENCY_HZ):
    """Absolute threshold of hearing (dB SPL), Terhardt's approximation (1979).

    ``ATH(f) = 3.64 (f/1000)^-0.8 - 6.5 exp(-0.6 (f/1000 - 3.3)^2)
    + 1e-3 (f/1000)^4``.

    The formula diverges at 0 Hz, so frequencies below `min_frequency_hz`
    (20 Hz, the conventional lower limit of hearing, where the curve is about
    83 dB) are evaluated at `min_frequency_hz`: the curve is held flat below
    it.  This is the plain Terhardt curve; the masking model adds
    :data:`ATH_OFFSET_DB` to it.

    Parameters
    ----------
    frequencies_hz : float or array_like
        Frequencies in Hz, finite and >= 0.
    min_frequency_hz : float, default 20.0
        Frequency below which the threshold is held constant (> 0).

    Returns
    -------
    float or numpy.ndarray
        Threshold in dB SPL, same shape as the input.

    Raises
    ------
    ParameterError
        If a frequency is negative or not finite, or `min_frequency_hz` <= 0.
    """
    floor = check_finite(min_frequency_hz, "min_frequency_hz")
    if floor <= 0:
        raise ParameterError(f"min_frequency_hz must be > 0, got {min_frequency_hz!r}")
    f = np.asarray(frequencies_hz, dtype=np.float64)
    if not np.all(np.isfinite(f)) or np.any(f < 0):
        raise ParameterError("frequencies must be finite and >= 0 Hz")
    khz = np.maximum(f, floor) / 1000.0
    ath = 3.64 * khz**-0.8 - 6.5 * np.exp(-0.6 * (khz - 3.3) ** 2) + 1e-3 * khz**4
    return float(ath) if ath.ndim == 0 else ath


# ---------------------------------------------------------------------------
# the masking model


def _tonal_neighbourhood(z: np.ndarray, bin_hz: float) -> np.ndarray:
    """Widest offset J (in bins, >= 2) of the tonal test at each bin."""
    limits = bark(np.asarray(_TONAL_REGION_LIMITS_HZ))
    width_hz = np.asarray(_TONAL_REGION_WIDTH_HZ)[np.searchsorted(limits, z, side="right")]
    return np.maximum(2, np.rint(width_hz / bin_hz)).astype(np.int64)


def _db_sum(values_db: np.ndarray, axis: int) -> np.ndarray:
    """Power sum in dB, ``10 log10(sum 10^(v/10))``, stable for large values."""
    top = np.max(values_db, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        total = np.sum(10.0 ** ((values_db - top) / 10.0), axis=axis, keepdims=True)
        out = top + 10.0 * np.log10(total)
    return np.squeeze(out, axis=axis)


def _pack(frame_index: np.ndarray, n_frames: int, *columns):
    """Scatter per-masker values into per-frame rows padded with NaN/False."""
    order = np.argsort(frame_index, kind="stable")
    counts = np.bincount(frame_index, minlength=n_frames)
    width = int(counts.max()) if counts.size else 0
    starts = np.cumsum(counts) - counts
    slot = np.empty(frame_index.size, dtype=np.int64)
    slot[order] = np.arange(frame_index.size) - starts[frame_index[order]]
    packed = []
    for col in columns:
        fill = False if col.dtype == bool else (-1 if np.issubdtype(col.dtype, np.integer) else np.nan)
        arr = np.full((n_frames, width), fill, dtype=col.dtype)
        arr[frame_index, slot] = col
        packed.append(arr)
    return width, packed


def _global_threshold(psd: np.ndarray, freqs: np.ndarray, ath: np.ndarray, *, noise_maskers: bool = True) -> np.ndarray:
    """Global masking threshold (dB) of PSD frames ``(F, K)`` (MPEG-1 model 1; without the noise
    maskers when asked, as scripts/compare_masking_threshold.py measures)."""
    n_frames, n_bins = psd.shape
    if n_frames == 0:
        return np.empty((0, n_bins))
    z = bark(freqs)
    lin = 10.0 ** (psd / 10.0)
    reach = _tonal_neighbourhood(z, float(freqs[1] - freqs[0]))

    # --- tonal maskers: local maxima >= 7 dB above lines k +- 2..J(k)
    tonal = np.zeros((n_frames, n_bins), dtype=bool)
    tonal[:, 1:-1] = (psd[:, 1:-1] > psd[:, :-2]) & (psd[:, 1:-1] >= psd[:, 2:])
    # beyond n_bins - 1 every line compared is padding (-inf) and passes: the widest offset that
    # can matter is n_bins - 1, whatever the resolution (a low sample rate makes reach huge)
    far = int(min(int(reach.max()), max(n_bins - 1, 2)))
    ext = np.full((n_frames, n_bins + 2 * far), -np.inf)
    ext[:, far : far + n_bins] = psd
    for j in range(2, far + 1):
        active = reach >= j
        left = ext[:, far - j : far - j + n_bins]
        right = ext[:, far + j : far + j + n_bins]
        ok = (psd - left >= _TONAL_MIN_EXCESS_DB) & (psd - right >= _TONAL_MIN_EXCESS_DB)
        tonal &= ok | ~active
    t_frame, t_bin = np.nonzero(tonal)
    t_power = 10.0 * np.log10(lin[t_frame, t_bin - 1] + lin[t_frame, t_bin] + lin[t_frame, t_bin + 1])

    # --- noise maskers: per critical band, lines outside tonal neighbourhoods
    diff = np.zeros((n_frames, n_bins + 1), dtype=np.int64)
    np.add.at(diff, (t_frame, np.maximum(t_bin - reach[t_bin], 0)), 1)
    np.add.at(diff, (t_frame, np.minimum(t_bin + reach[t_bin] + 1, n_bins)), -1)
    claimed = np.cumsum(diff, axis=1)[:, :n_bins] > 0
    band = np.floor(z).astype(np.int64)
    bands = np.unique(band)
    onehot = (band[:, None] == bands[None, :]).astype(np.float64)
    with np.errstate(divide="ignore"):
        n_power = 10.0 * np.log10(np.where(claimed, 0.0, lin) @ onehot)  # (F, B)
    if not noise_maskers:
        n_power = np.full_like(n_power, -np.inf)
    n_bin = np.empty(bands.size, dtype=np.int64)
    for i, b in enumerate(bands):
        members = np.flatnonzero(band == b)
        positive = freqs[members][freqs[members] > 0]
        if positive.size == 0:
            n_bin[i] = members[0]
        else:
            centre = math.exp(float(np.mean(np.log(positive))))
            n_bin[i] = members[np.argmin(np.abs(freqs[members] - centre))]

    # --- all maskers, one row per frame
    frame_idx = np.concatenate([t_frame, np.repeat(np.arange(n_frames), bands.size)])
    m_bin = np.concatenate([t_bin, np.tile(n_bin, n_frames)])
    m_pow = np.concatenate([t_power, n_power.ravel()])
    m_tonal = np.concatenate([np.ones(t_bin.size, bool), np.zeros(n_power.size, bool)])
    keep = np.isfinite(m_pow) & (m_pow >= ath[m_bin])  # decimation 1: audible maskers only
    frame_idx, m_bin, m_pow, m_tonal = frame_idx[keep], m_bin[keep], m_pow[keep], m_tonal[keep]
    width, (p_bin, p_pow, p_tonal) = _pack(frame_idx, n_frames, m_bin, m_pow, m_tonal)
    if width == 0:
        return np.broadcast_to(ath, (n_frames, n_bins)).copy()

    # --- decimation 2: of maskers closer than 0.5 Bark keep only the stronger
    valid = p_bin >= 0
    p_z = np.where(valid, z[np.maximum(p_bin, 0)], np.nan)
    survive = valid.copy()
    order = np.arange(width)
    step = max(1, _CHUNK_ELEMENTS // (width * width))
    for s in range(0, n_frames, step):
        zc, pc, vc = p_z[s : s + step], p_pow[s : s + step], valid[s : s + step]
        close = np.abs(zc[:, :, None] - zc[:, None, :]) < _DECIMATION_BARK  # [f, i, j]
        stronger = (pc[:, None, :] > pc[:, :, None]) | (
            (pc[:, None, :] == pc[:, :, None]) & (order[None, :] < order[:, None])[None]
        )
        beaten = np.any(close & stronger & vc[:, None, :], axis=2)
        survive[s : s + step] &= ~beaten
    f_idx, slot = np.nonzero(survive)
    width, (m_z, m_pow, m_tonal) = _pack(
        f_idx, n_frames, p_z[f_idx, slot], p_pow[f_idx, slot], p_tonal[f_idx, slot]
    )
    if width == 0:  # pragma: no cover - the strongest masker of a frame always survives
        return np.broadcast_to(ath, (n_frames, n_bins)).copy()
    m_ok = np.isfinite(m_pow)

    # --- individual thresholds and their power sum with the ATH
    offset = np.where(m_tonal, -6.025 - 0.275 * m_z, -2.025 - 0.175 * m_z)
    upper = np.minimum(-27.0 + 0.37 * np.maximum(m_pow - 40.0, 0.0), 0.0)
    out = np.empty((n_frames, n_bins))
    step = max(1, _CHUNK_ELEMENTS // (width * n_bins))
    for s in range(0, n_frames, step):
        sl = slice(s, s + step)
        dz = z[None, None, :] - m_z[sl, :, None]
        spread = np.where(dz < 0, 27.0 * dz, upper[sl, :, None] * dz)
        t = (m_pow[sl] + offset[sl])[:, :, None] + spread
        inside = (dz >= _SPREAD_LOW_BARK) & (dz < _SPREAD_HIGH_BARK) & m_ok[sl, :, None]
        t = np.where(inside, t, -np.inf)
        stack = np.concatenate([np.broadcast_to(ath, (t.shape[0], 1, n_bins)), t], axis=1)
        out[sl] = _db_sum(stack, axis=1)
    return out


def masking_threshold(
    audio,
    sample_rate,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    offset_db: Optional[float] = None,
    ath_offset_db: float = ATH_OFFSET_DB,
    _noise_maskers: bool = True,
) -> MaskingThreshold:
    """Global masking threshold of a clip (MPEG-1 psychoacoustic model 1).

    See the module docstring for the steps.  The threshold is computed at
    every FFT bin of every frame of :func:`stft` (as Qin et al. do) rather
    than per MPEG subband.

    Parameters
    ----------
    audio : array_like
        Real samples, shape ``(samples,)``.
    sample_rate : float
        Sample rate (Hz) of `audio`.
    n_fft : int, default 2048
        STFT frame length.
    hop_length : int, default 512
        STFT frame step, in ``1..=n_fft // 2``.
    offset_db : float, optional
        PSD offset to use instead of the per-clip 96 dB normalisation
        (see :func:`power_spectrum_db`).
    ath_offset_db : float, default -12.0
        Shift applied to Terhardt's absolute threshold (:data:`ATH_OFFSET_DB`).

    Returns
    -------
    MaskingThreshold
        Threshold, PSD, offset, bin frequencies and absolute threshold.  For an
        all-zero clip the threshold equals the absolute threshold.

    Raises
    ------
    ParameterError
        If the audio or an option is invalid.
    """
    x = as_audio(audio)
    rate = check_rate(sample_rate)
    ath_shift = check_finite(ath_offset_db, "ath_offset_db")
    spec = stft(x, n_fft=n_fft, hop_length=hop_length)
    psd, offset = power_spectrum_db(spec, n_fft, reference=offset_db)
    freqs = np.arange(spec.shape[1]) * (rate / n_fft)
    ath = absolute_threshold_db(freqs) + ath_shift
    return MaskingThreshold(
        threshold_db=_global_threshold(psd, freqs, ath, noise_maskers=_noise_maskers),
        psd_db=psd,
        offset_db=offset,
        frequencies=freqs,
        ath_db=ath,
    )


def perturbation_margin_db(
    original,
    perturbed,
    sample_rate,
    *,
    n_fft: int = 2048,
    hop_length: int = 512,
    frames=None,
    ath_offset_db: float = ATH_OFFSET_DB,
) -> Tuple[np.ndarray, bool]:
    """How far below the original's masking threshold a perturbation stays.

    The perturbation is ``delta = perturbed - original``.  Its PSD is computed
    with the *original's* offset (so both are on one scale) and compared bin
    by bin with the original's global masking threshold.  A frame's margin is
    ``min(threshold - psd_delta)`` over the bins where the delta's STFT is
    non-zero; a frame where it is zero everywhere has margin ``+inf``.  For
    an all-zero original the offset is :data:`FULL_SCALE_OFFSET_DB` and the
    threshold is the absolute threshold, so the test becomes "is the
    perturbation below the threshold in quiet when a full-scale sine would
    play at 96 dB".

    Parameters
    ----------
    original, perturbed : array_like
        Real samples, both of shape ``(samples,)``.
    sample_rate : float
        Sample rate (Hz).
    n_fft : int, default 2048
        STFT frame length.
    hop_length : int, default 512
        STFT frame step.
    frames : array_like of int or bool, optional
        Frames to evaluate (indices, negative allowed, or a boolean mask of
        length ``n_frames``).  By default every frame.  Only these frames are
        analysed (faster), but the 96 dB offset is always the whole clip's.
    ath_offset_db : float, default -12.0
        Shift applied to Terhardt's absolute threshold.

    Returns
    -------
    margin_db : numpy.ndarray
        Margin (dB) of each evaluated frame, in the order of `frames`;
        negative means the perturbation pokes above the threshold.
    inaudible : bool
        True when every evaluated frame has a margin >= 0.

    Raises
    ------
    ParameterError
        If the inputs differ in length or are invalid, or `frames` is not a
        valid selection.
    """
    x = as_audio(original, "original")
    y = as_audio(perturbed, "perturbed")
    if x.shape != y.shape:
        raise ParameterError(f"original and perturbed differ in shape: {x.shape} vs {y.shape}")
    rate = check_rate(sample_rate)
    ath_shift = check_finite(ath_offset_db, "ath_offset_db")
    spec_x = stft(x, n_fft=n_fft, hop_length=hop_length)
    spec_d = stft(y - x, n_fft=n_fft, hop_length=hop_length)
    n_frames = spec_x.shape[0]
    if frames is None:
        selected = np.arange(n_frames)
    else:
        sel = np.asarray(frames)
        if sel.ndim > 1 or (sel.dtype != bool and not np.issubdtype(sel.dtype, np.integer) and sel.size):
            raise ParameterError("frames must be a 1-D sequence of integer indices or a boolean mask")
        try:
            selected = np.arange(n_frames)[sel.astype(bool) if sel.dtype == bool else sel.astype(np.int64)]
        except IndexError as exc:
            raise ParameterError(f"frames is not a valid selection of {n_frames} frames: {exc}") from exc
        selected = np.atleast_1d(selected)
    psd_x, offset = power_spectrum_db(spec_x, n_fft)
    freqs = np.arange(spec_x.shape[1]) * (rate / n_fft)
    ath = absolute_threshold_db(freqs) + ath_shift
    threshold = _global_threshold(psd_x[selected], freqs, ath)
    delta = spec_d[selected]
    psd_d, _ = power_spectrum_db(delta, n_fft, reference=offset) if delta.size else (delta.real, offset)
    margin = np.where(np.abs(delta) > 0, threshold - psd_d, np.inf).min(axis=1, initial=np.inf)
    return margin, bool(np.all(margin >= 0))


