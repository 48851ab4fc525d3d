"""The additive causal search: a hidden tone trigger found in few queries, exact budgets, same seed same
result, and the vulnerability spectrum (save/load, plot, report, CLI, evaluation records)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import freqrex
from freqrex.errors import ParameterError, ResultFileError
from freqrex.manipulation import VulnerabilitySpectrum, flip, vulnerability
from freqrex.manipulation.additive import tone_phase

SR = 8000
N = 8000  # 1 s: bins 1 Hz apart
BAND = (1200, 1300)  # the trigger band: empty in the clip


def music_like(seed: int = 0) -> np.ndarray:
    """Ten partials and faint noise; nothing between 1200 and 1300 Hz."""
    rng = np.random.default_rng(seed)
    t = np.arange(N) / SR
    x = sum((0.3 + 0.02 * i) * np.sin(2 * np.pi * f * t + i)
            for i, f in enumerate((300, 450, 700, 1000, 1900, 2100, 2500, 2900, 3300, 3700)))
    x = x + 0.001 * rng.standard_normal(N)
    return (x / 4).astype(np.float32)


def band_energy(waves, lo, hi):
    spec = np.fft.rfft(np.asarray(waves, dtype=np.float64), axis=1)
    return (np.abs(spec[:, lo: hi + 1]) ** 2).sum(1)


class ToneTrigger:
    """'calm' unless the energy in 1200..1300 Hz exceeds that of a tone ``snr`` dB under the clip; the
    score moves smoothly with that energy (a margin the search can follow), and counts its queries."""

    class_names = ["calm", "alarm"]
    sample_rate = SR

    def __init__(self, clip, snr=35.0):
        x = np.asarray(clip, dtype=np.float64)
        e = float(np.dot(x, x)) / 10 ** (snr / 10)  # time-domain energy of the trigger tone
        self.thr = e * N / 2 + band_energy(x[None], *BAND)[0]
        self.evaluated = 0
        self.calls = 0

    def __call__(self, waves):
        self.evaluated += len(waves)
        self.calls += 1
        z = np.clip(8 * np.log(band_energy(waves, *BAND) / self.thr + 1e-300), -30, 30)
        p = 1 / (1 + np.exp(-z))
        return np.stack([1 - p, p], 1)


@pytest.fixture(scope="module")
def clip():
    return music_like()


@pytest.mark.parametrize("snr", [25.0, 35.0, 45.0])
def test_the_trigger_band_and_its_level_are_found_in_few_queries(clip, snr):
    model = ToneTrigger(clip, snr=snr)
    r = flip(clip, SR, model, k=1, strategy="additive", budget=24)
    assert r.success and r.new_name == "alarm" and r.change == "add"
    assert BAND[0] <= r.frequencies_hz[0] <= BAND[1]
    # the quietest level that flips is the trigger's: found to within 1 dB (never quieter than it)
    assert snr - 1.0 <= r.snr_db <= snr + 0.1
    # 24 queries for the search, one for the original clip: nothing more was asked of the model
    assert r.flip_queries <= 24 and r.queries == r.flip_queries + 1 and model.evaluated <= r.queries
    v = r.vulnerability
    top = v.most_vulnerable(1)[0]
    assert top["lo_hz"] < BAND[1] and top["hi_hz"] > BAND[0]  # the most vulnerable band holds the trigger
    assert top["flip_snr_db"] == pytest.approx(r.snr_db)
    assert v.queries == r.queries and v.original_name == "calm" and v.margin > 0


def test_the_tone_scan_misses_that_band_at_twice_the_queries(clip):
    """The scan's 64 log-spaced tones fall outside 1200..1300 Hz: the additive search is not a scan."""
    r = flip(clip, SR, ToneTrigger(clip, snr=35.0), k=1, strategy="tone_scan", budget=48)
    assert not r.success


@pytest.mark.parametrize("budget", [1, 2, 3, 7, 13, 40])
def test_budgets_are_exact(clip, budget):
    model = ToneTrigger(clip, snr=35.0)
    r = flip(clip, SR, model, k=2, strategy="additive", budget=budget)
    assert r.flip_queries <= budget
    assert r.queries == r.flip_queries + 1
    assert model.evaluated <= r.queries
    assert r.vulnerability.queries == r.queries
    assert np.sum(np.isfinite(r.vulnerability.cut)) <= budget


