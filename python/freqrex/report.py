"""Self-contained HTML reports: the names of :mod:`freqrex.viz.report`, :mod:`freqrex.viz.evaluation_report`
and :mod:`freqrex.viz.saved`, re-exported.

>>> from freqrex.report import write_explanation_report             # doctest: +SKIP
>>> write_explanation_report(e, "report.html", model_name="MSD_musicnn")  # doctest: +SKIP

A directory written by :meth:`freqrex.Explanation.save` can be rendered
later, without the model, with :func:`load_explanation_dir` (or ``freqrex
report DIR``). The pages are Jinja2 templates (``pip install 'freqrex[report]'``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Union

from .viz import evaluation_report as _evaluation_report
from .viz.evaluation_report import read_records
from .viz.report import explanation_html, write_explanation_report, write_flip_report
from .viz.saved import SavedExplanation, load_explanation_dir, load_flip_beside, load_flip_dir

__all__ = [
    "SavedExplanation",
    "evaluation_results_markdown",
    "explanation_html",
    "load_explanation_dir",
    "load_flip_beside",
    "load_flip_dir",
    "read_records",
    "write_evaluation_report",
    "write_explanation_report",
    "write_flip_report",
]

PathLike = Union[str, "os.PathLike[str]"]


def evaluation_results_markdown(records: List[Mapping[str, Any]], *,
                                records_path: Optional[PathLike] = None) -> Optional[str]:
    """The results table of ``freqrex evaluate`` records (Markdown, laid out like the paper's), or None.

    None when the records are not ``freqrex evaluate``'s (no ``fft_flips``).
    With `records_path`, the transfer records beside it (``<stem>.transfer.jsonl``,
    several models) add the transfer matrix. This is where the report meets
    :mod:`freqrex.evaluation`; the report itself (:mod:`freqrex.viz`) only
    takes the table as an argument.
    """
    if not any(isinstance(r.get("fft_flips"), Mapping) for r in records):
        return None
    from . import evaluation

    transfers = None
    finder = getattr(evaluation, "transfer_path", None)
    if records_path is not None and finder is not None and Path(finder(records_path)).is_file():
        transfers, _ = read_records(finder(records_path))
    rows = [r for r in records if str(r.get("type", "")).lower() != "summary"]
    # one file may hold runs of several protocols (another seed, budget, record version): summarize keeps
    # the records that stand (a retried error is not counted) and never pools two runs of one model,
    # not even in an "all models" row; transfer records count only for the protocols of these runs
    summary = evaluation.summarize(rows) if transfers is None else evaluation.summarize(rows, transfers)
    return evaluation.summary_markdown(summary)


def write_evaluation_report(
    records_jsonl: Union[PathLike, Iterable[Mapping[str, Any]]],
    path: PathLike,
    *,
    results_markdown: Optional[str] = None,
    **kwargs: Any,
) -> Path:
    """:func:`freqrex.viz.evaluation_report.write_evaluation_report`, with the results table made from the records.

    When `results_markdown` is None and the records are ``freqrex
    evaluate``'s, the table is :func:`evaluation_results_markdown` of them. Other
    keywords (``title``, ``summary``, ``pages``, ``embed_audio``) as there.
    """
    if results_markdown is None:
        records = records_jsonl
        if not isinstance(records_jsonl, (str, os.PathLike)):
            records = list(records_jsonl)
            records_jsonl = records
        rows, _ = read_records(records)
        path_of_records = records if isinstance(records, (str, os.PathLike)) else None
        results_markdown = evaluation_results_markdown(rows, records_path=path_of_records)
    return _evaluation_report.write_evaluation_report(records_jsonl, path, results_markdown=results_markdown, **kwargs)
