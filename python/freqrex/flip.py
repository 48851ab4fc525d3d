"""Manipulation: flip a classifier's decision by changing a few frequencies.

:func:`flip` looks for a change of at most ``k`` elements of the frequency
space of a clip (whole-clip FFT bins, or STFT cells) that moves the model's
top-1 class away from the original one (or onto a chosen ``target`` class).

Where the candidates come from (``strategy``)
---------------------------------------------
``"causal"`` (freqrex)
    The elements of the sufficient-and-necessary set first (the sufficient
    set when there is none), then the rest of the explanation's ranking; by
    responsibility, descending.  Responsibility is constant over a part of the
    final partition (often hundreds of bins at small budgets), so ties are
    broken by the magnitude of the original coefficient, descending, then by
    the lower index.  An :class:`~freqrex.Explanation` of the same clip and
    space may be passed; otherwise one is computed first and its queries are
    reported too.  An ``stft`` flip may also be given an ``fft`` explanation:
    its responsibility is projected onto the STFT bins (the mean over the FFT
    bins inside each STFT bin) and cells are ranked by it, then by magnitude
    (one explanation then serves both flips).
``"random"``
    Elements drawn uniformly without replacement (seeded) from the searched
    band: the baseline that shows what the causal ranking adds.
``"magnitude"``
    The elements with the largest original magnitude: the obvious heuristic.

All three share the same enumeration, the same change types and the same
query budget, so their success rates compare directly.

What is tried, in order
-----------------------
Candidates ``c0, c1, c2, ...`` are visited in order.  Each candidate is tried
alone; after every ``k`` candidates (``k > 1``) the block of those ``k``
candidates is tried together.  So a flip of one element is found wherever one
element suffices, and blocks of ``k`` catch effects that need several
elements.  Every set is tried with each change of ``change`` in turn
(``"auto"``: removal, then gain).  The first set in this order that flips the
decision wins; if it is a block, it is then shrunk greedily (dropping
elements, least-ranked first, as long as the decision stays flipped) within
the remaining budget.  The order does not depend on ``batch_size``, so the
result is a function of the inputs and ``seed`` only.

A run with ``k`` is, by construction, a standalone experiment: the query
budget (``budget``) is never exceeded, and evaluating ``k = 1..5`` side by
side may share a score cache (identical perturbations are evaluated once, but
each run still counts them as its own queries).

Changes
-------
``"remove"``: the coefficients are set to 0.  ``"gain"``: multiplied by
``10 ** (max_gain_db / 20)``.  ``"phase"``: rotated by ``max_phase`` radians.
In the ``fft`` space the perturbed clip is ``irfft(X')`` (the difference is a
sum of stationary sinusoids).  In the ``stft`` space the change of the cells is
resynthesised by weighted overlap-add (the convention of
:func:`freqrex.psychoacoustic.stft`) and then scaled down, uniformly, until the
power spectral density of the difference is below the original's global
masking threshold (MPEG-1 psychoacoustic model 1 as adapted by Qin et al.
2019, :mod:`freqrex.psychoacoustic`) in every frame, with a safety margin of
``margin_safety_db``.  ``inaudible`` and ``margin_db`` of the result are
computed with :func:`freqrex.psychoacoustic.perturbation_margin_db` on the
final perturbed clip.
"""

from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import _stft
from . import psychoacoustic as pa
from ._checks import call_model, check_audio, check_sample_rate
from .errors import ParameterError
from .options import make_options

__all__ = ["FlipResult", "flip", "STRATEGIES", "CHANGES"]

STRATEGIES = ("causal", "random", "magnitude")
CHANGES = ("remove", "gain", "phase", "auto")
#: Changes tried, in order, for ``change="auto"``.
AUTO_CHANGES = ("remove", "gain")

ProgressCallback = Callable[[str, int, int], None]


