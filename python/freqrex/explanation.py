"""The result of an explanation: responsibility, the three sets, and their audio."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import numpy as np

from . import notebook as _notebook
from ._atomic import atomic_writer, begin_save, check_npz, check_saved, finish_save, reading_saved, write_text
from .errors import ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from .ranges import FrequencyRange

SET_NAMES = ("sufficient", "sufficient_necessary", "complete")
#: summary.json lists a set's runs of bins only up to this many (its ``ranges`` always).
MAX_SUMMARY_BANDS = 64
AUDIO_NAMES = ("original",) + SET_NAMES


@dataclass
class Explanation:
    """Which frequencies a classifier relies on for its decision about one clip.

    Attributes
    ----------
    target : int
        The class explained: the model's top-1 class for the original clip, or
        the class asked for (``target=``; then there is no sufficient &
        necessary set unless the model decides it).
    score : float
        The original score (probability) of ``target``.
    target_name : str or None
        Name of the target class when the model knows it.
    space : {"fft", "stft"}
        The frequency space analysed.
    responsibility : ndarray of float64
        Responsibility of every element of the space: shape ``(n_bins,)`` for
        ``fft``, ``(n_frames, n_bins)`` for ``stft``. Bins outside
        ``[fmin, fmax]`` (always kept) have 0.
    frequencies : ndarray
        Frequency in Hz of every bin.
    times : ndarray or None
        Centre time in seconds of every STFT frame (``stft`` only).
    ranking : ndarray of int64
        Searched elements (flat indices), most important first: with
        ``rule="margin"`` by the key of :func:`freqrex.margin.ranking_key`
        (log-energy reordered by the part's effect); with the pass/fail rules
        by responsibility, descending, ties between credited elements by the
        magnitude of the original coefficient, then the lower index (option
        ``tiebreak``). The sets are prefixes of it.
    sufficient, sufficient_necessary, complete : ndarray of bool or None
        Boolean masks over the space (same shape as ``responsibility``) of the
        three nested sets, or None when a set does not exist; ``reasons`` says why.
    set_scores : dict
        The target's score when each set is kept alone.
    reasons : dict
        Why each absent set is absent.
    queries : int
        Model evaluations spent in all: the original, the search and the extraction.
    search_queries, extraction_queries : int
        The two parts of ``queries`` after the original clip (the sets' margin
        checks are counted among the extraction's).
    seed : int
        The seed used.
    options : dict
        Every option used.
    sample_rate : int
    n_samples : int
    elapsed : float
        Wall-clock seconds.
    stats : dict
        Search counters (rounds, mutants, duplicates avoided, passing mutants).
    class_responsibility : dict of int to ndarray
        Per-class maps, same shape as ``responsibility``, at no extra query
        (option ``class_maps``: how many). With ``rule="margin"`` (the default)
        for the classes of highest mean score over the search's coalitions
        other than the target: the map of class ``c`` credits each part by how
        much removing it raises ``c``'s score over the target's (the same
        regression as the responsibility, on ``s_c - s_target``). With the
        pass/fail rules for the classes the mutants land on most often: it
        credits the parts whose removal makes ``c`` the top-1 class (the same
        minimal rule over the same tested partitions). Either way: where to
        look to move the decision to ``c``.
    runner_up : int or None
        The class whose map has the most mass (ties to the lower index), or
        None when no map has any.
    """

    target: int
    score: float
    space: str
    responsibility: np.ndarray
    frequencies: np.ndarray
    ranking: np.ndarray
    sufficient: Optional[np.ndarray]
    sufficient_necessary: Optional[np.ndarray]
    complete: Optional[np.ndarray]
    set_scores: Dict[str, Optional[float]]
    reasons: Dict[str, str]
    queries: int
    search_queries: int
    extraction_queries: int
    seed: int
    options: Dict[str, Any]
    sample_rate: int
    n_samples: int
    elapsed: float
    stats: Dict[str, Any] = field(default_factory=dict)
    times: Optional[np.ndarray] = None
    target_name: Optional[str] = None
    original_scores: Optional[np.ndarray] = None
    #: Free-form facts about the run saved with it (the CLI records ``model`` and ``audio``).
    metadata: Dict[str, Any] = field(default_factory=dict)
    class_responsibility: Dict[int, np.ndarray] = field(default_factory=dict)
    runner_up: Optional[int] = None
    #: The decision's margin on the original clip (target score minus the best other class's, or the contrast's).
    margin: Optional[float] = None
    contrast: Optional[int] = None
    #: Per set: ``kept_margin``/``kept_class`` (the set alone) and ``removed_margin``/``removed_class``.
    set_margins: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    #: Reasons to distrust this explanation, one line each (:mod:`freqrex.trust`); empty when none.
    warnings: List[str] = field(default_factory=list)
    #: ``rule="margin"``: the final partition's parts, (n_parts, 6) rows ``t0, t1, f0, f1, effect,
    #: fill_effect`` (half-open frame and bin ranges; effect: the margin lost when the part is zeroed;
    #: fill_effect: when it is filled with noise instead, NaN with ``fill="none"``).
    parts: Optional[np.ndarray] = None
    _space: Any = field(default=None, repr=False)
    _audio: Optional[np.ndarray] = field(default=None, repr=False)

    def __repr__(self) -> str:
        return _notebook.explanation_repr(self)

    def _repr_html_(self) -> str:  # Jupyter: summary, plot and audio players (freqrex.notebook)
        return _notebook.explanation_html(self)

    # ------------------------------------------------------------------ sets
    def get_set(self, name: str) -> Optional[np.ndarray]:
        """The boolean mask of a set by name (``sufficient``, ``sufficient_necessary``, ``complete``)."""
        if name not in SET_NAMES:
            raise ParameterError(f"unknown set {name!r}; choose from {', '.join(SET_NAMES)}")
        return getattr(self, name)

    @property
    def decision(self) -> Optional[int]:
        """The model's top class on the original clip (None when its scores are not kept); the
        explanation may be of another class (``target=``)."""
        if self.original_scores is None or np.asarray(self.original_scores).size == 0:
            return None
        return int(np.argmax(np.asarray(self.original_scores, dtype=np.float64)))

    def size(self, name: str) -> Optional[int]:
        """Number of elements (bins or cells) of a set, or None when absent."""
        m = self.get_set(name)
        return None if m is None else int(m.sum())

    def band_bins(self, name: str) -> List[Tuple[int, int]]:
        """Runs of adjacent bins of a set, as inclusive ``(first, last)`` bin indices.

        For ``stft``, a bin belongs to the set when any of its cells does.
        Empty when the set is absent.
        """
        m = self.get_set(name)
        if m is None:
            return []
        used = m if m.ndim == 1 else m.any(axis=0)
        idx = np.flatnonzero(used)
        if idx.size == 0:
            return []
        breaks = np.flatnonzero(np.diff(idx) > 1)
        starts = np.concatenate([[idx[0]], idx[breaks + 1]])
        ends = np.concatenate([idx[breaks], [idx[-1]]])
        return [(int(a), int(b)) for a, b in zip(starts, ends)]

    def bands(self, name: str) -> List[Tuple[float, float]]:
        """Merged frequency ranges (Hz) of a set: ``[(lo, hi), ...]``.

        Each range runs from the first to the last bin centre of a run of
        adjacent bins (for ``stft``, bins used in any frame). Empty when absent.
        """
        f = self.frequencies
        return [(float(f[a]), float(f[b])) for a, b in self.band_bins(name)]

    def ranges(self, name: str, *, max_ranges: int = 6, coverage: float = 0.9) -> List["FrequencyRange"]:
        """A set as a person reads it: at most ``max_ranges`` merged frequency ranges holding
        ``coverage`` of its responsibility, in frequency order (:func:`freqrex.ranges.merged_ranges`).
        Empty when the set is absent; the exact set is :meth:`get_set`."""
        from .ranges import merged_ranges

        m = self.get_set(name)
        if m is None:
            return []
        return merged_ranges(m, self.frequencies, self.responsibility, max_ranges=max_ranges, coverage=coverage)

    def cells(self, name: str) -> List[Tuple[float, float]]:
        """For ``stft``: (time s, frequency Hz) of every cell of a set."""
        m = self.get_set(name)
        if m is None or m.ndim == 1 or self.times is None:
            return []
        t, f = np.nonzero(m)
        return [(float(self.times[i]), float(self.frequencies[j])) for i, j in zip(t, f)]

    # ----------------------------------------------------------------- audio
    def mask_of(self, name: str) -> Optional[np.ndarray]:
        """The full kept-mask (including bins outside [fmin, fmax]) used to resynthesise a set."""
        m = self.get_set(name)
        if m is None:
            return None
        grid = m.reshape(1, -1) if m.ndim == 1 else m
        keep = np.ones_like(grid, dtype=bool)
        b0, b1 = self.options.get("_band", (0, grid.shape[1]))
        keep[:, b0:b1] = grid[:, b0:b1]
        return keep

    def audio(self, name: str) -> np.ndarray:
        """The waveform (float32) of ``original`` or of a set kept alone.

        Raises ParameterError for an absent set.
        """
        if name == "original":
            if self._audio is None:
                raise ParameterError("this explanation does not hold its original audio")
            return self._audio
        keep = self.mask_of(name)
        if keep is None:
            raise ParameterError(f"the {name} set does not exist: {self.reasons.get(name, 'absent')}")
        if self._space is None:
            raise ParameterError("this explanation cannot resynthesise audio (no space attached)")
        return np.asarray(self._space.synthesize(keep[None]))[0]

    # ------------------------------------------------------------------ save
    def summary(self) -> Dict[str, Any]:
        """A JSON-ready summary."""
        sets = {}
        for name in SET_NAMES:
            m = self.get_set(name)
            bands = self.bands(name)
            sets[name] = {
                "present": m is not None,
                "size": None if m is None else int(m.sum()),
                "fraction": None if m is None else float(m.sum() / m.size),
                "ranges": [r.to_dict() for r in self.ranges(name)],
                "n_bands": len(bands),
                # every run of bins only while short; the exact mask is in explanation.npz
                "bands_hz": [[lo, hi] for lo, hi in bands] if len(bands) <= MAX_SUMMARY_BANDS else None,
                "score": self.set_scores.get(name),
                **self.set_margins.get(name, {}),
                "reason": self.reasons.get(name),
            }
        opts = {k: v for k, v in self.options.items() if not k.startswith("_")}
        band = self.options.get("_band")
        core = {
            "target": self.target,
            "target_name": self.target_name,
            "score": self.score,
            "space": self.space,
            "sample_rate": self.sample_rate,
            "n_samples": self.n_samples,
            "shape": list(self.responsibility.shape),
            "queries": self.queries,
            "search_queries": self.search_queries,
            "extraction_queries": self.extraction_queries,
            "seed": self.seed,
            "elapsed_s": self.elapsed,
            "options": opts,
            "stats": self.stats,
            "sets": sets,
            "runner_up": self.runner_up,
            "margin": self.margin,
            "contrast": self.contrast,
            "warnings": list(self.warnings),
            "class_maps": {str(c): float(np.asarray(m).sum()) for c, m in self.class_responsibility.items()},
            # the searched band (bins) and the original's scores, so that a loaded explanation's
            # masks, shares and curves are the ones it was made with
            "band": None if band is None else [int(band[0]), int(band[1])],
            "original_scores": None if self.original_scores is None
            else [float(v) for v in np.asarray(self.original_scores, dtype=np.float64).ravel()],
        }
        # metadata (the command line's model and audio names, quality curves, ...) beside the fields,
        # never over one of them: a key a field holds is kept aside; load puts them together again
        reserved = set(core) | {"sets", "options", "metadata_keys", "metadata_shadowed"}
        extra = {k: v for k, v in self.metadata.items() if k not in reserved}
        shadowed = {k: v for k, v in self.metadata.items() if k in reserved}
        return {**core, **extra, "metadata_keys": list(self.metadata), "metadata_shadowed": shadowed}

    def save(self, directory: "os.PathLike[str] | str") -> Path:
        """Write ``summary.json``, ``explanation.npz`` and one WAV per available set.

        Every file is written atomically (a temporary file renamed into place),
        and the folder as a whole: ``manifest.json`` is marked incomplete first
        and written last (sizes and SHA-256 of the files), so :meth:`load`
        refuses a folder whose save was interrupted. Returns the directory.
        """
        from .io import save_wav

        out = begin_save(directory, "explanation")
        written = ["summary.json", "explanation.npz"]
        write_text(out / "summary.json", json.dumps(self.summary(), indent=2))
        arrays = {
            "responsibility": self.responsibility,
            "frequencies": self.frequencies,
            "ranking": self.ranking,
        }
        if self.times is not None:
            arrays["times"] = self.times
        if self.parts is not None:
            arrays["parts"] = np.asarray(self.parts, dtype=np.float64)
        for name in SET_NAMES:
            m = self.get_set(name)
            if m is not None:
                arrays[name] = m
        if self.class_responsibility:
            classes = list(self.class_responsibility)
            arrays["class_responsibility_classes"] = np.asarray(classes, dtype=np.int64)
            arrays["class_responsibility"] = np.stack([np.asarray(self.class_responsibility[c]) for c in classes])
        with atomic_writer(out / "explanation.npz") as fh:
            np.savez_compressed(fh, **arrays)
        for name in AUDIO_NAMES:
            if name != "original" and self.get_set(name) is None:
                continue
            if name == "original" and self._audio is None:
                continue
            save_wav(out / f"{name}.wav", self.audio(name), self.sample_rate, subtype="auto")  # a loud clip unclipped
            written.append(f"{name}.wav")
        finish_save(out, "explanation", written, owned=[f"{n}.wav" for n in AUDIO_NAMES])
        return out

    @classmethod
    def load(cls, directory: "os.PathLike[str] | str") -> "Explanation":
        """Read an explanation that :meth:`save` wrote (no model needed), class maps included.

        Raises :class:`~freqrex.errors.ResultFileError` (or ParameterError) for a folder that is
        not a complete save: interrupted, changed since, or malformed.
        """
        from .viz.saved import load_explanation_dir

        with reading_saved(directory, "explanation"):
            check_saved(directory, "explanation")
            if (Path(directory) / "explanation.npz").is_file():
                check_npz(Path(directory) / "explanation.npz")  # no 8 GiB allocation for an 8 MB file
            # every saved field (maps, margins, warnings, parts) is read there (freqrex.viz.saved)
            return load_explanation_dir(directory)

    def share(self, name: str) -> Optional[Dict[str, float]]:
        """A set's size as shares of the searched elements and of their energy (``|coefficient|**2``),
        or None when the set is absent or the explanation holds no space."""
        m = self.get_set(name)
        if m is None:
            return None
        grid = m.reshape(1, -1) if m.ndim == 1 else m
        b0, b1 = self.options.get("_band", (0, grid.shape[1]))
        inside = grid[:, b0:b1]
        out = {"bins": float(inside.sum() / inside.size)}
        if self._space is not None:
            energy = np.abs(np.asarray(self._space.coefficients()))[:, b0:b1] ** 2
            total = float(energy.sum())
            out["energy"] = float(energy[inside].sum() / total) if total > 0 else 0.0
        return out


def load_class_maps(arrays: Dict[str, np.ndarray]) -> Dict[int, np.ndarray]:
    """The per-class maps of a saved ``explanation.npz`` (its arrays by name)."""
    if "class_responsibility" not in arrays or "class_responsibility_classes" not in arrays:
        return {}
    maps = np.asarray(arrays["class_responsibility"], dtype=np.float64)
    classes = np.asarray(arrays["class_responsibility_classes"]).astype(int).tolist()
    return {int(c): maps[i] for i, c in enumerate(classes)}

