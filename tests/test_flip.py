"""Flips on synthetic classifiers whose answer is known (freqrex.flip)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import freqrex
from freqrex import psychoacoustic as pa
from freqrex.errors import ParameterError
from freqrex.manipulation import FlipResult, flip  # noqa: F401
from freqrex.manipulation import SpectralClip as _Clip

SR = 8000
N = 8000  # 1 s: whole-clip FFT bins are exactly 1 Hz apart
DECISIVE = 1000
DECOYS = (300, 450, 700, 1300, 1900, 2100, 2500, 2900, 3300, 3700)


def clip_with_decoys(seed: int = 0) -> np.ndarray:
    """A quiet decisive tone at 1000 Hz among ten loud decoy tones and faint noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(N) / SR
    x = 0.1 * np.sin(2 * np.pi * DECISIVE * t)
    for i, f in enumerate(DECOYS):
        x += (0.3 + 0.02 * i) * np.sin(2 * np.pi * f * t + i)
    x += 0.002 * rng.standard_normal(N)
    return (x / 4).astype(np.float32)


class BinModel:
    """Two classes: "present" while the magnitude of whole-clip FFT bin(s) exceeds a threshold.

    With several bins the evidence is their summed magnitude, so removing one
    may not be enough while removing all is.
    """

    def __init__(self, bins=(DECISIVE,), threshold=None, reference=None, fraction=0.5):
        self.bins = tuple(bins)
        self.sample_rate = SR
        self.class_names = ["absent", "present"]
        self.evaluated = 0
        self.calls = 0
        if threshold is None:
            threshold = fraction * self.evidence(np.asarray(reference, dtype=np.float32)[None])[0]
        self.threshold = threshold

    def evidence(self, waves):
        w = np.asarray(waves, dtype=np.float64)
        n = w.shape[1]
        t = np.arange(n)
        return sum(np.abs(w @ np.exp(-2j * np.pi * b * t / n)) for b in self.bins)

    def __call__(self, waves):
        self.calls += 1
        self.evaluated += len(waves)
        z = np.clip(6 * np.log(self.evidence(waves) / self.threshold + 1e-12), -30, 30)
        p = 1 / (1 + np.exp(-z))
        return np.stack([1 - p, p], axis=1)


@pytest.fixture(scope="module")
def decoy_clip():
    return clip_with_decoys()


@pytest.fixture(scope="module")
def decoy_explanation(decoy_clip):
    model = BinModel(reference=decoy_clip)
    return freqrex.explain(decoy_clip, SR, model, budget=300, iterations=4, seed=0)


def test_single_decisive_bin_found_with_k1(decoy_clip, decoy_explanation):
    model = BinModel(reference=decoy_clip)
    assert model(decoy_clip[None])[0].argmax() == 1
    r = flip(decoy_clip, SR, model, k=1, explanation=decoy_explanation, budget=8, change="auto")
    assert isinstance(r, FlipResult)
    assert r.success
    assert r.bins.tolist() == [DECISIVE]
    assert r.frequencies_hz.tolist() == [float(DECISIVE)]
    assert r.change == "remove"  # removal is tried first and suffices
    assert r.new_class == 0 and r.original_class == 1
    assert r.new_name == "absent"
    assert r.flip_queries <= 8
    assert r.queries == decoy_explanation.queries + r.flip_queries
    assert r.explanation_queries == decoy_explanation.queries


def test_default_fft_flip_is_the_additive_search_and_explains_nothing(decoy_clip):
    model = BinModel(reference=decoy_clip)
    r = flip(decoy_clip, SR, model, k=1, budget=12)
    assert r.strategy == "additive" and r.vulnerability is not None
    assert r.explanation_queries == 0 and r.flip_queries <= 12
    assert r.queries == r.flip_queries + 1  # the original clip, then the search
    assert model.evaluated == r.queries


