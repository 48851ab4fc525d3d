"""Fidelity of freqrex's musicnn port against the original TensorFlow musicnn.

The fixture ``tests/data/musicnn_reference.npz`` was made by
``scripts/make_musicnn_fixture.py``, which runs the original ``musicnn`` 0.1.0
(TensorFlow 2.15, librosa 0.8.1) on the three clips ``musicnn_clip_*.flac``.
The torch-port tests need torch and the original checkpoints
(``pip install --no-deps musicnn`` or ``FREQREX_MUSICNN_DIR``); they skip
otherwise.
"""

from __future__ import annotations

import importlib
import json
import os

import numpy as np
import pytest
import soundfile as sf

from freqrex.errors import ModelError, ParameterError

M = importlib.import_module("freqrex.models.musicnn")  # the module (the package exposes a function)
ckpt = importlib.import_module("freqrex.models._tf_checkpoint")

DATA = os.path.join(os.path.dirname(__file__), "data")
CLIPS = [os.path.join(DATA, f"musicnn_clip_{i}.flac") for i in range(3)]
TOL = 1e-4


@pytest.fixture(scope="module")
def ref():
    with np.load(os.path.join(DATA, "musicnn_reference.npz")) as z:
        return dict(z)


@pytest.fixture(scope="module")
def clips():
    waves = []
    for path in CLIPS:
        wave, sr = sf.read(path, dtype="float32")
        assert sr == 16000 and wave.ndim == 1
        waves.append(wave)
    return waves


@pytest.fixture(scope="module")
def models():
    return {name: M.musicnn(name) for name in M.NAMES}


# ----------------------------------------------------------------- checkpoint reader


def test_reader_tiny_checkpoint():
    w = ckpt.read_checkpoint(os.path.join(DATA, "tiny_ckpt", "model"))
    assert sorted(w) == ["bias", "counts", "half", "scope/inner/kernel", "step"]
    np.testing.assert_array_equal(w["scope/inner/kernel"], np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 8)
    assert w["scope/inner/kernel"].dtype == np.float32
    assert w["bias"].dtype == np.float64 and w["bias"].tolist() == [-1.5, 0.0, 2.25]
    assert w["step"].dtype == np.int64 and w["step"].shape == () and int(w["step"]) == -(2**40)
    assert w["counts"].dtype == np.int32 and w["counts"].shape == (3, 1, 2)
    np.testing.assert_array_equal(w["counts"].ravel(), np.arange(6))
    assert w["half"].dtype == np.float16 and w["half"].tolist() == [0.5, -2.0]


def test_reader_rejects_garbage(tmp_path):
    (tmp_path / "x.index").write_bytes(b"\0" * 64)
    with pytest.raises(ValueError, match="magic"):
        ckpt.read_checkpoint(str(tmp_path / "x"))
    with pytest.raises(FileNotFoundError):
        ckpt.read_checkpoint(str(tmp_path / "missing"))


def test_reader_musicnn_checkpoints():
    folder = M.find_checkpoints()
    if folder is None:
        pytest.skip("musicnn checkpoints not installed (pip install --no-deps musicnn)")
    w = ckpt.read_checkpoint(os.path.join(folder, "MSD_musicnn") + os.sep)
    expected = {"conv2d/kernel": (7, 38, 1, 204), "conv2d_2/kernel": (128, 1, 1, 51),
                "conv2d_5/kernel": (7, 561, 1, 64), "batch_normalization_9/moving_mean": (1506,),
                "dense/kernel": (1506, 200), "dense_1/kernel": (200, 50), "dense_1/bias": (50,)}
    for name, shape in expected.items():
        assert w[name].shape == shape and w[name].dtype == np.float32, name
    assert np.all(w["batch_normalization_9/moving_variance"] > 0)
    v = ckpt.read_checkpoint(os.path.join(folder, "MTT_vgg") + os.sep)
    assert v["1CNN/kernel"].shape == (3, 3, 1, 128) and v["dense/kernel"].shape == (256, 50)


# ----------------------------------------------------------------- front end


def test_filterbank():
    fb = M.mel_filterbank()
    assert fb.shape == (257, 96) and fb.dtype == np.float32 and not fb.flags.writeable
    assert M.mel_filterbank() is fb  # computed once
    assert np.all(fb >= 0) and np.all(fb.max(axis=0) > 0)
    peaks = fb.argmax(axis=0)
    assert np.all(np.diff(peaks) >= 0) and peaks[-1] <= 256


def test_front_end_matches_original(ref, clips):
    for i, wave in enumerate(clips):
        ours = M.patches(wave)[0]
        theirs = ref[f"patches_{i}"]
        assert ours.shape == theirs.shape == (3, 187, 96)
        # a different FFT/BLAS may move a value across a float16 rounding step (the atol), and numpy's
        # float32 log10 differs by up to 2 ulp between versions (numpy 2.4 moved half the values by 1-2)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-3)
        ulp = np.abs(ours.view(np.int32).astype(np.int64) - theirs.view(np.int32).astype(np.int64))
        assert np.mean(ulp <= 4) > 0.999


