"""The clip in a frequency space, the changes a flip may make, and how loud they are.

A change is a set of elements (whole-clip rFFT bins, or STFT cells, as flat
indices ``frame * n_bins + bin``) with one complex difference per element,
``delta``.  The perturbed clip is the original plus the resynthesised
difference: ``irfft`` of the difference spectrum (``fft``), or its weighted
overlap-add inverse (``stft``, the convention of :mod:`freqrex._stft`).

Audibility is measured three ways for every flip, in either space:

* ``snr_db`` = ``10 log10(sum x^2 / sum d^2)``;
* ``db_x`` (Carlini & Wagner 2018) = ``dB(max |d|) - dB(max |x|)``;
* the psychoacoustic margin: the smallest, over cells, of the original's
  masking threshold minus the PSD of the difference, under freqrex's model
  and under ART's (:mod:`freqrex.signal.audibility`); inaudible means a
  margin >= 0 dB in every cell under both.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from typing import Dict

import numpy as np

from .. import _stft
from .. import psychoacoustic as pa
from ..signal.audibility import art_excess_db
from ..signal.qin import ART_GAIN, ArtThreshold, art_masking_threshold

__all__ = ["HELD_WAVEFORMS", "SpectralClip", "db_x", "snr_db", "unit_phase"]

#: Synthesised waveforms of changes a clip keeps at once (least recently used dropped first).  A
#: search returns to its last few changes only (a level search, a retry); holding one waveform per
#: change it tried would cost its budget times the clip (490 queries x 30 s in float64: 1.9 GB).
HELD_WAVEFORMS = 16


def snr_db(x: np.ndarray, d: np.ndarray) -> float:
    """``10 log10(sum x^2 / sum d^2)`` of a difference ``d`` (inf for no change)."""
    noise = float(np.dot(d, d))
    if noise == 0.0:
        return math.inf
    signal = float(np.dot(x, x))
    return -math.inf if signal == 0.0 else 10.0 * math.log10(signal / noise)


def db_x(x: np.ndarray, d: np.ndarray) -> float:
    """Carlini & Wagner's ``dB(max|d|) - dB(max|x|)`` (-inf for no change)."""
    peak_d = float(np.max(np.abs(d))) if d.size else 0.0
    if peak_d == 0.0:
        return -math.inf
    peak_x = float(np.max(np.abs(x)))
    return math.inf if peak_x == 0.0 else 20.0 * math.log10(peak_d / peak_x)


def unit_phase(coef: np.ndarray) -> np.ndarray:
    """``coef / |coef|``, and 1 where the coefficient is (numerically) zero."""
    mag = np.abs(coef)
    out = np.ones(coef.shape, dtype=np.complex128)
    nz = mag > 1e-300
    out[nz] = coef[nz] / mag[nz]
    return out


