"""The independent audibility check: ART 1.20.1's masking threshold, the port, and flips under it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from freqrex import psychoacoustic as pa
from freqrex.errors import ParameterError
from freqrex.manipulation import flip
from freqrex.signal import art_masking_threshold, audibility

pytest.importorskip("librosa", reason="ART's PsychoacousticMasker needs librosa (in the test extra)")
from art.attacks.evasion.imperceptible_asr.imperceptible_asr import PsychoacousticMasker  # noqa: E402
import librosa  # noqa: E402

SR = 16000


def music(seed: int, seconds: float = 1.0, sr: int = SR) -> np.ndarray:
    """Partials with random onsets and levels, a quiet passage, faint noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = np.zeros(n)
    for _ in range(10):
        start = rng.uniform(0, 0.6) * seconds
        env = np.clip((t - start) / 0.01, 0, 1) * np.exp(-rng.uniform(0.5, 6) * np.maximum(t - start, 0))
        x += rng.uniform(0.02, 0.3) * env * np.sin(2 * np.pi * rng.uniform(80, sr / 2.5) * t + rng.uniform(0, 6))
    x += 0.002 * rng.standard_normal(n)
    return (x / max(1.0, np.abs(x).max())).astype(np.float32)


def art_over(original: np.ndarray, perturbed: np.ndarray, sr: int) -> np.ndarray:
    """ART's check, as docs/audibility.md states it: excess (dB) of the change over ART's threshold per cell."""
    y = np.asarray(original, dtype=np.float32)
    z = np.asarray(perturbed, dtype=np.float32)
    thr, psd_max = PsychoacousticMasker(window_size=2048, hop_size=512, sample_rate=sr).calculate_threshold_and_psd_maximum(y)
    d = (z - y).astype(np.float32)
    spec = librosa.stft(d, n_fft=2048, hop_length=512, window="hann", center=False)
    with np.errstate(divide="ignore"):
        psd = 96.0 - psd_max + 20 * np.log10(np.abs(math.sqrt(8.0 / 3.0) * spec) / 2048)
    return psd - thr


@pytest.mark.parametrize("seed,sr", [(0, 16000), (1, 8000), (2, 22050)])
def test_the_port_computes_arts_threshold(seed, sr):
    x = music(seed, 1.0, sr)
    thr, psd_max = PsychoacousticMasker(2048, 512, sr).calculate_threshold_and_psd_maximum(x)
    port = art_masking_threshold(x, sr)
    assert port.threshold_db.shape == thr.T.shape
    assert port.psd_max_db == pytest.approx(float(psd_max), abs=1e-4)
    finite = np.isfinite(thr)
    assert np.array_equal(finite, np.isfinite(port.threshold_db.T))
    assert np.max(np.abs(port.threshold_db.T[finite] - thr[finite])) < 1e-3


