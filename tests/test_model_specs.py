"""--model everywhere (explain, flip, evaluate): directories, .onnx, TorchScript, module:callable, trust."""

import json
import os

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing in these tests may reach the hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from freqrex.cli import EXIT_MODEL, EXIT_USAGE, main  # noqa: E402
from freqrex.io import save_wav  # noqa: E402

SR = 16000
NAMES = ["blues", "jazz", "rock"]


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory):
    """Tiny AST and HuBERT classifiers saved with save_pretrained (safetensors)."""
    from test_huggingface import build

    out = {}
    for kind in ("ast", "hubert"):
        d = tmp_path_factory.mktemp(f"{kind}_dir")
        model, extractor = build(kind)
        model.save_pretrained(d)
        extractor.save_pretrained(d)
        out[kind] = str(d)
    return out


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    t = np.arange(int(0.25 * SR)) / SR  # one window of the tiny AST
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.02 * np.random.default_rng(0).standard_normal(t.size)
    path = d / "clip.wav"
    save_wav(path, x.astype(np.float32), SR)
    return str(path)


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory):
    """A 3-class logits model (mean, peak, energy) with a dynamic batch and length."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("ReduceMean", ["waves"], ["mean"], axes=[1], keepdims=1),
        helper.make_node("Abs", ["waves"], ["abs"]),
        helper.make_node("ReduceMax", ["abs"], ["peak"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["waves", "waves"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["energy"], axes=[1], keepdims=1),
        helper.make_node("Concat", ["mean", "peak", "energy"], ["scores"], axis=1),
    ]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("waves", TensorProto.FLOAT, ["b", "n"])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["b", 3])])
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


def cli(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


SMALL_EXPLAIN = ("--budget", "10", "--iterations", "1", "--no-quality", "--quiet")
SMALL_FLIP = ("--budget", "4", "--explain-budget", "10", "--iterations", "1", "--quiet")
SMALL_EVAL = ("--budget", "10", "--iterations", "1", "--flip-budget", "4", "--ks", "1", "--strategies", "causal",
              "--no-stft", "--no-equal-total", "--quiet", "--json")


def test_explain_and_flip_take_a_save_pretrained_directory(capsys, tmp_path, hf_dirs, wav):
    code, out, err = cli(capsys, "explain", wav, "--model", hf_dirs["ast"], "--out", str(tmp_path / "e"), "--json",
                         *SMALL_EXPLAIN)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["target_name"] == NAMES[summary["target"]]
    code, out, err = cli(capsys, "flip", wav, "--model", hf_dirs["hubert"], "--out", str(tmp_path / "f"), "--json",
                         *SMALL_FLIP)
    assert code == 0, err
    flip = json.loads(out)
    assert flip["original_name"] == NAMES[flip["original_class"]]


def test_evaluate_takes_a_directory_and_an_onnx_file(capsys, tmp_path, hf_dirs, wav, onnx_file):
    code, out, err = cli(capsys, "evaluate", wav, "--model", hf_dirs["hubert"], "--model", onnx_file,
                         "--output", "logits", "--out", str(tmp_path / "r.jsonl"), *SMALL_EVAL)
    assert code == 0, err
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    # records are kept under the model and the adapter options given: the same file read another way is
    # another model, never resumed from these records
    hubert, onnx = f"{hf_dirs['hubert']} (output=logits)", f"{onnx_file} (output=logits)"
    assert {r["model"] for r in records} == {hubert, onnx}
    assert all(r["status"] == "ok" for r in records), records
    by_model = {r["model"]: r for r in records}
    assert by_model[hubert]["original"]["name"] in NAMES
    assert by_model[onnx]["original"]["name"] in ("0", "1", "2")
    code, _, err = cli(capsys, "evaluate", wav, "--model", onnx_file, "--output", "probabilities",
                       "--out", str(tmp_path / "r.jsonl"), *SMALL_EVAL)
    lines = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and lines[-1]["model"] == f"{onnx_file} (output=probabilities)"  # new, not reused
    assert code == (0 if lines[-1]["status"] == "ok" else 4)  # its logits are no probabilities: a model error


def test_class_names_file_and_sample_rate(capsys, tmp_path, wav, onnx_file, hf_dirs):
    names = tmp_path / "names.txt"
    names.write_text("mean\npeak\nenergy\n")
    code, out, err = cli(capsys, "explain", wav, "--model", onnx_file, "--output", "logits", "--class-names",
                         str(names), "--out", str(tmp_path / "e"), "--json", *SMALL_EXPLAIN)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["target_name"] == ["mean", "peak", "energy"][summary["target"]]
    as_json = tmp_path / "names.json"
    as_json.write_text(json.dumps({"1": "peak", "0": "mean", "2": "energy"}))
    code, out, err = cli(capsys, "explain", wav, "--model", onnx_file, "--output", "logits", "--class-names",
                         str(as_json), "--out", str(tmp_path / "e2"), "--json", *SMALL_EXPLAIN)
    assert code == 0 and json.loads(out)["target_name"] == summary["target_name"]
    code, _, err = cli(capsys, "explain", wav, "--model", hf_dirs["ast"], "--sample-rate", "8000", *SMALL_EXPLAIN)
    assert code == EXIT_USAGE and "16000" in err


def test_output_is_checked_against_a_model_that_says_what_it_outputs(capsys, tmp_path, wav, hf_dirs):
    """--output was silently ignored for built-in and Hugging Face models (their scores are what they say)."""
    out_dir = str(tmp_path / "o")
    code, _, err = cli(capsys, "explain", wav, "--model", hf_dirs["ast"], "--output", "probabilities",
                       "--out", out_dir, *SMALL_EXPLAIN)
    assert code == EXIT_USAGE and "--output probabilities" in err and "logits" in err
    assert not os.path.exists(out_dir)
    code, _, err = cli(capsys, "flip", wav, "--model", "MSD_musicnn", "--output", "logits", "--out", out_dir,
                       *SMALL_FLIP)
    assert code == EXIT_USAGE and "sigmoid" in err
    assert not os.path.exists(out_dir)


def _torchscript(path):
    import torch

    class Tiny(torch.nn.Module):
        def forward(self, x):
            return torch.stack([x.mean(1), x.abs().amax(1), (x * x).mean(1)], 1)

    torch.jit.save(torch.jit.script(Tiny()), str(path))


@pytest.mark.filterwarnings("ignore:`torch.jit.:FutureWarning")
def test_model_code_runs_only_with_trust(capsys, tmp_path, wav, monkeypatch):
    script = tmp_path / "tiny.pt"
    _torchscript(script)
    out_dir = str(tmp_path / "o")
    code, _, err = cli(capsys, "explain", wav, "--model", str(script), "--out", out_dir, *SMALL_EXPLAIN)
    assert code == EXIT_MODEL and "model files are code" in err and "--trust-model-code" in err
    code, _, err = cli(capsys, "explain", wav, "--model", str(script), "--output", "logits", "--trust-model-code",
                       "--out", out_dir, *SMALL_EXPLAIN)
    assert code == 0, err
    # a module:callable factory the user writes, found in the current directory
    (tmp_path / "my_models.py").write_text(
        "import numpy as np\n"
        "def build():\n"
        "    def score(waves):\n"
        "        return np.stack([(waves ** 2).mean(1), np.full(len(waves), 0.01)], 1)\n"
        "    return score\n"
    )
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "flip", wav, "--model", "my_models:build", "--out", out_dir, *SMALL_FLIP)
    assert code == EXIT_MODEL and "--trust-model-code" in err
    names = tmp_path / "n.txt"
    names.write_text("loud\nquiet\n")
    code, out, err = cli(capsys, "flip", wav, "--model", "my_models:build", "--trust-model-code", "--output",
                         "probabilities", "--class-names", str(names), "--out", out_dir, "--json", *SMALL_FLIP)
    assert code == 0, err
    assert json.loads(out)["original_name"] in ("loud", "quiet")
    code, _, err = cli(capsys, "explain", wav, "--model", "my_models:missing", "--trust-model-code", *SMALL_EXPLAIN)
    assert code == EXIT_MODEL and "no attribute" in err


def test_a_factorys_function_is_the_model_the_api_would_call(tmp_path, monkeypatch):
    """The command line used to wrap it with 16 kHz, no class names and "auto" output whatever it declared."""
    import argparse

    from freqrex.cli import open_model
    from freqrex.cli.model_options import add_model_options
    from freqrex.models import as_model

    (tmp_path / "declared.py").write_text(
        "import numpy as np\n"
        "def build():\n"
        "    def score(waves):\n"
        "        return np.stack([(waves ** 2).mean(1) * 50 - 3, np.full(len(waves), 0.5)], 1)\n"
        "    score.sample_rate = 22050\n"
        "    score.class_names = ['loud', 'quiet']\n"
        "    return score\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    parser = argparse.ArgumentParser()
    add_model_options(parser)
    model = open_model(parser.parse_args(["--model", "declared:build", "--trust-model-code"]))
    import declared

    api = as_model(declared.build())
    assert (model.sample_rate, model.class_names) == (api.sample_rate, api.class_names) == (22050, ["loud", "quiet"])
    waves = np.random.default_rng(0).standard_normal((3, 2205)).astype(np.float32) * 0.3
    np.testing.assert_array_equal(model(waves), api(waves))  # the function's own scores (logits here), untouched


def test_pickles_are_never_loaded(capsys, tmp_path, wav):
    pickled = tmp_path / "model.pkl"
    pickled.write_bytes(b"\x80\x04K\x01.")
    code, _, err = cli(capsys, "explain", wav, "--model", str(pickled), "--trust-model-code", *SMALL_EXPLAIN)
    assert code == EXIT_MODEL and "never unpickles" in err


@pytest.mark.parametrize("command", ["explain", "flip", "evaluate"])
def test_help_says_model_files_are_code(capsys, command):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Model files are code" in text and "--trust-model-code" in text and "--class-names" in text


def test_readme_your_own_model_examples_run(tmp_path, hf_dirs, wav, onnx_file):
    """The README's "Your own model" Python blocks, on tiny models and small budgets."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Your own model", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 4  # setup, Hugging Face, torch, ONNX
    swaps = {'"song.wav"': repr(wav), '"path/to/ast-gtzan"': repr(hf_dirs["ast"]), '"model.onnx"': repr(onnx_file),
             "budget=200": "budget=10", "budget=40": "budget=4", "iterations=4": "iterations=1"}
    namespace = {}
    for block in blocks:
        for old, new in swaps.items():
            block = block.replace(old, new)
        exec(compile(block, "README.md", "exec"), namespace)
    assert namespace["e"].target_name in ("a", "b", "c")
    assert namespace["r"].original_name in ("loud", "quiet")