class SpectralClip:
    """The original clip in one space, its coefficients, and difference synthesis.

    Parameters
    ----------
    x : ndarray of float32, shape (samples,)
    sr : int
    space : {"fft", "stft"}
    n_fft, hop_length : int
        STFT geometry (``stft`` only).
    cache : dict
        Shared between flips of one clip: coefficients and the masking
        threshold are computed once.
    """

    def __init__(self, x: np.ndarray, sr: int, space: str, n_fft: int, hop_length: int, cache: Dict):
        self.x32 = x
        self.x = x.astype(np.float64)
        self.sr = sr
        self.space = space
        self.n = x.size
        self.energy = float(np.dot(self.x, self.x))
        self._cache = cache
        self._held: "OrderedDict[int, np.ndarray]" = OrderedDict()
        self._tokens = itertools.count()
        #: how many synthesised waveforms :meth:`held_waveform` keeps (a scan that revisits many
        #: changes in turn raises it to their number)
        self.held_waveforms = HELD_WAVEFORMS
        if space == "fft":
            key = ("fft-coefficients",)
            if key not in cache:
                cache[key] = np.fft.rfft(self.x)
            self.coef = cache[key][None, :]
            self.n_fft = self.n
            self.hop = self.n
            # time-domain energy of a unit coefficient at each bin: irfft's weights
            w = np.full(self.coef.shape[1], 2.0)
            w[0] = 1.0
            if self.n % 2 == 0:
                w[-1] = 1.0
            self.bin_weight = w / self.n
        else:
            self.n_fft, self.hop = n_fft, hop_length
            key = ("stft-coefficients", n_fft, hop_length)
            if key not in cache:
                cache[key] = pa.stft(self.x, n_fft=n_fft, hop_length=hop_length)
            self.coef = cache[key]
            n_frames = self.coef.shape[0]
            self.padded_len = _stft.padded_length(n_frames, n_fft, hop_length)
            self.window = _stft.hann(n_fft)
            self.wsum = _stft.window_sum(n_frames, n_fft, hop_length)
            self.half = n_fft // 2
        self.n_frames, self.n_bins = self.coef.shape

    # ------------------------------------------------------------------ masking thresholds
    def _geometry(self):
        return (self.n_fft, self.hop) if self.space == "stft" else (2048, 512)

    @property
    def mask(self) -> "pa.MaskingThreshold":
        """The original's masking threshold (freqrex's model) on this STFT geometry (computed once)."""
        n_fft, hop = self._geometry()
        key = ("masking", n_fft, hop)
        if key not in self._cache:
            self._cache[key] = pa.masking_threshold(self.x, self.sr, n_fft=n_fft, hop_length=hop)
        return self._cache[key]

    @property
    def art_mask(self) -> "ArtThreshold":
        """The original's threshold by ART's model on ART's framing (2048 / 512, not centred)."""
        key = ("art-masking",)
        if key not in self._cache:
            self._cache[key] = art_masking_threshold(self.x, self.sr)
        return self._cache[key]

    def limit_db(self) -> np.ndarray:
        """The threshold a change must stay under, on this geometry's cells and freqrex's PSD scale:
        the lower of freqrex's threshold and ART's (ART's frame nearest in time, its bin nearest in
        frequency).  Cached."""
        n_fft, hop = self._geometry()
        key = ("masking-limit", n_fft, hop)
        if key in self._cache:
            return self._cache[key]
        m = self.mask
        limit = m.threshold_db.copy()
        art = self.art_mask
        n_art = art.threshold_db.shape[0]
        if n_art:
            # ART's check of a change: 96 - psd_max + 20 log10(|g D| / 2048) <= its threshold
            art_offset = 96.0 - art.psd_max_db + 20.0 * math.log10(ART_GAIN)
            on_ours = art.threshold_db - art_offset + m.offset_db
            centres = np.arange(limit.shape[0]) * hop
            j = np.clip(np.rint((centres - 1024) / 512.0).astype(np.int64), 0, n_art - 1)
            b = np.clip(np.rint(m.frequencies / (self.sr / 2048.0)).astype(np.int64), 0, 1024)
            limit = np.minimum(limit, on_ours[j][:, b])
        self._cache[key] = limit
        return limit

    def envelope(self, safety_db: float) -> np.ndarray:
        """``stft``: the largest difference magnitude per cell whose PSD stays
        ``safety_db`` under :meth:`limit_db` (the lower of freqrex's and ART's thresholds).

        Overlap-add spreads a cell's change over the frames its window
        overlaps and, through the window's main lobe, over neighbouring bins;
        a change at a loud cell would leak above the threshold of a quiet
        neighbour (pre-echo before an onset).  So each cell's bound is the
        smallest bound over those neighbours (a minimum filter over
        ``2 n_fft / hop - 1`` frames and 5 bins).
        """
        from scipy.ndimage import minimum_filter

        bound = self.n_fft * 10.0 ** ((self.limit_db() - self.mask.offset_db - safety_db) / 20.0)
        frames = 2 * max(self.n_fft // self.hop, 1) - 1
        return minimum_filter(bound, size=(frames, 5), mode="nearest")

    # ------------------------------------------------------------------ differences
    def new_token(self) -> int:
        """A key for :meth:`held_waveform`, unique within this clip."""
        return next(self._tokens)

    def held_waveform(self, token: int, flat: np.ndarray, d: np.ndarray) -> np.ndarray:
        """:meth:`synthesize` ``(flat, d)``, kept under ``token`` among the clip's
        ``held_waveforms`` most recently used (read-only; synthesised again when dropped)."""
        wave = self._held.get(token)
        if wave is None:
            wave = self.synthesize(flat, d)
            wave.flags.writeable = False
            self._held[token] = wave
            while len(self._held) > max(int(self.held_waveforms), 1):
                self._held.popitem(last=False)
        else:
            self._held.move_to_end(token)
        return wave

    def fixed_delta(self, flat: np.ndarray, kind: str, gain_db: float, phase: float) -> np.ndarray:
        """The difference of a fixed change of ``flat``: remove, gain or phase rotation."""
        frames, bins = np.divmod(flat, self.n_bins)
        c = self.coef[frames, bins]
        if kind == "remove":
            d = -c
        elif kind == "gain":
            d = c * (10.0 ** (gain_db / 20.0) - 1.0)
        else:
            d = c * (np.exp(1j * phase) - 1.0)
        return self.synthesize(flat, d)

    # backwards-compatible name used by tests of the STFT synthesis
    def delta(self, flat: np.ndarray, kind: str, gain_db: float, phase: float) -> np.ndarray:
        return self.fixed_delta(flat, kind, gain_db, phase)

    def synthesize(self, flat: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Float64 waveform of the complex differences ``d`` at elements ``flat``."""
        frames, bins = np.divmod(np.asarray(flat, dtype=np.int64), self.n_bins)
        if self.space == "fft":
            spec = np.zeros(self.n_bins, dtype=np.complex128)
            np.add.at(spec, bins, d)
            return np.fft.irfft(spec, n=self.n)
        out = np.zeros(self.padded_len)
        order = np.argsort(frames, kind="stable")
        frames, bins, d = frames[order], bins[order], np.asarray(d)[order]
        starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]]) if frames.size else []
        ends = list(starts[1:]) + [frames.size] if frames.size else []
        for s, e in zip(starts, ends):
            t = int(frames[s])
            spec = np.zeros(self.n_bins, dtype=np.complex128)
            np.add.at(spec, bins[s:e], d[s:e])
            out[t * self.hop : t * self.hop + self.n_fft] += np.fft.irfft(spec, n=self.n_fft) * self.window
        return self.finish_overlap_add(out)

    def synthesize_frames(self, spec: np.ndarray, t0: int) -> np.ndarray:
        """Weighted overlap-add of dense difference frames ``spec[t - t0]`` (not normalised)."""
        out = np.zeros(self.padded_len)
        seg = np.fft.irfft(spec, n=self.n_fft, axis=-1) * self.window
        for i in range(seg.shape[0]):
            t = t0 + i
            out[t * self.hop : t * self.hop + self.n_fft] += seg[i]
        return out

    def finish_overlap_add(self, padded: np.ndarray) -> np.ndarray:
        """Divide an overlap-added buffer by the window sum and cut the clip out."""
        out = padded.copy()
        nz = self.wsum > 1e-12
        out[nz] /= self.wsum[nz]
        return out[self.half : self.half + self.n]

    # ------------------------------------------------------------------ audibility
    def frame_margins(self, delta: np.ndarray) -> np.ndarray:
        """Margin (dB) of a difference under both masking thresholds, per frame of this geometry
        (``+inf`` where the difference is silent).  freqrex's threshold is checked on these frames;
        ART's on its own frames, each ART frame's margin charged to the frame of this geometry
        nearest its centre."""
        mask = self.mask
        n_fft, hop = self._geometry()
        spec = _stft.stft(np.asarray(delta, dtype=np.float64), n_fft, hop)
        psd, _ = pa.power_spectrum_db(spec, n_fft, reference=mask.offset_db)
        margins = np.where(np.abs(spec) > 0, mask.threshold_db - psd, np.inf).min(axis=1)
        art = self.art_mask
        if art.threshold_db.shape[0]:
            art_margin = -np.max(art_excess_db(self.x, delta, self.sr, threshold=art), axis=1)
            t = np.clip(np.rint((np.arange(art_margin.size) * 512 + 1024) / hop).astype(np.int64),
                        0, margins.size - 1)
            np.minimum.at(margins, t, art_margin)
        return margins

    def margin(self, delta: np.ndarray) -> float:
        """Smallest margin (dB) of a difference under both masking thresholds, over frames."""
        if not np.any(delta):
            return math.inf
        return float(np.min(self.frame_margins(delta)))

