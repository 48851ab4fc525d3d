"""Deletion and insertion curves of rankings (freqrex.quality)."""

import numpy as np
import pytest

import freqrex
from freqrex.quality import (
    DEFAULT_FRACTIONS,
    QualityCurves,
    area,
    explanation_curves,
    magnitude_ranking,
    ranking_curves,
)
from synthetic import SR, BandClassifier, make_clip

A = (980, 1020)


def planted_ranking(n_bins=SR // 2 + 1):
    band = list(range(A[0], A[1] + 1))
    rest = [b for b in range(n_bins) if not A[0] <= b <= A[1]]
    return np.array(band + rest)


def test_curves_of_the_true_ranking_drop_at_the_planted_band_and_beat_random():
    x = make_clip()
    model = BandClassifier("one")
    q = ranking_curves(x, SR, model, planted_ranking(), batch_size=5)
    assert isinstance(q, QualityCurves) and q.target == 1
    assert q.queries == 1 + 2 * len(DEFAULT_FRACTIONS)
    assert model.evaluated == q.queries
    # 1% of 4001 bins is 40: the band (41 bins) is almost all gone, the score collapses.
    assert q.deletion[0] < 0.2 and np.all(q.deletion[1:] < 0.01)
    p = model(x[None])[0, 1]
    assert np.all(np.abs(q.insertion[1:] - p) < 1e-3)  # the band alone keeps the class and its score
    rng = np.random.default_rng(0)
    r = ranking_curves(x, SR, model, rng.permutation(SR // 2 + 1), target=1)
    assert r.queries == 2 * len(DEFAULT_FRACTIONS)  # the target given: no extra query
    assert q.deletion_auc < r.deletion_auc - 0.3
    assert q.insertion_auc > r.insertion_auc + 0.3
    assert 0 <= q.deletion_auc <= 1 and 0 <= q.insertion_auc <= 1
    d = q.to_dict()
    assert d["queries"] == q.queries and len(d["deletion"]) == len(DEFAULT_FRACTIONS)


def test_area_is_the_mean_over_the_span():
    assert area([0.0, 1.0], [1.0, 1.0]) == pytest.approx(1.0)
    assert area([0.1, 0.2, 0.4], [1.0, 0.0, 0.0]) == pytest.approx(0.05 / 0.3)


def test_short_rankings_are_completed_and_fractions_checked():
    x = make_clip()
    model = BandClassifier("one")
    q = ranking_curves(x, SR, model, [1000], target=1, fractions=(0.5,))
    assert q.queries == 2 and q.deletion.shape == (1,)
    with pytest.raises(freqrex.ParameterError):
        ranking_curves(x, SR, model, [1000], fractions=(0.5, 0.2))
    with pytest.raises(freqrex.ParameterError):
        ranking_curves(x, SR, model, [SR], target=1)  # outside the space


def test_stft_rankings_use_flat_cell_indices():
    x = make_clip()
    model = BandClassifier("one")
    n_fft, hop = 256, 128
    n_frames, n_bins = 1 + x.size // hop, n_fft // 2 + 1
    b = int(round(1000 / (SR / n_fft)))
    cells = [t * n_bins + f for f in range(b - 2, b + 3) for t in range(n_frames)]
    q = ranking_curves(x, SR, model, cells, target=1, space="stft", n_fft=n_fft, hop_length=hop,
                       fractions=(0.05, 0.1))
    mag = ranking_curves(x, SR, model, magnitude_ranking(x, space="stft", n_fft=n_fft, hop_length=hop),
                         target=1, space="stft", n_fft=n_fft, hop_length=hop, fractions=(0.05, 0.1))
    assert q.queries == mag.queries == 4
    assert q.deletion.max() < 0.01 and q.insertion.min() > 0.7


def test_explanation_curves_use_the_explanation_band_and_target():
    x = make_clip()
    model = BandClassifier("one")
    e = freqrex.explain(x, SR, model, fmin=500, fmax=3000, iterations=4, budget=600)
    before = model.evaluated
    q = explanation_curves(e, x, model)
    assert model.evaluated - before == q.queries == 2 * len(DEFAULT_FRACTIONS)
    assert q.target == e.target
    assert q.deletion_auc < 0.05 and q.insertion_auc > 0.7
    assert explanation_curves(e, None, model, fractions=(0.1,)).deletion[0] == pytest.approx(q.deletion[3], abs=1e-9)


def _cli(*args):
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "freqrex", *args], capture_output=True, text=True, env=env, timeout=300)


def test_cli_explain_prints_quality_and_shares(tmp_path):
    pytest.importorskip("onnxruntime")
    import json

    r = _cli("explain", "--budget", "10", "--iterations", "1", "--duration", "3", "--out", str(tmp_path / "a"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "deletion AUC" in r.stdout and "insertion AUC" in r.stdout and "14 more queries" in r.stdout
    assert "% of bins" in r.stdout and "% of energy" in r.stdout
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["quality"]["queries"] == 14 and len(summary["quality"]["deletion"]) == 7
    assert summary["queries"] == 1 + summary["search_queries"] + summary["extraction_queries"]  # quality apart
    r = _cli("explain", "--budget", "10", "--iterations", "1", "--duration", "3", "--out", str(tmp_path / "b"),
             "--quiet", "--json", "--no-quality", "--max-queries", "30")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert "quality" not in data and data["queries"] <= 30
    assert 0 < data["shares"]["sufficient"]["bins"] <= 1 if data["shares"]["sufficient"] else True