def test_same_seed_same_result_whatever_the_batch_size(clip):
    runs = [flip(clip, SR, ToneTrigger(clip, snr=40.0), k=2, strategy="additive", budget=30, seed=3,
                 batch_size=b) for b in (1, 4, 64)]
    first = runs[0]
    for r in runs[1:]:
        assert np.array_equal(r.audio, first.audio)
        assert np.array_equal(r.bins, first.bins) and r.snr_db == first.snr_db
        a, b = r.vulnerability.summary(), first.vulnerability.summary()
        assert a == b
    other = flip(clip, SR, ToneTrigger(clip, snr=40.0), k=2, strategy="additive", budget=30, seed=4)
    assert not np.array_equal(other.audio, first.audio)  # another seed: other phases
    assert tone_phase(3, [1250]) != tone_phase(4, [1250])


def test_batches_group_queries_into_few_model_calls(clip):
    model = ToneTrigger(clip, snr=35.0)
    flip(clip, SR, model, k=1, strategy="additive", budget=24, batch_size=64)
    assert model.calls < model.evaluated  # the refinement scores a split's parts in one call


def test_spectrum_saves_and_loads(clip, tmp_path):
    v = vulnerability(clip, SR, ToneTrigger(clip, snr=35.0), budget=24, seed=1)
    assert isinstance(v, VulnerabilitySpectrum) and v.flip.success and v.flip.strategy == "additive"
    assert np.all(np.diff(v.lo_hz) > 0) and np.allclose(v.hi_hz[:-1], v.lo_hz[1:])  # bands tile the range
    assert np.isfinite(v.cut).sum() >= 4 and np.isnan(v.cut).any()  # the budget did not reach every band
    v.save(tmp_path / "v")
    w = VulnerabilitySpectrum.load(tmp_path / "v")
    for name in ("lo_hz", "hi_hz", "headroom_db", "cut", "probe_snr_db", "tones", "flip_snr_db"):
        np.testing.assert_array_equal(getattr(w, name), getattr(v, name))
    assert w.summary() == v.summary() and w.flip is None
    # a folder of another kind is refused with freqrex's own error
    v.flip.save(tmp_path / "f")
    with pytest.raises(ResultFileError):
        VulnerabilitySpectrum.load(tmp_path / "f")
    assert freqrex.vulnerability is vulnerability


def test_options_that_contradict_the_search_are_refused(clip):
    model = ToneTrigger(clip)
    with pytest.raises(ParameterError):
        vulnerability(clip, SR, model, k=3)
    with pytest.raises(ParameterError):
        flip(clip, SR, model, strategy="additive", change="remove")
    with pytest.raises(ParameterError):
        flip(clip, SR, model, strategy="additive", space="stft")


def test_a_targeted_search_reaches_the_target(clip):
    r = flip(clip, SR, ToneTrigger(clip, snr=30.0), strategy="additive", target=1, budget=24)
    assert r.success and r.new_class == 1 and 29.0 <= r.snr_db <= 30.1
    assert r.vulnerability.target == 1 and r.vulnerability.margin < 0


def test_plot_and_report_section(clip, tmp_path):
    pytest.importorskip("matplotlib", reason="the plot extra is installed in CI")
    from freqrex.report import write_flip_report
    from freqrex.viz import plot_vulnerability

    r = flip(clip, SR, ToneTrigger(clip, snr=35.0), strategy="additive", budget=24)
    ax = plot_vulnerability(r.vulnerability)
    assert ax.get_xscale() == "log" and len(ax.patches) == r.vulnerability.n_bands
    assert any("dB" in t.get_text() for t in ax.texts)  # the flip's level is labelled
    page = write_flip_report(r, tmp_path / "report.html", audio=clip)
    html = page.read_text()
    assert "Vulnerability spectrum" in html and 'id="img-vulnerability"' in html


