"""The model protocol every freqrex adapter follows.

A *model* is any callable mapping a float32 batch of waveforms of shape
``(batch, samples)`` at the model's sample rate to scores of shape
``(batch, classes)``.  Adapters add what freqrex needs to know about it.
"""

from __future__ import annotations

from typing import Literal, Optional, Sequence

import numpy as np

OutputKind = Literal["logits", "probabilities", "sigmoid"]


class Model:
    """Base class of freqrex model adapters.

    Attributes
    ----------
    sample_rate : int
        Sample rate (Hz) of the waveforms the model expects.
    class_names : list of str
        Name of each output class (or tag).
    output : {"logits", "probabilities", "sigmoid"}
        What the wrapped network outputs.  Adapters return probabilities:
        logits are softmaxed once, probabilities and sigmoid tags are
        returned as they are (multi-label: the decision is the top tag).
    input_samples : int or None
        Clip length the model prefers (None: any length).
    """

    sample_rate: int
    class_names: list
    output: OutputKind = "probabilities"
    input_samples: Optional[int] = None

    def __call__(self, waves: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def class_name(self, index: int) -> str:
        names: Sequence[str] = self.class_names
        return str(names[index]) if 0 <= index < len(names) else str(index)