def test_causal_flip_explains_itself_when_no_explanation_given(decoy_clip):
    model = BinModel(reference=decoy_clip)
    r = flip(decoy_clip, SR, model, k=1, budget=8, explain_budget=300, explain_iterations=4, change="auto")
    assert r.success and r.bins.tolist() == [DECISIVE]
    assert r.explanation_queries > 0
    assert r.queries == r.explanation_queries + r.flip_queries
    # every model evaluation is accounted for
    assert model.evaluated == r.queries


def test_baselines_mostly_fail_with_the_same_budget(decoy_clip):
    model = BinModel(reference=decoy_clip)
    random_hits = sum(
        flip(decoy_clip, SR, model, k=1, strategy="random", budget=8, seed=s, change="auto").success for s in range(10)
    )
    assert random_hits <= 1
    # the decisive tone is quieter than the ten decoys: the magnitude order reaches it too late
    mag = flip(decoy_clip, SR, model, k=1, strategy="magnitude", budget=8, change="auto")
    assert not mag.success
    assert mag.flip_queries == 8
    assert mag.queries == 1 + 8  # the original clip, then the budget


def test_snr_of_a_removal_is_exact(decoy_clip, decoy_explanation):
    model = BinModel(reference=decoy_clip)
    r = flip(decoy_clip, SR, model, k=1, explanation=decoy_explanation, budget=8, change="auto")
    x = decoy_clip.astype(np.float64)
    spec = np.zeros(N // 2 + 1, dtype=complex)
    spec[DECISIVE] = np.fft.rfft(x)[DECISIVE]
    removed = np.fft.irfft(spec, n=N)
    expected = x - removed
    np.testing.assert_allclose(r.audio, expected, atol=1e-6)
    assert r.audio.dtype == np.float32
    want = 10 * math.log10(np.sum(x**2) / np.sum((r.audio.astype(np.float64) - x) ** 2))
    assert r.snr_db == pytest.approx(want, abs=1e-9)
    # and close to the tone's share of the energy: 0.025^2 / 2 against the whole clip
    ideal = 10 * math.log10(np.sum(x**2) / np.sum(removed**2))
    assert r.snr_db == pytest.approx(ideal, abs=0.01)


def test_gain_and_phase_changes_touch_only_the_chosen_bin(decoy_clip):
    model = BinModel(reference=decoy_clip, fraction=5.0)  # needs a 5x louder bin: a gain flips it
    X = np.fft.rfft(decoy_clip.astype(np.float64))
    r = flip(decoy_clip, SR, model, k=1, strategy="magnitude", change="gain", max_gain_db=20, budget=16,
             candidates=12)
    assert r.success and r.change == "gain" and r.gain_db == 20
    assert r.bins.tolist() == [DECISIVE]
    Y = np.fft.rfft(r.audio.astype(np.float64))
    assert abs(Y[DECISIVE]) == pytest.approx(10 * abs(X[DECISIVE]), rel=1e-4)
    others = np.delete(np.arange(X.size), DECISIVE)
    assert np.max(np.abs(Y[others] - X[others])) < 1e-2
    # a phase rotation by pi of the decisive bin changes its sign, not its magnitude
    clip = _Clip(decoy_clip, SR, "fft", 2048, 512, {})
    d = clip.delta(np.array([DECISIVE]), "phase", 0.0, math.pi)
    Z = np.fft.rfft(x := clip.x + d)
    assert Z[DECISIVE] == pytest.approx(-X[DECISIVE], rel=1e-9)
    assert x.shape == (N,)


def test_two_bins_needed_k1_fails_k2_succeeds_and_blocks_shrink():
    t = np.arange(N) / SR
    x = (0.5 * np.sin(2 * np.pi * 1000 * t) + 0.45 * np.sin(2 * np.pi * 1700 * t)
         + 0.05 * np.sin(2 * np.pi * 2900 * t)).astype(np.float32)
    model = BinModel(bins=(1000, 1700), reference=x, fraction=0.3)
    one = flip(x, SR, model, k=1, strategy="magnitude", change="remove", budget=20)
    assert not one.success
    two = flip(x, SR, model, k=2, strategy="magnitude", change="remove", budget=20)
    assert two.success
    assert sorted(two.bins.tolist()) == [1000, 1700]
    # a block of three (1000, 1700, 2900) flips too, and is shrunk to the two bins that matter
    three = flip(x, SR, model, k=3, strategy="magnitude", change="remove", budget=20)
    assert three.success
    assert sorted(three.bins.tolist()) == [1000, 1700]
    assert three.n_changed == 2
    assert three.flip_queries <= 20


class Constant:
    """Always the same scores: nothing flips it, so a search spends its whole budget."""

    sample_rate = SR
    class_names = ["absent", "present"]

    def __call__(self, waves):
        return np.tile([0.2, 0.8], (len(waves), 1))


class Counting:
    def __init__(self, model):
        self.model = model
        self.sample_rate = model.sample_rate
        self.class_names = model.class_names
        self.evaluated = 0
        self.batches = []

    def __call__(self, waves):
        self.evaluated += len(waves)
        self.batches.append(len(waves))
        return self.model(waves)


@pytest.mark.parametrize("budget", [1, 5, 13, 40])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_query_budget_is_respected_exactly(decoy_clip, decoy_explanation, budget, k):
    model = Counting(Constant())  # impossible to flip: the budget runs out
    r = flip(decoy_clip, SR, model, k=k, strategy="random", budget=budget, seed=3, batch_size=8, change="auto")
    assert not r.success
    assert r.flip_queries == budget
    assert model.evaluated == budget + 1  # the original, then exactly the budget
    assert max(model.batches[1:]) <= 8
    model = Counting(Constant())
    r = flip(decoy_clip, SR, model, k=k, explanation=decoy_explanation, budget=budget, change="auto")
    assert r.flip_queries == budget and model.evaluated == budget  # original scores from the explanation


def test_shared_cache_saves_model_calls_but_not_counted_queries(decoy_clip, decoy_explanation):
    model = Counting(Constant())
    cache = {}
    a = flip(decoy_clip, SR, model, k=1, explanation=decoy_explanation, budget=10, _cache=cache, change="auto")
    first = model.evaluated
    b = flip(decoy_clip, SR, model, k=1, explanation=decoy_explanation, budget=10, _cache=cache, change="auto")
    assert model.evaluated == first  # all cached
    assert a.flip_queries == b.flip_queries == 10
    assert np.array_equal(a.audio, b.audio)


def test_deterministic_for_a_seed(decoy_clip):
    model = Constant()
    a = flip(decoy_clip, SR, model, k=2, strategy="random", budget=12, seed=7, change="auto")
    b = flip(decoy_clip, SR, model, k=2, strategy="random", budget=12, seed=7, batch_size=3, change="auto")
    c = flip(decoy_clip, SR, model, k=2, strategy="random", budget=12, seed=8, change="auto")
    assert a.bins.tolist() == b.bins.tolist()
    assert np.array_equal(a.audio, b.audio)
    assert a.bins.tolist() != c.bins.tolist()


def test_targeted_flip(decoy_clip, decoy_explanation):
    model = BinModel(reference=decoy_clip)
    r = flip(decoy_clip, SR, model, k=1, explanation=decoy_explanation, budget=8, target=0, change="auto")
    assert r.success and r.target == 0 and r.new_class == 0
    with pytest.raises(ParameterError, match="already"):
        flip(decoy_clip, SR, model, explanation=decoy_explanation, target=1, change="auto")
    with pytest.raises(ParameterError, match="below 2"):
        flip(decoy_clip, SR, model, explanation=decoy_explanation, target=2, change="auto")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 0}, "k must be"),
        ({"k": -2}, "k must be"),
        ({"k": 1.5}, "k must be an integer"),
        ({"k": True}, "k must be an integer"),
        ({"change": "louder"}, "change must be"),
        ({"strategy": "best"}, "strategy must be"),
        ({"space": "wavelet"}, "space must be"),
        ({"budget": 0}, "budget must be"),
        ({"max_gain_db": 0.0}, "max_gain_db"),
        ({"max_gain_db": float("nan")}, "max_gain_db"),
        ({"max_phase": 4.0}, "max_phase"),
        ({"budget": 5, "explain_budget": 10, "iterations": 2}, "set by flip's own arguments"),
    ],
)
def test_bad_options_raise_parameter_error(decoy_clip, kwargs, match):
    model = BinModel(reference=decoy_clip)
    with pytest.raises(ParameterError, match=match):
        flip(decoy_clip, SR, model, **kwargs)


