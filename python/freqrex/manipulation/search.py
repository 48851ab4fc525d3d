"""The searches: the quietest change of at most k bins, and masked STFT changes.

Quietest change (``fft``)
-------------------------
A candidate :class:`~freqrex.manipulation.candidates.Change` fixes the
elements and directions; its size is one number, the SNR of the change
(every element gets the same amplitude, ``a = sqrt(sum x^2 / (10^(L/10) *
E_unit))`` for a level of ``L`` dB).  The search keeps the quietest flip found
so far (``best``) and tries candidates in fixed rounds of
:data:`ROUND` at the level that would beat it (``best + tol_db``; the probe
level ``probe_db`` before any flip), so every query either finds a quieter
flip or rules a candidate out.  A candidate that flips is pushed to its
quietest level by a safeguarded 1-D search (:func:`quietest_level`:
bisection in dB with a regula-falsi step on the model's score gap,
to ``tol_db``).  With ``k > 1`` a reserve of the budget then combines the
candidates that came closest (smallest gap) into sets of 2..k elements, each
searched the same way; they start from the k = 1 result: the search first runs
exactly the k = 1 search (same candidates, same order, same levels) on all but
that reserve, then joins its flip with the closest other singles (to find a
quieter flip with more elements) or, when no single flipped, combines the
closest singles at the loudest level allowed; what the reserve leaves goes
back to single candidates; before that, each member of the flipping
combination is left out in turn at the level that would beat it, and any
smaller set that flips is pushed to its own quietest level (a combination
started from a loud k = 1 flip carries that tone, which adds nothing when
quiet).  The result is never a louder flip than the k = 1
search found in its first ``budget - reserve`` queries.  A k > 1 search that
starts from a k = 1 flip (``flip(start_from=...)``) probes its singles no
louder than the probe level: just under a loud flip the singles' closeness
ranks them by how they act loud, while the combinations need the tones that
come closest quietly (a clip whose single tones flip only at 2.5 dB gave a
two-tone flip at 12.6 dB that way, and a five-tone one at 31.5 dB probed at
20 dB).  If nothing flipped at the probe level, the closest
candidates are tried at the loudest level allowed (``min_db``; for a pure
subtraction, no louder than removing its largest element) and searched
from there.  Rounds have a fixed size and the order of candidates is fixed,
so the result depends on the inputs and the seed only, not on the batch size.

Masked change (``stft``)
------------------------
The change is bounded cell by cell by the lower of two masking thresholds of
the original, freqrex's and ART 1.20.1's (the independent check, on ART's own
framing, :mod:`freqrex.signal.qin`): a cell may change by at most the
magnitude whose PSD lies ``safety_db`` (3 dB by default) under it
(:meth:`SpectralClip.envelope`), in phase (+) or in anti-phase
(-) with the cell.  The direction is found by a SimBA-style random search
(Guo et al. 2019) over time-frequency tiles, coarse to fine (whole-clip
bands, then bands over 8 and 32 time segments): a tile's cells are set to
their bound in one direction, kept if the score gap shrinks, else the other
direction is tried.  Tiles are visited in the order of the ``stft``
explanation (``causal``: the original class's responsibility plus the other
classes' maps, i.e. the parts whose removal lets another class win, summed
over the tile; weakened first), by energy (``magnitude``), or at random.  Resynthesis spreads a cell's change into
its neighbours, so before a candidate is scored its difference is re-analysed
(on freqrex's frames and on ART's) and every frame over either threshold has
its cells scaled down until every frame is :data:`MARGIN_GUARD_DB` under both:
every scored clip, the flip included, is inaudible by both models in every
cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import islice
from typing import Any, Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from .candidates import Change
from .oracle import Oracle, wave_key
from .perturbation import SpectralClip, unit_phase

#: Candidates tried per round (one model call when batch_size >= ROUND).
ROUND = 8

#: Masked search: every scored change (the float32 clip minus the original, as the model gets it)
#: stays this far (dB) under both thresholds in every cell (ART's float32 STFT moves cells by far less).
MARGIN_GUARD_DB = 0.1


@dataclass
class Attempt:
    """A scored perturbation: a change at a level (its waveform is made again when asked for, so that
    the many attempts a search keeps cost no memory of the clip's size)."""

    change: Change
    level_db: float
    scores: np.ndarray
    gap: float
    amplitude: float
    search: "LevelSearch"

    @property
    def flipped(self) -> bool:
        return self.gap < 0

    @property
    def delta(self) -> np.ndarray:
        """The difference waveform (float64)."""
        return self.amplitude * self.search.unit

    @property
    def wave(self) -> np.ndarray:
        """The perturbed clip as the model got it (float32)."""
        return (self.search.clip.x + self.delta).astype(np.float32)


class LevelSearch:
    """Perturbations of one change at a given SNR level.

    The change's unit waveform (unit amplitude per element) is kept among the
    clip's most recently used (:meth:`SpectralClip.held_waveform`), not by the
    search: a flip search keeps every change it tried.
    """

    def __init__(self, clip: SpectralClip, oracle: Oracle, change: Change):
        idx = np.asarray(change.elements, dtype=np.int64)
        frames, bins = np.divmod(idx, clip.n_bins)
        u = unit_phase(clip.coef[frames, bins]) * np.asarray(change.directions, dtype=np.float64)
        self._setup(clip, oracle, change, idx, u)

    def _setup(self, clip: SpectralClip, oracle: Oracle, change: Change, flat: np.ndarray,
               coefficients: np.ndarray) -> None:
        """The change's elements and their complex amplitudes at unit level."""
        self.clip = clip
        self.oracle = oracle
        self.change = change
        self._flat = flat
        self._coefficients = coefficients
        self._token = clip.new_token()
        unit = self.unit
        self.unit_energy = float(np.dot(unit, unit))

    @property
    def unit(self) -> np.ndarray:
        """Waveform (float64, read-only) of unit amplitude per element."""
        return self.clip.held_waveform(self._token, self._flat, self._coefficients)

    def loudest(self, min_db: float) -> float:
        """The loudest level worth trying: ``min_db``, or for a pure subtraction the level that
        removes its largest element exactly (beyond it, subtracting more makes that bin louder
        again, in anti-phase)."""
        if not all(d < 0 for d in self.change.directions) or self.unit_energy == 0.0 or self.clip.energy == 0.0:
            return min_db
        idx = np.asarray(self.change.elements, dtype=np.int64)
        frames, bins = np.divmod(idx, self.clip.n_bins)
        top = float(np.max(np.abs(self.clip.coef[frames, bins])))
        if top == 0.0:
            return min_db
        removal = 10.0 * math.log10(self.clip.energy / (top * top * self.unit_energy))
        return max(min_db, removal)

    def amplitude(self, level_db: float) -> float:
        if self.unit_energy == 0.0 or self.clip.energy == 0.0:
            return 0.0
        return math.sqrt(self.clip.energy / (10.0 ** (level_db / 10.0) * self.unit_energy))

    def perturbed(self, level_db: float) -> Tuple[np.ndarray, np.ndarray, float]:
        """The perturbed clip (float32), its difference and the element amplitude at a level."""
        a = self.amplitude(level_db)
        d = a * self.unit
        return (self.clip.x + d).astype(np.float32), d, a

    def attempts(self, levels: Sequence[float]) -> List[Attempt]:
        return _score(self.oracle, [(self, float(level)) for level in levels])


class WaveformSearch(LevelSearch):
    """Levels of a given difference waveform, by its spectrum on the change's elements."""

    def __init__(self, clip: SpectralClip, oracle: Oracle, change: Change, delta: np.ndarray):
        idx = np.asarray(change.elements, dtype=np.int64)
        self._setup(clip, oracle, change, idx, np.fft.rfft(np.asarray(delta, dtype=np.float64))[idx])


def start_search(clip: SpectralClip, oracle: Oracle, change: Change, level_db: float, audio: np.ndarray,
                 build: Callable[..., LevelSearch] = LevelSearch) -> LevelSearch:
    """The level search of a flip to start from (``flip(start_from=...)``, an ``fft`` change).

    ``build(clip, oracle, change)`` makes the change as this search makes its
    own; when that is not the start's waveform (``audio``, the flip's perturbed
    clip) at ``level_db`` -- a start found with another seed or strategy, or a
    part of the additive refinement with tones of unequal levels -- the search
    plays the start's own waveform instead, so that the flip to beat is the one
    the caller found.
    """
    built = build(clip, oracle, change)
    own = np.asarray(audio, dtype=np.float32)
    wave, _, _ = LevelSearch.perturbed(built, level_db)  # not logged: nothing is scored here
    if np.max(np.abs(wave - own)) <= 1e-6 * max(float(np.max(np.abs(own))), 1e-30):
        return built
    return WaveformSearch(clip, oracle, change, own.astype(np.float64) - clip.x)


def _score(oracle: Oracle, items: Sequence[Tuple["LevelSearch", float]]) -> List[Attempt]:
    """Score (change, level) pairs in one batch: one query each."""
    made = [s.perturbed(level) for s, level in items]
    rows = oracle.scores([w for w, _, _ in made], [wave_key(("flip-wave",), w) for w, _, _ in made])
    return [Attempt(s.change, level, r, oracle.gap(r), a, s) for (s, level), r, (_, _, a) in zip(items, rows, made)]


def _attempt_round(clip: SpectralClip, oracle: Oracle, changes: Sequence[Change], level: float,
                   make_search: Callable[..., LevelSearch] = LevelSearch) -> List[Attempt]:
    """Score several changes at one level: one query each, one batch."""
    return _score(oracle, [(make_search(clip, oracle, ch), level) for ch in changes])


def quietest_level(
    clip: SpectralClip,
    oracle: Oracle,
    flip: Attempt,
    *,
    max_db: float,
    tol_db: float,
    quiet: Optional[Attempt] = None,
) -> Attempt:
    """Push a flipping attempt to the quietest level that still flips (to ``tol_db``).

    ``quiet`` is a known non-flipping level above ``flip.level_db``; without
    one, ``max_db`` is tried first.  Monotone models give the exact quietest
    level to ``tol_db``; otherwise a level that flips, never a louder one than
    ``flip``.
    """
    search = flip.search
    lo = flip  # flips (louder)
    hi = quiet
    if hi is None:
        if oracle.remaining < 1 or flip.level_db >= max_db:
            return flip
        top = search.attempts([max_db])[0]
        if top.flipped:
            return top
        hi = top
    illinois_side = 0
    g_lo, g_hi = lo.gap, hi.gap
    while hi.level_db - lo.level_db > tol_db and oracle.remaining > 0:
        width = hi.level_db - lo.level_db
        # regula falsi on the gap (Illinois), kept inside the middle 80% of the bracket
        t = (-g_lo) / (g_hi - g_lo) if g_hi != g_lo else 0.5
        t = min(max(t, 0.2), 0.8)
        mid = lo.level_db + t * width
        a = search.attempts([mid])[0]
        if a.flipped:
            lo, g_lo = a, a.gap
            if illinois_side == -1:
                g_hi /= 2
            illinois_side = -1
        else:
            hi, g_hi = a, a.gap
            if illinois_side == 1:
                g_lo /= 2
            illinois_side = 1
    return lo


def quietest_flip(
    clip: SpectralClip,
    oracle: Oracle,
    candidates: Iterator[Change],
    *,
    k: int,
    probe_db: float,
    min_db: float,
    max_db: float,
    tol_db: float,
    make_search: Callable[..., LevelSearch] = LevelSearch,
    initial: Sequence[Attempt] = (),
    spread_octaves: float = 0.0,
    singles_from_db: Optional[float] = None,
) -> Tuple[Optional[Attempt], Optional[Attempt]]:
    """The quietest flip of at most ``k`` elements within the oracle's budget.

    Returns ``(flip, closest)``: the quietest flipping attempt (or None) and
    the non-flipping attempt that came closest (or None).  ``make_search(clip,
    oracle, change)`` builds the level search of a candidate (default: the
    in-phase :class:`LevelSearch`; the additive search adds tones of a seeded
    random phase).  ``initial``: attempts already scored by the caller (at most
    ``k`` elements each); the quietest of those that flipped is pushed to its
    quietest level first, the others join the singles that combinations and
    loud retries draw on.  ``spread_octaves``: the singles a combination joins
    are at least this far apart in frequency (rFFT bins of one frame; 0: any
    disjoint singles), so that a combination is not five neighbours of one
    note.  ``singles_from_db``: single candidates are probed no louder than
    this level even after a louder flip (a k > 1 search from a k = 1 flip,
    ``flip(start_from=...)``: the k = 1 search has tried its singles at the
    loud levels already; their gaps at this level choose the combinations).
    """
    best: Optional[Attempt] = None
    closest: Optional[Attempt] = None
    tried: List[Attempt] = []  # non-flipping single attempts (for combinations and loud retries)
    # the reserve for combinations: per set size, one probe and a level search
    per_search = 2 + int(math.ceil(math.log2(max((max_db - min_db) / tol_db, 2.0))))
    reserve = (k - 1) * (1 + per_search) if k > 1 else 0
    reserve = min(reserve, oracle.budget // 2)
    pending: List[Change] = []
    exhausted = False

    def consider(a: Attempt) -> None:
        nonlocal closest
        if not a.flipped and (closest is None or a.gap < closest.gap):
            closest = a

    def improve(a: Attempt) -> None:
        nonlocal best
        q = quietest_level(clip, oracle, a, max_db=max_db, tol_db=tol_db)
        if best is None or q.level_db > best.level_db:
            best = q

    loud_tested: set = set()
    for a in initial:
        consider(a)
        if not a.flipped and len(a.change) == 1:
            tried.append(a)
    started = [a for a in initial if a.flipped and len(a.change) <= k]
    if started and oracle.remaining > 0:
        improve(max(started, key=lambda a: (a.level_db, -a.gap)))

    def loud_retry() -> None:
        """No flip yet: the closest candidate not yet tried loud, at the loudest level allowed."""
        nonlocal best
        for a in sorted(tried, key=lambda a: (a.gap, -a.level_db)):
            key = (a.change.elements, a.change.directions)
            if key in loud_tested:
                continue
            loud_tested.add(key)
            loudest = a.search.loudest(min_db)
            if oracle.remaining < 1 or loudest >= a.level_db:
                return
            loud = a.search.attempts([loudest])[0]
            consider(loud)
            if loud.flipped:
                q = quietest_level(clip, oracle, loud, max_db=max_db, tol_db=tol_db, quiet=a)
                if best is None or q.level_db > best.level_db:
                    best = q
            return

    def prune() -> None:
        """A flipping combination may carry a member that adds nothing when quiet (the k = 1 flip's
        loud tone): leave each member out in turn, at the level that would beat the flip, and go on
        from any smaller set that flips, until none does."""
        shrunk = True
        while shrunk and best is not None and len(best.change) > 1:
            shrunk = False
            whole = best
            pairs = list(zip(whole.change.elements, whole.change.directions))
            for i in range(len(pairs)):
                if oracle.remaining < 1 or best.level_db >= max_db:
                    return
                sub = Change.of(pairs[:i] + pairs[i + 1:], whole.change.origin)
                a = make_search(clip, oracle, sub).attempts([min(best.level_db + tol_db, max_db)])[0]
                consider(a)
                if a.flipped:
                    improve(a)
                    shrunk = best is not whole
                    break

    def scan_singles(reserve: int) -> None:
        nonlocal pending, exhausted
        while oracle.remaining > reserve:
            room = oracle.remaining - reserve
            # before the first flip, a round takes at most half of what is left: room for a loud retry
            take = min(ROUND, room if best is not None else max(1, room // 2))
            batch = pending[:take]
            pending = pending[take:]
            if len(batch) < take and not exhausted:
                more = list(islice(candidates, take - len(batch)))
                exhausted = len(more) < take - len(batch)
                batch += more
            if not batch:
                break
            level = probe_db if best is None else min(best.level_db + tol_db, max_db)
            if singles_from_db is not None:
                level = max(level, min(singles_from_db, max_db))
            if best is not None and best.level_db >= max_db:
                break
            results = _attempt_round(clip, oracle, batch, level, make_search)
            for a in results:
                consider(a)
                if not a.flipped:
                    tried.append(a)
            flips = sorted((a for a in results if a.flipped), key=lambda a: a.gap)
            if flips:
                improve(flips[0])
                pending = [a.change for a in flips[1:]] + pending  # retried at the new level
            elif best is None and oracle.remaining > reserve:
                loud_retry()

    scan_singles(reserve)
    # nothing flipped yet: the closest singles, as loud as allowed
    for _ in range(4):
        if best is not None or oracle.remaining < 1:
            break
        loud_retry()
    # combinations, starting from the k = 1 result: its flip joined by the closest other singles
    # (to go quieter), or, without a flip, the closest singles together (loud)
    if k > 1:
        ranked = sorted(tried, key=lambda a: (a.gap, -a.level_db))
        singles: List[Change] = [best.change] if best is not None else []
        used = sum(len(s) for s in singles)  # elements, not changes: a start may hold several
        for a in ranked:
            if used >= k:
                break
            if used + len(a.change) <= k and all(
                set(a.change.elements).isdisjoint(s.elements) and _apart(a.change, s, spread_octaves)
                for s in singles
            ):
                singles.append(a.change)
                used += len(a.change)
        for m in range(2, len(singles) + 1):
            if oracle.remaining < 1 or (best is not None and best.level_db >= max_db):
                break
            combo = Change.of([p for s in singles[:m] for p in zip(s.elements, s.directions)], f"combo-{m}")
            level = probe_db if best is None else min(best.level_db + tol_db, max_db)
            a = make_search(clip, oracle, combo).attempts([level])[0]
            consider(a)
            if not a.flipped and best is None and oracle.remaining > 0 and a.search.loudest(min_db) < level:
                loud = a.search.attempts([a.search.loudest(min_db)])[0]
                consider(loud)
                if loud.flipped:
                    q = quietest_level(clip, oracle, loud, max_db=max_db, tol_db=tol_db, quiet=a)
                    if best is None or q.level_db > best.level_db:
                        best = q
            elif a.flipped:
                q = quietest_level(clip, oracle, a, max_db=max_db, tol_db=tol_db)
                if best is None or q.level_db > best.level_db:
                    best = q
        prune()
        scan_singles(0)  # what the combinations left goes to further single candidates
    return best, closest


def _apart(a: Change, b: Change, octaves: float) -> bool:
    """Whether every element of ``a`` is at least ``octaves`` from every element of ``b`` (bins of one
    rFFT frame: the bin index within the frame, its frequency up to a constant)."""
    if octaves <= 0.0:
        return True
    ratio = 2.0 ** octaves
    for e in a.elements:
        for f in b.elements:
            lo, hi = sorted((max(int(e), 1), max(int(f), 1)))
            if hi < lo * ratio:
                return False
    return True


# --------------------------------------------------------------------------- masked STFT search


@dataclass
class MaskedState:
    spec: np.ndarray  # current complex difference per cell (n_frames, n_bins)
    padded: np.ndarray  # its overlap-add buffer (not normalised)
    delta: np.ndarray  # its waveform
    scores: np.ndarray
    gap: float
    wave: np.ndarray


def _tiles(n_frames: int, band: Tuple[int, int], n_bands: int, n_segments: int) -> List[Tuple[int, int, int, int]]:
    b0, b1 = band
    edges = np.unique(np.rint(np.geomspace(max(b0, 1), b1, n_bands + 1)).astype(np.int64))
    if b0 == 0:
        edges[0] = 0
    t_edges = np.unique(np.rint(np.linspace(0, n_frames, n_segments + 1)).astype(np.int64))
    out = []
    for ti in range(t_edges.size - 1):
        for fi in range(edges.size - 1):
            if edges[fi + 1] > edges[fi] and t_edges[ti + 1] > t_edges[ti]:
                out.append((int(t_edges[ti]), int(t_edges[ti + 1]), int(edges[fi]), int(edges[fi + 1])))
    return out


#: Coarse-to-fine tile schedule of the masked search: (frequency bands, time segments).
SCHEDULE = ((24, 1), (24, 8), (48, 32))


def _order_tiles(tiles, strategy: str, clip: SpectralClip, explanation: Any, seed: int, level: int):
    if strategy == "random":
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x6D61736B, level]))
        return [(t, 1 if s else -1) for t, s in zip((tiles[i] for i in rng.permutation(len(tiles))),
                                                      rng.integers(0, 2, len(tiles)))]
    if strategy == "magnitude":
        energy = np.abs(clip.coef) ** 2
        score = [-float(energy[a:b, c:d].sum()) for a, b, c, d in tiles]
        return [(tiles[i], -1) for i in np.argsort(score, kind="stable")]
    resp = np.asarray(explanation.responsibility, dtype=np.float64).reshape(clip.n_frames, clip.n_bins)
    maps = getattr(explanation, "class_responsibility", None) or {}
    other = np.zeros_like(resp)
    for m in maps.values():
        other += np.asarray(m, dtype=np.float64).reshape(resp.shape)
    items = []
    for t in tiles:
        a, b, c, d = t
        # the evidence of the decision (the target's map, and the parts whose removal lets another class
        # win) is weakened first (anti-phase); the other direction is tried next
        items.append((-float(resp[a:b, c:d].sum() + other[a:b, c:d].sum()), t, -1))
    items.sort(key=lambda v: v[0])
    return [(t, s) for _, t, s in items]


def masked_flip(
    clip: SpectralClip,
    oracle: Oracle,
    *,
    strategy: str,
    explanation: Any,
    band: Tuple[int, int],
    seed: int,
    safety_db: float,
    original_scores: np.ndarray,
) -> Tuple[MaskedState, bool, int]:
    """SimBA-style search inside the masking envelope. Returns (state, flipped, cells changed)."""
    env = clip.envelope(safety_db)
    unit = unit_phase(clip.coef)
    zero = np.zeros(clip.n)
    state = MaskedState(np.zeros_like(clip.coef), np.zeros(clip.padded_len), zero, original_scores,
                        oracle.gap(original_scores), clip.x32)
    reach = clip.n_fft // clip.hop  # frames a cell's change spreads into, each side

    def propose(tile, sign) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        a, b, c, d = tile
        spec = state.spec.copy()
        spec[a:b, c:d] = sign * env[a:b, c:d] * unit[a:b, c:d]
        lo, hi = max(a - reach, 0), min(b + reach, clip.n_frames)
        for _ in range(6):
            sub = spec[lo:hi] - state.spec[lo:hi]
            padded = state.padded + clip.synthesize_frames(sub, lo)
            delta = clip.finish_overlap_add(padded)
            # check the change the model (and any listener) gets: the float32 clip minus the original
            wave = (clip.x + delta).astype(np.float32)
            m = clip.frame_margins(wave.astype(np.float64) - clip.x)
            bad = np.flatnonzero(m < MARGIN_GUARD_DB)
            if bad.size == 0:
                return spec, padded, delta, wave
            # scale the cells of every frame near a frame over the threshold
            factor = np.ones(clip.n_frames)
            for t in bad:
                f = 10.0 ** ((m[t] - 1.0) / 20.0)
                s0, s1 = max(t - reach, 0), min(t + reach + 1, clip.n_frames)
                factor[s0:s1] = np.minimum(factor[s0:s1], f)
            spec = spec * factor[:, None]
            lo, hi = 0, clip.n_frames
        return None

    changed = np.zeros(clip.coef.shape, dtype=bool)
    for level, (n_bands, n_segments) in enumerate(SCHEDULE):
        tiles = _tiles(clip.n_frames, band, n_bands, n_segments)
        for tile, sign in _order_tiles(tiles, strategy, clip, explanation, seed, level):
            for s in (sign, -sign):
                if oracle.remaining < 1:
                    return state, False, int(changed.sum())
                prop = propose(tile, s)
                if prop is None:
                    continue
                spec, padded, delta, wave = prop
                scores = oracle.scores([wave], [wave_key(("masked-wave",), wave)])[0]
                gap = oracle.gap(scores)
                if gap < state.gap:
                    state = MaskedState(spec, padded, delta, scores, gap, wave)
                    a, b, c, d = tile
                    changed[a:b, c:d] = True
                    if gap < 0:
                        changed &= np.abs(state.spec) > 0
                        return state, True, int(changed.sum())
                    break
    changed &= np.abs(state.spec) > 0
    return state, False, int(changed.sum())
