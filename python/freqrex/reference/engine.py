"""The reference's ask/tell engine: the pass/fail search and the extraction (see :mod:`freqrex.reference`)."""

from __future__ import annotations

from collections import deque
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .._rng import SplitMix64
from ..errors import FreqrexError, ModelError, ParameterError
from .geometry import FIRST_STEP, Rect, canonical_key, cells, contains, search_share, split, subtract

# ---------------------------------------------------------------- search
class _Iteration:
    def __init__(self, rng: SplitMix64, region: Rect):
        self.rng = rng
        self.job: List[Tuple[Rect, int]] = [(region, 0)]  # (rect, depth)
        self.splits: List[Tuple[int, List[Tuple[Rect, int]]]] = []
        self.mutants: List[Tuple[int, int, int, Optional[int]]] = []  # (split, subset, kept, id)
        self.leaves: List[Tuple[Rect, float]] = []  # finest credited parts and their shares
        self.class_leaves: Dict[int, List[Tuple[Rect, float]]] = {}  # the same, per other class
        self.alternatives: deque = deque()  # jobs of passing combinations to refine later
        self.queued = 0
        self.active = True

    def job_of(self, mi: int) -> List[Tuple[Rect, int]]:
        """The job with the split part replaced by mutant mi's children."""
        s, subset, _, _ = self.mutants[mi]
        j, _, children = self.splits[s]
        chosen = [c for b, c in enumerate(children) if subset >> b & 1]
        return self.job[:j] + chosen + self.job[j + 1 :]


