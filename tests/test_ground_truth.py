"""Classifiers with planted evidence: freqrex must find it."""

import numpy as np
import pytest

import freqrex
from synthetic import SR, BandClassifier, band_energy, make_clip, tone, explain_pf, reference_pf

BUDGET = dict(iterations=10, budget=3000)
A, B, DECOY = (980, 1020), (1680, 1720), (2480, 2520)


def inside(e, name, bands):
    idx = np.flatnonzero(e.get_set(name))
    f = e.frequencies[idx]
    return all(any(lo <= v <= hi for lo, hi in bands) for v in f)


def top_class(model, waves):
    return np.argmax(model(np.atleast_2d(waves)), axis=1)


def check_definitions(e, model, x):
    """Check the three sets against their definitions by direct model calls."""
    c = e.target
    s = e.audio("sufficient")
    assert top_class(model, s)[0] == c
    sn = e.audio("sufficient_necessary")
    assert top_class(model, sn)[0] == c
    removed = e.sufficient_necessary.copy()
    keep = ~removed
    wave = e._space.synthesize(keep.reshape(1, *e._space.shape))
    assert top_class(model, wave)[0] != c
    comp = model(e.audio("complete")[None])[0]
    assert np.argmax(comp) == c and abs(comp[c] - e.score) <= e.options["tol"]
    # Nested: sufficient within sufficient-and-necessary within complete.
    assert np.all(e.sufficient <= e.sufficient_necessary)
    assert np.all(e.sufficient_necessary <= e.complete)


@pytest.mark.parametrize("cuts", ["uniform", "log"])
def test_one_band(cuts):
    x = make_clip()
    model = BandClassifier("one")
    e = explain_pf(x, SR, model, cuts=cuts, **BUDGET)
    assert e.target == 1
    assert inside(e, "sufficient", [A])
    assert inside(e, "sufficient_necessary", [A])
    assert e.responsibility[slice(*DECOY)].max() == 0  # the loud decoy is ignored
    assert np.argmax(e.responsibility) == 1000
    check_definitions(e, model, x)


def test_and_of_two_bands():
    x = make_clip()
    model = BandClassifier("and")
    e = explain_pf(x, SR, model, **BUDGET)
    assert inside(e, "sufficient", [A, B])
    f = e.frequencies[e.sufficient]
    assert any(A[0] <= v <= A[1] for v in f) and any(B[0] <= v <= B[1] for v in f)  # both needed
    assert e.responsibility[slice(*DECOY)].max() == 0
    check_definitions(e, model, x)


def test_or_of_two_bands():
    x = make_clip()
    model = BandClassifier("or")
    e = explain_pf(x, SR, model, **BUDGET)
    assert inside(e, "sufficient", [A, B])
    # One band suffices alone...
    f = e.frequencies[e.sufficient]
    assert all(A[0] <= v <= A[1] for v in f) or all(B[0] <= v <= B[1] for v in f)
    # ...but both must go for the class to change.
    g = e.frequencies[e.sufficient_necessary]
    assert any(A[0] <= v <= A[1] for v in g) and any(B[0] <= v <= B[1] for v in g)
    assert inside(e, "sufficient_necessary", [A, B])
    r = e.responsibility
    assert r[slice(*DECOY)].max() < min(r[1000], r[1700])
    check_definitions(e, model, x)


def test_absent_sets_are_reported_not_blank():
    x = make_clip()

    class WholeClip:
        """Class 1 only for the clip itself: any change of any bin is a different class."""

        def __call__(self, w):
            err = ((np.asarray(w, np.float64) - x) ** 2).sum(1) / (x.astype(np.float64) ** 2).sum()
            z = np.clip(np.log(1e-10) - np.log(err + 1e-300), -30, 30)
            p = 1 / (1 + np.exp(-z))
            return np.stack([1 - p, p], 1)

    e = explain_pf(x, SR, WholeClip(), iterations=4, budget=300)
    assert e.target == 1
    for name in ("sufficient", "sufficient_necessary", "complete"):
        assert e.get_set(name) is None
        assert "whole clip" in e.reasons[name]
        assert e.bands(name) == []
        with pytest.raises(freqrex.ParameterError):
            e.audio(name)


def test_stft_time_frequency_region():
    """Evidence: a 1 kHz tone only during 0.5-0.75 s; a decoy tone all along."""
    n = 8000
    rng = np.random.default_rng(1)
    x = (tone(1000, 0.3, n, start=0.5, stop=0.75) + tone(2500, 1.0, n) + 0.01 * rng.standard_normal(n)).astype(np.float32)

    def model(w):
        # Energy at 950-1050 Hz inside 0.45-0.8 s only.
        seg = np.asarray(w)[:, int(0.45 * SR) : int(0.8 * SR)]
        e = band_energy(seg, 950, 1050)
        thr = 0.05 * band_energy(x[None, int(0.45 * SR) : int(0.8 * SR)], 950, 1050)[0]
        z = np.clip(np.log(e + 1e-12) - np.log(thr), -30, 30)
        p = 1 / (1 + np.exp(-z))
        return np.stack([1 - p, p], 1)

    e = explain_pf(x, SR, model, space="stft", n_fft=256, hop_length=128, iterations=10, budget=4000)
    assert e.responsibility.shape == (1 + n // 128, 129)
    assert e.target == 1
    cells = e.cells("sufficient")
    assert cells, e.reasons
    for t, f in cells:
        assert 0.4 <= t <= 0.85 and 750 <= f <= 1250  # the band, give or take the window's leakage
    decoy_bin = int(round(2500 / (SR / 256)))
    assert e.responsibility[:, decoy_bin].max() == 0
    check_definitions(e, model, x)


@pytest.mark.parametrize("mode, queries", [("one", 100), ("and", 111), ("or", 109)])
def test_planted_bands_within_a_total_budget_of_120(mode, queries):
    """The whole explanation (original, search, extraction) in at most 120 queries."""
    x = make_clip()
    model = BandClassifier(mode)
    e = explain_pf(x, SR, model, iterations=4, max_queries=120, cuts="log")
    assert e.queries == model.evaluated == queries <= 120
    assert e.search_queries == 73 and e.extraction_queries <= 40  # the split of 120: 1 + 73 + at most 46
    expected = {"one": [(1000.0, 1000.0)], "and": [(1000.0, 1000.0), (1700.0, 1700.0)], "or": [(1700.0, 1700.0)]}
    assert e.bands("sufficient") == expected[mode]
    assert inside(e, "sufficient_necessary", [A, B])
    r = e.responsibility
    assert r[slice(*DECOY)].max() < max(r[slice(*A)].max(), r[slice(*B)].max())  # coarse at this budget
    check_definitions(e, model, x)
