"""The limit of one-tone flips: every log-spaced tone, each level bisected.

:func:`tone_limit` is the yardstick of the flip evaluation (docs/evaluation.md):
it adds one tone (one FFT bin, in phase with the clip's own content at that
bin, as the ``tone_scan`` strategy does) at every point of a log-spaced grid
(1/12 octave by default) and finds, for each, the quietest level that still
flips the decision: every tone is scored at levels 10 dB apart from
``min_snr_db`` (the loudest) to ``max_snr_db``, and the quietest flipping one
is bisected in dB against the next quieter level.  All tones are scored
together, one batch per bisection step, so the model is called a few times
per step in all.  The quietest of those levels is the best any one-tone search on that
grid can reach; a strategy's k = 1 flips are compared with it at a fraction of
its queries.

Bisection assumes the decision flips at every level between the quietest
flipping probe and the limit (monotone in level within 10 dB); where that
fails, each reported level still flips (it was scored), but a quieter
flipping level may exist.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from .._checks import call_model, check_audio, check_clip_rate, check_int, check_sample_rate
from ..errors import ParameterError
from .candidates import Change
from .oracle import Oracle, check_classes
from .perturbation import SpectralClip
from .search import LevelSearch, _score

__all__ = ["ToneLimit", "tone_limit"]

#: Bytes of synthesised tone waveforms (float64, one clip long each) a limit holds between its
#: bisection steps, so as not to synthesise them again: every tone's fits up to 30 s at 16 kHz on
#: the default grid (99 tones, 380 MB); beyond, the least recently used are dropped and synthesised
#: again when revisited (the result is the same; a fine grid on a long clip would otherwise need
#: gigabytes: 819 tones of 30 s, 3.1 GB).
HELD_BYTES = 512 * 2 ** 20


def held_tones(n_tones: int, n_samples: int, default: int = 1) -> int:
    """How many tone waveforms of ``n_samples`` a limit holds: all ``n_tones`` (at least ``default``)
    if :data:`HELD_BYTES` allows, else as many as fit in it (at least one)."""
    fit = HELD_BYTES // (8 * max(int(n_samples), 1))
    return int(max(1, min(max(int(n_tones), int(default)), fit)))


@dataclass
class ToneLimit:
    """The quietest flipping level of every tone of a log-spaced grid.

    Attributes
    ----------
    frequencies_hz : ndarray of float, shape (n_tones,)
        The tones (FFT bin centres nearest the grid points), ascending.
    flip_snr_db : ndarray of float, shape (n_tones,)
        Per tone, the quietest SNR (dB, higher is quieter) at which adding it
        flipped the decision, to ``tol_db``; NaN where even ``min_snr_db`` did
        not flip it; ``max_snr_db`` where the quietest level tried flipped.
    original_class : int
    original_name : str or None
    target : int or None
        The class a targeted limit must reach (None: any other class).
    queries : int
        Model queries spent (the original clip's included).
    min_snr_db, max_snr_db, tol_db, step_octaves : float
        The grid and the level search.
    seconds : float
    """

    frequencies_hz: np.ndarray
    flip_snr_db: np.ndarray
    original_class: int
    original_name: Optional[str]
    target: Optional[int]
    queries: int
    min_snr_db: float
    max_snr_db: float
    tol_db: float
    step_octaves: float
    seconds: float

    @property
    def best_snr_db(self) -> Optional[float]:
        """The quietest flip over all tones (None: no tone flips at ``min_snr_db``)."""
        ok = np.isfinite(self.flip_snr_db)
        return float(np.max(self.flip_snr_db[ok])) if ok.any() else None

    @property
    def best_frequency_hz(self) -> Optional[float]:
        """The tone of :attr:`best_snr_db` (the lowest such tone on ties)."""
        if self.best_snr_db is None:
            return None
        return float(self.frequencies_hz[int(np.nanargmax(self.flip_snr_db))])

    def share_flipping(self, snr_db: float) -> float:
        """The share of the grid's tones that flip at ``snr_db`` or quieter."""
        return float(np.mean(np.nan_to_num(self.flip_snr_db, nan=-np.inf) >= snr_db))

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready: NaN as None."""
        return {
            "frequencies_hz": [round(float(f), 4) for f in self.frequencies_hz],
            "flip_snr_db": [None if not math.isfinite(v) else round(float(v), 3) for v in self.flip_snr_db],
            "best_snr_db": self.best_snr_db,
            "best_frequency_hz": self.best_frequency_hz,
            "original_class": self.original_class,
            "original_name": self.original_name,
            "target": self.target,
            "queries": self.queries,
            "min_snr_db": self.min_snr_db,
            "max_snr_db": self.max_snr_db,
            "tol_db": self.tol_db,
            "step_octaves": self.step_octaves,
            "seconds": self.seconds,
        }


def tone_grid(n_samples: int, sample_rate: int, fmin: float, fmax: float, step_octaves: float) -> np.ndarray:
    """FFT bins of a log-spaced grid from ``fmin`` to ``fmax`` (distinct bins, ascending, no DC or Nyquist)."""
    n_bins = n_samples // 2 + 1
    hz_per_bin = sample_rate / n_samples
    count = int(math.floor(math.log2(fmax / fmin) / step_octaves + 1e-9)) + 1
    hz = fmin * 2.0 ** (step_octaves * np.arange(count))
    bins = np.unique(np.rint(hz / hz_per_bin).astype(np.int64))
    return bins[(bins >= 1) & (bins <= n_bins - 2)]


def _flipped(oracle: Oracle, items: List[Tuple[LevelSearch, float]]) -> np.ndarray:
    """Whether each (tone, level) flips; scored in chunks, so that memory stays a few clips' worth."""
    out = np.zeros(len(items), dtype=bool)
    step = max(oracle.batch_size, 1)
    for s in range(0, len(items), step):
        out[s:s + step] = [a.flipped for a in _score(oracle, items[s:s + step])]
    return out


def probe_levels(min_snr_db: float, max_snr_db: float, step_db: float) -> np.ndarray:
    """The levels every tone is scored at: ``min_snr_db`` to ``max_snr_db`` in steps of about ``step_db``."""
    n = max(1, int(math.ceil((max_snr_db - min_snr_db) / step_db)))
    return np.linspace(min_snr_db, max_snr_db, n + 1)


def _real(v: Any, name: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not math.isfinite(v):
        raise ParameterError(f"{name} must be a finite number, got {v!r}")
    return float(v)


def tone_limit(
    audio: np.ndarray,
    sample_rate: int,
    model: Callable[[np.ndarray], Any],
    *,
    fmin: float = 27.5,
    fmax: Optional[float] = None,
    step_octaves: float = 1.0 / 12.0,
    min_snr_db: float = 0.0,
    max_snr_db: float = 60.0,
    tol_db: float = 0.5,
    probe_step_db: float = 10.0,
    target: Optional[int] = None,
    batch_size: int = 64,
    model_timeout: Optional[float] = None,
) -> ToneLimit:
    """The quietest one-tone flip at every point of a log-spaced grid (the exhaustive limit).

    Parameters
    ----------
    audio : ndarray, shape (samples,)
    sample_rate : int
    model : callable or freqrex model
        Anything :func:`freqrex.flip` takes.
    fmin, fmax : float
        The grid's range in Hz (``fmax`` default: just under the Nyquist frequency).
    step_octaves : float
        Grid spacing (1/12 octave: every semitone).
    min_snr_db, max_snr_db : float
        The loudest and the quietest level tried (SNR of the added tone, dB).
    tol_db : float
        Bisection stops when the bracket is this narrow.
    probe_step_db : float
        Every tone is first scored at levels this far apart (0, 10, ..., 60 dB);
        the quietest probe level that flips and the next quieter one bracket
        the bisection.  Probing every level, not only the loudest, finds the
        quiet flips of models whose decision is not monotone in the tone's
        level (a louder tone can fit the original class better).
    target : int, optional
        Flip to this class (default: away from the original class).
    batch_size : int
        Clips per model call.
    model_timeout : float, optional
        Seconds a model call may take.

    Returns
    -------
    ToneLimit
        Its queries are at most ``1 + n_tones * (n_levels + ceil(log2(probe_step / tol_db)))``
        (1 + 99 x 12 = 1,189 for the defaults at 16 kHz).

    Raises
    ------
    ParameterError
        Bad options or audio.
    ModelError
        The model misbehaves.
    """
    from ..models import as_model

    start = time.perf_counter()
    x = check_audio(audio)
    sr = check_sample_rate(sample_rate)
    fmin = _real(fmin, "fmin")
    fmax = 0.5 * sr * (1.0 - 1e-6) if fmax is None else _real(fmax, "fmax")
    step_octaves = _real(step_octaves, "step_octaves")
    min_snr_db = _real(min_snr_db, "min_snr_db")
    max_snr_db = _real(max_snr_db, "max_snr_db")
    tol_db = _real(tol_db, "tol_db")
    probe_step_db = _real(probe_step_db, "probe_step_db")
    if probe_step_db <= 0:
        raise ParameterError(f"probe_step_db must be > 0, got {probe_step_db}")
    if not 0 < fmin < fmax <= 0.5 * sr:
        raise ParameterError(f"need 0 < fmin < fmax <= {0.5 * sr} Hz, got {fmin}, {fmax}")
    if not 1e-3 <= step_octaves <= 4:
        raise ParameterError(f"step_octaves must be in [0.001, 4], got {step_octaves}")
    if not min_snr_db < max_snr_db or tol_db <= 0:
        raise ParameterError(f"need min_snr_db < max_snr_db and tol_db > 0, got {min_snr_db}, {max_snr_db}, {tol_db}")
    batch_size = check_int(batch_size, "batch_size", 1)
    model = as_model(model)
    check_clip_rate(model, sr)
    original = call_model(model, x[None, :], timeout=model_timeout, original=True)[0]
    check_classes(original)
    orig_class = int(np.argmax(original))
    if target is not None:
        if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or not 0 <= target < original.size:
            raise ParameterError(f"target must be a class index below {original.size}, got {target!r}")
        if int(target) == orig_class:
            raise ParameterError(f"target {target} is already the model's class for this clip")
        target = int(target)
    cache: Dict = {}
    clip = SpectralClip(x, sr, "fft", 2048, 512, cache)
    bins = tone_grid(x.size, sr, fmin, fmax, step_octaves)
    if bins.size == 0:
        raise ParameterError(f"no FFT bin of a {x.size}-sample clip lies in {fmin}-{fmax} Hz")
    levels = probe_levels(min_snr_db, max_snr_db, probe_step_db)
    width = float(levels[1] - levels[0]) if levels.size > 1 else 0.0
    steps = int(math.ceil(math.log2(width / tol_db))) if width > tol_db else 0
    budget = bins.size * (levels.size + steps)
    oracle = Oracle(model, original.size, orig_class, target, budget, int(batch_size), cache, None,
                    timeout=model_timeout)
    # the bisection visits every tone in turn: hold each tone's waveform (99 tones of 30 s: 380 MB),
    # as many as HELD_BYTES allows
    clip.held_waveforms = held_tones(bins.size, x.size, clip.held_waveforms)
    searches = [LevelSearch(clip, oracle, Change.of([(int(b), 1)], "limit")) for b in bins]
    result = np.full(bins.size, np.nan)
    # every tone at every probe level (one batch): the quietest flipping probe level brackets the limit
    flipped = _flipped(oracle, [(s, float(v)) for s in searches for v in levels]).reshape(bins.size, levels.size)
    lo: Dict[int, float] = {}  # flips
    hi: Dict[int, float] = {}  # the next quieter probe level, which did not flip
    for i in range(bins.size):
        hits = np.flatnonzero(flipped[i])
        if hits.size == 0:
            continue
        j = int(hits[-1])
        if j == levels.size - 1:
            result[i] = float(levels[j])
        else:
            lo[i], hi[i] = float(levels[j]), float(levels[j + 1])
    active = [i for i in sorted(hi) if hi[i] - lo[i] > tol_db]  # probe steps at most tol_db: none
    while active:
        mids = [0.5 * (lo[i] + hi[i]) for i in active]
        scored = _flipped(oracle, [(searches[i], m) for i, m in zip(active, mids)])
        for i, m, f in zip(active, mids, scored):
            if f:
                lo[i] = m
            else:
                hi[i] = m
        active = [i for i in active if hi[i] - lo[i] > tol_db]
    for i, v in lo.items():
        result[i] = v
    names = getattr(model, "class_names", None)
    return ToneLimit(
        frequencies_hz=bins * (sr / x.size),
        flip_snr_db=result,
        original_class=orig_class,
        original_name=str(names[orig_class]) if names is not None and orig_class < len(names) else None,
        target=target,
        queries=1 + oracle.used,
        min_snr_db=min_snr_db,
        max_snr_db=max_snr_db,
        tol_db=tol_db,
        step_octaves=step_octaves,
        seconds=time.perf_counter() - start,
    )
