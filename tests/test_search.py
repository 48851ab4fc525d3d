"""The responsibility search and extraction: agreement with the NumPy reference,
determinism, exact budgets, no repeated masks."""

import numpy as np
import pytest

import freqrex
from freqrex import reference
from synthetic import SR, BandClassifier, RecordingModel, make_clip, explain_pf, reference_pf

FAST = dict(iterations=6, budget=800)


def same(a, b):
    np.testing.assert_allclose(a.responsibility, b.responsibility, rtol=0, atol=1e-12)
    assert np.array_equal(a.ranking, b.ranking)
    for name in ("sufficient", "sufficient_necessary", "complete"):
        ma, mb = a.get_set(name), b.get_set(name)
        assert (ma is None) == (mb is None)
        if ma is not None:
            assert np.array_equal(ma, mb)
    assert a.search_queries == b.search_queries
    assert a.extraction_queries == b.extraction_queries


@pytest.mark.parametrize("space", ["fft", "stft"])
@pytest.mark.parametrize("cuts", ["uniform", "log"])
@pytest.mark.parametrize("rule", ["minimal", "rex", "confidence"])
def test_core_matches_reference(space, cuts, rule):
    x = make_clip()
    model = BandClassifier("and")
    kw = dict(space=space, cuts=cuts, rule=rule, n_fft=256, hop_length=128, seed=3, **FAST)
    a, b = explain_pf(x, SR, model, **kw), reference_pf(x, SR, model, **kw)
    if rule != "confidence":
        same(a, b)  # pass/fail decisions agree, so the 1/k shares agree to rounding
        return
    # The confidence rule weights shares by scores, which the core's single-precision
    # inverse FFT moves by ~1e-7: equal to that tolerance, and each ranking orders the
    # other's map up to it.
    assert a.stats == b.stats
    np.testing.assert_allclose(a.responsibility, b.responsibility, rtol=0, atol=1e-6)
    for r, order in ((a.responsibility, b.ranking), (b.responsibility, a.ranking)):
        assert np.all(np.diff(r.ravel()[order]) <= 1e-6)


def test_core_matches_reference_with_band_and_threshold():
    x = make_clip()
    model = BandClassifier("or")
    kw = dict(fmin=500, fmax=3000, threshold=0.9, n_parts=3, seed=11, **FAST)
    a, b = explain_pf(x, SR, model, **kw), reference_pf(x, SR, model, **kw)
    same(a, b)
    # Bins outside [fmin, fmax] are never searched and get no responsibility.
    assert a.responsibility[:500].max() == 0 and a.responsibility[3001:].max() == 0
    assert a.ranking.size == 3000 - 500 + 1


@pytest.mark.parametrize("space", ["fft", "stft"])
def test_same_seed_same_result_for_any_threads_and_batch(space):
    x = make_clip()
    model = BandClassifier("and")
    kw = dict(space=space, n_fft=256, hop_length=128, seed=5, **FAST)
    base = explain_pf(x, SR, model, n_threads=1, batch_size=7, **kw)
    for n_threads, batch_size in [(2, 7), (2, 64), (1, 1000), (None, 33)]:
        other = explain_pf(x, SR, model, n_threads=n_threads, batch_size=batch_size, **kw)
        same(base, other)
        assert np.array_equal(base.responsibility, other.responsibility)


def test_different_seeds_draw_different_partitions():
    x = make_clip()
    model = BandClassifier("or")
    a = explain_pf(x, SR, model, seed=1, **FAST)
    b = explain_pf(x, SR, model, seed=2, **FAST)
    assert not np.array_equal(a.responsibility, b.responsibility)
    # ...yet both find the planted evidence first.
    assert set(a.ranking[:2]) == set(b.ranking[:2]) == {1000, 1700}


@pytest.mark.parametrize("budget", [0, 1, 13, 14, 100, 457])
def test_budget_is_never_exceeded(budget):
    x = make_clip()
    model = RecordingModel(BandClassifier("one"))
    e = explain_pf(x, SR, model, budget=budget, iterations=5, batch_size=10)
    assert e.search_queries == min(budget, e.search_queries)
    assert e.search_queries <= budget
    if budget <= 100:
        assert e.search_queries == budget  # small budgets are always spent completely
        assert e.stats["budget_exhausted"]
    # Every model evaluation is counted: the original, the search and the extraction.
    assert len(model.seen) == e.queries == 1 + e.search_queries + e.extraction_queries
    assert max(model.batches) <= 10


def test_no_mask_is_evaluated_twice():
    x = make_clip()
    model = RecordingModel(BandClassifier("or"))
    e = explain_pf(x, SR, model, iterations=12, budget=3000, n_parts=2)
    assert e.stats["duplicates"] > 0  # the iterations did propose repeated masks...
    search = model.seen[1 : 1 + e.search_queries]
    assert len(set(search)) == len(search)  # ...and none reached the model twice
    extraction = model.seen[1 + e.search_queries :]
    assert len(set(extraction)) == len(extraction)


def test_search_stops_when_nothing_can_be_split():
    x = make_clip()[:64]
    e = explain_pf(x, SR, lambda w: np.tile([0.2, 0.8], (len(w), 1)), budget=100000, iterations=2)
    assert not e.stats["budget_exhausted"]
    # A model that always says class 1: masking everything passes, nothing is responsible.
    assert e.responsibility.max() == 0
    assert e.sufficient is not None and e.size("sufficient") == 1


