"""Contracts of validation and of writing: a user's mistake or an unwritable disk is one of
freqrex's errors (never a raw OSError, OverflowError, MemoryError...), costs stay bounded,
and valid inputs give exactly what they gave before."""

import errno
import os
import math
import tracemalloc
from fractions import Fraction

import numpy as np
import pytest
import soundfile as sf

import freqrex
from freqrex import _atomic, quality, signal
from freqrex.errors import AudioFileError, ParameterError
from freqrex.io import MAX_POLYPHASE_FACTOR, load_audio, resample
from synthetic import PASS_FAIL, SR, BandClassifier, make_clip


@pytest.fixture(scope="module")
def explanation():
    return freqrex.explain(make_clip(), SR, BandClassifier(), **{**PASS_FAIL, "budget": 40, "iterations": 2})


def _no_permission(*args, **kwargs):
    raise PermissionError(errno.EACCES, "Permission denied")


# ------------------------------------------------- A: unwritable output is an AudioFileError
def test_saving_into_an_unwritable_existing_folder_is_a_file_error(explanation, tmp_path, monkeypatch):
    """Explanation.save into an existing folder it cannot write (as ``save('/sys/kernel')``)."""
    out = tmp_path / "ro"
    out.mkdir()
    monkeypatch.setattr(_atomic.tempfile, "mkstemp", _no_permission)
    with pytest.raises(AudioFileError, match="Permission denied"):
        explanation.save(out)
    assert list(out.iterdir()) == []


def test_flip_save_into_an_unwritable_folder_is_a_file_error(tmp_path, monkeypatch):
    r = freqrex.flip(make_clip(), SR, BandClassifier(), budget=8, explain_budget=24, explain_iterations=2,
                     rule="minimal", max_queries=None)
    out = tmp_path / "ro"
    out.mkdir()
    monkeypatch.setattr(_atomic.tempfile, "mkstemp", _no_permission)
    with pytest.raises(AudioFileError, match="Permission denied"):
        r.save(out)


