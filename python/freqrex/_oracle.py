"""The explainer's view of the model: every query counted, every answer remembered."""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Dict, Optional

import numpy as np

from ._checks import call_model


def wave_key(wave: np.ndarray) -> bytes:
    """A key of one float32 waveform's exact samples."""
    return hashlib.blake2b(np.ascontiguousarray(wave, dtype=np.float32).tobytes(), digest_size=16).digest()


class Oracle:
    """Calls the model once per batch, counts the queries by phase and keeps each answer by waveform.

    ``progress(phase, done, total)`` is called after every batch.
    """

    def __init__(self, model: Callable[[np.ndarray], Any], *, progress=None, total: Optional[int] = None,
                 call_kwargs: Optional[Dict[str, Any]] = None) -> None:
        self.model = model
        self.progress = progress
        self.total = total
        self.call_kwargs = call_kwargs or {}
        self.n_classes: Optional[int] = None
        self.queries = 0
        self.by_phase: Dict[str, int] = {}
        self._answers: Dict[bytes, np.ndarray] = {}

    def first(self, waves: np.ndarray) -> np.ndarray:
        """The original clip's scores (checked for a decision: an all-tied output is an error)."""
        return self(waves, "original", report=False, original=True)

    def __call__(self, waves: np.ndarray, phase: str = "search", report: bool = True, **extra: Any) -> np.ndarray:
        waves = np.asarray(waves, dtype=np.float32)
        scores = call_model(self.model, waves, self.n_classes, **self.call_kwargs, **extra)
        if self.n_classes is None:
            self.n_classes = scores.shape[1]
        for w, row in zip(waves, scores):
            self._answers[wave_key(w)] = row
        self.queries += waves.shape[0]
        self.by_phase[phase] = self.by_phase.get(phase, 0) + waves.shape[0]
        if self.progress is not None and report:
            # the sets' margin checks are shown as part of the extraction
            self.progress("extract" if phase == "check" else phase, self.queries, self.total if self.total is not None else self.queries)
        return scores

    def known(self, wave: np.ndarray) -> Optional[np.ndarray]:
        """The scores of a waveform already queried, or None."""
        return self._answers.get(wave_key(wave))
