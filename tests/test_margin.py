"""The margin estimator (the default rule): planted evidence, budgets, margins, warnings, seeds."""

from __future__ import annotations

import numpy as np
import pytest

import freqrex
from freqrex.margin import margin_of

from synthetic import SR, N, tone, band_energy

RNG = np.random.default_rng(7)
NOISE = (0.02 * RNG.standard_normal(N)).astype(np.float32)


def clip():
    """Tones at 300, 1000, 1700 and 2500 Hz (the last one loud) over quiet noise."""
    x = tone(300, 0.3) + tone(1000, 0.3) + tone(1700, 0.3) + tone(2500, 1.0)
    return (x + NOISE).astype(np.float32)


class Soft:
    """Two classes, softmax over logits that grow with the energy of planted bands.

    ``rule``: "one" (the 1000 Hz band), "and" (min of 1000 and 1700 Hz), "or" (max),
    "graded": class 1 keeps winning without the 300 Hz band, but by less.
    """

    sample_rate = SR
    class_names = ["absent", "present"]

    def __init__(self, rule="one"):
        self.rule = rule
        self.calls = 0

    def __call__(self, waves):
        waves = np.asarray(waves)
        self.calls += waves.shape[0]
        ref = band_energy(tone(1000, 0.3)[None], 990, 1010)[0]
        a = band_energy(waves, 990, 1010) / ref
        b = band_energy(waves, 1690, 1710) / ref
        c = band_energy(waves, 290, 310) / ref
        if self.rule == "one":
            z = 4 * a - 2
        elif self.rule == "and":
            z = 4 * np.minimum(a, b) - 2
        elif self.rule == "or":
            z = 4 * np.maximum(a, b) - 2
        else:  # graded: always class 1, more surely with the 300 Hz band
            z = 1.0 + 2.0 * c
        z = np.clip(z, -30, 30)
        p = 1 / (1 + np.exp(-z))
        return np.stack([1 - p, p], axis=1)


def top_hz(e, n):
    return np.sort(e.frequencies[np.argsort(-e.responsibility, kind="stable")[:n]])


@pytest.mark.parametrize("rule,planted", [("one", [1000]), ("and", [1000, 1700]), ("or", [1000, 1700])])
def test_planted_bands_rank_first_at_a_small_budget(rule, planted):
    e = freqrex.explain(clip(), SR, Soft(rule), max_queries=120, seed=0)
    assert e.options["rule"] == "margin"
    assert e.queries <= 120
    best = top_hz(e, len(planted))
    for hz in planted:
        assert np.min(np.abs(best - hz)) <= 2, (rule, best)
    assert e.responsibility[2500] < e.responsibility[planted[0]]  # the loud decoy is not credited


def test_margin_credits_a_band_whose_removal_costs_score_without_flipping():
    """Class 1 survives the loss of the 300 Hz band: the pass/fail rule has nothing to credit, the
    margin estimator ranks the band first."""
    model = Soft("graded")
    e = freqrex.explain(clip(), SR, model, max_queries=80, seed=0)
    assert abs(top_hz(e, 1)[0] - 300) <= 2
    paper = freqrex.explain(clip(), SR, model, max_queries=80, seed=0, rule="rex")
    assert abs(paper.frequencies[paper.ranking[0]] - 300) > 2 or \
        paper.responsibility[300] <= np.median(paper.responsibility[paper.responsibility > 0])


def test_budget_is_never_exceeded_and_counted():
    for q in (5, 17, 40, 90, 200):
        model = Soft("one")
        e = freqrex.explain(clip(), SR, model, max_queries=q, seed=1)
        assert e.queries == model.calls <= q


def test_same_seed_same_map_whatever_the_batch_size_or_threads():
    ref = freqrex.explain(clip(), SR, Soft("and"), max_queries=150, seed=3)
    for kw in ({"batch_size": 1}, {"batch_size": 7}, {"n_threads": 1}):
        e = freqrex.explain(clip(), SR, Soft("and"), max_queries=150, seed=3, **kw)
        np.testing.assert_array_equal(e.responsibility, ref.responsibility)
        np.testing.assert_array_equal(e.ranking, ref.ranking)
        assert e.queries == ref.queries
    # The NumPy reference synthesises in float64 (the core in float32): the same partitions and
    # queries, effects equal to float precision, the same top of the ranking.
    e = freqrex.explain(clip(), SR, Soft("and"), max_queries=150, seed=3, backend="numpy")
    assert e.queries == ref.queries and e.stats["leaves"] == ref.stats["leaves"]
    np.testing.assert_allclose(e.responsibility, ref.responsibility, atol=1e-6 * np.abs(ref.responsibility).max())
    np.testing.assert_array_equal(e.ranking[:50], ref.ranking[:50])
    other = freqrex.explain(clip(), SR, Soft("and"), max_queries=150, seed=4)
    assert not np.array_equal(other.responsibility, ref.responsibility)


