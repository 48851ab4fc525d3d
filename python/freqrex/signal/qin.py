"""The masking threshold exactly as ART 1.20.1 computes it: the independent check.

ART's ``PsychoacousticMasker`` (adversarial-robustness-toolbox 1.20.1,
``art/attacks/evasion/imperceptible_asr``) implements Qin et al.'s (ICML 2019)
simplification of the MPEG-1 model.  It is the independent implementation
freqrex's "inaudible" is checked against (``docs/audibility.md``).  This
module ports it to vectorised NumPy (ART loops over frames and maskers in
Python, about 0.25 s a frame; this port takes milliseconds) so that every
flip can report it; ``tests/test_audibility.py`` checks the port against ART
itself.  It differs from freqrex's own model (:mod:`freqrex.signal.masking`)
in these ways:

* **Framing**: librosa's STFT with ``center=False``: frame ``j`` covers
  samples ``[j hop, j hop + n_fft)``, so it is freqrex's frame ``j + n_fft //
  (2 hop)`` when ``hop`` divides ``n_fft / 2``; the clip's first and last
  ``n_fft / 2`` samples are only partly covered and there are ``1 + (n -
  n_fft) // hop`` frames.
* **PSD**: ``20 log10(|sqrt(8/3) X / n_fft|)``, normalised so that the
  loudest cell *of these frames* reads 96 dB.  The ``sqrt(8/3)`` gain cancels
  in the normalisation; a change is compared on the clip's scale.
* **Maskers**: every local maximum of a frame's PSD is a tonal masker (no
  7 dB tonality test, no noise maskers), offset ``-6.025 - 0.275 z``.
* **Decimation**: maskers under the absolute threshold are dropped; the 0.5
  Bark rule compares the Bark values of the maskers' *ordinals* (``bark[i]``
  for the i-th masker, not the Bark of its bin), which in practice runs a
  chained "keep the larger" over nearly all neighbouring maskers and drops
  most of them.  Reproduced as is: this is what ART's check computes.
* **Spreading**: the two-slope function with no range limit (freqrex's own
  model stops at -3 and +8 Bark, as the standard does).
* **Absolute threshold**: Terhardt - 12 dB between 20 Hz and 20 kHz, minus
  infinity outside (no floor on the threshold there but the maskers').
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from .spectrum import as_audio, check_fft, check_rate

__all__ = ["ArtThreshold", "ART_GAIN", "art_frame_offset", "art_masking_threshold", "art_psd_db"]

#: ART's PSD gain ``sqrt(8/3)`` (the Hann window's power correction).
ART_GAIN = math.sqrt(8.0 / 3.0)


@dataclass(frozen=True)
class ArtThreshold:
    """ART's global masking threshold of a clip, on ART's framing.

    Attributes
    ----------
    threshold_db : numpy.ndarray
        Threshold, shape ``(n_frames, n_fft // 2 + 1)`` (frames first, the
        transpose of ART's layout), dB on the clip's 96 dB scale.
    psd_db : numpy.ndarray
        The clip's normalised PSD, same shape.
    psd_max_db : float
        ART's ``psd_maximum``: the clip's largest ``20 log10(|g X / n_fft|)``.
    first_sample : int
        Always 0: frame ``j`` starts at sample ``j * hop_length``.
    """

    threshold_db: np.ndarray
    psd_db: np.ndarray
    psd_max_db: float
    first_sample: int = 0


def _frames(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """librosa ``stft(center=False)`` with the periodic Hann window: ``(frames, bins)``."""
    n = 1 + (x.size - n_fft) // hop
    view = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop][:n]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    return np.fft.rfft(view * window, axis=-1)


def art_psd_db(audio, *, n_fft: int = 2048, hop_length: int = 512) -> np.ndarray:
    """Un-normalised ART PSD ``20 log10(|sqrt(8/3) X / n_fft|)`` (floored at -200) of ART's frames."""
    x = as_audio(audio).astype(np.float32).astype(np.float64)
    n_fft, hop_length = check_fft(n_fft, hop_length)
    if x.size < n_fft:
        return np.empty((0, n_fft // 2 + 1))
    with np.errstate(divide="ignore"):
        psd = 20.0 * np.log10(np.abs(ART_GAIN * _frames(x, n_fft, hop_length) / n_fft))
    return np.maximum(psd, -200.0)


def art_frame_offset(n_fft: int, hop_length: int) -> int:
    """Index of freqrex's (centred) frame that equals ART's frame 0, when ``hop`` divides ``n_fft / 2``."""
    return (n_fft // 2) // hop_length if (n_fft // 2) % hop_length == 0 else -1


def _ath(freqs: np.ndarray) -> np.ndarray:
    ath = np.full(freqs.shape, -np.inf)
    ok = (freqs >= 20.0) & (freqs <= 2e4)
    k = freqs[ok] * 0.001
    ath[ok] = 3.64 * k**-0.8 - 6.5 * np.exp(-0.6 * (k - 3.3) ** 2) + 0.001 * k**4 - 12.0
    return ath


def _decimate(maskers: np.ndarray, count: int, bark: np.ndarray) -> np.ndarray:
    """ART's bark-distance filter, verbatim (it indexes ``bark`` by masker ordinal; pass the
    maskers' own Bark values as `bark` for the filter the paper describes)."""
    keep = np.ones(count, dtype=bool)
    i_prev = 0
    for i in range(1, count):
        if bark[i] - bark[i_prev] < 0.5:
            if maskers[i_prev] < maskers[i]:
                keep[i_prev] = False
                i_prev = i_prev + 1
            else:
                keep[i] = False
        else:
            i_prev = i
    return keep


def _frame_threshold(psd: np.ndarray, bark: np.ndarray, ath: np.ndarray, shift: np.ndarray, *,
                     by_bin: bool = False, spread_limits: Optional[Tuple[float, float]] = None) -> np.ndarray:
    idx = np.flatnonzero((psd[1:-1] > psd[:-2]) & (psd[1:-1] > psd[2:])) + 1
    lin = 10.0 ** (psd / 10.0)
    with np.errstate(divide="ignore"):
        maskers = 10.0 * np.log10(lin[idx - 1] + lin[idx] + lin[idx + 1])
    ok = maskers > ath[idx]
    idx, maskers = idx[ok], maskers[ok]
    keep = _decimate(maskers, idx.size, bark[idx] if by_bin else bark)
    idx, maskers = idx[keep], maskers[keep]
    total = 10.0 ** (ath / 10.0)
    if idx.size:
        dz = bark[None, :] - bark[idx][:, None]
        upper = -27.0 + 0.37 * np.maximum(maskers - 40.0, 0.0)
        spread = np.where(dz > 0, upper[:, None] * dz, 27.0 * dz)
        ind = (maskers + shift[idx])[:, None] + spread
        if spread_limits is not None:
            ind = np.where((dz >= spread_limits[0]) & (dz < spread_limits[1]), ind, -np.inf)
        total = total + np.sum(10.0 ** (ind / 10.0), axis=0)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(total)


def art_masking_threshold(audio, sample_rate, *, n_fft: int = 2048, hop_length: int = 512,
                          _by_bin: bool = False, _spread_limits: Optional[Tuple[float, float]] = None,
                          ) -> ArtThreshold:
    """ART 1.20.1's ``calculate_threshold_and_psd_maximum`` in vectorised NumPy.

    Parameters
    ----------
    audio : array_like
        Real samples, shape ``(samples,)``, at least ``n_fft`` of them for any
        frame (fewer give zero frames).  Cast to float32 first, as ART does.
    sample_rate : float
        Sample rate (Hz); ART's masker is built with it.
    n_fft, hop_length : int, default 2048 and 512
        ART's ``window_size`` and ``hop_size``.

    Returns
    -------
    ArtThreshold
        Threshold and normalised PSD, frames first.

    Raises
    ------
    ParameterError
        If the audio or an option is invalid.
    """
    rate = check_rate(sample_rate)
    raw = art_psd_db(audio, n_fft=n_fft, hop_length=hop_length)
    n_bins = n_fft // 2 + 1
    if raw.shape[0] == 0:
        return ArtThreshold(np.empty((0, n_bins)), raw, -200.0)
    psd_max = float(np.max(raw))
    psd = 96.0 - psd_max + raw
    freqs = np.linspace(0.0, rate / 2.0, n_bins)
    bark = 13.0 * np.arctan(0.00076 * freqs) + 3.5 * np.arctan((freqs / 7500.0) ** 2)
    ath = _ath(freqs)
    shift = -6.025 - 0.275 * bark
    # (_by_bin, _spread_limits: variants for scripts/compare_masking_threshold.py, which measures
    # how much of the difference from freqrex's model each of ART's choices makes)
    thr = np.stack([_frame_threshold(p, bark, ath, shift, by_bin=_by_bin, spread_limits=_spread_limits)
                    for p in psd])
    return ArtThreshold(thr, psd, psd_max)
