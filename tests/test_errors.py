"""Every error a user can cause is one of ours, with a clear message."""

import numpy as np
import pytest

import freqrex
from freqrex import ModelError, ParameterError, reference
from freqrex.options import EngineOptions
from synthetic import SR, BandClassifier, make_clip


def good_model(w):
    return np.tile([0.3, 0.7], (len(w), 1))


@pytest.mark.parametrize(
    "audio",
    [
        np.zeros(0, np.float32),
        np.array([1.0], np.float32),
        np.array([0.0, np.nan, 0.0], np.float32),
        np.array([0.0, np.inf, 0.0], np.float32),
        np.zeros((2, 100), np.float32),
        np.zeros((2, 2, 100), np.float32),
        np.array(["a", "b"]),
    ],
)
@pytest.mark.parametrize("backend", ["rust", "numpy"])
def test_bad_audio(audio, backend):
    with pytest.raises(ParameterError):
        freqrex.explain(audio, SR, good_model, budget=10, backend=backend)


@pytest.mark.parametrize("sr", [0, -1, 1.5, "16k", None, True])
def test_bad_sample_rate(sr):
    with pytest.raises(ParameterError):
        freqrex.explain(make_clip(), sr, good_model, budget=10)


def test_sample_rate_must_match_the_model():
    with pytest.raises(ParameterError, match="expects 8000 Hz"):
        freqrex.explain(make_clip(), 16000, BandClassifier(), budget=10)


@pytest.mark.parametrize(
    "options",
    [
        dict(space="wavelet"),
        dict(n_parts=1),
        dict(n_parts=9),
        dict(min_part=1),
        dict(max_depth=0),
        dict(iterations=0),
        dict(budget=-1),
        dict(budget=1.5),
        dict(seed=-1),
        dict(seed=2**64),
        dict(cuts="bark"),
        dict(rule="shapley"),
        dict(threshold=0.0),
        dict(threshold=1.5),
        dict(tol=-0.1),
        dict(tol=float("nan")),
        dict(batch_size=0),
        dict(extraction_batch=1),
        dict(space="stft", n_fft=2),
        dict(space="stft", n_fft=256, hop_length=200),
        dict(fmin=-5.0),
        dict(fmin=3000.0, fmax=1000.0),
        dict(fmin=5000.0),  # above Nyquist: no bin in the band
        dict(mask_value=float("inf")),
        dict(n_threads=0),
        dict(not_an_option=1),
    ],
)
@pytest.mark.parametrize("backend", ["rust", "numpy"])
def test_bad_options(options, backend):
    with pytest.raises(ParameterError):
        freqrex.explain(make_clip(), SR, good_model, backend=backend, **{"budget": 10, **options})


def test_bad_options_are_rejected_before_any_model_call():
    calls = []

    def model(w):
        calls.append(len(w))
        return good_model(w)

    with pytest.raises(ParameterError):
        freqrex.Explainer(model, cuts="bark")
    assert calls == []


def raises(w):
    raise RuntimeError("CUDA out of memory")


def wrong_batch(w):
    return np.zeros((len(w) + 1, 2))


def one_dim(w):
    return np.zeros(len(w))


def nan_scores(w):
    return np.full((len(w), 2), np.nan)


def not_an_array(w):
    return "cat"


class NanLater:
    """Fine on the original, NaN on mutants: errors in the middle of a search."""

    def __init__(self):
        self.calls = 0

    def __call__(self, w):
        self.calls += 1
        if self.calls > 1:
            return np.full((len(w), 2), np.inf)
        return good_model(w)


class ClassesChange:
    def __init__(self):
        self.calls = 0

    def __call__(self, w):
        self.calls += 1
        return np.zeros((len(w), 2 if self.calls == 1 else 3)) + [0.3, 0.7, 0.0][: 2 if self.calls == 1 else 3]


@pytest.mark.parametrize("model", [raises, wrong_batch, one_dim, nan_scores, not_an_array, NanLater, ClassesChange])
@pytest.mark.parametrize("backend", ["rust", "numpy"])
def test_misbehaving_models(model, backend):
    if isinstance(model, type):
        model = model()  # stateful models: a fresh one per test
    with pytest.raises(ModelError) as info:
        freqrex.explain(make_clip(), SR, model, budget=50, backend=backend)
    assert str(info.value)


def test_model_exception_is_chained():
    with pytest.raises(ModelError, match="CUDA out of memory") as info:
        freqrex.explain(make_clip(), SR, raises, budget=10)
    assert isinstance(info.value.__cause__, RuntimeError)


def test_model_must_be_usable():
    with pytest.raises(ModelError, match="unknown model"):  # a string is a model name or path
        freqrex.explain(make_clip(), SR, "not a model", budget=10)
    with pytest.raises(ModelError, match="TorchModel"):  # the error names the adapters
        freqrex.explain(make_clip(), SR, 42, budget=10)


def test_errors_are_in_one_hierarchy():
    assert issubclass(ParameterError, freqrex.FreqrexError) and issubclass(ParameterError, ValueError)
    assert issubclass(ModelError, freqrex.FreqrexError)
    assert issubclass(freqrex.AudioFileError, freqrex.FreqrexError)


def test_core_protocol_misuse_is_an_error_not_a_crash():
    from freqrex import _core

    space = _core.FrequencySpace(make_clip())
    engine = _core.Engine(space, 1, 0.8, EngineOptions(band=(0, space.n_bins), budget=30))
    waves = engine.ask(8)
    with pytest.raises(freqrex.FreqrexError):
        engine.ask(8)  # ask twice without tell
    with pytest.raises(freqrex.FreqrexError):
        engine.tell(np.zeros((3, 2)))  # wrong number of rows
    with pytest.raises(ModelError):
        engine.tell(np.zeros((len(waves), 1)))  # too few classes for the target
    with pytest.raises(ParameterError):
        _core.Engine(space, 1, 0.8, EngineOptions(band=(10, 5)))
    with pytest.raises(ParameterError):
        _core.Engine(space, 1, float("nan"), EngineOptions(band=(0, 10)))
    with pytest.raises(ParameterError):
        _core.Engine(space, 1, 0.8, EngineOptions(band=(0, 10), n_parts=100))


@pytest.mark.parametrize(
    "options, match",
    [
        ({"band": (0, 10)}, "engine options"),  # a dict has items, not the attributes
        (object(), "engine options"),  # no attributes at all
        (EngineOptions(band=(0, 10), iterations=2**40), "engine options"),  # above u32
        (EngineOptions(band=(0, 10), budget=-1), "engine options"),  # negative into u64
        (EngineOptions(band=(0, 10), cuts=3), "engine options"),  # not a string
        (EngineOptions(band=(0, 10), rule="margin"), "rule"),  # the core's own check
        (EngineOptions(band=(0, 10), cuts="linear"), "cuts"),
    ],
)
def test_core_engine_options_are_parsed_once_into_our_errors(options, match):
    from freqrex import _core

    space = _core.FrequencySpace(make_clip())
    with pytest.raises(ParameterError, match=match):
        _core.Engine(space, 1, 0.8, options)


def test_both_engines_take_the_same_options_object():
    from freqrex import _core

    clip = make_clip()
    options = EngineOptions(band=(0, 200), budget=12, iterations=2, rule="minimal", seed=3)
    rust = _core.Engine(_core.FrequencySpace(clip), 1, 0.8, options)
    numpy = reference.Engine(reference.FrequencySpace(clip), 1, 0.8, options)
    a, b = rust.ask(64), numpy.ask(64)
    assert a is not None and b is not None and a.shape == b.shape
    np.testing.assert_allclose(a, b, atol=1e-5)