def test_a_write_failing_inside_an_atomic_file_is_a_file_error(explanation, tmp_path, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", full_disk)  # the npz dies half-written
    with pytest.raises(AudioFileError, match="No space left"):
        explanation.save(tmp_path / "run")
    assert not [p for p in (tmp_path / "run").iterdir() if p.suffix == ".tmp"]


def test_atomic_writers_map_os_errors(tmp_path):
    with pytest.raises(AudioFileError, match="cannot write"):
        _atomic.write_text(tmp_path / "missing" / "x.json", "{}")
    with pytest.raises(AudioFileError):
        with _atomic.atomic_writer(tmp_path / "missing" / "x.bin") as fh:
            fh.write(b"x")
    with pytest.raises(AudioFileError, match="cannot finish saving"):
        _atomic.finish_save(tmp_path, "explanation", ["never-written.npz"])
    # other exceptions from the with block pass unchanged, and leave nothing behind
    with pytest.raises(KeyError):
        with _atomic.atomic_writer(tmp_path / "y.bin") as fh:
            raise KeyError("mine")
    assert list(tmp_path.iterdir()) == []


def _two_clips(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.wav", "b.wav"):
        sf.write(src / name, make_clip(), SR, subtype="FLOAT")
    return src


def test_explain_many_turns_a_folder_it_cannot_write_into_that_clips_error(tmp_path, monkeypatch):
    from freqrex.evaluation import explain_many as em

    src = _two_clips(tmp_path)
    real = em.write_folder

    def write_folder(directory, files):
        if directory.name == "a_wav":
            raise PermissionError(errno.EACCES, "Permission denied", str(directory))
        return real(directory, files)

    monkeypatch.setattr(em, "write_folder", write_folder)
    done = []
    results = em.explain_many([src], BandClassifier(), tmp_path / "out", quality=False, on_done=done.append,
                              explain_options={**PASS_FAIL, "budget": 10, "iterations": 1}, duration=1.0)
    by = {r["file"].rsplit("/", 1)[-1]: r for r in results}
    assert by["a.wav"]["status"] == "error" and by["a.wav"]["error"].startswith("AudioFileError: ")
    assert "Permission denied" in by["a.wav"]["error"]
    assert by["b.wav"]["status"] == "ok" and (tmp_path / "out" / "b_wav" / "summary.json").is_file()
    assert len(done) == 2


def test_explain_many_output_that_cannot_be_made(tmp_path):
    from freqrex.evaluation.explain_many import explain_many

    src = _two_clips(tmp_path)
    (tmp_path / "file").write_text("mine")
    opts = {**PASS_FAIL, "budget": 10, "iterations": 1}
    for out in (tmp_path / "file", tmp_path / "file" / "sub"):
        with pytest.raises(ParameterError):
            explain_many([src], BandClassifier(), out, quality=False, explain_options=opts)
    assert (tmp_path / "file").read_text() == "mine"


# ------------------------------------------------- B: resampling at pathological rates
USUAL_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400, 192000)


def test_usual_rate_pairs_resample_exactly_as_resample_poly():
    from scipy.signal import resample_poly

    x = np.random.default_rng(0).standard_normal(3001).astype(np.float32)
    for a in USUAL_RATES:
        for b in USUAL_RATES:
            if a == b:
                continue
            f = Fraction(b, a)
            assert max(f.numerator, f.denominator) <= MAX_POLYPHASE_FACTOR
            want = resample_poly(x, f.numerator, f.denominator).astype(np.float32)
            got = resample(x, a, b)
            assert got.dtype == np.float32 and np.array_equal(got, want), (a, b)


def test_a_pathological_rate_pair_costs_what_the_clip_does(tmp_path):
    """0.1 s at 1,535,999 Hz to 16 kHz: up 16000, down 1,535,999 (a 30-million-tap filter before)."""
    sr = 1_535_999
    t = np.arange(sr // 10) / sr
    clip = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = tmp_path / "odd.wav"
    sf.write(path, clip, sr, subtype="FLOAT")
    tracemalloc.start()
    try:
        y, rate = load_audio(path, sample_rate=16000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20  # the clip is 600 kB; the filter alone was 245 MB
    assert rate == 16000 and y.dtype == np.float32
    assert y.size == -(-clip.size * 16000 // sr)  # ceil(n * up / down), as for ordinary rates
    spec = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spec) * 16000 / y.size - 440) < 16000 / y.size
    up = resample(y, 16000, sr)  # and back up
    assert up.size == -(-y.size * sr // 16000) and np.all(np.isfinite(up))
    assert resample(np.zeros((2, 7), np.float32), 16000, sr).shape == (2, -(-7 * sr // 16000))


# ------------------------------------------------- C: quality's own options
X = (0.5 * np.sin(np.arange(4000) * 0.1)).astype(np.float32)


def _model(w):
    return np.stack([np.abs(w).mean(1), 0.3 * np.ones(len(w))], 1)


@pytest.mark.parametrize("kw", [
    dict(n_fft=-1), dict(n_fft=2048.0), dict(hop_length=2 ** 70), dict(hop_length=0), dict(n_fft=-4),
    dict(n_fft=2 ** 40, hop_length=2 ** 39), dict(n_fft=64, hop_length=1000), dict(n_fft=True),
    dict(hop_length="512"),
])
def test_quality_refuses_bad_stft_options(kw):
    with pytest.raises(ParameterError):
        quality.ranking_curves(X, 16000, _model, [0, 1, 2], space="stft", **kw)
    with pytest.raises(ParameterError):
        quality.magnitude_ranking(X, space="stft", **kw)


@pytest.mark.parametrize("ranking", [[np.nan], [0.5, 1.7], [np.inf], [True, False], ["a"], [2 ** 70],
                                     [[0], [1, 2]]])
def test_quality_refuses_rankings_that_are_not_integers(ranking):
    with pytest.raises(ParameterError):
        quality.ranking_curves(X, 16000, _model, ranking)


def test_quality_accepts_what_it_accepted():
    a = quality.ranking_curves(X, 16000, _model, [3, 1], target=0)
    b = quality.ranking_curves(X, 16000, _model, np.array([3.0, 1.0]), target=0)  # whole numbers
    c = quality.ranking_curves(X, 16000, _model, np.array([3, 1], dtype=np.uint8), target=0)
    assert np.array_equal(a.deletion, b.deletion) and np.array_equal(a.deletion, c.deletion)
    assert quality.magnitude_ranking(X, space="stft", n_fft=256, hop_length=128).size == (1 + 4000 // 128) * 129


# ------------------------------------------------- D: the explanation's own mask_value
def _spectral_model(sr):
    def model(w):
        X = np.stack([np.abs(np.fft.rfft(r.astype(np.float64))) for r in w])
        f = np.fft.rfftfreq(w.shape[1], 1 / sr)
        a = X[:, (f > 250) & (f < 350)].sum(1)
        b = X[:, (f > 1100) & (f < 1300)].sum(1)
        c = X[:, f > 2000].sum(1)
        s = np.stack([a, b * 0.9, c * 2 + 1], 1)
        e = np.exp(s / (s.max(1, keepdims=True) + 1e-9) * 4)
        return e / e.sum(1, keepdims=True)

    return model


def test_quality_curves_of_a_loaded_explanation_use_its_mask_value(tmp_path):
    sr = 8000
    t = np.arange(4000) / sr
    rng = np.random.default_rng(1)
    x = (0.4 * np.sin(2 * np.pi * 300 * t) + 0.3 * np.sin(2 * np.pi * 1200 * t)
         + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    model = _spectral_model(sr)
    e = freqrex.explain(x, sr, model, budget=60, max_queries=100, mask_value=0.05)
    live = quality.explanation_curves(e, model=model)
    loaded = freqrex.Explanation.load(e.save(tmp_path / "e"))
    assert loaded.options["mask_value"] == 0.05
    back = quality.explanation_curves(loaded, audio=x, model=model)
    np.testing.assert_allclose(back.insertion, live.insertion, rtol=0, atol=1e-6)
    np.testing.assert_allclose(back.deletion, live.deletion, rtol=0, atol=1e-6)
    # an explicit mask_value still wins, and differs here
    zero = quality.explanation_curves(loaded, audio=x, model=model, mask_value=0.0)
    assert not np.allclose(zero.insertion, live.insertion, atol=1e-3)
    with pytest.raises(ParameterError):
        quality.ranking_curves(x, sr, model, [0], mask_value=float("nan"))


# ------------------------------------------------- E: n_fft and sample-rate bounds of signal
@pytest.mark.parametrize("call", [
    lambda x: signal.stft(x, n_fft=2 ** 40, hop_length=2 ** 39),
    lambda x: signal.stft(x, n_fft=2 ** 62, hop_length=2 ** 61),
    lambda x: signal.masking_threshold(x, 16000, n_fft=2 ** 36, hop_length=2 ** 35),
    lambda x: signal.perturbation_margin_db(x, x, 16000, n_fft=(1 << 16) + 2, hop_length=4),
    lambda x: signal.masking_threshold(x, 0.5, n_fft=4, hop_length=2),
    lambda x: signal.masking_threshold(x, 0.01, n_fft=4, hop_length=2),
    lambda x: signal.perturbation_margin_db(x, x, 1e-300, n_fft=4, hop_length=2),
])
def test_signal_refuses_absurd_sizes_and_rates(call):
    x = 0.1 * np.random.default_rng(0).standard_normal(8)
    with pytest.raises(ParameterError):
        call(x)


def _traced_peak(call):
    tracemalloc.start()
    try:
        out = call()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_low_sample_rate_costs_no_more_than_the_clip():
    """At 1 Hz the tonal neighbourhood is 176,400 bins wide (4 s and 27 MB before, for 9 frames of
    1025 bins); only the clip's own bins can matter, so it costs no more than at 16 kHz."""
    x = 0.1 * np.random.default_rng(0).standard_normal(4096)
    usual, usual_peak = _traced_peak(lambda: signal.masking_threshold(x, 16000))
    low, low_peak = _traced_peak(lambda: signal.masking_threshold(x, 1))
    assert low_peak <= usual_peak
    assert low.threshold_db.shape == usual.threshold_db.shape == (9, 1025)
    assert np.all(np.isfinite(low.threshold_db))
    assert signal.stft(x, n_fft=1 << 16, hop_length=1 << 15).shape == (1, (1 << 15) + 1)  # the largest n_fft


# ------------------------------------------------- F: SNR and PSD at the ends of the float range
def test_snr_and_psd_do_not_overflow_to_nan():
    assert signal.snr_db([1e200, 1e200], [0.0, 0.0]) == pytest.approx(0.0, abs=1e-9)
    assert signal.snr_db([1e300, -1e300], [-1e300, 1e300]) == pytest.approx(-20 * math.log10(2), abs=1e-9)
    assert signal.snr_db([1e308], [-1e308]) == pytest.approx(-20 * math.log10(2), abs=1e-9)  # y - x overflows
    assert signal.snr_db([1e-200], [0.0]) == pytest.approx(0.0, abs=1e-9)  # was inf: "identical"
    assert signal.snr_db([1e-200, 0.0], [1e-200, 1e-201]) == pytest.approx(20.0, abs=1e-9)
    psd, offset = signal.power_spectrum_db(np.array([1e300 + 0j, 1.0]), 1)
    assert np.all(np.isfinite(psd)) and math.isfinite(offset)
    assert psd[0] == pytest.approx(96.0) and psd[1] == signal.PSD_FLOOR_DB
    psd, _ = signal.power_spectrum_db(np.array([1e308 + 1e308j, 1e308]), 1)
    assert psd[0] == pytest.approx(96.0) and psd[1] == pytest.approx(96.0 - 10 * math.log10(2))


@pytest.mark.parametrize("bad", [["a"], [1 + 2j], [object()]])
def test_snr_of_non_numbers_is_a_parameter_error(bad):
    with pytest.raises(ParameterError):
        signal.snr_db(bad, [0.0])


def test_snr_and_psd_of_ordinary_audio_are_unchanged():
    rng = np.random.default_rng(3)
    x = 0.3 * rng.standard_normal(5000)
    y = x + 0.01 * rng.standard_normal(5000)
    assert signal.snr_db(x, y) == 10.0 * math.log10(float(np.sum(x * x)) / float(np.sum((y - x) ** 2)))
    assert signal.snr_db(x, x) == math.inf and signal.snr_db(np.zeros(4), np.ones(4)) == -math.inf
    spec = signal.stft(x, n_fft=512, hop_length=128)
    with np.errstate(divide="ignore"):
        raw = 10.0 * np.log10(np.abs(spec / 512) ** 2)
    psd, offset = signal.power_spectrum_db(spec, 512)
    assert offset == 96.0 - float(np.max(raw))
    assert np.array_equal(psd, np.maximum(raw + offset, signal.PSD_FLOOR_DB))


def test_summaries_pages_and_locks_in_an_unmakeable_folder_are_freqrex_errors(tmp_path):
    """write_summary, write_page and the evaluation's output lock made their folders with a bare
    mkdir: a file in the path or no permission came out as a raw OSError."""
    from freqrex.errors import AudioFileError, ParameterError
    from freqrex.evaluation.records import OutputLock
    from freqrex.evaluation.summary import write_summary
    from freqrex.viz.html import write_page

    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(ParameterError, match="file"):
        write_summary([], blocker / "s.md")
    with pytest.raises(ParameterError, match="file"):
        write_page(blocker / "r.html", "<html></html>")
    with pytest.raises(ParameterError, match="file"):
        OutputLock(blocker / "r.jsonl").acquire()
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(AudioFileError):
            OutputLock(locked / "r.jsonl").acquire()


def test_a_flip_saved_over_a_folder_named_like_its_audio_is_a_file_error(tmp_path):
    from freqrex.manipulation.result import PERTURBED_WAV

    r = freqrex.flip(make_clip(), SR, BandClassifier(), budget=8, explain_budget=24, explain_iterations=2,
                     rule="minimal", max_queries=None)
    (tmp_path / "run" / PERTURBED_WAV).mkdir(parents=True)  # unlink cannot remove a folder
    with pytest.raises(AudioFileError, match="cannot replace"):
        r.save(tmp_path / "run")


def test_new_files_get_0666_less_the_umask_without_touching_the_umask(tmp_path, monkeypatch):
    """atomic_writer read the umask by setting it to 0 and back: another thread creating a file in
    between got a world-writable one."""
    calls = []
    real = os.umask
    monkeypatch.setattr(os, "umask", lambda m: calls.append(m) or real(m))
    old = real(0o027)
    try:
        _atomic.write_text(tmp_path / "a.json", "{}")
    finally:
        real(old)
    if os.path.exists("/proc/self/status"):
        assert calls == []
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o640
