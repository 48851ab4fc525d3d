"""Per-class responsibility maps: where removing evidence moves the decision to another class."""

import numpy as np
import pytest

import freqrex
from freqrex import reference
from synthetic import SR, BandClassifier, band_energy, make_clip, explain_pf, reference_pf

A, B = (980, 1020), (1680, 1720)


class ThreeClasses:
    """Class 0 with both bands; without band A class 1 wins, without band B class 2."""

    sample_rate = SR
    class_names = ["both", "no A", "no B"]

    def __call__(self, waves):
        thr = 0.25 * 0.3**2 / 2 * SR / 2
        a = np.clip(np.log(band_energy(waves, *A) + 1e-12) - np.log(thr), -30, 30)
        b = np.clip(np.log(band_energy(waves, *B) + 1e-12) - np.log(thr), -30, 30)
        z = np.stack([np.minimum(a, b), -a, -b], axis=1)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("space", ["fft", "stft"])
def test_each_class_map_peaks_where_removing_evidence_gives_it(space):
    x = make_clip()
    kw = dict(space=space, n_fft=256, hop_length=128, iterations=6, budget=1500, seed=2)
    e = explain_pf(x, SR, ThreeClasses(), **kw)
    assert e.target == 0
    assert set(e.class_responsibility) == {1, 2}
    for c, (lo, hi) in ((1, A), (2, B)):
        m = e.class_responsibility[c]
        assert m.shape == e.responsibility.shape
        per_bin = m if m.ndim == 1 else m.sum(axis=0)
        f = e.frequencies[np.argmax(per_bin)]
        assert lo - 50 <= f <= hi + 50, (c, f)
        other = B if c == 1 else A
        band = (e.frequencies >= other[0]) & (e.frequencies <= other[1])
        assert per_bin[band].max() < per_bin.max()
    assert e.runner_up in (1, 2)
    r = reference_pf(x, SR, ThreeClasses(), **kw)
    assert list(r.class_responsibility) == list(e.class_responsibility)
    for c in e.class_responsibility:
        np.testing.assert_allclose(e.class_responsibility[c], r.class_responsibility[c], rtol=0, atol=1e-12)
    assert r.runner_up == e.runner_up
    assert r.search_queries == e.search_queries and r.extraction_queries == e.extraction_queries


def test_class_maps_cost_no_query_and_can_be_limited():
    x = make_clip()
    kw = dict(iterations=4, budget=600, seed=1)
    full = explain_pf(x, SR, ThreeClasses(), **kw)
    one = explain_pf(x, SR, ThreeClasses(), class_maps=1, **kw)
    none = explain_pf(x, SR, ThreeClasses(), class_maps=0, **kw)
    assert full.queries == one.queries == none.queries
    assert np.array_equal(full.responsibility, none.responsibility)
    assert len(one.class_responsibility) == 1 and none.class_responsibility == {} and none.runner_up is None
    (c,) = one.class_responsibility
    assert np.array_equal(one.class_responsibility[c], full.class_responsibility[c])
    # A two-class model has no other class than its target's rival.
    e = explain_pf(x, SR, BandClassifier("one"), **kw)
    assert set(e.class_responsibility) <= {0}


def test_class_maps_are_saved_and_loaded(tmp_path):
    x = make_clip()
    e = explain_pf(x, SR, ThreeClasses(), iterations=4, budget=600)
    out = e.save(tmp_path / "run")
    back = freqrex.Explanation.load(out)
    assert back.runner_up == e.runner_up
    assert set(back.class_responsibility) == set(e.class_responsibility)
    for c, m in e.class_responsibility.items():
        assert np.array_equal(back.class_responsibility[c], m)
    assert np.array_equal(back.responsibility, e.responsibility)
