"""The options of an explanation, validated in one place."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple, Union

from ._checks import check_choice, check_int
from .errors import ParameterError

SPACES = ("fft", "stft")

#: Documented maxima of the options (a value above one is a ParameterError, never an
#: allocation failure deep in the core). See docs/reliability.md.
MAX_N_FFT = 1 << 16
MAX_ITERATIONS = 100_000
MAX_BUDGET = 100_000_000
MAX_BATCH_SIZE = 65_536
MAX_N_THREADS = 256
MAX_DEPTH = 64
MAX_MIN_PART = (1 << 32) - 1
MAX_ALTERNATIVES = 1024
MAX_CLASS_MAPS = 1024
MAX_MODEL_TIMEOUT_S = 7 * 24 * 3600.0
#: Largest frequency space (cells: frames x bins) an explanation may have.
MAX_CELLS = 1 << 27
#: |fmin|, |fmax|, |mask_value| at most this (Hz, or coefficient units).
MAX_REAL = 1e12
CUTS = ("uniform", "log")
RULES = ("margin", "minimal", "rex", "confidence")
TIEBREAKS = ("magnitude", "index")
#: What the margin search puts in the bins a coalition removes, besides zero (``fill``).
FILLS = ("noise", "none")


@dataclass(frozen=True)
class ExplainOptions:
    """Options of :func:`freqrex.explain` (see its docstring for each one)."""

    space: str = "fft"
    n_fft: int = 2048
    hop_length: int = 512
    fmin: Optional[float] = None
    fmax: Optional[float] = None
    n_parts: int = 4
    min_part: int = 2
    max_depth: int = 16
    iterations: int = 8
    budget: int = 400
    cuts: str = "log"
    rule: str = "margin"
    threshold: Optional[float] = None
    alternatives: int = 4
    batch_size: int = 32
    extraction_batch: int = 2
    tol: float = 0.01
    mask_value: float = 0.0
    seed: int = 0
    n_threads: Optional[int] = None
    max_queries: Optional[int] = 400
    class_maps: int = 5
    tiebreak: str = "magnitude"
    target: Optional[Union[int, str]] = None
    contrast: Optional[Union[int, str]] = None
    n_bands: int = 16
    resolution: int = 96
    margin_tol: float = 0.01
    effect_weight: float = 0.125
    fill: str = "noise"
    model_timeout: Optional[float] = None

    def __post_init__(self) -> None:
        def integer(name: str, lo: int, hi: Optional[int] = None, *, optional: bool = False) -> None:
            v = getattr(self, name)
            if v is None and optional:
                return
            object.__setattr__(self, name, check_int(v, name, lo, hi))

        def real(name: str, *, optional: bool = False) -> Optional[float]:
            v = getattr(self, name)
            if v is None and optional:
                return None
            try:
                f = float(v)
            except (TypeError, ValueError, OverflowError):
                raise ParameterError(f"{name} must be a number, got {v!r}") from None
            if not math.isfinite(f) or abs(f) > MAX_REAL:
                raise ParameterError(f"{name} must be finite and at most {MAX_REAL:g} in size, got {v!r}")
            object.__setattr__(self, name, f)
            return f

        def choice(name: str, allowed: Tuple[str, ...]) -> None:
            check_choice(getattr(self, name), name, allowed)

        choice("space", SPACES)
        choice("cuts", CUTS)
        choice("rule", RULES)
        choice("tiebreak", TIEBREAKS)
        choice("fill", FILLS)
        integer("n_fft", 4, MAX_N_FFT)
        integer("hop_length", 1, MAX_N_FFT // 2)
        if self.hop_length > self.n_fft // 2:
            raise ParameterError(
                f"hop_length must be at most n_fft // 2 = {self.n_fft // 2} for an invertible STFT, "
                f"got {self.hop_length}"
            )
        integer("n_parts", 2, 8)
        integer("min_part", 2, MAX_MIN_PART)
        integer("max_depth", 1, MAX_DEPTH)
        integer("alternatives", 0, MAX_ALTERNATIVES)
        integer("iterations", 1, MAX_ITERATIONS)
        integer("budget", 0, MAX_BUDGET)
        integer("batch_size", 1, MAX_BATCH_SIZE)
        integer("extraction_batch", 2, MAX_BATCH_SIZE)
        integer("seed", 0, (1 << 64) - 1)
        integer("n_threads", 1, MAX_N_THREADS, optional=True)
        integer("max_queries", 1, MAX_BUDGET, optional=True)
        integer("n_bands", 2, 4096)
        integer("resolution", 1, 1 << 20)
        ew = real("effect_weight")
        if ew is not None and ew < 0:
            raise ParameterError(f"effect_weight must be >= 0, got {ew}")
        mt = real("margin_tol")
        if mt is not None and mt < 0:
            raise ParameterError(f"margin_tol must be >= 0, got {mt}")
        for name in ("target", "contrast"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                integer(name, 0, 1 << 31)
        integer("class_maps", 0, MAX_CLASS_MAPS)
        timeout = real("model_timeout", optional=True)
        if timeout is not None and not (0 < timeout <= MAX_MODEL_TIMEOUT_S):
            raise ParameterError(f"model_timeout must be in (0, {MAX_MODEL_TIMEOUT_S:g}] seconds, got {timeout}")
        fmin = real("fmin", optional=True)
        fmax = real("fmax", optional=True)
        if fmin is not None and fmin < 0:
            raise ParameterError(f"fmin must be >= 0, got {fmin}")
        if fmin is not None and fmax is not None and fmax <= fmin:
            raise ParameterError(f"fmax ({fmax}) must be above fmin ({fmin})")
        tol = real("tol")
        if tol is not None and tol < 0:
            raise ParameterError(f"tol must be >= 0, got {tol}")
        real("mask_value")
        t = real("threshold", optional=True)
        if t is not None and not (0 < t <= 1):
            raise ParameterError(f"threshold must be in (0, 1], got {t}")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def uses_fill(self) -> bool:
        """Whether the margin search also scores every coalition with its removed bins noise-filled:
        ``fill="noise"`` with the margin rule in the ``fft`` space and zero masking."""
        return self.fill == "noise" and self.rule == "margin" and self.space == "fft" and self.mask_value == 0

    def check_size(self, n_samples: int) -> None:
        """Refuse a frequency space of more than :data:`MAX_CELLS` cells for a clip of
        ``n_samples`` samples (before anything is allocated)."""
        if self.space == "fft":
            cells = n_samples // 2 + 1
        else:
            cells = (1 + n_samples // self.hop_length) * (self.n_fft // 2 + 1)
        if cells > MAX_CELLS:
            raise ParameterError(
                f"the {self.space} space of a {n_samples}-sample clip would have {cells:,} cells, "
                f"above the maximum of {MAX_CELLS:,}; "
                "use a shorter clip, a larger hop_length or a smaller n_fft"
            )

    def band(self, n_bins: int, n_fft: int, sample_rate: int) -> Tuple[int, int]:
        """The half-open bin range [b0, b1) searched, from fmin/fmax."""
        hz_per_bin = sample_rate / n_fft
        b0 = 0 if self.fmin is None else int(math.ceil(self.fmin / hz_per_bin - 1e-9))
        b1 = n_bins if self.fmax is None else int(math.floor(self.fmax / hz_per_bin + 1e-9)) + 1
        b0, b1 = max(0, b0), min(n_bins, b1)
        if b0 >= b1:
            raise ParameterError(
                f"no frequency bin lies in [fmin, fmax] = [{self.fmin}, {self.fmax}] Hz "
                f"(bins are {hz_per_bin:.3f} Hz apart, up to {sample_rate / 2} Hz)"
            )
        return b0, b1


#: The pass/fail rules the core's Engine runs (``margin`` runs in Python, then ranks through the engine).
ENGINE_RULES = ("minimal", "rex", "confidence")


@dataclass(frozen=True)
class EngineOptions:
    """The options of one core engine, as they cross the ``_core`` seam.

    ``freqrex._core.Engine(space, target, target_score, options, *,
    magnitude=None, responsibility=None)`` reads these attributes once, in
    Rust (``#[derive(FromPyObject)]``); the NumPy reference's
    :class:`freqrex.reference.Engine` takes the same object.  The explainer
    builds it in one place (:meth:`from_explain`), from validated
    :class:`ExplainOptions`, whose defaults the fields share.  A missing
    attribute or a value of the wrong type or size is a
    :class:`~freqrex.errors.ParameterError` raised by the core; so are values
    out of the core's bounds.

    Attributes
    ----------
    band : (int, int)
        The half-open bin range ``[b0, b1)`` searched.
    budget : int
        Search queries (the pass/fail rules; 0 with a given responsibility).
    rule : {"minimal", "rex", "confidence"}
        The pass/fail rule of the search.
    max_queries : int, optional
        Queries of the engine in all (search and extraction).
    min_margin : float, optional
        A kept prefix counts as sufficient only when the target leads the best
        other class by at least this (None: being top-1 is enough).
    n_parts, min_part, max_depth, iterations, seed, cuts, threshold, extraction_batch, tol, alternatives, class_maps
        As in :class:`ExplainOptions`.
    """

    band: Tuple[int, int]
    budget: int = ExplainOptions.budget
    rule: str = ENGINE_RULES[0]
    max_queries: Optional[int] = None
    min_margin: Optional[float] = None
    n_parts: int = ExplainOptions.n_parts
    min_part: int = ExplainOptions.min_part
    max_depth: int = ExplainOptions.max_depth
    iterations: int = ExplainOptions.iterations
    seed: int = ExplainOptions.seed
    cuts: str = ExplainOptions.cuts
    threshold: Optional[float] = ExplainOptions.threshold
    extraction_batch: int = ExplainOptions.extraction_batch
    tol: float = ExplainOptions.tol
    alternatives: int = ExplainOptions.alternatives
    class_maps: int = ExplainOptions.class_maps

    @classmethod
    def from_explain(cls, options: ExplainOptions, *, band: Tuple[int, int], budget: int, rule: str,
                     max_queries: Optional[int], min_margin: Optional[float] = None) -> "EngineOptions":
        """The engine options of an explanation: ``options``' search and extraction fields, with the
        band, the engine's share of the budget, its rule and its query limit."""
        return cls(
            band=(int(band[0]), int(band[1])), budget=int(budget), rule=rule,
            max_queries=None if max_queries is None else int(max_queries),
            min_margin=None if min_margin is None else float(min_margin), n_parts=options.n_parts,
            min_part=options.min_part, max_depth=options.max_depth, iterations=options.iterations,
            seed=options.seed, cuts=options.cuts, threshold=options.threshold,
            extraction_batch=options.extraction_batch, tol=options.tol, alternatives=options.alternatives,
            class_maps=options.class_maps,
        )


def make_options(**kwargs: Any) -> ExplainOptions:
    """Build options, turning unknown names into a ParameterError."""
    fields = {f.name for f in dataclasses.fields(ExplainOptions)}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise ParameterError(f"unknown option(s): {', '.join(unknown)}")
    return ExplainOptions(**kwargs)
