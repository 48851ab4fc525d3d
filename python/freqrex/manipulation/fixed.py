"""Fixed changes (the first flips of freqrex, kept as a mode): remove, gain or rotate.

Candidates ``c0, c1, ...`` (the explanation's ranking for ``causal``; the
baselines' bins otherwise) are visited in order.  Each is tried alone; after
every ``k`` candidates (``k > 1``) the block of those ``k`` is tried
together, with each change of ``kinds`` in turn.  The first set that flips
wins; a block is then shrunk greedily (least-ranked element first) within the
budget.  In the ``stft`` space the change is scaled down uniformly until it is
``margin_safety_db`` under the masking threshold in every frame.  The size of
the change is fixed (``max_gain_db``, ``max_phase``): there is no search for
the quietest one (see :mod:`freqrex.manipulation.search` for that).
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple

import numpy as np

from .oracle import Oracle, wave_key
from .perturbation import SpectralClip

__all__ = ["ranked_elements", "fixed_flip"]


def ranked_elements(
    strategy: str,
    clip: SpectralClip,
    explanation: Any,
    band: Tuple[int, int],
    count: int,
    seed: int,
) -> np.ndarray:
    """The first ``count`` candidate elements (flat indices), in the order tried."""
    b0, b1 = band
    mag = np.abs(clip.coef)
    if strategy == "causal" and clip.space == "stft" and explanation.space == "fft":
        # an fft explanation ranks frequencies; project it onto the STFT bins (mean responsibility of
        # the FFT bins inside each STFT bin), and rank cells by it, then by the cell's magnitude
        fresp = np.asarray(explanation.responsibility, dtype=np.float64).reshape(-1)
        per_bin = fresp.size - 1  # N // 2 FFT bins over the STFT's n_fft // 2
        n_fft_bins = 2 * per_bin
        edges = np.clip(np.rint((np.arange(clip.n_bins + 1) - 0.5) * n_fft_bins / clip.n_fft), 0, fresp.size)
        edges = edges.astype(np.int64)
        csum = np.concatenate([[0.0], np.cumsum(fresp)])
        width = np.maximum(edges[1:] - edges[:-1], 1)
        proj = (csum[edges[1:]] - csum[edges[:-1]]) / width
        sub = np.zeros(clip.n_bins)
        sub[b0:b1] = proj[b0:b1]
        flat = (np.arange(clip.n_frames)[:, None] * clip.n_bins + np.arange(b0, b1)[None, :]).ravel()
        r = np.broadcast_to(sub[b0:b1], (clip.n_frames, b1 - b0)).ravel()
        m = mag[:, b0:b1].ravel()
        order = np.lexsort((flat, -m, -r))[:count]
        return flat[order]
    if strategy == "causal":
        resp = np.asarray(explanation.responsibility, dtype=np.float64).reshape(-1)
        ranked = np.asarray(explanation.ranking, dtype=np.int64)
        first = explanation.sufficient_necessary
        if first is None:
            first = explanation.sufficient
        in_first = np.zeros(resp.size, dtype=bool)
        if first is not None:
            in_first = np.asarray(first, dtype=bool).reshape(-1)
        m = mag.reshape(-1)[ranked]
        # primary: in the first set; then responsibility desc; then magnitude desc; then index
        order = np.lexsort((ranked, -m, -resp[ranked], ~in_first[ranked]))
        return ranked[order][:count]
    n_bins = clip.n_bins
    if strategy == "magnitude":
        sub = mag[:, b0:b1]
        flat_sub = sub.reshape(-1)
        take = min(count, flat_sub.size)
        if take < flat_sub.size:
            part = np.argpartition(-flat_sub, take - 1)[:take]
        else:
            part = np.arange(flat_sub.size)
        part = part[np.lexsort((part, -flat_sub[part]))]
        frames, cols = np.divmod(part, b1 - b0)
        return frames * n_bins + cols + b0
    # random: uniform without replacement over the band
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x666C6970]))
    width = b1 - b0
    total = clip.n_frames * width
    picks = rng.permutation(total)[: min(count, total)]  # a prefix of one permutation, whatever count
    frames, cols = np.divmod(picks, width)
    return frames * n_bins + cols + b0


def _sets(cands: np.ndarray, k: int) -> List[Tuple[int, ...]]:
    """Candidate sets in the order tried: every candidate alone, and after every k a block of k."""
    out: List[Tuple[int, ...]] = []
    for i in range(cands.size):
        out.append((i,))
        if k > 1 and (i + 1) % k == 0:
            out.append(tuple(range(i - k + 1, i + 1)))
    return out



#: Largest round of fixed changes scored before looking for a success (the default batch size).
FIXED_ROUND = 16


def fixed_flip(
    clip: SpectralClip,
    oracle: Oracle,
    cands: np.ndarray,
    *,
    k: int,
    kinds: Tuple[str, ...],
    max_gain_db: float,
    max_phase: float,
    minimize: bool,
    margin_safety_db: float,
):
    """Enumerate fixed changes of candidate sets; returns (found, best) tuples
    ``(set, kind, scores, scale, wave)`` (``best`` with the gap first)."""
    space = clip.space
    sets = _sets(cands, k)
    entries = [(s, kind) for s in sets for kind in kinds]

    def param(kind: str) -> Tuple[Optional[float], Optional[float]]:
        return (max_gain_db if kind == "gain" else None, max_phase if kind == "phase" else None)

    def perturb(flat: np.ndarray, kind: str) -> Tuple[np.ndarray, float]:
        g, ph = param(kind)
        d = clip.fixed_delta(flat, kind, g or 0.0, ph or 0.0)
        scale = 1.0
        if space == "stft":
            m = clip.margin(d)
            if m < margin_safety_db:
                scale = 10.0 ** ((m - margin_safety_db) / 20.0) if math.isfinite(m) else 0.0
                d = d * scale
        return (clip.x + d).astype(np.float32), scale

    def evaluate(batch: List[Tuple[Tuple[int, ...], str]]) -> List[Tuple[np.ndarray, float, np.ndarray]]:
        waves, scales = [], []
        for s, kind in batch:
            y, scale = perturb(np.sort(cands[list(s)]), kind)
            waves.append(y)
            scales.append(scale)
        rows = oracle.scores(waves, [wave_key(("fixed-wave",), w) for w in waves])
        return list(zip(rows, scales, waves))

    best = None
    found = None
    pos = 0
    # rounds of 4, 8, 16, 16, ... candidates whatever the batch size (the oracle splits a round into
    # model calls of batch_size), so that the queries a success wastes, and the result, depend on the
    # inputs only: small first rounds, so that an early success wastes little
    step = 4
    while pos < len(entries) and oracle.remaining > 0 and found is None:
        take = min(step, oracle.remaining, len(entries) - pos)
        batch = entries[pos : pos + take]
        for (s, kind), (scores, scale, y) in zip(batch, evaluate(batch)):
            if oracle.passes(scores):
                found = (s, kind, scores, scale, y)
                break
            g = oracle.gap(scores)
            if best is None or g < best[0]:
                best = (g, s, kind, scores, scale, y)
        pos += take
        step = min(FIXED_ROUND, step * 2)

    if found is not None and minimize and len(found[0]) > 1:
        s, kind = found[0], found[1]
        while len(s) > 1 and oracle.remaining > 0:
            trials = [tuple(v for v in s if v != drop) for drop in sorted(s, reverse=True)]
            trials = trials[: oracle.remaining]
            for t, (scores, scale, y) in zip(trials, evaluate([(t, kind) for t in trials])):
                if oracle.passes(scores):
                    s = t
                    found = (t, kind, scores, scale, y)
                    break
            else:
                break
    return found, best
