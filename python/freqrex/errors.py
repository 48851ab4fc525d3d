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
