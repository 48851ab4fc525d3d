"""Signal analysis: the STFT, masking thresholds and audibility measures (NumPy only).

* :mod:`.spectrum`: validation, the freqrex STFT, the 96 dB-normalised PSD, SNR;
* :mod:`.masking`: freqrex's masking model (MPEG-1 psychoacoustic model 1 as
  adapted by Qin et al. 2019);
* :mod:`.qin`: ART 1.20.1's masking threshold (the independent check), ported;
* :mod:`.audibility`: every audibility measure of a change, under both.

``freqrex.psychoacoustic`` re-exports the names of :mod:`.spectrum` and
:mod:`.masking` (its old home).
"""

from .audibility import AUDIBILITY_FIELDS, art_excess_db, audibility, frame_snr_db
from .masking import (
    ATH_OFFSET_DB,
    MaskingThreshold,
    absolute_threshold_db,
    bark,
    masking_threshold,
    perturbation_margin_db,
)
from .qin import ArtThreshold, art_masking_threshold
from .spectrum import FULL_SCALE_OFFSET_DB, PSD_FLOOR_DB, REFERENCE_PEAK_DB, power_spectrum_db, snr_db, stft

__all__ = [
    "ATH_OFFSET_DB",
    "AUDIBILITY_FIELDS",
    "ArtThreshold",
    "FULL_SCALE_OFFSET_DB",
    "MaskingThreshold",
    "PSD_FLOOR_DB",
    "REFERENCE_PEAK_DB",
    "absolute_threshold_db",
    "art_excess_db",
    "art_masking_threshold",
    "audibility",
    "bark",
    "frame_snr_db",
    "masking_threshold",
    "perturbation_margin_db",
    "power_spectrum_db",
    "snr_db",
    "stft",
]
