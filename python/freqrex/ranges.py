"""A set as a person reads it: a handful of merged frequency ranges, not thousands of fragments.

A set of the ``fft`` space is often thousands of scattered bins. For people
it is summarised as at most ``max_ranges`` frequency ranges: runs of the
set's bins closer than a sixth of an octave (or ``min_gap_hz``) are merged,
each range is weighted by the responsibility it holds (positive part; the
bins' count when the set holds none), and the heaviest ranges are kept until
they hold ``coverage`` of the set's weight. The exact mask stays in the
explanation (``explanation.npz``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

#: Runs closer than this frequency ratio are one range (a sixth of an octave).
GAP_RATIO = 2.0 ** (1.0 / 6.0)


@dataclass(frozen=True)
class FrequencyRange:
    """``lo_hz``..``hi_hz`` holding ``share`` of the set's responsibility and ``bins`` of its bins."""

    lo_hz: float
    hi_hz: float
    share: float
    bins: int

    def to_dict(self) -> dict:
        return {"lo_hz": self.lo_hz, "hi_hz": self.hi_hz, "share": self.share, "bins": self.bins}

    def __str__(self) -> str:
        span = f"{self.lo_hz:.0f} Hz" if round(self.lo_hz) == round(self.hi_hz) else \
            f"{self.lo_hz:.0f}-{self.hi_hz:.0f} Hz"
        return f"{span} ({self.share:.0%})"


def merged_ranges(
    mask: np.ndarray,
    frequencies: np.ndarray,
    weights: Optional[np.ndarray] = None,
    *,
    max_ranges: int = 6,
    coverage: float = 0.9,
    min_gap_hz: float = 20.0,
) -> List[FrequencyRange]:
    """The heaviest merged ranges of a set, in frequency order.

    Parameters
    ----------
    mask : ndarray of bool, shape (n_bins,) or (n_frames, n_bins)
        The set (``stft``: a bin is used when any of its cells is).
    frequencies : ndarray, shape (n_bins,)
        Hz of every bin.
    weights : ndarray, optional
        Responsibility, same shape as ``mask``; its positive part inside the set weights a range.
    max_ranges, coverage, min_gap_hz
        At most this many ranges, stopping once they hold ``coverage`` of the weight; runs closer
        than ``min_gap_hz`` or a sixth of an octave are merged.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim == 2:
        w2 = None if weights is None else np.where(m, np.clip(np.asarray(weights, dtype=np.float64), 0, None), 0.0)
        used = m.any(axis=0)
        w = None if w2 is None else w2.sum(axis=0)
    else:
        used = m
        w = None if weights is None else np.where(m, np.clip(np.asarray(weights, dtype=np.float64), 0, None), 0.0)
    idx = np.flatnonzero(used)
    if idx.size == 0:
        return []
    if w is None or float(w[idx].sum()) <= 0:
        w = used.astype(np.float64)
    f = np.asarray(frequencies, dtype=np.float64)
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = list(np.concatenate([[idx[0]], idx[breaks + 1]]))
    ends = list(np.concatenate([idx[breaks], [idx[-1]]]))
    merged = [[starts[0], ends[0]]]
    for a, b in zip(starts[1:], ends[1:]):
        lo_gap, hi_gap = f[merged[-1][1]], f[a]
        if hi_gap - lo_gap <= min_gap_hz or (lo_gap > 0 and hi_gap / lo_gap <= GAP_RATIO):
            merged[-1][1] = b
        else:
            merged.append([a, b])
    total = float(w[idx].sum())
    weighted = []
    for a, b in merged:
        seg = slice(a, b + 1)
        weighted.append((float(w[seg].sum()) / total, int(used[seg].sum()), a, b))
    weighted.sort(key=lambda t: (-t[0], t[2]))
    chosen, held = [], 0.0
    for share, n, a, b in weighted:
        if len(chosen) >= max_ranges or held >= coverage:
            break
        chosen.append(FrequencyRange(float(f[a]), float(f[b]), share, n))
        held += share
    return sorted(chosen, key=lambda r: r.lo_hz)
