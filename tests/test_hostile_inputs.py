"""Hostile inputs: sizes at and beyond every bound, meaningless clips, misbehaving models.

Each case gives one of freqrex's exceptions (or a warning), never an abort, a
panic, a foreign exception or a hang.
"""

import threading
import time
import warnings

import numpy as np
import pytest

import freqrex
from freqrex import _core
from freqrex.errors import FreqrexError, FreqrexWarning, ModelError, ParameterError
from freqrex.options import MAX_CELLS, MAX_ITERATIONS, MAX_N_THREADS, EngineOptions, make_options
from synthetic import PASS_FAIL, SR, BandClassifier, make_clip

FAST = dict(PASS_FAIL, budget=24, iterations=2)


def good_model(w):
    return np.tile([0.3, 0.7], (len(w), 1))


# ------------------------------------------------------------------ options
@pytest.mark.parametrize(
    "options",
    [
        dict(iterations=300_000_000),
        dict(iterations=MAX_ITERATIONS + 1),
        dict(budget=2**40),
        dict(batch_size=2**31, budget=10**9),
        dict(n_threads=5000),
        dict(n_threads=MAX_N_THREADS + 1),
        dict(n_fft=2**32, space="stft"),
        dict(hop_length=2**32, space="stft"),
        dict(seed=2**64),
        dict(max_queries=2**64),
        dict(class_maps=2**32),
        dict(alternatives=2**32),
        dict(min_part=2**64),
        dict(max_depth=2**32),
        dict(extraction_batch=2**63),
        dict(fmin=10**400),
        dict(fmax=float("inf")),
        dict(mask_value=1e300),
        dict(tol=float("nan")),
        dict(model_timeout=0),
        dict(model_timeout=float("inf")),
        dict(model_timeout=-1.0),
    ],
)
@pytest.mark.parametrize("backend", ["rust", "numpy"])
def test_options_beyond_their_maximum_are_parameter_errors(options, backend):
    with pytest.raises(ParameterError):
        freqrex.explain(make_clip(), SR, good_model, backend=backend, **{**FAST, **options})


def test_hop_length_one_on_30_s_is_refused_before_allocating():
    x = np.sin(np.arange(30 * 16000) * 0.05).astype(np.float32)
    with pytest.raises(ParameterError, match="cells"):
        freqrex.explain(x, 16000, good_model, space="stft", hop_length=1, **FAST)


def test_size_check_counts_cells():
    opts = make_options(space="stft", n_fft=2048, hop_length=1)
    opts.check_size(MAX_CELLS // 1025 - 2)  # just fits
    with pytest.raises(ParameterError):
        opts.check_size(30 * 16000)


@pytest.mark.parametrize("sr", [float("nan"), float("inf"), -float("inf"), 2**32, 2**64, 10**400, 16000.5])
def test_non_finite_or_huge_sample_rates(sr):
    with pytest.raises(ParameterError):
        freqrex.explain(make_clip(), sr, good_model, **FAST)


# -------------------------------------------------------------- the core
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(space="stft", n_fft=2**62, hop_length=1),
        dict(space="stft", n_fft=2**40, hop_length=2**39),
        dict(space="stft", n_fft=2048, hop_length=1),
    ],
)
def test_core_space_sizes_are_errors_not_panics(kwargs):
    x = np.sin(np.arange(480_000) * 0.05).astype(np.float32)
    with pytest.raises(ParameterError, match="memory|n_fft|hop_length"):
        _core.FrequencySpace(x, **kwargs)


def test_core_memory_estimate_is_in_the_message():
    x = np.sin(np.arange(480_000) * 0.05).astype(np.float32)
    with pytest.raises(ParameterError, match=r"about [0-9.]+ GiB of memory \(estimate\)"):
        _core.FrequencySpace(x, space="stft", n_fft=2048, hop_length=1)


def test_core_engine_sizes_are_errors():
    space = _core.FrequencySpace(make_clip(), space="fft")
    with pytest.raises(ParameterError, match="memory"):
        _core.Engine(space, 1, 0.9, EngineOptions(band=(0, space.n_bins), iterations=2**32 - 1))
    with pytest.raises(ParameterError):
        _core.FrequencySpace(make_clip(), n_threads=100_000)
    with pytest.raises(ParameterError):
        _core.splitmix64(0, 2**60)


def test_core_memory_limit_is_adjustable():
    old = _core.memory_limit()
    try:
        _core.memory_limit(1 << 20)
        with pytest.raises(ParameterError, match="limit of 1.0 MiB"):
            _core.FrequencySpace(np.sin(np.arange(200_000) * 0.1).astype(np.float32), space="fft")
    finally:
        _core.memory_limit(old)
    assert _core.memory_limit() == old


def test_core_ask_with_a_huge_batch_is_bounded():
    space = _core.FrequencySpace(make_clip(), space="fft")
    engine = _core.Engine(space, 1, 0.9, EngineOptions(band=(0, space.n_bins), iterations=1, budget=8, rule="minimal"))
    waves = engine.ask(2**62)
    assert waves is not None and 1 <= waves.shape[0] <= 8


# ------------------------------------------------------- meaningless clips
@pytest.mark.parametrize(
    "audio",
    [np.zeros(8000, np.float32), np.full(8000, 0.25, np.float32), np.full(8000, -1, np.int16)],
    ids=["silence", "constant", "constant-int16"],
)
@pytest.mark.parametrize("backend", ["rust", "numpy"])
def test_silent_or_constant_clip(audio, backend):
    with pytest.raises(ParameterError, match="silent clip"):
        freqrex.explain(audio, SR, good_model, backend=backend, **FAST)


