"""The model as the flip search sees it: an exact query budget, a score cache, the gap to success."""

from __future__ import annotations

from typing import Callable, Dict, Hashable, List, Optional, Sequence, Tuple

import numpy as np

from .._checks import call_model
from ..errors import ModelError

ProgressCallback = Callable[[str, int, int], None]


class Oracle:
    """Scores perturbed clips within an exact budget.

    Every waveform asked for counts as one query (also when its scores come
    from the shared cache, so a run's count does not depend on what ran
    before it); cached waveforms cost no model call.  Batches are split into
    model calls of at most ``batch_size`` clips, so results never depend on
    the batch size.
    """

    def __init__(
        self,
        model: Callable[[np.ndarray], object],
        n_classes: int,
        original_class: int,
        target: Optional[int],
        budget: int,
        batch_size: int,
        cache: Dict,
        progress: Optional[ProgressCallback] = None,
        timeout: Optional[float] = None,
    ) -> None:
        self.model = model
        self.timeout = timeout
        self.n_classes = n_classes
        self.original_class = original_class
        self.target = target
        self.budget = budget
        self.batch_size = batch_size
        self.cache = cache
        self.progress = progress
        self.used = 0

    @property
    def remaining(self) -> int:
        return self.budget - self.used

    def passes(self, scores: np.ndarray) -> bool:
        """The perturbed clip's top-1 class is no longer the original (or is the target)."""
        top = int(np.argmax(scores))
        return top == self.target if self.target is not None else top != self.original_class

    def gap(self, scores: np.ndarray) -> float:
        """Distance to success in score units (negative: flipped)."""
        if self.target is not None:
            return float(np.max(np.delete(scores, self.target)) - scores[self.target])
        return float(scores[self.original_class] - np.max(np.delete(scores, self.original_class)))

    def scores(self, waves: Sequence[np.ndarray], keys: Sequence[Hashable]) -> List[np.ndarray]:
        """Scores of float32 waveforms; ``len(waves)`` queries, never beyond the budget."""
        if len(waves) > self.remaining:
            raise RuntimeError("flip search asked beyond its budget")  # a bug, never user-caused
        todo = [i for i, key in enumerate(keys) if key not in self.cache]
        for s in range(0, len(todo), self.batch_size):
            chunk = todo[s : s + self.batch_size]
            rows = call_model(self.model, np.stack([waves[i] for i in chunk]), self.n_classes,
                              timeout=self.timeout)
            for i, row in zip(chunk, rows):
                self.cache[keys[i]] = row
        self.used += len(waves)
        if self.progress is not None:
            self.progress("flip", self.used, self.budget)
        return [self.cache[key] for key in keys]


def check_classes(original: np.ndarray) -> int:
    """The number of classes of the original clip's scores; a ModelError for one (a flip changes the top
    class, which takes two)."""
    if original.size < 2:
        raise ModelError(
            "the model returns one score per clip: a flip changes its top class, which takes at least two "
            "classes (a detector's one score can be given as two: [1 - p, p])")
    return int(original.size)


def wave_key(tag: Tuple, wave: np.ndarray) -> Tuple:
    """Cache key of a perturbed waveform: a description plus a digest of its samples."""
    import hashlib

    return tag + (hashlib.blake2b(np.ascontiguousarray(wave).tobytes(), digest_size=16).hexdigest(),)
