"""The explainer: drives the ask/tell loop between the engine and the model."""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

import numpy as np

from . import _stft
from ._checks import call_model, check_audio, check_sample_rate
from .errors import ParameterError
from .explanation import SET_NAMES, Explanation
from .models import as_model
from .options import ExplainOptions, make_options

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
        """Explain the model's top-1 decision on one clip; see :func:`freqrex.explain`."""
        opts = self.options if not overrides else make_options(**{**self.options.to_dict(), **overrides})
        x = check_audio(audio)
        sr = check_sample_rate(sample_rate)
        model_rate = getattr(self.model, "sample_rate", None)
        if model_rate is not None and int(model_rate) != sr:
            raise ParameterError(
                f"the model expects {model_rate} Hz audio but the clip is {sr} Hz; resample it "
                "(freqrex.io.load_audio(path, sample_rate=...) does)"
            )
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
        original = call_model(self.model, x[None, :])
        n_classes = original.shape[1]
        target = int(np.argmax(original[0]))
        score = float(original[0, target])
        n_frames, n_bins = space.shape
        n_fft = x.size if opts.space == "fft" else opts.n_fft
        band = opts.band(n_bins, n_fft, sr)
        engine = engine_cls(
            space,
            target,
            score,
            band=band,
            n_parts=opts.n_parts,
            min_part=opts.min_part,
            max_depth=opts.max_depth,
            iterations=opts.iterations,
            budget=opts.budget,
            seed=opts.seed,
            cuts=opts.cuts,
            rule=opts.rule,
            threshold=opts.threshold,
            extraction_batch=opts.extraction_batch,
            tol=opts.tol,
            alternatives=opts.alternatives,
            class_maps=opts.class_maps,
            max_queries=opts.max_queries,
            magnitude=_magnitude(x, opts, (n_frames, n_bins)),
        )
        done = 0
        while True:
            waves = engine.ask(opts.batch_size)
            if waves is None:
                break
            phase = engine.phase
            scores = call_model(self.model, waves, n_classes)
            engine.tell(scores)
            done += waves.shape[0]
            if progress is not None:
                progress(phase, done, opts.budget if opts.max_queries is None else opts.max_queries)
        stats = dict(engine.stats())
        resp = np.asarray(engine.responsibility())
        ranking = np.asarray(engine.ranking(), dtype=np.int64)
        found = dict(engine.sets())
        class_maps = {int(c): np.asarray(m) for c, m in dict(engine.class_responsibility()).items()}
        masses = {c: float(m.sum()) for c, m in class_maps.items()}
        positive = [c for c in masses if masses[c] > 0]
        runner_up = min(positive, key=lambda c: (-masses[c], c)) if positive else None
        masks = {}
        reasons = {}
        set_scores = {}
        for name in SET_NAMES:
            k = found.get(name)
            set_scores[name] = found.get(f"{name}_score")
            if k is None:
                masks[name] = None
                reasons[name] = found.get(f"{name}_reason") or "absent"
            else:
                m = np.zeros(n_frames * n_bins, dtype=bool)
                m[ranking[:k]] = True
                masks[name] = m.reshape(n_frames, n_bins)
        squeeze = opts.space == "fft"

        def shape(a):
            return None if a is None else (a[0] if squeeze else a)

        freqs = np.arange(n_bins) * (sr / n_fft)
        times = None if squeeze else np.arange(n_frames) * (opts.hop_length / sr)
        names = getattr(self.model, "class_names", None)
        target_name = None
        if names is not None and 0 <= target < len(names):
            target_name = str(names[target])
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
            queries=1 + int(stats["search_queries"]) + int(stats["extraction_queries"]),
            search_queries=int(stats["search_queries"]),
            extraction_queries=int(stats["extraction_queries"]),
            seed=opts.seed,
            options=options,
            sample_rate=sr,
            n_samples=int(x.size),
            elapsed=time.perf_counter() - start,
            stats=stats,
            times=times,
            target_name=target_name,
            original_scores=original[0],
            class_responsibility={c: shape(m) for c, m in class_maps.items()},
            runner_up=runner_up,
            _space=space,
            _audio=x,
        )