def test_silent_clip_is_not_flipped():
    with pytest.raises(ParameterError, match="silent clip"):
        freqrex.flip(np.zeros(8000, np.float32), SR, BandClassifier(), budget=4)


@pytest.mark.parametrize("peak", [3e38, 1e7])
def test_absurdly_large_samples(peak):
    x = make_clip()
    x[100] = peak
    with pytest.raises(ParameterError, match="peaks"):
        freqrex.explain(x, SR, good_model, **FAST)


# ------------------------------------------------------ misbehaving models
def test_every_class_tied_is_a_model_error():
    with pytest.raises(ModelError, match="same score"):
        freqrex.explain(make_clip(), SR, lambda w: np.full((len(w), 3), 0.5), **FAST)


def test_top_tie_is_a_warning():
    with pytest.warns(FreqrexWarning, match="tied"):
        freqrex.explain(make_clip(), SR, lambda w: np.tile([0.4, 0.4, 0.2], (len(w), 1)), **FAST)


def test_a_model_editing_its_input_in_place_cannot_change_the_clip():
    x = make_clip()
    before = x.copy()

    def vandal(w):
        w[:] = 0.0  # a model that normalises in place, say
        return np.tile([0.3, 0.7], (len(w), 1))

    e = freqrex.explain(x, SR, vandal, **FAST)
    assert np.array_equal(x, before)
    assert np.array_equal(e.audio("original"), before)


@pytest.mark.parametrize(
    "scores",
    [
        lambda n: np.tile([0.3 + 1j, 0.7], (n, 1)),
        lambda n: np.array([["0.3", "0.7"]] * n),
        lambda n: np.array([[object(), object()]] * n),
    ],
    ids=["complex", "string", "object"],
)
def test_non_real_scores_are_refused(scores):
    with pytest.raises(ModelError, match="real-valued"):
        freqrex.explain(make_clip(), SR, lambda w: scores(len(w)), **FAST)


def test_model_timeout():
    release = threading.Event()

    def stuck(w):
        if len(w) > 1:
            release.wait(30)  # a model that hangs on batches
        return np.tile([0.3, 0.7], (len(w), 1))

    try:
        start = time.monotonic()
        with pytest.raises(ModelError, match="model_timeout=0.2"):
            freqrex.explain(make_clip(), SR, stuck, model_timeout=0.2, **FAST)
        assert time.monotonic() - start < 25  # it did not wait for the model
    finally:
        release.set()


def test_model_timeout_bounds_the_flip_search_too():
    release = threading.Event()

    def stuck(w):
        if len(w) > 1:
            release.wait(30)  # hangs on the flip search's batches, answers the original clip
        return np.tile([0.3, 0.7], (len(w), 1))

    try:
        start = time.monotonic()
        with pytest.raises(ModelError, match="model_timeout=0.2"):
            freqrex.flip(make_clip(), SR, stuck, strategy="random", budget=20, batch_size=8, model_timeout=0.2)
        assert time.monotonic() - start < 25
    finally:
        release.set()


def test_model_timeout_passes_results_and_errors_through():
    e = freqrex.explain(make_clip(), SR, BandClassifier(), model_timeout=60, **FAST)
    assert e.queries > 1

    def broken(w):
        raise KeyError("boom")

    with pytest.raises(ModelError, match="KeyError"):
        freqrex.explain(make_clip(), SR, broken, model_timeout=60, **FAST)


def test_no_freqrex_error_is_a_panic_exception():
    # pyo3's PanicException derives from BaseException; ours from Exception.
    assert issubclass(FreqrexError, Exception)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        space = _core.FrequencySpace(make_clip(), space="fft")
        with pytest.raises(ParameterError):
            space.synthesize(np.ones((1, 1, 3), bool))


def test_a_panic_in_the_core_reaches_python_as_our_error():
    with pytest.raises(FreqrexError, match="deliberate panic"):
        _core._panic_for_test()


def test_a_huge_batch_size_runs_in_batches_that_fit():
    old = _core.memory_limit()
    try:
        _core.memory_limit(4 << 20)  # 4 MiB: about 40 mutants of 8000 samples per batch
        e = freqrex.explain(make_clip(), SR, BandClassifier(), **{**FAST, "budget": 200, "batch_size": 65_536})
        assert 1 < e.queries <= 1 + 200 + e.extraction_queries
    finally:
        _core.memory_limit(old)


@pytest.mark.parametrize("attrs, error", [
    ({"sample_rate": "x"}, "ModelError"), ({"sample_rate": float("nan")}, "ModelError"),
    ({"sample_rate": -3}, "ModelError"), ({"class_names": 5}, "ParameterError"),
])
def test_unguarded_model_attributes_are_our_errors(attrs, error):
    """A model whose declared rate or names are nonsense gets our error in explain and flip."""
    import freqrex

    class Declares:
        sample_rate = None
        class_names = None

        def __call__(self, waves):
            return np.tile([0.2, 0.8], (len(waves), 1))

    m = Declares()
    for k, v in attrs.items():
        setattr(m, k, v)
    x = np.random.default_rng(0).standard_normal(8000).astype(np.float32)
    for call in (lambda: freqrex.explain(x, 8000, m, max_queries=20),
                 lambda: freqrex.flip(x, 8000, m, budget=5, strategy="random")):
        with pytest.raises(getattr(freqrex, error)):
            call()
