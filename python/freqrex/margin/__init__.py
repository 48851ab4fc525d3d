"""Responsibility from every query's continuous margin (the default ``rule="margin"``).

:func:`margin_search` estimates each part's effect on the decision's margin
by regression over all mutants of a mel-scale partition tree
(:mod:`freqrex.margin.search`, :mod:`freqrex.margin.tree`). The paper's
pass/fail rule stays available as ``rule="rex"`` (and ``"minimal"``,
``"confidence"``) in the Rust core.
"""

from .search import MarginSearch, margin_of, margin_search, ranking_key

__all__ = ["MarginSearch", "margin_of", "margin_search", "ranking_key"]
