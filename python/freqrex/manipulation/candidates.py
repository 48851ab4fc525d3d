"""Where a flip looks: candidate changes, in the order they are tried, for each strategy.

A candidate is a :class:`Change`: one or more elements (flat indices of the
space) with a direction each, +1 (add in phase with the coefficient: amplify
it, or add a tone where the clip has almost nothing) or -1 (subtract:
attenuate, remove, or beyond).  Its size is not part of it: the search finds
the quietest size that flips (:mod:`freqrex.manipulation.search`).

Strategies
----------
``"causal"`` (freqrex)
    From the explanation of the clip.  ReX keeps one responsibility map per
    class the mutants land on (``Explanation.class_responsibility``): the
    parts whose presence alone makes another class win hold that class's
    evidence, so *adding* energy there pushes the decision towards it; the
    parts responsible for the original class (its map, the
    sufficient-and-necessary set) hold the evidence to *weaken*.  Candidates
    alternate between the two, most responsible part first: for a part of
    another class's map, a tone at its log-frequency centre and its loudest
    bin amplified; for a part of the original class's map, its loudest bin
    attenuated.  After them comes the tone grid of ``"tone_scan"``, ordered by
    the other classes' responsibility minus the original's at each grid
    point, so the causal strategy never has fewer places to look than the scan.
``"tone_scan"``
    One added tone at log-spaced frequencies (64, then the midpoints, ...).
``"magnitude"``
    The largest-magnitude bins, each attenuated, then amplified.
``"random"``
    Bins drawn uniformly (seeded) from the searched band, random direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["Change", "fft_candidates", "STRATEGIES", "log_grid", "parts_of"]

STRATEGIES = ("causal", "random", "magnitude", "tone_scan")


@dataclass(frozen=True)
class Change:
    """Elements (flat indices, sorted) and a direction (+1 / -1) for each."""

    elements: Tuple[int, ...]
    directions: Tuple[int, ...]
    origin: str = ""

    @staticmethod
    def of(pairs: Sequence[Tuple[int, int]], origin: str = "") -> "Change":
        merged: Dict[int, int] = {}
        for e, d in pairs:
            merged.setdefault(int(e), int(d))
        items = sorted(merged.items())
        return Change(tuple(e for e, _ in items), tuple(d for _, d in items), origin)

    def __len__(self) -> int:
        return len(self.elements)


def log_grid(lo_bin: int, hi_bin: int, n_bins_per_hz: float, points: int, level: int = 0) -> np.ndarray:
    """Bins of a log-spaced frequency grid between two bins; ``level`` > 0 gives the
    midpoints of the grid of ``points * 2**(level - 1)`` points (new points only)."""
    lo = max(lo_bin, 1)
    hi = max(hi_bin - 1, lo)
    if level == 0:
        pos = np.geomspace(lo, hi, points)
    else:
        n = points * 2 ** (level - 1)
        edges = np.geomspace(lo, hi, n)
        pos = np.sqrt(edges[:-1] * edges[1:])
    return np.unique(np.clip(np.rint(pos).astype(np.int64), lo, hi))


def parts_of(resp: np.ndarray, b0: int, b1: int) -> List[Tuple[int, int, float]]:
    """Runs of equal positive responsibility inside ``[b0, b1)``: (start, stop, value),
    most responsible first (ties: the narrower, then the lower)."""
    r = resp[b0:b1]
    if r.size == 0:
        return []
    change = np.flatnonzero(np.diff(r) != 0) + 1
    starts = np.r_[0, change]
    stops = np.r_[change, r.size]
    out = [(int(s) + b0, int(e) + b0, float(r[s])) for s, e in zip(starts, stops) if r[s] > 0]
    out.sort(key=lambda p: (-p[2], p[1] - p[0], p[0]))
    return out


def _grid(band: Tuple[int, int], n_bins: int, level: int, points: int = 64) -> np.ndarray:
    return log_grid(band[0], band[1], 1.0, points, level)


def _tone_scan(band: Tuple[int, int], n_bins: int) -> Iterator[Change]:
    seen = set()
    for level in range(0, 12):
        for b in _grid(band, n_bins, level):
            if int(b) not in seen:
                seen.add(int(b))
                yield Change.of([(int(b), 1)], "tone-scan")


def _causal(explanation: Any, mag: np.ndarray, band: Tuple[int, int], n_bins: int) -> Iterator[Change]:
    b0, b1 = band
    resp = np.asarray(explanation.responsibility, dtype=np.float64).reshape(-1)
    maps: Dict[int, np.ndarray] = {
        int(c): np.asarray(m, dtype=np.float64).reshape(-1)
        for c, m in (getattr(explanation, "class_responsibility", None) or {}).items()
    }
    # other classes, the one with most responsibility mass first
    others = sorted(maps, key=lambda c: (-float(maps[c][b0:b1].sum()), c))
    other_total = sum((maps[c] for c in others), np.zeros_like(resp))
    add: List[Change] = []
    for c in others:
        for s, e, _ in parts_of(maps[c], b0, b1)[:16]:
            centre = int(round(np.sqrt(max(s, 1) * max(e - 1, 1))))
            loud = s + int(np.argmax(mag[s:e]))
            add.append(Change.of([(centre, 1)], f"class-{c}-tone"))
            if loud != centre:
                add.append(Change.of([(loud, 1)], f"class-{c}-amplify"))
    sub: List[Change] = []
    first = getattr(explanation, "sufficient_necessary", None)
    if first is None:
        first = getattr(explanation, "sufficient", None)
    if first is not None:
        idx = np.flatnonzero(np.asarray(first, dtype=bool).reshape(-1)[b0:b1]) + b0
        for b in idx[np.lexsort((idx, -mag[idx]))][:8]:
            sub.append(Change.of([(int(b), -1)], "necessary-attenuate"))
    for s, e, _ in parts_of(resp, b0, b1)[:16]:
        sub.append(Change.of([(s + int(np.argmax(mag[s:e])), -1)], "target-attenuate"))
    seen = set()

    def fresh(ch: Change) -> bool:
        key = (ch.elements, ch.directions)
        if key in seen:
            return False
        seen.add(key)
        return True

    for i in range(max(len(add), len(sub))):
        for lst in (add, sub):
            if i < len(lst) and fresh(lst[i]):
                yield lst[i]
    # then the tone grid, level by level, where the other classes' evidence outweighs the target's
    score = other_total - resp
    for level in range(0, 12):
        g = _grid(band, n_bins, level)
        for b in g[np.lexsort((g, -score[g]))]:
            ch = Change.of([(int(b), 1)], "causal-grid")
            if fresh(ch):
                yield ch


def fft_candidates(
    strategy: str,
    coef: np.ndarray,
    band: Tuple[int, int],
    explanation: Optional[Any],
    seed: int,
) -> Iterator[Change]:
    """Single-element candidate changes of the ``fft`` space, in the order tried."""
    mag = np.abs(coef.reshape(-1))
    n_bins = mag.size
    b0, b1 = band
    if strategy == "causal":
        yield from _causal(explanation, mag, band, n_bins)
    elif strategy == "tone_scan":
        yield from _tone_scan(band, n_bins)
    elif strategy == "magnitude":
        idx = np.arange(b0, b1)
        for b in idx[np.lexsort((idx, -mag[b0:b1]))]:
            yield Change.of([(int(b), -1)], "magnitude-attenuate")
            yield Change.of([(int(b), 1)], "magnitude-amplify")
    else:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x666C6970]))
        picks = rng.permutation(b1 - b0) + b0
        signs = rng.integers(0, 2, size=picks.size) * 2 - 1
        for b, s in zip(picks, signs):
            yield Change.of([(int(b), int(s))], "random")