def _magnitude(x: np.ndarray, opts: ExplainOptions, shape) -> np.ndarray:
    """|coefficient| of every cell, by the NumPy convention (the same for both backends, so their
    rankings agree exactly); zeros when ``tiebreak="index"``."""
    if opts.tiebreak == "index":
        return np.zeros(shape)
    x64 = x.astype(np.float64)
    if opts.space == "fft":
        return np.abs(np.fft.rfft(x64))[None, :]
    return np.abs(_stft.stft(x64, opts.n_fft, opts.hop_length))


def explain(
    audio: Any,
    sample_rate: int,
    model: Callable[[np.ndarray], Any],
    *,
    space: str = "fft",
    seed: int = 0,
    budget: int = 2000,
    iterations: int = 20,
    progress: Optional[ProgressCallback] = None,
    backend: str = "rust",
    **options: Any,
) -> Explanation:
    """Explain which frequencies ``model`` relies on to classify ``audio``.

    Parameters
    ----------
    audio : array_like, shape (samples,)
        A mono clip (any real dtype; used as float32).
    sample_rate : int
        Its sample rate in Hz (must match the model's, if the model declares one).
    model : callable
        ``model(waves) -> scores``: float32 ``(batch, samples)`` to
        ``(batch, classes)``. The decision is the top-1 class.
    space : {"fft", "stft"}
        ``"fft"``: the real FFT of the whole clip (``samples // 2 + 1`` bins).
        ``"stft"``: an STFT grid of (frame, bin) cells (``n_fft``, ``hop_length``).
    seed : int
        Seed of the random partitions. The same seed gives the same
        explanation, whatever the thread count or batch size.
    budget : int
        Maximum model evaluations of the responsibility search (never exceeded).
        Extraction spends a few more (``Explanation.extraction_queries``):
        about ``3 * log2(elements)`` with the default ``extraction_batch=2``.
    iterations : int
        Independent random partition refinements, averaged.
    progress : callable, optional
        ``progress(phase, queries_done, budget)`` after each model batch.
    backend : {"rust", "numpy"}
        The compiled core or the pure-NumPy reference.
    **options
        n_fft=2048, hop_length=512 (stft); fmin, fmax (Hz, bins outside are
        always kept); n_parts=4 (children per split); min_part=2 (smallest
        splittable part, in elements); max_depth=16; cuts="uniform" or "log"
        (cut points uniform over bin index or over log-frequency);
        rule="minimal" (1/k to each part of a minimal passing combination of k parts), "rex" (1/k to every passing combination, as ReX) or "confidence" (score/k, minimal); threshold (a
        mutant passes only with score >= threshold * original score);
        alternatives=4 (other minimal passing combinations refined later, per
        iteration, so that either-or evidence is refined too);
        batch_size=64 (mutants per model call); extraction_batch=2
        (candidate prefixes per bracket step, the last one already known:
        2 is a bisection, one query per step, the fewest queries; wider
        steps take fewer model calls); tol=0.01 (complete set);
        mask_value=0.0; n_threads (rayon threads; default all cores).
        max_queries (a bound on the whole explanation: the original clip,
        the search and the extraction together, never exceeded; the search
        gets at most ``budget`` and leaves the extraction a reserve of its
        expected cost, at most half of the rest; the extraction gets all the
        search leaves, and when that runs out a set is the shortest prefix
        known to satisfy it, or absent with a reason).
        class_maps=5 (per-class maps kept, at no extra query: the classes
        the search's mutants land on most often other than the target).
        tiebreak="magnitude" (inside a plateau of responsibility, rank the
        louder original coefficient first among credited cells; uncredited
        cells, responsibility 0, stay in index order; "index": the lower
        index everywhere, as before).

    Returns
    -------
    Explanation

    Raises
    ------
    ParameterError
        Bad options or audio (empty, NaN/inf, wrong rank, bad sample rate).
    ModelError
        The model raised, or returned the wrong shape or non-finite scores.
    """
    return Explainer(
        model, backend=backend, space=space, seed=seed, budget=budget, iterations=iterations, **options
    ).explain(audio, sample_rate, progress=progress)
