"""Promises of `explain` and of saved explanations that a review found broken: each test failed before its fix."""

from __future__ import annotations

import numpy as np
import pytest

import freqrex
from freqrex import Explanation

SR = 8000


def clip(n: int = 4000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1200 * t)
         + 0.1 * np.sin(2 * np.pi * 2500 * t) + 0.02 * rng.standard_normal(n))
    return x.astype(np.float32)


class BandModel:
    """Three classes from the log energies of three bands (softmax)."""

    class_names = ["low", "mid", "high"]

    def __call__(self, w):
        w = np.asarray(w, dtype=np.float64)
        power = np.abs(np.fft.rfft(w, axis=1)) ** 2
        f = np.fft.rfftfreq(w.shape[1], 1 / SR)

        def band(a, b):
            return np.log10(power[:, (f >= a) & (f < b)].sum(1) + 1e-3)

        e1, e2, e3 = band(300, 600), band(1000, 1500), band(2000, 3000)
        logits = np.stack([1.0 * e1 + 0.5 * e2, 0.8 * e2 + 0.9 * e3, 0.4 * (e1 + e2 + e3) + 0.5], 1)
        p = np.exp(logits - logits.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True)


@pytest.mark.parametrize("rule", ["margin", "rex"])
def test_no_necessary_set_for_a_class_the_model_does_not_decide(rule):
    x, model = clip(), BandModel()
    decision = int(np.argmax(model(x[None])[0]))
    other = (decision + 1) % 3
    e = freqrex.explain(x, SR, model, target=other, rule=rule, budget=40, iterations=2, seed=0)
    assert e.target == other and e.sufficient_necessary is None
    assert "not the model's decision" in e.reasons["sufficient_necessary"]
    if e.sufficient is None:
        assert "whole clip is needed" not in e.reasons["sufficient"]
    else:  # kept alone, the sufficient set makes the model choose the target: a direct model call
        keep = np.fft.irfft(np.fft.rfft(x.astype(np.float64)) * e.sufficient, n=x.size)
        assert int(np.argmax(model(keep[None])[0])) == other


def test_a_loaded_explanation_has_the_band_scores_and_metadata_it_was_saved_with(tmp_path):
    x, model = clip(), BandModel()
    e = freqrex.explain(x, SR, model, budget=40, iterations=2, seed=0, fmin=200, fmax=2000)
    e.metadata.update(model="band", target=99, margin=-1.0, note="kept")
    loaded = Explanation.load(e.save(tmp_path / "e"))
    for name in ("sufficient", "complete"):
        if e.get_set(name) is not None:
            np.testing.assert_array_equal(loaded.mask_of(name), e.mask_of(name))
            assert loaded.share(name)["bins"] == pytest.approx(e.share(name)["bins"])  # of the searched band
    assert loaded.options["_band"] == e.options["_band"]
    np.testing.assert_array_equal(loaded.original_scores, e.original_scores)
    # metadata never overwrites a field, and comes back whole
    assert loaded.target == e.target and loaded.margin == pytest.approx(e.margin)
    assert loaded.metadata == e.metadata


def test_an_odd_budget_spent_with_the_noise_fill_is_exhausted():
    """Two queries a coalition: a search that stops one query short of an odd budget has run out."""
    x, model = clip(), BandModel()
    e = freqrex.explain(x, SR, model, budget=73, iterations=3, seed=0)
    stats = e.stats
    if stats["search_queries"] + 2 > stats["search_budget"]:
        assert stats["budget_exhausted"]
    else:
        assert not stats["budget_exhausted"]
    assert stats["search_queries"] <= stats["search_budget"]
