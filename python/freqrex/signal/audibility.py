"""How audible a change is, by every measure freqrex reports, under two masking models.

:func:`audibility` measures a perturbation ``d = perturbed - original``:

* ``snr_db``: ``10 log10(sum x^2 / sum d^2)`` over the whole clip;
* ``quietest_frame_snr_db``: the same per STFT frame (Hann-windowed energies
  of freqrex's frames, 2048 / 512 by default), the smallest over the frames
  where the change is not silent: a change hidden in a loud clip can still
  be as loud as the music in a quiet passage;
* ``db_x`` (Carlini & Wagner 2018): ``dB(max |d|) - dB(max |x|)``;
* ``over_threshold_share`` / ``max_excess_db``: the share of all STFT cells
  where the change's PSD is above freqrex's masking threshold
  (:mod:`freqrex.signal.masking`), and the largest ``psd_d - threshold`` over
  the cells the change touches (negative: the margin under it);
* ``art_over_threshold_share`` / ``art_max_excess_db``: the same under ART
  1.20.1's threshold on ART's own framing (:mod:`freqrex.signal.qin`, a port
  checked against ART's ``PsychoacousticMasker``); None when the clip is
  shorter than one ART frame;
* ``louder_than_clip_share``: the share of cells where ``|D| > |X|``.

A change is **inaudible** when it stays under both thresholds in every cell
(``max_excess_db <= 0`` and ``art_max_excess_db <= 0``).
"""

from __future__ import annotations

import math
from typing import Any, Dict, Optional

import numpy as np

from .. import _stft
from .masking import MaskingThreshold, masking_threshold
from .qin import ART_GAIN, ArtThreshold, art_masking_threshold
from .spectrum import as_audio, check_fft, check_rate, power_spectrum_db

__all__ = ["AUDIBILITY_FIELDS", "art_excess_db", "audibility", "frame_snr_db"]

#: Keys of :func:`audibility`'s result, in order.
AUDIBILITY_FIELDS = (
    "snr_db",
    "quietest_frame_snr_db",
    "db_x",
    "over_threshold_share",
    "max_excess_db",
    "art_over_threshold_share",
    "art_max_excess_db",
    "louder_than_clip_share",
    "inaudible",
)


def frame_snr_db(spec_x: np.ndarray, spec_d: np.ndarray) -> np.ndarray:
    """Per-frame SNR (dB) from two STFTs; ``+inf`` where the change is silent."""
    ex = np.sum(np.abs(spec_x) ** 2, axis=1)
    ed = np.sum(np.abs(spec_d) ** 2, axis=1)
    out = np.full(ex.shape, math.inf)
    live = ed > 0
    with np.errstate(divide="ignore"):
        out[live] = 10.0 * np.log10(ex[live] / ed[live])
    return out


