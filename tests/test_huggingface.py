"""Hugging Face models, torch modules and other user objects as freqrex models (offline, tiny models)."""

import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing in these tests may reach the hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import torch  # noqa: E402
import transformers  # noqa: E402

import freqrex  # noqa: E402
from freqrex import ModelError, ParameterError  # noqa: E402
from freqrex._checks import check_audio  # noqa: E402
from freqrex.models import CallableModel, HuggingFaceModel, TorchModel, as_model  # noqa: E402

SR = 16000
LABELS = {0: "blues", 1: "jazz", 2: "rock"}
NAMES = ["blues", "jazz", "rock"]
AST_WINDOW = 400 + (24 - 1) * 160  # 25 ms + 23 shifts of 10 ms: what the tiny AST extractor keeps


def _labels():
    return dict(num_labels=3, id2label=dict(LABELS), label2id={v: k for k, v in LABELS.items()})


def build(kind: str):
    """(model, feature extractor) of a tiny, randomly initialised classifier (seeded)."""
    torch.manual_seed(0)
    if kind == "ast":
        cfg = transformers.ASTConfig(patch_size=2, max_length=24, num_mel_bins=16, hidden_size=32,
                                     num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                                     frequency_stride=2, time_stride=2, **_labels())
        return (transformers.ASTForAudioClassification(cfg).eval(),
                transformers.ASTFeatureExtractor(num_mel_bins=16, max_length=24))
    conv = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=20,
                conv_dim=(32,) * 3, conv_stride=(4,) * 3, conv_kernel=(8,) * 3, num_conv_pos_embeddings=16,
                num_conv_pos_embedding_groups=2, **_labels())
    if kind == "wav2vec2":
        model = transformers.Wav2Vec2ForSequenceClassification(transformers.Wav2Vec2Config(**conv))
    else:
        model = transformers.HubertForSequenceClassification(transformers.HubertConfig(**conv))
    return model.eval(), transformers.Wav2Vec2FeatureExtractor(sampling_rate=SR)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """kind -> directory written by save_pretrained (model and feature extractor)."""
    out = {}
    for kind in ("ast", "wav2vec2", "hubert"):
        d = tmp_path_factory.mktemp(kind)
        model, extractor = build(kind)
        model.save_pretrained(d)
        extractor.save_pretrained(d)
        out[kind] = str(d)
    return out


