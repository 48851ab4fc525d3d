"""The margin estimator: responsibility from every query's continuous margin.

ReX's pass/fail rule credits 1/k only to the parts of mutants that keep the
class, so a query that costs the decision half its margin without flipping it
says nothing. This estimator scores every mutant by the decision's **margin**
(the target's score minus the best other class's, or minus a chosen contrast
class's) and fits a linear model of the margin on which parts each mutant
kept, over all mutants so far:

    margin(z) ~ b0 + sum_i beta_i z_i,     z_i = 1 when part i is kept.

``beta_i`` is part *i*'s effect: what removing it costs the margin, averaged
over the contexts queried. Parts are boxes of a partition tree cut on the mel
scale (:mod:`freqrex.margin.tree`). Each round

1. queries, for every new part, the clip without it and the part alone (a
   complementary pair: its leave-one-out and keep-one-in effects), plus random
   coalitions with Shapley-kernel sizes and their complements (interactions);
2. refits ``beta`` by ridge regression over every row queried so far, rows of
   earlier rounds pushed down the tree (a child inherits its parent's bit),
   each part pulled toward its parent's effect shared by energy (the prior
   where the rows cannot tell siblings apart), with the all-removed and the
   original clip as heavily weighted anchors;
3. splits the parts with the largest ``|beta|`` in two, until they are one
   band of the model's resolution wide (``resolution`` mel bands over
   0..Nyquist), and further only when every part is there and budget is left.

With ``fill`` (``fft`` space), every coalition is queried twice: removed bins
zeroed, and removed bins replaced by ``fill`` (noise at the clip's local
spectral level, :func:`freqrex.quality.noise_fill`). Zeroing measures what a
spectral *hole* costs, the fill what losing the *content* costs while the
energy stays; a second fit on the filled rows gives ``fill_effects``, splits
follow both channels, and :func:`ranking_key` can sum the two standardised
effects. The final fit also reports every effect's standard error.

A cell's responsibility is its part's effect shared in proportion to the
cell's energy ``|X|**2`` inside the part: the expected margin lost by removing
that cell if the part's effect is spread like its energy. Negative values are
evidence against the decision (removing them raises the margin).

The design is drawn from a generator seeded by ``seed`` alone and every round
is decided before it is queried, so batch size and thread count do not change
the result. The budget is exact.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .tree import Grid, Leaf, leaf_index

#: Ridge weight pulling a part's effect toward its prior (rows have weight 1).
RIDGE = 0.05
#: Weight of the two anchor rows (all removed, original clip).
ANCHOR = 100.0


@dataclass
class MarginSearch:
    """What the estimator found; see :func:`margin_search`."""

    responsibility: np.ndarray
    leaves: List[Leaf]
    effects: np.ndarray
    class_maps: Dict[int, np.ndarray]
    queries: int
    stats: Dict[str, float] = field(default_factory=dict)
    empty_scores: Optional[np.ndarray] = None
    #: standard error of every effect (ridge fit's coefficient covariance, residual variance of the
    #: queried rows); None when nothing was fitted
    se: Optional[np.ndarray] = None
    #: with ``fill``: every part's effect when removed bins are filled instead of zeroed, and its
    #: standard error (None without ``fill``)
    fill_effects: Optional[np.ndarray] = None
    fill_se: Optional[np.ndarray] = None
    #: the cell-level mask key of every queried mutant -> its score row
    cache: Dict[bytes, np.ndarray] = field(default_factory=dict, repr=False)


#: Margins are fitted rounded to this many decimals: a model's float noise across batch sizes
#: (float32 kernels batch differently) must not change the map.
DECIMALS = 7


def margin_of(scores: np.ndarray, target: int, contrast: Optional[int] = None) -> np.ndarray:
    """Target score minus the best other class's (or minus ``contrast``'s), per row."""
    s = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    if contrast is not None:
        return s[:, target] - s[:, contrast]
    others = np.delete(s, target, axis=1)
    if others.shape[1] == 0:
        return s[:, target]
    return s[:, target] - others.max(axis=1)


def mask_key(mask: np.ndarray) -> bytes:
    """A compact key of a boolean cell mask."""
    return hashlib.blake2b(np.packbits(mask.reshape(-1)).tobytes(), digest_size=16).digest()


def _kernel_sizes(rng: np.random.Generator, m: int, n: int) -> np.ndarray:
    """Coalition sizes in 1..m-1 drawn with the Shapley kernel's weights (m-1)/(s(m-s))."""
    s = np.arange(1, m)
    p = (m - 1) / (s * (m - s))
    return rng.choice(s, size=n, p=p / p.sum())


