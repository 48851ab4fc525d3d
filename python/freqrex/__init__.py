"""freqrex: causal explanations of audio classifiers in the frequency space.

>>> import freqrex
>>> e = freqrex.explain(audio, 16000, model)          # doctest: +SKIP
>>> e.bands("sufficient")                              # doctest: +SKIP
"""

from __future__ import annotations

from . import _core
from .errors import AudioFileError, BudgetError, FreqrexError, ModelError, ParameterError
from .explainer import Explainer, explain
from .explanation import Explanation
from .manipulation import FlipOptions, FlipResult, VulnerabilitySpectrum, flip, vulnerability
from .manipulation.limit import ToneLimit, tone_limit
from .options import ExplainOptions

__version__ = _core.__version__

__all__ = [
    "AudioFileError",
    "BudgetError",
    "ExplainOptions",
    "Explainer",
    "Explanation",
    "FreqrexError",
    "ModelError",
    "ParameterError",
    "explain",
    "flip",
    "FlipOptions",
    "FlipResult",
    "ToneLimit",
    "VulnerabilitySpectrum",
    "tone_limit",
    "vulnerability",
    "__version__",
]
