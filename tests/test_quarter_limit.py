"""scripts/quarter_limit_eval.py: its table is the evaluation's limit comparison, on finished clips only."""

from __future__ import annotations

import importlib.util
import json
import os

_PATH = os.path.join(os.path.dirname(__file__), "..", "scripts", "quarter_limit_eval.py")
_spec = importlib.util.spec_from_file_location("quarter_limit_eval", _PATH)
quarter = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quarter)


def _rec(clip, strategy, snr, limit=30.0):
    return {"clip": clip, "model": "toy", "strategy": strategy, "total_budget": 100, "success": snr is not None,
            "snr_db": snr, "queries": 100, "limit_snr_db": limit, "limit_queries": 400}


def test_only_finished_clips_count_and_the_limit_comparison_decides(tmp_path):
    recs = [_rec("a", s, 29.5 if s == "additive" else (10.0 if s == "causal" else None)) for s in quarter.STRATEGIES]
    recs += [_rec("b", "additive", 50.0)]  # unfinished: one strategy only
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    records, limits = quarter.as_evaluation_records(recs)
    assert [r["clip"] for r in records] == ["a"] and limits == [
        {"model": "toy", "clip": "a", "best_snr_db": 30.0, "queries": 400}]
    table = quarter.table([str(path)])
    lines = {line.split("|")[3].strip(): line for line in table.splitlines()[2:]}
    # additive: 29.5 dB against a 30 dB limit is within 1 dB; causal at 10 dB is not; random never flipped
    assert "| 1/1 | 1/1 (100%) | 0 |" in lines["additive search"]
    assert "| 1/1 | 0/1 (0%) | 0 |" in lines["freqrex (causal ranking)"]
    assert "| 0/1 | 0/1 (0%) | 0 |" in lines["random bins"]
    assert "| 400 |" in lines["**exhaustive one-tone limit**"]


def test_a_clip_the_limit_does_not_flip_is_never_within_1db(tmp_path):
    """Every clip the one-tone limit did not flip counted as "within 1 dB", even where the strategy failed
    too: the share is of the clips the limit flips, and a flip beyond the limit is counted apart."""
    recs = [_rec("a", s, 29.5 if s == "additive" else None) for s in quarter.STRATEGIES]
    recs += [_rec("b", s, 12.0 if s == "tone_scan" else None, limit=None) for s in quarter.STRATEGIES]
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    table = quarter.table([str(path)])
    assert "of the 1 clips the limit flips" in table.splitlines()[0]
    lines = {line.split("|")[3].strip(): line for line in table.splitlines()[2:]}
    assert "| 1/2 | 1/1 (100%) | 0 |" in lines["additive search"]
    assert "| 0/2 | 0/1 (0%) | 0 |" in lines["random bins"]  # was "0/2, 50%": clip b counted as close
    assert "| 1/2 | 0/1 (0%) | 1 |" in lines["tone scan"]  # b: flipped where no single tone of the limit does
    assert "| 1/2 |" in lines["**exhaustive one-tone limit**"]


def _fake_freqrex(monkeypatch, calls):
    """The model, audio and flip of ``run`` replaced: every flip succeeds at 20 dB."""
    import types

    import freqrex.io
    import freqrex.manipulation
    import freqrex.models

    def flip(x, sr, model, *, k, strategy, budget, seed, explanation):
        calls.append(strategy)
        return types.SimpleNamespace(success=True, snr_db=20.0, frequencies_hz=[440.0], queries=budget,
                                     flip_queries=budget, original_name="a", new_name="b")

    monkeypatch.setattr(freqrex.models, "load_model", lambda name: object())
    monkeypatch.setattr(freqrex.io, "load_audio", lambda path, **k: ([0.0] * 8, 16000))
    monkeypatch.setattr(freqrex.manipulation, "flip", flip)


def test_a_run_killed_mid_line_resumes_on_a_clean_line(tmp_path, monkeypatch):
    """A killed run leaves a truncated last line: the resumed run, and --table, read past it; the run cuts
    it off and appends whole lines after the finished records, running the unfinished strategy again."""
    import argparse

    from freqrex.evaluation import load_records

    limits = tmp_path / "limits.jsonl"
    limits.write_text("".join(json.dumps({"clip": f"{c}.wav", "model": "toy", "best_snr_db": 30.0, "queries": 400})
                              + "\n" for c in "ab"))
    out = tmp_path / "q.jsonl"
    finished = {**_rec("a.wav", "additive", 25.0), "hz": [440.0]}
    out.write_text(json.dumps(finished) + "\n" + '{"clip": "a.wav", "model": "toy", "strategy": "ran')
    assert quarter.table([str(out)]) == ""  # no clip finished every strategy yet; no crash on the cut line
    calls: list = []
    _fake_freqrex(monkeypatch, calls)
    args = argparse.Namespace(limits=str(limits), model="toy", n=24, corpus=str(tmp_path), seed=0,
                              strategies=["additive", "random"], out=str(out))
    quarter.run(args)
    assert calls == ["random", "additive", "random"]  # a/additive was recorded: not run again
    recs = load_records(out)  # every line whole (a damaged line in the middle would raise)
    assert [(r["clip"], r["strategy"]) for r in recs] == [
        ("a.wav", "additive"), ("a.wav", "random"), ("b.wav", "additive"), ("b.wav", "random")]
    assert out.read_text().endswith("\n") and out.read_text().count("\n") == 4
    quarter.run(args)  # resumed again: nothing left to do
    assert len(calls) == 3