def test_patching():
    rng = np.random.default_rng(1)
    assert M.patches(rng.standard_normal(16000 * 30) * 0.1).shape == (1, 10, 187, 96)  # 1876 frames
    assert M.patches(rng.standard_normal((2, M.PATCH_SAMPLES))).shape == (2, 1, 187, 96)
    assert M.patches(rng.standard_normal((2, 2 * M.PATCH_SAMPLES + 186 * 256))).shape[1] == 2
    short = rng.standard_normal(1000).astype(np.float32)
    p = M.patches(short)
    assert p.shape == (1, 1, 187, 96)
    np.testing.assert_array_equal(p, M.patches(np.pad(short, (0, M.PATCH_SAMPLES - 1000))))
    with pytest.raises(ParameterError):
        M.patches(short, pad=False)
    with pytest.raises(ParameterError):
        M.patches(np.full(50000, np.nan))
    with pytest.raises(ParameterError):
        M.patches(np.zeros((1, 2, 3)))


# ----------------------------------------------------------------- ONNX models vs original


@pytest.mark.parametrize("name", ["MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"])
def test_onnx_matches_original(name, ref, clips, models):
    model = models[name]
    for i, wave in enumerate(clips):
        np.testing.assert_allclose(model.predict_patches(ref[f"patches_{i}"]), ref[f"taggram_{name}_{i}"],
                                   rtol=0, atol=TOL)
        np.testing.assert_allclose(model.taggram(wave)[0], ref[f"taggram_{name}_{i}"], rtol=0, atol=TOL)
        np.testing.assert_allclose(model(wave[None])[0], ref[f"tags_{name}_{i}"], rtol=0, atol=TOL)


def test_model_protocol(models, clips):
    model = models["MSD_musicnn"]
    assert model.sample_rate == 16000 and model.output == "sigmoid" and model.input_samples is None
    assert model.n_classes == 50 and model.class_names[:2] == ["rock", "pop"]
    assert models["MTT_vgg"].class_names[0] == "guitar"
    with open(os.path.join(M.DATA_DIR, "musicnn_tags.json")) as fh:
        assert set(json.load(fh)) == set(M.NAMES)
    batch = np.stack([clips[0], clips[1]])
    out = model(batch)
    assert out.shape == (2, 50) and out.dtype == np.float32
    assert np.all((out > 0) & (out < 1))
    np.testing.assert_allclose(out[1], model(clips[1])[0], atol=1e-6)  # 1-D: a batch of one
    small = M.musicnn("MSD_musicnn", batch_size=2)  # chunked onnxruntime calls
    np.testing.assert_allclose(small(batch), out, atol=1e-6)
    short = model(clips[0][:8000][None])  # 0.5 s: zero-padded to one patch
    assert short.shape == (1, 50) and np.isfinite(short).all()


def test_thread_limits_keep_the_tags(models, clips):
    """``n_threads`` and an in-process evaluation's ``threads`` change the onnxruntime pool, never a tag."""
    from freqrex.evaluation.distributed import LocalExecutor

    batch = np.stack([clips[0], clips[1]])
    ref = models["MSD_musicnn"](batch)
    one = M.musicnn("MSD_musicnn", n_threads=1)
    assert one.session.get_session_options().intra_op_num_threads == 1
    np.testing.assert_array_equal(one(batch), ref)
    default = M.musicnn("MSD_musicnn")
    assert default.session.get_session_options().intra_op_num_threads == 0  # onnxruntime's: one per core
    held = LocalExecutor({"tagger": default}, threads=1).models["tagger"]
    assert held.session.get_session_options().intra_op_num_threads == 1
    np.testing.assert_array_equal(held(batch), ref)
    kept = LocalExecutor({"tagger": M.musicnn("MSD_musicnn")}).models["tagger"]  # no threads: left alone
    assert kept.session.get_session_options().intra_op_num_threads == 0
    with pytest.raises(ParameterError):
        LocalExecutor({"tagger": default}, threads=0)


def test_factory_errors(monkeypatch, tmp_path):
    with pytest.raises(ModelError, match="unknown"):
        M.musicnn("MSD_resnet")
    with pytest.raises(ParameterError):
        M.musicnn(batch_size=0)
    for bad in (0, 1.5, True):
        with pytest.raises(ParameterError, match="n_threads"):
            M.musicnn(n_threads=bad)
    monkeypatch.setattr(M, "DATA_DIR", str(tmp_path))
    with pytest.raises(ModelError, match="missing"):
        M.musicnn("MSD_musicnn")


# ----------------------------------------------------------------- torch port


@pytest.fixture(scope="module")
def torch_port():
    pytest.importorskip("torch")
    folder = M.find_checkpoints()
    if folder is None:
        pytest.skip("musicnn checkpoints not installed (pip install --no-deps musicnn)")
    mt = importlib.import_module("freqrex.models._musicnn_torch")
    return {name: mt.build(name, folder) for name in M.NAMES}


@pytest.mark.parametrize("name", ["MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg"])
def test_torch_port(name, ref, models, torch_port):
    import torch

    rng = np.random.default_rng(2)
    with torch.no_grad():
        for i in range(len(CLIPS)):
            x = ref[f"patches_{i}"]
            np.testing.assert_allclose(torch_port[name](torch.from_numpy(x)).numpy(),
                                       ref[f"taggram_{name}_{i}"], rtol=0, atol=TOL)
        x = rng.gamma(1.5, 0.8, size=(5, 187, 96)).astype(np.float32)
        np.testing.assert_allclose(torch_port[name](torch.from_numpy(x)).numpy(),
                                   models[name].predict_patches(x), rtol=0, atol=1e-5)
