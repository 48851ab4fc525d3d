"""The reference's spaces, boxes, cuts and budget split (see :mod:`freqrex.reference`)."""

from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np

from .. import _stft
from .._rng import SplitMix64
from ..errors import ParameterError

Rect = Tuple[int, int, int, int]  # (t0, t1, f0, f1), half-open


# ---------------------------------------------------------------- spaces
class FrequencySpace:
    """A clip in its frequency space; see the Rust ``FrequencySpace``."""

    def __init__(self, audio, *, space="fft", n_fft=2048, hop_length=512, mask_value=0.0, n_threads=None):
        x = np.asarray(audio, dtype=np.float64)
        if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
            raise ParameterError("audio must be a finite, non-empty 1-D array")
        self.kind = space
        self.n_samples = x.size
        self.mask_value = float(mask_value)
        if space == "fft":
            if x.size < 2:
                raise ParameterError("the fft space needs at least 2 samples")
            self.n_fft = self.hop_length = x.size
            self._coef = np.fft.rfft(x)[None, :]
        elif space == "stft":
            if n_fft < 4 or not 1 <= hop_length <= n_fft // 2:
                raise ParameterError("need n_fft >= 4 and 1 <= hop_length <= n_fft // 2")
            self.n_fft, self.hop_length = n_fft, hop_length
            self._coef = _stft.stft(x, n_fft, hop_length)
        else:
            raise ParameterError(f"space must be 'fft' or 'stft', got {space!r}")

    @property
    def shape(self) -> Tuple[int, int]:
        return self._coef.shape

    @property
    def n_frames(self) -> int:
        return self._coef.shape[0]

    @property
    def n_bins(self) -> int:
        return self._coef.shape[1]

    def coefficients(self) -> np.ndarray:
        return self._coef.copy()

    def synthesize(self, masks: np.ndarray) -> np.ndarray:
        """Waveforms (batch, n_samples) float32 of boolean masks (batch, n_frames, n_bins)."""
        masks = np.asarray(masks, dtype=bool)
        if masks.ndim != 3 or masks.shape[1:] != self.shape:
            raise ParameterError(f"masks must have shape (batch, {self.n_frames}, {self.n_bins})")
        spec = np.where(masks, self._coef[None], self.mask_value)
        if self.kind == "fft":
            return np.fft.irfft(spec[:, 0, :], n=self.n_samples, axis=-1).astype(np.float32)
        return np.stack([_stft.istft(s, self.n_fft, self.hop_length, self.n_samples) for s in spec]).astype(np.float32)


# ------------------------------------------------------------ partitions
def cut_points(rng: SplitMix64, lo: int, hi: int, n_cuts: int, scale: str) -> List[int]:
    """Distinct sorted cuts strictly inside (lo, hi); see ``partition.rs``."""
    if hi <= lo + 1 or n_cuts == 0:
        return []
    interior = hi - lo - 1
    if interior <= n_cuts:
        return list(range(lo + 1, hi))
    cuts: List[int] = []
    draws = 0
    while len(cuts) < n_cuts and draws < 32 * n_cuts:
        draws += 1
        if scale == "uniform":
            c = lo + 1 + rng.below(interior)
        else:
            a, b = math.log(1.0 + lo), math.log(1.0 + hi)
            v = math.exp(a + rng.uniform() * (b - a)) - 1.0
            c = min(max(int(math.floor(v + 0.5)), lo + 1), hi - 1)
        if c not in cuts:
            cuts.append(c)
    return sorted(cuts)


def split(rng: SplitMix64, rect: Rect, n_parts: int, scale: str) -> List[Rect]:
    """Split a box into about n_parts contiguous children (time-major order)."""
    t0, t1, f0, f1 = rect
    nt, nf = t1 - t0, f1 - f0
    if nt <= 1:
        pt, pf = 1, n_parts
    elif nf <= 1:
        pt, pf = n_parts, 1
    else:
        a = max(d for d in range(1, int(math.isqrt(n_parts)) + 1) if n_parts % d == 0)
        if a == 1:
            pt, pf = (n_parts, 1) if nt > nf else (1, n_parts)
        else:
            pt, pf = a, n_parts // a
    tc = cut_points(rng, t0, t1, pt - 1, "uniform")
    fc = cut_points(rng, f0, f1, pf - 1, scale)
    ti = list(zip([t0] + tc, tc + [t1]))
    fi = list(zip([f0] + fc, fc + [f1]))
    return [(a, b, c, d) for a, b in ti for c, d in fi]


def cells(r: Rect) -> int:
    return (r[1] - r[0]) * (r[3] - r[2])


def contains(outer: Rect, inner: Rect) -> bool:
    return inner[0] >= outer[0] and inner[1] <= outer[1] and inner[2] >= outer[2] and inner[3] <= outer[3]


def subtract(outer: Rect, inner: Rect) -> List[Rect]:
    """``outer`` minus ``inner`` (inside it): frames before, after, then bins below, above."""
    (a0, a1, b0, b1), (c0, c1, d0, d1) = outer, inner
    out = []
    if a0 < c0:
        out.append((a0, c0, b0, b1))
    if c1 < a1:
        out.append((c1, a1, b0, b1))
    if b0 < d0:
        out.append((c0, c1, b0, d0))
    if d1 < b1:
        out.append((c0, c1, d1, b1))
    return out


def steps(n: int, batch: int) -> int:
    """Bracket steps to narrow n prefix lengths to one: the smallest s with batch**s >= n."""
    s, w = 0, 1
    while w < n:
        w *= max(batch, 2)
        s += 1
    return s


FIRST_STEP = 8  # candidates of the complete set's first step (at least): a coarse scan, its score can overshoot


def reserve(n: int, batch: int) -> int:
    """The extraction's expected worst case (monotone predicates), reserved under max_queries."""
    b = max(batch, 2)
    return 3 * (b - 1) * (steps(n, b) + 1) + max(FIRST_STEP - b, 0) + 1


def search_share(max_queries: int, budget: int, n: int, batch: int) -> int:
    """The search's part of a total bound: at most budget, and what the original and the reserve leave."""
    avail = max(max_queries - 1, 0)
    keep = min(reserve(n, batch), avail // 2)
    return min(budget, avail - keep)


def canonical_key(rects: List[Rect]) -> tuple:
    """Equal for equal unions of boxes: maximal time strips of merged frequency intervals."""
    live = [r for r in rects if cells(r) > 0]
    edges = sorted({e for r in live for e in (r[0], r[1])})
    strips: List[list] = []
    for a, b in zip(edges, edges[1:]):
        iv = sorted((r[2], r[3]) for r in live if r[0] <= a and r[1] >= b)
        if not iv:
            continue
        merged: List[List[int]] = []
        for f0, f1 in iv:
            if merged and f0 <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], f1)
            else:
                merged.append([f0, f1])
        merged_t = tuple(map(tuple, merged))
        if strips and strips[-1][1] == a and strips[-1][2] == merged_t:
            strips[-1][1] = b
        else:
            strips.append([a, b, merged_t])
    return tuple((a, b, iv) for a, b, iv in strips)
