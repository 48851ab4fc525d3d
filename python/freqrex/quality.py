"""How good is a ranking of the frequency space? Deletion and insertion curves.

A ranking orders the elements of a frequency space (rfft bins of the whole
clip, or STFT cells), most important first. Its **deletion curve** is the
model's score of the target class after the top fraction of the elements is
removed (zeroed and resynthesised): a good ranking makes it drop fast (lower
area is better). Its **insertion curve** is the score when *only* the top
fraction is kept: a good ranking makes it rise fast (higher area is better).

Both curves are measured at fixed fractions (:data:`DEFAULT_FRACTIONS`), with
exactly ``2 * len(fractions)`` model queries, batched; finding the target
when it is not given costs one more query (counted in ``queries``). The
synthesis is the one of the explanation itself (the core's
``FrequencySpace``), so a curve point is exactly what the model hears.

>>> from freqrex.quality import explanation_curves, ranking_curves
>>> q = explanation_curves(e, audio, model)                 # doctest: +SKIP
>>> q.deletion_auc, q.insertion_auc, q.queries             # doctest: +SKIP
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np

from . import _stft
from ._checks import call_model, check_audio, check_clip_rate, check_int, check_sample_rate
from .errors import ParameterError

#: Fractions of the elements removed (deletion) or kept (insertion).
DEFAULT_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6)


@dataclass(frozen=True)
class QualityCurves:
    """Deletion and insertion curves of one ranking on one clip.

    Attributes
    ----------
    fractions : ndarray
        The fractions of the elements (of the searched band) removed or kept.
    deletion : ndarray
        Target score after removing the top fraction from the clip (lower is better).
    insertion : ndarray
        Target score when only the top fraction is kept (higher is better).
    deletion_auc, insertion_auc : float
        Trapezoid areas over ``fractions`` divided by the fraction span
        (``fractions[-1] - fractions[0]``): the mean score over the span, in
        [0, 1] for probabilities.
    queries : int
        Model evaluations spent (``2 * len(fractions)``, plus 1 when the target
        had to be found).
    target : int
        The class scored.
    """

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_auc: float
    insertion_auc: float
    queries: int
    target: int

    def to_dict(self) -> Dict[str, Any]:
        return {
            "fractions": [float(v) for v in self.fractions],
            "deletion": [float(v) for v in self.deletion],
            "insertion": [float(v) for v in self.insertion],
            "deletion_auc": float(self.deletion_auc),
            "insertion_auc": float(self.insertion_auc),
            "queries": int(self.queries),
            "target": int(self.target),
        }


def area(fractions: Sequence[float], values: Sequence[float]) -> float:
    """Trapezoid area of ``values`` over ``fractions``, divided by the span (one point: the value)."""
    f = np.asarray(fractions, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if f.size == 1:
        return float(v[0])
    span = f[-1] - f[0]
    return float(np.sum((v[1:] + v[:-1]) * np.diff(f)) / 2.0 / span)


def _check_fractions(fractions: Sequence[float]) -> np.ndarray:
    f = np.asarray(fractions, dtype=np.float64).reshape(-1)
    if f.size == 0:
        raise ParameterError("fractions must not be empty")
    if not np.all(np.isfinite(f)) or f.min() < 0 or f.max() > 1:
        raise ParameterError(f"fractions must lie in [0, 1], got {list(fractions)}")
    if f.size > 1 and not np.all(np.diff(f) > 0):
        raise ParameterError("fractions must be strictly increasing")
    return f


def _check_space(space: Any, n_fft: Any, hop_length: Any, n_samples: int,
                 mask_value: Any = 0.0) -> Tuple[int, int, float]:
    """Validate the space's options as :class:`~freqrex.options.ExplainOptions` does (the same
    bounds, :data:`~freqrex.options.MAX_N_FFT` and the size limit included): (n_fft, hop_length,
    mask_value), or ParameterError."""
    from .options import ExplainOptions

    if space not in ("fft", "stft"):
        raise ParameterError(f"space must be 'fft' or 'stft', got {space!r}")
    o = ExplainOptions(space=space, n_fft=n_fft, hop_length=hop_length, mask_value=mask_value)
    o.check_size(n_samples)
    return o.n_fft, o.hop_length, o.mask_value


def _space(x: np.ndarray, space: str, n_fft: int, hop_length: int, mask_value: float = 0.0):
    from . import _core

    n_fft, hop_length, mask_value = _check_space(space, n_fft, hop_length, x.size, mask_value)
    return _core.FrequencySpace(x, space=space, n_fft=n_fft, hop_length=hop_length, mask_value=mask_value)


def _universe(shape: Tuple[int, int], band: Optional[Tuple[int, int]]) -> np.ndarray:
    """Flat indices (frame-major) of the elements inside the band, in index order."""
    n_frames, n_bins = shape
    if band is None:
        b0, b1 = 0, n_bins
    else:
        try:
            b0, b1 = band
            if any(isinstance(b, (bool, np.bool_)) or not isinstance(b, numbers.Real) or not float(b).is_integer()
                   for b in (b0, b1)):
                raise ValueError
            b0, b1 = int(b0), int(b1)
        except (TypeError, ValueError, OverflowError):
            raise ParameterError(f"band must be a pair of integer bins (b0, b1), got {band!r}") from None
    if not 0 <= b0 < b1 <= n_bins:
        raise ParameterError(f"band {band} selects no bins of {n_bins}")
    return (np.arange(n_frames)[:, None] * n_bins + np.arange(b0, b1)[None, :]).ravel()


def _check_ranking(ranking: Any) -> np.ndarray:
    """The ranking as flat int64 indices; ParameterError for anything but integers (a float that
    is not a whole number, NaN, a bool, a string), never a silent truncation."""
    try:
        r = np.asarray(ranking)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ParameterError(f"the ranking must be a sequence of integer element indices: {exc}") from None
    r = r.reshape(-1)
    if r.size == 0:
        return np.zeros(0, dtype=np.int64)
    if r.dtype == bool or not (np.issubdtype(r.dtype, np.integer) or np.issubdtype(r.dtype, np.floating)):
        raise ParameterError(f"the ranking must hold integer element indices, got dtype {r.dtype}")
    if np.issubdtype(r.dtype, np.floating):
        if not np.all(np.isfinite(r)) or not np.all(r == np.round(r)):
            raise ParameterError("the ranking must hold integer element indices, not fractions, NaN or infinities")
        if np.abs(r).max() >= 2.0**62:
            raise ParameterError("the ranking names elements outside the space (or outside the band)")
    elif np.issubdtype(r.dtype, np.unsignedinteger) and r.max() > np.iinfo(np.int64).max:
        raise ParameterError("the ranking names elements outside the space (or outside the band)")
    return r.astype(np.int64)


def full_order(ranking: Any, shape: Tuple[int, int], band: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """The ranking completed to every element of the band: elements it lacks follow, by index."""
    universe = _universe(shape, band)
    r = _check_ranking(ranking)
    inside = np.zeros(shape[0] * shape[1], dtype=bool)
    inside[universe] = True
    if r.size and (r.min() < 0 or r.max() >= inside.size or not np.all(inside[r])):
        raise ParameterError("the ranking names elements outside the space (or outside the band)")
    seen = np.zeros(inside.size, dtype=bool)
    first = np.zeros(r.size, dtype=bool)
    # keep the first occurrence of each element
    _, idx = np.unique(r, return_index=True)
    first[idx] = True
    r = r[first]
    seen[r] = True
    return np.concatenate([r, universe[~seen[universe]]])


def magnitude_ranking(audio: Any, *, space: str = "fft", n_fft: int = 2048, hop_length: int = 512,
                      band: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """The free baseline: elements by the magnitude of their coefficient, descending (ties: lower index)."""
    x = check_audio(audio).astype(np.float64)
    n_fft, hop_length, _ = _check_space(space, n_fft, hop_length, x.size)
    if space == "fft":
        mag = np.abs(np.fft.rfft(x))[None, :]
    else:
        mag = np.abs(_stft.stft(x, n_fft, hop_length))
    universe = _universe(mag.shape, band)
    values = mag.ravel()[universe]
    return universe[np.lexsort((universe, -values))].astype(np.int64)


#: How removed elements are replaced: "zero" (the explanation's own masking), "noise" (random-phase
#: coefficients at the clip's local spectral level, fft space: the energy stays, the content goes).
OPERATORS = ("zero", "noise")


def noise_fill(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """Replacement coefficients for the ``noise`` operator: random phases, magnitude the root mean
    power of the clip's rFFT over a sixth of an octave around each bin (seeded)."""
    X = np.fft.rfft(np.asarray(x, dtype=np.float64))
    power = np.abs(X) ** 2
    k = np.arange(X.size, dtype=np.float64)
    lo = np.clip(np.floor(k / 2 ** (1 / 12)), 0, X.size - 1).astype(int)
    hi = np.clip(np.ceil(k * 2 ** (1 / 12)), 0, X.size - 1).astype(int)
    c = np.concatenate([[0.0], np.cumsum(power)])
    level = np.sqrt((c[hi + 1] - c[lo]) / (hi - lo + 1))
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, X.size)
    return level * np.exp(1j * phase)


