"""Frequency spaces: exact reconstruction and agreement with the NumPy reference."""

import numpy as np
import pytest

from freqrex import ParameterError, _core, reference
from freqrex._rng import SplitMix64

from synthetic import make_clip


def random_audio(n, seed=0):
    return (0.5 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("n", [2, 3, 1000, 16001, 480000])
def test_fft_keep_all_reconstructs(n):
    x = random_audio(n)
    s = _core.FrequencySpace(x, space="fft")
    assert s.shape == (1, n // 2 + 1)
    y = s.synthesize(np.ones((1,) + s.shape, bool))
    assert np.abs(y[0] - x).max() <= 1e-5


@pytest.mark.parametrize("n,n_fft,hop", [(480000, 2048, 512), (8000, 256, 128), (1001, 64, 7), (10, 16, 8)])
def test_stft_keep_all_reconstructs(n, n_fft, hop):
    x = random_audio(n, 1)
    s = _core.FrequencySpace(x, space="stft", n_fft=n_fft, hop_length=hop)
    assert s.shape == (1 + n // hop, n_fft // 2 + 1)
    y = s.synthesize(np.ones((1,) + s.shape, bool))
    assert np.abs(y[0] - x).max() <= 1e-5


@pytest.mark.parametrize("space", ["fft", "stft"])
def test_synthesis_agrees_with_reference(space):
    x = make_clip()
    kw = dict(space=space, n_fft=256, hop_length=64)
    a, b = _core.FrequencySpace(x, **kw), reference.FrequencySpace(x, **kw)
    assert a.shape == b.shape
    np.testing.assert_allclose(a.coefficients(), b.coefficients(), atol=1e-8)
    masks = np.random.default_rng(0).random((5,) + a.shape) < 0.4
    np.testing.assert_allclose(a.synthesize(masks), b.synthesize(masks), atol=1e-5)


def test_masking_a_bin_removes_exactly_that_frequency():
    x = make_clip()
    s = _core.FrequencySpace(x, space="fft")
    keep = np.ones((1,) + s.shape, bool)
    keep[0, 0, 2500] = False
    y = s.synthesize(keep)[0]
    spec = np.abs(np.fft.rfft(y))
    assert spec[2500] < 1e-2
    np.testing.assert_allclose(spec[1000], np.abs(np.fft.rfft(x))[1000], rtol=1e-4)


def test_mask_value_and_silence():
    x = random_audio(1000)
    s = _core.FrequencySpace(x, space="fft")
    y = s.synthesize(np.zeros((2,) + s.shape, bool))
    assert np.abs(y).max() < 1e-12
    s = _core.FrequencySpace(x, space="fft", mask_value=1.0)
    y = s.synthesize(np.zeros((1,) + s.shape, bool))[0]
    # A spectrum of real ones is an impulse at sample 0 of height (N/2+1 + N/2 - 1)/N = 1.
    assert y[0] == pytest.approx(1.0, abs=1e-5)


def test_thread_count_does_not_change_synthesis():
    x = random_audio(20000)
    masks = np.random.default_rng(2).random((8, 1, 10001)) < 0.5
    a = _core.FrequencySpace(x, n_threads=1).synthesize(masks)
    b = _core.FrequencySpace(x, n_threads=2).synthesize(masks)
    assert np.array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(space="wavelet"),
        dict(space="stft", n_fft=2),
        dict(space="stft", n_fft=64, hop_length=40),
        dict(space="stft", n_fft=64, hop_length=0),
    ],
)
def test_bad_space_parameters(kwargs):
    with pytest.raises(ParameterError):
        _core.FrequencySpace(random_audio(100), **kwargs)


def test_bad_audio_and_masks():
    with pytest.raises(ParameterError):
        _core.FrequencySpace(np.array([0.0, np.nan], np.float32))
    with pytest.raises(ParameterError):
        _core.FrequencySpace(np.zeros(0, np.float32))
    s = _core.FrequencySpace(random_audio(100))
    with pytest.raises(ParameterError):
        s.synthesize(np.ones((1, 1, 7), bool))


def test_rng_matches_core():
    for seed in [0, 1, 2**63, 2**64 - 1]:
        r = SplitMix64(seed)
        assert [r.next_u64() for _ in range(8)] == _core.splitmix64(seed, 8)
    assert SplitMix64(0).next_u64() == 0xE220A8397B1DCDAF
