"""A whole explanation with a near-free model: time spent outside the model."""

import time

import numpy as np
import pytest

import freqrex

SR = 16000
N = 30 * SR


class FreeModel:
    """Near-free: class 1 when the 1 kHz bin keeps most of its energy (one dot product)."""

    def __init__(self, clip):
        t = np.arange(N) / SR
        self.probe = np.exp(-2j * np.pi * 1000 * t).astype(np.complex64)
        self.ref = abs(clip @ self.probe)
        self.seconds = 0.0
        self.rows = 0

    def __call__(self, w):
        start = time.perf_counter()
        e = np.abs(w @ self.probe) / self.ref
        p = np.clip(e, 0, 1)
        out = np.stack([1 - p, p], 1)
        self.seconds += time.perf_counter() - start
        self.rows += len(w)
        return out


@pytest.fixture(scope="module")
def clip():
    t = np.arange(N) / SR
    rng = np.random.default_rng(0)
    return (0.2 * np.sin(2 * np.pi * 1000 * t) + 0.1 * rng.standard_normal(N)).astype(np.float32)


def run(backend, clip):
    model = FreeModel(clip)
    start = time.perf_counter()
    e = freqrex.explain(clip, SR, model, backend=backend, budget=600, iterations=4, batch_size=64)
    total = time.perf_counter() - start
    return e, model, total


@pytest.mark.parametrize("backend", ["rust", "numpy"])
@pytest.mark.benchmark(group="explain")
def test_explain(benchmark, record, clip, backend):
    results = []
    benchmark.pedantic(lambda: results.append(run(backend, clip)), rounds=3, warmup_rounds=0)
    e, model, total = results[-1]
    assert e.bands("sufficient") == [(1000.0, 1000.0)]
    overhead = (total - model.seconds) / e.queries
    record(f"explain_{backend}", benchmark, queries=e.queries, per_query_overhead_s=overhead)
