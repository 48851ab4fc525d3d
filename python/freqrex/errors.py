"""The exceptions freqrex raises for problems a user can cause."""

from __future__ import annotations


class FreqrexError(Exception):
    """Base class of every error freqrex raises on purpose."""


class ParameterError(FreqrexError, ValueError):
    """A bad option or bad audio (empty, NaN, inf, wrong rank, bad sample rate)."""


class AudioFileError(FreqrexError, OSError):
    """An audio file that is missing or cannot be decoded."""


class ModelError(FreqrexError, RuntimeError):
    """A model that raises, returns the wrong shape or non-finite scores, or cannot be loaded.

    The original exception, when there is one, is chained as ``__cause__``.
    """


class BudgetError(FreqrexError, RuntimeError):
    """A query budget too small for the requested work."""


class ResultFileError(AudioFileError):
    """A saved result folder (:meth:`Explanation.save`, :meth:`FlipResult.save`) that is
    missing, incomplete (an interrupted save), altered since it was written, or malformed."""


class FreqrexWarning(UserWarning):
    """Something freqrex could do but that is probably not what was meant (a truncated
    audio file, tied top scores on the original clip)."""