def _noise_waves(x: np.ndarray, masks: np.ndarray, fill: np.ndarray) -> np.ndarray:
    X = np.fft.rfft(np.asarray(x, dtype=np.float64))
    spec = np.where(masks, X[None, :], fill[None, :])
    return np.fft.irfft(spec, n=x.size, axis=1).astype(np.float32)


def _curves(space_obj, model, order: np.ndarray, target: int, fractions: np.ndarray, batch_size: int,
            band: Optional[Tuple[int, int]], n_classes: Optional[int], operator: str = "zero",
            audio: Optional[np.ndarray] = None) -> Tuple[np.ndarray, np.ndarray]:
    shape = tuple(space_obj.shape)
    n = order.size
    outside = np.ones(shape[0] * shape[1], dtype=bool)
    outside[_universe(shape, band)] = False
    ks = [min(n, max(0, int(round(f * n)))) for f in fractions]
    masks = []
    for k in ks:  # deletion: the clip without the top k
        m = np.ones(shape[0] * shape[1], dtype=bool)
        m[order[:k]] = False
        masks.append(m)
    for k in ks:  # insertion: the top k alone (plus what lies outside the band)
        m = outside.copy()
        m[order[:k]] = True
        masks.append(m)
    scores = []
    fill = noise_fill(audio) if operator == "noise" else None
    for i in range(0, len(masks), batch_size):
        chunk = np.stack(masks[i : i + batch_size]).reshape(-1, *shape)
        if fill is not None:
            waves = _noise_waves(audio, chunk[:, 0, :], fill)
        else:
            waves = np.asarray(space_obj.synthesize(chunk), dtype=np.float32)
        s = call_model(model, waves, n_classes)
        if s.shape[1] <= target:
            raise ParameterError(f"target {target} is not a class of the model ({s.shape[1]} classes)")
        scores.extend(s[:, target].tolist())
    scores = np.asarray(scores, dtype=np.float64)
    return scores[: len(ks)], scores[len(ks) :]


