"""The pure-NumPy reference implementation of freqrex.

The same algorithm as the Rust core, written to be read: the test oracle and
the baseline of the benchmarks. For the same seed it draws the same partitions
(both use :class:`freqrex._rng.SplitMix64`) and so gives the same
responsibility, to float tolerance, and the same sets.

Use it exactly like :func:`freqrex.explain`::

    from freqrex import reference
    e = reference.explain(audio, sample_rate, model, seed=0)
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .engine import Engine
from .geometry import (FIRST_STEP, FrequencySpace, Rect, canonical_key, cells, contains, cut_points, reserve,
                       search_share, split, steps, subtract)

__all__ = ["Engine", "FrequencySpace", "explain", "search_share", "reserve", "canonical_key", "split",
           "cut_points", "cells", "contains", "subtract", "steps", "FIRST_STEP", "Rect"]


def explain(audio: Any, sample_rate: int, model: Callable[[np.ndarray], Any], **options: Any):
    """:func:`freqrex.explain` with the pure-NumPy reference backend."""
    from ..explainer import explain as _explain

    options["backend"] = "numpy"
    return _explain(audio, sample_rate, model, **options)