class Engine:
    """The explanation as an ask/tell loop; mirrors the Rust ``Engine``."""

    def __init__(self, space, target, target_score, options, *, magnitude=None, responsibility=None):
        """As ``freqrex._core.Engine``: ``options`` is a :class:`freqrex.options.EngineOptions`."""
        band, n_parts, min_part, max_depth = options.band, options.n_parts, options.min_part, options.max_depth
        iterations, budget, seed, cuts, rule = (options.iterations, options.budget, options.seed, options.cuts,
                                                options.rule)
        threshold, extraction_batch, tol = options.threshold, options.extraction_batch, options.tol
        alternatives, class_maps, max_queries = options.alternatives, options.class_maps, options.max_queries
        self.space = space
        self.n_frames, self.n_bins = space.shape
        b0, b1 = band
        if not 0 <= b0 < b1 <= self.n_bins:
            raise ParameterError("the frequency band selects no bins")
        self.region: Rect = (0, self.n_frames, b0, b1)
        if max_queries is not None:
            if max_queries < 1:
                raise ParameterError("max_queries must be at least 1 (the original clip is one query)")
            budget = search_share(int(max_queries), int(budget), self.n_frames * (b1 - b0), extraction_batch)
        self.max_queries = None if max_queries is None else int(max_queries)
        self.n_class_maps = int(class_maps)
        if magnitude is None:
            magnitude = np.abs(space.coefficients())
        magnitude = np.asarray(magnitude, dtype=np.float64)
        if magnitude.size != self.n_frames * self.n_bins or not np.all(np.isfinite(magnitude)):
            raise ParameterError("magnitude must be finite, one value per cell")
        self.magnitude = magnitude.reshape(-1)
        self.target, self.target_score = int(target), float(target_score)
        self.n_parts, self.min_part, self.max_depth = n_parts, min_part, max_depth
        self.n_iterations, self.budget, self.cuts, self.rule = iterations, budget, cuts, rule
        self.threshold, self.batch, self.tol = threshold, extraction_batch, tol
        self.min_margin = getattr(options, "min_margin", None)
        if self.min_margin is not None and not np.isfinite(self.min_margin):
            raise ParameterError(f"min_margin must be finite, got {self.min_margin}")
        self.max_alternatives = alternatives
        self._given: Optional[np.ndarray] = None
        if responsibility is not None:  # ranked by a map computed elsewhere: no search
            given = np.asarray(responsibility, dtype=np.float64)
            if given.size != self.n_frames * self.n_bins or not np.all(np.isfinite(given)):
                raise ParameterError("responsibility must be finite, one value per cell")
            self._given = given.reshape(self.n_frames, self.n_bins)
            iterations = 0
        self.iterations = [_Iteration(SplitMix64.for_iteration(seed, i), self.region) for i in range(iterations)]
        self.ids: Dict[tuple, int] = {}
        self.outcomes: List[Optional[Tuple[int, float]]] = []
        self.queue: deque = deque()
        self.in_flight: list = []
        self.counters = dict(search_queries=0, extraction_queries=0, rounds=0, mutants=0,
                             duplicates=0, passing=0, budget_exhausted=False, search_budget=int(budget),
                             extraction_truncated=False)
        self.finished_search = False
        self.phase = "search"
        self._responsibility: Optional[np.ndarray] = None
        self._ranking: Optional[np.ndarray] = None
        self._class_maps: Dict[int, np.ndarray] = {}
        self.sets_found: Dict[str, Any] = {}
        self._generate()

    # -- search ---------------------------------------------------------
    def _passes(self, top: int, score: float, margin: float = 0.0) -> bool:
        return top == self.target and (self.threshold is None or score >= self.threshold * self.target_score)

    def _register(self, rects: List[Rect]) -> Optional[int]:
        self.counters["mutants"] += 1
        key = canonical_key(rects)
        if key in self.ids:
            self.counters["duplicates"] += 1
            return self.ids[key]
        if self.counters["search_queries"] >= self.budget:
            self.counters["budget_exhausted"] = True
            return None
        i = len(self.outcomes)
        self.outcomes.append(None)
        self.ids[key] = i
        self.counters["search_queries"] += 1
        self.queue.append((i, rects))
        return i

    def _propose(self, it: _Iteration) -> None:
        """Split every splittable part of the job and register the mutants."""
        it.splits, it.mutants = [], []
        for j, (rect, depth) in enumerate(it.job):
            if cells(rect) < max(self.min_part, 2) or depth >= self.max_depth:
                continue
            children = [(r, depth + 1) for r in split(it.rng, rect, self.n_parts, self.cuts)]
            if len(children) < 2:
                continue
            others = [r for k, (r, _) in enumerate(it.job) if k != j]
            base = sum(cells(r) for r in others)
            for subset in range(0, (1 << len(children)) - 1):
                chosen = [r for b, (r, _) in enumerate(children) if subset >> b & 1]
                kept = base + sum(cells(r) for r in chosen)
                it.mutants.append((len(it.splits), subset, kept, self._register(others + chosen)))
            it.splits.append((j, rect, children))

    def _generate(self) -> None:
        any_mutant = False
        for it in self.iterations:
            if not it.active:
                continue
            while True:
                self._propose(it)
                if it.mutants:
                    any_mutant = True
                elif it.alternatives:
                    it.job = it.alternatives.popleft()
                    continue
                else:
                    it.active = False
                break
        if not any_mutant:
            self.finished_search = True

    def _process_round(self) -> None:
        """Credit the finished round and choose each iteration's next job.

        Each part of a minimal passing combination of k children gets 1/k
        (rule "minimal"; "rex" credits every passing combination). Refining a
        part replaces its credit by its children's (the iteration's leaves).
        """
        self.counters["rounds"] += 1
        for it in self.iterations:
            if not it.active:
                continue
            passing: Dict[int, List[int]] = {s: [] for s in range(len(it.splits))}
            complete = [True] * len(it.splits)
            best = None
            for mi, (s, subset, kept, i) in enumerate(it.mutants):
                outcome = None if i is None else self.outcomes[i]
                if outcome is None:
                    complete[s] = False
                elif self._passes(*outcome):
                    passing[s].append(subset)
                    if best is None or kept < best[0]:
                        best = (kept, mi)
            credit = [[0.0] * len(children) for _, _, children in it.splits]
            for s, subset, kept, i in it.mutants:
                outcome = None if i is None else self.outcomes[i]
                if outcome is None or subset == 0 or not self._passes(*outcome):
                    continue
                minimal = not any(t != subset and t & subset == t for t in passing[s])
                k = bin(subset).count("1")
                if self.rule == "rex":
                    share = 1.0 / k
                elif not minimal:
                    continue
                else:
                    share = 1.0 / k if self.rule == "minimal" else outcome[1] / k
                for b in range(len(credit[s])):
                    if subset >> b & 1:
                        credit[s][b] += share
            self.counters["passing"] += sum(len(v) for v in passing.values())
            # Other classes: the removal sets (children not kept) of the mutants landing on each.
            landed: List[Dict[int, List[int]]] = [{} for _ in it.splits]
            for s, subset, kept, i in it.mutants:
                outcome = None if i is None else self.outcomes[i]
                if outcome is not None and outcome[0] != self.target:
                    full = (1 << len(it.splits[s][2])) - 1
                    landed[s].setdefault(outcome[0], []).append(full & ~subset)
            class_credit: List[Dict[int, List[float]]] = [{} for _ in it.splits]
            for s, by_class in enumerate(landed):
                if not complete[s]:
                    continue
                for c in sorted(by_class):
                    removals = by_class[c]
                    cr = [0.0] * len(it.splits[s][2])
                    for r in removals:
                        minimal = not any(t != r and t & r == t for t in removals)
                        if self.rule != "rex" and not minimal:
                            continue
                        share = 1.0 / bin(r).count("1")
                        for b in range(len(cr)):
                            if r >> b & 1:
                                cr[b] += share
                    class_credit[s][c] = cr
            for s, (_, (pt0, pt1, pf0, pf1), children) in enumerate(it.splits):
                if not complete[s] or not passing[s]:
                    continue  # unfinished (budget), or every child needed: the part keeps its credit
                it.leaves = [(r, v) for r, v in it.leaves
                             if not (r[0] >= pt0 and r[1] <= pt1 and r[2] >= pf0 and r[3] <= pf1)]
                it.leaves += [(rect, c) for (rect, _), c in zip(children, credit[s]) if c > 0.0]
            for s, (_, parent, children) in enumerate(it.splits):
                for c, cr in class_credit[s].items():  # a class the split never lands on keeps its credit
                    old = it.class_leaves.get(c, [])
                    new: List[Tuple[Rect, float]] = []
                    for r, v in old:
                        if contains(parent, r):
                            continue
                        if contains(r, parent):
                            new += [(q, v) for q in subtract(r, parent)]
                        else:
                            new.append((r, v))
                    new += [(rect, v) for (rect, _), v in zip(children, cr) if v > 0.0]
                    it.class_leaves[c] = new
            for mi, (s, subset, _, i) in enumerate(it.mutants):  # other minimal passing combinations
                if it.queued >= self.max_alternatives:
                    break
                if best is not None and mi == best[1] or subset == 0 or i is None or self.outcomes[i] is None:
                    continue
                if not self._passes(*self.outcomes[i]):
                    continue
                if any(t != subset and t & subset == t for t in passing[s]):
                    continue
                it.alternatives.append(it.job_of(mi))
                it.queued += 1
            if best is not None and best[0] > 0:
                it.job = it.job_of(best[1])
            elif it.alternatives:
                it.job = it.alternatives.popleft()
            else:
                it.active = False
        if self.counters["budget_exhausted"]:
            for it in self.iterations:
                it.active = False
            self.finished_search = True
        else:
            self._generate()

    # -- extraction -----------------------------------------------------
    def _candidates(self, lo: int, hi: int, first: bool = False) -> List[int]:
        """Candidate prefix lengths for [lo, hi]: plateau ends inside [lo, hi) first, else a grid."""
        b = max(self.batch, FIRST_STEP) if first else self.batch
        m = hi - lo + 1
        if m <= b:
            return list(range(lo, hi + 1))
        ends = self.ends
        inner = ends[np.searchsorted(ends, lo, "left"):np.searchsorted(ends, hi, "left")].tolist()
        if inner:
            k = b - 1
            if len(inner) <= k:
                return inner + [hi]
            return [inner[-(-(j + 1) * len(inner) // (k + 1)) - 1] for j in range(k)] + [hi]
        return [lo - 1 + -(-(j + 1) * m // b) for j in range(b)]

    def _average(self, leaf_lists) -> np.ndarray:
        total = np.zeros((self.n_frames, self.n_bins))
        for leaves in leaf_lists:
            for (t0, t1, f0, f1), v in leaves:
                total[t0:t1, f0:f1] += v
        return total / self.n_iterations

    def class_counts(self) -> Dict[int, int]:
        """Queried search mutants per class other than the target."""
        counts: Dict[int, int] = {}
        for o in self.outcomes:
            if o is not None and o[0] != self.target:
                counts[o[0]] = counts.get(o[0], 0) + 1
        return dict(sorted(counts.items()))

    def _start_extraction(self) -> None:
        if self._given is not None:
            self._responsibility = self._given.copy()
        else:
            self._responsibility = self._average(it.leaves for it in self.iterations)
        chosen = sorted(self.class_counts().items(), key=lambda kv: (-kv[1], kv[0]))[: self.n_class_maps]
        self._class_maps = {c: self._average(it.class_leaves.get(c, []) for it in self.iterations) for c, _ in chosen}
        t0, t1, f0, f1 = self.region
        flat = (np.arange(t0, t1)[:, None] * self.n_bins + np.arange(f0, f1)[None, :]).ravel()
        values = self._responsibility.ravel()[flat]
        tie = np.where(values > 0, -self.magnitude[flat], 0.0)  # magnitude among credited cells only
        order = np.lexsort((flat, tie, -values))  # responsibility, magnitude, index
        self._ranking = flat[order].astype(np.int64)
        self.n = self._ranking.size
        ranked = self._responsibility.ravel()[self._ranking]
        self.ends = (np.flatnonzero(ranked[1:] != ranked[:-1]) + 1).astype(np.int64)
        self.known = {("keep", self.n): (self.target, self.target_score, np.inf)}  # the original: kept
        empty = self.ids.get(canonical_key([]))  # removing every ranked cell: the search's first mutant
        if empty is not None and self.outcomes[empty] is not None:
            self.known[("remove", self.n)] = self.outcomes[empty]
        self.allowance = None
        if self.max_queries is not None:
            self.allowance = max(self.max_queries - 1 - self.counters["search_queries"], 0)
        self._begin("sufficient", 1)

    def _probes(self, c: int) -> List[tuple]:
        if self.stage == "necessary_remove":
            return [("remove", c)]
        if self.stage == "necessary_both":
            return [("keep", c), ("remove", c)]
        return [("keep", c)]

    def _keeps(self, outcome) -> bool:
        top, score, margin = outcome
        return self._passes(top, score) and (self.min_margin is None or margin >= self.min_margin)

    def _holds(self, c: int) -> bool:
        if self.stage in ("sufficient", "necessary_verify"):
            return self._keeps(self.known[("keep", c)])
        if self.stage == "necessary_remove":
            return self.known[("remove", c)][0] != self.target
        if self.stage == "necessary_both":
            return self._keeps(self.known[("keep", c)]) and self.known[("remove", c)][0] != self.target
        top, score, _ = self.known[("keep", c)]
        return top == self.target and abs(score - self.target_score) <= self.tol

    def _step(self) -> None:
        if self.stage == "necessary_verify":
            c = self.lo
            if self._holds(c):
                return self._settle(c)
            return self._begin("necessary_both", c + 1)  # not monotone: both probes from here on
        first = next((j for j, c in enumerate(self.cands) if self._holds(c)), None)
        if first is None:
            return self._settle(None)
        c = self.cands[first]
        lo = self.lo if first == 0 else self.cands[first - 1] + 1
        if lo == c:
            return self._settle(c)
        self.lo, self.hi, self.hi_holds = lo, c, True
        self.cands = self._candidates(lo, c)

    def _begin(self, stage: str, lo: int) -> None:
        self.stage, self.lo, self.hi, self.hi_holds = stage, lo, self.n, False
        self.cands = self._candidates(lo, self.n, first=stage == "complete")

    def _known_to_hold(self, c: int) -> bool:
        """Whether every probe the current stage needs for ``c`` is known and passes (never asks)."""
        keep, rem = self.known.get(("keep", c)), self.known.get(("remove", c))
        if self.stage == "sufficient":
            return keep is not None and self._keeps(keep)
        if self.stage.startswith("necessary"):  # known to pass both ways
            return keep is not None and self._keeps(keep) and rem is not None and rem[0] != self.target
        if self.stage == "complete":
            return self._restores(c)
        return False

    def _restores(self, c: int) -> bool:
        """Whether keeping the prefix ``c`` is known to restore the target's score within ``tol``."""
        keep = self.known.get(("keep", c))
        return keep is not None and keep[0] == self.target and abs(keep[1] - self.target_score) <= self.tol

    def _shortest_known(self, lo: int, test) -> Optional[int]:
        held = [c for _, c in self.known if lo <= c < self.n and test(c)]
        return min(held) if held else None

    def _exhaust(self) -> None:
        """The allowance is spent: keep the shortest prefix from the bracket's start on that is known
        to hold (asked in this step or an earlier one, or known before), give up the rest."""
        self.counters["extraction_truncated"] = True
        why = "the query budget ran out before this set was found"
        s = self.sets_found
        best = self._shortest_known(self.lo, self._known_to_hold)
        if self.stage == "sufficient":
            s["sufficient"] = best
            if best is None:
                s["sufficient_reason"] = why
            else:
                s["sufficient_score"] = self.known[("keep", best)][1]
            s["sufficient_necessary_reason"] = why
            s["complete_reason"] = why
        elif self.stage.startswith("necessary"):
            ok = best  # known to pass both ways
            s["sufficient_necessary"] = ok
            if ok is None:
                s["sufficient_necessary_reason"] = why
            else:
                s["sufficient_necessary_score"] = self.known[("keep", ok)][1]
            # a kept prefix from it on already known to restore the score is the complete set
            complete = None if ok is None else self._shortest_known(ok, self._restores)
            s["complete"] = complete
            if complete is None:
                s["complete_reason"] = why
            else:
                s["complete_score"] = self.known[("keep", complete)][1]
        elif self.stage == "complete":
            s["complete"] = best
            if best is None:
                s["complete_reason"] = why
            else:
                s["complete_score"] = self.known[("keep", best)][1]
        self.stage = "done"

    def _settle(self, result: Optional[int]) -> None:
        found = result if result is not None and result < self.n else None
        s = self.sets_found
        if self.stage == "sufficient":
            s["sufficient"] = found
            if found is None:
                why = "no proper subset of the ranked cells keeps the class: the whole clip is needed"
                for name in ("sufficient", "sufficient_necessary", "complete"):
                    s[f"{name}_reason"] = why
                self.stage = "done"
            else:
                s["sufficient_score"] = self.known[("keep", found)][1]
                self._begin("necessary_remove", found)
        elif self.stage == "necessary_remove" and found is not None:
            self.stage, self.lo, self.hi, self.hi_holds = "necessary_verify", found, found, False
            self.cands = [found]
        elif self.stage.startswith("necessary"):
            s["sufficient_necessary"] = found
            if found is None:
                s["sufficient_necessary_reason"] = (
                    "only removing every ranked cell changes the class" if result is not None
                    else "removing the ranked cells never changes the class")
                self._begin("complete", s.get("sufficient") or 1)
            else:
                s["sufficient_necessary_score"] = self.known[("keep", found)][1]
                self._begin("complete", found)
        elif self.stage == "complete":
            s["complete"] = found
            if found is None:
                s["complete_reason"] = f"only the whole clip restores the original score within tol = {self.tol}"
            else:
                s["complete_score"] = self.known[("keep", found)][1]
            self.stage = "done"

    def _probe_mask(self, kind: str, c: int) -> np.ndarray:
        m = np.ones(self.n_frames * self.n_bins, dtype=bool)
        if kind == "keep":
            t0, t1, f0, f1 = self.region
            m.reshape(self.n_frames, self.n_bins)[t0:t1, f0:f1] = False
            m[self._ranking[:c]] = True
        else:
            m[self._ranking[:c]] = False
        return m.reshape(self.n_frames, self.n_bins)

    def _rect_mask(self, rects: List[Rect]) -> np.ndarray:
        m = np.ones((self.n_frames, self.n_bins), dtype=bool)
        t0, t1, f0, f1 = self.region
        m[t0:t1, f0:f1] = False
        for a, b, c, d in rects:
            m[a:b, c:d] = True
        return m

    # -- protocol -------------------------------------------------------
    def ask(self, batch_size: int) -> Optional[np.ndarray]:
        if self.in_flight:
            raise FreqrexError("ask() called before tell() answered the previous batch")
        while True:
            if self.phase == "search":
                while not self.queue and not self.finished_search:
                    self._process_round()
                if self.queue:
                    batch = [self.queue.popleft() for _ in range(min(batch_size, len(self.queue)))]
                    self.in_flight = [("search", i) for i, _ in batch]
                    return self.space.synthesize(np.stack([self._rect_mask(r) for _, r in batch]))
                self._start_extraction()
                self.phase = "extract"
            elif self.phase == "extract":
                if self.stage == "done":
                    self.phase = "done"
                    continue
                want: List[tuple] = []
                for c in self.cands:
                    for p in self._probes(c):
                        if p not in self.known and p not in want:
                            want.append(p)
                if not want:
                    self._step()
                    continue
                room = batch_size
                if self.allowance is not None:
                    room = min(room, self.allowance - self.counters["extraction_queries"])
                if room <= 0:
                    self._exhaust()
                    continue
                want = want[:room]
                self.in_flight = want
                return self.space.synthesize(np.stack([self._probe_mask(k, c) for k, c in want]))
            else:
                return None

    def tell(self, scores: np.ndarray) -> None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.ndim != 2 or scores.shape[0] != len(self.in_flight):
            raise FreqrexError(f"tell() got {scores.shape[0]} outcomes for a batch of {len(self.in_flight)}")
        if scores.shape[1] <= self.target:
            raise ModelError(f"a score row has {scores.shape[1]} classes but the target class is {self.target}")
        if not np.all(np.isfinite(scores)):
            raise ModelError("scores contain NaN or infinite values")
        for key, row in zip(self.in_flight, scores):
            others = np.delete(row, self.target)
            margin = float(row[self.target] - others.max()) if others.size else np.inf
            outcome = (int(np.argmax(row)), float(row[self.target]), margin)
            if key[0] == "search":
                self.outcomes[key[1]] = outcome
            else:
                self.known[key] = outcome
                self.counters["extraction_queries"] += 1
        self.in_flight = []

    def stats(self) -> Dict[str, Any]:
        return dict(self.counters)

    @property
    def active_iterations(self) -> int:
        return sum(it.active for it in self.iterations)

    def responsibility(self) -> np.ndarray:
        return self._responsibility

    def ranking(self) -> np.ndarray:
        return self._ranking

    def class_responsibility(self) -> Dict[int, np.ndarray]:
        """Per-class maps of the classes most often landed on (other than the target)."""
        return dict(self._class_maps)

    def sets(self) -> Dict[str, Any]:
        return dict(self.sets_found)