def ranking_curves(
    audio: Any,
    sample_rate: int,
    model: Callable[[np.ndarray], Any],
    ranking: Any,
    *,
    target: Optional[int] = None,
    space: str = "fft",
    n_fft: int = 2048,
    hop_length: int = 512,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    batch_size: int = 16,
    band: Optional[Tuple[int, int]] = None,
    operator: str = "zero",
    mask_value: float = 0.0,
    _space_obj: Any = None,
) -> QualityCurves:
    """Deletion and insertion curves of ``ranking`` for ``model`` on ``audio``.

    Parameters
    ----------
    ranking : array_like of int
        Flat element indices, most important first: the bin for ``fft``,
        ``frame * n_bins + bin`` for ``stft``. Elements it lacks count as the
        least important (after it, by index).
    target : int, optional
        The class scored; default the model's top-1 class on the clip (one
        more query).
    band : (b0, b1), optional
        Half-open bin range the ranking covers (an explanation's
        ``[fmin, fmax]``): bins outside are always kept and fractions count
        only the band's elements.
    fractions, batch_size
        Curve points, and mutants per model call.
    operator : {"zero", "noise"}
        What replaces a removed element: zero (the explanation's masking), or
        (``fft`` only) a random-phase coefficient at the clip's local spectral
        level, which keeps the energy and removes the content; a ranking that
        is good only because it removes energy loses its edge under it.
    mask_value : float, default 0.0
        What the ``zero`` operator puts in a removed element (the
        explanation's ``mask_value``; :func:`explanation_curves` passes it).
    n_fft, hop_length
        The STFT of the ``stft`` space, bounded as :func:`freqrex.explain`
        bounds them (``4 <= n_fft <= MAX_N_FFT``, ``1 <= hop_length <=
        n_fft // 2``); checked for the ``fft`` space too.

    Exactly ``2 * len(fractions)`` model queries, plus one without ``target``.
    """
    x = check_audio(audio)
    sr = check_sample_rate(sample_rate)
    check_clip_rate(model, sr)
    f = _check_fractions(fractions)
    if operator not in OPERATORS:
        raise ParameterError(f"operator must be one of {', '.join(map(repr, OPERATORS))}; got {operator!r}")
    if operator == "noise" and space != "fft":
        raise ParameterError("the noise operator is defined for the fft space only")
    batch_size = check_int(batch_size, "batch_size", 1)
    n_fft, hop_length, mask_value = _check_space(space, n_fft, hop_length, x.size, mask_value)
    sp = _space_obj if _space_obj is not None else _space(x, space, n_fft, hop_length, mask_value)
    queries = 0
    n_classes = None
    if target is None:
        original = call_model(model, x[None, :])
        target = int(np.argmax(original[0]))
        n_classes = original.shape[1]
        queries += 1
    target = int(target)
    if target < 0:
        raise ParameterError(f"target must be a class index >= 0, got {target}")
    order = full_order(ranking, tuple(sp.shape), band)
    deletion, insertion = _curves(sp, model, order, target, f, int(batch_size), band, n_classes, operator, x)
    queries += 2 * f.size
    return QualityCurves(
        fractions=f,
        deletion=deletion,
        insertion=insertion,
        deletion_auc=area(f, deletion),
        insertion_auc=area(f, insertion),
        queries=queries,
        target=target,
    )


