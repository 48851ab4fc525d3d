"""FreqRISE peer (benches/peers/freqrise.py): exact query count, determinism, planted band."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

from synthetic import SR, BandClassifier, make_clip

_PATH = os.path.join(os.path.dirname(__file__), "..", "benches", "peers", "freqrise.py")
_spec = importlib.util.spec_from_file_location("freqrise_peer", _PATH)
freqrise = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(freqrise)


class Counting:
    def __init__(self, model):
        self.model = model
        self.sample_rate = model.sample_rate
        self.rows = 0

    def __call__(self, waves):
        self.rows += len(waves)
        return self.model(waves)


def test_query_count_is_exact():
    model = Counting(BandClassifier("one"))
    x = make_clip(0)
    sal, info = freqrise.freqrise_saliency(x, SR, model, n_masks=37, batch_size=8, seed=1, return_info=True)
    assert model.rows == 38 == info["queries"]  # 37 masks + the target query
    assert sal.shape == (x.size // 2 + 1,)
    model.rows = 0
    freqrise.freqrise_saliency(x, SR, model, n_masks=37, batch_size=8, seed=1, target=1)
    assert model.rows == 37


def test_deterministic_and_batch_independent():
    x = make_clip(0)
    a = freqrise.freqrise_saliency(x, SR, BandClassifier("one"), n_masks=40, seed=3, batch_size=7, target=1)
    b = freqrise.freqrise_saliency(x, SR, BandClassifier("one"), n_masks=40, seed=3, batch_size=40, target=1)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    c = freqrise.freqrise_saliency(x, SR, BandClassifier("one"), n_masks=40, seed=4, batch_size=7, target=1)
    assert not np.allclose(a, c)


def test_masks_are_smooth_and_bounded():
    rng = np.random.default_rng(0)
    coords = freqrise.cell_coordinates(1000, 16)
    m = freqrise.freqrise_masks(rng, 50, coords, 16, 0.5)
    assert m.shape == (50, 1000) and m.min() >= 0 and m.max() <= 1
    assert np.abs(np.diff(m, axis=1)).max() <= 16 / 999 + 1e-6  # linear interpolation: bounded slope
    assert 0.4 < m.mean() < 0.6


@pytest.mark.parametrize("spacing", ["linear", "log"])
def test_recovers_planted_band(spacing):
    """Class 1 depends only on the 980-1020 Hz band (the 1000 Hz tone); the 2500 Hz decoy is louder."""
    model = BandClassifier("one")
    x = make_clip(0)
    sal = freqrise.freqrise_saliency(x, SR, model, n_masks=300, cells=64, spacing=spacing, seed=0)
    freqs = np.fft.rfftfreq(x.size, 1.0 / SR)
    top = freqrise.ranking(sal)[:20]
    assert np.all(np.abs(freqs[top] - 1000) <= 70), freqs[top]
    # the planted tone outranks the loud decoy and the other tone
    assert sal[1000] > sal[2500] and sal[1000] > sal[1700]


def test_rejects_bad_input():
    model = BandClassifier("one")
    with pytest.raises(ValueError):
        freqrise.freqrise_saliency(make_clip(0), SR, model, n_masks=0)
    with pytest.raises(ValueError):
        freqrise.freqrise_saliency(make_clip(0), 16000, model, n_masks=4)
    with pytest.raises(ValueError):
        freqrise.freqrise_saliency(make_clip(0), SR, model, n_masks=4, p=1.0)


def test_shap_bands_exact_queries_and_planted_band():
    """The SHAP-over-bands peer spends exactly its queries and credits the band holding 1000 Hz."""
    pytest.importorskip("shap")
    path = os.path.join(os.path.dirname(__file__), "..", "benches", "peers", "shap_bands.py")
    spec = importlib.util.spec_from_file_location("shap_bands_peer", path)
    shap_bands = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(shap_bands)
    model = Counting(BandClassifier("one"))
    x = make_clip(0)
    sal, info = shap_bands.shap_band_saliency(x, SR, model, queries=150, return_info=True)
    assert model.rows == 150 == info["queries"]
    edges = np.asarray(info["edges"])
    best = int(np.argmax(info["band_values"]))
    assert edges[best] <= 1000 < edges[best + 1]
    assert np.argmax(sal) >= edges[best] and np.argmax(sal) < edges[best + 1]