def art_excess_db(original, delta, sample_rate, *, n_fft: int = 2048, hop_length: int = 512,
                  threshold: Any = None) -> np.ndarray:
    """``psd_d - threshold`` per cell of ART's frames (``-inf`` where the change is zero).

    The change's PSD is put on the clip's scale as ART's check does:
    ``96 - psd_max + 20 log10(|sqrt(8/3) D| / n_fft)``.  Shape ``(frames, bins)``
    (no frames when the clip is shorter than ``n_fft``).
    """
    from ..errors import ParameterError

    x0 = as_audio(original, "original")
    d = as_audio(delta, "delta")
    n_fft, hop_length = check_fft(n_fft, hop_length)
    if d.shape != x0.shape:
        raise ParameterError(f"original and delta differ in shape: {x0.shape} vs {d.shape}")
    art = threshold if threshold is not None else art_masking_threshold(
        x0, sample_rate, n_fft=n_fft, hop_length=hop_length)
    frames_expected = (x0.size - n_fft) // hop_length + 1 if x0.size >= n_fft else 0
    if art.threshold_db.shape != (frames_expected, n_fft // 2 + 1):
        raise ParameterError(f"the ART threshold has shape {art.threshold_db.shape}, the clip's frames "
                             f"(n_fft={n_fft}, hop_length={hop_length}) {(frames_expected, n_fft // 2 + 1)}")
    if art.threshold_db.shape[0] == 0:
        return art.threshold_db
    n = art.threshold_db.shape[0]
    x = np.asarray(d, dtype=np.float32).astype(np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(x, n_fft)[::hop_length][:n]
    magnitude = np.abs(ART_GAIN * np.fft.rfft(frames * _stft.hann(n_fft), axis=-1))
    with np.errstate(divide="ignore"):
        psd = 96.0 - art.psd_max_db + 20.0 * np.log10(magnitude / n_fft)
    # a cell the change leaves silent is never over the threshold, even where ART's threshold is
    # -inf (a frame of digital silence: -inf - -inf would be NaN)
    with np.errstate(invalid="ignore"):
        return np.where(magnitude > 0, psd - art.threshold_db, -np.inf)


def audibility(original, perturbed, sample_rate, *, n_fft: int = 2048, hop_length: int = 512,
               art: bool = True, threshold: Optional[MaskingThreshold] = None,
               art_threshold: Optional[ArtThreshold] = None) -> Dict[str, Optional[float]]:
    """Every audibility measure of ``perturbed - original`` (see the module docstring).

    Parameters
    ----------
    original, perturbed : array_like
        Real samples of the same shape ``(samples,)``.
    sample_rate : float
    n_fft, hop_length : int, default 2048 and 512
        Frames of freqrex's model and of the frame SNR (ART's check always
        uses 2048 / 512, its own framing).
    art : bool, default True
        Also measure under ART's threshold.
    threshold, art_threshold : MaskingThreshold and ArtThreshold, optional
        The original's thresholds (:func:`~freqrex.signal.masking_threshold` with
        these `n_fft` / `hop_length`, :func:`~freqrex.signal.art_masking_threshold`),
        when they are already at hand: computed here otherwise.  A search measures
        many changes of one clip; its thresholds do not change.

    Returns
    -------
    dict
        The keys of :data:`AUDIBILITY_FIELDS`; shares in [0, 1], levels in dB
        (``-inf`` / ``inf`` for no change).

    Raises
    ------
    ParameterError
        If the inputs are invalid or differ in shape.
    """
    from ..errors import ParameterError

    x = as_audio(original, "original")
    y = as_audio(perturbed, "perturbed")
    if x.shape != y.shape:
        raise ParameterError(f"original and perturbed differ in shape: {x.shape} vs {y.shape}")
    rate = check_rate(sample_rate)
    n_fft, hop_length = check_fft(n_fft, hop_length)
    d = y - x
    mask = threshold if threshold is not None else masking_threshold(x, rate, n_fft=n_fft, hop_length=hop_length)
    spec_x = _stft.stft(x, n_fft, hop_length)
    if mask.threshold_db.shape != spec_x.shape:
        raise ParameterError(f"threshold has shape {mask.threshold_db.shape}, the clip's STFT "
                             f"(n_fft={n_fft}, hop_length={hop_length}) {spec_x.shape}")
    spec_d = _stft.stft(d, n_fft, hop_length)
    psd_d, _ = power_spectrum_db(spec_d, n_fft, reference=mask.offset_db)
    touched = np.abs(spec_d) > 0
    excess = np.where(touched, psd_d - mask.threshold_db, -np.inf)
    noise = float(np.dot(d, d))
    signal = float(np.dot(x, x))
    peak_d, peak_x = float(np.max(np.abs(d))), float(np.max(np.abs(x)))
    out: Dict[str, Any] = {
        "snr_db": math.inf if noise == 0 else (-math.inf if signal == 0 else 10 * math.log10(signal / noise)),
        "quietest_frame_snr_db": float(np.min(frame_snr_db(spec_x, spec_d))),
        "db_x": -math.inf if peak_d == 0 else (math.inf if peak_x == 0 else 20 * math.log10(peak_d / peak_x)),
        "over_threshold_share": float(np.mean(excess > 0)),
        "max_excess_db": float(np.max(excess)),
        "art_over_threshold_share": None,
        "art_max_excess_db": None,
        "louder_than_clip_share": float(np.mean(np.abs(spec_d) > np.abs(spec_x))),
    }
    inaudible = out["max_excess_db"] <= 0
    if art and x.size >= 2048:
        art_ex = art_excess_db(x, d, rate, threshold=art_threshold)
        out["art_over_threshold_share"] = float(np.mean(art_ex > 0))
        out["art_max_excess_db"] = float(np.max(art_ex))
        inaudible = inaudible and out["art_max_excess_db"] <= 0
    out["inaudible"] = bool(inaudible)
    return out
