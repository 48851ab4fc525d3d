"""The explainer: drives the ask/tell loop between the engine and the model."""

from __future__ import annotations

import time
from typing import Any, Callable, Optional, Sequence

import numpy as np

from . import _stft
from ._checks import check_audio, check_clip_rate, check_sample_rate
from ._oracle import Oracle
from .margin import margin_of, margin_search, ranking_key
from .reference import search_share
from .trust import set_margins, warnings_for
from .errors import ParameterError
from .explanation import SET_NAMES, Explanation
from .models import as_model
from .options import EngineOptions, ExplainOptions, make_options
from .quality import noise_fill

#: Queries kept back under ``max_queries`` to score the sets' margins (kept alone and removed).
SET_CHECKS = 3

#: progress(phase, queries_done, budget) is called after every model batch.
ProgressCallback = Callable[[str, int, int], None]


def _backend(name: str):
    if name == "rust":
        from . import _core

        return _core.FrequencySpace, _core.Engine
    if name == "numpy":
        from . import reference

        return reference.FrequencySpace, reference.Engine
    raise ParameterError(f"backend must be 'rust' or 'numpy', got {name!r}")


class Explainer:
    """Explain an audio classifier's decisions in the frequency space.

    Parameters
    ----------
    model : callable
        Maps a float32 array of waveforms, shape ``(batch, samples)``, to scores
        of shape ``(batch, classes)`` (probabilities, or any scores whose
        argmax is the decision). freqrex adapters (``freqrex.models``) fit
        here; so does any function.
    backend : {"rust", "numpy"}
        ``"rust"`` (default) runs the compiled core; ``"numpy"`` the readable
        pure-NumPy reference, which gives the same result for the same seed.
    **options
        Keyword-only options of :class:`freqrex.options.ExplainOptions`; see
        :func:`freqrex.explain`.

    Examples
    --------
    >>> explainer = Explainer(model, space="fft", budget=500)   # doctest: +SKIP
    >>> e = explainer.explain(audio, 16000)                      # doctest: +SKIP
    >>> e.bands("sufficient")                                    # doctest: +SKIP
    """

    def __init__(self, model: Callable[[np.ndarray], Any], *, backend: str = "rust", **options: Any) -> None:
        self.model = as_model(model)  # HF models, pipelines, torch modules, paths -> a freqrex Model
        self.backend = backend
        _backend(backend)
        self.options: ExplainOptions = make_options(**options)

    def explain(
        self,
        audio: Any,
        sample_rate: int,
        *,
        progress: Optional[ProgressCallback] = None,
        **overrides: Any,
    ) -> Explanation:
        """Explain the model's top-1 decision (or the class ``target``) on one clip; see :func:`freqrex.explain`."""
        opts = self.options if not overrides else make_options(**{**self.options.to_dict(), **overrides})
        x = check_audio(audio)
        sr = check_sample_rate(sample_rate)
        check_clip_rate(self.model, sr)
        opts.check_size(x.size)
        if opts.space == "stft" and x.size < opts.n_fft // 2 + 1:
            raise ParameterError(f"the clip ({x.size} samples) is shorter than half an STFT window (n_fft={opts.n_fft})")
        space_cls, engine_cls = _backend(self.backend)
        start = time.perf_counter()
        space = space_cls(
            x,
            space=opts.space,
            n_fft=opts.n_fft,
            hop_length=opts.hop_length,
            mask_value=opts.mask_value,
            n_threads=opts.n_threads,
        )
        oracle = Oracle(self.model, progress=progress, total=opts.max_queries or None,
                        call_kwargs={"timeout": opts.model_timeout})
        original = oracle.first(x[None, :])
        n_classes = original.shape[1]
        names = getattr(self.model, "class_names", None)
        decision = int(np.argmax(original[0]))
        target = decision if opts.target is None else resolve_class(opts.target, names, n_classes, "target")
        contrast = None if opts.contrast is None else resolve_class(opts.contrast, names, n_classes, "contrast")
        if contrast == target:
            raise ParameterError("contrast must be a class other than the target")
        score = float(original[0, target])
        n_frames, n_bins = space.shape
        n_fft = x.size if opts.space == "fft" else opts.n_fft
        band = opts.band(n_bins, n_fft, sr)
        amplitude = _amplitude(x, opts)
        magnitude = np.zeros_like(amplitude) if opts.tiebreak == "index" else amplitude
        total = opts.max_queries
        # The margin rule keeps queries back to score the sets it did not query on the way; the
        # pass/fail rules report the margins their extraction already knows (no extra query).
        checks = 0 if total is None or opts.rule != "margin" else SET_CHECKS
        found = None
        if opts.rule == "margin":
            n_cells = n_frames * (band[1] - band[0])
            budget = opts.budget if total is None else search_share(total - checks, opts.budget, n_cells,
                                                                      opts.extraction_batch)
            found = margin_search(
                space, lambda w: oracle(w, "search"), target=target, original_scores=original[0], band=band,
                hz_per_bin=sr / n_fft, sample_rate=sr, budget=budget, seed=opts.seed,
                batch_size=opts.batch_size, energy=amplitude ** 2, contrast=contrast, n_bands=opts.n_bands,
                resolution=opts.resolution, class_maps=opts.class_maps,
                fill=noise_fill(x, seed=opts.seed + 1) if opts.uses_fill else None,
            )
            key = ranking_key(found.effects, found.leaves, amplitude ** 2, opts.effect_weight,
                              fill_effects=found.fill_effects)
            engine_options = EngineOptions.from_explain(
                opts, band=band, budget=0, rule="minimal",
                max_queries=None if total is None else max(total - checks - found.queries, 1),
                min_margin=set_margin(original[0], target, opts.margin_tol))
            engine = engine_cls(space, target, score, engine_options, magnitude=magnitude, responsibility=key)
        else:
            engine_options = EngineOptions.from_explain(
                opts, band=band, budget=opts.budget, rule=opts.rule,
                max_queries=None if total is None else max(total - checks, 1))
            engine = engine_cls(space, target, score, engine_options, magnitude=magnitude)
        while True:
            waves = engine.ask(opts.batch_size)
            if waves is None:
                break
            engine.tell(oracle(waves, engine.phase))
        stats = dict(engine.stats())
        resp = np.asarray(engine.responsibility()) if found is None else found.responsibility
        ranking = np.asarray(engine.ranking(), dtype=np.int64)
        sets_found = dict(engine.sets())
        if found is not None:
            class_maps = found.class_maps
            stats.update(found.stats, search_queries=found.queries, search_budget=budget,
                         budget_exhausted=found.queries + (2 if opts.uses_fill else 1) > budget)  # no coalition fits
        else:
            class_maps = {int(c): np.asarray(m) for c, m in dict(engine.class_responsibility()).items()}
        masses = {c: float(np.clip(m, 0, None).sum()) for c, m in class_maps.items()}
        positive = [c for c in masses if masses[c] > 0]
        runner_up = min(positive, key=lambda c: (-masses[c], c)) if positive else None
        masks, reasons, set_scores = {}, {}, {}
        for name in SET_NAMES:
            k = sets_found.get(name)
            set_scores[name] = sets_found.get(f"{name}_score")
            if k is None:
                masks[name] = None
                reasons[name] = sets_found.get(f"{name}_reason") or "absent"
            else:
                m = np.zeros(n_frames * n_bins, dtype=bool)
                m[ranking[:k]] = True
                masks[name] = m.reshape(n_frames, n_bins)
        if target != decision and contrast is None:
            # the model does not choose the target for this clip: no set is necessary for a choice it
            # does not make, and "the whole clip is needed" is not why a set that makes it is absent
            label = target if names is None or not 0 <= target < len(names) else f"{target} ({names[target]})"
            masks["sufficient_necessary"] = None
            set_scores["sufficient_necessary"] = None
            reasons["sufficient_necessary"] = (
                f"class {label} is not the model's decision for this clip (class {decision}): "
                "no set is necessary for it")
            if masks["sufficient"] is None:
                reasons["sufficient"] = f"no set of the ranking makes the model choose class {label}"

        def score_of(wave):
            row = oracle.known(wave)
            if row is None and opts.rule == "margin" and (total is None or oracle.queries < total):
                row = oracle(wave[None], "check")[0]
            return row

        margins = set_margins(masks, band, space.synthesize, score_of, target, contrast)
        empty = None if found is None else found.empty_scores
        if empty is None:
            empty_mask = np.ones((n_frames, n_bins), dtype=bool)
            empty_mask[:, band[0]:band[1]] = False
            empty = oracle.known(np.asarray(space.synthesize(empty_mask[None]))[0])
        margin = float(margin_of(original[0], target, contrast)[0])
        warns = warnings_for(
            original=original[0], target=target, decision=decision, names=names, responsibility=resp,
            band=band, rule=opts.rule, effects=None if found is None else found.effects, margin=margin,
            empty_scores=empty, masks=masks, margins=margins, margin_tol=opts.margin_tol,
            truncated=bool(stats.get("extraction_truncated")),
        )
        squeeze = opts.space == "fft"

        def shape(a):
            return None if a is None else (a[0] if squeeze else a)

        freqs = np.arange(n_bins) * (sr / n_fft)
        times = None if squeeze else np.arange(n_frames) * (opts.hop_length / sr)
        options = opts.to_dict()
        options["_band"] = band
        options["backend"] = self.backend
        return Explanation(
            target=target,
            score=score,
            space=opts.space,
            responsibility=shape(resp),
            frequencies=freqs,
            ranking=ranking,
            sufficient=shape(masks["sufficient"]),
            sufficient_necessary=shape(masks["sufficient_necessary"]),
            complete=shape(masks["complete"]),
            set_scores=set_scores,
            reasons=reasons,
            queries=oracle.queries,
            search_queries=int(stats["search_queries"]),
            extraction_queries=int(stats["extraction_queries"]) + oracle.by_phase.get("check", 0),
            seed=opts.seed,
            options=options,
            sample_rate=sr,
            n_samples=int(x.size),
            elapsed=time.perf_counter() - start,
            stats={**stats, "check_queries": oracle.by_phase.get("check", 0)},
            times=times,
            target_name=None if names is None or not 0 <= target < len(names) else str(names[target]),
            original_scores=original[0],
            class_responsibility={c: shape(m) for c, m in class_maps.items()},
            runner_up=runner_up,
            margin=margin,
            contrast=contrast,
            parts=None if found is None else np.asarray(
                [[*leaf, eff, fe] for leaf, eff, fe in zip(
                    found.leaves, found.effects,
                    np.full(len(found.leaves), np.nan) if found.fill_effects is None else found.fill_effects)],
                dtype=np.float64).reshape(-1, 6),
            set_margins=margins,
            warnings=warns,
            _space=space,
            _audio=x,
        )