def test_flip_records_carry_audibility_and_closeness(clip):
    from freqrex.evaluation.protocol import EvalOptions, _flip_summary

    r = flip(clip, SR, ToneTrigger(clip, snr=35.0), strategy="additive", budget=24)
    rec = _flip_summary(r)
    for name in ("quietest_frame_snr_db", "over_threshold_share", "max_excess_db", "art_over_threshold_share",
                 "art_max_excess_db", "louder_than_clip_share", "closest_margin", "closest_class",
                 "closest_name"):
        assert rec[name] == getattr(r, name)
    assert rec["closest_margin"] > 0 and rec["closest_name"] == "alarm"
    assert "additive" not in EvalOptions().strategies  # a peer column on request: old resume keys still hold
    assert "additive" in EvalOptions(strategies=("causal", "additive")).strategies
    assert "additive" not in EvalOptions(strategies=("causal", "additive"), change="remove").strategies


def test_cli_writes_and_plots_the_spectrum(tmp_path):
    out = tmp_path / "flip"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    p = subprocess.run([sys.executable, "-m", "freqrex", "flip", "--duration", "3", "--budget", "8",
                        "--strategy", "additive", "--vulnerability", "--out", str(out), "--quiet", "--json"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    data = json.loads(p.stdout)
    assert data["strategy"] == "additive" and data["flip_queries"] <= 8
    assert data["vulnerability"]["directory"] == "vulnerability"
    v = VulnerabilitySpectrum.load(out / "vulnerability")
    assert v.queries == data["queries"] and math.isfinite(v.margin)
    assert (out / "vulnerability.png").exists()


def test_the_evaluation_runs_additive_as_a_peer_column(clip):
    from freqrex.evaluation.protocol import EvalOptions, evaluate_clip

    o = EvalOptions(explain_budget=20, explain_iterations=1, ks=(1,), strategies=("causal", "additive"),
                    flip_budget=16, stft=False)
    rec = evaluate_clip(clip, SR, ToneTrigger(clip, 35.0), o)
    causal, additive = rec["fft_flips"]["causal"]["1"], rec["fft_flips"]["additive"]["1"]
    # equal total queries: the peer gets the causal flip budget plus the explanation's queries
    assert additive["queries"] == causal["queries"] and additive["flip_queries"] > 16
    assert rec["fft_flips_given_explanation"]["additive"]["1"]["flip_queries"] <= 16
    assert additive["success"] and 34.0 <= additive["snr_db"] <= 35.1
    assert additive["closest_name"] == "alarm" and additive["art_max_excess_db"] is not None


def test_the_causal_flip_starts_from_the_additive_refinement(clip):
    from freqrex import manipulation

    assert manipulation.CAUSAL_STARTS_ADDITIVE
    model = ToneTrigger(clip, snr=35.0)
    r = flip(clip, SR, model, strategy="causal", budget=40, explain_budget=30, explain_iterations=1)
    assert r.success and BAND[0] <= r.frequencies_hz[0] <= BAND[1] and 34.0 <= r.snr_db <= 35.1
    v = r.vulnerability
    assert v is not None and v.queries == r.queries  # the explanation's queries counted
    top = v.most_vulnerable(1)[0]
    assert top["lo_hz"] < BAND[1] and top["hi_hz"] > BAND[0]
    # the stft search and fixed changes are not additive: no spectrum
    assert flip(clip, SR, model, strategy="causal", change="remove", budget=4, explain_budget=30,
                explain_iterations=1).vulnerability is None


class ChordTrigger:
    """'alarm' only when two empty bands a fifth apart both hold a tone near ``snr`` dB under the clip:
    1200..1265 Hz (narrower than a semitone, weight 0.48) and 1800..1830 Hz (0.40). Each band's term is
    capped, so a single tone, however loud, never flips the model, but it does cut the margin, and the
    tones of the first band cut it most."""

    class_names = ["calm", "alarm"]
    sample_rate = SR
    BANDS = ((1200, 1265), (1800, 1830))
    WEIGHTS = (0.48, 0.40)

    def __init__(self, clip, snr=30.0):
        x = np.asarray(clip, dtype=np.float64)
        e = float(np.dot(x, x)) / 10 ** (snr / 10) * N / 2
        self.thr = [e + band_energy(x[None], *b)[0] for b in self.BANDS]

    def __call__(self, waves):
        # each band's share: 0 when empty, 1 at 0.5 (log) over its threshold
        u = [np.clip((np.log(band_energy(waves, *b) / t + 1e-300) + 6.0) / 6.5, 0.0, 1.0)
             for b, t in zip(self.BANDS, self.thr)]
        q = self.WEIGHTS[0] * u[0] + self.WEIGHTS[1] * u[1]
        return np.stack([1 - q, q], 1)


def _in(hz, band):
    return band[0] <= hz <= band[1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_k5_combination_joins_tones_a_semitone_apart(clip, seed, monkeypatch):
    """The closest singles are neighbours inside one band; a combination of five of them is one louder
    note. The additive search combines singles at least a semitone apart, so it finds the chord."""
    model = ChordTrigger(clip)
    one = flip(clip, SR, model, k=1, strategy="additive", budget=120, seed=seed)
    assert not one.success
    r = flip(clip, SR, model, k=5, strategy="additive", budget=120, seed=seed)
    assert r.success and r.new_name == "alarm" and 2 <= r.bins.size <= 5
    hz = np.sort(np.asarray(r.frequencies_hz))
    assert any(_in(f, ChordTrigger.BANDS[0]) for f in hz) and any(_in(f, ChordTrigger.BANDS[1]) for f in hz)
    assert np.all(hz[1:] / hz[:-1] >= 2 ** (1 / 12) - 1e-9)  # pairwise a semitone apart at least
    # the direct check: the model flips on the returned clip
    assert int(np.argmax(model(np.asarray(r.audio)[None])[0])) == 1
    # without the spread, the closest singles are all in the first band and nothing flips
    import freqrex.manipulation.additive as additive
    monkeypatch.setattr(additive, "COMBINATION_SPREAD_OCTAVES", 0.0)
    assert not flip(clip, SR, model, k=5, strategy="additive", budget=120, seed=seed).success


class LoudOrChord(ChordTrigger):
    """A chord at about ``snr`` dB (1200..1265 and 1700..1850 Hz), or any loud tone in 2000..3600 Hz: 'alarm' when the energy
    added there passes that of a tone ``loud_snr`` dB under the clip (a shallow slope: 0.5 dB quieter
    scores 0.49). k = 1 flips only loudly, with such a tone; the chord's tones score at most 0.48 alone, so at
    loud levels the loud band's tones come closer than them."""

    BANDS = ((1200, 1265), (1700, 1850))
    LOUD = (2000, 3600)

    def __init__(self, clip, snr=30.0, loud_snr=5.0):
        super().__init__(clip, snr)
        x = np.asarray(clip, dtype=np.float64)
        self.base = band_energy(x[None], *self.LOUD)[0]
        self.loud = float(np.dot(x, x)) / 10 ** (loud_snr / 10) * N / 2

    def __call__(self, waves):
        q_chord = super().__call__(waves)[:, 1]
        added = np.maximum(band_energy(waves, *self.LOUD) - self.base, 1e-300) / self.loud
        q = np.maximum(q_chord, np.clip(0.5 + 0.2 * np.log10(added), 0.0, 1.0))
        return np.stack([1 - q, q], 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_k5_from_a_loud_k1_flip_still_finds_the_quiet_chord(clip, seed):
    """k <= 5 from a loud k = 1 flip probes its singles at the probe level, not just under that flip: there
    the chord's tones come closest, while just under a loud flip every loud-band tone is closer (before,
    the search from the 5 dB flip returned it unchanged). The chord is as quiet as the k <= 5 search
    finds it without a start, never louder than the k = 1 flip, and without that flip's tone, which
    the combination started from but which adds nothing when quiet."""
    model = LoudOrChord(clip)
    one = flip(clip, SR, model, k=1, strategy="additive", budget=160, seed=seed)
    assert one.success and one.snr_db <= 5.5 and _in(one.frequencies_hz[0], LoudOrChord.LOUD)
    alone = flip(clip, SR, model, k=5, strategy="additive", budget=160, seed=seed)
    r = flip(clip, SR, model, k=5, strategy="additive", budget=160, seed=seed, start_from=one)
    assert r.success and r.snr_db >= max(one.snr_db, alone.snr_db) - 0.5 and r.snr_db > 30.0
    hz = np.asarray(r.frequencies_hz)
    assert any(_in(f, LoudOrChord.BANDS[0]) for f in hz) and any(_in(f, LoudOrChord.BANDS[1]) for f in hz)
    assert not any(_in(f, LoudOrChord.LOUD) for f in hz)  # the k = 1 flip's loud tone, left out of the chord
    assert int(np.argmax(model(np.asarray(r.audio)[None])[0])) == 1  # the direct check
