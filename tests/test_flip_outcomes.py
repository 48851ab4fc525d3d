"""What a flip returns: k <= 5 never worse than k = 1, failed flips that read right, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest

import freqrex
from freqrex.cli.flip import audibility_line, no_flip_line
from freqrex.manipulation import FlipResult, flip

from synthetic import SR, BandClassifier, make_clip


def _no_worse(one: FlipResult, five: FlipResult) -> None:
    if one.success:
        assert five.success, "k <= 5 lost the flip k = 1 found"
        assert five.snr_db >= one.snr_db - 1e-9, (one.snr_db, five.snr_db)
    assert five.n_changed <= 5 and five.flip_queries <= five.budget


@pytest.mark.parametrize("mode", ["one", "and", "or"])
@pytest.mark.parametrize("strategy", ["magnitude", "random", "tone_scan"])
def test_k_up_to_five_is_never_worse_than_k1_on_a_grid_of_seeds(mode, strategy):
    """Same clip, model, budget and seed: k <= 5 starts from the k = 1 result and keeps it."""
    wins = 0
    for seed in range(4):
        x = make_clip(seed)
        model = BandClassifier(mode)
        one = flip(x, SR, model, k=1, strategy=strategy, budget=50, seed=seed)
        five = flip(x, SR, model, k=5, strategy=strategy, budget=50, seed=seed)
        _no_worse(one, five)
        wins += five.success and not one.success
    if mode == "or" and strategy == "magnitude":
        # both planted tones must go: one bin never flips it, two do
        assert wins >= 1


@pytest.mark.parametrize("mode", ["one", "or"])
def test_k_up_to_five_is_never_worse_than_k1_with_the_causal_strategy(mode):
    for seed in range(2):
        x = make_clip(seed)
        model = BandClassifier(mode)
        e = freqrex.explain(x, SR, model, budget=80, iterations=2, seed=seed)
        for budget in (20, 45):
            _no_worse(flip(x, SR, model, k=1, explanation=e, budget=budget, seed=seed),
                      flip(x, SR, model, k=5, explanation=e, budget=budget, seed=seed))


class Stubborn:
    """Scores that no change of the clip moves: 'b' 0.7 over 'a' 0.2 and 'c' 0.1."""

    class_names = ["a", "b", "c"]
    sample_rate = SR

    def __call__(self, waves):
        return np.tile([0.2, 0.7, 0.1], (len(waves), 1))


def test_a_failed_flip_reports_how_close_it_came_and_writes_no_result_audio(tmp_path):
    x = make_clip(0)
    r = flip(x, SR, Stubborn(), k=2, strategy="magnitude", budget=12)
    assert not r.success and r.n_changed == 0
    assert r.closest_class == 0 and r.closest_name == "a"
    assert r.closest_margin == pytest.approx(0.2 - 0.7)
    line = no_flip_line(r)
    assert "NO FLIP" in line and "'b' 0.500 ahead of 'a'" in line and "no perturbed audio" in line
    out = tmp_path / "f"
    out.mkdir()
    (out / "perturbed.wav").write_bytes(b"stale")  # left by an earlier run: must not look like this result
    r.save(out)
    assert {p.name for p in out.glob("*.wav")} == set() and (out / "flip.json").exists()
    back = FlipResult.load(out)
    assert back.summary() == r.summary() and back.audio.size == 0
    r.save(out, closest_attempt=True)
    assert {p.name for p in out.glob("*.wav")} == {"closest_attempt.wav"}
    back = FlipResult.load(out)
    assert np.array_equal(back.audio, r.audio) and back.closest_margin == r.closest_margin


def test_a_targeted_failed_flip_measures_against_the_target():
    x = make_clip(1)
    r = flip(x, SR, Stubborn(), k=1, strategy="random", budget=5, target=2)
    assert not r.success and r.closest_class == 2 and r.closest_name == "c"
    assert r.closest_margin == pytest.approx(0.1 - 0.7)
    assert "target 'c' 0.600 short" in no_flip_line(r)


def test_a_flip_saves_and_loads_every_audibility_field(tmp_path):
    x = make_clip(2)
    r = flip(x, SR, BandClassifier("one"), k=1, strategy="magnitude", budget=40)
    assert r.success and r.closest_class == r.new_class == 0 and r.closest_margin > 0
    fields = ("quietest_frame_snr_db", "over_threshold_share", "max_excess_db", "art_over_threshold_share",
              "art_max_excess_db", "louder_than_clip_share", "closest_margin", "closest_class", "closest_name")
    for name in fields:
        assert getattr(r, name) is not None, name
    assert r.quietest_frame_snr_db <= r.snr_db + 1e-9
    assert 0 <= r.over_threshold_share <= 1 and 0 <= r.art_over_threshold_share <= 1
    r.save(tmp_path / "f")
    data = json.loads((tmp_path / "f" / "flip.json").read_text())
    assert all(name in data for name in fields)
    assert r.to_dict() == data
    back = FlipResult.load(tmp_path / "f")
    assert back.summary() == r.summary() and np.array_equal(back.audio, r.audio)
    line = audibility_line(r)
    assert f"SNR {r.snr_db:.1f} dB" in line and "ART's" in line and "louder than the clip" in line


def test_a_subtraction_is_tried_no_louder_than_removing_its_bin():
    """The planted 1000 Hz tone must lose most of its energy: a subtraction beyond its removal would
    make the bin loud again (in anti-phase), so the loud retry stops at the removal and finds it."""
    x = make_clip(0)
    r = flip(x, SR, BandClassifier("one"), k=1, strategy="magnitude", budget=50)
    assert r.success and r.change == "subtract" and r.bins.tolist() == [1000]
    X = np.fft.rfft(x.astype(np.float64))
    removal = np.fft.irfft(np.where(np.arange(X.size) == 1000, X, 0), n=x.size)
    removal_snr = 10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum(removal**2))
    assert r.snr_db >= removal_snr - 1e-6


@pytest.mark.parametrize("mode", ["one", "and", "or"])
@pytest.mark.parametrize("strategy", ["magnitude", "random", "tone_scan", "additive"])
def test_k_up_to_five_started_from_k1_is_never_louder(mode, strategy):
    """``flip(k=5, start_from=flip(k=1))``: the k = 1 flip is re-scored first, so k <= 5 keeps it
    whatever its own search finds, at its own budget."""
    for seed in range(3):
        x = make_clip(seed)
        model = BandClassifier(mode)
        one = flip(x, SR, model, k=1, strategy=strategy, budget=40, seed=seed)
        five = flip(x, SR, model, k=5, strategy=strategy, budget=40, seed=seed, start_from=one)
        _no_worse(one, five)
        direct = model(five.audio[None])[0]  # the flip, checked by a direct model call
        assert (int(np.argmax(direct)) != one.original_class) == five.success


def test_start_from_a_loaded_flip_and_the_errors_a_user_can_cause(tmp_path):
    from freqrex.errors import ParameterError

    x = make_clip(0)
    model = BandClassifier("one")
    one = flip(x, SR, model, k=1, strategy="magnitude", budget=40, seed=0)
    assert one.success
    one.save(tmp_path / "one")
    loaded = FlipResult.load(tmp_path / "one")
    five = flip(x, SR, model, k=5, strategy="magnitude", budget=40, seed=0, start_from=loaded)
    assert five.success and five.snr_db >= one.snr_db - 0.01  # the loaded flip's level is its SNR
    with pytest.raises(ParameterError, match="another clip"):
        flip(x[:-100], SR, model, k=5, budget=10, start_from=one)
    with pytest.raises(ParameterError, match="FlipResult"):
        flip(x, SR, model, k=5, budget=10, start_from={"bins": [3]})
    with pytest.raises(ParameterError, match="fft quietest"):
        flip(x, SR, model, k=5, budget=10, space="stft", strategy="magnitude", start_from=one)
    five_bins = flip(x, SR, model, k=5, strategy="magnitude", budget=40, seed=0)
    if five_bins.success and five_bins.bins.size > 1:
        with pytest.raises(ParameterError, match="more than k=1"):
            flip(x, SR, model, k=1, budget=10, start_from=five_bins)
