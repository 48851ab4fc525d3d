"""Promises of `flip` and its searches that a review found broken: each test failed before its fix."""

from __future__ import annotations

import numpy as np
import pytest

import freqrex
from freqrex.errors import ParameterError
from freqrex.manipulation.candidates import Change
from freqrex.manipulation.limit import tone_limit
from freqrex.manipulation.oracle import Oracle
from freqrex.manipulation.perturbation import SpectralClip
from freqrex.manipulation.search import LevelSearch, quietest_flip

SR = 8000
N = 8000  # one second: bin b is b Hz
T = np.arange(N) / SR


def clip() -> np.ndarray:
    rng = np.random.default_rng(1)
    return (0.3 * np.sin(2 * np.pi * 440 * T) + 0.05 * rng.standard_normal(N)).astype(np.float32)


def spectrum(w) -> np.ndarray:
    return np.abs(np.fft.rfft(np.asarray(w, dtype=np.float64), axis=1)) / N


def energy_at(bins):
    """Class 1 wins when the magnitudes at ``bins`` sum above 0.05 (class 0's constant score)."""
    bins = np.asarray(bins)

    def model(w):
        s = spectrum(w)[:, bins].sum(1)
        return np.stack([np.full(len(s), 0.05), s], 1)

    return model


def test_an_explanation_of_another_class_is_refused():
    """Explaining class 1 while the model decides 0 made any change that kept 0 a 'flip'."""
    x = clip()
    model = energy_at([1000, 1500])
    assert int(np.argmax(model(x[None])[0])) == 0
    e = freqrex.explain(x, SR, model, target=1, budget=20, iterations=1, seed=0)
    with pytest.raises(ParameterError, match="decides class 0"):
        freqrex.flip(x, SR, model, explanation=e, budget=10)


def test_unknown_explain_options_are_refused_with_an_explanation_too():
    x = clip()
    model = energy_at([1000])
    e = freqrex.explain(x, SR, model, budget=20, iterations=1, seed=0)
    with pytest.raises(ParameterError, match="fmim"):
        freqrex.flip(x, SR, model, explanation=e, budget=10, strategy="random", fmim=100)


@pytest.mark.parametrize("seed,strategy", [(0, "additive"), (1, "tone_scan"), (1, "random"), (7, "magnitude")])
def test_a_start_found_by_another_seed_or_strategy_is_never_beaten_by_a_louder_flip(seed, strategy):
    """The start's change used to be rebuilt with this search's tone phases, so it might not flip."""
    x = clip()
    ref = sum(np.sin(2 * np.pi * f * T) for f in range(900, 1101))

    def linear(w):
        s = (np.asarray(w, dtype=np.float64) @ ref) / N
        return np.stack([np.full(len(s), 0.03), s], 1)

    first = freqrex.flip(x, SR, linear, k=1, budget=30, seed=1, strategy="additive")
    assert first.success
    again = freqrex.flip(x, SR, linear, k=1, budget=30, seed=seed, strategy=strategy, start_from=first)
    assert again.success and again.snr_db >= first.snr_db - 1e-6  # the SNR of float32 audio
    assert int(np.argmax(linear(again.audio[None])[0])) == 1  # the flip, by a direct model call


def test_a_start_of_several_bins_gives_no_more_than_k():
    x = clip()
    model = energy_at([1000, 1500, 2000, 2500, 3000])
    c = SpectralClip(x, SR, "fft", 2048, 512, {})
    oracle = Oracle(model, 2, 0, None, 60, 16, {})
    start = LevelSearch(c, oracle, Change.of([(1000, 1), (1500, 1)], "start")).attempts([5.0])
    assert start[0].flipped
    singles = iter([Change.of([(b, 1)]) for b in (2000, 2500, 3000, 300, 400, 500, 600, 700)])
    best, _ = quietest_flip(c, oracle, singles, k=2, probe_db=20, min_db=0, max_db=60, tol_db=0.5, initial=start)
    assert best is not None and len(best.change) <= 2 and oracle.used <= 60


@pytest.mark.parametrize("k", [1, 3])
def test_fixed_changes_do_not_depend_on_the_batch_size(k):
    x = (0.3 * np.sin(2 * np.pi * 440 * T) + 0.2 * np.sin(2 * np.pi * 660 * T) + 0.1 * np.sin(2 * np.pi * 880 * T)
         + 0.01 * np.random.default_rng(0).standard_normal(N)).astype(np.float32)
    model = energy_at([440, 660])
    runs = [freqrex.flip(x, SR, model, change="auto", strategy="magnitude", budget=8, batch_size=b, k=k)
            for b in (1, 4, 16, 64)]
    for r in runs[1:]:
        assert (r.success, r.bins.tolist(), r.change, r.flip_queries) == (
            runs[0].success, runs[0].bins.tolist(), runs[0].change, runs[0].flip_queries)


@pytest.mark.parametrize("tol_db", [1.0, 2.0])
def test_the_tone_limit_with_probe_steps_no_wider_than_the_tolerance(tol_db):
    x = clip()
    r = tone_limit(x, SR, energy_at([1000, 1050]), fmin=1000, fmax=1100, step_octaves=0.1, min_snr_db=0,
                   max_snr_db=20, probe_step_db=1.0, tol_db=tol_db)
    assert np.isfinite(r.best_snr_db)  # used to raise a bare RuntimeError (a search beyond its budget)


def test_a_flipping_part_of_at_most_k_tones_is_not_lost(monkeypatch):
    """Refinement stops at a part of <= k tones that flips; that flip must reach the level search
    (it was dropped with every part of more than one tone, and the search started over)."""
    import freqrex.manipulation.additive as additive

    x = clip()
    band = slice(1000, 3500)
    s0 = float(spectrum(x[None])[0, band].sum())

    def wide(w):
        s = spectrum(w)[:, band].sum(1)
        return np.stack([np.full(len(s), s0 * 1.001), s], 1)

    handed = []
    level_search = additive.quietest_flip

    def spy(*args, **kwargs):
        handed.extend(a for a in kwargs["initial"] if a.flipped)
        return level_search(*args, **kwargs)

    monkeypatch.setattr(additive, "quietest_flip", spy)
    r = freqrex.flip(x, SR, wide, k=8, budget=60, seed=0)
    spec = r.vulnerability
    small = (spec.tones > 1) & (spec.tones <= 8) & (spec.cut > spec.margin)  # parts of 2-8 tones that flipped
    assert small.any()
    assert any(len(a.change) > 1 for a in handed)
    assert r.success and r.snr_db >= max(a.level_db for a in handed) - 1e-6
    assert int(np.argmax(wide(r.audio[None])[0])) == 1


def test_a_one_class_model_is_a_model_error_in_every_search():
    """A model with one output (a detector's score) crashed flip with "zero-size array to reduction
    operation" (an internal error on the command line): there is no other class to flip to."""
    import freqrex
    from freqrex.errors import ModelError
    from freqrex.manipulation import vulnerability
    from synthetic import SR, make_clip

    x = make_clip()

    def one(waves):
        return np.abs(waves).mean(axis=1, keepdims=True)

    for run in (lambda: freqrex.flip(x, SR, one, budget=20),
                lambda: freqrex.flip(x, SR, one, budget=20, space="stft"),
                lambda: freqrex.flip(x, SR, one, budget=20, strategy="random"),
                lambda: vulnerability(x, SR, one, budget=20),
                lambda: freqrex.tone_limit(x, SR, one)):
        with pytest.raises(ModelError, match="one score per clip"):
            run()