class _Design:
    """The partition, the rows queried so far (pushed down to it) and their margins."""

    def __init__(self, grid: Grid, leaves: List[Leaf], energy: np.ndarray) -> None:
        self.grid = grid
        self.leaves = list(leaves)
        self.energy = energy
        self.Z = np.zeros((0, len(leaves)), dtype=bool)
        self.rows: List[np.ndarray] = []  # score rows, aligned with Z
        self.prior = np.zeros(len(leaves))
        self.beta = np.zeros(len(leaves))
        self.b0 = 0.0
        #: the fill channel (``margin_search(fill=...)``): its effects and their prior
        self.beta2: Optional[np.ndarray] = None
        self.prior2: Optional[np.ndarray] = None

    def leaf_energy(self, leaf: Leaf) -> float:
        t0, t1, f0, f1 = leaf
        return float(self.energy[t0:t1, f0:f1].sum())

    def split(self, i: int) -> Optional[Tuple[int, int]]:
        children = self.grid.split(self.leaves[i])
        if children is None:
            return None
        a, b = children
        ea, eb = self.leaf_energy(a), self.leaf_energy(b)
        share = ea / (ea + eb) if ea + eb > 0 else 0.5
        self.leaves[i] = a
        self.leaves.append(b)
        self.Z = np.concatenate([self.Z, self.Z[:, i:i + 1]], axis=1)
        parent = self.beta[i]
        self.prior[i] = parent * share
        self.prior = np.append(self.prior, parent * (1.0 - share))
        self.beta[i] = parent * share
        self.beta = np.append(self.beta, parent * (1.0 - share))
        if self.beta2 is not None:
            parent2 = self.beta2[i]
            for name in ("beta2", "prior2"):
                v = getattr(self, name)
                v[i] = parent2 * share
                setattr(self, name, np.append(v, parent2 * (1.0 - share)))
        return i, len(self.leaves) - 1

    def _lhs(self) -> Tuple[np.ndarray, np.ndarray]:
        """The queried rows (intercept first) and the stacked weighted design: rows, anchors, ridge."""
        m = len(self.leaves)
        Z = self.Z.astype(np.float64)
        A = np.concatenate([np.ones((Z.shape[0], 1)), Z], axis=1)
        anchors = np.zeros((2, m + 1))
        anchors[:, 0] = 1.0
        anchors[1, 1:] = 1.0
        ridge = np.concatenate([np.zeros((m, 1)), np.eye(m)], axis=1) * math.sqrt(RIDGE)
        return A, np.concatenate([A, anchors * math.sqrt(ANCHOR), ridge])

    def fit(self, y: np.ndarray, y_empty: float, y_full: float, prior: Optional[np.ndarray]) -> np.ndarray:
        m = len(self.leaves)
        _, lhs = self._lhs()
        pi = np.zeros(m) if prior is None else prior
        rhs = np.concatenate([y, np.array([y_empty, y_full]) * math.sqrt(ANCHOR), pi * math.sqrt(RIDGE)])
        coef, *_ = np.linalg.lstsq(lhs, rhs, rcond=None)
        self.b0 = float(coef[0])
        return coef[1:]

    def standard_errors(self, y: np.ndarray, beta: np.ndarray, b0: float) -> np.ndarray:
        """Standard error of every effect of the last fit: the diagonal of sigma^2 (L^T L)^-1 with L
        the stacked design (rows, anchors, ridge rows), sigma^2 the residual variance of the queried
        rows over their effective degrees of freedom (rows minus the trace of their hat matrix)."""
        A, lhs = self._lhs()
        if A.shape[0] == 0:
            return np.zeros(len(self.leaves))
        inv = np.linalg.pinv(lhs.T @ lhs)
        resid = y - A @ np.concatenate([[b0], beta])
        dof = A.shape[0] - float(np.einsum("ij,jk,ik->", A, inv, A))
        sigma2 = float(resid @ resid) / max(dof, 1.0)
        return np.sqrt(np.clip(np.diag(inv)[1:] * sigma2, 0.0, None))


