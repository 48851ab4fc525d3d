"""The command line: the README's main command and one-line errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402


def run(*args, cwd=None):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "freqrex", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_default_explain_runs_offline(tmp_path):
    """`freqrex explain` on the built-in demo clip and model (3 s of it, small budget)."""
    out = tmp_path / "run"
    r = run("explain", "--budget", "30", "--iterations", "2", "--duration", "3", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "top class" in r.stdout and "queries" in r.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["search_queries"] <= 30
    assert summary["target_name"]
    for name in ("original.wav", "explanation.npz"):
        assert (out / name).exists()


def test_explain_json(tmp_path):
    r = run("explain", "--budget", "10", "--iterations", "1", "--duration", "3", "--out", str(tmp_path / "o"), "--json", "--quiet",
            "--threads-per-worker", "1")  # the model's onnxruntime pool held to one thread
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["model"] == "MSD_musicnn" and data["sets"].keys() == {"sufficient", "sufficient_necessary", "complete"}


def test_models_lists_the_builtins():
    r = run("models", "--json")
    assert r.returncode == 0
    names = [m["name"] for m in json.loads(r.stdout)]
    assert names == ["MSD_musicnn", "MTT_musicnn", "MSD_vgg", "MTT_vgg", "silero_vad", "madmom_key"]


def onnx_model(path, kind):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "samples"])
    nodes = [helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=1)]
    inits = [helper.make_tensor("axes", TensorProto.INT64, [1], [1])]
    if kind == "nan":
        inits.append(helper.make_tensor("c", TensorProto.FLOAT, [1, 2], [float("nan"), 1.0]))
        nodes.append(helper.make_node("Mul", ["s", "c"], ["y"]))
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])
    else:  # wrong shape: (batch,) instead of (batch, classes)
        nodes.append(helper.make_node("Squeeze", ["s", "axes"], ["y"]))
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"])
    graph = helper.make_graph(nodes, "m", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, (0.1 * np.sin(np.arange(16000) / 10)).astype(np.float32), 16000)
    return str(path)


@pytest.mark.parametrize(
    "make,code,message",
    [
        (lambda d: str(d / "nope.wav"), 3, "audio error"),
        (lambda d: (d / "garbage.wav").write_bytes(b"not audio at all") and str(d / "garbage.wav"), 3, "audio error"),
    ],
)
def test_bad_audio_file_is_one_line(tmp_path, make, code, message):
    r = run("explain", make(tmp_path), "--budget", "5", "--quiet", "--out", str(tmp_path / "o"))
    assert r.returncode == code
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", ["nan", "shape", "garbage", "missing"])
def test_misbehaving_model_is_one_line(tmp_path, clip, kind):
    path = tmp_path / f"{kind}.onnx"
    if kind == "garbage":
        path.write_bytes(b"\x00 definitely not onnx")
    elif kind in ("nan", "shape"):
        onnx_model(str(path), kind)
    r = run("explain", clip, "--model", str(path), "--budget", "5", "--quiet", "--out", str(tmp_path / "o"))
    assert r.returncode == 4, r.stderr
    assert "model error" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_option_is_usage_error(tmp_path, clip):
    r = run("explain", clip, "--budget", "-1", "--quiet", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "error" in r.stderr and "Traceback" not in r.stderr
    r = run("explain", clip, "--threads-per-worker", "0", "--quiet", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "--threads-per-worker must be >= 1" in r.stderr and "Traceback" not in r.stderr


def test_debug_shows_traceback(tmp_path, clip):
    r = run("explain", clip, "--model", str(tmp_path / "missing.onnx"), "--debug", "--quiet")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_debug_keeps_every_exit_code(tmp_path, clip):
    """--debug re-raised the error, so every failure exited 1 (the documented codes are 2, 3, 4)."""
    (tmp_path / "a-file").write_text("x")
    for argv, code in [(("--budget", "-1"), 2), (("--out", str(tmp_path / "a-file" / "o")), 2),
                       (("--model", str(tmp_path / "missing.onnx")), 4)]:
        plain = run("explain", clip, "--quiet", "--out", str(tmp_path / "o"), *argv)
        debug = run("explain", clip, "--quiet", "--out", str(tmp_path / "o"), *argv, "--debug")
        assert plain.returncode == debug.returncode == code, (argv, plain.stderr, debug.stderr)
        assert "Traceback" in debug.stderr and "Traceback" not in plain.stderr
        assert plain.stderr.strip().splitlines()[-1] == debug.stderr.strip().splitlines()[-1]
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    assert run("explain", str(bad), "--quiet", "--out", str(tmp_path / "o"), "--debug").returncode == 3


def test_flip_with_report(tmp_path):
    out = tmp_path / "flip"
    r = run("flip", "--duration", "3", "--budget", "4", "--explain-budget", "10", "--iterations", "1",
            "--report", "--out", str(out), "--quiet", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["flip_queries"] <= 4
    for name in ("flip.json", "original.wav", "report.html"):
        assert (out / name).exists()
    # perturbed.wav is a result: written for a flip only, never for a failed attempt
    assert (out / "perturbed.wav").exists() == bool(data["success"])
    html = (out / "report.html").read_text()
    assert "<audio" in html and "http://" not in html and "https://" not in html


def test_evaluate_with_report(tmp_path):
    clip = tmp_path / "clips" / "a.wav"
    clip.parent.mkdir()
    t = np.arange(3 * 16000) / 16000
    sf.write(clip, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 16000)
    results = tmp_path / "results.jsonl"
    args = ["evaluate", str(clip.parent), "--model", "MTT_vgg", "--out", str(results), "--budget", "8",
            "--iterations", "1", "--flip-budget", "2", "--ks", "1", "--no-stft", "--report", "--quiet"]
    r = run(*args)
    assert r.returncode == 0, r.stderr
    assert len(results.read_text().splitlines()) == 1
    assert results.with_suffix(".html").exists()
    r = run(*args)  # resumed: nothing new
    assert r.returncode == 0 and len(results.read_text().splitlines()) == 1


@pytest.mark.parametrize("command", ["explain", "flip", "evaluate", "report", "models"])
def test_every_command_has_help(command):
    r = run(command, "--help")
    assert r.returncode == 0 and "--json" in r.stdout
