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
    assert "| 1/1, 100% |" in lines["additive search"]
    assert "| 1/1, 0% |" in lines["freqrex (causal ranking)"]
    assert "| 0/1, 0% |" in lines["random bins"]
    assert "| 400 |" in lines["**exhaustive one-tone limit**"]
