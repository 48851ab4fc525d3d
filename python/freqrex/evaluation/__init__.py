"""Evaluation: how often, and how quietly, do a few frequencies flip a real classifier?

Holds the protocol (``protocol``), the resumable runner (``runner``), the JSONL
records (``records``) and the summary (``summary``); imports the manipulation
and explanation packages, never the report or the CLI.

For every clip and model, :func:`evaluate_clip` measures what the paper
reports (Kelly & Chockler 2026: one frequency out of ~240,000 flips the label
58% of the time, five frequencies 78%, practically inaudible STFT changes
62%):

* the sizes of the three sets of an ``fft`` explanation;
* flip success with ``k = 1..5`` changed FFT bins for freqrex's causal ranking
  and for the two baselines (random bins, largest-magnitude bins), each with
  the same query budget (:func:`freqrex.flip`);
* the STFT flip (a few cells, scaled under the masking threshold), for the
  causal ranking of an ``stft`` explanation and the baselines;
* SNRs, queries and seconds.

:func:`evaluate` runs this over many clips (in this process, or on Ray workers
with ``workers=``/``address=``: :mod:`.distributed`) and appends one JSON record per
(clip, model) to a JSONL file.  Each record is one complete line written with
a single ``write`` followed by ``flush`` and ``fsync``; on start, a truncated
last line (a run killed mid-write) is cut off, and clips already recorded for
the same model and protocol are skipped, so an interrupted run continues where
it stopped and loses no finished record.  :func:`summarize` and
:func:`summary_markdown` turn the records into the results table, with the
paper's numbers beside ours; :func:`read_results` reads the records as typed,
frozen :class:`ClipRecord` objects (:mod:`.results`).  With several models, :mod:`.transfer` plays each
model's sufficient and complete sets to the others (:func:`transfer_matrix`).
"""

from .protocol import PAPER, RECORD_VERSION, EvalOptions, evaluate_clip
from .records import (AUDIO_SUFFIXES, OutputLock, _clean, _num, append_record, check_outputs, clip_id, comparable,
                      find_audio, load_records)
from ..progress import RunProgress
from .results import ClipRecord, Decision, ExplanationSummary, FlipSummary, SetSummary, read_results
from .runner import evaluate, evaluate_many
from .summary import SNR_THRESHOLDS, curves_markdown, summarize, summary_markdown, write_summary
from .transfer import transfer_markdown, transfer_matrix, transfer_path

__all__ = [
    "ClipRecord",
    "Decision",
    "EvalOptions",
    "ExplanationSummary",
    "FlipSummary",
    "SetSummary",
    "PAPER",
    "AUDIO_SUFFIXES",
    "SNR_THRESHOLDS",
    "OutputLock",
    "RunProgress",
    "append_record",
    "check_outputs",
    "clip_id",
    "comparable",
    "curves_markdown",
    "evaluate",
    "evaluate_clip",
    "evaluate_many",
    "find_audio",
    "load_records",
    "read_results",
    "summarize",
    "summary_markdown",
    "transfer_markdown",
    "transfer_matrix",
    "transfer_path",
    "write_summary",
]
