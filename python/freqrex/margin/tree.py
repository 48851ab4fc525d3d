"""Partitions of the frequency space at the model's resolution.

A leaf is a box of the space, ``(t0, t1, f0, f1)`` (half-open; ``fft`` has a
single frame), and the leaves of a partition tile the searched region. Cuts
are placed on the mel scale, where a log-mel front end resolves frequency:
splitting a leaf halves its mel width (or, in the ``stft`` space, its
duration when it is relatively longer than it is wide), and a leaf narrower
than one band of the model's resolution is only split when the budget allows
more (``fine=True``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

Leaf = Tuple[int, int, int, int]


def hz_to_mel(hz):
    """The HTK mel scale (2595 log10(1 + f/700)); any monotone warp would do."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


@dataclass(frozen=True)
class Grid:
    """The geometry of a space: the mel position of every bin edge and the region searched."""

    n_frames: int
    n_bins: int
    region: Leaf
    #: mel value at the lower edge of every bin and above the last, (n_bins + 1,)
    edges_mel: np.ndarray
    #: mel width of one band of the model's resolution
    resolution_mel: float

    @classmethod
    def build(cls, n_frames: int, n_bins: int, band: Tuple[int, int], hz_per_bin: float,
              resolution: int, sample_rate: float) -> "Grid":
        """``resolution`` mel bands span 0 Hz to the Nyquist frequency."""
        centres = np.arange(n_bins + 1, dtype=np.float64) - 0.5
        edges = hz_to_mel(np.clip(centres, 0.0, None) * hz_per_bin)
        res = float(hz_to_mel(sample_rate / 2.0)) / max(int(resolution), 1)
        return cls(n_frames, n_bins, (0, n_frames, band[0], band[1]), edges, res)

    def mel_width(self, leaf: Leaf) -> float:
        return float(self.edges_mel[leaf[3]] - self.edges_mel[leaf[2]])

    def initial(self, n_bands: int, n_segments: int) -> List[Leaf]:
        """``n_bands`` bands of equal mel width (at least one bin each) x ``n_segments`` time segments."""
        t0, t1, f0, f1 = self.region
        cuts = _mel_cuts(self.edges_mel, f0, f1, n_bands)
        tcuts = np.unique(np.linspace(t0, t1, max(1, min(n_segments, t1 - t0)) + 1).round().astype(int))
        return [(int(a), int(b), int(c), int(d))
                for a, b in zip(tcuts[:-1], tcuts[1:]) for c, d in zip(cuts[:-1], cuts[1:])]

    def splittable(self, leaf: Leaf, fine: bool) -> bool:
        t0, t1, f0, f1 = leaf
        if (t1 - t0) * (f1 - f0) < 2:
            return False
        if fine:
            return True
        return (f1 - f0 >= 2 and self.mel_width(leaf) > self.resolution_mel) or self._time_longer(leaf)

    def _time_longer(self, leaf: Leaf) -> bool:
        """In the stft space: is the leaf relatively longer (share of frames) than wide (share of mel)?"""
        t0, t1, f0, f1 = leaf
        if t1 - t0 < 2:
            return False
        rt0, rt1, rf0, rf1 = self.region
        total_mel = float(self.edges_mel[rf1] - self.edges_mel[rf0]) or 1.0
        return (t1 - t0) / (rt1 - rt0) > self.mel_width(leaf) / total_mel or f1 - f0 < 2

    def split(self, leaf: Leaf) -> Optional[Tuple[Leaf, Leaf]]:
        """Two children: halves in time when the leaf is relatively longer, else halves in mel."""
        t0, t1, f0, f1 = leaf
        if self._time_longer(leaf):
            m = (t0 + t1) // 2
            return (t0, m, f0, f1), (m, t1, f0, f1)
        if f1 - f0 < 2:
            return None
        c = _mel_cuts(self.edges_mel, f0, f1, 2)
        if len(c) < 3:
            return None
        return (t0, t1, f0, int(c[1])), (t0, t1, int(c[1]), f1)


def _mel_cuts(edges_mel: np.ndarray, f0: int, f1: int, n: int) -> np.ndarray:
    """Bin indices cutting [f0, f1) into at most ``n`` parts of equal mel width, each at least one bin."""
    targets = np.linspace(edges_mel[f0], edges_mel[f1], n + 1)[1:-1]
    inner = np.searchsorted(edges_mel[f0:f1 + 1], targets, side="left") + f0
    cuts = np.unique(np.concatenate(([f0], np.clip(inner, f0 + 1, f1 - 1), [f1])))
    return cuts.astype(int)


def leaf_index(leaves: List[Leaf], n_frames: int, n_bins: int) -> np.ndarray:
    """For every cell (frame-major), the index of the leaf holding it, or -1 outside the region."""
    out = np.full((n_frames, n_bins), -1, dtype=np.int64)
    for i, (t0, t1, f0, f1) in enumerate(leaves):
        out[t0:t1, f0:f1] = i
    return out