def test_audibility_of_known_changes():
    x = music(3).astype(np.float64)
    none = audibility(x, x, SR)
    assert none["snr_db"] == math.inf and none["quietest_frame_snr_db"] == math.inf
    assert none["over_threshold_share"] == 0 and none["art_over_threshold_share"] == 0
    assert none["louder_than_clip_share"] == 0 and none["inaudible"]
    # doubling the clip: the change equals the clip, 0 dB SNR in every frame, louder nowhere
    same = audibility(x, 2 * x, SR)
    assert same["snr_db"] == pytest.approx(0.0) and same["quietest_frame_snr_db"] == pytest.approx(0.0, abs=1e-9)
    assert same["db_x"] == pytest.approx(0.0) and same["louder_than_clip_share"] == 0
    assert not same["inaudible"] and same["over_threshold_share"] > 0.01 and same["art_max_excess_db"] > 0
    # a change three times the clip is louder than it in every cell the clip has energy in
    loud = audibility(x, 4 * x, SR)
    assert loud["louder_than_clip_share"] > 0.95
    # a quiet noise in the second half only: the whole-clip SNR hides the quietest frame's
    rng = np.random.default_rng(0)
    d = np.zeros_like(x)
    d[SR // 2 :] = 0.01 * rng.standard_normal(SR // 2) * np.abs(x).max()
    half = audibility(x, x + d, SR)
    assert half["quietest_frame_snr_db"] < half["snr_db"]
    assert half["art_over_threshold_share"] == pytest.approx(float(np.mean(art_over(x, x + d, SR) > 0)), abs=2e-3)


def test_thresholds_given_or_computed_give_the_same_report():
    """A search passes the clip's thresholds, computed once; the report must not depend on it."""
    x = music(4).astype(np.float64)
    rng = np.random.default_rng(1)
    y = x + 0.003 * rng.standard_normal(x.size)
    mask = pa.masking_threshold(x, SR, n_fft=1024, hop_length=256)
    given = audibility(x, y, SR, n_fft=1024, hop_length=256, threshold=mask,
                       art_threshold=art_masking_threshold(x, SR))
    assert given == audibility(x, y, SR, n_fft=1024, hop_length=256)
    with pytest.raises(ParameterError, match="threshold"):
        audibility(x, y, SR, threshold=mask)  # 2048 / 512 frames, a 1024 / 256 threshold


class HighBand:
    """'bright' when the energy above 2 kHz in the middle of the clip drops 3% below the original's."""

    class_names = ["dull", "bright"]
    sample_rate = SR

    def __init__(self, reference):
        self.ref = self.energy(np.asarray(reference)[None])[0]

    def energy(self, waves):
        seg = np.asarray(waves, dtype=np.float64)[:, int(0.3 * SR) : int(0.7 * SR)]
        spec = np.fft.rfft(seg * np.hanning(seg.shape[1]), axis=1)
        f = np.fft.rfftfreq(seg.shape[1], 1 / SR)
        return (np.abs(spec[:, f > 2000]) ** 2).sum(1)

    def __call__(self, waves):
        self.seen.extend(np.array(w) for w in waves)
        z = np.clip(300 * (self.energy(waves) / self.ref - 0.97), -30, 30)
        p = 1 / (1 + np.exp(-z))
        return np.stack([1 - p, p], 1)

    seen: list


@pytest.mark.parametrize("seed,geometry", [(0, (2048, 512)), (1, (2048, 512)), (2, (2048, 512)),
                                           (3, (2048, 512)), (4, (1024, 256)), (5, (512, 128))])
@pytest.mark.parametrize("strategy", ["random", "magnitude"])
def test_masked_stft_changes_are_under_arts_threshold_in_every_cell(seed, geometry, strategy):
    """Property: every clip the masked search scores, the flip included, is under ART's threshold
    (ART's own code, framing and normalisation) in every cell, whatever the search's own STFT."""
    x = music(10 + seed)
    model = HighBand(x)
    model.seen = []
    n_fft, hop = geometry
    r = flip(x, SR, model, space="stft", strategy=strategy, budget=24, seed=seed, n_fft=n_fft, hop_length=hop)
    assert r.method == "masked" and len(model.seen) == r.flip_queries + 1
    for w in model.seen[1:]:
        excess = art_over(x, w, SR)
        assert np.max(excess) <= 0, float(np.max(excess))
    assert r.inaudible and r.art_max_excess_db <= 0 and r.max_excess_db <= 0
    assert r.art_over_threshold_share == 0 and r.over_threshold_share == 0


def test_a_loud_fft_flip_reports_what_art_hears():
    """An audible flip is labelled so, with the cells over each threshold counted."""
    x = music(7)
    model = HighBand(x)
    model.seen = []
    r = flip(x, SR, model, k=1, strategy="magnitude", budget=40)
    assert r.success
    mine = audibility(x, r.audio, SR)
    for key in ("snr_db", "quietest_frame_snr_db", "over_threshold_share", "max_excess_db",
                "art_over_threshold_share", "art_max_excess_db", "louder_than_clip_share"):
        assert getattr(r, key) == pytest.approx(mine[key])
    ours = float(np.mean(art_over(x, r.audio, SR) > 0))
    assert r.art_over_threshold_share == pytest.approx(ours, abs=2e-3)
    assert r.inaudible == (r.max_excess_db <= 0 and r.art_max_excess_db <= 0)
    assert r.margin_db == pytest.approx(-max(r.max_excess_db, r.art_max_excess_db))


def test_the_old_import_path_still_works():
    import freqrex.signal as sig

    for name in ("stft", "masking_threshold", "perturbation_margin_db", "power_spectrum_db", "snr_db", "bark"):
        assert getattr(pa, name) is getattr(sig, name)


def test_digital_silence_in_the_clip_is_no_audible_change():
    """A frame of digital silence has ART threshold -inf at 0 Hz: an untouched cell there made
    -inf - -inf = NaN, so a clip with leading or trailing zeros was never "inaudible"."""
    from freqrex.signal import art_excess_db

    sr = 16000
    t = np.arange(sr) / sr
    x = np.concatenate([0.5 * np.sin(2 * np.pi * 440 * t), np.zeros(8192)]).astype(np.float32)
    same = audibility(x, x.copy(), sr)
    assert same["art_max_excess_db"] == -math.inf and same["inaudible"] is True
    y = x.copy()
    y[:1000] += 1e-6 * np.sin(2 * np.pi * 1000 * t[:1000]).astype(np.float32)
    excess = art_excess_db(x, y - x, sr)
    assert not np.isnan(excess).any()
    assert audibility(x, y, sr)["inaudible"] is True
    z = x.copy()
    z[-4096:] += 0.01  # a change inside the silence: audible, and said so
    assert audibility(x, z, sr)["inaudible"] is False