def resolve_class(value: Any, names: Optional[Sequence[str]], n_classes: int, what: str) -> int:
    """A class given by index or by name, checked against the model's classes."""
    if isinstance(value, str):
        if names is None:
            raise ParameterError(f"{what}={value!r} is a name, but the model has no class names; give an index")
        lookup = [str(n) for n in names]
        if value not in lookup:
            close = [n for n in lookup if n.lower() == value.lower()]
            if len(close) == 1:
                return lookup.index(close[0])
            raise ParameterError(f"{what}={value!r} is not one of the model's classes")
        return lookup.index(value)
    c = int(value)
    if not 0 <= c < n_classes:
        raise ParameterError(f"{what}={c} is out of range: the model has {n_classes} classes")
    return c


def set_margin(scores: np.ndarray, target: int, margin_tol: float) -> Optional[float]:
    """The margin a kept set must hold (``rule="margin"``): ``margin_tol`` over the best other class,
    or half the clip's own margin when that is smaller (so the whole clip always qualifies); None
    when the clip's decision has no margin at all (a tie: being top-1 is all there is)."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if s.size < 2:
        return None
    own = float(s[target] - np.max(np.delete(s, target)))
    return min(float(margin_tol), 0.5 * own) if own > 0 else None


def _amplitude(x: np.ndarray, opts: ExplainOptions) -> np.ndarray:
    """|coefficient| of every cell, (n_frames, n_bins), by the NumPy convention (the same for both
    backends, so their rankings agree exactly)."""
    x64 = x.astype(np.float64)
    if opts.space == "fft":
        return np.abs(np.fft.rfft(x64))[None, :]
    return np.abs(_stft.stft(x64, opts.n_fft, opts.hop_length))


def explain(
    audio: Any,
    sample_rate: int,
    model: Callable[[np.ndarray], Any],
    *,
    progress: Optional[ProgressCallback] = None,
    backend: str = "rust",
    **options: Any,
) -> Explanation:
    """Explain which frequencies ``model`` relies on to classify ``audio``.

    Every option's default lives in :class:`freqrex.options.ExplainOptions`,
    shared by this function, :class:`Explainer`, ``freqrex explain`` and
    ``freqrex evaluate``. By default an explanation spends at most 400 model
    queries in all (``max_queries``: the original clip, the search, the
    extraction and the sets' margins).

    Parameters
    ----------
    audio : array_like, shape (samples,)
        A mono clip (floats in [-1, 1]; int16/int32/uint8 PCM is scaled).
    sample_rate : int
        Its sample rate in Hz (must match the model's, if the model declares one).
    model : callable
        ``model(waves) -> scores``: float32 ``(batch, samples)`` to
        ``(batch, classes)``, or a model :func:`freqrex.models.as_model` wraps.
        The decision is the top-1 class.
    progress : callable, optional
        ``progress(phase, queries_done, total)`` after each model batch.
    backend : {"rust", "numpy"}
        The compiled core or the pure-NumPy reference.
    **options
        Keyword-only options of :class:`freqrex.options.ExplainOptions`:

        space="fft"
            ``"fft"``: the real FFT of the whole clip (``samples // 2 + 1``
            bins); ``"stft"``: (frame, bin) cells of an STFT (``n_fft=2048``,
            ``hop_length=512``).
        rule="margin"
            How queries become responsibility. ``"margin"``: every mutant's
            continuous margin (target score minus the best other class's) is
            regressed on the parts of a mel-scale partition tree it kept
            (:mod:`freqrex.margin`); a cell's responsibility is its part's
            effect on the margin shared by energy (negative: evidence against).
            ``"rex"``: the paper's pass/fail rule, 1/k to every part of a
            passing combination of k parts (ReX); ``"minimal"``: only minimal
            passing combinations; ``"confidence"``: score/k, minimal.
        max_queries=400
            Model queries of the whole explanation, never exceeded (None: no
            bound but ``budget``). The search gets at most ``budget`` of it and
            leaves the extraction a reserve of its expected cost.
        budget=400
            Queries of the search at most.
        seed=0
            Seed of the partitions and coalitions: the same seed gives the
            same explanation, whatever the thread count or batch size.
        target=None, contrast=None
            Explain this class (index or name) instead of the decision; explain
            it against the ``contrast`` class instead of the best other one.
        n_bands=16, resolution=96
            ``margin``: the first partition's mel bands; the model's resolution
            in mel bands over 0..Nyquist (parts are not split below one band
            while others can be).
        margin_tol=0.01
            ``margin``: the sufficient and sufficient-and-necessary sets are
            the shortest prefixes of the ranking that keep the target ahead of
            every other class by at least this much when kept alone (or by half
            the clip's own margin, when that is smaller), not by a hair; any
            set whose margin is below it is flagged in ``warnings``.
        effect_weight=0.125
            ``margin``: cells are ranked (for the sets and ``ranking``) by
            log10 of their energy plus this times their part's effect in
            standard deviations of all parts' effects (with ``fill``, the sum
            of both channels' standardised effects): energy is the zero-query
            prior, the effects reorder it (:func:`freqrex.margin.ranking_key`;
            0 ranks by magnitude alone). Tuned in docs/explanations.md.
        fill="noise"
            ``margin`` rule, ``fft`` space: every coalition is scored twice,
            its removed bins zeroed and filled with noise at the clip's local
            level (:func:`freqrex.quality.noise_fill`, seed ``seed + 1``): two
            queries a coalition, so what a part's *content* does is told from
            what its *energy* does. ``"none"``: zero only (then
            ``effect_weight=1`` was the tuned weight). Ignored by the ``stft``
            space, the pass/fail rules and a non-zero ``mask_value``.
        iterations=8, cuts="log", n_parts=4, min_part=2, max_depth=16, alternatives=4, threshold=None
            The pass/fail rules' random partition refinements.
        fmin, fmax
            Hz; bins outside are always kept.
        batch_size=32, extraction_batch=2, tol=0.01, mask_value=0.0, n_threads, class_maps=5,
        tiebreak="magnitude", model_timeout
            Mutants per model call (results do not depend on it; peak memory
            grows with it: 32 keeps a 30 s MSD_musicnn explanation at 0.9 GB);
            prefixes per extraction step; the complete
            set's score tolerance; the value of removed coefficients; rayon
            threads; per-class maps kept; ties inside a plateau by magnitude;
            seconds a model call may take.

    Returns
    -------
    Explanation
        With ``warnings`` (reasons to distrust it), ``set_margins`` and
        ``margin``.

    Raises
    ------
    ParameterError
        Bad options or audio (empty, silent, NaN/inf, wrong rank, bad sample rate).
    ModelError
        The model raised, or returned the wrong shape or non-finite scores.
    """
    return Explainer(model, backend=backend, **options).explain(audio, sample_rate, progress=progress)
