"""Plots: every function on fft and stft explanations of a synthetic model, absent sets, ax= and Figures."""

from __future__ import annotations

import dataclasses
import io
from types import SimpleNamespace

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib", reason="plots need matplotlib (pip install freqrex[plot])")
matplotlib.use("Agg")

import freqrex  # noqa: E402
from freqrex import plots  # noqa: E402
from synthetic import SR, BandClassifier, make_clip  # noqa: E402


@pytest.fixture(scope="module")
def explanations():
    x = make_clip()
    model = BandClassifier("and")
    fft = freqrex.explain(x, SR, model, budget=300, iterations=2)
    stft = freqrex.explain(x, SR, model, space="stft", n_fft=512, hop_length=128, budget=300, iterations=2)
    return {"fft": fft, "stft": stft, "x": x, "model": model}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=50)
    data = buf.getvalue()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    return data


def _axes(figsize=(6, 3)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.add_subplot()


def _without(e, *names):
    reasons = dict(e.reasons)
    reasons.update({n: f"no {n} (test)" for n in names})
    return dataclasses.replace(e, reasons=reasons, **{n: None for n in names})


def test_matplotlib_is_imported_lazily():
    import subprocess
    import sys

    code = "import freqrex.plots, freqrex.report, sys; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("space", ["fft", "stft"])
def test_plot_explanation_returns_figure(explanations, space):
    from matplotlib.figure import Figure

    e = explanations[space]
    fig = plots.plot_explanation(e)
    assert isinstance(fig, Figure)
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    for tag in ("(a)", "(b)", "(c)", "(d)", "(e)"):
        assert any(t.startswith(tag) for t in titles), (tag, titles)
    assert any("log frequency" in t for t in titles) and any("linear frequency" in t for t in titles)
    _png(fig)


@pytest.mark.parametrize("space", ["fft", "stft"])
def test_panels_draw_on_a_given_ax(explanations, space):
    e = explanations[space]
    for draw in (
        lambda ax: plots.plot_waveform(e, ax=ax),
        lambda ax: plots.plot_waveform(e.audio("sufficient"), e.sample_rate, ax=ax, title="s"),
        lambda ax: plots.plot_responsibility(e, ax=ax, scale="linear"),
        lambda ax: plots.plot_responsibility(e, ax=ax, scale="log"),
        lambda ax: plots.plot_sets(e, ax=ax),
        lambda ax: plots.plot_sets(e, ax=ax, scale="linear"),
    ):
        fig, ax = _axes()
        assert draw(ax) is ax
        assert ax.has_data()
        _png(fig)


def test_panels_make_their_own_figure(explanations):
    from matplotlib.figure import Figure

    e = explanations["fft"]
    for ax in (plots.plot_waveform(e), plots.plot_responsibility(e), plots.plot_sets(e)):
        assert isinstance(ax.figure, Figure)
        _png(ax.figure)


def test_log_scale_axes(explanations):
    fig, ax = _axes()
    plots.plot_responsibility(explanations["fft"], ax=ax, scale="log")
    assert ax.get_xscale() == "log" and ax.get_xlim()[0] > 0
    fig, ax = _axes()
    plots.plot_responsibility(explanations["stft"], ax=ax, scale="log")
    assert ax.get_yscale() == "log" and ax.get_ylim()[0] > 0
    with pytest.raises(freqrex.ParameterError):
        plots.plot_responsibility(explanations["fft"], scale="mel")


def test_sets_legend_names_three_layers_and_hz(explanations):
    e = explanations["fft"]
    ax = plots.plot_sets(e)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) == 3
    assert labels[0].startswith("sufficient") and "Hz" in labels[0]
    assert "sufficient & necessary" in labels[1] and "complete" in labels[2]
    lo, hi = e.bands("sufficient")[0]
    texts = [t.get_text() for t in ax.texts]
    assert any(f"{lo:.0f}" in t and "Hz" in t for t in texts), texts
    colors = {plots.SET_COLORS[n] for n in ("sufficient", "sufficient_necessary", "complete")}
    assert len(colors) == 3


@pytest.mark.parametrize("space", ["fft", "stft"])
def test_absent_sets_give_annotated_empty_panels(explanations, space):
    e = _without(explanations[space], "sufficient", "sufficient_necessary", "complete")
    fig = plots.plot_explanation(e)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("no sufficient set" in t and "(test)" in t for t in texts), texts
    assert any("no sufficient-and-necessary set" in t for t in texts), texts
    labels = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert sum("absent" in t for t in labels) == 3
    _png(fig)


def test_partly_absent_sets(explanations):
    e = _without(explanations["fft"], "sufficient_necessary")
    fig = plots.plot_explanation(e)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("no sufficient-and-necessary set" in t for t in texts)
    _png(fig)


def test_explanation_without_audio(explanations):
    e = dataclasses.replace(explanations["fft"], _audio=None, _space=None)
    fig = plots.plot_explanation(e)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("unavailable" in t for t in texts)
    _png(fig)


