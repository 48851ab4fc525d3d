"""The options of a flip, validated in one place: :class:`FlipOptions`.

:func:`freqrex.flip`, :func:`freqrex.vulnerability`, ``freqrex flip`` (whose
arguments, defaults and help are generated from this dataclass) and the
evaluation protocol (:class:`freqrex.evaluation.EvalOptions`, whose flip
defaults are these) all read their defaults from here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np

from .._checks import check_choice, check_int, check_real
from ..errors import ParameterError
from ..options import MAX_BUDGET, MAX_ITERATIONS, ExplainOptions, make_options
from .candidates import STRATEGIES

__all__ = ["FlipOptions", "CHANGES", "FLIP_SPACES", "FLIP_STRATEGIES", "STFT_STRATEGIES", "STRATEGIES"]

#: ``change``: the quietest amplitude-searched change, or one of the fixed changes.
CHANGES = ("quietest", "remove", "gain", "phase", "auto")
#: ``space``: whole-clip rFFT bins, or STFT cells.
FLIP_SPACES = ("fft", "stft")
#: Strategies that work in the ``stft`` space (the others add tones to rFFT bins).
STFT_STRATEGIES = ("causal", "random", "magnitude")
#: ``strategy``: ``"auto"`` (the default, :meth:`FlipOptions.strategy_for`) or one of the strategies.
FLIP_STRATEGIES = ("auto",) + STRATEGIES
#: Largest size of ``max_gain_db`` (dB).
MAX_GAIN_DB = 60.0


@dataclass(frozen=True)
class FlipOptions:
    """Options of :func:`freqrex.flip` (and of ``freqrex flip``), with their defaults and bounds.

    Every field is validated on construction; a bad value raises
    :class:`~freqrex.errors.ParameterError`.  ``dataclasses.replace`` gives a
    validated copy with some fields changed.

    Attributes
    ----------
    k : int
        Most rFFT bins changed together (``fft``; fixed changes: also STFT
        cells).  The masked ``stft`` search uses as many cells as it needs.
    space : {"fft", "stft"}
        Whole-clip rFFT bins, or STFT cells under the masking threshold.
    budget : int
        Most perturbed clips the flip search may evaluate (never exceeded; at
        least 1).
    seed : int
        Seed of the random choices (candidates, tone phases, the explanation).
    change : {"quietest", "auto", "remove", "gain", "phase"}
        ``"quietest"``: amplitude-searched additions/subtractions (``fft``) or
        the masked envelope search (``stft``); the others run fixed changes.
    strategy : {"auto", "causal", "random", "magnitude", "tone_scan", "additive"}
        Where candidates come from (``tone_scan`` and ``additive``: ``fft``
        and ``change="quietest"`` only).  ``"auto"``: the additive search for
        an ``fft`` quietest flip with no explanation given, else ``causal``
        (:meth:`strategy_for`; docs/evaluation.md: on the key CNN the additive
        search alone flips as many clips as quietly with 100 queries as
        ``causal`` with its 400-query explanation and 100 flip queries).
    target : int, optional
        Targeted flip: succeed only when the top-1 class becomes this one.
    probe_snr_db : float
        SNR (dB) at which candidates are first tried (``fft``).
    min_snr_db, max_snr_db : float
        The loudest change allowed, and the quietest worth finding (SNR, dB);
        ``min_snr_db <= probe_snr_db <= max_snr_db``.
    tol_db : float
        Resolution of the amplitude search (dB, > 0).
    masking_safety_db : float
        ``stft``: cells are bounded this many dB under the masking threshold
        (>= 0).
    max_gain_db : float
        Gain of the fixed ``gain`` change (dB, non-zero, at most 60 in size).
    max_phase : float
        Rotation of the fixed ``phase`` change (rad, non-zero, at most pi in
        size).
    candidates : int, optional
        Fixed changes: candidates considered (default: enough for the budget).
    n_fft, hop_length : int
        STFT geometry (the ``stft`` space, and the frames of the audibility
        measures).
    batch_size : int
        Most perturbed clips per model call (results do not depend on it).
    minimize : bool
        Fixed changes: shrink a flipping block to the fewest elements.
    margin_safety_db : float
        Fixed ``stft`` changes: margin (dB, >= 0) of the uniform scaling
        under the masking threshold.
    explain_budget, explain_iterations : int
        Search budget and iterations of the explanation a ``causal`` flip
        computes when none is given.
    """

    k: int = 1
    space: str = "fft"
    budget: int = 100
    seed: int = 0
    change: str = "quietest"
    strategy: str = "auto"
    target: Optional[int] = None
    probe_snr_db: float = 20.0
    min_snr_db: float = 0.0
    max_snr_db: float = 60.0
    tol_db: float = 0.5
    masking_safety_db: float = 3.0
    max_gain_db: float = 20.0
    max_phase: float = math.pi
    candidates: Optional[int] = None
    n_fft: int = ExplainOptions.n_fft
    hop_length: int = ExplainOptions.hop_length
    batch_size: int = 16
    minimize: bool = True
    margin_safety_db: float = 0.5
    explain_budget: int = ExplainOptions.budget
    explain_iterations: int = 4

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("k", check_int(self.k, "k", 1))
        put("budget", check_int(self.budget, "budget", 1, MAX_BUDGET))
        put("seed", check_int(self.seed, "seed", 0, (1 << 64) - 1))
        put("batch_size", check_int(self.batch_size, "batch_size", 1))
        check_choice(self.space, "space", FLIP_SPACES)
        check_choice(self.change, "change", CHANGES)
        check_choice(self.strategy, "strategy", FLIP_STRATEGIES)
        if self.space == "stft" and self.strategy not in STFT_STRATEGIES + ("auto",):
            raise ParameterError(f"strategy {self.strategy!r} works in the fft space only")
        if self.change != "quietest" and self.strategy in ("tone_scan", "additive"):
            raise ParameterError(f"the {self.strategy} strategy adds tones: use change='quietest'")
        gain = check_real(self.max_gain_db, "max_gain_db")
        if gain == 0 or abs(gain) > MAX_GAIN_DB:
            raise ParameterError(f"max_gain_db must be non-zero and at most {MAX_GAIN_DB:g} dB in size, got {gain}")
        put("max_gain_db", gain)
        phase = check_real(self.max_phase, "max_phase")
        if phase == 0 or abs(phase) > math.pi + 1e-12:
            raise ParameterError(f"max_phase must be non-zero and at most pi in size, got {phase}")
        put("max_phase", phase)
        for name in ("margin_safety_db", "masking_safety_db"):
            value = check_real(getattr(self, name), name)
            if value < 0:
                raise ParameterError(f"{name} must be >= 0, got {value}")
            put(name, value)
        for name in ("probe_snr_db", "min_snr_db", "max_snr_db", "tol_db"):
            put(name, check_real(getattr(self, name), name))
        if not self.min_snr_db <= self.probe_snr_db <= self.max_snr_db:
            raise ParameterError(
                "need min_snr_db <= probe_snr_db <= max_snr_db, got "
                f"{self.min_snr_db}, {self.probe_snr_db}, {self.max_snr_db}")
        if self.tol_db <= 0:
            raise ParameterError(f"tol_db must be > 0, got {self.tol_db}")
        if self.candidates is not None:
            put("candidates", check_int(self.candidates, "candidates", 1))
        if self.target is not None:
            put("target", check_int(self.target, "target", 0))
        if not isinstance(self.minimize, (bool, np.bool_)):
            raise ParameterError(f"minimize must be True or False, got {self.minimize!r}")
        put("minimize", bool(self.minimize))
        geometry = make_options(space="stft", n_fft=self.n_fft, hop_length=self.hop_length)
        put("n_fft", geometry.n_fft)
        put("hop_length", geometry.hop_length)
        put("explain_budget", check_int(self.explain_budget, "explain_budget", 0, MAX_BUDGET))
        put("explain_iterations", check_int(self.explain_iterations, "explain_iterations", 1, MAX_ITERATIONS))

    def strategy_for(self, explanation_given: bool) -> str:
        """The strategy a flip runs: ``strategy``, or for ``"auto"`` the additive search when the
        flip is an ``fft`` quietest flip and no explanation is given (it needs none), else ``causal``
        (it uses the explanation given, or the ``stft``/fixed-change one it computes)."""
        if self.strategy != "auto":
            return self.strategy
        if self.space == "fft" and self.change == "quietest" and not explanation_given:
            return "additive"
        return "causal"

    def to_dict(self) -> Dict[str, Any]:
        """The options as a plain dict (field name -> value)."""
        return dataclasses.asdict(self)


#: Field names of :class:`FlipOptions`, in order.
FLIP_FIELDS = tuple(f.name for f in dataclasses.fields(FlipOptions))


def resolve_flip_options(options: Optional[FlipOptions], given: Dict[str, Any]) -> FlipOptions:
    """``options`` (default ``FlipOptions()``) with the values in ``given`` that are not None.

    A keyword of :func:`freqrex.flip` left at None takes its value from
    ``options``; unknown names are a ParameterError.
    """
    if options is None:
        base = FlipOptions()
    elif isinstance(options, FlipOptions):
        base = options
    else:
        raise ParameterError(f"options must be a FlipOptions, got {type(options).__name__}")
    unknown = sorted(set(given) - set(FLIP_FIELDS))
    if unknown:
        raise ParameterError(f"unknown flip option(s): {', '.join(unknown)}")
    chosen = {name: value for name, value in given.items() if value is not None}
    return dataclasses.replace(base, **chosen) if chosen else base
