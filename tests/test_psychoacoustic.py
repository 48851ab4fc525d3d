"""Tests of freqrex.psychoacoustic: the MPEG-1 model 1 masking threshold (Qin et al. 2019)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import freqrex.psychoacoustic as pa

SR = 16000
N_FFT = 2048
BIN_HZ = SR / N_FFT


def terhardt(f_hz):
    k = np.asarray(f_hz, dtype=float) / 1000.0
    return 3.64 * k**-0.8 - 6.5 * np.exp(-0.6 * (k - 3.3) ** 2) + 1e-3 * k**4


def tone(freq, amp, seconds=1.0, sr=SR, fade_s=0.02):
    """A sine with raised-cosine fades, so clip edges do not splatter."""
    t = np.arange(int(sr * seconds)) / sr
    ramp = np.clip(np.minimum(t, t[::-1]) / fade_s, 0.0, 1.0)
    return amp * np.sin(2 * np.pi * freq * t) * (0.5 - 0.5 * np.cos(np.pi * ramp))


def bin_of(hz):
    return int(round(hz / BIN_HZ))


def istft(spec, n_fft, hop, length):
    """Weighted overlap-add inverse of the freqrex STFT convention."""
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    n_frames = spec.shape[0]
    total = (n_frames - 1) * hop + n_fft
    out = np.zeros(total)
    norm = np.zeros(total)
    frames = np.fft.irfft(spec, n=n_fft, axis=1)
    for t in range(n_frames):
        out[t * hop : t * hop + n_fft] += frames[t] * w
        norm[t * hop : t * hop + n_fft] += w * w
    half = n_fft // 2
    return out[half : half + length] / norm[half : half + length]


@pytest.fixture(scope="module")
def loud_tone():
    return tone(1000.0, 0.5)


@pytest.fixture(scope="module")
def loud_threshold(loud_tone):
    return pa.masking_threshold(loud_tone, SR)


# -- (a) absolute threshold of hearing --------------------------------------------


def test_ath_matches_terhardt():
    f = np.array([50.0, 100.0, 440.0, 1000.0, 2500.0, 3300.0, 8000.0, 12000.0, 16000.0])
    np.testing.assert_allclose(pa.absolute_threshold_db(f), terhardt(f), rtol=0, atol=1e-12)
    assert pa.absolute_threshold_db(1000.0) == pytest.approx(3.369, abs=1e-3)
    assert isinstance(pa.absolute_threshold_db(1000.0), float)


def test_ath_shape_of_curve():
    f = np.linspace(20.0, 20000.0, 20000)
    ath = pa.absolute_threshold_db(f)
    assert 3000.0 <= f[np.argmin(ath)] <= 4000.0
    assert ath.min() < -4.0
    assert pa.absolute_threshold_db(20.0) > 70.0
    assert pa.absolute_threshold_db(18000.0) > 90.0
    assert pa.absolute_threshold_db(1000.0) < 10.0


def test_ath_clipped_below_20_hz():
    low = pa.absolute_threshold_db(np.array([0.0, 1.0, 10.0, 20.0]))
    assert np.all(np.isfinite(low))
    np.testing.assert_allclose(low, terhardt(20.0))
    with pytest.raises(ValueError):
        pa.absolute_threshold_db(-5.0)


# -- (b) Bark scale ---------------------------------------------------------------


def test_bark_known_values_and_monotone():
    assert pa.bark(1000.0) == pytest.approx(8.5, abs=0.1)
    assert pa.bark(0.0) == 0.0
    f = np.linspace(0.0, 24000.0, 5000)
    z = pa.bark(f)
    assert np.all(np.diff(z) > 0)
    expected = 13 * np.arctan(0.00076 * 4000.0) + 3.5 * np.arctan((4000.0 / 7500.0) ** 2)
    assert pa.bark(4000.0) == pytest.approx(expected)
    assert 24.0 < pa.bark(20000.0) < 26.0


# -- PSD normalisation ------------------------------------------------------------


def test_psd_peak_is_96_db_and_offset_is_reusable(loud_tone):
    spec = pa.stft(loud_tone)
    psd, offset = pa.power_spectrum_db(spec, N_FFT)
    assert psd.max() == pytest.approx(96.0)
    # a 1 kHz tone of amplitude 0.5 is 6 dB below full scale: offset = full-scale offset + 6 dB
    assert offset == pytest.approx(pa.FULL_SCALE_OFFSET_DB + 20 * np.log10(2), abs=1e-6)
    quieter, offset2 = pa.power_spectrum_db(spec * 0.1, N_FFT)
    np.testing.assert_allclose(quieter, psd, atol=1e-9)  # per-clip normalisation
    assert offset2 == pytest.approx(offset + 20.0)
    same_scale, offset3 = pa.power_spectrum_db(spec * 0.1, N_FFT, reference=offset)
    assert offset3 == offset
    assert same_scale.max() == pytest.approx(76.0)


def test_full_scale_sine_reads_96_db():
    t = np.arange(SR) / SR
    sine = np.sin(2 * np.pi * 1000.0 * t)  # 1 kHz is a bin centre at 16 kHz / 2048
    psd, _ = pa.power_spectrum_db(pa.stft(sine), N_FFT, reference=pa.FULL_SCALE_OFFSET_DB)
    assert psd[5].max() == pytest.approx(96.0, abs=1e-6)


# -- (c) masking by a loud tone ---------------------------------------------------


def test_loud_tone_masks_its_neighbourhood(loud_threshold):
    mt = loud_threshold
    mid = mt.threshold_db.shape[0] // 2
    thr = mt.threshold_db[mid]
    assert mt.threshold_db.shape == (1 + SR // 512, N_FFT // 2 + 1)
    np.testing.assert_allclose(mt.frequencies, np.arange(N_FFT // 2 + 1) * BIN_HZ)
    k11, k4 = bin_of(1100.0), bin_of(4000.0)
    assert thr[k11] > mt.ath_db[k11] + 60.0
    assert thr[k11] > thr[k4] + 40.0
    assert thr[bin_of(1000.0)] > thr[k11]  # peak of the masking curve at the masker
    assert thr[bin_of(900.0)] > mt.ath_db[bin_of(900.0)] + 40.0  # lower slope too
    assert np.all(thr >= mt.ath_db - 1e-9)  # never below the threshold in quiet
    np.testing.assert_allclose(thr[k4], mt.ath_db[k4], atol=0.5)  # out of reach: ATH


def test_quiet_tone_is_masked_but_audible_alone(loud_tone):
    quiet = tone(1100.0, 0.5 * 10 ** (-30 / 20))  # 30 dB below the masker
    margin, inaudible = pa.perturbation_margin_db(loud_tone, loud_tone + quiet, SR)
    assert inaudible
    assert margin.min() > 5.0

    silence = np.zeros_like(quiet)
    margin_alone, inaudible_alone = pa.perturbation_margin_db(silence, quiet, SR)
    assert not inaudible_alone
    # Alone, it sits well above the threshold in quiet (the silence offset is used).
    psd, _ = pa.power_spectrum_db(pa.stft(quiet), N_FFT, reference=pa.FULL_SCALE_OFFSET_DB)
    ath = pa.absolute_threshold_db(1100.0) + pa.ATH_OFFSET_DB
    assert psd[:, bin_of(1100.0)].max() > ath + 40.0
    assert margin_alone.min() < -40.0


# -- (d) silence ------------------------------------------------------------------


def test_silence_threshold_is_the_ath():
    mt = pa.masking_threshold(np.zeros(4000), SR)
    assert mt.offset_db == pytest.approx(pa.FULL_SCALE_OFFSET_DB)
    assert np.all(np.isfinite(mt.threshold_db)) and np.all(np.isfinite(mt.psd_db))
    np.testing.assert_allclose(mt.threshold_db, np.broadcast_to(mt.ath_db, mt.threshold_db.shape))
    expected = pa.absolute_threshold_db(mt.frequencies) + pa.ATH_OFFSET_DB
    np.testing.assert_allclose(mt.ath_db, expected)
    margin, inaudible = pa.perturbation_margin_db(np.zeros(4000), np.zeros(4000), SR)
    assert inaudible and np.all(margin == np.inf)


# -- (e) STFT convention ----------------------------------------------------------


@pytest.mark.parametrize(
    "n, n_fft, hop",
    [(16000, 2048, 512), (12345, 2048, 512), (1001, 256, 64), (777, 512, 256), (5, 16, 8)],
)
def test_stft_inverts_by_weighted_overlap_add(n, n_fft, hop):
    x = np.random.default_rng(n).standard_normal(n)
    spec = pa.stft(x, n_fft=n_fft, hop_length=hop)
    assert spec.shape == (1 + n // hop, n_fft // 2 + 1)
    assert spec.dtype == np.complex128
    np.testing.assert_allclose(istft(spec, n_fft, hop, n), x, rtol=0, atol=1e-10)


def test_stft_frame_definition():
    x = np.random.default_rng(1).standard_normal(3000)
    n_fft, hop = 512, 128
    spec = pa.stft(x, n_fft=n_fft, hop_length=hop)
    padded = np.concatenate([np.zeros(n_fft // 2), x, np.zeros(n_fft)])
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    for t in (0, 7, spec.shape[0] - 1):
        np.testing.assert_allclose(spec[t], np.fft.rfft(w * padded[t * hop : t * hop + n_fft]), atol=1e-9)


def test_stft_rejects_bad_input():
    with pytest.raises(ValueError):
        pa.stft(np.zeros(0))
    with pytest.raises(ValueError):
        pa.stft(np.array([0.0, np.nan]))
    with pytest.raises(ValueError):
        pa.stft(np.zeros((2, 100)))
    with pytest.raises(ValueError):
        pa.stft(np.zeros(100), n_fft=64, hop_length=40)


# -- (f) SNR ----------------------------------------------------------------------


def test_snr_db_known_values():
    x = np.ones(1000)
    assert pa.snr_db(x, 1.1 * x) == pytest.approx(20.0)
    assert pa.snr_db(x, x) == math.inf
    s = np.sin(np.linspace(0, 100, 5000))
    noise = np.random.default_rng(0).standard_normal(5000)
    noise *= np.sqrt(np.sum(s**2) / np.sum(noise**2)) / 10 ** (30 / 20)  # exactly 30 dB
    assert pa.snr_db(s, s + noise) == pytest.approx(30.0)
    assert pa.snr_db(np.zeros(10), np.ones(10)) == -math.inf
    with pytest.raises(ValueError):
        pa.snr_db(np.ones(3), np.ones(4))


# -- (g) perturbation margin ------------------------------------------------------


def test_tiny_perturbation_under_tone_is_inaudible(loud_tone):
    margin, inaudible = pa.perturbation_margin_db(loud_tone, loud_tone * 1.001, SR)
    assert inaudible
    assert margin.shape == (1 + SR // 512,)
    assert np.all(margin > 30.0)


def test_loud_noise_perturbation_is_audible(loud_tone):
    noise = 0.05 * np.random.default_rng(3).standard_normal(loud_tone.size)
    margin, inaudible = pa.perturbation_margin_db(loud_tone, loud_tone + noise, SR)
    assert not inaudible
    assert np.all(margin < 0)
    assert margin.min() < -40.0


def test_identical_signals_have_infinite_margin(loud_tone):
    margin, inaudible = pa.perturbation_margin_db(loud_tone, loud_tone.copy(), SR)
    assert inaudible and np.all(np.isinf(margin))


def test_frame_selection(loud_tone):
    noise = np.zeros_like(loud_tone)
    noise[8000:8200] = 0.01 * np.random.default_rng(4).standard_normal(200)
    full, _ = pa.perturbation_margin_db(loud_tone, loud_tone + noise, SR)
    some, _ = pa.perturbation_margin_db(loud_tone, loud_tone + noise, SR, frames=[16, 3, -1])
    np.testing.assert_allclose(some, full[[16, 3, -1]])
    mask = np.zeros(full.size, dtype=bool)
    mask[[2, 15, 16]] = True
    masked, _ = pa.perturbation_margin_db(loud_tone, loud_tone + noise, SR, frames=mask)
    np.testing.assert_allclose(masked, full[mask])
    assert np.isinf(full[3]) and np.isfinite(full[16])  # only frames the change reaches
    with pytest.raises(ValueError):
        pa.perturbation_margin_db(loud_tone, loud_tone, SR, frames=[full.size])
    with pytest.raises(ValueError):
        pa.perturbation_margin_db(loud_tone, loud_tone[:-1], SR)
