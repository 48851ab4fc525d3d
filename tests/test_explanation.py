"""The Explanation object: sets, bands, audio, save."""

import json

import numpy as np
import pytest
import soundfile as sf

import freqrex
from synthetic import SR, BandClassifier, make_clip


@pytest.fixture(scope="module")
def explanation():
    return freqrex.explain(make_clip(), SR, BandClassifier("and"), iterations=6, budget=1500)


def test_fields(explanation):
    e = explanation
    assert e.target == 1 and e.target_name == "present"
    assert e.responsibility.shape == e.frequencies.shape == (SR // 2 + 1,)
    assert e.frequencies[1000] == 1000.0
    assert e.queries == 1 + e.search_queries + e.extraction_queries
    assert e.seed == 0 and e.options["budget"] == 1500
    assert e.ranking.dtype == np.int64 and sorted(e.ranking.tolist()) == list(range(SR // 2 + 1))
    # rule="margin" (the default) ranks by its key: each bin's log-energy reordered by its part's effect
    from freqrex.margin import ranking_key

    leaves = [tuple(int(v) for v in p[:4]) for p in e.parts]
    energy = np.abs(np.fft.rfft(make_clip().astype(np.float64)))[None, :] ** 2
    assert e.parts.shape[1] == 6 and np.all(np.isfinite(e.parts[:, 5]))  # the default: paired noise fill
    key = ranking_key(e.parts[:, 4], leaves, energy, e.options["effect_weight"], fill_effects=e.parts[:, 5])[0]
    assert np.all(np.diff(key[e.ranking]) <= 0)
    paper = freqrex.explain(make_clip(), SR, BandClassifier("and"), rule="minimal", iterations=2, budget=200)
    assert np.all(np.diff(paper.responsibility[paper.ranking]) <= 0)  # the pass/fail rules: by responsibility


def test_bands_and_sizes(explanation):
    e = explanation
    assert e.bands("sufficient") == [(1000.0, 1000.0), (1700.0, 1700.0)]
    assert e.size("sufficient") == 2
    with pytest.raises(freqrex.ParameterError):
        e.bands("everything")


def test_audio_of_each_set(explanation):
    e = explanation
    x = e.audio("original")
    s = e.audio("sufficient")
    assert s.dtype == np.float32 and s.shape == x.shape
    spec = np.abs(np.fft.rfft(s))
    # The sufficient signal is just the two evidence tones.
    assert set(np.flatnonzero(spec > 1e-3)) == {1000, 1700}
    c = e.audio("complete")
    assert np.abs(c).max() > 0


def test_save(tmp_path, explanation):
    out = explanation.save(tmp_path / "run")
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        ["summary.json", "explanation.npz", "original.wav", "sufficient.wav", "sufficient_necessary.wav", "complete.wav",
         "manifest.json"]
    )
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sets"]["sufficient"]["bands_hz"] == [[1000.0, 1000.0], [1700.0, 1700.0]]
    assert summary["queries"] == explanation.queries
    arrays = np.load(out / "explanation.npz")
    assert np.array_equal(arrays["responsibility"], explanation.responsibility)
    audio, sr = sf.read(out / "sufficient.wav")
    assert sr == SR and len(audio) == len(explanation.audio("original"))
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_fmin_fmax_background_is_kept():
    x = make_clip()
    e = freqrex.explain(x, SR, BandClassifier("one"), fmin=800, fmax=1200, iterations=4, budget=600)
    assert e.bands("sufficient") == [(1000.0, 1000.0)]
    s = e.audio("sufficient")
    spec = np.abs(np.fft.rfft(s))
    # Bins outside [fmin, fmax] are always kept, so the 1700 Hz and 2500 Hz tones stay.
    assert spec[1700] > 100 and spec[2500] > 100 and spec[1100] < 1e-3


def test_progress_callback():
    seen = []
    freqrex.explain(make_clip(), SR, BandClassifier("one"), iterations=2, budget=100,
                    progress=lambda phase, done, total: seen.append((phase, done, total)))
    assert seen and seen[0][0] == "search" and seen[-1][0] == "extract"
    assert [d for _, d, _ in seen] == sorted(d for _, d, _ in seen)


def test_explainer_object_reuses_options():
    ex = freqrex.Explainer(BandClassifier("one"), iterations=2, budget=200)
    a = ex.explain(make_clip(), SR)
    b = ex.explain(make_clip(), SR, seed=7)
    assert a.options["budget"] == b.options["budget"] == 200
    assert b.seed == 7