def test_max_depth_limits_refinement():
    x = make_clip()
    e = explain_pf(x, SR, BandClassifier("one"), max_depth=2, iterations=3, budget=5000)
    assert e.stats["rounds"] <= 3
    # At depth 2 the finest credited parts are much wider than one bin.
    assert (e.responsibility > 0).sum() > 10


def _grid():
    rng = np.random.default_rng(13)
    spaces, totals, batches = ["fft", "stft"], [1, 2, 3, 7, 20, 45, 90, 250], [2, 3, 16]
    for i in range(36):
        yield dict(
            space=spaces[i % 2],
            max_queries=totals[i % len(totals)],
            extraction_batch=batches[i % 3],
            budget=int(rng.choice([0, 5, 60, 5000])),
            iterations=int(rng.choice([1, 3, 8])),
            n_parts=int(rng.choice([2, 4, 5])),
            rule=["minimal", "rex", "confidence"][i % 3],
            fmin=[None, 500.0][i % 2 * (i % 5 == 1)],
            batch_size=int(rng.choice([1, 7, 64])),
            seed=i,
        )


@pytest.mark.parametrize("options", list(_grid()), ids=lambda o: f"{o['space']}-q{o['max_queries']}-b{o['extraction_batch']}")
def test_max_queries_bounds_the_whole_explanation(options):
    x = make_clip()
    model = RecordingModel(BandClassifier("and"))
    e = explain_pf(x, SR, model, n_fft=256, hop_length=128, **options)
    total = options["max_queries"]
    assert len(model.seen) == e.queries == 1 + e.search_queries + e.extraction_queries <= total
    assert e.search_queries <= min(options["budget"], e.stats["search_budget"])
    for name in ("sufficient", "sufficient_necessary", "complete"):
        assert (e.get_set(name) is None) == (name in e.reasons)
    if e.sufficient is not None:  # a set reported under a truncated extraction still holds
        assert np.argmax(model.model(e.audio("sufficient")[None])[0]) == e.target


def test_max_queries_split_and_reference_agree():
    x = make_clip()
    model = BandClassifier("or")
    kw = dict(max_queries=120, budget=2000, iterations=6, seed=4)
    a, b = explain_pf(x, SR, model, **kw), reference_pf(x, SR, model, **kw)
    same(a, b)
    assert a.stats == b.stats
    # 4001 bins: the extraction reserve is 3 * (12 + 1) + (8 - 2) + 1 = 46 queries; the search gets the rest.
    assert a.stats["search_budget"] == 120 - 1 - 46 == a.search_queries
    assert a.queries <= 120 and not a.stats["extraction_truncated"]
    # Without max_queries, budget bounds the search alone, as before.
    c = explain_pf(x, SR, model, budget=79, iterations=6, seed=4)
    assert c.search_queries == 79 and c.stats["search_budget"] == 79


def test_tiny_total_budget_truncates_extraction_with_reasons():
    x = make_clip()
    model = RecordingModel(BandClassifier("one"))
    e = explain_pf(x, SR, model, max_queries=4, budget=2000, iterations=2)
    assert len(model.seen) == e.queries <= 4
    assert e.stats["extraction_truncated"]
    assert any("query budget ran out" in (r or "") for r in e.reasons.values())
    with pytest.raises(freqrex.ParameterError):
        explain_pf(x, SR, model, max_queries=0)


def test_extraction_is_cheap_and_starts_from_the_previous_set():
    x = make_clip()
    e = explain_pf(x, SR, BandClassifier("and"), iterations=6, budget=800, seed=3)
    # Three nested sets over 4001 bins in a handful of bisection steps.
    assert e.extraction_queries <= 3 * 12 + 2
    assert e.extraction_queries <= 0.25 * e.queries


@pytest.mark.parametrize("space", ["fft", "stft"])
def test_ties_are_broken_by_magnitude_among_credited_cells(space):
    x = make_clip()
    model = BandClassifier("and")
    kw = dict(space=space, n_fft=256, hop_length=128, iterations=2, budget=60, seed=1)
    e = explain_pf(x, SR, model, **kw)
    old = explain_pf(x, SR, model, tiebreak="index", **kw)
    assert np.array_equal(e.responsibility, old.responsibility)
    r = e.responsibility.ravel()[e.ranking]
    mag = np.abs(e._space.coefficients()).ravel()[e.ranking]
    same_part = (r[1:] == r[:-1]) & (r[1:] > 0)
    assert same_part.any()
    assert np.all(mag[1:][same_part] <= mag[:-1][same_part] * (1 + 1e-6))  # louder first inside a plateau
    zero = (r[1:] == 0) & (r[:-1] == 0)
    assert np.all(np.diff(e.ranking)[zero] > 0)  # uncredited cells stay in index order
    r_old = old.responsibility.ravel()[old.ranking]
    assert np.all(np.diff(old.ranking)[r_old[1:] == r_old[:-1]] > 0)  # tiebreak="index": as before
    with pytest.raises(freqrex.ParameterError):
        explain_pf(x, SR, model, tiebreak="loudest")
    with pytest.raises(freqrex.ParameterError):
        explain_pf(x, SR, model, class_maps=-1)
