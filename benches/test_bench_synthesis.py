"""Mutant synthesis: a batch of masks to waveforms, Rust core vs NumPy reference."""

import numpy as np
import pytest

from freqrex import _core, reference

SR = 16000
N = 30 * SR  # a 30 s clip: 240,001 fft bins


@pytest.fixture(scope="module")
def clip():
    return (0.3 * np.random.default_rng(0).standard_normal(N)).astype(np.float32)


@pytest.fixture(scope="module")
def fft_masks():
    return np.random.default_rng(1).random((32, 1, N // 2 + 1)) < 0.5


@pytest.mark.benchmark(group="synthesis-fft")
def test_synth_rust(benchmark, record, clip, fft_masks):
    space = _core.FrequencySpace(clip, space="fft")
    out = benchmark.pedantic(space.synthesize, args=(fft_masks,), rounds=7, warmup_rounds=1)
    assert out.shape == (32, N)
    record("synth_rust", benchmark)


@pytest.mark.benchmark(group="synthesis-fft")
def test_synth_numpy(benchmark, record, clip, fft_masks):
    space = reference.FrequencySpace(clip, space="fft")
    out = benchmark.pedantic(space.synthesize, args=(fft_masks,), rounds=5, warmup_rounds=1)
    assert out.shape == (32, N)
    record("synth_numpy", benchmark)


@pytest.mark.benchmark(group="synthesis-fft")
def test_bare_irfft(benchmark, record, clip):
    spectrum = np.fft.rfft(clip.astype(np.float64))
    benchmark.pedantic(np.fft.irfft, args=(spectrum,), kwargs={"n": N}, rounds=20, warmup_rounds=2)
    record("bare_irfft_s", benchmark)


@pytest.fixture(scope="module")
def stft_masks(clip):
    shape = (1 + N // 512, 1025)
    rng = np.random.default_rng(2)
    masks = np.ones((8,) + shape, bool)
    # A typical search mutant: a few boxes masked.
    for m in masks:
        for _ in range(3):
            t0, f0 = rng.integers(0, shape[0] - 100), rng.integers(0, shape[1] - 200)
            m[t0 : t0 + 100, f0 : f0 + 200] = False
    return masks


@pytest.mark.benchmark(group="synthesis-stft")
def test_stft_rust(benchmark, record, clip, stft_masks):
    space = _core.FrequencySpace(clip, space="stft", n_fft=2048, hop_length=512)
    benchmark.pedantic(space.synthesize, args=(stft_masks,), rounds=5, warmup_rounds=1)
    record("stft_rust", benchmark)


@pytest.mark.benchmark(group="synthesis-stft")
def test_stft_numpy(benchmark, record, clip, stft_masks):
    space = reference.FrequencySpace(clip, space="stft", n_fft=2048, hop_length=512)
    benchmark.pedantic(space.synthesize, args=(stft_masks,), rounds=3, warmup_rounds=1)
    record("stft_numpy", benchmark)
