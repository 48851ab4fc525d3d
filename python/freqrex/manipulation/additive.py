"""Additive causal search: partition refinement that *adds* quiet tones, and the vulnerability spectrum.

ReX's mutants only remove energy, so its maps miss where an added partial
moves the model.  The Halpern-Pearl definition allows any alternative value of
a variable; here the alternative is "this band plus a quiet tone".

The search (``strategy="additive"`` of :func:`freqrex.flip`)
------------------------------------------------------------
1. **Parts and a zero-query prior.**  The searched band is cut into parts of
   equal mel width (:class:`freqrex.margin.tree.Grid`, 16 to start).  Every
   part gets a *headroom*: the masking threshold (the lower of freqrex's and
   ART's, :meth:`SpectralClip.limit_db`) minus the clip's PSD, median over
   frames, mean over the part (dB).  A log-spectrogram front end changes most
   where a band is quiet, while audibility is set by the threshold, so parts
   are measured in order of headroom, largest first: when the budget runs out,
   the parts left are those least likely to matter.
2. **Additive mutants.**  A part's mutant adds one tone per band of the
   model's resolution it spans (96 mel bands over 0..Nyquist, at most 8 tones,
   at the mel centres of equal sub-bands), each with a phase drawn from the seed
   and the bin alone, and each at ``level_db`` over the masking threshold at
   its frequency (median over frames; a stationary tone of amplitude ``A``
   reads ``20 log10(A / 4)`` on the threshold's PSD scale).
3. **Credit.**  Every mutant is scored by the decision's continuous margin
   (:func:`freqrex.margin.margin_of`: the class's score minus the best other
   class's; for a targeted flip the distance to the target) and a part is
   credited with the *cut*, the margin lost when its tones alone are added.
   This is the part's own intervention effect, one query a part; the
   regression of :mod:`freqrex.margin` (random coalitions and their
   complements) pays for interaction terms this search does not use: an added
   tone acts on the few spectrogram bands around it, so the effects of
   separated parts barely interact, and the queries go to depth instead (a
   4-way split costs 4 queries, not the 14 of its coalitions).  Combinations
   are still tried, by the ``k > 1`` stage of the level search.
4. **Refinement.**  The part with the largest cut (ties: the narrower) is split
   into four parts of equal mel width, each measured alone, until parts are a
   48th of an octave wide (or one bin), a single tone flips, or the
   refinement's share of the budget (half) is spent.
5. **Level.**  Single-tone candidates follow: first the tones of the parts
   whose cut is at least :data:`LEAD_CUT_SHARE` of the largest (largest cut
   first), then alternately the other refined tones and the tone scan's grid
   in its own order (the 64-point log-frequency grid, then its midpoints), so
   the search exploits strong evidence at small budgets and covers the scan's
   candidates at half its rate after that, whatever the cuts say: on a
   pitch-sensitive model a part that mixes notes in and out of the key can
   have a negative cut while one tone in it flips (docs/evaluation.md,
   "Three changes to the searches").  They go through the quietest-flip search of
   :mod:`freqrex.manipulation.search`, which tries them at the level that
   would beat the quietest flip so far and bisects every flip to its quietest
   level (a single tone that flipped during the refinement starts it).
   With ``k > 1`` the combinations join singles at least a semitone apart
   (:data:`COMBINATION_SPREAD_OCTAVES`): the closest singles are mostly
   neighbours of one note in the part refined deepest, and five of them act
   like one louder tone (on the key CNN's saturated clips, a spread chord
   flips where five neighbours do not).

The ``causal`` strategy starts from this search: after the refinement its
level search tries the refined tones and the explanation's candidates
alternately (``then``).

The parts, their cuts and the flipping levels seen form the
:class:`~freqrex.manipulation.vulnerability.VulnerabilitySpectrum`.  Every
mutant is fixed by the seed and the order of the search; the batch size only
splits model calls, so it never changes the result; the budget is exact.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..margin.tree import Grid, Leaf
from .candidates import Change, log_grid
from .oracle import Oracle, wave_key
from .perturbation import SpectralClip
from .search import Attempt, LevelSearch, _score, quietest_flip, start_search
from .vulnerability import VulnerabilitySpectrum

__all__ = ["ToneSearch", "additive_flip", "tone_phase"]

#: Bands of the model's resolution between 0 Hz and the Nyquist frequency (as :mod:`freqrex.margin`).
RESOLUTION = 96
#: Parts of the first partition.
FIRST_PARTS = 16
#: Most tones one part's mutant adds.
MAX_TONES = 8
#: Parts no wider than this share of an octave are not split further.
FINEST_OCTAVES = 1.0 / 48.0
#: Share of the budget the refinement may spend (the rest: the level search).
REFINE_SHARE = 0.5
#: The level stage tries the refined tones of the parts whose cut is at least this share of the
#: largest cut first, then the other refined tones and the tone scan's grid alternately: strong
#: evidence is exploited at small budgets, the grid hedges against parts that cancel (docs/evaluation.md).
LEAD_CUT_SHARE = 0.1
#: The tones a k > 1 combination joins are at least a semitone apart: the refinement's closest tones
#: are neighbours of one note, and five of them act like one louder tone (docs/evaluation.md).
COMBINATION_SPREAD_OCTAVES = 1.0 / 12.0


def tone_phase(seed: int, bins: Sequence[int]) -> np.ndarray:
    """The phase (rad) of the tone the search adds at each rFFT bin: a function of the seed and the bin."""
    out = np.empty(len(bins))
    for i, b in enumerate(bins):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x61646474, int(b)]))
        out[i] = rng.uniform(0.0, 2.0 * math.pi)
    return out


class ToneSearch(LevelSearch):
    """Levels of an addition of tones of fixed phases and relative amplitudes.

    ``weights`` (default 1 each) are the tones' relative amplitudes, the
    loudest 1, so ``amplitude`` is the loudest tone's rFFT magnitude; ``log``
    (a list) receives ``(search, level, cache key)`` of every clip built.
    """

    def __init__(self, clip: SpectralClip, oracle: Oracle, change: Change, seed: int,
                 weights: Optional[np.ndarray] = None, log: Optional[list] = None):
        idx = np.asarray(change.elements, dtype=np.int64)
        w = np.ones(idx.size) if weights is None else np.asarray(weights, dtype=np.float64)
        self._setup(clip, oracle, change, idx, w * np.exp(1j * tone_phase(seed, idx)))
        self.log = log

    def perturbed(self, level_db: float):
        wave, delta, a = super().perturbed(level_db)
        if self.log is not None:
            self.log.append((self, float(level_db), wave_key(("flip-wave",), wave)))
        return wave, delta, a

    def level_of(self, scale: float) -> float:
        """The SNR level (dB) at which the unit waveform is played ``scale`` times as loud."""
        if self.unit_energy == 0.0 or scale <= 0.0 or self.clip.energy == 0.0:
            return math.inf
        return 10.0 * math.log10(self.clip.energy / (scale * scale * self.unit_energy))


@dataclass
class _Part:
    leaf: Leaf
    headroom: float
    tones: np.ndarray  # rFFT bins
    cut: float = math.nan
    snr: float = math.nan
    attempt: Optional[Attempt] = None


class _Threshold:
    """Per rFFT bin: the amplitude (rFFT units) of a stationary tone at the masking limit, and the headroom."""

    def __init__(self, clip: SpectralClip):
        limit = clip.limit_db()
        mask = clip.mask
        n_fft = clip._geometry()[0]
        self.limit = np.median(limit, axis=0) if limit.shape[0] else np.full(limit.shape[1], mask.offset_db)
        psd = np.median(mask.psd_db, axis=0) if mask.psd_db.shape[0] else np.full(limit.shape[1], -np.inf)
        self.headroom_stft = self.limit - psd
        self.offset = mask.offset_db
        self.ratio = n_fft / clip.n  # STFT bins per rFFT bin
        self.n = clip.n
        self.n_stft = limit.shape[1]

    def stft_bin(self, bins: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(np.asarray(bins) * self.ratio).astype(np.int64), 0, self.n_stft - 1)

    def amplitude(self, bins: np.ndarray) -> np.ndarray:
        peak = 4.0 * 10.0 ** ((self.limit[self.stft_bin(bins)] - self.offset) / 20.0)  # time-domain amplitude
        return peak * self.n / 2.0

    def headroom(self, f0: int, f1: int) -> float:
        s = np.unique(self.stft_bin(np.arange(f0, f1)))
        return float(np.mean(self.headroom_stft[s]))


def _tones(grid: Grid, leaf: Leaf) -> np.ndarray:
    """One bin per band of the model's resolution in the part (at most MAX_TONES), at the mel centres
    of equal sub-bands."""
    _, _, f0, f1 = leaf
    count = int(min(max(round(grid.mel_width(leaf) / grid.resolution_mel), 1), MAX_TONES))
    m0, m1 = grid.edges_mel[f0], grid.edges_mel[f1]
    centres = m0 + (np.arange(count) + 0.5) * (m1 - m0) / count
    bins = np.searchsorted(grid.edges_mel, centres, side="right") - 1
    return np.unique(np.clip(bins, max(f0, 1), max(f1 - 1, 1)))


def _finest(grid: Grid, leaf: Leaf, hz_per_bin: float) -> bool:
    _, _, f0, f1 = leaf
    if f1 - f0 < 2:
        return True
    centre = max(0.5 * (f0 + f1), 1.0) * hz_per_bin
    return (f1 - f0) * hz_per_bin <= centre * (2.0 ** FINEST_OCTAVES - 1.0)


def _split4(grid: Grid, leaf: Leaf) -> List[Leaf]:
    halves = grid.split(leaf)
    if halves is None:
        return [leaf]
    out: List[Leaf] = []
    for h in halves:
        q = grid.split(h) if h[3] - h[2] >= 2 else None
        out += list(q) if q is not None else [h]
    return out


def additive_flip(
    clip: SpectralClip,
    oracle: Oracle,
    *,
    band: Tuple[int, int],
    seed: int,
    k: int,
    original_scores: np.ndarray,
    probe_db: float,
    min_db: float,
    max_db: float,
    tol_db: float,
    level_db: float = 0.0,
    refine_share: float = REFINE_SHARE,
    then: Optional[Iterator[Change]] = None,
    start: Optional[Tuple[Change, float, np.ndarray]] = None,
) -> Tuple[Optional[Attempt], Optional[Attempt], VulnerabilitySpectrum]:
    """The additive search (see the module docstring) in the ``fft`` space.

    ``then``: candidates tried alternately with the refined tones, instead of
    the tone grid ordered by the cuts after them (the ``causal`` strategy
    passes the explanation's candidates, which end with the tone grid).
    ``start``: a change, level and perturbed clip that flipped before
    (``flip(start_from=...)``), re-scored first (one query) so that the search
    only looks for quieter flips (:func:`~freqrex.manipulation.search.start_search`).

    Returns ``(flip, closest, spectrum)``: the quietest flipping attempt (or
    None), the closest non-flipping one (or None), and the vulnerability
    spectrum (its class names and ``queries`` are the caller's to fill).
    """
    hz_per_bin = clip.sr / clip.n
    grid = Grid.build(1, clip.n_bins, band, hz_per_bin, RESOLUTION, clip.sr)
    thr = _Threshold(clip)
    log: list = []
    gap0 = oracle.gap(np.asarray(original_scores, dtype=np.float64))

    def part(leaf: Leaf) -> _Part:
        return _Part(leaf, thr.headroom(leaf[2], leaf[3]), _tones(grid, leaf))

    def by_headroom(parts: List[_Part]) -> List[_Part]:
        return sorted(parts, key=lambda p: (-p.headroom, p.leaf[2]))

    def measure(parts: List[_Part], stop: int) -> None:
        items = []
        for p in parts:
            if oracle.used + len(items) >= stop:
                break
            amp = thr.amplitude(p.tones) * 10.0 ** (level_db / 20.0)
            top = float(np.max(amp)) if amp.size else 0.0
            if top <= 0.0:
                continue
            change = Change.of([(int(b), 1) for b in p.tones], "additive-part")
            search = ToneSearch(clip, oracle, change, seed, amp / top, log)
            items.append((p, search, search.level_of(top)))
        if not items:
            return
        for (p, _, _), a in zip(items, _score(oracle, [(s, lv) for _, s, lv in items])):
            p.attempt, p.snr = a, a.level_db
            p.cut = gap0 - a.gap

    def make_search(c: SpectralClip, o: Oracle, change: Change) -> LevelSearch:
        if all(d > 0 for d in change.directions):
            return ToneSearch(c, o, change, seed, None, log)
        return LevelSearch(c, o, change)  # a subtraction (``then``): anti-phase with the clip, as usual

    # ---- the flip to beat, first (``start``)
    started = None
    if start is not None and oracle.remaining > 0:
        ch, level, audio = start
        first = start_search(clip, oracle, ch, level, audio, make_search)
        started = first.attempts([level])[0]

    # ---- refinement
    leaves = by_headroom([part(leaf) for leaf in grid.initial(FIRST_PARTS, 1)])
    stop = min(oracle.budget, oracle.used + max(1, int(refine_share * oracle.remaining)))
    measure(leaves, stop)
    while oracle.used < stop:
        if any(p.attempt is not None and p.attempt.flipped and len(p.tones) <= k for p in leaves):
            break
        open_parts = [p for p in leaves if p.attempt is not None and not _finest(grid, p.leaf, hz_per_bin)]
        if not open_parts:
            break
        best = min(open_parts, key=lambda p: (-_round(p.cut, gap0), p.leaf[3] - p.leaf[2], p.leaf[2]))
        kids = [part(leaf) for leaf in _split4(grid, best.leaf)]
        if len(kids) < 2:
            break
        i = leaves.index(best)
        leaves[i:i + 1] = kids
        measure(by_headroom(kids), stop)

    # ---- level: single tones from the most effective parts, then the tone grid
    leaves.sort(key=lambda p: p.leaf[2])
    starts = np.array([p.leaf[2] for p in leaves])

    def holder(b: int) -> _Part:
        return leaves[max(int(np.searchsorted(starts, b, side="right")) - 1, 0)]

    ranked = sorted((p for p in leaves if p.attempt is not None),
                    key=lambda p: (-_round(p.cut, gap0), p.leaf[3] - p.leaf[2], p.leaf[2]))

    top_cut = max((_round(p.cut, gap0) for p in ranked), default=-math.inf)

    def strong(p: _Part) -> bool:
        """Compared at the rounding of the ranking, so float noise cannot change the order."""
        return top_cut > 0.0 and _round(p.cut, gap0) >= LEAD_CUT_SHARE * top_cut

    def refined(lead: bool) -> Iterator[Change]:
        """The refined tones of the strong parts (``lead``), or of the others, largest cut first."""
        for p in ranked:
            if strong(p) == lead:
                for b in p.tones:
                    yield Change.of([(int(b), 1)], "additive-tone")

    def grid() -> Iterator[Change]:
        """The tone scan's candidates, in its order: the 64-point log grid, then its midpoints."""
        for level in range(0, 12):
            for b in log_grid(band[0], band[1], 64, level):
                yield Change.of([(int(b), 1)], "additive-grid")

    def candidates() -> Iterator[Change]:
        """The strong parts' tones, then the other refined tones and the grid (with ``then``, the
        refined tones and ``then``) alternately."""
        seen = set()
        if then is None:
            for ch in refined(True):
                key = (ch.elements, ch.directions)
                if key not in seen:
                    seen.add(key)
                    yield ch
            streams = [refined(False), grid()]
        else:
            streams = [itertools.chain(refined(True), refined(False)), iter(then)]
        while streams:
            for st in list(streams):
                for ch in st:
                    key = (ch.elements, ch.directions)
                    if key not in seen:
                        seen.add(key)
                        yield ch
                        break
                else:
                    streams.remove(st)

    # single tones, and the parts of at most k tones that flipped (one may have ended the refinement)
    initial = [p.attempt for p in leaves if p.attempt is not None
               and (len(p.tones) == 1 or (p.attempt.flipped and len(p.tones) <= k))]
    if started is not None:
        initial = [started] + initial
    best_flip, closest = quietest_flip(
        clip, oracle, candidates(), k=k, probe_db=probe_db, min_db=min_db, max_db=max_db, tol_db=tol_db,
        make_search=make_search, initial=initial, spread_octaves=COMBINATION_SPREAD_OCTAVES,
        singles_from_db=probe_db if started is not None and k > 1 else None,
    )

    # ---- the spectrum: every part's cut, and the quietest flip seen of a single tone in it
    flip_snr = np.full(len(leaves), np.nan)
    index = {id(p): i for i, p in enumerate(leaves)}
    for search, level, key in log:
        if len(search.change) != 1 or key not in oracle.cache:
            continue
        if oracle.gap(oracle.cache[key]) < 0:
            i = index[id(holder(int(search.change.elements[0])))]
            flip_snr[i] = level if np.isnan(flip_snr[i]) else max(flip_snr[i], level)
    edges = np.array([p.leaf[2] for p in leaves] + [leaves[-1].leaf[3]], dtype=np.float64) * hz_per_bin
    spectrum = VulnerabilitySpectrum(
        lo_hz=edges[:-1], hi_hz=edges[1:],
        headroom_db=np.array([p.headroom for p in leaves]),
        cut=np.array([p.cut for p in leaves]),
        probe_snr_db=np.array([p.snr for p in leaves]),
        tones=np.array([len(p.tones) for p in leaves], dtype=np.int64),
        flip_snr_db=flip_snr,
        margin=float(gap0) if oracle.target is None else -float(gap0),
        level_db=float(level_db), original_class=oracle.original_class, original_name=None,
        target=oracle.target, queries=oracle.used, budget=oracle.budget, seed=int(seed),
        sample_rate=int(clip.sr), n_samples=int(clip.n),
    )
    return best_flip, closest, spectrum


def _round(cut: float, gap0: float) -> float:
    """A cut compared at 4 significant digits of the original margin (NaN: never measured, last), so
    float noise across batch sizes cannot reorder the search."""
    if not math.isfinite(cut):
        return -math.inf
    scale = abs(gap0) if math.isfinite(gap0) and gap0 != 0 else 1.0
    return round(cut / scale, 4)
