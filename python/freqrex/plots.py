"""Plots of explanations and flips: the names of :mod:`freqrex.viz`, re-exported.

``ax=`` in, Axes out for single panels (:func:`plot_waveform`,
:func:`plot_responsibility`, :func:`plot_sets`, :func:`plot_flip`,
:func:`plot_vulnerability`); ``fig=`` in,
Figure out for the multi-panel Figure 1 (:func:`plot_explanation`). See
:mod:`freqrex.viz`.

>>> from freqrex.plots import plot_explanation            # doctest: +SKIP
>>> plot_explanation(e).savefig("figure1.png")            # doctest: +SKIP
"""

from .viz import (
    SET_COLORS,
    SET_LABELS,
    band_text,
    mathtext_escape,
    plot_explanation,
    plot_flip,
    plot_responsibility,
    plot_sets,
    plot_vulnerability,
    plot_waveform,
    require_matplotlib,
)

__all__ = [
    "SET_COLORS",
    "SET_LABELS",
    "band_text",
    "mathtext_escape",
    "plot_explanation",
    "plot_flip",
    "plot_responsibility",
    "plot_sets",
    "plot_vulnerability",
    "plot_waveform",
    "require_matplotlib",
]
