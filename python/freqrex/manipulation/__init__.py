"""Manipulation: the quietest change of a few frequencies that flips a classifier.

Holds the flip search (``candidates``: where to look; ``perturbation``: the
clip in a space and how loud a change is; ``search``: the quietest and the
masked searches; ``fixed``: fixed changes; ``result``: :class:`FlipResult`;
``options``: :class:`FlipOptions`, every option's default and bounds).
May import :mod:`freqrex.psychoacoustic`, the checks and the explainer; never
the report or the CLI.

:func:`flip` (``freqrex.flip``) looks for a change of at most ``k`` whole-clip
rFFT bins (``space="fft"``), or STFT cells under the masking threshold
(``space="stft"``), that moves the model's top-1 class away from the original
(or onto ``target``), and makes it as quiet as it can within an exact query
budget.  Audibility is the objective: every result reports ``snr_db``, the
quietest frame's SNR, ``db_x``, and the share of cells over (and the largest
excess above) freqrex's masking threshold and ART 1.20.1's, the independent
check (:mod:`freqrex.signal.audibility`); ``inaudible`` means under both in
every cell.

The method (``change="quietest"``, the default)
-----------------------------------------------
``fft``: candidates (one element and a direction: add in phase, or subtract)
come from the strategy (:mod:`freqrex.manipulation.candidates`; ``causal``
changes where the explanation puts the decision's evidence: the target's
responsible parts and, from ReX's per-class maps, the parts whose removal
lets another class win; their loudest bins are attenuated and tones are
added inside them).  Each is
tried at the SNR level that would beat the quietest flip so far, and every
flip is pushed to its quietest level by a 1-D search on the model's score
gap; with ``k > 1`` the candidates that came closest are combined
(:mod:`freqrex.manipulation.search`).  ``stft``: a SimBA-style search over
time-frequency tiles sets cells to their masking bound, in phase or in
anti-phase, guided by an ``stft`` explanation, and spreads the change over as
many cells as it needs (``n_changed``).  ``change="remove" | "gain" | "phase" |
"auto"`` runs the fixed-change enumeration instead (:mod:`.fixed`).

The ``causal`` ``fft`` flip starts from the additive refinement
(:data:`CAUSAL_STARTS_ADDITIVE`): half of its flip budget measures where an
added quiet tone cuts the decision's margin, then those tones and the
explanation's candidates are tried alternately.
``strategy="additive"`` (``fft``) runs the additive partition search alone
(:mod:`freqrex.manipulation.additive`): quiet tones added to mel bands at the
masking threshold, the bands that cut the decision's margin refined toward
single tones, then the same level search; its by-product is the
:class:`VulnerabilitySpectrum` (also :func:`vulnerability`).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from .. import psychoacoustic as pa
from .._checks import call_model, check_audio, check_clip_rate, check_sample_rate
from ..errors import ParameterError
from ..models import as_model
from ..options import make_options
from .candidates import STRATEGIES, Change, fft_candidates
from .additive import additive_flip
from .fixed import fixed_flip, ranked_elements
from .options import CHANGES, FLIP_FIELDS, STFT_STRATEGIES, FlipOptions, resolve_flip_options  # noqa: F401
from .oracle import Oracle, check_classes
from .perturbation import SpectralClip, db_x, snr_db
from .result import FlipResult
from .search import masked_flip, quietest_flip, start_search
from .vulnerability import VulnerabilitySpectrum

__all__ = ["FlipOptions", "FlipResult", "flip", "vulnerability", "STRATEGIES", "CHANGES", "SpectralClip",
           "VulnerabilitySpectrum"]

#: Changes tried, in order, for the fixed ``change="auto"``.
AUTO_CHANGES = ("remove", "gain")
#: Whether the ``causal`` fft flip starts with the additive refinement: half its flip budget measures
#: which mel bands an added quiet tone moves the model in, then the refined tones and the
#: explanation's candidates are tried alternately (docs/evaluation.md, "Additive causal search":
#: 3 of 8 key-CNN clips flipped at SNR >= 20 dB against 1 of 8 without it).
CAUSAL_STARTS_ADDITIVE = True
#: Options of the explanation that flip sets from its own (FlipOptions) fields.
_EXPLANATION_OPTIONS_SET_BY_FLIP = ("budget", "iterations", "space", "seed", "n_fft", "hop_length")

ProgressCallback = Callable[[str, int, int], None]


def flip(
    audio: Any,
    sample_rate: int,
    model: Callable[[np.ndarray], Any],
    *,
    options: Optional[FlipOptions] = None,
    explanation: Any = None,
    k: Optional[int] = None,
    space: Optional[str] = None,
    budget: Optional[int] = None,
    seed: Optional[int] = None,
    change: Optional[str] = None,
    strategy: Optional[str] = None,
    target: Optional[int] = None,
    probe_snr_db: Optional[float] = None,
    min_snr_db: Optional[float] = None,
    max_snr_db: Optional[float] = None,
    tol_db: Optional[float] = None,
    masking_safety_db: Optional[float] = None,
    max_gain_db: Optional[float] = None,
    max_phase: Optional[float] = None,
    candidates: Optional[int] = None,
    n_fft: Optional[int] = None,
    hop_length: Optional[int] = None,
    batch_size: Optional[int] = None,
    minimize: Optional[bool] = None,
    margin_safety_db: Optional[float] = None,
    explain_budget: Optional[int] = None,
    explain_iterations: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    start_from: Optional[FlipResult] = None,
    _cache: Optional[Dict] = None,
    **explain_options: Any,
) -> FlipResult:
    """Find the quietest change of at most ``k`` frequencies that changes the model's mind.

    Every flip option (``k`` to ``explain_iterations``) is a field of
    :class:`~freqrex.manipulation.options.FlipOptions`, which holds its
    default, its bounds and its full description; an option left at None
    takes its value from ``options`` (default ``FlipOptions()``).

    Parameters
    ----------
    audio : array_like, shape (samples,)
        A mono clip at ``sample_rate``.
    sample_rate : int
    model : callable
        ``model(waves) -> scores`` on float32 ``(batch, samples)``.
    options : FlipOptions, optional
        The options to start from; the keywords below given (not None)
        replace its fields.
    explanation : Explanation, optional
        An explanation of this clip in ``space`` (``causal``); computed with
        ``explain_budget``, ``explain_iterations``, ``seed`` and
        ``explain_options`` when not given (its queries are counted in
        ``queries``).  Baselines use it only for the original scores.
    k : int, default FlipOptions.k (1)
        Most rFFT bins changed together (``fft``; fixed changes: also STFT
        cells).  The masked ``stft`` search uses as many cells as it needs.
    space : {"fft", "stft"}, default FlipOptions.space ("fft")
    budget : int, default FlipOptions.budget (100)
        Most perturbed clips the flip search may evaluate (never exceeded).
    seed : int, default FlipOptions.seed (0)
    change : {"quietest", "auto", "remove", "gain", "phase"}, default FlipOptions.change ("quietest")
        ``"quietest"``: amplitude-searched additions/subtractions (``fft``) or
        the masked envelope search (``stft``); the others run fixed changes.
    strategy : {"auto", "causal", "random", "magnitude", "tone_scan", "additive"}, default FlipOptions.strategy ("auto")
        Where candidates come from (``tone_scan``: ``fft`` only; ``additive``:
        the additive partition search, ``fft`` and ``change="quietest"`` only,
        whose vulnerability spectrum is ``result.vulnerability``).  ``"auto"``:
        ``additive`` for an ``fft`` quietest flip with no ``explanation``
        given, else ``causal`` (:meth:`FlipOptions.strategy_for`);
        ``result.strategy`` says which ran.
    target : int, optional
        Targeted flip: succeed only when the top-1 class becomes ``target``.
    probe_snr_db : float, default FlipOptions.probe_snr_db (20)
        SNR at which candidates are first tried (``fft``).
    min_snr_db, max_snr_db : float, default FlipOptions' (0 and 60)
        The loudest change allowed, and the quietest worth finding (``fft``).
    tol_db : float, default FlipOptions.tol_db (0.5)
        Resolution of the amplitude search.
    masking_safety_db : float, default FlipOptions.masking_safety_db (3)
        ``stft``: cells are bounded this many dB under the masking threshold.
    max_gain_db, max_phase, candidates, minimize, margin_safety_db
        Fixed changes only: gain (dB), rotation (rad), candidates considered,
        shrinking of blocks, and the ``stft`` margin of the uniform scaling.
    n_fft, hop_length : int, default FlipOptions' (2048 and 512)
        STFT geometry (``space="stft"``).
    batch_size : int, default FlipOptions.batch_size (16)
        Most perturbed clips per model call (results do not depend on it).
    explain_budget, explain_iterations : int, default FlipOptions' (400 and 4)
        Budget and iterations of the explanation computed here.
    progress : callable, optional
        ``progress(phase, done, total)`` after every batch of queries (cached clips count as queries).
    start_from : FlipResult, optional
        A successful ``fft`` quietest flip of this clip and model with at most
        ``k`` bins (typically ``k=1``'s): the search starts from it (re-scored,
        one query of ``budget``) and only looks for quieter flips, so the
        result is never louder than it, e.g. ``flip(k=5, start_from=flip(k=1))``.
        The start is played as it was found, whatever the seed or strategy of
        either search.  With ``k > 1`` its single candidates are probed at ``probe_snr_db``
        even when the start is louder (the ``k=1`` search has tried them at
        the loud levels): their closeness there chooses the combinations.
    **explain_options
        Further options of :func:`freqrex.explain` (``fmin``, ``fmax``,
        ``cuts``, ...).  ``fmin``/``fmax`` also bound the baselines' bins.

    Returns
    -------
    FlipResult
        With ``vulnerability``: the
        :class:`~freqrex.manipulation.vulnerability.VulnerabilitySpectrum` of
        the additive refinement (the ``additive`` strategy, and the ``causal``
        ``fft`` quietest flip that starts from it; None for the others; not
        saved with the flip).

    Raises
    ------
    ParameterError
        Bad options, a target equal to the original class or out of range, an
        explanation of another clip or space, or of a class the model does not decide.
    ModelError
        The model misbehaves.
    """
    start = time.perf_counter()
    arguments = dict(locals())  # the parameters, before anything else is bound
    o = resolve_flip_options(options, {name: arguments[name] for name in FLIP_FIELDS})
    k, space, budget, seed, n_fft, hop_length = o.k, o.space, o.budget, o.seed, o.n_fft, o.hop_length
    change, strategy, target = o.change, o.strategy_for(explanation is not None), o.target
    reserved = sorted(set(explain_options) & set(_EXPLANATION_OPTIONS_SET_BY_FLIP))
    if reserved:
        raise ParameterError(
            f"option(s) {', '.join(reserved)} of the explanation are set by flip's own arguments "
            "(explain_budget, explain_iterations, space, seed, n_fft, hop_length)"
        )
    model = as_model(model)  # HF models, pipelines, torch modules, paths -> a freqrex Model
    x = check_audio(audio)
    sr = check_sample_rate(sample_rate)
    check_clip_rate(model, sr)
    if space == "stft" and x.size < n_fft // 2 + 1:
        raise ParameterError(f"the clip ({x.size} samples) is shorter than half an STFT window (n_fft={n_fft})")
    cache: Dict = _cache if _cache is not None else {}

    # ---- the explanation (causal) and the original scores
    explanation_queries = 0
    if explanation is not None:
        espace = getattr(explanation, "space", None)
        fixed_projection = change != "quietest" and space == "stft" and espace == "fft"
        if espace != space and not fixed_projection:
            raise ParameterError(f"the explanation is of the {espace!r} space, not {space!r}")
        if int(explanation.n_samples) != x.size or int(explanation.sample_rate) != sr:
            raise ParameterError("the explanation is of another clip (length or sample rate differ)")
        if space == "stft" and espace == "stft" and (
            int(explanation.options.get("n_fft", n_fft)) != n_fft
            or int(explanation.options.get("hop_length", hop_length)) != hop_length
        ):
            raise ParameterError("the explanation used another STFT geometry (n_fft/hop_length)")
        make_options(**explain_options)  # validate names and values, as without an explanation
        if strategy == "causal":
            explanation_queries = int(explanation.queries)
    elif strategy == "causal":
        from ..explainer import explain

        if progress is not None:
            progress("explain", 0, o.explain_budget)
        explanation = explain(
            x, sr, model, space=space, seed=seed, budget=o.explain_budget, iterations=o.explain_iterations,
            n_fft=n_fft, hop_length=hop_length, progress=progress, **explain_options,
        )
        explanation_queries = int(explanation.queries)
    else:
        make_options(**explain_options)  # validate names and values

    model_timeout = explain_options.get("model_timeout")  # seconds a model call may take (also the flip's)
    if explanation is not None and explanation.original_scores is not None:
        original = np.asarray(explanation.original_scores, dtype=np.float64)
        original_queries = 0
    else:
        key = ("original",)
        if key not in cache:
            cache[key] = call_model(model, x[None, :], timeout=model_timeout, original=True)[0]
        original = cache[key]
        original_queries = 1
    n_classes = check_classes(original)
    orig_class = int(np.argmax(original))
    if explanation is not None and int(explanation.target) != orig_class:
        raise ParameterError(
            f"the explanation is of class {int(explanation.target)}, but the model decides class {orig_class} "
            "for this clip: a flip changes the decision, so explain the decision (explain without target)"
        )
    orig_score = float(original[orig_class])
    if target is not None:
        if target >= n_classes:
            raise ParameterError(f"target must be a class index below {n_classes}, got {target}")
        if target == orig_class:
            raise ParameterError(f"target {target} is already the model's class for this clip")

    seed_change = _start_change(start_from, x.size, sr, space, change, k, target)
    clip = SpectralClip(x, sr, space, n_fft, hop_length, cache)
    band = make_options(
        space=space, fmin=explain_options.get("fmin"), fmax=explain_options.get("fmax"),
        n_fft=n_fft, hop_length=hop_length,
    ).band(clip.n_bins, clip.n_fft, sr)
    if explanation is not None and space == "fft" and explanation.space == "fft":
        band = tuple(explanation.options.get("_band", band))  # type: ignore[assignment]
    oracle = Oracle(model, n_classes, orig_class, target, budget, o.batch_size, cache, progress,
                    timeout=model_timeout)

    amplitude = level_db = None
    directions = None
    scale = None
    gain = phase_rad = None
    spectrum = None
    if change == "quietest" and space == "fft":
        method = "quietest"
        if strategy == "additive" or (strategy == "causal" and CAUSAL_STARTS_ADDITIVE):
            then = fft_candidates(strategy, clip.coef, band, explanation, seed) if strategy == "causal" else None
            best, closest, spectrum = additive_flip(
                clip, oracle, band=band, seed=seed, k=k, original_scores=original, probe_db=o.probe_snr_db,
                min_db=o.min_snr_db, max_db=o.max_snr_db, tol_db=o.tol_db, then=then, start=seed_change,
            )
        else:
            initial = [] if seed_change is None else start_search(clip, oracle, *seed_change).attempts(
                [seed_change[1]])
            best, closest = quietest_flip(
                clip, oracle, fft_candidates(strategy, clip.coef, band, explanation, seed), k=k,
                probe_db=o.probe_snr_db, min_db=o.min_snr_db, max_db=o.max_snr_db, tol_db=o.tol_db,
                initial=initial, singles_from_db=o.probe_snr_db if initial and k > 1 else None,
            )
        chosen = best if best is not None else closest
        success = best is not None
        if chosen is None:
            flat, scores, y, delta = np.zeros(0, np.int64), original, x, np.zeros(x.size)
            kind = None
        else:
            level_db = chosen.level_db
            flat = np.asarray(chosen.change.elements, dtype=np.int64)
            directions = np.asarray(chosen.change.directions, dtype=np.int8)
            scores, y, delta = chosen.scores, chosen.wave, chosen.delta
            amplitude = float(chosen.amplitude)
            kind = "add" if np.all(directions > 0) else ("subtract" if np.all(directions < 0) else "mixed")
    elif change == "quietest":
        method = "masked"
        state, success, n_cells = masked_flip(
            clip, oracle, strategy=strategy, explanation=explanation, band=band, seed=seed,
            safety_db=o.masking_safety_db, original_scores=original,
        )
        flat = np.flatnonzero(np.abs(state.spec).reshape(-1) > 0).astype(np.int64)
        scores, y, delta = state.scores, state.wave, state.delta
        kind = "masked" if flat.size else None
        if flat.size:
            directions = np.sign(np.real(state.spec.reshape(-1)[flat] * np.conj(clip.coef.reshape(-1)[flat])))
            directions = np.where(directions >= 0, 1, -1).astype(np.int8)
    else:
        method = "fixed"
        kinds = AUTO_CHANGES if change == "auto" else (change,)
        reach = int(math.ceil(budget / len(kinds))) + k
        cands = ranked_elements(strategy, clip, explanation, band, o.candidates if o.candidates else reach, seed)
        found, worst = fixed_flip(
            clip, oracle, cands, k=k, kinds=kinds, max_gain_db=o.max_gain_db, max_phase=o.max_phase,
            minimize=o.minimize, margin_safety_db=o.margin_safety_db,
        )
        if found is not None:
            s, kind, scores, scale, y = found
            success = True
        elif worst is not None:
            _, s, kind, scores, scale, y = worst
            success = False
        else:  # pragma: no cover - budget >= 1 always evaluates something
            s, kind, scores, scale, y = (), None, original, 1.0, x
            success = False
        flat = np.sort(cands[list(s)]) if s else np.zeros(0, dtype=np.int64)
        delta = y.astype(np.float64) - clip.x
        gain = o.max_gain_db if kind == "gain" else None
        phase_rad = o.max_phase if kind == "phase" else None
        scale = float(scale) if space == "stft" and kind else None

    frames, bins = np.divmod(flat, clip.n_bins)
    freqs = bins * (sr / clip.n_fft)
    # the clip's thresholds, computed once for the search (and for every flip of an evaluation's clip)
    heard = pa.audibility(
        x, y, sr, n_fft=n_fft, hop_length=hop_length,
        threshold=clip.mask if clip._geometry() == (n_fft, hop_length) else None,
        art_threshold=clip.art_mask if clip.x.size >= 2048 else None,
    )
    excesses = [v for v in (heard["max_excess_db"], heard["art_max_excess_db"]) if v is not None]
    margin: Optional[float] = -max(excesses)
    names = getattr(model, "class_names", None)

    def name(i: int) -> Optional[str]:
        return str(names[i]) if names is not None and 0 <= i < len(names) else None

    new_class = int(np.argmax(scores))
    actual = y.astype(np.float64) - clip.x
    scores = np.asarray(scores, dtype=np.float64)
    if target is not None:
        closest_class = target
        closest_margin = float(scores[target] - np.max(np.delete(scores, target)))
    else:
        others = np.delete(np.arange(n_classes), orig_class)
        closest_class = int(others[np.argmax(scores[others])])
        closest_margin = float(scores[closest_class] - scores[orig_class])
    result = FlipResult(
        success=bool(success),
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
        gain_db=gain,
        phase_rad=phase_rad,
        scale=scale,
        bins=bins.astype(np.int64),
        frequencies_hz=freqs.astype(np.float64),
        frames=frames.astype(np.int64) if space == "stft" else None,
        times_s=(frames * (hop_length / sr)).astype(np.float64) if space == "stft" else None,
        audio=y,
        snr_db=pa.snr_db(x, y),
        db_x=db_x(clip.x, actual),
        inaudible=bool(heard["inaudible"]),
        margin_db=margin,
        quietest_frame_snr_db=heard["quietest_frame_snr_db"],
        over_threshold_share=heard["over_threshold_share"],
        max_excess_db=heard["max_excess_db"],
        art_over_threshold_share=heard["art_over_threshold_share"],
        art_max_excess_db=heard["art_max_excess_db"],
        louder_than_clip_share=heard["louder_than_clip_share"],
        closest_margin=closest_margin,
        closest_class=closest_class,
        closest_name=name(closest_class),
        queries=explanation_queries + original_queries + oracle.used,
        flip_queries=oracle.used,
        explanation_queries=explanation_queries,
        attempts=oracle.used,
        budget=budget,
        seed=seed,
        elapsed=time.perf_counter() - start,
        sample_rate=sr,
        amplitude=amplitude,
        directions=directions,
        method=method,
    )
    if spectrum is not None:
        spectrum.original_name = name(orig_class)
        spectrum.queries = result.queries
        spectrum.flip = result
    result.vulnerability = spectrum
    result._level_db = level_db
    return result


def _start_change(start_from: Any, n_samples: int, sr: int, space: str, change: str, k: int,
                  target: Optional[int]) -> Optional[Tuple[Change, float, np.ndarray]]:
    """The change, level and perturbed clip a search starts from (``flip(start_from=...)``), or None."""
    if start_from is None:
        return None
    if not isinstance(start_from, FlipResult):
        raise ParameterError(f"start_from must be a FlipResult, got {type(start_from).__name__}")
    if space != "fft" or change != "quietest" or start_from.space != "fft" or start_from.method != "quietest":
        raise ParameterError("start_from applies to fft quietest flips (space='fft', change='quietest') only")
    if int(start_from.audio.size) != n_samples or int(start_from.sample_rate) != sr:
        raise ParameterError("start_from is a flip of another clip (length or sample rate differ)")
    if start_from.target != target:
        raise ParameterError(f"start_from was a flip toward target {start_from.target}, not {target}")
    if start_from.bins.size > k:
        raise ParameterError(f"start_from changes {start_from.bins.size} bins, more than k={k}")
    if not start_from.success or start_from.directions is None or start_from.bins.size == 0:
        return None  # nothing to start from: a plain search
    level = getattr(start_from, "_level_db", None)  # exact in memory; a loaded flip has its SNR
    level = float(start_from.snr_db if level is None else level)
    ch = Change.of([(int(b), int(d)) for b, d in zip(start_from.bins, start_from.directions)], "start")
    return ch, level, np.asarray(start_from.audio)


def vulnerability(
    audio: Any,
    sample_rate: int,
    model: Callable[[np.ndarray], Any],
    *,
    budget: Optional[int] = None,
    seed: Optional[int] = None,
    target: Optional[int] = None,
    batch_size: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    **flip_options: Any,
) -> VulnerabilitySpectrum:
    """Where a quiet added tone moves the model: the additive search's vulnerability spectrum.

    Runs :func:`flip` with ``strategy="additive"`` (``k=1``, the ``fft``
    space) within ``budget`` queries and returns its spectrum: for every band
    of the partition the search ended with, the margin the decision lost when
    tones at the masking threshold were added there, and the quietest SNR at
    which one tone in it flipped (:mod:`freqrex.manipulation.additive`).

    Parameters
    ----------
    audio : array_like, shape (samples,)
    sample_rate : int
    model : callable
    budget : int, default FlipOptions.budget (100)
        Model queries of the search (exact; the original clip's costs one more).
    seed : int, default FlipOptions.seed (0)
        Fixes the tones' phases; same seed, same spectrum, whatever ``batch_size``.
    target : int, optional
        Probe the way to this class instead of any other.
    batch_size : int, default FlipOptions.batch_size (16)
    progress : callable, optional
    **flip_options
        ``options``, ``probe_snr_db``, ``min_snr_db``, ``max_snr_db``,
        ``tol_db``, ``fmin``, ``fmax``: as :func:`flip`.

    Returns
    -------
    VulnerabilitySpectrum
        Its ``flip`` is the :class:`FlipResult` of the search.
    """
    bad = sorted(set(flip_options) & {"k", "space", "strategy", "change", "explanation"})
    if bad:
        raise ParameterError(f"vulnerability() fixes {', '.join(bad)} (the additive k = 1 fft search)")
    r = flip(audio, sample_rate, model, k=1, space="fft", strategy="additive", change="quietest",
             budget=budget, seed=seed, target=target, batch_size=batch_size, progress=progress, **flip_options)
    return r.vulnerability