def test_evaluate_names_a_file_or_folder_model_after_its_path(tmp_path, hf_dirs, wav, onnx_file):
    """evaluate() refused an OnnxModel or HuggingFaceModel made from a path ("name the model"): the path
    tells it from every other, and the adapter's options from the same file read another way."""
    from freqrex.evaluation import EvalOptions, evaluate
    from freqrex.evaluation.records import load_records
    from freqrex.models import HuggingFaceModel, OnnxModel

    fast = EvalOptions(explain_budget=10, explain_iterations=1, flip_budget=4, ks=(1,), strategies=("causal",),
                       stft=False, equal_total=False)
    out = tmp_path / "r.jsonl"
    onnx = evaluate([wav], OnnxModel(onnx_file, sample_rate=SR, output="logits"), out, options=fast)
    hub = evaluate([wav], HuggingFaceModel(hf_dirs["hubert"]), out, options=fast)
    assert onnx[0]["model"].startswith(onnx_file) and "output=logits" in onnx[0]["model"]
    assert hub[0]["model"].startswith(hf_dirs["hubert"])
    assert hub[0]["original"]["name"] in NAMES and onnx[0]["original"]["name"] in ("0", "1", "2")
    again = evaluate([wav], OnnxModel(onnx_file, sample_rate=SR, output="logits"), out, options=fast)
    assert again[0]["model"] == onnx[0]["model"] and len(load_records(out)) == 2  # resumed, not rerun
    other = evaluate([wav], OnnxModel(onnx_file, sample_rate=SR, output="probabilities"), out, options=fast)
    assert other[0]["model"] != onnx[0]["model"] and len(load_records(out)) == 3  # the same file read another way


