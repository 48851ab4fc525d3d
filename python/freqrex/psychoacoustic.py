"""Psychoacoustic masking model: is a change to a few STFT cells audible?

The implementation lives in :mod:`freqrex.signal` (:mod:`~freqrex.signal.spectrum`:
STFT and PSD; :mod:`~freqrex.signal.masking`: freqrex's MPEG-1 model 1 masking
threshold after Qin et al. 2019; :mod:`~freqrex.signal.qin`: ART 1.20.1's
threshold, the independent check; :mod:`~freqrex.signal.audibility`: every
measure of a change).  This module keeps the old import path working.
"""

from __future__ import annotations

from .signal.audibility import AUDIBILITY_FIELDS, audibility
from .signal.masking import (
    ATH_MIN_FREQUENCY_HZ,
    ATH_OFFSET_DB,
    MaskingThreshold,
    _global_threshold,
    absolute_threshold_db,
    bark,
    masking_threshold,
    perturbation_margin_db,
)
from .signal.qin import ArtThreshold, art_masking_threshold
from .signal.spectrum import (
    FULL_SCALE_OFFSET_DB,
    PSD_FLOOR_DB,
    REFERENCE_PEAK_DB,
    power_spectrum_db,
    snr_db,
    stft,
)

__all__ = [
    "ATH_OFFSET_DB",
    "AUDIBILITY_FIELDS",
    "ArtThreshold",
    "FULL_SCALE_OFFSET_DB",
    "MaskingThreshold",
    "REFERENCE_PEAK_DB",
    "absolute_threshold_db",
    "art_masking_threshold",
    "audibility",
    "bark",
    "masking_threshold",
    "perturbation_margin_db",
    "power_spectrum_db",
    "snr_db",
    "stft",
]
