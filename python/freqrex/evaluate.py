"""Kept importable: the evaluation lives in :mod:`freqrex.evaluation`."""

from .evaluation import *  # noqa: F401,F403
from .evaluation import __all__  # noqa: F401
from .evaluation import _clean, _num  # noqa: F401
