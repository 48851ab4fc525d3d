"""The protocol of an evaluation (EvalOptions) and the measurement of one clip."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from .._checks import check_int
from ..errors import ParameterError
from ..manipulation import STRATEGIES, flip
from ..manipulation.options import CHANGES, FlipOptions
from ..options import MAX_BUDGET, ExplainOptions, make_options

#: The paper's manipulation results (Kelly & Chockler 2026, 8 models, GTZAN and a sung-emotion set).
PAPER = {"k1": 0.58, "k5": 0.78, "stft": 0.62}

#: Version of the record layout and of what produces it; part of the protocol key, so a resumed
#: run never mixes records of two versions. 3: the margin explanation (400 queries in all), the
#: causal flip starting from the additive search, the audibility and closeness fields, a set's
#: bins as frequency ranges (``kept_bands_hz``). 4: the explanation's paired noise fill
#: (``fill="noise"``), k > 1 starting from the previous k's flip. 5: the additive search's level
#: stage tries the strong parts' tones first, then alternates the other refined tones with the tone
#: scan's grid in the scan's order, and its k > 1 combinations join tones a semitone apart. 6: a
#: k > 1 search from a k = 1 flip louder than the probe level probes its singles at the probe level
#: (``quietest_flip(singles_from_db=)``), and a flipping combination is pruned of members that add
#: nothing when quiet; a set's bins as a packed mask (``kept_bins``, the same sets; the first v6
#: records, rewritten by ``scripts/pack_kept_sets.py``, had ``kept_bands_hz``; the published v6 records
#: were made by commit 9fcffee). 7: an explanation whose query cap runs out keeps the sets it already
#: knows to hold (a complete set known that way costs its margin check: one query more, and so one
#: more for every strategy at equal total, on clips whose cap ran out in the complete-set step), and a
#: model with ``output="auto"`` guesses on every clip afresh.
RECORD_VERSION = 7

ProgressCallback = Callable[[str, int, int], None]


@dataclass(frozen=True)
class EvalOptions:
    """The protocol of an evaluation (every field is part of the resume key).

    Attributes
    ----------
    explain_budget, explain_iterations : int
        Search budget and iterations of the ``fft`` explanation.
    cuts : {"log", "uniform"}
        Cut spacing of the explanations.
    extraction_batch : int
        Candidate prefixes per extraction step.
    tol : float
        Tolerance of the complete set.
    ks : tuple of int
        Sizes of the FFT flips (default 1..5).
    strategies : tuple of str
        ``causal`` (freqrex) and the baselines ``random``, ``magnitude`` and
        ``tone_scan`` (the default); ``additive`` (the additive partition
        search, ``fft`` only) runs as a peer column when asked: like the
        baselines it gets the causal strategy's total queries.
    flip_budget : int
        Flip-search queries of the causal strategy (its explanation is
        counted on top).  Baselines get the same total: ``flip_budget`` plus
        the explanation's queries (``equal_total``), and are also run with
        ``flip_budget`` alone (the comparison when the explanation is given).
    equal_total : bool
        Also run the baselines at the causal strategy's total budget.
    change : str
        ``quietest`` (amplitude search / masked STFT search) or a fixed change.
    max_gain_db : float
        Gain of the fixed ``gain`` change.
    probe_snr_db, min_snr_db, max_snr_db, tol_db, masking_safety_db : float
        Options of :func:`freqrex.flip`.
    stft : bool
        Whether to run the STFT flip (needs an ``stft`` explanation).
    stft_explain_budget, stft_explain_iterations : int
        Budget and iterations of the ``stft`` explanation.  A budget of 0
        skips it: the causal STFT flip then ranks cells by the ``fft``
        explanation projected onto the STFT bins (then by magnitude).  Only
        the fixed changes take that projection: with ``change="quietest"``
        (the masked STFT search) a budget of 0 is a :class:`ParameterError`
        unless ``stft=False``.
    stft_k : int
        Cells changed by the STFT flip.
    stft_flip_budget : int
        Query budget of every STFT flip.
    n_fft, hop_length : int
        STFT geometry.
    seed : int
    duration : float
        Seconds analysed from the start of each file.
    """

    explain_budget: int = FlipOptions.explain_budget
    explain_iterations: int = FlipOptions.explain_iterations
    cuts: str = ExplainOptions.cuts
    extraction_batch: int = 16
    tol: float = ExplainOptions.tol
    ks: Tuple[int, ...] = (1, 2, 3, 4, 5)
    strategies: Tuple[str, ...] = tuple(s for s in STRATEGIES if s != "additive")
    flip_budget: int = FlipOptions.budget
    equal_total: bool = True
    change: str = FlipOptions.change
    max_gain_db: float = FlipOptions.max_gain_db
    probe_snr_db: float = FlipOptions.probe_snr_db
    min_snr_db: float = FlipOptions.min_snr_db
    max_snr_db: float = FlipOptions.max_snr_db
    tol_db: float = FlipOptions.tol_db
    masking_safety_db: float = FlipOptions.masking_safety_db
    stft: bool = True
    stft_explain_budget: int = FlipOptions.explain_budget
    stft_explain_iterations: int = FlipOptions.explain_iterations
    stft_k: int = 5
    stft_flip_budget: int = FlipOptions.budget
    n_fft: int = FlipOptions.n_fft
    hop_length: int = FlipOptions.hop_length
    seed: int = FlipOptions.seed
    duration: float = 30.0

    def __post_init__(self) -> None:
        def pos_int(name: str, low: int = 1) -> None:
            object.__setattr__(self, name, check_int(getattr(self, name), name, low))

        for name in ("explain_budget", "explain_iterations", "flip_budget",
                     "stft_explain_iterations", "stft_k", "stft_flip_budget", "n_fft", "hop_length"):
            pos_int(name)
        pos_int("stft_explain_budget", 0)
        pos_int("extraction_batch", 2)
        pos_int("seed", 0)
        ks = tuple(self.ks)
        if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
            raise ParameterError(f"ks must be integers >= 1, got {self.ks!r}")
        object.__setattr__(self, "ks", tuple(sorted(set(int(k) for k in ks))))
        strategies = tuple(self.strategies)
        bad = [s for s in strategies if s not in STRATEGIES]
        if bad or not strategies:
            raise ParameterError(f"strategies must be among {', '.join(STRATEGIES)}, got {self.strategies!r}")
        object.__setattr__(self, "strategies", tuple(s for s in STRATEGIES if s in strategies))
        if self.cuts not in ("log", "uniform"):
            raise ParameterError(f"cuts must be 'log' or 'uniform', got {self.cuts!r}")
        for name in ("tol", "max_gain_db", "duration", "probe_snr_db", "min_snr_db", "max_snr_db", "tol_db",
                     "masking_safety_db"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
                raise ParameterError(f"{name} must be a finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.change not in CHANGES:
            raise ParameterError(f"change must be one of {', '.join(CHANGES)}, got {self.change!r}")
        if self.change != "quietest":  # tone_scan and additive add tones: quietest changes only
            kept = tuple(s for s in self.strategies if s not in ("tone_scan", "additive"))
            if not kept:
                raise ParameterError(
                    f"strategies {', '.join(self.strategies)} add tones, which only change='quietest' does: "
                    f"with change={self.change!r} no flip would run; add causal, random or magnitude")
            object.__setattr__(self, "strategies", kept)
        if self.duration <= 0:
            raise ParameterError(f"duration must be > 0 s, got {self.duration}")
        if self.stft and self.stft_explain_budget == 0 and self.change == "quietest":
            # only the fixed changes project the fft explanation onto the STFT cells (flip(change=...))
            raise ParameterError(
                "stft_explain_budget=0 (--stft-budget 0) ranks the STFT cells by the fft explanation, which "
                "only a fixed change takes (change='auto', 'remove', 'gain' or 'phase'); with "
                "change='quietest' give the stft explanation a budget, or leave the STFT flip out "
                "(stft=False, --no-stft)")
        # every option's bounds are checked here, so that no clip runs its fft part and then fails for an
        # option: the explanations' (ExplainOptions) and the flips' (FlipOptions: SNR range, gain, budgets)
        def check(what: str, make: Callable[[], Any]) -> None:
            try:
                make()
            except ParameterError as exc:
                raise ParameterError(f"{what}: {exc}") from None

        check("the fft explanation (explain_budget, explain_iterations, extraction_batch, tol)",
              lambda: make_options(space="fft", budget=self.explain_budget, iterations=self.explain_iterations,
                                   cuts=self.cuts, extraction_batch=self.extraction_batch, tol=self.tol,
                                   seed=self.seed))
        check("the fft flips", self.flip_options)
        if self.stft:
            if self.stft_explain_budget > 0:
                check("the stft explanation (stft_explain_budget, stft_explain_iterations, n_fft, hop_length)",
                      lambda: make_options(space="stft", budget=self.stft_explain_budget,
                                           iterations=self.stft_explain_iterations, cuts=self.cuts,
                                           extraction_batch=self.extraction_batch, tol=self.tol, seed=self.seed,
                                           n_fft=self.n_fft, hop_length=self.hop_length))
            check("the stft flips (stft_flip_budget, stft_k)", self.stft_flip_options)

    def stft_flip_options(self) -> FlipOptions:
        """The options every STFT flip of the protocol shares (``strategy`` is set per flip); a
        ParameterError if the protocol's STFT fields are out of bounds."""
        return dataclasses.replace(
            self.flip_options(), k=self.stft_k, space="stft", budget=self.stft_flip_budget,
            explain_budget=self.stft_explain_budget, explain_iterations=self.stft_explain_iterations)

    def flip_options(self) -> FlipOptions:
        """The options every flip of the protocol shares (``k``, ``space``, ``strategy`` and the
        budget are set per flip); a ParameterError if the protocol's flip fields are out of bounds."""
        return FlipOptions(
            budget=self.flip_budget, seed=self.seed, change=self.change, max_gain_db=self.max_gain_db,
            probe_snr_db=self.probe_snr_db, min_snr_db=self.min_snr_db, max_snr_db=self.max_snr_db,
            tol_db=self.tol_db, masking_safety_db=self.masking_safety_db, n_fft=self.n_fft,
            hop_length=self.hop_length, explain_budget=self.explain_budget,
            explain_iterations=self.explain_iterations,
        )

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ks"] = list(self.ks)
        d["strategies"] = list(self.strategies)
        return d

    def key(self, model_name: str) -> str:
        """The resume key: a hash of the protocol and the model."""
        blob = json.dumps({"v": RECORD_VERSION, "model": model_name, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- one clip


def _sets_of(e: Any) -> Dict[str, Any]:
    out = {}
    total = int(e.responsibility.size)
    for name in ("sufficient", "sufficient_necessary", "complete"):
        size = e.size(name)
        out[name] = {
            "size": size,
            "fraction": None if size is None else size / total,
            "score": e.set_scores.get(name),
            "reason": None if size is not None else e.reasons.get(name),
        }
        if e.space == "fft" and name in ("sufficient", "complete"):
            out[name]["kept_bins"] = _kept_bins(e, name)
    return out


def _kept_bins(e: Any, name: str) -> Optional[Dict[str, Any]]:
    """The bins an ``fft`` set keeps when resynthesised (bins outside the searched band included), as a
    packed mask (:func:`~freqrex.evaluation.transfer.pack_kept_bins`; a complete set of a 30 s clip has
    tens of thousands of runs of bins): what :mod:`freqrex.evaluation.transfer` plays to another model."""
    from .transfer import pack_kept_bins

    keep = e.mask_of(name)
    return None if keep is None else pack_kept_bins(np.asarray(keep))


def _budget(o: "EvalOptions", strategy: str, e: Any, *, stft: bool = False) -> int:
    """Flip-search budget: the causal strategy's, or for a baseline the causal total (explanation included)."""
    base = o.stft_flip_budget if stft else o.flip_budget
    if strategy == "causal" or not o.equal_total:
        return base
    return min(base + int(e.queries), MAX_BUDGET)  # a flip's largest budget (FlipOptions), not an error late


def _flip_summary(r: Any) -> Dict[str, Any]:
    return {
        "success": bool(r.success),
        "n_changed": r.n_changed,
        "change": r.change if r.success else None,
        "snr_db": r.snr_db if r.success else None,
        "db_x": r.db_x if r.success else None,
        "method": r.method,
        "new_class": r.new_class,
        "new_name": r.new_name,
        "new_score": r.new_score,
        "original_class_score": r.original_class_score,
        # element lists only for small changes (a masked STFT change may touch many thousands of cells)
        "frequencies_hz": [float(f) for f in r.frequencies_hz] if r.success and r.bins.size <= 16 else [],
        "frames": None if r.frames is None or not r.success or r.bins.size > 16 else [int(t) for t in r.frames],
        "inaudible": r.inaudible,
        "margin_db": r.margin_db,
        "scale": r.scale,
        "flip_queries": r.flip_queries,
        "n_cells": r.n_changed if r.space == "stft" else None,
        "queries": r.queries,
        "seconds": r.elapsed,
        # audibility by both masking models, and how close a failed flip came (FlipResult's fields)
        **{name: getattr(r, name, None) for name in _FLIP_FIELDS},
    }


#: FlipResult fields copied into every flip record as they are.
_FLIP_FIELDS = ("quietest_frame_snr_db", "over_threshold_share", "max_excess_db", "art_over_threshold_share",
                "art_max_excess_db", "louder_than_clip_share", "closest_margin", "closest_class", "closest_name")


def evaluate_clip(
    audio: np.ndarray,
    sample_rate: int,
    model: Callable[[np.ndarray], Any],
    options: EvalOptions = EvalOptions(),
    *,
    progress: Optional[ProgressCallback] = None,
) -> Dict[str, Any]:
    """Measure one clip: set sizes, FFT flips for every k and strategy, STFT flips."""
    from ..explainer import explain

    o = options
    t_clip = time.perf_counter()
    rec: Dict[str, Any] = {}
    t0 = time.perf_counter()
    e = explain(audio, sample_rate, model, space="fft", seed=o.seed, budget=o.explain_budget,
                iterations=o.explain_iterations, cuts=o.cuts, extraction_batch=o.extraction_batch,
                tol=o.tol, progress=progress)
    scores = np.asarray(e.original_scores, dtype=np.float64)
    order = np.argsort(-scores, kind="stable")
    rec["original"] = {
        "class": e.target,
        "name": e.target_name,
        "score": e.score,
        "runner_up": int(order[1]) if order.size > 1 else None,
        "runner_up_score": float(scores[order[1]]) if order.size > 1 else None,
    }
    rec["fft_explanation"] = {
        "n_bins": int(e.responsibility.size),
        "bin_hz": float(sample_rate) / float(audio.shape[-1]),
        "sets": _sets_of(e),
        "queries": e.queries,
        "search_queries": e.search_queries,
        "extraction_queries": e.extraction_queries,
        "seconds": time.perf_counter() - t0,
    }
    knobs = dict(change=o.change, max_gain_db=o.max_gain_db, probe_snr_db=o.probe_snr_db, min_snr_db=o.min_snr_db,
                 max_snr_db=o.max_snr_db, tol_db=o.tol_db, masking_safety_db=o.masking_safety_db, seed=o.seed,
                 progress=progress)
    cache: Dict = {}
    flips: Dict[str, Dict[str, Any]] = {}
    given: Dict[str, Dict[str, Any]] = {}
    # k > 1 starts from the previous k's flip (flip(start_from=...)), so it is never louder than it
    fixed = o.change != "quietest"
    for strategy in o.strategies:
        flips[strategy] = {}
        before = before_given = None
        for k in o.ks:
            r = flip(audio, sample_rate, model, k=k, space="fft", explanation=e, budget=_budget(o, strategy, e),
                     strategy=strategy, start_from=None if fixed else before, _cache=cache, **knobs)
            flips[strategy][str(k)] = _flip_summary(r)
            before = r
            if strategy != "causal" and o.equal_total:
                r = flip(audio, sample_rate, model, k=k, space="fft", explanation=e, budget=o.flip_budget,
                         strategy=strategy, start_from=None if fixed else before_given, _cache=cache, **knobs)
                given.setdefault(strategy, {})[str(k)] = _flip_summary(r)
                before_given = r
    rec["fft_flips"] = flips
    if given:
        rec["fft_flips_given_explanation"] = given
    del cache
    if o.stft and o.stft_explain_budget == 0:
        es = e  # the fft explanation, projected onto the STFT bins by the fixed changes
        rec["stft_explanation"] = {"projected_from": "fft", "queries": 0, "seconds": 0.0}
    elif o.stft:
        t0 = time.perf_counter()
        es = explain(audio, sample_rate, model, space="stft", seed=o.seed, budget=o.stft_explain_budget,
                     iterations=o.stft_explain_iterations, cuts=o.cuts, extraction_batch=o.extraction_batch,
                     tol=o.tol, n_fft=o.n_fft, hop_length=o.hop_length, progress=progress)
        rec["stft_explanation"] = {
            "shape": list(es.responsibility.shape),
            "sets": _sets_of(es),
            "queries": es.queries,
            "seconds": time.perf_counter() - t0,
        }
    if o.stft:
        cache = {}
        stft_flips = {}
        stft_given = {}
        for strategy in (s for s in o.strategies if s not in ("tone_scan", "additive")):
            r = flip(audio, sample_rate, model, k=o.stft_k, space="stft", explanation=es,
                     budget=_budget(o, strategy, es, stft=True), strategy=strategy, n_fft=o.n_fft,
                     hop_length=o.hop_length, _cache=cache, **knobs)
            stft_flips[strategy] = _flip_summary(r)
            if strategy != "causal" and o.equal_total:
                r = flip(audio, sample_rate, model, k=o.stft_k, space="stft", explanation=es,
                         budget=o.stft_flip_budget, strategy=strategy, n_fft=o.n_fft, hop_length=o.hop_length,
                         _cache=cache, **knobs)
                stft_given[strategy] = _flip_summary(r)
        rec["stft_flips"] = stft_flips
        if stft_given:
            rec["stft_flips_given_explanation"] = stft_given
    rec["seconds"] = time.perf_counter() - t_clip
    return rec