def test_the_python_api_takes_a_model_file_as_the_cli_does(tmp_path, onnx_file):
    """freqrex.explain(audio, sr, "model.onnx") raised TypeError (OnnxModel's sample_rate missing), as did
    a .pt path and ONNX bytes; an option an adapter does not take was a TypeError too."""
    import freqrex
    from freqrex import ParameterError
    from freqrex.models import DEFAULT_SAMPLE_RATE, as_model, load_model

    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(SR // 2) / SR)).astype(np.float32)
    for spec in (onnx_file, open(onnx_file, "rb").read()):
        m = as_model(spec, output="logits")
        assert m.sample_rate == DEFAULT_SAMPLE_RATE == SR
        e = freqrex.explain(x, SR, m, budget=10, iterations=1)
        assert e.target in (0, 1, 2)
    # the path itself, read as probabilities (these scores lie in [0, 1]) at 16 kHz, as on the command line
    assert freqrex.explain(x, SR, onnx_file, budget=10, iterations=1).target in (0, 1, 2)
    with pytest.raises(ParameterError, match="declares no sample rate and is taken as 16000 Hz"):  # a clip at another rate: said
        freqrex.explain(x, 8000, onnx_file, budget=10, iterations=1)
    assert load_model(onnx_file, sample_rate=8000).sample_rate == 8000
    for spec, options, needle in [(onnx_file, {"device": "cpu"}, "OnnxModel takes no option 'device'"),
                                  ("madmom_key", {"output": "logits"}, "MadmomKey takes no option 'output'"),
                                  (lambda w: w[:, :2], {"foo": 1}, "CallableModel takes no option 'foo'")]:
        with pytest.raises(ParameterError, match=needle):
            as_model(spec, **options)


def test_a_factorys_function_keeps_its_scores_and_rate_whatever_names_are_given(tmp_path, monkeypatch, capsys, wav):
    """--class-names made the command line read a function's logits as probabilities (a model error),
    and --sample-rate silently replaced the rate the function declares."""
    (tmp_path / "logit_models.py").write_text(
        "import numpy as np\n"
        "def build():\n"
        "    def score(waves):\n"
        "        return np.stack([(waves ** 2).mean(1) * 50 - 3, np.full(len(waves), 0.5)], 1)\n"
        "    score.sample_rate = 16000\n"
        "    return score\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    names = tmp_path / "n.txt"
    names.write_text("loud\nquiet\n")
    base = ("explain", wav, "--model", "logit_models:build", "--trust-model-code", "--out", str(tmp_path / "o"),
            "--json", *SMALL_EXPLAIN)
    code, out, err = cli(capsys, *base, "--class-names", str(names))
    assert code == 0, err
    assert json.loads(out)["target_name"] in ("loud", "quiet")
    code, _, err = cli(capsys, *base, "--sample-rate", "22050")
    assert code == EXIT_USAGE and "22050" in err and "16000" in err
    # a function that declares no rate takes --sample-rate as its rate, its logits still its own scores
    (tmp_path / "bare_models.py").write_text(
        "import numpy as np\n"
        "def build():\n"
        "    def score(waves):\n"
        "        return np.stack([(waves ** 2).mean(1) * 50 - 3, np.full(len(waves), 0.5)], 1)\n"
        "    return score\n"
    )
    code, out, err = cli(capsys, "explain", wav, "--model", "bare_models:build", "--trust-model-code",
                         "--sample-rate", "16000", "--out", str(tmp_path / "o2"), "--json", *SMALL_EXPLAIN)
    assert code == 0, err
    code, _, err = cli(capsys, "explain", wav, "--model", str(tmp_path / "none.onnx"), "--sample-rate", "0",
                       *SMALL_EXPLAIN)
    assert code != 0 and "expects 16000" not in err


def test_a_function_whose_names_do_not_match_its_scores_is_a_model_error():
    import freqrex
    from freqrex import ModelError

    def f(waves):
        e = (np.asarray(waves) ** 2).mean(1)
        return np.stack([e, 2 * e, 3 * e + 1], 1)

    f.class_names, f.sample_rate = ["cat", "dog"], SR
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(SR // 2) / SR)).astype(np.float32)
    with pytest.raises(ModelError, match="3 scores per waveform but 2 class names"):
        freqrex.explain(x, SR, f, budget=10, iterations=1)
    f.class_names = ["cat", "dog", "bird", "fish"]
    with pytest.raises(ModelError, match="3 scores per waveform but 4 class names"):
        freqrex.flip(x, SR, f, budget=4)
    f.class_names = ["cat", "dog", "bird"]
    assert freqrex.explain(x, SR, f, budget=10, iterations=1).target_name == "bird"


def test_bfloat16_scores_of_a_plain_function_are_read(onnx_file):
    import torch

    import freqrex

    def f(waves):
        e = torch.as_tensor(np.asarray(waves) ** 2).mean(1)
        return torch.stack([e, 2 * e + 0.01], 1).to(torch.bfloat16)

    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(SR // 2) / SR)).astype(np.float32)
    assert freqrex.explain(x, SR, f, budget=10, iterations=1).target == 1


def test_evaluate_never_resumes_another_reading_of_the_same_file(tmp_path, wav, onnx_file):
    from freqrex.evaluation import EvalOptions, evaluate
    from freqrex.evaluation.records import load_records
    from freqrex.models import OnnxModel

    fast = EvalOptions(explain_budget=10, explain_iterations=1, flip_budget=4, ks=(1,), strategies=("causal",),
                       stft=False, equal_total=False)
    out = tmp_path / "r.jsonl"
    abc = evaluate([wav], OnnxModel(onnx_file, sample_rate=SR, output="logits", class_names=list("abc")), out,
                   options=fast)
    xyz = evaluate([wav], OnnxModel(onnx_file, sample_rate=SR, output="logits", class_names=list("xyz")), out,
                   options=fast)
    assert abc[0]["model"] != xyz[0]["model"] and len(load_records(out)) == 2
    assert xyz[0]["original"]["name"] in "xyz" and abc[0]["original"]["name"] in "abc"
    from freqrex.evaluation.runner import _model_name

    plain = OnnxModel(onnx_file, sample_rate=SR, output="logits")
    assert _model_name(plain) != _model_name(OnnxModel(onnx_file, sample_rate=SR, output="logits",
                                                        fit_policy="center"))
    assert "output_name=scores" in _model_name(plain)  # the output read, for a file with several


def test_hugging_face_options_are_named_as_the_user_named_them(hf_dirs):
    from freqrex import ParameterError
    from freqrex.models import HuggingFaceModel

    with pytest.raises(ParameterError, match="^window must be"):
        HuggingFaceModel(hf_dirs["ast"], window=0)
    with pytest.raises(ParameterError, match="^batch_size must be"):
        HuggingFaceModel(hf_dirs["ast"], batch_size=0)