@dataclass
class FlipResult:
    """The outcome of :func:`flip`.

    Attributes
    ----------
    success : bool
        Whether the top-1 class moved away from the original (or, for a
        targeted flip, onto ``target``).
    strategy : {"causal", "random", "magnitude"}
    space : {"fft", "stft"}
    k : int
        Largest number of elements allowed to change.
    original_class, original_name, original_score
        The model's top-1 class on the original clip, its name and score.
    new_class, new_name, new_score
        Top-1 class of the perturbed clip, its name and score.  When the flip
        failed, these describe the best attempt (the smallest gap between the
        original class and the runner-up), and ``audio`` is that attempt.
    original_class_score : float
        Score of the original class on the perturbed clip.
    target : int or None
        The class asked for (targeted flip), or None.
    change : str or None
        Change applied: ``"remove"``, ``"gain"`` or ``"phase"``.
    gain_db, phase_rad : float or None
        Its size (gain for ``"gain"``, rotation for ``"phase"``).
    scale : float or None
        ``stft`` only: factor applied to the change to keep it under the
        masking threshold (1.0: no reduction was needed).
    bins : ndarray of int
        Frequency bin of every changed element.
    frequencies_hz : ndarray of float
        Their frequencies in Hz.
    frames, times_s : ndarray or None
        ``stft`` only: frame index and centre time (s) of every changed cell.
    audio : ndarray of float32
        The perturbed clip.
    snr_db : float
        ``10 log10(sum x^2 / sum (x' - x)^2)`` of the perturbed clip.
    inaudible : bool or None
        ``stft`` only: every frame's change is below the masking threshold.
    margin_db : float or None
        ``stft`` only: smallest margin (dB) under the threshold over frames.
    queries : int
        Model evaluations attributable to this flip: those of the
        explanation used (causal), or 1 for the original clip (baselines),
        plus ``flip_queries``.
    flip_queries : int
        Perturbed clips evaluated by the search (``<= budget``).
    explanation_queries : int
        Queries of the explanation used (0 for the baselines).
    attempts : int
        Candidate perturbations evaluated (equal to ``flip_queries``).
    budget : int
    seed : int
    elapsed : float
        Seconds (the explanation included when it was computed here).
    sample_rate : int
    """

    success: bool
    strategy: str
    space: str
    k: int
    original_class: int
    original_name: Optional[str]
    original_score: float
    new_class: int
    new_name: Optional[str]
    new_score: float
    original_class_score: float
    target: Optional[int]
    change: Optional[str]
    gain_db: Optional[float]
    phase_rad: Optional[float]
    scale: Optional[float]
    bins: np.ndarray
    frequencies_hz: np.ndarray
    frames: Optional[np.ndarray]
    times_s: Optional[np.ndarray]
    audio: np.ndarray = field(repr=False)
    snr_db: float
    inaudible: Optional[bool]
    margin_db: Optional[float]
    queries: int
    flip_queries: int
    explanation_queries: int
    attempts: int
    budget: int
    seed: int
    elapsed: float
    sample_rate: int

    @property
    def n_changed(self) -> int:
        """Number of changed elements (0 when the flip failed)."""
        return int(self.bins.size) if self.success else 0

    def summary(self) -> Dict[str, Any]:
        """A JSON-ready summary (everything but the audio)."""

        def num(v):
            if v is None:
                return None
            v = float(v)
            return v if math.isfinite(v) else (None if math.isnan(v) else ("inf" if v > 0 else "-inf"))

        return {
            "success": bool(self.success),
            "strategy": self.strategy,
            "space": self.space,
            "k": self.k,
            "original_class": self.original_class,
            "original_name": self.original_name,
            "original_score": float(self.original_score),
            "new_class": self.new_class,
            "new_name": self.new_name,
            "new_score": float(self.new_score),
            "original_class_score": float(self.original_class_score),
            "target": self.target,
            "change": self.change,
            "gain_db": num(self.gain_db),
            "phase_rad": num(self.phase_rad),
            "scale": num(self.scale),
            "n_changed": self.n_changed,
            "bins": [int(b) for b in self.bins],
            "frequencies_hz": [float(f) for f in self.frequencies_hz],
            "frames": None if self.frames is None else [int(t) for t in self.frames],
            "times_s": None if self.times_s is None else [float(t) for t in self.times_s],
            "snr_db": num(self.snr_db),
            "inaudible": self.inaudible,
            "margin_db": num(self.margin_db),
            "queries": self.queries,
            "flip_queries": self.flip_queries,
            "explanation_queries": self.explanation_queries,
            "budget": self.budget,
            "seed": self.seed,
            "elapsed_s": float(self.elapsed),
            "sample_rate": self.sample_rate,
        }


