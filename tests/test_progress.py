"""Progress (freqrex.progress.ProgressBar, tqdm): every query of every phase counted, a bar on a terminal,
periodic plain lines elsewhere, an ETA."""

from __future__ import annotations

import io

import freqrex
from freqrex.progress import ProgressBar
from synthetic import SR, BandClassifier, make_clip


def _flip_like_run(bar):
    """What freqrex.flip reports: an explanation (search, then extraction), then the flip's own counter."""
    bar("explain", 0, 400)
    for done in range(16, 401, 16):
        bar("search", done, 400)
    bar("extract", 414, 400)
    bar("check", 416, 400)
    for done in range(4, 25, 4):
        bar("flip", done, 24)


def test_counts_every_query_of_every_phase():
    out = io.StringIO()
    bar = ProgressBar("flip", stream=out, interval=3600.0)
    _flip_like_run(bar)
    assert bar.queries == 416 + 24
    assert bar.total == 400 + 16 + 24  # the explanation ran past its budget by its extraction
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines  # not a terminal, a long interval: one line, at the end
    assert "440/440" in lines[0] and lines[0].startswith("flip: ")


def test_periodic_plain_lines_with_eta_when_not_a_terminal():
    out = io.StringIO()
    bar = ProgressBar("explain", stream=out, interval=0.0, total=1000)
    for done in (100, 200, 300):
        bar("search", done, 1000)
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text  # plain lines, nothing for a terminal
    lines = text.splitlines()
    assert len(lines) == 3
    assert "300/1000" in lines[-1] and "<" in lines[-1] and "30%" in lines[-1]  # elapsed<remaining: the ETA
    bar.close()
    assert out.getvalue().splitlines()[-1].count("300/1000") == 1


def test_a_new_run_adds_to_the_count():
    bar = ProgressBar("evaluate", stream=io.StringIO(), interval=3600.0)
    for _ in range(3):  # three flips of one clip, each with its own counter from 0
        for done in (8, 16):
            bar("flip", done, 16)
    assert bar.queries == 48 and bar.total == 48
    bar("flip", 0, 16)
    bar("flip", 16, 16)  # a run that reports its start
    assert bar.queries == 64


def test_terminal_bar_is_tqdm():
    out = io.StringIO()
    with ProgressBar("explain", stream=out, tty=True, total=100) as bar:
        bar("search", 50, 100)
        bar("search", 100, 100)
    text = out.getvalue()
    assert "\r" in text and "100/100" in text and "queries" in text


def test_disabled_writes_nothing():
    out = io.StringIO()
    bar = ProgressBar("x", stream=out, enabled=False, interval=0.0)
    _flip_like_run(bar)
    bar.close()
    assert out.getvalue() == ""


def test_counts_what_explain_and_flip_count():
    x = make_clip()
    model = BandClassifier("one")
    bar = ProgressBar("explain", stream=io.StringIO(), interval=3600.0)
    e = freqrex.explain(x, SR, model, budget=120, iterations=2, progress=bar)
    bar.close()
    assert bar.queries == e.queries
    bar = ProgressBar("flip", stream=io.StringIO(), interval=3600.0)
    r = freqrex.flip(x, SR, model, k=1, budget=16, explain_budget=120, explain_iterations=2, progress=bar)
    bar.close()
    assert bar.queries == r.explanation_queries + r.flip_queries
