"""Synthetic classifiers with planted evidence, whose right answer is known."""

from __future__ import annotations

import numpy as np


SR = 8000
N = 8000  # 1 s: fft bins are exactly 1 Hz apart


def tone(freq, amp, n=N, sr=SR, start=0.0, stop=None):
    t = np.arange(n) / sr
    x = amp * np.sin(2 * np.pi * freq * t)
    if start or stop is not None:
        env = (t >= start) & (t < (stop if stop is not None else t[-1] + 1))
        x = x * env
    return x


def make_clip(seed=0, n=N):
    """Evidence tones at 1000 and 1700 Hz, a loud decoy at 2500 Hz, quiet noise."""
    rng = np.random.default_rng(seed)
    x = tone(1000, 0.3, n) + tone(1700, 0.3, n) + tone(2500, 1.0, n) + 0.01 * rng.standard_normal(n)
    return x.astype(np.float32)


def band_energy(waves, lo, hi, sr=SR):
    """Energy of each waveform between lo and hi Hz (inclusive)."""
    spec = np.fft.rfft(np.asarray(waves, dtype=np.float64), axis=1)
    f = np.fft.rfftfreq(waves.shape[1], 1.0 / sr)
    sel = (f >= lo) & (f <= hi)
    return (np.abs(spec[:, sel]) ** 2).sum(axis=1) / waves.shape[1]


class BandClassifier:
    """Two classes. Class 1 ("present") when the evidence rule holds on the energy
    of the planted bands; otherwise class 0. Probabilities through a sigmoid.

    mode: "one" (band A), "and" (A and B), "or" (A or B). Energy elsewhere,
    including the loud decoy, is ignored.
    """

    def __init__(self, mode="one", bands=((980, 1020), (1680, 1720)), threshold=None):
        self.mode = mode
        self.bands = bands
        self.sample_rate = SR
        self.class_names = ["absent", "present"]
        self.calls = 0
        self.evaluated = 0
        self.threshold = threshold

    def evidence(self, waves):
        e = [band_energy(waves, lo, hi) for lo, hi in self.bands]
        thr = self.threshold if self.threshold is not None else 0.25 * 0.3**2 / 2 * N / 2
        a, b = (np.log(e[0] + 1e-12) - np.log(thr)), (np.log(e[1] + 1e-12) - np.log(thr))
        if self.mode == "one":
            return a
        if self.mode == "and":
            return np.minimum(a, b)
        return np.maximum(a, b)

    def __call__(self, waves):
        self.calls += 1
        self.evaluated += len(waves)
        z = np.clip(self.evidence(waves), -30, 30)
        p = 1.0 / (1.0 + np.exp(-z))
        return np.stack([1 - p, p], axis=1)


class RecordingModel:
    """Wraps a model and records every waveform it sees."""

    def __init__(self, model):
        self.model = model
        self.seen = []
        self.batches = []

    def __call__(self, waves):
        self.batches.append(len(waves))
        self.seen.extend(np.asarray(w).tobytes() for w in waves)
        return self.model(waves)




#: The pass/fail search as the defaults had it before ``rule="margin"`` became the default:
#: the tests of the ReX-style search (rules "minimal", "rex", "confidence") run with these.
PASS_FAIL = dict(rule="minimal", max_queries=None, cuts="uniform", iterations=20, budget=2000)


def explain_pf(audio, sample_rate, model, **options):
    """``freqrex.explain`` with the pass/fail search's options (explicit options win)."""
    import freqrex

    return freqrex.explain(audio, sample_rate, model, **{**PASS_FAIL, **options})


def reference_pf(audio, sample_rate, model, **options):
    """``freqrex.reference.explain`` with the pass/fail search's options (explicit options win)."""
    from freqrex import reference

    return reference.explain(audio, sample_rate, model, **{**PASS_FAIL, **options})