def margin_search(
    space,
    evaluate: Callable[[np.ndarray], np.ndarray],
    *,
    target: int,
    original_scores: np.ndarray,
    band: Tuple[int, int],
    hz_per_bin: float,
    sample_rate: float,
    budget: int,
    seed: int,
    batch_size: int,
    energy: np.ndarray,
    contrast: Optional[int] = None,
    n_bands: int = 16,
    n_segments: int = 4,
    resolution: int = 96,
    splits_per_round: int = 8,
    random_share: float = 0.25,
    class_maps: int = 5,
    fill: Optional[np.ndarray] = None,
) -> MarginSearch:
    """Estimate every cell's effect on the decision's margin within ``budget`` queries.

    Parameters
    ----------
    space : FrequencySpace
        The clip's space (its ``synthesize`` turns masks into waveforms).
    evaluate : callable
        ``evaluate(waves) -> scores``, float64 ``(batch, classes)``; the caller counts queries.
    target, original_scores
        The class explained and the original clip's score row.
    band : (int, int)
        The half-open bin range searched; bins outside are always kept.
    budget : int
        Model queries this search may spend (exact bound).
    energy : ndarray, shape (n_frames, n_bins)
        ``|X|**2`` of every cell: shares a part's effect among its cells.
    contrast : int, optional
        Explain ``target`` against this class instead of the best other one.
    n_bands, n_segments, resolution, splits_per_round, random_share, class_maps
        The first partition (mel bands x time segments, ``stft`` only), the
        model's resolution in mel bands, parts split per round, the share of
        random coalitions among a round's rows, and the per-class maps kept.
    fill : complex ndarray, shape (n_bins,), optional
        ``fft`` space only: every coalition is also queried with its removed
        bins replaced by these coefficients (e.g. :func:`freqrex.quality.noise_fill`,
        which keeps the energy and removes the content) instead of zero, at
        two queries a coalition. A second fit gives ``fill_effects``; parts are
        split by both channels' standardised effects.
    """
    n_frames, n_bins = space.shape
    paired = fill is not None
    if paired:
        fill = np.asarray(fill, dtype=np.complex128).reshape(-1)
        if n_frames != 1 or fill.size != n_bins:
            raise ValueError("fill needs the fft space and one coefficient per bin")
    per_query = 2 if paired else 1
    n_classes = np.asarray(original_scores).size
    grid = Grid.build(n_frames, n_bins, band, hz_per_bin, resolution, sample_rate)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, 0x6D617267]))
    budget = max(int(budget), 0)
    segments = n_segments if n_frames > 1 else 1
    # A first partition the budget can afford: two queries per part, at most half the budget.
    per_part = 2 * segments * per_query
    bands = max(2, min(n_bands, (budget - 1) // max(per_part * 2, 1)))
    design = _Design(grid, grid.initial(bands, segments), energy)
    cache: Dict[bytes, np.ndarray] = {}
    y_full = round(float(margin_of(original_scores, target, contrast)[0]), DECIMALS)
    full_mask = np.ones((n_frames, n_bins), dtype=bool)
    full_row = np.asarray(original_scores, dtype=np.float64).reshape(-1)
    # paired: a cached row is the zero-masked scores followed by the filled ones
    cache[mask_key(full_mask)] = np.concatenate([full_row, full_row]) if paired else full_row
    spent = 0
    stats = {"rounds": 0, "mutants": 0, "duplicates": 0, "leaves": 0}

    def mask_of(z: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return np.append(z, True)[idx]

    def query(coalitions: List[np.ndarray]) -> None:
        """Score the coalitions (over the current leaves) that the budget allows; append their rows."""
        nonlocal spent
        idx = leaf_index(design.leaves, n_frames, n_bins)
        todo: List[Tuple[np.ndarray, bytes, np.ndarray]] = []
        seen = set()
        for z in coalitions:
            stats["mutants"] += 1
            mask = mask_of(z, idx)
            key = mask_key(mask)
            if key in cache or key in seen:
                stats["duplicates"] += 1
                if key in cache:
                    design.Z = np.concatenate([design.Z, z[None]])
                    design.rows.append(cache[key])
                continue
            if spent + per_query * (len(todo) + 1) > budget:
                break
            seen.add(key)
            todo.append((z, key, mask))
        # paired: each coalition is two waves, so a chunk holds half a batch and every model call
        # gets at most batch_size waves (and the peak memory of one batch, not two)
        step = max(1, batch_size // per_query)
        for start in range(0, len(todo), step):
            chunk = todo[start:start + step]
            masks = np.stack([m for _, _, m in chunk])
            waves = np.asarray(space.synthesize(masks))
            if paired:
                both = np.empty((2 * len(chunk),) + waves.shape[1:], dtype=waves.dtype)
                both[:len(chunk)] = waves
                for j, m in enumerate(masks):  # row by row: one float64 wave at a time
                    both[len(chunk) + j] = waves[j] + np.fft.irfft(np.where(m[0], 0.0, fill), n=waves.shape[1])
                del waves
                both = np.concatenate([np.asarray(evaluate(both[i:i + batch_size]), dtype=np.float64)
                                       for i in range(0, len(both), batch_size)])
                scores = np.concatenate([both[:len(chunk)], both[len(chunk):]], axis=1)
            else:
                scores = np.asarray(evaluate(waves), dtype=np.float64)
            spent += per_query * len(chunk)
            for (z, key, _), row in zip(chunk, scores):
                cache[key] = row
                design.Z = np.concatenate([design.Z, z[None]])
                design.rows.append(row)

    def pairs(parts: List[int]) -> List[np.ndarray]:
        m = len(design.leaves)
        out = []
        for i in parts:
            drop = np.ones(m, dtype=bool)
            drop[i] = False
            alone = np.zeros(m, dtype=bool)
            alone[i] = True
            out += [drop, alone]
        return out

    def random_pairs(n: int) -> List[np.ndarray]:
        m = len(design.leaves)
        if m < 3 or n <= 0:
            return []
        out = []
        for s in _kernel_sizes(rng, m, (n + 1) // 2):
            z = np.zeros(m, dtype=bool)
            z[rng.choice(m, size=int(s), replace=False)] = True
            out += [z, ~z]
        return out

    def margins(channel: int = 0) -> np.ndarray:
        if not design.rows:
            return np.zeros(0)
        S = np.asarray(design.rows)[:, channel * n_classes:(channel + 1) * n_classes]
        return np.round(margin_of(S, target, contrast), DECIMALS)

    def refit() -> None:
        design.beta = design.fit(margins(), y_empty, y_full, design.prior)
        design.prior = design.beta.copy()
        if paired:
            b0 = design.b0
            design.beta2 = design.fit(margins(1), y_empty2, y_full, design.prior2)
            design.prior2 = design.beta2.copy()
            design.b02, design.b0 = design.b0, b0

    def split_key() -> np.ndarray:
        """What the splits follow: |effect|, or with ``fill`` the sum of both channels' |z|."""
        if not paired:
            return design.beta
        return np.abs(_standardised(design.beta)) + np.abs(_standardised(design.beta2))

    # Round 0: everything removed (the anchor), then each part's pair, then random coalitions.
    m0 = len(design.leaves)
    empty = np.zeros(m0, dtype=bool)
    query([empty])
    empty_key = mask_key(mask_of(empty, leaf_index(design.leaves, n_frames, n_bins)))
    empty_scores = cache.get(empty_key)
    if empty_scores is None:  # no budget at all: nothing is known
        return MarginSearch(np.zeros((n_frames, n_bins)), design.leaves, np.zeros(m0), {}, spent,
                            {**stats, "leaves": m0}, None, None, cache=cache)
    y_empty = round(float(margin_of(empty_scores[:n_classes], target, contrast)[0]), DECIMALS)
    if paired:
        y_empty2 = round(float(margin_of(empty_scores[n_classes:], target, contrast)[0]), DECIMALS)
        design.beta2, design.prior2 = np.zeros(m0), np.zeros(m0)
        empty_scores = empty_scores[:n_classes]
    design.Z = design.Z[1:]  # the anchor enters the fit as such, not as a plain row
    design.rows = design.rows[1:]
    first = pairs(list(range(m0)))
    query(first + random_pairs(int(round(random_share * len(first)))))
    refit()
    stats["rounds"] = 1
    while spent < budget:
        order = _split_order(split_key())
        chosen = [int(i) for i in order if grid.splittable(design.leaves[i], fine=False)][:splits_per_round]
        if not chosen:
            chosen = [int(i) for i in order if grid.splittable(design.leaves[i], fine=True)][:splits_per_round]
        if not chosen:
            break
        new: List[int] = []
        for i in chosen:
            kids = design.split(i)
            if kids is not None:
                new += list(kids)
        if not new:
            break
        rows = pairs(new)
        before = spent
        query(rows + random_pairs(int(round(random_share * len(rows)))))
        refit()
        stats["rounds"] += 1
        if spent == before:
            break
    stats["leaves"] = len(design.leaves)
    se = design.standard_errors(margins(), design.beta, design.b0)
    fill_se = None if not paired else design.standard_errors(margins(1), design.beta2, design.b02)
    responsibility = _spread(design.beta, design.leaves, energy, n_frames, n_bins)
    maps: Dict[int, np.ndarray] = {}
    if class_maps > 0 and design.rows:
        S = np.asarray(design.rows)[:, :n_classes]
        others = [c for c in np.argsort(-S.mean(axis=0), kind="stable") if c != target][:class_maps]
        for c in others:
            yc = np.round(S[:, c] - S[:, target], DECIMALS)
            e_empty = round(float(empty_scores[c] - empty_scores[target]), DECIMALS)
            e_full = round(float(original_scores[c] - original_scores[target]), DECIMALS)
            beta_c = design.fit(yc, e_empty, e_full, None)
            # Removing part i changes (s_c - s_t) by -beta_c[i]: credit what helps c.
            maps[int(c)] = _spread(np.maximum(-beta_c, 0.0), design.leaves, energy, n_frames, n_bins)
    if paired:
        cache = {k: v[:n_classes] for k, v in cache.items()}
    return MarginSearch(responsibility, design.leaves, design.beta.copy(), maps, spent, stats,
                        np.asarray(empty_scores), se, None if not paired else design.beta2.copy(), fill_se,
                        cache)


def ranking_key(effects: np.ndarray, leaves: List[Leaf], energy: np.ndarray, effect_weight: float,
                fill_effects: Optional[np.ndarray] = None) -> np.ndarray:
    """The key the cells are ranked by: log10 of the cell's energy plus ``effect_weight`` times its
    part's effect in standard deviations of all parts' effects.

    Energy is the zero-query prior (loud cells matter more to a log-mel front end); the effects
    reorder it by what the queries showed. ``effect_weight=0`` ranks by magnitude alone; a large
    weight orders whole parts by effect, loudest cell first inside each. With ``fill_effects``
    (a paired search, ``margin_search(fill=...)``) the part's two standardised effects are summed:
    what removing it costs as a spectral hole and what replacing its content by noise costs.
    """
    n_frames, n_bins = energy.shape
    key = np.log10(np.asarray(energy, dtype=np.float64) + 1e-30)
    z = _standardised(effects)
    if fill_effects is not None:
        z = z + _standardised(fill_effects)
    for v, (t0, t1, f0, f1) in zip(z, leaves):
        key[t0:t1, f0:f1] += effect_weight * v
    return key


def _standardised(effects: np.ndarray) -> np.ndarray:
    """Effects in standard deviations of all parts' effects (zeros when they do not vary)."""
    eff = np.asarray(effects, dtype=np.float64)
    sd = float(eff.std()) if eff.size > 1 else 0.0
    return eff / sd if sd > 0 else np.zeros_like(eff)


def _split_order(beta: np.ndarray) -> np.ndarray:
    """Parts by |effect|, largest first, compared at 3 significant digits of the largest (ties by
    index), so that float noise in the scores (backends, batch sizes) cannot reorder the splits."""
    mag = np.abs(beta)
    top = float(mag.max()) if mag.size else 0.0
    if top <= 0:
        return np.arange(mag.size)
    return np.argsort(-np.round(mag / top, 3), kind="stable")


def _spread(effects: np.ndarray, leaves: List[Leaf], energy: np.ndarray, n_frames: int, n_bins: int) -> np.ndarray:
    """Each part's effect shared among its cells in proportion to their energy (evenly if silent)."""
    out = np.zeros((n_frames, n_bins))
    for v, (t0, t1, f0, f1) in zip(effects, leaves):
        e = energy[t0:t1, f0:f1]
        total = float(e.sum())
        out[t0:t1, f0:f1] = v * (e / total if total > 0 else 1.0 / e.size)
    return out
