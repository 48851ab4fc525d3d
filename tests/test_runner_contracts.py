"""The evaluation runner's contracts, from a review: options refused before any clip runs, records
that never depend on the clip order, resume point or worker count, failed transfers retried, no
model resuming another's records, and freqrex's own errors for what a user can get wrong."""

from __future__ import annotations

import json
import pickle
import textwrap
from pathlib import Path

import numpy as np
import pytest

from freqrex.errors import ModelError, ParameterError
from freqrex.evaluation import EvalOptions, evaluate, evaluate_clip, evaluate_many, load_records
from freqrex.evaluation.records import comparable
from freqrex.evaluation.transfer import transfer_matrix, transfer_path
from freqrex.io import save_wav
from freqrex.models import CallableModel

SR = 8000

FAST = EvalOptions(explain_budget=24, explain_iterations=1, extraction_batch=8, flip_budget=4, ks=(1,),
                   strategies=("causal",), stft=False, equal_total=False, duration=1.0)


def _bands(waves):
    """Three classes by the energy of three bands (probabilities)."""
    w = np.asarray(waves, dtype=np.float64)
    s = np.abs(np.fft.rfft(w, axis=1))
    b = s.shape[1]
    e = np.log1p(np.stack([s[:, : b // 8].sum(1), s[:, b // 8 : b // 4].sum(1), s[:, b // 4 :].sum(1)], 1))
    p = np.exp(e - e.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def _reversed_bands(waves):
    return _bands(waves)[:, ::-1].copy()


def _band_logits(waves):
    """Unnormalised band energies: in [0, 1] on a quiet clip (where "auto" takes them for
    probabilities or tags), far above 1 on a loud one (logits)."""
    w = np.asarray(waves, dtype=np.float64)
    s = np.abs(np.fft.rfft(w, axis=1))
    b = s.shape[1]
    return 3 * np.stack([s[:, : b // 8].mean(1), s[:, b // 8 : b // 4].mean(1), s[:, b // 4 :].mean(1)], 1)


def _clip(seed: int, level: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(SR) / SR
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 2500 * t) + 0.05 * rng.standard_normal(SR)
    return (level * x).astype(np.float32)


@pytest.fixture
def wavs(tmp_path):
    paths = []
    for i, level in enumerate((1.0, 0.7)):
        p = tmp_path / "clips" / f"c{i}.wav"
        p.parent.mkdir(exist_ok=True)
        save_wav(p, _clip(i, level), SR, subtype="FLOAT")
        paths.append(p)
    return paths


# --------------------------------------------------------------------------- options refused up front


def test_stft_budget_zero_with_the_quietest_change_is_refused_up_front(monkeypatch):
    """--stft-budget 0 ranks STFT cells by the fft explanation, which only fixed changes take: with the
    default change every clip ran its whole fft part, then failed (an error record each)."""
    with pytest.raises(ParameterError, match="stft_explain_budget=0"):
        EvalOptions(stft_explain_budget=0)
    EvalOptions(stft_explain_budget=0, stft=False)  # no STFT flip: nothing to project
    # with a fixed change it works as documented: the causal STFT flip ranks cells by the fft explanation
    o = EvalOptions(explain_budget=24, explain_iterations=1, extraction_batch=8, flip_budget=4, ks=(1,),
                    strategies=("causal", "random"), change="remove", stft_explain_budget=0, stft_k=2,
                    stft_flip_budget=4, n_fft=512, hop_length=128, equal_total=False)
    rec = evaluate_clip(_clip(0), SR, CallableModel(_bands, sample_rate=SR), o)
    assert rec["stft_explanation"]["projected_from"] == "fft"
    assert set(rec["stft_flips"]) == {"causal", "random"}


def test_cli_stft_budget_zero_fails_before_any_query(tmp_path, monkeypatch, wavs):
    from freqrex.cli import main
    from freqrex.evaluation import protocol

    called = []
    monkeypatch.setattr(protocol, "evaluate_clip", lambda *a, **k: called.append(1))
    out = tmp_path / "r.jsonl"
    code = main(["evaluate", str(wavs[0]), "--model", "madmom_key", "--out", str(out), "--stft-budget", "0",
                 "--quiet"])
    assert code == 2 and not called and not out.exists()


@pytest.mark.parametrize("fields, match", [
    (dict(stft_flip_budget=200_000_000), "stft_flip_budget"),
    (dict(stft_explain_iterations=10**6), "stft_explain_iterations"),
    (dict(stft_explain_budget=200_000_000), "stft_explain_budget"),
    (dict(extraction_batch=10**6), "extraction_batch"),
    (dict(strategies=("additive",), change="remove"), "no flip would run"),
    (dict(strategies=("tone_scan", "additive"), change="gain"), "no flip would run"),
])
def test_options_that_would_fail_every_clip_late_are_refused(fields, match):
    with pytest.raises(ParameterError, match=match):
        EvalOptions(**fields)


def test_baseline_budgets_never_exceed_a_flips_bound():
    """An equal-total baseline gets the flip budget plus the explanation's queries: capped at the bound
    FlipOptions accepts, instead of a ParameterError after the clip's causal flips."""
    from freqrex.evaluation.protocol import _budget
    from freqrex.options import MAX_BUDGET

    class E:
        queries = 500

    o = EvalOptions(flip_budget=MAX_BUDGET, stft=False)
    assert _budget(o, "random", E()) == MAX_BUDGET and _budget(o, "causal", E()) == MAX_BUDGET


# --------------------------------------------------------------------------- transfers retried on resume


def test_a_failed_transfer_is_tried_again_on_resume(tmp_path, wavs):
    state = {"fail": False}

    def flaky_reversed(waves):
        if state["fail"]:
            raise RuntimeError("transient failure")
        return _reversed_bands(waves)

    models = {"A": CallableModel(_bands, sample_rate=SR), "B": CallableModel(flaky_reversed, sample_rate=SR)}
    out = tmp_path / "r.jsonl"

    def on_record(rec, i, n, model):
        if model == "B":
            state["fail"] = True  # B's clip record is written; its transfer job fails

    evaluate_many(wavs[:1], models, out, options=FAST, on_record=on_record, max_retries=0)
    first = load_records(transfer_path(out))
    assert sorted((r["source"], r["target"], r["status"]) for r in first) == [("A", "B", "error"), ("B", "A", "ok")]
    state["fail"] = False
    evaluate_many(wavs[:1], models, out, options=FAST)
    records = load_records(transfer_path(out))
    assert [(r["source"], r["target"], r["status"]) for r in records[len(first):]] == [("A", "B", "ok")]
    matrix = transfer_matrix(records)  # the ok record stands: nothing counted as an error
    assert matrix["errors"] == 0 and matrix["cells"]["A"]["B"]["clips"] == 1
    evaluate_many(wavs[:1], models, out, options=FAST)  # done: nothing new
    assert len(load_records(transfer_path(out))) == len(records)


# --------------------------------------------------------------------------- model names


def test_two_callable_models_never_share_records(tmp_path, wavs):
    out = tmp_path / "r.jsonl"
    a = evaluate(wavs[:1], CallableModel(_bands, sample_rate=SR), out, options=FAST)
    b = evaluate(wavs[:1], CallableModel(_reversed_bands, sample_rate=SR), out, options=FAST)
    truth = int(np.argmax(_reversed_bands(_clip(0)[None])[0]))
    assert b[0]["original"]["class"] == truth != a[0]["original"]["class"]
    assert a[0]["model"] != b[0]["model"] and len(load_records(out)) == 2
    # adapter options are part of the name: the same function read as logits is another model
    c = evaluate(wavs[:1], CallableModel(_bands, sample_rate=SR, output="logits"), out, options=FAST)
    assert c[0]["model"] not in (a[0]["model"], b[0]["model"]) and len(load_records(out)) == 3
    # the same function and options resume their own records
    again = evaluate(wavs[:1], CallableModel(_bands, sample_rate=SR), out, options=FAST)
    assert comparable(again) == comparable(a) and len(load_records(out)) == 3
    with pytest.raises(ParameterError, match="lambda"):
        evaluate(wavs[:1], CallableModel(lambda w: _bands(w), sample_rate=SR), out, options=FAST)

    class Anonymous:
        sample_rate = SR

        def __call__(self, waves):
            return _bands(waves)

    with pytest.raises(ParameterError, match="model_name"):
        evaluate(wavs[:1], Anonymous(), out, options=FAST)
    assert evaluate(wavs[:1], Anonymous(), out, options=FAST, model_name="anon")[0]["status"] == "ok"


# --------------------------------------------------------------------------- output="auto", clip by clip


def test_auto_output_is_decided_per_clip(tmp_path):
    """A quiet clip's logits lie in [0, 1]: "auto" kept the first clip's guess for the whole run, so a
    loud clip after a quiet one failed, and a record depended on the order, the resume point and the
    worker count."""
    quiet, loud = tmp_path / "a_quiet.wav", tmp_path / "b_loud.wav"
    save_wav(quiet, 0.01 * _clip(1), SR, subtype="FLOAT")
    save_wav(loud, _clip(2), SR, subtype="FLOAT")

    def auto():
        return {"m": CallableModel(_band_logits, sample_rate=SR, output="auto")}

    def by_clip(records):
        return {r["clip"]: comparable({k: v for k, v in r.items() if k not in ("duration_s",)}) for r in records}

    one = evaluate_many([quiet, loud], auto(), tmp_path / "one.jsonl", options=FAST)["m"]
    assert [r["status"] for r in one] == ["ok", "ok"], [r.get("error") for r in one]
    other = evaluate_many([loud, quiet], auto(), tmp_path / "other.jsonl", options=FAST)["m"]
    evaluate_many([quiet], auto(), tmp_path / "resumed.jsonl", options=FAST)  # killed after the quiet clip
    resumed = evaluate_many([quiet, loud], auto(), tmp_path / "resumed.jsonl", options=FAST)["m"]
    strip = lambda recs: {c: {k: v for k, v in r.items() if k not in ("clip_id", "file", "attempts")}  # noqa: E731
                          for c, r in by_clip(recs).items()}
    assert strip(one) == strip(other) == strip(resumed)
    # the instance keeps what it was given
    m = CallableModel(_band_logits, sample_rate=SR, output="auto")
    m(_clip(0)[None])
    assert m.output == "logits" and m.configured_output == "auto"
    m.reset_output_guess()
    assert m.output == "auto"
    declared = CallableModel(_band_logits, sample_rate=SR, output="logits")
    declared.reset_output_guess()
    assert declared.output == "logits"


# --------------------------------------------------------------------------- CLI: Ray recipes


FACTORY = textwrap.dedent(
    '''
    import numpy as np
    from freqrex.models import CallableModel

    def scores(waves):
        w = np.asarray(waves, dtype=np.float64)
        e = np.stack([np.abs(w[:, ::2]).sum(1), np.abs(w[:, 1::2]).sum(1)], 1) + 1e-6
        return e / e.sum(1, keepdims=True)

    def make():
        return CallableModel(scores, sample_rate=8000)  # says its scores: probabilities

    def fn():
        return scores
    '''
)


@pytest.fixture
def factory_dir(tmp_path, monkeypatch):
    (tmp_path / "rc_models.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_multi_model_output_works_in_a_ray_worker_as_in_process(factory_dir, wavs, monkeypatch):
    """With several models, --output is for those that take it; a Ray worker's recipe left out the
    model list, so each worker refused --output for the model that says its own scores."""
    import freqrex.evaluation as evaluation
    from freqrex.cli import main

    sent = {}

    def capture(files, models, out, **kwargs):  # stands in for the run: what the workers would get
        sent[kwargs.get("workers")] = models
        return {name: [] for name in models}

    monkeypatch.setattr(evaluation, "evaluate_many", capture)
    argv = ["evaluate", str(wavs[0]), "--model", "rc_models:make", "--model", "rc_models:fn", "--output", "logits",
            "--trust-model-code", "--out", str(factory_dir / "r.jsonl"), "--quiet"]
    assert main(argv) == 0 and main(argv + ["--workers", "2"]) == 0
    local, recipes = sent[None], sent[2]
    assert list(local) == list(recipes)
    for name, recipe in recipes.items():
        built = pickle.loads(pickle.dumps(recipe))()  # what a worker does with the recipe it receives
        assert type(built) is type(local[name]) and built.output == local[name].output


# --------------------------------------------------------------------------- freqrex's own errors


def test_records_with_invalid_utf8_are_a_parameter_error(tmp_path):
    p = tmp_path / "r.jsonl"
    p.write_bytes(b'{"a": 1}\n{"b": "\xff\xfe"}\n{"c": 3}\n')
    with pytest.raises(ParameterError, match="line 2"):
        load_records(p)
    p.write_bytes(b'{"a": 1}\n{"b": "\xff')  # a damaged last line is dropped, as a cut-short one is
    assert load_records(p) == [{"a": 1}]


def test_a_factory_module_that_raises_on_import_is_a_model_error(tmp_path, monkeypatch, wavs):
    (tmp_path / "rc_badmod.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from freqrex.evaluation.jobs import build_model

    with pytest.raises(ModelError, match="boom at import"):
        build_model("rc_badmod:make")
    with pytest.raises(ModelError, match="boom at import"):
        evaluate_many(wavs[:1], {"bad": "rc_badmod:make"}, tmp_path / "r.jsonl", options=FAST)


def test_an_unreachable_ray_address_is_a_freqrex_error(monkeypatch):
    from freqrex.evaluation import distributed

    class FakeRay:
        @staticmethod
        def is_initialized():
            return False

        @staticmethod
        def init(**kwargs):
            raise ConnectionError("Could not find any running Ray instance.")

    monkeypatch.setattr(distributed, "import_ray", lambda: FakeRay)
    with pytest.raises(ParameterError, match="'auto'"):
        distributed.RayExecutor({"m": "madmom_key"}, address="auto")


def test_thread_counts_above_the_cores_bound_are_refused(tmp_path, wavs):
    with pytest.raises(ParameterError, match="at most 256"):
        evaluate_many(wavs[:1], {"m": CallableModel(_bands, sample_rate=SR)}, tmp_path / "r.jsonl",
                      options=FAST, threads_per_worker=1000)


# --------------------------------------------------------------------------- freqrex flip's --out


def _flip_argv(wav: Path, out: Path, *extra: str) -> list:
    return ["flip", str(wav), "--model", "rc_models:make", "--trust-model-code", "--budget", "4",
            "--duration", "1", "--out", str(out), "--quiet", *extra]


def test_flip_checks_out_before_any_query(factory_dir, wavs, monkeypatch):
    import freqrex.manipulation as manipulation
    from freqrex.cli import main

    called = []
    monkeypatch.setattr(manipulation, "flip", lambda *a, **k: called.append(1))
    notadir = factory_dir / "notadir"
    notadir.write_text("")
    assert main(_flip_argv(wavs[0], notadir)) == 2
    assert main(_flip_argv(wavs[0], notadir / "sub")) == 2
    assert not called and notadir.read_text() == ""


def test_flip_removes_an_earlier_runs_outputs_it_does_not_rewrite(factory_dir, wavs):
    from freqrex.cli import main
    from freqrex.manipulation import FlipResult

    out = factory_dir / "out"
    assert main(_flip_argv(wavs[0], out, "--report", "--vulnerability")) == 0
    assert (out / "report.html").is_file() and (out / "vulnerability" / "vulnerability.json").is_file()
    (out / "vulnerability.png").write_bytes(b"png")  # whether or not matplotlib made one
    (out / "notes.txt").write_text("mine")
    assert main(_flip_argv(wavs[0], out)) == 0
    assert not (out / "report.html").exists()
    assert not (out / "vulnerability").exists() and not (out / "vulnerability.png").exists()
    assert (out / "notes.txt").read_text() == "mine"  # what is not freqrex's stays
    assert "vulnerability" not in json.loads((out / "flip.json").read_text())
    FlipResult.load(out)
    # beside an explanation (its folder, as `freqrex report` reads them) report.html is the explanation's
    (out / "manifest.json").write_text("{}")
    (out / "report.html").write_text("the explanation's report")
    assert main(_flip_argv(wavs[0], out)) == 0
    assert (out / "report.html").read_text() == "the explanation's report"


def test_flip_target_that_is_a_digit_but_not_a_number(factory_dir, wavs, capsys):
    """'²'.isdigit() is true but int('²') raises: it was an internal error (exit 1)."""
    from freqrex.cli import main
    from freqrex.cli.flip import _target

    assert main(_flip_argv(wavs[0], factory_dir / "o", "--target", "²")) == 2
    assert "unknown target class '²'" in capsys.readouterr().err
    model = CallableModel(_bands, sample_rate=SR, class_names=["low", "mid", "high"])
    assert _target("1", model) == 1 and _target(" 2 ", model) == 2 and _target("MID", model) == 1
    with pytest.raises(ParameterError):
        _target("³", model)


def test_built_in_models_keep_their_records_under_their_own_name():
    """After models without a name were refused, evaluate(clips, [load_model("madmom_key")]) was too."""
    from freqrex.evaluation.runner import _model_name
    from freqrex.models import load_model

    assert _model_name(load_model("madmom_key")) == "madmom_key"
    assert _model_name(load_model("madmom_key", sample_rate=22050)) == "madmom_key (sample_rate=22050)"
    assert _model_name(load_model("madmom_key", chunk=2)) == "madmom_key"  # chunking changes no score


def test_explain_dir_decides_auto_output_per_clip_too(tmp_path):
    """`freqrex explain DIR` kept the first clip's guess for the whole folder."""
    from freqrex.evaluation.explain_many import explain_many

    clips = tmp_path / "clips"
    clips.mkdir()
    save_wav(clips / "a_quiet.wav", 0.01 * _clip(1), SR, subtype="FLOAT")
    save_wav(clips / "b_loud.wav", _clip(2), SR, subtype="FLOAT")
    opts = dict(budget=24, iterations=2, rule="minimal", max_queries=None)
    results = explain_many([clips], CallableModel(_band_logits, sample_rate=SR, output="auto"), tmp_path / "out",
                           explain_options=opts, quality=False)
    assert [r["status"] for r in results] == ["ok", "ok"], [r.get("error") for r in results]
    alone = explain_many([clips / "b_loud.wav"], CallableModel(_band_logits, sample_rate=SR, output="auto"),
                         tmp_path / "alone", explain_options=opts, quality=False)
    assert alone[0]["status"] == "ok"
    summary = lambda r: json.loads((Path(r["folder"]) / "summary.json").read_text())  # noqa: E731
    assert summary(results[1])["target"] == summary(alone[0])["target"]
