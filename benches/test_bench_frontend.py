"""The musicnn log-mel front end runs on every query: its share of a model call."""

import numpy as np
import pytest

from freqrex.models.musicnn import log_mel, musicnn

SR = 16000


@pytest.fixture(scope="module")
def waves():
    return (0.2 * np.random.default_rng(0).standard_normal((8, 30 * SR))).astype(np.float32)


@pytest.mark.benchmark(group="musicnn")
def test_frontend(benchmark, record, waves):
    benchmark.pedantic(log_mel, args=(waves,), rounds=5, warmup_rounds=1)
    record("frontend", benchmark)


@pytest.mark.benchmark(group="musicnn")
def test_model_call(benchmark, record, waves):
    model = musicnn()
    out = benchmark.pedantic(model, args=(waves,), rounds=3, warmup_rounds=1)
    assert out.shape == (8, 50)
    record("model_call", benchmark)