def clip(seconds=0.5, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


def by_hand(model, extractor, waves):
    """Softmaxed logits of the model on each waveform, computed directly with transformers."""
    feats = extractor(list(waves), sampling_rate=SR, return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**feats).logits.double().numpy()
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


# ---------------------------------------------------------------- loading


@pytest.mark.parametrize("kind", ["ast", "wav2vec2", "hubert"])
def test_directory_gives_rate_class_names_and_the_models_scores(saved, kind):
    model = HuggingFaceModel(saved[kind], device="cpu")
    assert model.sample_rate == SR and model.class_names == NAMES and model.output == "logits"
    waves = np.stack([clip(0.2, 1), clip(0.2, 2)])
    reference, extractor = build(kind)
    np.testing.assert_allclose(model(waves), by_hand(reference, extractor, waves), rtol=1e-4, atol=1e-6)
    assert model.window == (AST_WINDOW if kind == "ast" else None)


def test_a_multi_label_model_gives_sigmoid_scores():
    """transformers reads a multi-label classifier's logits as independent sigmoids: no softmax over tags."""
    conv = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=20,
                conv_dim=(32,) * 3, conv_stride=(4,) * 3, conv_kernel=(8,) * 3, num_conv_pos_embeddings=16,
                num_conv_pos_embedding_groups=2, problem_type="multi_label_classification", **_labels())
    reference = transformers.Wav2Vec2ForSequenceClassification(transformers.Wav2Vec2Config(**conv)).eval()
    extractor = transformers.Wav2Vec2FeatureExtractor(sampling_rate=SR)
    model = HuggingFaceModel(reference, extractor, device="cpu")
    waves = np.stack([clip(0.2, 1), clip(0.2, 2)])
    feats = extractor(list(waves), sampling_rate=SR, return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = torch.sigmoid(reference(**feats).logits).double().numpy()
    assert model.output == "sigmoid"
    np.testing.assert_allclose(model(waves), expected, rtol=1e-4, atol=1e-6)


def test_explain_flip_and_evaluate_take_a_directory(saved, tmp_path):
    x = clip(0.3)
    e = freqrex.explain(x, SR, saved["wav2vec2"], budget=12, iterations=1)
    assert e.target_name == NAMES[e.target]
    r = freqrex.flip(x, SR, saved["hubert"], budget=4, explain_budget=10, explain_iterations=1)
    assert r.original_name == NAMES[r.original_class]
    from freqrex.evaluation import EvalOptions, evaluate
    from freqrex.io import save_wav

    save_wav(tmp_path / "a.wav", x, SR)
    options = EvalOptions(explain_budget=10, explain_iterations=1, ks=(1,), strategies=("causal",),
                          flip_budget=4, equal_total=False, stft=False)
    recs = evaluate([tmp_path / "a.wav"], saved["wav2vec2"], tmp_path / "r.jsonl", options=options, model_name="w2v")
    assert recs[0]["status"] == "ok" and recs[0]["original"]["name"] in NAMES


def test_model_object_pipeline_and_extractor_lookup(saved):
    x = clip(0.3)
    loaded = transformers.AutoModelForAudioClassification.from_pretrained(saved["wav2vec2"], local_files_only=True)
    direct = as_model(loaded)  # its feature extractor is found in the directory it came from
    assert isinstance(direct, HuggingFaceModel) and direct.class_names == NAMES
    model, extractor = build("ast")
    pipe = transformers.pipeline("audio-classification", model=model, feature_extractor=extractor, device="cpu")
    e = freqrex.explain(x, SR, pipe, budget=12, iterations=1)  # a pipeline works directly
    assert e.target_name == NAMES[e.target]
    assert e.target == int(np.argmax(by_hand(model, extractor, x[None])[0]))
    with pytest.raises(ModelError, match="HuggingFaceModel"):
        freqrex.explain(x, SR, build("hubert")[0], budget=12)  # built in memory: the extractor must be given
    wrapped = as_model(build("hubert")[0], feature_extractor=extractor_of("hubert"))
    assert wrapped.class_names == NAMES


def extractor_of(kind):
    return build(kind)[1]


def test_pickled_or_foreign_directories_are_refused(tmp_path, saved):
    d = tmp_path / "pickled"
    d.mkdir()
    with open(os.path.join(saved["hubert"], "config.json")) as fh:
        (d / "config.json").write_text(fh.read())
    (d / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelError, match="never unpickles"):
        HuggingFaceModel(d)
    with pytest.raises(ModelError, match="config.json"):
        HuggingFaceModel(tmp_path)
    with pytest.raises(ParameterError, match="8000"):
        HuggingFaceModel(saved["hubert"], sample_rate=8000)
    from freqrex.models import load_model

    weights = os.path.join(saved["hubert"], "model.safetensors")
    assert load_model(weights).class_names == NAMES  # the weights file of a save_pretrained directory
    alone = tmp_path / "alone.safetensors"
    alone.write_bytes(b"weights only")
    with pytest.raises(ModelError, match="weights only"):
        load_model(alone)


def test_same_results_for_batch_sizes_1_and_7(saved):
    x = clip(0.4)
    results = []
    for batch in (1, 7):
        model = HuggingFaceModel(saved["wav2vec2"], device="cpu", batch_size=batch)
        results.append(freqrex.explain(x, SR, model, budget=30, iterations=2, seed=3))
    a, b = results
    assert a.target == b.target and a.queries == b.queries
    np.testing.assert_array_equal(a.ranking, b.ranking)
    np.testing.assert_allclose(a.responsibility, b.responsibility, atol=1e-9)
    np.testing.assert_allclose(a.score, b.score, rtol=1e-5)


# ---------------------------------------------------------------- windows


def test_ast_windows_cover_a_long_clip_and_average():
    model, extractor = build("ast")
    wrapped = HuggingFaceModel(model, extractor, device="cpu")
    x = clip(3 * AST_WINDOW / SR + 0.01)
    n = x.size
    starts = [0, AST_WINDOW, 2 * AST_WINDOW, n - AST_WINDOW]
    expected = np.mean([by_hand(model, extractor, x[None, s:s + AST_WINDOW])[0] for s in starts], axis=0)
    np.testing.assert_allclose(wrapped(x[None])[0], expected, rtol=1e-4)
    whole = HuggingFaceModel(model, extractor, device="cpu", window=None)  # the extractor truncates
    np.testing.assert_allclose(whole(x[None])[0], by_hand(model, extractor, x[None, :AST_WINDOW])[0], rtol=1e-4)


WINDOW = 4000
TONE_HZ = 1000.0


class LastWindowBand(torch.nn.Module):
    """A fixed-length classifier: it keeps its first WINDOW samples (as AST truncates) and says
    'band' when they hold energy near 1 kHz (otherwise 'none', tied with 'other')."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(id2label={0: "none", 1: "other", 2: "band"}, num_labels=3)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_values):
        x = input_values[:, :WINDOW].double()
        spec = torch.fft.rfft(x, n=WINDOW, dim=1).abs() ** 2
        lo, hi = int((TONE_HZ - 50) * WINDOW / SR), int((TONE_HZ + 50) * WINDOW / SR)
        energy = spec[:, lo:hi + 1].sum(1) / (WINDOW / 4) ** 2
        zero = energy * 0 + self.anchor.double()
        return torch.stack([zero, zero, 40.0 * energy - 1.0], 1).float()


def planted_clip():
    """Three windows of noise; the tone only in the last one."""
    rng = np.random.default_rng(7)
    x = 0.02 * rng.standard_normal(3 * WINDOW)
    t = np.arange(WINDOW) / SR
    x[2 * WINDOW:] += 0.3 * np.sin(2 * np.pi * TONE_HZ * t)
    return x.astype(np.float32)


def test_windowing_finds_the_band_in_the_last_window():
    x = planted_clip()
    extractor = transformers.Wav2Vec2FeatureExtractor(sampling_rate=SR, do_normalize=False)
    cropped = HuggingFaceModel(LastWindowBand(), extractor, device="cpu", window=None)
    assert np.argmax(cropped(x[None])[0]) != 2  # cropped to the first window, the band cannot matter
    windowed = HuggingFaceModel(LastWindowBand(), extractor, device="cpu", window=WINDOW)
    e = freqrex.explain(x, SR, windowed, budget=120, iterations=2, seed=0)
    assert e.target_name == "band"
    assert any(lo - 20 <= TONE_HZ <= hi + 20 for lo, hi in e.bands("sufficient")), e.bands("sufficient")


def test_fixed_input_onnx_windows_the_same_way(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    lo, hi = int((TONE_HZ - 50) * WINDOW / SR), int((TONE_HZ + 50) * WINDOW / SR)
    k = np.arange(lo, hi + 1)
    n = np.arange(WINDOW)[:, None]
    cos = np.cos(2 * np.pi * n * k / WINDOW).astype(np.float32)
    sin = np.sin(2 * np.pi * n * k / WINDOW).astype(np.float32)
    scale = np.array([40.0 / (WINDOW / 4) ** 2], dtype=np.float32)
    nodes = [
        helper.make_node("MatMul", ["waves", "cos"], ["re"]),
        helper.make_node("MatMul", ["waves", "sin"], ["im"]),
        helper.make_node("Mul", ["re", "re"], ["re2"]),
        helper.make_node("Mul", ["im", "im"], ["im2"]),
        helper.make_node("Add", ["re2", "im2"], ["power"]),
        helper.make_node("ReduceSum", ["power", "axes"], ["energy"], keepdims=1),
        helper.make_node("Mul", ["energy", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["band"]),
        helper.make_node("Mul", ["energy", "zero"], ["flat"]),
        helper.make_node("Concat", ["flat", "flat", "band"], ["logits"], axis=1),
    ]
    inits = [numpy_helper.from_array(cos, "cos"), numpy_helper.from_array(sin, "sin"),
             numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
             numpy_helper.from_array(scale, "scale"), numpy_helper.from_array(np.array([-1.0], np.float32), "bias"), numpy_helper.from_array(np.zeros(1, np.float32), "zero")]
    graph = helper.make_graph(nodes, "band", [helper.make_tensor_value_info("waves", TensorProto.FLOAT, ["b", WINDOW])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["b", 3])], inits)
    path = tmp_path / "band.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    x = planted_clip()
    model = freqrex.models.OnnxModel(path, sample_rate=SR, output="logits", class_names=["none", "other", "band"])
    assert model.window == WINDOW
    e = freqrex.explain(x, SR, model, budget=120, iterations=2, seed=0)
    assert e.target_name == "band"
    assert any(lo - 20 <= TONE_HZ <= hi + 20 for lo, hi in e.bands("sufficient"))
    start = freqrex.models.OnnxModel(path, sample_rate=SR, output="logits", fit_policy="start")
    assert np.argmax(start(x[None])[0]) != 2


# ---------------------------------------------------------------- other objects


def test_plain_torch_module_works_directly():
    class Energy(torch.nn.Module):
        def forward(self, x):  # logits: the loud-vs-quiet decision
            e = (x * x).mean(1)
            return torch.stack([20 * e - 1, 1 - 20 * e], 1)

    x = clip(0.3)
    e = freqrex.explain(x, SR, Energy(), budget=12, iterations=1)
    assert e.target in (0, 1)
    model = as_model(Energy())
    assert isinstance(model, TorchModel) and model.sample_rate is None
    model(x[None])
    assert model.output == "logits"  # told from its scores (outside [0, 1])
    r = freqrex.flip(x, SR, Energy(), budget=4, explain_budget=10, explain_iterations=1)
    assert r.original_class == e.target


def test_evaluate_takes_objects(tmp_path):
    from freqrex.evaluation import EvalOptions, evaluate_many
    from freqrex.io import save_wav

    class Energy(torch.nn.Module):
        def forward(self, x):
            e = (x * x).mean(1)
            return torch.stack([20 * e - 1, 1 - 20 * e], 1)

    save_wav(tmp_path / "a.wav", clip(0.3), SR)
    model, extractor = build("hubert")
    pipe = transformers.pipeline("audio-classification", model=model, feature_extractor=extractor, device="cpu")
    options = EvalOptions(explain_budget=10, explain_iterations=1, ks=(1,), strategies=("causal",),
                          flip_budget=4, equal_total=False, stft=False)
    out = evaluate_many([tmp_path / "a.wav"], {"energy": Energy(), "pipe": pipe}, tmp_path / "r.jsonl",
                        options=options, transfer=False)
    assert all(recs[0]["status"] == "ok" for recs in out.values()), out
    assert out["pipe"][0]["original"]["name"] in NAMES


def test_unusable_objects_name_the_adapter():
    with pytest.raises(ModelError, match="TorchModel"):
        freqrex.explain(clip(0.2), SR, object(), budget=10)
    with pytest.raises(ModelError, match="CallableModel"):
        as_model(SimpleNamespace(predict=lambda w: w))


def test_class_names_mapping_in_index_order():
    def fn(waves):
        return np.tile([0.2, 0.7, 0.1], (len(waves), 1))

    assert CallableModel(fn, sample_rate=SR, class_names={2: "c", 0: "a", 1: "b"}).class_names == ["a", "b", "c"]
    assert CallableModel(fn, sample_rate=SR, class_names={"1": "b", "0": "a", "2": "c"}).class_names == ["a", "b", "c"]
    with pytest.raises(ParameterError):
        CallableModel(fn, sample_rate=SR, class_names={1: "b", 2: "c"})
    fn.class_names = {1: "jazz", 0: "blues", 2: "rock"}
    e = freqrex.explain(clip(0.2), SR, fn, budget=8, iterations=1)
    assert e.target == 1 and e.target_name == "jazz"


# ---------------------------------------------------------------- audio dtypes, import, notebooks


def test_integer_pcm_is_scaled_as_soundfile_does():
    x = np.array([-32768, 0, 16384, 32767], dtype=np.int16)
    np.testing.assert_allclose(check_audio(x), x / 32768.0)
    y = np.array([-2**31, 2**30], dtype=np.int32)
    np.testing.assert_allclose(check_audio(y), [-1.0, 0.5])
    np.testing.assert_allclose(check_audio(np.array([0, 128, 192], dtype=np.uint8)), [-1.0, 0.0, 0.5])
    with pytest.raises(ParameterError, match="int16"):
        check_audio(np.arange(10, dtype=np.int64))
    f = clip(0.2)
    pcm = np.round(f * 32767).astype(np.int16)

    def fn(waves):
        return np.stack([(waves ** 2).mean(1), np.full(len(waves), 0.001)], 1)

    assert freqrex.explain(pcm, SR, fn, budget=8).score == pytest.approx(float(np.mean((pcm / 32768.0) ** 2)), rel=1e-4)


def test_import_freqrex_imports_neither_torch_nor_transformers():
    code = ("import sys, freqrex, freqrex.models, freqrex.cli, freqrex.notebook; "
            "assert 'transformers' not in sys.modules and 'torch' not in sys.modules, 'eager import'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_notebook_reprs():
    def fn(waves):
        spec = np.abs(np.fft.rfft(waves, axis=1))
        return np.stack([spec[:, 200:240].sum(1), np.full(len(waves), 50.0)], 1)

    fn.class_names = ["tone", "rest"]
    x = clip(0.5)
    e = freqrex.explain(x, SR, fn, budget=16, iterations=1)
    assert len(repr(e)) < 300 and "'tone'" in repr(e)
    page = e._repr_html_()
    assert "<table>" in page and "data:image/png;base64," in page and page.count("data:audio/wav;base64,") >= 2
    r = freqrex.flip(x, SR, fn, explanation=e, budget=6)
    assert len(repr(r)) < 300 and repr(r).startswith("<FlipResult")
    page = r._repr_html_()
    assert "<table>" in page and "data:audio/wav;base64," in page


def test_whisper_classifiers_get_the_fixed_length_input_they_need():
    """WhisperForAudioClassification refused every call ("expects the mel input features to be of length
    3000"): the adapter asked its extractor to pad to the longest waveform, overriding Whisper's own
    max_length padding; transformers' pipeline scored the same model fine."""
    if not hasattr(transformers, "WhisperForAudioClassification"):
        pytest.skip("this transformers has no WhisperForAudioClassification")
    torch.manual_seed(0)
    cfg = transformers.WhisperConfig(d_model=16, encoder_layers=1, encoder_attention_heads=2, decoder_layers=1,
                                     decoder_attention_heads=2, encoder_ffn_dim=16, decoder_ffn_dim=16,
                                     num_mel_bins=16, max_source_positions=50, **_labels())
    model = transformers.WhisperForAudioClassification(cfg).eval()
    extractor = transformers.WhisperFeatureExtractor(feature_size=16, chunk_length=1, sampling_rate=SR)
    m = HuggingFaceModel(model, extractor)
    assert m.window == SR  # its 1 s input: longer clips are windowed, shorter padded by the extractor
    waves = np.stack([clip(0.5, seed=0), clip(0.5, seed=1)])
    feats = extractor(list(waves), sampling_rate=SR, return_tensors="pt")
    with torch.no_grad():
        expected = torch.softmax(model(**feats).logits, dim=-1).numpy()
    np.testing.assert_allclose(m(waves), expected, atol=1e-5)
    e = freqrex.explain(clip(1.5), SR, m, budget=20, iterations=1)
    assert e.target_name in NAMES
