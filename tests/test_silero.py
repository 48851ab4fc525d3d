"""Silero VAD as a freqrex model (``freqrex.models.silero``).

Needs the ``silero-vad`` package for its weights (``pip install --no-deps
silero-vad``); skipped otherwise.  Speech comes from ``espeak-ng -w`` when it is
on PATH (nothing generated is kept), and always from a small formant
synthesiser below (voiced vowels with a falling pitch, noise-burst consonants,
pauses), so the test does not depend on a shipped recording.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
from scipy.signal import butter, lfilter, resample_poly

import freqrex
from freqrex.models import load_model
from freqrex.models import silero as silero_mod

if silero_mod.find_model_file() is None:
    pytest.skip("silero-vad is not installed (pip install --no-deps silero-vad)", allow_module_level=True)

SR = 16000


def _resonator(x, f, bw):
    r = np.exp(-np.pi * bw / SR)
    th = 2 * np.pi * f / SR
    return lfilter([1 - r], [1, -2 * r * np.cos(th), r * r], x)


def speechlike(seconds=3.0, seed=0):
    """Formant-synthesised syllables: noise-burst consonant + voiced vowel, ~4 per second."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    out = np.zeros(n)
    vowels = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480),
              (570, 840, 2410), (440, 1020, 2240), (660, 1720, 2410)]
    b, a = butter(2, [2500 / (SR / 2), 7000 / (SR / 2)], "band")
    pos, f0 = int(0.1 * SR), 130.0
    while pos < n - SR // 10:
        length = int(rng.uniform(0.03, 0.08) * SR)
        burst = lfilter(b, a, rng.standard_normal(length)) * np.hanning(length) * 0.3
        out[pos:pos + length] += burst[: n - pos]
        pos += length
        length = int(rng.uniform(0.12, 0.25) * SR)
        if pos + length > n:
            break
        t = np.arange(length) / SR
        pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
        pulses = np.diff(np.floor(np.cumsum(pitch / SR)), prepend=0.0)
        source = lfilter([1.0], [1, -0.95], pulses) + 0.02 * rng.standard_normal(length)
        formants = vowels[rng.integers(len(vowels))]
        voiced = sum(_resonator(source, f, bw) * g for f, bw, g in zip(formants, (90, 110, 150), (1, 0.6, 0.3)))
        env = np.minimum(1, np.minimum(t / 0.02, (t[-1] - t) / 0.03))
        out[pos:pos + length] += voiced * env
        pos += length
        if rng.random() < 0.3:
            pos += int(rng.uniform(0.1, 0.25) * SR)
        f0 = max(90.0, f0 - rng.uniform(0, 8))
    out += 0.001 * rng.standard_normal(n)
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


def espeak(tmp_path, text="The quick brown fox jumps over the lazy dog."):
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    import soundfile as sf

    path = tmp_path / "speech.wav"
    subprocess.run([exe, "-w", str(path), text], check=True, capture_output=True, timeout=60)
    x, rate = sf.read(str(path), dtype="float32")
    return resample_poly(x, SR, rate).astype(np.float32) if rate != SR else x


@pytest.fixture(scope="module")
def vad():
    return load_model("silero_vad")


def test_load_model_and_attributes(vad):
    assert isinstance(vad, silero_mod.SileroVAD)
    assert vad.sample_rate == 16000 and vad.class_names == ["non-speech", "speech"]
    assert vad.n_classes == 2 and vad.output == "probabilities"
    assert "silero_vad" in freqrex.models.BUILTIN_MODELS


