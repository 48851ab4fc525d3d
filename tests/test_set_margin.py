"""The margin rule's sets keep the decision by ``margin_tol``, not by a hair (checked by direct model calls)."""

from __future__ import annotations

import numpy as np
import pytest

import freqrex
from freqrex.explainer import set_margin

SR = 8000
N = SR  # 1 s: 4,001 bins, 1 Hz apart
TONES = np.arange(600, 2600, 100)  # 20 equal tones: the evidence is spread over all of them


def clip() -> np.ndarray:
    t = np.arange(N) / SR
    rng = np.random.default_rng(0)
    x = sum(0.1 * np.sin(2 * np.pi * f * t) for f in TONES) + 0.001 * rng.standard_normal(N)
    return x.astype(np.float32)


class Spread:
    """'tonal' with probability 0.5 + 0.45 x the share of the tones' energy kept: any one tone keeps
    the class, by a margin that grows with every tone kept (0.045 each)."""

    class_names = ["silent", "tonal"]
    sample_rate = SR

    def __init__(self):
        self.ref = self.energy(clip()[None])[0]

    @staticmethod
    def energy(waves):
        spec = np.abs(np.fft.rfft(np.asarray(waves, dtype=np.float64), axis=1)) ** 2
        return spec[:, TONES].sum(axis=1)

    def __call__(self, waves):
        share = np.clip(self.energy(waves) / self.ref, 0.0, 1.0)
        p = 0.5 + 0.45 * share
        return np.stack([1.0 - p, p], axis=1)


def kept_margin(e, name):
    scores = Spread()(e.audio(name)[None])[0]
    return float(scores[1] - scores[0])


@pytest.mark.parametrize("tol", [0.01, 0.3, 0.6])
def test_the_sufficient_set_holds_margin_tol_by_a_direct_model_call(tol):
    e = freqrex.explain(clip(), SR, Spread(), seed=0, margin_tol=tol, max_queries=300)
    assert e.target == 1
    want = min(tol, 0.45)  # the clip's own margin is 0.9: at most half of it is asked
    kept = kept_margin(e, "sufficient")
    assert kept >= want - 1e-9
    tones = int(np.isin(np.flatnonzero(e.get_set("sufficient")), TONES).sum())
    assert tones >= int(np.ceil(want / 0.045 - 1e-9))  # margin 0.9 x share: each tone adds 0.045
    assert e.set_margins["sufficient"]["kept_margin"] == pytest.approx(kept, abs=1e-6)
    # a margin_tol beyond what the clip itself holds is flagged, never silently met
    assert any("sufficient set keeps" in w for w in e.warnings) == (tol > 0.45)


def test_the_paper_rule_stops_at_the_first_prefix_that_keeps_the_class():
    e = freqrex.explain(clip(), SR, Spread(), seed=0, rule="minimal", iterations=2, budget=150)
    assert 0 < kept_margin(e, "sufficient") < 0.1  # top-1 by a hair: its rule asks no more


def test_the_margin_asked_never_exceeds_half_the_clip_s_own():
    assert set_margin(np.array([0.2, 0.8]), 1, 0.01) == 0.01
    assert set_margin(np.array([0.49, 0.51]), 1, 0.01) == pytest.approx(0.01)
    assert set_margin(np.array([0.495, 0.505]), 1, 0.01) == pytest.approx(0.005)
    assert set_margin(np.array([0.5, 0.5]), 1, 0.01) is None  # a tie: top-1 is all there is
    assert set_margin(np.array([0.7, 0.3]), 1, 0.01) is None  # a target that is not the decision
    assert set_margin(np.array([1.0]), 0, 0.01) is None
