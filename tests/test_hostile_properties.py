"""Property-based tests (hypothesis): any combination of options, clips and models gives a
result or one of freqrex's exceptions; never another exception, an abort or a hang.

Fast by default (a few dozen examples per property, derandomised so CI is stable);
``FREQREX_HYPOTHESIS_EXAMPLES=10000`` runs a sweep of that many random examples per
property (see docs/reliability.md for the sweeps run).
"""

import contextlib
import io
import math
import os
import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import freqrex  # noqa: E402
import freqrex.options  # noqa: E402
from freqrex.cli import main  # noqa: E402
from freqrex.errors import FreqrexError  # noqa: E402

SWEEP = int(os.environ.get("FREQREX_HYPOTHESIS_EXAMPLES", "0"))
SETTINGS = settings(
    max_examples=SWEEP or 30,
    derandomize=not SWEEP,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
#: The backends' comparison runs the slow NumPy reference: fewer examples by default.
AGREE_SETTINGS = settings(SETTINGS, max_examples=SWEEP or 10)
SR = 8000

# ------------------------------------------------------------------ values
#: Values any option may take: sizes at and far beyond every bound, wrong types.
HOSTILE = st.sampled_from(
    [-1, 0, 2**31, 2**32, 2**63, 2**64, 10**30, -(2**64), float("nan"), float("inf"), -float("inf"),
     1e300, 0.5, -0.0, "7", "", None, True, [1], 1 + 2j]
)


def small_int(lo, hi):
    return st.integers(lo, hi)


#: option -> strategy of its ordinary (fast) values.
ORDINARY = {
    "space": st.sampled_from(["fft", "stft"]),
    "rule": st.sampled_from(["margin", "minimal", "rex", "confidence"]),
    "cuts": st.sampled_from(["uniform", "log"]),
    "budget": small_int(0, 40),
    "max_queries": st.one_of(st.none(), small_int(1, 60)),
    "iterations": small_int(1, 3),
    "n_parts": small_int(2, 8),
    "min_part": small_int(2, 64),
    "max_depth": small_int(1, 20),
    "alternatives": small_int(0, 4),
    "batch_size": small_int(1, 70),
    "extraction_batch": small_int(2, 5),
    "seed": st.integers(0, 2**64 - 1),
    "n_fft": st.sampled_from([4, 16, 64, 256]),
    "hop_length": st.sampled_from([1, 2, 8, 32]),
    "fmin": st.one_of(st.none(), st.floats(0, 5000)),
    "fmax": st.one_of(st.none(), st.floats(0, 5000)),
    "threshold": st.one_of(st.none(), st.floats(0.01, 1.0)),
    "tol": st.floats(0, 1),
    "mask_value": st.floats(-1, 1),
    "class_maps": small_int(0, 4),
    "tiebreak": st.sampled_from(["magnitude", "index"]),
    "n_threads": st.one_of(st.none(), small_int(1, 3)),
}


@st.composite
def option_sets(draw, hostile=True):
    names = draw(st.lists(st.sampled_from(sorted(ORDINARY)), max_size=6, unique=True))
    out = {}
    for name in names:
        if hostile and draw(st.integers(0, 5)) == 0:
            out[name] = draw(HOSTILE)
        else:
            out[name] = draw(ORDINARY[name])
    return out


@st.composite
def clips(draw):
    n = draw(st.sampled_from([0, 1, 2, 3, 17, 200, 801, 1600]))
    kind = draw(st.sampled_from(["tones", "noise", "silence", "constant", "huge", "nan", "int16", "tiny", "2d"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    t = np.arange(n) / SR
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 1500 * t) + 0.01 * rng.standard_normal(n)
    if kind == "noise":
        x = rng.standard_normal(n)
    elif kind == "silence":
        x = np.zeros(n)
    elif kind == "constant":
        x = np.full(n, 0.5)
    elif kind == "huge":
        x = x * 3e38
    elif kind == "nan" and n:
        x[n // 2] = np.nan
    elif kind == "int16":
        return (x * 20000).astype(np.int16)
    elif kind == "tiny":
        x = x * 1e-30
    elif kind == "2d":
        return np.stack([x, x]).astype(np.float32)
    return x.astype(draw(st.sampled_from([np.float32, np.float64])))


class BandModel:
    """Two classes from the energy around 1500 Hz (fast, deterministic)."""

    sample_rate = SR

    def __call__(self, w):
        spec = np.abs(np.fft.rfft(np.asarray(w, np.float64), axis=1))
        f = np.fft.rfftfreq(w.shape[1], 1 / SR)
        e = (spec[:, (f > 1300) & (f < 1700)] ** 2).sum(axis=1) / max(w.shape[1], 1)
        z = np.clip(np.log(e + 1e-12) - np.log(1.0), -30, 30)
        p = 1 / (1 + np.exp(-z))
        return np.stack([1 - p, p], axis=1)


def misbehaving(kind):
    def model(w):
        n = len(w)
        if kind == "nan":
            return np.full((n, 2), np.nan)
        if kind == "shape":
            return np.zeros(n)
        if kind == "raise":
            raise RuntimeError("model failure")
        if kind == "complex":
            return np.ones((n, 2)) * (1 + 1j)
        if kind == "tied":
            return np.full((n, 3), 0.2)
        if kind == "list":
            return [[0.1, 0.9]] * n
        if kind == "none":
            return None
        return np.tile([0.2, 0.8], (n, 1))

    return model


MODELS = st.one_of(
    st.just(BandModel()),
    st.sampled_from(["nan", "shape", "raise", "complex", "tied", "list", "none", "constant"]).map(misbehaving),
)


def ours_or_result(call):
    """Run ``call``; True for a result, False for one of our exceptions; anything else fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call()
            return True
        except FreqrexError:
            return False


# -------------------------------------------------------------- properties
@SETTINGS
@given(audio=clips(), model=MODELS, options=option_sets(), backend=st.sampled_from(["rust", "numpy"]),
       sample_rate=st.one_of(st.just(SR), HOSTILE))
def test_explain_gives_a_result_or_our_error(audio, model, options, backend, sample_rate):
    ours_or_result(lambda: freqrex.explain(audio, sample_rate, model, backend=backend, **options))


@AGREE_SETTINGS
@given(audio=clips(), options=option_sets(hostile=False))
def test_rust_and_numpy_backends_agree(audio, options):
    if options.get("space") == "stft" and options.get("hop_length", 512) < 8:
        options["hop_length"] = 8  # keep the slow NumPy reference's STFT small in CI
    model = BandModel()
    results = {}
    for backend in ("rust", "numpy"):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                results[backend] = freqrex.explain(audio, SR, model, backend=backend, **options)
        except FreqrexError as exc:
            results[backend] = type(exc)
    a, b = results["rust"], results["numpy"]
    if isinstance(a, type) or isinstance(b, type):
        assert a == b, f"one backend failed, the other did not: {a!r} vs {b!r}"
        return
    assert a.target == b.target
    if options.get("rule", freqrex.options.ExplainOptions.rule) in ("margin", "confidence"):
        # Rules weighted by the model's scores: the backends' float32 syntheses differ in the
        # last bits, and so do the scores (margins) the responsibility is computed from.
        np.testing.assert_allclose(a.responsibility, b.responsibility, rtol=1e-4, atol=1e-6)
        return
    np.testing.assert_allclose(a.responsibility, b.responsibility, rtol=1e-9, atol=1e-12)
    for name in ("sufficient", "sufficient_necessary", "complete"):
        ma, mb = a.get_set(name), b.get_set(name)
        assert (ma is None) == (mb is None), name
        if ma is not None:
            assert np.array_equal(ma, mb), name


@SETTINGS
@given(audio=clips(), model=MODELS, k=st.one_of(st.integers(1, 3), HOSTILE), budget=st.one_of(st.integers(0, 12), HOSTILE),
       space=st.sampled_from(["fft", "stft", "wavelet"]))
def test_flip_gives_a_result_or_our_error(audio, model, k, budget, space):
    ours_or_result(lambda: freqrex.flip(audio, SR, model, k=k, budget=budget, space=space, explain_budget=16,
                                        explain_iterations=1, max_queries=40, n_fft=64, hop_length=16))


# -------------------------------------------------------------------- CLI
CLI_VALUES = st.sampled_from(
    ["-1", "0", "1", "2", "7", "64", "nan", "inf", "-inf", "1e999", "18446744073709551616", "4294967296",
     "99999999999999999999999", "abc", "", "0.5", "fft", "stft", "log", "margin", "minimal"]
)
CLI_OPTIONS = ["--budget", "--iterations", "--seed", "--max-queries", "--fmin", "--fmax", "--n-fft", "--hop-length",
               "--batch-size", "--space", "--rule", "--cuts", "--duration", "--n-bands", "--resolution",
               "--sample-rate"]


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    import soundfile as sf

    from test_hostile_files import energy_onnx

    d = tmp_path_factory.mktemp("cli")
    energy_onnx(d / "energy.onnx")
    t = np.arange(SR) / SR
    sf.write(d / "clip.wav", (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.sin(2 * np.pi * 1500 * t)).astype(np.float32), SR)
    return d


@SETTINGS
@given(pairs=st.lists(st.tuples(st.sampled_from(CLI_OPTIONS), CLI_VALUES), max_size=5),
       command=st.sampled_from(["explain", "flip"]))
def test_cli_exits_with_our_codes_and_one_line(cli_files, pairs, command):
    out = cli_files / "out"
    argv = [command, str(cli_files / "clip.wav"), "--model", str(cli_files / "energy.onnx"), "--output", "logits",
            "--sample-rate", str(SR), "--out", str(out), "--quiet"]
    if command == "explain":
        argv += ["--budget", "8", "--max-queries", "30", "--no-quality"]
    else:
        argv += ["--budget", "6", "--explain-budget", "8", "--iterations", "1"]
    for option, value in pairs:
        if command == "flip" and option in ("--fmin", "--fmax", "--max-queries", "--batch-size", "--rule",
                                            "--n-bands", "--resolution"):
            continue
        argv += [f"{option}={value}"]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: bad syntax or a value of the wrong type
            code = exc.code
    err = stderr.getvalue()
    assert code in (0, 2, 3, 4), (argv, code, err)
    assert "internal error" not in err and "Traceback" not in err, (argv, err)
    if code not in (0, 2) or (code == 2 and err.startswith("freqrex:")):
        lines = [line for line in err.splitlines() if line.startswith("freqrex:")]
        assert len(lines) == 1, (argv, err)
    assert not math.isnan(float(code))
