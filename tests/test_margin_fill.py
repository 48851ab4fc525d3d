"""The margin search's paired intervention (``fill=``): zero masking and noise fill per coalition."""

from __future__ import annotations

import numpy as np

from freqrex import _core
from freqrex.margin import margin_search, ranking_key
from freqrex.quality import noise_fill

from synthetic import SR, make_clip, band_energy, tone


class Content:
    """Class 1 when the 1000 Hz tone is *there as a tone*: its bin's energy against its neighbours'
    (noise at the tone's level does not count, a hole does not either)."""

    sample_rate = SR

    def __init__(self):
        self.calls = 0

    def __call__(self, waves):
        waves = np.asarray(waves, dtype=np.float64)
        self.calls += waves.shape[0]
        ref = band_energy(tone(1000, 0.3)[None], 999, 1001)[0]
        peak = band_energy(waves, 999, 1001) / ref
        side = band_energy(waves, 950, 1050) / ref - peak
        z = np.clip(6 * (peak - 10 * side / 100) - 3, -30, 30)
        p = 1 / (1 + np.exp(-z))
        return np.stack([1 - p, p], axis=1)


def search(fill, budget=60, model=None):
    x = make_clip()
    model = model or Content()
    space = _core.FrequencySpace(x, space="fft", n_fft=2048, hop_length=512)
    original = model(x[None])[0]
    energy = (np.abs(np.fft.rfft(x.astype(np.float64))) ** 2)[None, :]
    found = margin_search(space, model, target=1, original_scores=original, band=(0, energy.shape[1]),
                          hz_per_bin=SR / x.size, sample_rate=SR, budget=budget, seed=0, batch_size=7,
                          energy=energy, fill=fill, class_maps=0)
    return found, model, energy, x


def test_paired_search_keeps_the_budget_and_fits_both_channels():
    x = make_clip()
    found, model, energy, _ = search(noise_fill(x, seed=1), budget=60)
    assert model.calls - 1 == found.queries <= 60  # one call for the original
    assert found.queries % 2 == 0  # two queries a coalition
    assert found.fill_effects.shape == found.effects.shape == found.se.shape == found.fill_se.shape
    assert np.all(found.se >= 0) and np.all(found.fill_se >= 0)
    # the ranking key puts the 1000 Hz tone first: its part matters under both interventions
    key = ranking_key(found.effects, found.leaves, energy, 1.0, found.fill_effects)
    assert int(np.argmax(key[0])) == 1000


def test_without_fill_nothing_changes_and_the_result_is_seeded():
    a, _, _, _ = search(None)
    b, _, _, _ = search(None)
    assert a.fill_effects is None and a.fill_se is None
    np.testing.assert_array_equal(a.effects, b.effects)
    np.testing.assert_array_equal(a.se, b.se)


def test_the_default_explanation_scores_both_channels_within_its_budget():
    import freqrex

    x = make_clip()
    model = Content()
    e = freqrex.explain(x, SR, model, seed=0)
    assert e.options["fill"] == "noise" and e.options["effect_weight"] == 0.125
    assert model.calls == e.queries <= 400
    assert e.search_queries % 2 == 0  # every coalition zeroed and noise-filled
    assert int(e.ranking[0]) == 1000  # the tone the model reads comes first


def test_fill_applies_only_to_the_margin_rule_in_the_fft_space_with_zero_masking():
    import pytest

    from freqrex.errors import ParameterError
    from freqrex.options import ExplainOptions

    assert ExplainOptions().uses_fill
    assert not ExplainOptions(fill="none").uses_fill
    assert not ExplainOptions(space="stft").uses_fill
    assert not ExplainOptions(rule="rex").uses_fill
    assert not ExplainOptions(mask_value=1e-3).uses_fill
    with pytest.raises(ParameterError, match="fill"):
        ExplainOptions(fill="pink")


def test_the_filled_explanation_is_the_same_whatever_the_batch_size():
    import freqrex

    x = make_clip()
    a = freqrex.explain(x, SR, Content(), seed=3, batch_size=5, max_queries=120)
    b = freqrex.explain(x, SR, Content(), seed=3, batch_size=64, max_queries=120)
    np.testing.assert_array_equal(a.ranking, b.ranking)
    np.testing.assert_array_equal(a.responsibility, b.responsibility)
    c = freqrex.explain(x, SR, Content(), seed=3, max_queries=120, fill="none")
    assert c.options["fill"] == "none" and c.queries <= 120


class Largest(Content):
    """Content, remembering the largest batch it was called with."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __call__(self, waves):
        self.largest = max(self.largest, len(waves))
        return super().__call__(waves)


def test_no_model_call_exceeds_the_batch_size():
    # a paired coalition is two waves: a batch holds half as many coalitions, never twice the waves
    # (the model's peak memory is that of one batch); batch_size 1 and odd sizes alike
    import freqrex

    x = make_clip()
    runs = {}
    for b in (1, 5, 64):
        model = Largest()
        runs[b] = freqrex.explain(x, SR, model, seed=3, batch_size=b, max_queries=80)
        assert 1 <= model.largest <= b
        assert model.calls == runs[b].queries <= 80
    np.testing.assert_array_equal(runs[1].ranking, runs[64].ranking)
