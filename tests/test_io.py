"""Tests of freqrex.io: loading, resampling, fitting and writing audio."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from freqrex.errors import AudioFileError, ParameterError
from freqrex.io import DEMO_CLIP_PATH, demo_clip, fit_length, load_audio, resample, save_wav


def tone(freq, sr, seconds=1.0, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x, sr):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)]


# -- load_audio ------------------------------------------------------------

@pytest.mark.parametrize(
    "ext, fmt, subtype, atol",
    [
        ("wav", "WAV", "FLOAT", 0.0),
        ("wav", "WAV", "PCM_16", 1 / 32768),
        ("flac", "FLAC", "PCM_16", 1 / 32768),
        ("flac", "FLAC", "PCM_24", 1 / 2**23),
    ],
)
def test_lossless_round_trip(tmp_path, ext, fmt, subtype, atol):
    x = tone(440, 16000, 0.5)
    path = tmp_path / f"a.{ext}"
    sf.write(path, x, 16000, format=fmt, subtype=subtype)
    y, sr = load_audio(path)
    assert sr == 16000 and y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, x, atol=atol + 1e-7)


@pytest.mark.parametrize(
    "ext, fmt, subtype, sr",
    [("ogg", "OGG", "VORBIS", 16000), ("opus", "OGG", "OPUS", 16000), ("mp3", "MP3", "MPEG_LAYER_III", 16000)],
)
def test_lossy_formats_load(tmp_path, ext, fmt, subtype, sr):
    x = tone(440, sr, 1.0)
    path = tmp_path / f"a.{ext}"
    sf.write(path, x, sr, format=fmt, subtype=subtype)
    y, rate = load_audio(path)
    assert rate == sr and y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - len(x)) < 0.1 * sr  # codecs may add priming/padding samples
    assert abs(peak_hz(y, rate) - 440) < 5
    ratio = np.sqrt(np.mean(y**2)) / np.sqrt(np.mean(x**2))
    assert 0.5 < ratio < 1.5


def test_stereo_is_averaged_to_mono(tmp_path):
    left = np.full(1000, 0.5, dtype=np.float32)
    right = np.full(1000, -0.25, dtype=np.float32)
    path = tmp_path / "s.wav"
    sf.write(path, np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    y, sr = load_audio(path)
    assert y.shape == (1000,) and sr == 8000
    np.testing.assert_allclose(y, 0.125, atol=1e-7)
    both, _ = load_audio(path, mono=False)
    assert both.shape == (2, 1000)
    np.testing.assert_allclose(both[0], 0.5)
    np.testing.assert_allclose(both[1], -0.25)


def test_offset_and_duration(tmp_path):
    x = np.arange(8000, dtype=np.float32) / 8000
    path = tmp_path / "ramp.wav"
    sf.write(path, x, 8000, subtype="FLOAT")
    y, _ = load_audio(path, offset=0.25, duration=0.5)
    np.testing.assert_array_equal(y, x[2000:6000])
    tail, _ = load_audio(path, offset=0.75, duration=10)
    np.testing.assert_array_equal(tail, x[6000:])
    with pytest.raises(AudioFileError):
        load_audio(path, offset=2.0)


def test_resampling_keeps_tone_frequency(tmp_path):
    path = tmp_path / "t.wav"
    sf.write(path, tone(1000, 44100, 1.0), 44100, subtype="FLOAT")
    y, sr = load_audio(path, sample_rate=16000)
    assert sr == 16000 and y.dtype == np.float32
    assert len(y) == 16000
    assert abs(peak_hz(y, sr) - 1000) <= 1.0
    # amplitude preserved away from the edges
    assert abs(np.max(np.abs(y[1000:-1000])) - 0.5) < 0.01


def test_resample_removes_content_above_new_nyquist():
    x = tone(7000, 44100, 1.0) + tone(1000, 44100, 1.0)
    y = resample(x, 44100, 8000)  # 7 kHz is above the new 4 kHz Nyquist
    spec = np.abs(np.fft.rfft(y))
    freqs = np.fft.rfftfreq(len(y), 1 / 8000)
    alias = spec[np.abs(freqs - 1000) > 50].max()  # 7 kHz would alias to 1 kHz
    assert alias < 0.01 * spec.max()
    assert abs(freqs[np.argmax(spec)] - 1000) < 2


def test_missing_file_raises_audio_file_error(tmp_path):
    with pytest.raises(AudioFileError) as info:
        load_audio(tmp_path / "nope.wav")
    assert isinstance(info.value, OSError)
    with pytest.raises(AudioFileError):
        load_audio(tmp_path)  # a directory


def test_garbage_file_raises_audio_file_error(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(AudioFileError) as info:
        load_audio(path)
    assert info.value.__cause__ is not None
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    with pytest.raises(AudioFileError):
        load_audio(empty)


@pytest.mark.parametrize(
    "kwargs",
    [dict(sample_rate=0), dict(sample_rate=16000.5), dict(offset=-1.0), dict(duration=0),
     dict(duration=float("nan")), dict(sample_rate=True)],
)
def test_bad_arguments_raise_parameter_error(tmp_path, kwargs):
    path = tmp_path / "a.wav"
    sf.write(path, tone(440, 8000, 0.1), 8000)
    with pytest.raises(ParameterError):
        load_audio(path, **kwargs)


# -- fit_length -------------------------------------------------------------

def test_fit_length_crop_and_pad():
    x = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(x, 4), [3, 4, 5, 6])
    np.testing.assert_array_equal(fit_length(x, 4, policy="start"), [0, 1, 2, 3])
    np.testing.assert_array_equal(fit_length(x, 12), list(range(10)) + [0, 0])
    np.testing.assert_array_equal(fit_length(x, 12, policy="start"), list(range(10)) + [0, 0])
    same = fit_length(x, 10)
    assert same is not x and np.array_equal(same, x)
    batch = np.stack([x, -x])
    assert fit_length(batch, 3).shape == (2, 3)
    assert fit_length(batch, 13).shape == (2, 13)


@pytest.mark.parametrize("args", [(0, "center"), (-3, "center"), (2.5, "center"), (4, "end")])
def test_fit_length_bad_arguments(args):
    n, policy = args
    with pytest.raises(ParameterError):
        fit_length(np.zeros(8), n, policy=policy)


# -- save_wav -----------------------------------------------------------------

def test_save_wav_float_round_trip_and_atomic(tmp_path):
    x = tone(300, 16000, 0.25) * 3  # beyond full scale: FLOAT keeps it
    out = save_wav(tmp_path / "out.wav", x, 16000, subtype="FLOAT")
    assert sorted(os.listdir(tmp_path)) == ["out.wav"]  # no temporary files left
    y, sr = sf.read(out, dtype="float32")
    assert sr == 16000 and sf.info(out).subtype == "FLOAT"
    np.testing.assert_array_equal(y, x)


def test_save_wav_pcm16_clips_and_normalises(tmp_path):
    x = np.array([0.0, 0.5, 2.0, -3.0], dtype=np.float32)
    path = save_wav(tmp_path / "clip.wav", x, 8000)
    assert sf.info(path).subtype == "PCM_16"
    y, _ = sf.read(path, dtype="float32")
    np.testing.assert_allclose(y, [0.0, 0.5, 32767 / 32768, -1.0], atol=1 / 32768)
    path = save_wav(tmp_path / "norm.wav", x, 8000, normalize=True, subtype="FLOAT")
    y, _ = sf.read(path, dtype="float32")
    np.testing.assert_allclose(y, x / 3.0, rtol=1e-6)


def test_save_wav_multichannel_and_overwrite(tmp_path):
    target = tmp_path / "st.wav"
    target.write_bytes(b"old")
    os.chmod(target, 0o640)
    stereo = np.stack([tone(200, 8000, 0.1), tone(400, 8000, 0.1)])
    save_wav(target, stereo, 8000, subtype="FLOAT")
    y, _ = load_audio(target, mono=False)
    np.testing.assert_array_equal(y, stereo)
    assert os.stat(target).st_mode & 0o777 == 0o640
    assert sorted(os.listdir(tmp_path)) == ["st.wav"]


def test_save_wav_failure_leaves_nothing_behind(tmp_path):
    target = tmp_path / "keep.wav"
    target.write_bytes(b"original")
    bad = np.array([0.0, np.nan], dtype=np.float32)
    with pytest.raises(ParameterError):
        save_wav(target, bad, 8000)
    with pytest.raises(ParameterError):
        save_wav(target, np.zeros((2, 2, 2)), 8000)
    with pytest.raises(ParameterError):
        save_wav(target, np.zeros(4), 8000, subtype="PCM_24")
    with pytest.raises(AudioFileError):
        save_wav(tmp_path / "missing-dir" / "x.wav", np.zeros(4), 8000)
    assert target.read_bytes() == b"original"
    assert sorted(os.listdir(tmp_path)) == ["keep.wav"]


# -- demo clip ----------------------------------------------------------------

def test_demo_clip_is_30s_16k_mono():
    assert DEMO_CLIP_PATH.is_file()
    assert DEMO_CLIP_PATH.stat().st_size < 1_200_000
    assert (DEMO_CLIP_PATH.parent / "DEMO-ATTRIBUTION.txt").is_file()
    audio, sr = demo_clip()
    assert sr == 16000
    assert audio.dtype == np.float32 and audio.shape == (30 * 16000,)
    assert np.isfinite(audio).all()
    assert 0.05 < np.sqrt(np.mean(audio**2)) < 0.5 and np.max(np.abs(audio)) <= 1.0
    info = sf.info(DEMO_CLIP_PATH)
    assert info.channels == 1 and info.samplerate == 16000
