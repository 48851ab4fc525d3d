"""The exhaustive one-tone limit: it finds the trigger band's known level to its tolerance, spends at
most its stated queries in few model calls, and the level it reports flips by a direct model call."""

from __future__ import annotations

import math

import numpy as np
import pytest

from freqrex.errors import ParameterError
from freqrex.manipulation.limit import tone_grid, tone_limit
from freqrex.manipulation.perturbation import unit_phase

from test_additive import BAND, N, SR, ToneTrigger, music_like


def test_finds_the_trigger_band_and_its_level():
    x = music_like()
    model = ToneTrigger(x, snr=35.0)
    lim = tone_limit(x, SR, model, fmin=100.0, step_octaves=1 / 24, tol_db=0.25)
    inside = (lim.frequencies_hz >= BAND[0]) & (lim.frequencies_hz <= BAND[1])
    assert inside.any()
    # only tones in the trigger band flip; each at the planted 35 dB, to the tolerance
    assert np.all(np.isnan(lim.flip_snr_db[~inside]))
    assert np.all(np.abs(lim.flip_snr_db[inside] - 35.0) <= 0.25 + 1e-6)
    assert BAND[0] <= lim.best_frequency_hz <= BAND[1]
    assert lim.share_flipping(30.0) == pytest.approx(inside.mean())
    steps = math.ceil(math.log2(10.0 / 0.25))
    assert lim.queries <= 1 + lim.frequencies_hz.size * (7 + steps)
    assert model.evaluated == lim.queries
    # the original, every tone at 7 probe levels (batches of 64), then one call per bisection step
    assert model.calls <= 1 + math.ceil(7 * lim.frequencies_hz.size / 64) + steps


def test_reported_level_flips_by_a_direct_model_call():
    x = music_like(1)
    model = ToneTrigger(x, snr=30.0)
    lim = tone_limit(x, SR, model, fmin=1000.0, fmax=1500.0, step_octaves=1 / 48)
    i = int(np.nanargmax(lim.flip_snr_db))
    b = int(round(lim.frequencies_hz[i] * N / SR))
    coef = np.fft.rfft(x.astype(np.float64))
    unit = np.zeros_like(coef)
    unit[b] = unit_phase(coef[b:b + 1])[0]
    tone = np.fft.irfft(unit, n=N)
    e_x, e_t = float(np.dot(x.astype(np.float64), x)), float(np.dot(tone, tone))
    a = math.sqrt(e_x / (10 ** (lim.flip_snr_db[i] / 10) * e_t))
    y = (x + a * tone).astype(np.float32)
    assert np.argmax(model(y[None])[0]) == 1
    # a little quieter than the reported limit (beyond the tolerance) does not flip
    a2 = math.sqrt(e_x / (10 ** ((lim.flip_snr_db[i] + 1.0) / 10) * e_t))
    assert np.argmax(model((x + a2 * tone).astype(np.float32)[None])[0]) == 0


def test_same_result_whatever_the_batch_size():
    x = music_like(2)
    a = tone_limit(x, SR, ToneTrigger(x, 40.0), fmin=800.0, fmax=2000.0, batch_size=1)
    b = tone_limit(x, SR, ToneTrigger(x, 40.0), fmin=800.0, fmax=2000.0, batch_size=64)
    np.testing.assert_array_equal(a.flip_snr_db, b.flip_snr_db)
    assert a.queries == b.queries


def test_grid_is_log_spaced_and_inside_the_spectrum():
    bins = tone_grid(30 * 16000, 16000, 27.5, 8000.0, 1 / 12)
    hz = bins * 16000 / (30 * 16000)
    assert hz[0] == pytest.approx(27.5, abs=0.04) and hz[-1] < 8000
    ratios = hz[1:] / hz[:-1]
    assert np.allclose(ratios, 2 ** (1 / 12), rtol=2e-3)
    assert bins.size == 99


@pytest.mark.parametrize("kw", [dict(fmin=0.0), dict(fmin=500.0, fmax=100.0), dict(step_octaves=0.0),
                                dict(min_snr_db=30.0, max_snr_db=10.0), dict(tol_db=0.0), dict(batch_size=0), dict(probe_step_db=0.0),
                                dict(target=0), dict(target=7), dict(fmax=float("nan"))])
def test_bad_options_raise_our_error(kw):
    x = music_like()
    with pytest.raises(ParameterError):
        tone_limit(x, SR, ToneTrigger(x), **kw)