# --------------------------------------------------------------------------- checks


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(f"{name} must be an integer, got {value!r}")
    if int(value) < low:
        raise ParameterError(f"{name} must be >= {low}, got {value}")
    return int(value)


def _check_real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ParameterError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _choice(value: Any, name: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ParameterError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


# --------------------------------------------------------------------------- perturbations


class _Clip:
    """The original clip in the chosen space, and how to perturb it."""

    def __init__(self, x: np.ndarray, sr: int, space: str, n_fft: int, hop_length: int, cache: Dict):
        self.x32 = x
        self.x = x.astype(np.float64)
        self.sr = sr
        self.space = space
        self.n = x.size
        if space == "fft":
            key = ("fft-coefficients",)
            if key not in cache:
                cache[key] = np.fft.rfft(self.x)
            self.coef = cache[key][None, :]
            self.n_fft = self.n
            self.hop = self.n
        else:
            self.n_fft, self.hop = n_fft, hop_length
            key = ("stft-coefficients", n_fft, hop_length)
            if key not in cache:
                cache[key] = pa.stft(self.x, n_fft=n_fft, hop_length=hop_length)
            self.coef = cache[key]
            key = ("masking", n_fft, hop_length)
            if key not in cache:
                cache[key] = pa.masking_threshold(self.x, sr, n_fft=n_fft, hop_length=hop_length)
            self.mask = cache[key]
            n_frames = self.coef.shape[0]
            self.padded_len = _stft.padded_length(n_frames, n_fft, hop_length)
            self.window = _stft.hann(n_fft)
            self.wsum = _stft.window_sum(n_frames, n_fft, hop_length)
            self.half = n_fft // 2
        self.n_frames, self.n_bins = self.coef.shape

    # -- the change of a set of flat indices, as a float64 difference waveform
    def delta(self, flat: np.ndarray, kind: str, gain_db: float, phase: float) -> np.ndarray:
        frames, bins = np.divmod(flat, self.n_bins)
        c = self.coef[frames, bins]
        if kind == "remove":
            d = -c
        elif kind == "gain":
            d = c * (10.0 ** (gain_db / 20.0) - 1.0)
        else:
            d = c * (np.exp(1j * phase) - 1.0)
        if self.space == "fft":
            spec = np.zeros(self.n_bins, dtype=np.complex128)
            np.add.at(spec, bins, d)
            return np.fft.irfft(spec, n=self.n)
        out = np.zeros(self.padded_len)
        for t in np.unique(frames):
            spec = np.zeros(self.n_bins, dtype=np.complex128)
            sel = frames == t
            np.add.at(spec, bins[sel], d[sel])
            seg = np.fft.irfft(spec, n=self.n_fft) * self.window
            out[t * self.hop : t * self.hop + self.n_fft] += seg
        nz = self.wsum > 1e-12
        out[nz] /= self.wsum[nz]
        return out[self.half : self.half + self.n]

    def margin(self, delta: np.ndarray) -> float:
        """Smallest margin (dB) of a difference under the masking threshold, over frames."""
        nzs = np.flatnonzero(delta)
        if nzs.size == 0:
            return math.inf
        n_fft, hop, half = self.n_fft, self.hop, self.half
        lo_s, hi_s = nzs[0] + half, nzs[-1] + half  # in padded coordinates
        t0 = max(0, (lo_s - n_fft) // hop)
        t1 = min(self.n_frames - 1, hi_s // hop + 1)
        padded = np.zeros(self.padded_len)
        padded[half : half + self.n] = delta
        seg = padded[t0 * hop : t1 * hop + n_fft]
        frames = np.lib.stride_tricks.sliding_window_view(seg, n_fft)[::hop]
        spec = np.fft.rfft(frames * self.window, axis=-1)
        psd, _ = pa.power_spectrum_db(spec, n_fft, reference=self.mask.offset_db)
        thr = self.mask.threshold_db[t0 : t0 + spec.shape[0]]
        m = np.where(np.abs(spec) > 0, thr - psd, np.inf).min(initial=np.inf)
        return float(m)


# --------------------------------------------------------------------------- candidates


def _band(space: str, n_bins: int, n_fft: int, sr: int, options: Dict[str, Any]) -> Tuple[int, int]:
    opts = make_options(
        space=space,
        fmin=options.get("fmin"),
        fmax=options.get("fmax"),
        n_fft=options.get("n_fft", 2048),
        hop_length=options.get("hop_length", 512),
    )
    return opts.band(n_bins, n_fft, sr)


def _candidates(
    strategy: str,
    clip: _Clip,
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


# --------------------------------------------------------------------------- the search


def flip(
    audio: Any,
    sample_rate: int,
    model: Callable[[np.ndarray], Any],
    *,
    k: int = 1,
    space: str = "fft",
    explanation: Any = None,
    budget: int = 64,
    seed: int = 0,
    change: str = "auto",
    max_gain_db: float = 20.0,
    max_phase: float = math.pi,
    target: Optional[int] = None,
    candidates: Optional[int] = None,
    strategy: str = "causal",
    n_fft: int = 2048,
    hop_length: int = 512,
    batch_size: int = 16,
    minimize: bool = True,
    margin_safety_db: float = 0.5,
    explain_budget: int = 400,
    explain_iterations: int = 4,
    progress: Optional[ProgressCallback] = None,
    _cache: Optional[Dict] = None,
    **explain_options: Any,
) -> FlipResult:
    """Change at most ``k`` frequencies (or STFT cells) so that the model changes its mind.

    Parameters
    ----------
    audio : array_like, shape (samples,)
        A mono clip at ``sample_rate``.
    sample_rate : int
    model : callable
        ``model(waves) -> scores`` on float32 ``(batch, samples)``.
    k : int, default 1
        Largest number of elements changed together (>= 1).
    space : {"fft", "stft"}
        Whole-clip FFT bins, or STFT cells kept under the masking threshold.
    explanation : Explanation, optional
        An explanation of this clip in ``space`` (or an ``fft`` explanation for
        an ``stft`` flip, projected onto the STFT bins) (causal strategy); computed
        with ``explain_budget``, ``explain_iterations``, ``seed`` and
        ``explain_options`` when not given.  Baselines use it, when given,
        only for the original scores.
    budget : int, default 64
        Most perturbed clips the search may evaluate (never exceeded).
    seed : int, default 0
        Seeds the explanation (when computed here) and the random baseline.
    change : {"auto", "remove", "gain", "phase"}
        ``"auto"`` tries removal, then gain, on every candidate set.
    max_gain_db : float, default 20
        Gain of the ``"gain"`` change (dB, finite, non-zero, |g| <= 60).
    max_phase : float, default pi
        Rotation of the ``"phase"`` change (radians, 0 < |phase| <= pi).
    target : int, optional
        Targeted flip: succeed only when the top-1 class becomes ``target``.
    candidates : int, optional
        Candidate elements considered (default: as many as the budget can reach).
    strategy : {"causal", "random", "magnitude"}
    n_fft, hop_length : int
        STFT geometry (``space="stft"``).
    batch_size : int, default 16
        Most perturbed clips per model call.
    minimize : bool, default True
        Shrink a successful block greedily within the remaining budget.
    margin_safety_db : float, default 0.5
        ``stft``: the change is scaled to this many dB under the threshold.
    explain_budget, explain_iterations : int
        Search budget and iterations of the explanation computed here.
    progress : callable, optional
        ``progress(phase, done, total)`` after every model call.
    **explain_options
        Further options of :func:`freqrex.explain` (``fmin``, ``fmax``,
        ``cuts``, ...).  ``fmin``/``fmax`` also bound the baselines' bins.

    Returns
    -------
    FlipResult

    Raises
    ------
    ParameterError
        Bad options (k < 1, unknown change or strategy, a budget < 1, a
        target equal to the original class or out of range, an explanation
        of another clip or space).
    ModelError
        The model misbehaves.
    """
    start = time.perf_counter()
    k = _check_int(k, "k", 1)
    budget = _check_int(budget, "budget", 1)
    seed = _check_int(seed, "seed", 0)
    batch_size = _check_int(batch_size, "batch_size", 1)
    _choice(space, "space", ("fft", "stft"))
    _choice(change, "change", CHANGES)
    _choice(strategy, "strategy", STRATEGIES)
    max_gain_db = _check_real(max_gain_db, "max_gain_db")
    if max_gain_db == 0 or abs(max_gain_db) > 60:
        raise ParameterError(f"max_gain_db must be non-zero and at most 60 dB in size, got {max_gain_db}")
    max_phase = _check_real(max_phase, "max_phase")
    if max_phase == 0 or abs(max_phase) > math.pi + 1e-12:
        raise ParameterError(f"max_phase must be non-zero and at most pi in size, got {max_phase}")
    margin_safety_db = _check_real(margin_safety_db, "margin_safety_db")
    if margin_safety_db < 0:
        raise ParameterError(f"margin_safety_db must be >= 0, got {margin_safety_db}")
    if candidates is not None:
        candidates = _check_int(candidates, "candidates", 1)
    reserved = sorted(set(explain_options) & {"budget", "iterations", "space", "seed", "n_fft", "hop_length"})
    if reserved:
        raise ParameterError(
            f"option(s) {', '.join(reserved)} of the explanation are set by flip's own arguments "
            "(explain_budget, explain_iterations, space, seed, n_fft, hop_length)"
        )
    if space == "stft":
        opts = make_options(space="stft", n_fft=n_fft, hop_length=hop_length)
        n_fft, hop_length = opts.n_fft, opts.hop_length
    x = check_audio(audio)
    sr = check_sample_rate(sample_rate)
    model_rate = getattr(model, "sample_rate", None)
    if model_rate is not None and int(model_rate) != sr:
        raise ParameterError(f"the model expects {model_rate} Hz audio but the clip is {sr} Hz; resample it")
    if space == "stft" and x.size < n_fft // 2 + 1:
        raise ParameterError(f"the clip ({x.size} samples) is shorter than half an STFT window (n_fft={n_fft})")
    cache: Dict = _cache if _cache is not None else {}

    # ---- the explanation (causal) and the original scores
    explanation_queries = 0
    if explanation is not None:
        espace = getattr(explanation, "space", None)
        if espace != space and not (space == "stft" and espace == "fft"):
            raise ParameterError(f"the explanation is of the {espace!r} space, not {space!r}")
        if int(explanation.n_samples) != x.size or int(explanation.sample_rate) != sr:
            raise ParameterError("the explanation is of another clip (length or sample rate differ)")
        if space == "stft" and espace == "stft" and (
            int(explanation.options.get("n_fft", n_fft)) != n_fft
            or int(explanation.options.get("hop_length", hop_length)) != hop_length
        ):
            raise ParameterError("the explanation used another STFT geometry (n_fft/hop_length)")
        if strategy == "causal":
            explanation_queries = int(explanation.queries)
    elif strategy == "causal":
        from .explainer import explain

        if progress is not None:
            progress("explain", 0, explain_budget)
        explanation = explain(
            x,
            sr,
            model,
            space=space,
            seed=seed,
            budget=explain_budget,
            iterations=explain_iterations,
            n_fft=n_fft,
            hop_length=hop_length,
            progress=progress,
            **explain_options,
        )
        explanation_queries = int(explanation.queries)
    else:
        make_options(**explain_options)  # validate names and values

    if explanation is not None and explanation.original_scores is not None:
        original = np.asarray(explanation.original_scores, dtype=np.float64)
        original_queries = 0
    else:
        key = ("original",)
        if key not in cache:
            cache[key] = call_model(model, x[None, :])[0]
        original = cache[key]
        original_queries = 1
    n_classes = original.size
    orig_class = int(explanation.target) if explanation is not None else int(np.argmax(original))
    orig_score = float(original[orig_class])
    if target is not None:
        target = _check_int(target, "target", 0)
        if target >= n_classes:
            raise ParameterError(f"target must be a class index below {n_classes}, got {target}")
        if target == orig_class:
            raise ParameterError(f"target {target} is already the model's class for this clip")

    clip = _Clip(x, sr, space, n_fft, hop_length, cache)
    band = _band(space, clip.n_bins, clip.n_fft, sr, {**explain_options, "n_fft": n_fft, "hop_length": hop_length})
    if explanation is not None and space == "fft" and explanation.space == "fft":
        band = tuple(explanation.options.get("_band", band))  # type: ignore[assignment]
    kinds = AUTO_CHANGES if change == "auto" else (change,)
    n_kinds = len(kinds)
    # candidates the budget can reach: about budget / kinds sets, ~ (1 + 1/k) sets per candidate
    reach = int(math.ceil(budget / n_kinds)) + k
    count = candidates if candidates is not None else reach
    cands = _candidates(strategy, clip, explanation, band, count, seed)
    sets = _sets(cands, k)
    entries = [(s, kind) for s in sets for kind in kinds]

    def param(kind: str) -> Tuple[Optional[float], Optional[float]]:
        return (max_gain_db if kind == "gain" else None, max_phase if kind == "phase" else None)

    def perturb(flat: np.ndarray, kind: str) -> Tuple[np.ndarray, float]:
        g, ph = param(kind)
        d = clip.delta(flat, kind, g or 0.0, ph or 0.0)
        scale = 1.0
        if space == "stft":
            m = clip.margin(d)
            if m < margin_safety_db:
                scale = 10.0 ** ((m - margin_safety_db) / 20.0) if math.isfinite(m) else 0.0
                d = d * scale
        y = (clip.x + d).astype(np.float32)
        return y, scale

    def passes(scores: np.ndarray) -> bool:
        top = int(np.argmax(scores))
        return top == target if target is not None else top != orig_class

    def gap(scores: np.ndarray) -> float:
        """How far from success (smaller is closer)."""
        if target is not None:
            return float(np.max(np.delete(scores, target)) - scores[target])
        return float(scores[orig_class] - np.max(np.delete(scores, orig_class)))

    used = 0
    best: Optional[Tuple[float, Tuple[int, ...], str, np.ndarray, float, np.ndarray]] = None
    found: Optional[Tuple[Tuple[int, ...], str, np.ndarray, float, np.ndarray]] = None

    def evaluate(batch: List[Tuple[Tuple[int, ...], str]]) -> List[Tuple[np.ndarray, float, np.ndarray]]:
        """Scores of a batch of (set, kind); cached perturbations cost no model call but count."""
        nonlocal used
        waves, scales, keys, results = [], [], [], []
        todo = []
        for s, kind in batch:
            flat = np.sort(cands[list(s)])
            key = ("scores", space, n_fft if space == "stft" else 0, hop_length if space == "stft" else 0,
                   kind, param(kind), margin_safety_db if space == "stft" else 0.0, tuple(int(v) for v in flat))
            y, scale = perturb(flat, kind)
            waves.append(y)
            scales.append(scale)
            keys.append(key)
            if key not in cache:
                todo.append(len(waves) - 1)
        if todo:
            scores = call_model(model, np.stack([waves[i] for i in todo]), n_classes)
            for i, row in zip(todo, scores):
                cache[keys[i]] = row
        used += len(batch)
        for i in range(len(batch)):
            results.append((cache[keys[i]], scales[i], waves[i]))
        if progress is not None:
            progress("flip", used, budget)
        return results

    pos = 0
    step = min(4, batch_size)  # small first batch: an early success wastes little
    while pos < len(entries) and used < budget and found is None:
        take = min(step, budget - used, len(entries) - pos)
        batch = entries[pos : pos + take]
        results = evaluate(batch)
        for (s, kind), (scores, scale, y) in zip(batch, results):
            if passes(scores):
                found = (s, kind, scores, scale, y)
                break
            g = gap(scores)
            if best is None or g < best[0]:
                best = (g, s, kind, scores, scale, y)
        pos += take
        step = min(batch_size, step * 2)

    if found is not None and minimize and len(found[0]) > 1:
        s, kind = found[0], found[1]
        while len(s) > 1 and used < budget:
            # drop one element, least ranked first
            trials = [tuple(v for v in s if v != drop) for drop in sorted(s, reverse=True)]
            trials = trials[: budget - used]
            results = evaluate([(t, kind) for t in trials])
            for t, (scores, scale, y) in zip(trials, results):
                if passes(scores):
                    s = t
                    found = (t, kind, scores, scale, y)
                    break
            else:
                break

    if found is not None:
        s, kind, scores, scale, y = found
        success = True
    elif best is not None:
        _, s, kind, scores, scale, y = best
        success = False
    else:  # pragma: no cover - budget >= 1 always evaluates something
        s, kind, scores, scale, y = (), None, original, 1.0, x
        success = False

    flat = np.sort(cands[list(s)]) if s else np.zeros(0, dtype=np.int64)
    frames, bins = np.divmod(flat, clip.n_bins)
    freqs = bins * (sr / clip.n_fft)
    inaudible = margin = None
    if space == "stft":
        margins, inaudible = pa.perturbation_margin_db(x, y, sr, n_fft=n_fft, hop_length=hop_length)
        margin = float(np.min(margins)) if margins.size else math.inf
    names = getattr(model, "class_names", None)

    def name(i: int) -> Optional[str]:
        return str(names[i]) if names is not None and 0 <= i < len(names) else None

    new_class = int(np.argmax(scores))
    g, ph = param(kind) if kind else (None, None)
    return FlipResult(
        success=success,
        strategy=strategy,
        space=space,
        k=k,
        original_class=orig_class,
        original_name=name(orig_class),
        original_score=orig_score,
        new_class=new_class,
        new_name=name(new_class),
        new_score=float(scores[new_class]),
        original_class_score=float(scores[orig_class]),
        target=target,
        change=kind,
        gain_db=g,
        phase_rad=ph,
        scale=float(scale) if space == "stft" and kind else None,
        bins=bins.astype(np.int64),
        frequencies_hz=freqs.astype(np.float64),
        frames=frames.astype(np.int64) if space == "stft" else None,
        times_s=(frames * (hop_length / sr)).astype(np.float64) if space == "stft" else None,
        audio=y,
        snr_db=pa.snr_db(x, y),
        inaudible=inaudible,
        margin_db=margin,
        queries=explanation_queries + original_queries + used,
        flip_queries=used,
        explanation_queries=explanation_queries,
        attempts=used,
        budget=budget,
        seed=seed,
        elapsed=time.perf_counter() - start,
        sample_rate=sr,
    )
