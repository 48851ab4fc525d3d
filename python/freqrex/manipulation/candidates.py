"""Where a flip looks: candidate changes, in the order they are tried, for each strategy.

A candidate is a :class:`Change`: one or more elements (flat indices of the
space) with a direction each, +1 (add in phase with the coefficient: amplify
it, or add a tone where the clip has almost nothing) or -1 (subtract:
attenuate, remove, or beyond).  Its size is not part of it: the search finds
the quietest size that flips (:mod:`freqrex.manipulation.search`).

Strategies
----------
``"causal"`` (freqrex)
    From the explanation of the clip.  The target's responsibility map says
    where the evidence for the decision lies; ReX's per-class maps
    (``Explanation.class_responsibility``) say which parts, removed, let
    another class win: the evidence that stands between the decision and its
    runner-up.  A flip changes exactly there: for each responsible part, most
    responsible first (the runner-up's parts, the original class's parts and
    the sufficient-and-necessary set, interleaved), its loudest bin
    attenuated (weaken the evidence) and a tone added inside it, at its
    log-frequency centre and, for wide parts, at log-spaced points across it
    (corrupt the evidence's pattern: a model reading a band's shape is
    thrown by a foreign partial in it).  After them comes the tone grid of
    ``"tone_scan"``, most responsible grid points first, so the causal
    strategy never has fewer places to look than the scan.  The ``fft``
    quietest flip runs the additive refinement first and tries its tones
    and these candidates alternately
    (:data:`freqrex.manipulation.CAUSAL_STARTS_ADDITIVE`).
``"tone_scan"``
    One added tone at log-spaced frequencies (64, then the midpoints, ...).
``"magnitude"``
    The largest-magnitude bins, each attenuated, then amplified.
``"random"``
    Bins drawn uniformly (seeded) from the searched band, random direction.
``"additive"``
    Not a candidate list: the additive partition search of
    :mod:`freqrex.manipulation.additive` chooses its tones from the margin
    cuts it measures (``fft``, ``change="quietest"`` only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["Change", "fft_candidates", "STRATEGIES", "log_grid", "parts_of"]

STRATEGIES = ("causal", "random", "magnitude", "tone_scan", "additive")


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


def log_grid(lo_bin: int, hi_bin: int, points: int, level: int = 0) -> np.ndarray:
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


def _grid(band: Tuple[int, int], level: int, points: int = 64) -> np.ndarray:
    return log_grid(band[0], band[1], points, level)


def _tone_scan(band: Tuple[int, int]) -> Iterator[Change]:
    seen = set()
    for level in range(0, 12):
        for b in _grid(band, level):
            if int(b) not in seen:
                seen.add(int(b))
                yield Change.of([(int(b), 1)], "tone-scan")


def _part_changes(s: int, e: int, mag: np.ndarray, origin: str, points: int) -> List[Change]:
    """Changes inside one responsible part: its loudest bin attenuated, tones across it."""
    out = [Change.of([(s + int(np.argmax(mag[s:e])), -1)], origin + "-attenuate")]
    lo, hi = max(s, 1), max(e - 1, 1)
    n = 1 if hi <= lo * 1.05 else points
    pos = [np.sqrt(lo * hi)] if n == 1 else np.geomspace(lo, hi, n + 2)[1:-1]
    for f in pos:
        out.append(Change.of([(int(round(f)), 1)], origin + "-tone"))
    return out


def _causal(explanation: Any, mag: np.ndarray, band: Tuple[int, int]) -> Iterator[Change]:
    b0, b1 = band
    resp = np.asarray(explanation.responsibility, dtype=np.float64).reshape(-1)
    maps: Dict[int, np.ndarray] = {
        int(c): np.asarray(m, dtype=np.float64).reshape(-1)
        for c, m in (getattr(explanation, "class_responsibility", None) or {}).items()
    }
    runner = getattr(explanation, "runner_up", None)
    # the runner-up first, then the other classes by responsibility mass
    others = sorted(maps, key=lambda c: (c != runner, -float(maps[c][b0:b1].sum()), c))
    streams: List[List[Change]] = []
    for c in others:
        streams.append([ch for s, e, _ in parts_of(maps[c], b0, b1)[:16]
                        for ch in _part_changes(s, e, mag, f"class-{c}", 3)])
    streams.append([ch for s, e, _ in parts_of(resp, b0, b1)[:16] for ch in _part_changes(s, e, mag, "target", 3)])
    first = getattr(explanation, "sufficient_necessary", None)
    if first is None:
        first = getattr(explanation, "sufficient", None)
    if first is not None:
        idx = np.flatnonzero(np.asarray(first, dtype=bool).reshape(-1)[b0:b1]) + b0
        streams.append([Change.of([(int(b), -1)], "necessary-attenuate") for b in idx[np.lexsort((idx, -mag[idx]))][:8]])
    seen = set()

    def fresh(ch: Change) -> bool:
        key = (ch.elements, ch.directions)
        if key in seen:
            return False
        seen.add(key)
        return True

    for i in range(max((len(st) for st in streams), default=0)):
        for st in streams:
            if i < len(st) and fresh(st[i]):
                yield st[i]
    # then the tone grid, level by level, most responsible points first (any class's map)
    score = resp + sum((maps[c] for c in others), np.zeros_like(resp))
    for level in range(0, 12):
        g = _grid(band, level)
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
    b0, b1 = band
    if strategy == "causal":
        yield from _causal(explanation, mag, band)
    elif strategy == "tone_scan":
        yield from _tone_scan(band)
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