def explanation_ranking(explanation) -> np.ndarray:
    """The explanation's ranking, or (a saved one without it) the band's elements by responsibility."""
    r = getattr(explanation, "ranking", None)
    if r is not None and np.asarray(r).size:
        return np.asarray(r, dtype=np.int64)
    resp = np.asarray(explanation.responsibility, dtype=np.float64)
    grid = resp.reshape(1, -1) if resp.ndim == 1 else resp
    band = (explanation.options or {}).get("_band")
    universe = _universe(grid.shape, None if band is None else tuple(band))
    values = grid.ravel()[universe]
    return universe[np.lexsort((universe, -values))].astype(np.int64)


def explanation_curves(explanation, audio: Any = None, model: Optional[Callable] = None, **kw: Any) -> QualityCurves:
    """:func:`ranking_curves` of an explanation's ranking, over its space and band.

    ``audio`` defaults to the clip the explanation holds; the target is the
    explanation's (no extra query) unless ``target=`` is given; ``mask_value``,
    ``n_fft`` and ``hop_length`` are the explanation's (a loaded one's too)
    unless given.
    """
    if model is None:
        raise ParameterError("explanation_curves needs the model")
    if audio is None:
        audio = getattr(explanation, "_audio", None)
        if audio is None:
            raise ParameterError("this explanation does not hold its audio: pass audio=")
    opts = explanation.options or {}
    own_mask = opts.get("mask_value", 0.0)
    own_mask = 0.0 if own_mask is None else own_mask
    kw_given = {k for k in kw if k in ("n_fft", "hop_length")}
    if "mask_value" in kw and kw["mask_value"] != own_mask:
        kw_given.add("mask_value")
    band = opts.get("_band")
    kw.setdefault("target", explanation.target)
    kw.setdefault("space", explanation.space)
    kw.setdefault("n_fft", int(opts.get("n_fft", 2048)))
    kw.setdefault("hop_length", int(opts.get("hop_length", 512)))
    kw.setdefault("mask_value", own_mask)
    kw.setdefault("band", None if band is None else (int(band[0]), int(band[1])))
    sp, own = getattr(explanation, "_space", None), getattr(explanation, "_audio", None)
    same_clip = own is not None and (audio is own or np.array_equal(np.asarray(audio, dtype=np.float32), own))
    if sp is not None and same_clip and kw.get("space") == explanation.space and not kw_given:
        kw.setdefault("_space_obj", sp)
    return ranking_curves(audio, explanation.sample_rate, model, explanation_ranking(explanation), **kw)