def test_explanation_of_another_space_or_clip_is_refused(decoy_clip, decoy_explanation):
    model = BinModel(reference=decoy_clip)
    stft_e = freqrex.explain(decoy_clip, SR, model, space="stft", n_fft=512, hop_length=128, budget=20,
                             iterations=1)
    with pytest.raises(ParameterError, match="space"):
        flip(decoy_clip, SR, model, space="fft", explanation=stft_e, change="auto")
    with pytest.raises(ParameterError, match="geometry"):
        flip(decoy_clip, SR, model, space="stft", explanation=stft_e, n_fft=1024, hop_length=256, change="auto")
    with pytest.raises(ParameterError, match="another clip"):
        flip(decoy_clip[:4000], SR, model, explanation=decoy_explanation, change="auto")


# ----------------------------------------------------------------------------- stft


def _istft(S, n_fft, hop, n):
    """Weighted overlap-add inverse of freqrex.psychoacoustic.stft."""
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    frames = np.fft.irfft(S, n=n_fft, axis=-1) * w
    L = (S.shape[0] - 1) * hop + n_fft
    y = np.zeros(L)
    wsum = np.zeros(L)
    for t in range(S.shape[0]):
        y[t * hop : t * hop + n_fft] += frames[t]
        wsum[t * hop : t * hop + n_fft] += w * w
    y = y / np.where(wsum > 1e-12, wsum, 1)
    return y[n_fft // 2 : n_fft // 2 + n]


def test_stft_cell_change_matches_a_full_inverse(decoy_clip):
    n_fft, hop = 512, 128
    clip = _Clip(decoy_clip, SR, "stft", n_fft, hop, {})
    S = pa.stft(decoy_clip, n_fft=n_fft, hop_length=hop)
    cells = np.array([10 * S.shape[1] + 64, 11 * S.shape[1] + 64, 40 * S.shape[1] + 20])
    for kind, g, ph in (("remove", 0, 0), ("gain", 6.0, 0), ("phase", 0, 1.0)):
        d = clip.delta(cells, kind, g, ph)
        S2 = S.copy()
        t, b = np.divmod(cells, S.shape[1])
        if kind == "remove":
            S2[t, b] = 0
        elif kind == "gain":
            S2[t, b] *= 10 ** (g / 20)
        else:
            S2[t, b] *= np.exp(1j * ph)
        want = _istft(S2, n_fft, hop, N) - _istft(S, n_fft, hop, N)
        np.testing.assert_allclose(d, want, atol=1e-9)


class FrameEnergyModel:
    """"loud" while the energy around 1000 Hz in 0.2-0.4 s stays above 99% of the original's."""

    def __init__(self, reference):
        self.sample_rate = SR
        self.class_names = ["quiet", "loud"]
        self.ref = self.energy(np.asarray(reference)[None])[0]

    def energy(self, waves):
        seg = np.asarray(waves, dtype=np.float64)[:, int(0.2 * SR) : int(0.4 * SR)]
        spec = np.fft.rfft(seg * np.hanning(seg.shape[1]), axis=1)
        f = np.fft.rfftfreq(seg.shape[1], 1 / SR)
        return (np.abs(spec[:, (f > 900) & (f < 1100)]) ** 2).sum(1)

    def __call__(self, waves):
        z = np.clip(200 * (self.energy(waves) / self.ref - 0.99), -30, 30)
        p = 1 / (1 + np.exp(-z))
        return np.stack([1 - p, p], axis=1)


@pytest.mark.parametrize("strategy", ["magnitude", "random", "causal"])
def test_stft_flip_stays_under_the_masking_threshold(decoy_clip, strategy):
    n_fft, hop = 512, 128
    model = FrameEnergyModel(decoy_clip)
    r = flip(decoy_clip, SR, model, k=5, space="stft", strategy=strategy, budget=24, n_fft=n_fft,
             hop_length=hop, explain_budget=400, explain_iterations=4, seed=1, change="auto")
    margins, inaudible = pa.perturbation_margin_db(decoy_clip, r.audio, SR, n_fft=n_fft, hop_length=hop)
    assert r.inaudible == inaudible
    assert r.margin_db == pytest.approx(float(np.min(margins)))
    assert r.inaudible  # the change was scaled under the threshold
    assert r.margin_db >= 0
    assert 0 < r.scale <= 1
    assert r.snr_db == pytest.approx(pa.snr_db(decoy_clip, r.audio))
    assert r.frames is not None and r.times_s is not None and r.frames.size == r.bins.size
    np.testing.assert_allclose(r.times_s, r.frames * hop / SR)
    if strategy == "causal":
        assert r.success  # a few cells near 1000 Hz at 0.2-0.4 s suffice, inaudibly
        assert np.all((r.frequencies_hz > 800) & (r.frequencies_hz < 1200))


def test_summary_is_json_ready(decoy_clip, decoy_explanation):
    import json

    model = BinModel(reference=decoy_clip)
    r = flip(decoy_clip, SR, model, k=1, explanation=decoy_explanation, budget=8, change="auto")
    s = json.loads(json.dumps(r.summary()))
    assert s["success"] is True and s["frequencies_hz"] == [1000.0] and s["n_changed"] == 1
    assert s["queries"] == r.queries and s["flip_queries"] == r.flip_queries


def test_stft_flip_with_a_projected_fft_explanation(decoy_clip):
    """An fft explanation ranks the STFT cells through their frequency (then magnitude)."""
    model = FrameEnergyModel(decoy_clip)
    e = freqrex.explain(decoy_clip, SR, BinModel(reference=decoy_clip), budget=300, iterations=4)
    r = flip(decoy_clip, SR, model, k=5, space="stft", explanation=e, budget=24, n_fft=512, hop_length=128, change="auto")
    assert r.explanation_queries == e.queries
    # the cells changed are at the decisive 1000 Hz tone (STFT bin 64 at 8 kHz / 512, or a neighbour)
    assert r.success
    assert set(r.bins.tolist()) <= {63, 64, 65}
    assert r.inaudible


def test_cli_flip_writes_audio_and_json(decoy_clip, tmp_path, monkeypatch, capsys):
    import json

    import freqrex.models as models
    from freqrex.cli import main
    from freqrex.io import load_audio, save_wav

    wav = tmp_path / "clip.wav"
    save_wav(wav, decoy_clip, SR, subtype="FLOAT")
    real = models.load_model
    monkeypatch.setattr(models, "load_model",
                        lambda spec, **kw: BinModel(reference=decoy_clip) if spec == "bin" else real(spec, **kw))
    out = tmp_path / "out"
    code = main(["flip", str(wav), "--model", "bin", "--k", "1", "--budget", "8", "--explain-budget", "300",
                 "--strategy", "causal", "--cuts", "uniform", "--out", str(out), "--json", "--quiet"])
    assert code == 0
    s = json.loads(capsys.readouterr().out)
    assert s["success"] and s["frequencies_hz"] == [1000.0] and s["flip_queries"] <= 8
    assert json.loads((out / "flip.json").read_text())["bins"] == [DECISIVE]
    y, sr = load_audio(out / "perturbed.wav")
    assert sr == SR and y.shape == (N,)
    # text output, a baseline, and a bad option as a one-line error with exit code 2
    assert main(["flip", str(wav), "--model", "bin", "--strategy", "random", "--budget", "4",
                 "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "NO FLIP within 4 queries" in text and "ahead of" in text and "no perturbed audio written" in text
    assert not (out / "perturbed.wav").exists()  # the earlier flip's audio is not left to look like this one's
    assert not json.loads((out / "flip.json").read_text())["success"]
    assert main(["flip", str(wav), "--model", "bin", "--k", "0", "--out", str(out), "--quiet"]) == 2
    assert "k must be" in capsys.readouterr().err