def test_paper_rule_stays_reproducible():
    a = freqrex.explain(clip(), SR, Soft("one"), rule="rex", budget=200, max_queries=None, iterations=4, seed=5)
    b = freqrex.explain(clip(), SR, Soft("one"), rule="rex", budget=200, max_queries=None, iterations=4, seed=5,
                        backend="numpy")
    np.testing.assert_array_equal(a.responsibility, b.responsibility)
    assert set(np.unique(a.responsibility)) <= {0.0} | set(np.unique(a.responsibility[a.responsibility > 0]))
    assert a.responsibility.min() >= 0


def test_reported_margins_match_direct_model_calls():
    model = Soft("and")
    e = freqrex.explain(clip(), SR, model, max_queries=150, seed=0)
    assert e.sufficient is not None
    for name, m in e.set_margins.items():
        kept = model(e.audio(name)[None])
        assert m["kept_margin"] == pytest.approx(float(margin_of(kept, e.target)[0]), abs=1e-6)
        removed = e.mask_of(name).copy()
        b0, b1 = e.options["_band"]
        removed[:, b0:b1] = ~removed[:, b0:b1]
        wave = np.asarray(e._space.synthesize(removed[None]))[0]
        assert m["removed_margin"] == pytest.approx(float(margin_of(model(wave[None]), e.target)[0]), abs=1e-6)
        assert m["removed_class"] == int(np.argmax(model(wave[None])[0]))
    assert e.margin == pytest.approx(float(margin_of(model(clip()[None]), e.target)[0]))


def test_flat_map_warning_on_a_model_that_ignores_its_input():
    def deaf(waves):
        return np.tile([0.3, 0.7], (len(waves), 1))

    e = freqrex.explain(clip(), SR, deaf, max_queries=60, seed=0)
    assert any("flat" in w for w in e.warnings)
    assert any("masked clip alone" in w for w in e.warnings)


def test_no_warning_on_a_clear_planted_decision():
    e = freqrex.explain(clip(), SR, Soft("one"), max_queries=150, seed=0)
    assert not any("flat" in w or "masked clip" in w for w in e.warnings), e.warnings


def test_thin_margin_is_reported():
    """A set that keeps the class by less than margin_tol gets a warning; so does a tiny tolerance not."""
    model = Soft("one")
    e = freqrex.explain(clip(), SR, model, max_queries=150, seed=0, margin_tol=10.0)
    assert any("margin of only" in w for w in e.warnings)
    e2 = freqrex.explain(clip(), SR, model, max_queries=150, seed=0, margin_tol=0.0)
    assert not any("margin of only" in w for w in e2.warnings)


def test_target_and_contrast_by_name_and_index():
    model = Soft("one")
    e = freqrex.explain(clip(), SR, model, max_queries=80, seed=0, target="absent")
    assert e.target == 0
    assert any("not the model's decision" in w for w in e.warnings)
    e1 = freqrex.explain(clip(), SR, model, max_queries=80, seed=0, target=1, contrast="absent")
    assert e1.target == 1 and e1.contrast == 0
    with pytest.raises(freqrex.ParameterError):
        freqrex.explain(clip(), SR, model, max_queries=80, target="nope")
    with pytest.raises(freqrex.ParameterError):
        freqrex.explain(clip(), SR, model, max_queries=80, target=5)


def test_readable_ranges_and_compact_summary(tmp_path):
    e = freqrex.explain(clip(), SR, Soft("and"), max_queries=150, seed=0)
    ranges = e.ranges("sufficient")
    assert 1 <= len(ranges) <= 6
    assert sum(r.share for r in ranges) <= 1 + 1e-9
    assert any(r.lo_hz <= 1000 <= r.hi_hz for r in ranges) and any(r.lo_hz <= 1700 <= r.hi_hz for r in ranges)
    e.save(tmp_path / "run")
    back = freqrex.Explanation.load(tmp_path / "run")
    assert back.warnings == e.warnings
    assert back.set_margins.keys() == e.set_margins.keys()
    for name, m in e.set_margins.items():
        assert back.set_margins[name]["kept_margin"] == pytest.approx(m["kept_margin"])
    np.testing.assert_array_equal(back.parts, e.parts)
    import json

    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["sets"]["sufficient"]["ranges"]
    assert "kept_margin" in summary["sets"]["sufficient"]