def others(n, seed=1):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    return {
        "silence": np.zeros(n, np.float32),
        "white noise": (0.05 * rng.standard_normal(n)).astype(np.float32),
        "tone": (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
    }


def test_synthetic_speech_scores_above_silence_and_noise(vad):
    speech = np.stack([speechlike(3.0, seed) for seed in range(3)])
    p_speech = vad(speech)[:, 1]
    rest = others(speech.shape[1])
    p_rest = vad(np.stack(list(rest.values())))[:, 1]
    assert p_speech.min() > 0.5, p_speech
    assert p_rest.max() < 0.1, dict(zip(rest, p_rest))
    assert p_speech.min() > p_rest.max() + 0.4


def test_espeak_speech_scores_above_silence_and_noise(vad, tmp_path):
    x = espeak(tmp_path)
    p = vad(x[None])[0, 1]
    p_rest = vad(np.stack(list(others(x.size).values())))[:, 1]
    assert p > 0.5 and p > p_rest.max() + 0.4


def test_scores_are_probabilities(vad):
    s = vad(np.stack([speechlike(1.0), np.zeros(SR, np.float32)]))
    assert s.shape == (2, 2) and s.dtype == np.float32
    assert np.all((s >= 0) & (s <= 1)) and np.allclose(s.sum(axis=1), 1, atol=1e-6)


def test_batch_equals_one_by_one(vad):
    rng = np.random.default_rng(3)
    waves = np.stack([speechlike(2.0, 5), np.zeros(2 * SR, np.float32),
                      (0.1 * rng.standard_normal(2 * SR)).astype(np.float32), speechlike(2.0, 6) * 0.1])
    together = vad(waves)
    alone = np.concatenate([vad(w[None]) for w in waves])
    assert np.array_equal(together, alone)
    small = silero_mod.SileroVAD(batch_size=3)  # batches split across calls
    assert np.array_equal(small(waves), together)


def test_thirty_second_clip(vad):
    x = np.concatenate([speechlike(10.0, 1), np.zeros(10 * SR, np.float32), speechlike(10.0, 2)])
    assert x.size == 480000
    chunks = vad.chunk_probabilities(x[None])
    assert chunks.shape == (1, 938)  # 480000 / 512 = 937.5: the last chunk zero-padded
    s = vad(x[None])
    assert np.isclose(s[0, 1], chunks.astype(np.float64).mean(), atol=1e-6)
    assert 0.2 < s[0, 1] < 0.9  # two thirds speech, one third silence


def test_odd_lengths_and_1d_input(vad):
    x = speechlike(1.0)[:5000]
    assert vad.chunk_probabilities(x).shape == (1, 10)
    assert np.array_equal(vad(x), vad(x[None]))


def test_matches_the_package_onnx_wrapper(vad):
    torch = pytest.importorskip("torch", reason="the package's own wrapper needs torch")
    threads = torch.get_num_threads()
    try:
        utils = pytest.importorskip("silero_vad.utils_vad")
    finally:  # silero_vad sets torch's threads to 1 when imported: later tests' models would run otherwise
        torch.set_num_threads(threads)
    waves = np.stack([speechlike(2.0, 7), (0.05 * np.random.default_rng(0).standard_normal(2 * SR)).astype(np.float32)])
    waves = waves[:, : 2 * SR - 100]  # not a whole number of chunks
    ref = utils.OnnxWrapper(silero_mod.find_model_file(), force_onnx_cpu=True)
    expected = ref.audio_forward(torch.from_numpy(waves.copy()), 16000).numpy()
    assert np.array_equal(vad.chunk_probabilities(waves), expected)


def test_errors(vad, tmp_path, monkeypatch):
    with pytest.raises(freqrex.ParameterError):
        vad(np.zeros((0, 10), np.float32))
    with pytest.raises(freqrex.ParameterError):
        vad(np.full((1, 600), np.nan, np.float32))
    with pytest.raises(freqrex.ModelError, match="not found"):
        silero_mod.SileroVAD(tmp_path / "missing.onnx")
    with pytest.raises(freqrex.ParameterError):
        silero_mod.SileroVAD(batch_size=0)
    monkeypatch.setattr(silero_mod, "find_model_file", lambda: None)
    with pytest.raises(freqrex.ModelError, match="pip install --no-deps silero-vad"):
        load_model("silero_vad")