def test_band_text():
    assert plots.band_text([(972.0, 1010.0), (1700.0, 1700.0)]) == "972–1010, 1700 Hz"
    assert plots.band_text([]) == "no bands"
    assert plots.band_text([(1.0, 2.0)] * 5, 2).endswith("(+3 more)")


def _fft_flip(explanations):
    x, model = explanations["x"], BandClassifier("one")
    spec = np.fft.rfft(x.astype(np.float64))
    spec[1000] = 0  # the 1000 Hz evidence tone is exactly bin 1000 of this 1 s clip
    y = np.fft.irfft(spec, n=x.size).astype(np.float32)
    p = model(y[None])[0]
    # Duck-typed like freqrex.flip.FlipResult: `audio` is the perturbed clip, the original is not held.
    return SimpleNamespace(success=bool(np.argmax(p) == 0), original_class=1, new_class=int(np.argmax(p)),
                           original_score=0.8, new_score=float(p.max()), bins=np.array([1000]),
                           frequencies_hz=np.array([1000.0]), frames=None, audio=y, sample_rate=SR, snr_db=10.0,
                           queries=3, space="fft"), x


def test_plot_flip_fft(explanations):
    flip, x = _fft_flip(explanations)
    assert flip.success
    fig, ax = _axes((8, 3))
    assert plots.plot_flip(flip, ax=ax, audio=x) is ax
    lo, hi = ax.get_xlim()
    assert lo < 1000 < hi and hi - lo < 500  # zoomed on the changed bin
    assert "succeeded" in ax.get_title(loc="left")
    assert any("1000 Hz" in t.get_text() for t in ax.texts)
    _png(fig)


def test_plot_flip_finds_changed_bins_and_takes_audio(explanations):
    flip, x = _fft_flip(explanations)
    bare = SimpleNamespace(perturbed=flip.audio, sample_rate=SR, success=True)
    ax = plots.plot_flip(bare, audio=x)  # no bins listed: found from the spectra
    assert any("1000 Hz" in t.get_text() for t in ax.texts)
    held = SimpleNamespace(audio=flip.audio, original_audio=x, sample_rate=SR)  # an original held by the result
    assert any("1000 Hz" in t.get_text() for t in plots.plot_flip(held).texts)
    with pytest.raises(freqrex.ParameterError, match="original"):
        plots.plot_flip(bare)


def test_plot_flip_stft_shows_masking_threshold(explanations):
    from freqrex.psychoacoustic import perturbation_margin_db
    from freqrex.reference import FrequencySpace

    x = explanations["x"]
    space = FrequencySpace(x.astype(np.float64), space="stft", n_fft=512, hop_length=128)
    keep = np.ones(space.shape, dtype=bool)
    keep[30:33, 64] = False
    y = space.synthesize(keep[None])[0]
    margin, inaudible = perturbation_margin_db(x, y, SR, n_fft=512, hop_length=128)
    for extra in ({"bins": np.array([64, 64, 64]), "frames": np.array([30, 31, 32])},
                  {"cells": np.array([[30, 64], [31, 64], [32, 64]])}, {"bins": 30 * 257 + np.array([64])}, {}):
        flip = SimpleNamespace(success=False, original_class=1, new_class=1, audio=y, sample_rate=SR,
                               space="stft", inaudible=inaudible, margin_db=margin, **extra)
        fig, ax = _axes((8, 3))
        plots.plot_flip(flip, ax=ax, audio=x, n_fft=512, hop_length=128)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert "masking threshold" in labels and "original PSD" in labels
        assert ax.get_xscale() == "log"
        note = " ".join(t.get_text() for t in ax.texts)
        assert "margin" in note and ("inaudible" in note or "audible" in note)
        if extra:  # listed cells; otherwise they are found from the (smeared) spectra
            assert "frame 30 " in note and "changed cell" in note
        _png(fig)


def test_plot_waveform_refuses_what_it_cannot_draw_truthfully():
    """Stereo was ravelled (a time axis twice too long); a zero rate divided by zero, a negative one drew
    a negative axis, NaN raised matplotlib's ValueError: all are freqrex's ParameterError now."""
    from freqrex import ParameterError
    from freqrex.viz import plot_waveform

    x = make_clip()
    ax = plot_waveform(x, SR)
    assert ax.get_xlim() == pytest.approx((0.0, x.size / SR))
    # one channel in a 2-D array is that channel: the axis is the clip's length
    for one in (x[None, :], x[:, None]):
        assert plot_waveform(one, SR).get_xlim() == pytest.approx((0.0, x.size / SR))
    assert plot_waveform(x, 8000.0).get_xlim() == pytest.approx((0.0, x.size / SR))  # a float rate is fine
    with pytest.raises(ParameterError, match="one channel"):
        plot_waveform(np.stack([x, x]), SR)
    for rate in (0, -SR, float("nan"), float("inf"), True, "8000", 10**9):
        with pytest.raises(ParameterError, match="sample_rate"):
            plot_waveform(x, rate)
    for bad in (np.nan, np.inf):
        y = x.copy()
        y[10] = bad
        with pytest.raises(ParameterError, match="non-finite"):
            plot_waveform(y, SR)
        with pytest.raises(ParameterError, match="non-finite"):
            plot_waveform(x, SR, reference=y)