def test_untouchable_model_reports_no_limit():
    x = music_like()
    lim = tone_limit(x, SR, lambda w: np.tile([0.9, 0.1], (len(w), 1)), fmin=200.0, fmax=400.0)
    assert lim.best_snr_db is None and lim.best_frequency_hz is None
    assert np.all(np.isnan(lim.flip_snr_db))
    assert lim.queries == 1 + 7 * lim.frequencies_hz.size
    d = lim.to_dict()
    assert d["best_snr_db"] is None and all(v is None for v in d["flip_snr_db"])


class LoudFitsBetter:
    """Flips only for a tone at 1000 Hz between 20 and 40 dB SNR: a louder tone restores the class
    (a decision not monotone in the level, as madmom's key CNN shows)."""

    class_names = ["a", "b"]

    def __init__(self, clip):
        x = np.asarray(clip, dtype=np.float64)
        self.e = float(np.dot(x, x))
        self.base = np.abs(np.fft.rfft(x))[1000]

    def __call__(self, waves):
        mag = np.abs(np.fft.rfft(np.asarray(waves, dtype=np.float64), axis=1))[:, 1000]
        # the tone's SNR from its added magnitude (amplitude a*N/2 per bin, energy a^2 N / 2)
        added = np.maximum(mag - self.base, 1e-12)
        snr = 10 * np.log10(self.e / (2 * added ** 2 / N))
        p = ((snr >= 20) & (snr <= 40)).astype(float)
        return np.stack([1 - 0.5 * p - 0.25, 0.5 * p + 0.25], 1)


def test_a_quiet_flip_that_loud_tones_hide_is_found():
    x = music_like()
    lim = tone_limit(x, SR, LoudFitsBetter(x), fmin=1000.0, fmax=1100.0, step_octaves=1 / 96)
    i = int(np.argmin(np.abs(lim.frequencies_hz - 1000.0)))
    assert lim.frequencies_hz[i] == pytest.approx(1000.0)
    assert lim.flip_snr_db[i] == pytest.approx(40.0, abs=0.5)
    assert np.isnan(np.delete(lim.flip_snr_db, i)).all()


def test_held_waveforms_respect_the_byte_cap_and_change_nothing(monkeypatch):
    """Held tone waveforms only save re-synthesis: capped at a few, the limit is the same, and no more
    than the cap are ever held (uncapped, every tone of a fine grid on a long clip was held: gigabytes)."""
    from freqrex.manipulation import limit
    from freqrex.manipulation.perturbation import SpectralClip

    held = []
    original = SpectralClip.held_waveform

    def spy(self, token, flat, d):
        wave = original(self, token, flat, d)
        held.append((len(self._held), self.held_waveforms))
        return wave

    monkeypatch.setattr(SpectralClip, "held_waveform", spy)
    x = music_like()
    kw = dict(fmin=100.0, step_octaves=1 / 24, tol_db=0.25)
    free = tone_limit(x, SR, ToneTrigger(x, snr=35.0), **kw)
    n_tones = free.frequencies_hz.size
    assert n_tones > 3 and max(h for h, _ in held) == n_tones  # the small clip: every tone held
    held.clear()
    monkeypatch.setattr(limit, "HELD_BYTES", 3 * 8 * N)  # three clips' worth of float64
    capped = tone_limit(x, SR, ToneTrigger(x, snr=35.0), **kw)
    assert max(h for h, _ in held) == 3 and {cap for _, cap in held} == {3}
    np.testing.assert_array_equal(capped.flip_snr_db, free.flip_snr_db)
    np.testing.assert_array_equal(capped.frequencies_hz, free.frequencies_hz)
    assert capped.queries == free.queries


def test_held_tones_fit_the_byte_budget():
    from freqrex.manipulation.limit import HELD_BYTES, held_tones

    n = 30 * 16000
    assert held_tones(99, n, 16) == 99  # the default grid on 30 s at 16 kHz: all held (380 MB)
    for step in (0.01, 0.001):
        tones = tone_grid(n, 16000, 27.5, 8000.0, step).size
        assert tones > 800
        assert held_tones(tones, n, 16) * 8 * n <= HELD_BYTES  # was tones * 3.84 MB: 3.1 GB, 30.7 GB
    assert held_tones(5, 10 ** 9, 16) == 1  # a clip longer than the budget: one at a time
    assert held_tones(5, 1000, 16) == 16  # never below the clip's default
