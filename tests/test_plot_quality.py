"""The faithfulness plot (benches/peers/plot_quality.py): its win counts follow each curve's sign."""

from __future__ import annotations

import importlib.util
import json
import os

import numpy as np
import pytest

_PATH = os.path.join(os.path.dirname(__file__), "..", "benches", "peers", "plot_quality.py")
_spec = importlib.util.spec_from_file_location("plot_quality", _PATH)
plot_quality = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(plot_quality)


def _record(clip, mine, theirs):
    def aucs(v):
        return {f"{op}_{c}_auc": v[i] for i, (op, c) in enumerate(plot_quality.CURVES)}
    methods = {"freqrex": aucs(mine)}
    for m in plot_quality.PEERS:
        methods[m] = aucs(theirs)
    return {"clip": clip, "model": "toy", "methods": methods}


def test_advantage_sign_and_wins(tmp_path):
    pytest.importorskip("matplotlib")
    # freqrex: lower deletion and higher insertion than the peer on clip a; the reverse on clip b
    recs = [_record("a", [0.1, 0.8, 0.1, 0.8], [0.2, 0.7, 0.2, 0.7]),
            _record("b", [0.3, 0.5, 0.3, 0.5], [0.2, 0.6, 0.2, 0.6])]
    adv = plot_quality.advantages(recs, "magnitude", "zero", "deletion")
    np.testing.assert_allclose(adv, [0.1, -0.1])
    adv = plot_quality.advantages(recs, "magnitude", "noise", "insertion")
    np.testing.assert_allclose(adv, [0.1, -0.1])
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    out = tmp_path / "q.png"
    wins = plot_quality.plot([str(path)], str(out))
    assert wins["toy"]["magnitude"] == [1, 1, 1, 1]
    assert out.stat().st_size > 1000
