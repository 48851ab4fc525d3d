"""Tests of the model adapters and load_model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import freqrex.models
from freqrex.errors import ModelError, ParameterError
from freqrex.models import CallableModel, Model, OnnxModel, TorchModel, load_model

SR = 8000
# the directory freqrex was imported from (source tree or site-packages)
PYTHON_DIR = Path(freqrex.models.__file__).resolve().parents[2]


def features(waves):
    """Three deterministic 'logits' per waveform: mean, peak, energy."""
    w = np.asarray(waves, dtype=np.float64)
    return np.stack([w.mean(1), np.abs(w).max(1), (w**2).mean(1)], axis=1)


def probs(waves):
    z = features(waves)
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.fixture
def waves():
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, size=(5, 400)).astype(np.float32)


# -- importing ------------------------------------------------------------------

def test_import_does_not_load_torch_or_onnxruntime():
    code = (
        "import sys, freqrex.models, freqrex.io; "
        "bad = [m for m in ('torch', 'onnxruntime', 'onnx') if m in sys.modules]; "
        "assert not bad, bad"
    )
    env = {**os.environ, "PYTHONPATH": str(PYTHON_DIR)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# -- CallableModel ------------------------------------------------------------

def test_callable_probabilities_untouched(waves):
    model = CallableModel(probs, sample_rate=SR)
    out = model(waves)
    assert isinstance(model, Model)
    assert out.dtype == np.float32 and out.shape == (5, 3)
    np.testing.assert_allclose(out, probs(waves), rtol=1e-6)
    assert model.class_names == ["0", "1", "2"] and model.n_classes == 3


def test_callable_logits_softmaxed_once(waves):
    model = CallableModel(features, sample_rate=SR, output="logits", class_names=["a", "b", "c"])
    out = model(waves)
    np.testing.assert_allclose(out, probs(waves), rtol=1e-5)
    np.testing.assert_allclose(out.sum(1), 1.0, rtol=1e-6)
    # large logits stay finite (stable softmax)
    big = CallableModel(lambda w: np.full((len(w), 2), 1e4) + [0, 1], sample_rate=SR, output="logits")
    np.testing.assert_allclose(big(waves), np.tile([1 / (1 + np.e), np.e / (1 + np.e)], (5, 1)), rtol=1e-5)


def test_callable_sigmoid_untouched(waves):
    scores = np.array([[0.9, 0.8, 0.1]])
    model = CallableModel(lambda w: np.repeat(scores, len(w), 0), sample_rate=SR, output="sigmoid")
    np.testing.assert_allclose(model(waves), np.repeat(scores, 5, 0), rtol=1e-6)


def test_probabilities_out_of_range_are_rejected(waves):
    model = CallableModel(features, sample_rate=SR)  # logits declared as probabilities
    with pytest.raises(ModelError, match="output='logits'"):
        model(waves[:, :10] * 50)


def test_class_names_discovered_lazily_by_probe():
    calls = []

    def fn(w):
        calls.append(w.shape)
        return np.zeros((len(w), 4))

    model = CallableModel(fn, sample_rate=SR, input_samples=1234)
    assert calls == []
    assert model.class_names == ["0", "1", "2", "3"]
    assert calls == [(1, 1234)]
    assert model.class_name(2) == "2" and model.class_name(9) == "9"


def test_model_exception_is_chained(waves):
    def broken(w):
        raise ValueError("boom")

    with pytest.raises(ModelError, match="boom") as info:
        CallableModel(broken, sample_rate=SR)(waves)
    assert isinstance(info.value.__cause__, ValueError)
    assert isinstance(info.value, RuntimeError)


@pytest.mark.parametrize(
    "fn, match",
    [
        (lambda w: np.zeros(len(w)), "shape"),  # 1-D
        (lambda w: np.zeros((len(w), 2, 2)), "shape"),  # 3-D
        (lambda w: np.zeros((len(w) + 1, 2)), "rows"),  # wrong batch size
        (lambda w: np.zeros((len(w), 0)), "zero classes"),
        (lambda w: "not numbers", "convertible"),
        (lambda w: None, "shape"),
    ],
)
def test_wrong_outputs_raise(waves, fn, match):
    with pytest.raises(ModelError, match=match):
        CallableModel(fn, sample_rate=SR)(waves)


def test_one_dimensional_output_for_batch_one_is_an_error(waves):
    model = CallableModel(lambda w: np.array([0.2, 0.8]), sample_rate=SR, fixed_batch=1)
    with pytest.raises(ModelError, match=r"\(batch, classes\)"):
        model(waves[:1])


def test_unconvertible_output_chains_cause(waves):
    with pytest.raises(ModelError) as info:
        CallableModel(lambda w: [["a", "b"]] * len(w), sample_rate=SR)(waves)
    assert isinstance(info.value.__cause__, ValueError)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_scores_raise(waves, bad):
    def fn(w):
        out = np.full((len(w), 2), 0.5)
        out[-1, 0] = bad
        return out

    for output in ("probabilities", "logits", "sigmoid"):
        with pytest.raises(ModelError, match="NaN or infinite"):
            CallableModel(fn, sample_rate=SR, output=output)(waves)


def test_class_count_must_match_names(waves):
    model = CallableModel(probs, sample_rate=SR, class_names=["a", "b"])
    with pytest.raises(ModelError, match="2 class names"):
        model(waves)


def test_fixed_batch_one_calls_per_waveform(waves):
    seen = []

    def single(w):
        if w.shape[0] != 1:
            raise ValueError(f"batch must be 1, got {w.shape[0]}")
        seen.append(w.shape)
        return probs(w)

    model = CallableModel(single, sample_rate=SR, fixed_batch=1)
    np.testing.assert_allclose(model(waves), probs(waves), rtol=1e-6)
    assert seen == [(1, 400)] * 5
    with pytest.raises(ModelError) as info:
        CallableModel(single, sample_rate=SR)(waves)
    assert isinstance(info.value.__cause__, ValueError)


def test_fixed_batch_n_pads_the_last_chunk(waves):
    sizes = []

    def exact4(w):
        assert w.shape[0] == 4
        sizes.append(w.shape[0])
        return probs(w)

    out = CallableModel(exact4, sample_rate=SR, fixed_batch=4)(waves)
    assert sizes == [4, 4]
    np.testing.assert_allclose(out, probs(waves), rtol=1e-6)


def test_max_batch_size_splits(waves):
    sizes = []

    def fn(w):
        sizes.append(len(w))
        return probs(w)

    out = CallableModel(fn, sample_rate=SR, max_batch_size=2)(waves)
    assert sizes == [2, 2, 1]
    np.testing.assert_allclose(out, probs(waves), rtol=1e-6)


def test_inconsistent_class_counts_across_chunks(waves):
    state = {"n": 1}

    def fn(w):
        state["n"] += 1
        return np.full((len(w), state["n"]), 0.1)

    with pytest.raises(ModelError, match="different numbers of classes"):
        CallableModel(fn, sample_rate=SR, max_batch_size=2)(waves)


def test_input_validation(waves):
    model = CallableModel(probs, sample_rate=SR)
    with pytest.raises(ParameterError):
        model(waves[0])  # 1-D input
    with pytest.raises(ParameterError):
        model(np.zeros((2, 0), dtype=np.float32))
    assert model(np.zeros((0, 400), dtype=np.float32)).shape == (0, 3)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(sample_rate=0),
        dict(sample_rate=SR, output="softmax"),
        dict(sample_rate=SR, fixed_batch=0),
        dict(sample_rate=SR, max_batch_size=-1),
        dict(sample_rate=SR, class_names="abc"),
        dict(sample_rate=SR, class_names=[]),
    ],
)
def test_bad_options(kwargs):
    with pytest.raises(ParameterError):
        CallableModel(probs, **kwargs)


def test_not_callable():
    with pytest.raises(ParameterError):
        CallableModel(42, sample_rate=SR)


# -- load_model -------------------------------------------------------------------

def test_load_model_dispatch(tmp_path):
    model = CallableModel(probs, sample_rate=SR)
    assert load_model(model) is model
    with pytest.raises(ParameterError):
        load_model(model, sample_rate=SR)
    wrapped = load_model(probs, sample_rate=SR, output="probabilities")
    assert type(wrapped) is CallableModel
    with pytest.raises(ModelError, match="unknown model"):
        load_model("no_such_model")
    with pytest.raises(ModelError, match="unknown model"):
        load_model(str(tmp_path / "missing.bin"))
    odd = tmp_path / "model.bin"
    odd.write_bytes(b"x")
    with pytest.raises(ModelError, match="cannot tell"):
        load_model(odd)
    with pytest.raises(ModelError):
        load_model(3.5)


def test_musicnn_is_lazy():
    import freqrex.models as models

    assert "musicnn" in models.__all__ and "musicnn" in dir(models)


# -- OnnxModel --------------------------------------------------------------------

def _onnx_model(batch_dim, samples_dim, *, kind="features", rank=2):
    """A tiny ONNX classifier built with the onnx helper API."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    in_shape = [samples_dim] if rank == 1 else [batch_dim, samples_dim]
    x = helper.make_tensor_value_info("waves", TensorProto.FLOAT, in_shape)
    axis = 0 if rank == 1 else 1
    if kind == "features":  # [mean, max|x|, mean x^2], like features()
        nodes = [
            helper.make_node("ReduceMean", ["waves"], ["m"], axes=[axis], keepdims=1),
            helper.make_node("Abs", ["waves"], ["a"]),
            helper.make_node("ReduceMax", ["a"], ["p"], axes=[axis], keepdims=1),
            helper.make_node("Mul", ["waves", "waves"], ["sq"]),
            helper.make_node("ReduceMean", ["sq"], ["e"], axes=[axis], keepdims=1),
            helper.make_node("Concat", ["m", "p", "e"], ["scores"], axis=axis),
        ]
        inits = []
        out_shape = [3] if rank == 1 else [batch_dim, 3]
    else:  # linear: waves @ W, W of shape (samples, 2)
        w = np.stack([np.ones(samples_dim), np.linspace(-1, 1, samples_dim)], 1).astype(np.float32)
        inits = [numpy_helper.from_array(w / samples_dim, "W")]
        nodes = [helper.make_node("MatMul", ["waves", "W"], ["scores"])]
        out_shape = [batch_dim, 2]
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, out_shape)
    graph = helper.make_graph(nodes, "tiny", [x], [y], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.fixture
def onnxruntime():
    return pytest.importorskip("onnxruntime")


def test_onnx_dynamic_batch(tmp_path, onnxruntime, waves):
    path = tmp_path / "tiny.onnx"
    path.write_bytes(_onnx_model("batch", "samples"))
    model = load_model(path, sample_rate=SR, output="logits")
    assert isinstance(model, OnnxModel)
    assert model.fixed_batch is None and model.input_samples is None
    assert model.class_names == ["0", "1", "2"]  # from the static output shape
    assert model.providers == ["CPUExecutionProvider"]
    np.testing.assert_allclose(model(waves), probs(waves), rtol=1e-5)
    # bytes work too, and the output is not softmaxed twice
    as_bytes = load_model(path.read_bytes(), sample_rate=SR, output="probabilities", batch_size=2)
    with pytest.raises(ModelError, match="output='logits'"):
        as_bytes(waves * 10)


def test_onnx_fixed_batch_one(tmp_path, onnxruntime, waves):
    path = tmp_path / "b1.onnx"
    path.write_bytes(_onnx_model(1, "samples"))
    model = OnnxModel(path, sample_rate=SR, output="logits")
    assert model.fixed_batch == 1
    np.testing.assert_allclose(model(waves), probs(waves), rtol=1e-5)
    # without per-item calls onnxruntime refuses the batch: the error is chained
    raw = CallableModel(lambda w: model.session.run(None, {"waves": w})[0], sample_rate=SR)
    with pytest.raises(ModelError) as info:
        raw(waves)
    assert info.value.__cause__ is not None


def test_onnx_no_batch_axis(tmp_path, onnxruntime, waves):
    path = tmp_path / "r1.onnx"
    path.write_bytes(_onnx_model(None, "samples", rank=1))
    model = OnnxModel(path, sample_rate=SR, output="logits")
    assert model.fixed_batch == 1
    np.testing.assert_allclose(model(waves), probs(waves), rtol=1e-5)


def test_onnx_fixed_length_crops_and_pads(tmp_path, onnxruntime, waves):
    path = tmp_path / "len.onnx"
    path.write_bytes(_onnx_model("batch", 100, kind="linear"))
    model = OnnxModel(path, sample_rate=SR, output="logits")
    assert model.input_samples == 100
    w = np.stack([np.ones(100), np.linspace(-1, 1, 100)], 1) / 100

    def expect(x):
        z = x.astype(np.float64) @ w
        e = np.exp(z - z.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    centre = OnnxModel(path, sample_rate=SR, output="logits", fit_policy="center")
    np.testing.assert_allclose(centre(waves), expect(waves[:, 150:250]), rtol=1e-5)  # centre crop
    # the default scores every window of 100 samples (the last ends with the clip) and averages them
    n = waves.shape[1]
    starts = list(range(0, n - 100 + 1, 100)) + ([n - 100] if (n - 100) % 100 else [])
    mean = np.mean([expect(waves[:, s:s + 100]) for s in starts], axis=0)
    np.testing.assert_allclose(model(waves), mean, rtol=1e-5)
    half = OnnxModel(path, sample_rate=SR, output="logits", window_hop=50)
    mean = np.mean([expect(waves[:, s:s + 100]) for s in range(0, n - 100 + 1, 50)], axis=0)
    np.testing.assert_allclose(half(waves), mean, rtol=1e-5)
    start = OnnxModel(path, sample_rate=SR, output="logits", fit_policy="start")
    np.testing.assert_allclose(start(waves), expect(waves[:, :100]), rtol=1e-5)
    short = waves[:, :60]
    padded = np.concatenate([short, np.zeros((5, 40), np.float32)], 1)
    np.testing.assert_allclose(model(short), expect(padded), rtol=1e-5)


def test_onnx_invalid_files(tmp_path, onnxruntime):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an ONNX model")
    with pytest.raises(ModelError, match="not a valid ONNX model") as info:
        OnnxModel(bad, sample_rate=SR)
    assert info.value.__cause__ is not None
    with pytest.raises(ModelError, match="not a valid ONNX model"):
        load_model(b"\x00\x01garbage", sample_rate=SR)
    with pytest.raises(ModelError, match="not found"):
        OnnxModel(tmp_path / "missing.onnx", sample_rate=SR)
    good = tmp_path / "ok.onnx"
    good.write_bytes(_onnx_model("batch", "samples"))
    with pytest.raises(ModelError, match="no input named"):
        OnnxModel(good, sample_rate=SR, input_name="x")
    with pytest.raises(ParameterError):
        OnnxModel(good, sample_rate=SR, providers="tpu")
    # class names that cannot match the declared outputs are refused at once, not at the first call
    with pytest.raises(ParameterError, match="2 class names given but .* has 3 outputs"):
        OnnxModel(good, sample_rate=SR, class_names=["a", "b"])
    assert OnnxModel(good, sample_rate=SR, class_names=["a", "b", "c"]).class_names == ["a", "b", "c"]


def test_onnx_cuda_request_falls_back_to_cpu(tmp_path, onnxruntime):
    path = tmp_path / "tiny.onnx"
    path.write_bytes(_onnx_model("batch", "samples"))
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.warns(RuntimeWarning, match="CUDA"):
        model = OnnxModel(path, sample_rate=SR, providers="cuda")
    assert model.providers == ["CPUExecutionProvider"]
    assert OnnxModel(path, sample_rate=SR, providers="auto").providers == ["CPUExecutionProvider"]


# -- TorchModel -------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _tiny_module(torch, *, batch_one=False):
    class Tiny(torch.nn.Module):
        """Linear read-out of [mean, max|x|, mean x^2] -- deterministic."""

        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.tensor([1.0, 1.0, 1.0]))
            self.dropout = torch.nn.Dropout(0.5)  # must be off in eval mode
            self.batch_one = batch_one

        def forward(self, x):
            if self.batch_one and x.shape[0] != 1:
                raise RuntimeError("this module only takes a batch of 1")
            f = torch.stack([x.mean(1), x.abs().amax(1), (x * x).mean(1)], 1)
            return self.dropout(f * self.scale)

    return Tiny()


def test_torch_module(torch, waves):
    module = _tiny_module(torch).train()
    model = load_model(module, sample_rate=SR, output="logits", device="cpu", batch_size=2)
    assert isinstance(model, TorchModel)
    assert not module.training and str(model.device) == "cpu"
    out = model(waves)
    assert out.dtype == np.float32 and out.shape == (5, 3)
    np.testing.assert_allclose(out, probs(waves), rtol=1e-5)
    assert torch.is_grad_enabled()  # inference mode is scoped to the call


def test_torch_fixed_batch_one(torch, waves):
    module = _tiny_module(torch, batch_one=True)
    with pytest.raises(ModelError) as info:
        TorchModel(module, sample_rate=SR, output="logits", device="cpu")(waves)
    assert isinstance(info.value.__cause__, RuntimeError)
    model = TorchModel(module, sample_rate=SR, output="logits", device="cpu", fixed_batch=1)
    np.testing.assert_allclose(model(waves), probs(waves), rtol=1e-5)


@pytest.mark.filterwarnings("ignore:`torch.jit.:FutureWarning")
def test_torchscript_module_and_file(torch, tmp_path, waves):
    scripted = torch.jit.script(_tiny_module(torch))
    model = load_model(scripted, sample_rate=SR, output="logits", device="cpu")
    np.testing.assert_allclose(model(waves), probs(waves), rtol=1e-5)
    path = tmp_path / "tiny.pt"
    torch.jit.save(scripted, str(path))
    from_file = load_model(path, sample_rate=SR, output="logits", device="cpu")
    assert isinstance(from_file, TorchModel)
    np.testing.assert_allclose(from_file(waves), probs(waves), rtol=1e-5)
    state = tmp_path / "weights.pth"
    torch.save(_tiny_module(torch).state_dict(), str(state))
    with pytest.raises(ModelError, match="state_dict"):
        load_model(state, sample_rate=SR)


def test_torch_auto_device_and_errors(torch, waves):
    model = TorchModel(_tiny_module(torch), sample_rate=SR, output="logits")
    assert model.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    np.testing.assert_allclose(model(waves), probs(waves), rtol=1e-4)
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError):
            TorchModel(_tiny_module(torch), sample_rate=SR, device="cuda")
    with pytest.raises(ParameterError):
        TorchModel("not a module but a string".split(), sample_rate=SR)
    identity = TorchModel(torch.nn.Identity(), sample_rate=SR, device="cpu")  # "probabilities"
    with pytest.raises(ModelError, match="output='logits'"):
        identity(waves[:, :3] * 5)
    nan = TorchModel(torch.nn.Identity(), sample_rate=SR, device="cpu", output="logits")
    with pytest.raises(ModelError, match="NaN"):
        nan(np.full((1, 3), np.nan, dtype=np.float32))


def test_auto_output_is_not_decided_by_the_silent_probe():
    """The probe for class names used to decide "auto": a model whose logits of silence lie in [0, 1]
    then failed on every real clip ("declared to output sigmoid")."""

    def logits(waves):
        e = (np.asarray(waves, dtype=np.float64) ** 2).mean(1)
        return np.stack([e * 400.0, 1.0 - e * 400.0], 1)  # (0, 1) on silence, far outside on music

    model = CallableModel(logits, sample_rate=8000, output="auto")
    assert model.class_names == ["0", "1"] and model.output == "auto"
    loud = (0.5 * np.sin(np.arange(8000) / 3.0)).astype(np.float32)[None]
    scores = model(loud)
    assert model.output == "logits" and np.allclose(scores.sum(1), 1.0)
    fooled = CallableModel(logits, sample_rate=8000, output="auto")
    fooled(np.zeros((1, 8000), np.float32) + 1e-3)  # a quiet clip first: its logits look like sigmoid tags
    with pytest.raises(ModelError, match="took its first scores"):
        fooled(loud)
