"""Plots and HTML reports of explanations, flips and evaluations.

One module per figure, one convention for all of them:

* a single-panel plot takes ``ax=`` (a matplotlib Axes; a new Figure is made
  when it is None) and returns the Axes it drew on (``ax.figure`` is its
  Figure): :func:`plot_waveform` (:mod:`.waveform`), :func:`plot_responsibility`
  and :func:`plot_sets` (:mod:`.spectrum`), :func:`plot_flip` (:mod:`.flip`);
* a multi-panel figure takes ``fig=`` (a Figure or SubFigure; a new one when
  None) and returns it: :func:`plot_explanation` (:mod:`.figure`, the paper's
  Figure 1); :func:`plot_vulnerability` (:mod:`.vulnerability`) draws the
  additive search's vulnerability spectrum (``ax=`` in, Axes out).

matplotlib is imported only inside the functions (``pip install
'freqrex[plot]'``), and nothing touches ``matplotlib.pyplot``: figures are plain
:class:`matplotlib.figure.Figure` objects that work headless, in notebooks and in
scripts alike. Names that come from a model (class names) are escaped for
matplotlib's mathtext (:func:`mathtext_escape`).

The HTML reports are in :mod:`freqrex.viz.report` (Jinja2 templates under
``viz/templates/``; ``pip install 'freqrex[report]'``) and saved runs are read
back by :mod:`freqrex.viz.saved`. ``freqrex.plots`` and ``freqrex.report`` re-export
these names.
"""

from ._common import SET_COLORS, SET_LABELS, band_text, mathtext_escape, require_matplotlib
from .figure import plot_explanation
from .flip import plot_flip
from .spectrum import plot_responsibility, plot_sets
from .vulnerability import plot_vulnerability
from .waveform import plot_waveform

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
