"""Contracts of the Rust engine and its NumPy reference found by a review of the core.

Each test failed on the code before its fix: a truncated extraction dropped a set it had
already asked and found to hold; whether a batch could be synthesised depended on the
thread count; a batch that could not be synthesised lost its masks and left the engine
stuck; a given responsibility map was refused with a search budget; the responsibility
asked for too early was a bare RuntimeError.
"""

import numpy as np
import pytest

from freqrex import _core, reference
from freqrex.errors import FreqrexError, ParameterError
from freqrex.options import EngineOptions

BACKENDS = [(_core.FrequencySpace, _core.Engine), (reference.FrequencySpace, reference.Engine)]


def _clip(n, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def _run(space_cls, engine_cls, max_queries, extraction_batch):
    """Extraction over a given ranking 0, 1, 2, ... of 51 bins: keeping >= 3 bins keeps class 0,
    removing >= 10 flips it. Each waveform asked is identified by comparison with every prefix."""
    sp = space_cls(_clip(100), space="fft")
    n = sp.n_bins
    probes = {}
    for c in range(n + 1):
        keep = np.zeros((1, 1, n), bool)
        keep[0, 0, :c] = True
        probes[("keep", c)] = np.asarray(sp.synthesize(keep))[0]
        probes[("remove", c)] = np.asarray(sp.synthesize(~keep))[0]
    opts = EngineOptions(band=(0, n), budget=0, max_queries=max_queries, extraction_batch=extraction_batch)
    engine = engine_cls(sp, 0, 0.9, opts, responsibility=-np.arange(n, dtype=np.float64)[None, :])
    asked = []
    while (waves := engine.ask(1)) is not None:
        rows = []
        for w in np.asarray(waves):
            kind, c = min(probes, key=lambda k: float(np.abs(probes[k] - w).max()))
            asked.append((kind, c))
            top = (0 if c >= 3 else 1) if kind == "keep" else (1 if c >= 10 else 0)
            rows.append([0.9, 0.05] if top == 0 else [0.05, 0.9])
        engine.tell(np.array(rows))
    sets = engine.sets()
    return {k: sets.get(k) for k in ("sufficient", "sufficient_necessary", "complete")}, asked


@pytest.mark.parametrize("max_queries,batch", [(m, b) for m in range(2, 30) for b in (2, 4)])
def test_a_truncated_extraction_keeps_every_set_it_knows(max_queries, batch):
    """A prefix asked and found to hold is never dropped when the budget runs out (ReX's
    "the current set is the shortest prefix known to satisfy it"); both backends agree."""
    (rust, asked), (numpy, asked_np) = (_run(*b, max_queries, batch) for b in BACKENDS)
    assert rust == numpy and asked == asked_np
    kept = {c for kind, c in asked if kind == "keep"}
    removed = {c for kind, c in asked if kind == "remove"}
    if any(3 <= c < 51 for c in kept):
        assert rust["sufficient"] is not None and rust["sufficient"] >= 3
    both = [c for c in kept & removed if c >= 10]
    if both:  # a prefix known to pass both ways
        assert rust["sufficient_necessary"] is not None and 10 <= rust["sufficient_necessary"] <= min(both)
    sn = rust["sufficient_necessary"]
    if sn is not None and any(sn <= c < 51 for c in kept):  # keep(c >= 3) restores the score here
        assert rust["complete"] is not None and rust["complete"] >= sn
    for name, low in (("sufficient", 3), ("sufficient_necessary", 10), ("complete", 3)):
        assert rust[name] is None or low <= rust[name] < 51


def test_the_reviewers_case_two_asked_keeps_make_the_sufficient_set():
    for backend in BACKENDS:
        sets, asked = _run(*backend, 3, 4)
        assert asked == [("keep", 13), ("keep", 25)]
        assert sets["sufficient"] == 13  # was None: "the query budget ran out before this set was found"


def test_whether_a_batch_can_be_synthesised_does_not_depend_on_the_thread_count():
    x = _clip(1_000_000)
    old = _core.memory_limit(100 << 20)
    try:
        made = []
        for threads in (1, 2, 16):
            sp = _core.FrequencySpace(x, space="fft", n_threads=threads)
            made.append(np.asarray(sp.synthesize(np.ones((1, 1, sp.n_bins), bool))))
        for m in made[1:]:
            np.testing.assert_array_equal(m, made[0])
    finally:
        _core.memory_limit(old)


def test_a_batch_that_cannot_be_made_leaves_the_engine_usable():
    x = _clip(200_000)
    sp = _core.FrequencySpace(x, space="fft", n_threads=2)
    engine = _core.Engine(sp, 0, 0.9, EngineOptions(band=(0, 1000), rule="minimal", budget=20))
    old = _core.memory_limit(1 << 20)  # not even one mutant of 200,000 samples fits
    try:
        with pytest.raises(ParameterError, match="memory"):
            engine.ask(4)
    finally:
        _core.memory_limit(old)
    waves = engine.ask(4)  # was: "ask() called before tell() answered the previous batch", for ever
    assert waves is not None and waves.shape[1] == x.size


@pytest.mark.parametrize("space_cls,engine_cls", BACKENDS)
def test_a_given_map_is_taken_whatever_the_search_budget(space_cls, engine_cls):
    sp = space_cls(_clip(100), space="fft")
    n = sp.n_bins
    r = -np.arange(n, dtype=np.float64)[None]
    engine = engine_cls(sp, 0, 0.9, EngineOptions(band=(0, n), budget=5, max_queries=20), responsibility=r)
    assert engine.stats()["search_queries"] == 0 and engine.stats()["mutants"] == 0


def test_the_responsibility_before_the_search_ends_is_a_freqrex_error():
    sp = _core.FrequencySpace(_clip(100), space="fft")
    engine = _core.Engine(sp, 0, 0.9, EngineOptions(band=(0, sp.n_bins), rule="minimal", budget=20))
    with pytest.raises(FreqrexError, match="finished"):
        engine.responsibility()
