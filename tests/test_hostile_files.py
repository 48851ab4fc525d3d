"""Hostile files and faults: named pipes, lying headers, truncation, interrupted or
tampered saves, malformed folders, npz bombs, a closed stdout, a full disk."""

import errno
import io
import json
import os
import struct
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest
import soundfile as sf

import freqrex
from freqrex import _atomic
from freqrex.cli import main
from freqrex.errors import AudioFileError, FreqrexError, FreqrexWarning, ParameterError, ResultFileError
from freqrex.io import load_audio
from freqrex.manipulation.result import FlipResult
from synthetic import PASS_FAIL, SR, BandClassifier, make_clip


@pytest.fixture
def wav(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, make_clip(), SR, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def explanation():
    return freqrex.explain(make_clip(), SR, BandClassifier(), **{**PASS_FAIL, "budget": 40, "iterations": 2})


# ------------------------------------------------------------- load_audio
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this platform")
def test_named_pipe_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    with pytest.raises(AudioFileError, match="not a regular file"):
        load_audio(fifo)


def test_declared_rate_is_checked_before_decoding(wav, tmp_path):
    data = bytearray(wav.read_bytes())
    data[24:28] = struct.pack("<I", 2_147_483_647)  # the fmt chunk's sample rate
    bad = tmp_path / "rate.wav"
    bad.write_bytes(bytes(data))
    with pytest.raises(AudioFileError, match="sample rate of 2147483647"):
        load_audio(bad)


def test_declared_length_is_checked_before_decoding(tmp_path, monkeypatch):
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(5000, np.float32) + 0.1, SR)
    monkeypatch.setattr("freqrex.io.MAX_DECODED_SAMPLES", 4000)
    with pytest.raises(AudioFileError, match="duration="):
        load_audio(path)
    audio, _ = load_audio(path, duration=0.25)  # a part of it is fine
    assert audio.shape == (2000,)


def test_truncated_wav_is_reported(wav, tmp_path):
    data = wav.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.warns(FreqrexWarning, match="truncated"):
        audio, _ = load_audio(cut)
    assert 0 < audio.size < 8000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_audio(wav)  # an intact file: no warning


@pytest.mark.parametrize("subtype,full_scale", [("PCM_16", 2**15), ("PCM_32", 2**31), ("PCM_U8", 2**7)])
def test_integer_pcm_is_scaled(tmp_path, subtype, full_scale):
    x = np.array([0.5, -0.5, 0.25, -1.0] * 100, np.float32)
    path = tmp_path / f"{subtype}.wav"
    sf.write(path, x, SR, subtype=subtype)
    audio, _ = load_audio(path)
    assert np.abs(audio).max() <= 1.0
    np.testing.assert_allclose(audio, x, atol=2.0 / full_scale)


def test_absurd_float_samples_in_a_file(tmp_path):
    path = tmp_path / "loud.wav"
    x = make_clip()
    x[10] = 3e38
    sf.write(path, x, SR, subtype="FLOAT")
    with pytest.raises(AudioFileError, match="expected in"):
        load_audio(path)


@pytest.mark.parametrize("duration", ["-1", "nan", "0"])
def test_negative_or_nan_duration_on_the_demo_clip(duration, capsys):
    code = main(["explain", "--duration", duration, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--duration" in err


# ------------------------------------------------------ saving atomically
def test_save_writes_a_manifest_that_load_checks(explanation, tmp_path):
    out = explanation.save(tmp_path / "run")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True and "explanation.npz" in manifest["files"]
    back = freqrex.Explanation.load(out)
    assert np.array_equal(back.responsibility, explanation.responsibility)


def test_interrupted_save_is_refused(explanation, tmp_path, monkeypatch):
    out = explanation.save(tmp_path / "run")  # a complete earlier run

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("freqrex.io.save_wav", full_disk)  # the save dies after summary/npz
    with pytest.raises(OSError):
        explanation.save(out)
    monkeypatch.undo()
    with pytest.raises(ResultFileError, match="incomplete"):
        freqrex.Explanation.load(out)
    explanation.save(out)  # saving again repairs it
    freqrex.Explanation.load(out)


def test_a_file_changed_after_the_save_is_refused(explanation, tmp_path):
    out = explanation.save(tmp_path / "run")
    sf.write(out / "sufficient.wav", make_clip(seed=3), SR)  # a mix of two runs
    with pytest.raises(ResultFileError, match="changed since"):
        freqrex.Explanation.load(out)


def test_stale_files_of_an_earlier_save_are_removed(explanation, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "complete.wav").write_bytes(b"stale")
    explanation.save(out)
    if explanation.complete is None:
        assert not (out / "complete.wav").exists()
    freqrex.Explanation.load(out)


def corruptions():
    def npz_bomb(d):
        # An 8 MB-class file whose header declares 2**40 float64s.
        buf = io.BytesIO()
        header = {"descr": "<f8", "fortran_order": False, "shape": (2**40,)}
        np.lib.format.write_array_header_1_0(buf, header)
        with zipfile.ZipFile(d / "explanation.npz", "w") as z:
            z.writestr("responsibility.npy", buf.getvalue() + b"\0" * 64)
            z.writestr("frequencies.npy", buf.getvalue())

    return {
        "summary-not-json": lambda d: (d / "summary.json").write_text("{"),
        "summary-a-list": lambda d: (d / "summary.json").write_text("[1, 2]"),
        "summary-deep": lambda d: (d / "summary.json").write_text("[" * 100_000 + "]" * 100_000),
        "summary-missing-keys": lambda d: (d / "summary.json").write_text("{}"),
        "npz-not-zip": lambda d: (d / "explanation.npz").write_bytes(b"PK\x03\x04 nope"),
        "npz-empty": lambda d: np.savez(d / "explanation.npz"),
        "npz-wrong-shapes": lambda d: np.savez(d / "explanation.npz", responsibility=np.zeros(3), frequencies=np.zeros(2),
                                               sufficient=np.zeros(7, bool), ranking=np.zeros(0)),
        "npz-objects": lambda d: np.savez(d / "explanation.npz", responsibility=np.array([{}], dtype=object)),
        "npz-bomb": npz_bomb,
        "wav-garbage": lambda d: (d / "original.wav").write_bytes(b"RIFF\x00\x00"),
        "manifest-garbage": lambda d: (d / "manifest.json").write_text('{"format": 3}'),
        "manifest-escape": lambda d: (d / "manifest.json").write_text(json.dumps(
            {"format": "freqrex-save/1", "kind": "explanation", "complete": True,
             "files": {"../../etc/passwd": {"bytes": 1, "sha256": "0"}}})),
        "not-a-folder": lambda d: None,
    }


@pytest.mark.parametrize("name", sorted(corruptions()))
@pytest.mark.parametrize("verified", [True, False], ids=["manifest", "legacy"])
def test_malformed_folders_raise_our_errors(explanation, tmp_path, name, verified):
    out = explanation.save(tmp_path / "run")
    if not verified:
        (out / "manifest.json").unlink()  # a folder saved before manifests: nothing to verify against
    corruptions()[name](out)
    target = tmp_path / "a-file" if name == "not-a-folder" else out
    if name == "not-a-folder":
        target.write_text("x")
    try:
        freqrex.Explanation.load(target)
    except FreqrexError:
        pass  # ours: a ParameterError or a ResultFileError


def test_npz_headers_are_checked_before_loading(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, a=np.zeros(10), b=np.ones((2, 3), np.float32))
    assert _atomic.check_npz(path) == {"a": ((10,), "<f8"), "b": ((2, 3), "<f4")}
    with pytest.raises(ValueError, match="bytes in memory"):
        _atomic.check_npz(path, max_bytes=100)


def test_flip_result_save_and_malformed_load(tmp_path):
    r = freqrex.flip(make_clip(), SR, BandClassifier(), budget=8, explain_budget=24, explain_iterations=2,
                     rule="minimal", max_queries=None)
    out = r.save(tmp_path / "flip")
    assert json.loads((out / "flip-manifest.json").read_text())["kind"] == "flip"
    back = FlipResult.load(out)
    assert back.success == r.success
    (out / "flip.json").write_text('{"success": true}')
    with pytest.raises(ResultFileError):
        FlipResult.load(out)
    (out / "flip-manifest.json").unlink()  # legacy folder with a malformed flip.json
    with pytest.raises(FreqrexError):
        FlipResult.load(out)
    r.save(out)
    with pytest.raises(ResultFileError, match="not a 'explanation'"):
        freqrex.Explanation.load(out)  # a flip folder is not an explanation


# -------------------------------------------------------------------- CLI
def energy_onnx(path):
    """A tiny ONNX classifier (2 logits from the clip's energy) for fast CLI runs."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "samples"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])
    nodes = [helper.make_node("Mul", ["x", "x"], ["x2"]),
             helper.make_node("ReduceSum", ["x2", "axes"], ["e"], keepdims=1),
             helper.make_node("Mul", ["e", "w"], ["ew"]),
             helper.make_node("Add", ["ew", "b"], ["y"])]
    inits = [helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
             helper.make_tensor("w", TensorProto.FLOAT, [1, 2], [0.005, -0.005]),
             helper.make_tensor("b", TensorProto.FLOAT, [1, 2], [-1.0, 1.0])]
    graph = helper.make_graph(nodes, "energy", [x], [y], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def fast_cli(tmp_path, wav):
    model = energy_onnx(tmp_path / "energy.onnx")
    return ["explain", str(wav), "--model", str(model), "--output", "logits", "--sample-rate", str(SR),
            "--budget", "4", "--max-queries", "20", "--no-quality", "--quiet"]


def test_out_naming_an_existing_file(tmp_path, wav, capsys):
    target = tmp_path / "taken"
    target.write_text("mine")
    code = main(fast_cli(tmp_path, wav) + ["--out", str(target)])
    err = capsys.readouterr().err
    assert code == 2 and "existing file" in err and err.count("\n") == 1
    assert target.read_text() == "mine"


def test_full_disk_is_a_file_error(tmp_path, wav, capsys, monkeypatch):
    argv = fast_cli(tmp_path, wav) + ["--out", str(tmp_path / "o")]

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_atomic.tempfile, "mkstemp", full)
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 3 and "No space left" in err and err.count("\n") == 1


def test_a_cli_flip_folder_passes_its_own_check_beside_an_explanation(tmp_path, wav):
    """The CLI wrote flip.json and original.wav after the manifest (a folder FlipResult.load refused), and a
    flip into an explanation's folder (the layout `freqrex report` reads) replaced the explanation's manifest."""
    out = tmp_path / "run"
    explain_argv = fast_cli(tmp_path, wav) + ["--out", str(out)]
    assert main(explain_argv) == 0
    flip_argv = ["flip", *explain_argv[1:explain_argv.index("--budget")], "--budget", "6", "--quiet", "--out", str(out)]
    assert main(flip_argv) == 0
    back = FlipResult.load(out)
    saved = json.loads((out / "flip.json").read_text())
    assert saved["model"] and saved["out"] == str(out) and back.success == saved["success"]
    assert freqrex.Explanation.load(out).target in (0, 1)  # its manifest intact
    assert (out / "original.wav").is_file()


def test_closed_stdout_is_not_an_internal_error(tmp_path):
    # The reader goes away before freqrex writes (`freqrex models --json | head -c0`).
    p = subprocess.Popen([sys.executable, "-c", "import sys; from freqrex.cli import main; sys.exit(main(['models', '--json']))"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    code = p.wait(timeout=120)
    assert code == 141, err
    assert "internal error" not in err and "Traceback" not in err


def test_a_flip_of_another_clip_never_breaks_an_explanation_in_its_folder(tmp_path, wav, capsys):
    """`freqrex flip` into an explanation's folder rewrote original.wav with its own clip (another duration,
    another file), and --report replaced the explanation's report.html: Explanation.load then refused the
    folder ("original.wav changed since it was saved")."""
    pytest.importorskip("jinja2")
    out = tmp_path / "run"
    explain_argv = fast_cli(tmp_path, wav) + ["--out", str(out)]
    assert main(explain_argv) == 0
    (out / "report.html").write_text("the explanation's report")  # as `freqrex report` writes it
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    base = ["flip", *explain_argv[1:explain_argv.index("--budget")], "--budget", "6", "--quiet", "--out", str(out)]
    # the same file cut shorter: another clip; refused before any query, nothing written
    capsys.readouterr()
    assert main(base + ["--duration", "0.5"]) == 2
    assert "another clip" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    # the same clip: the flip goes beside it, its report is flip-report.html, the explanation stays whole
    assert main(base + ["--report"]) == 0
    assert (out / "flip-report.html").is_file() and "flip-report.html" in capsys.readouterr().out
    for name in ("original.wav", "manifest.json", "explanation.npz", "report.html"):
        assert (out / name).read_bytes() == before[name]
    assert freqrex.Explanation.load(out).target in (0, 1) and FlipResult.load(out).budget == 6
    # the Python API keeps the same promise
    r = FlipResult.load(out)
    with pytest.raises(ParameterError, match="another clip"):
        r.save(out, original=np.zeros(SR // 2, np.float32) + 0.1)
    freqrex.Explanation.load(out)


def test_a_clip_louder_than_full_scale_is_saved_unclipped(tmp_path):
    """Float audio may exceed 1 (up to 1e6): original.wav and the sets were written as 16-bit PCM, clipped, so
    the files contradicted the summary (a set's margin, a flip's SNR measured on the written files)."""
    x = 3.0 * make_clip()
    e = freqrex.explain(x, SR, BandClassifier(), budget=24, iterations=2, rule="minimal")
    out = e.save(tmp_path / "loud")
    back, rate = sf.read(out / "original.wav", dtype="float32")
    assert rate == SR and sf.info(str(out / "original.wav")).subtype == "FLOAT"
    np.testing.assert_array_equal(back, x.astype(np.float32))
    again = freqrex.Explanation.load(out)
    for name in ("sufficient", "complete"):
        if e.get_set(name) is not None:
            np.testing.assert_allclose(again.audio(name), e.audio(name), atol=1e-6)
    r = freqrex.flip(x, SR, BandClassifier(), budget=8, explain_budget=24, explain_iterations=2, rule="minimal",
                     max_queries=None)
    f = r.save(tmp_path / "flip", original=x)
    orig, _ = sf.read(f / "original.wav", dtype="float32")
    np.testing.assert_array_equal(orig, x.astype(np.float32))
    if r.success:
        pert, _ = sf.read(f / "perturbed.wav", dtype="float32")
        d = pert.astype(np.float64) - orig
        assert 10 * np.log10(np.sum(orig.astype(np.float64) ** 2) / np.sum(d ** 2)) == pytest.approx(r.snr_db, abs=0.01)
    # a clip within full scale is still 16-bit PCM, for listening
    within = make_clip() / np.float32(2 * np.max(np.abs(make_clip())))
    quiet = freqrex.explain(within, SR, BandClassifier(), budget=24, iterations=2, rule="minimal")
    assert sf.info(str(quiet.save(tmp_path / "q") / "original.wav")).subtype == "PCM_16"


@pytest.mark.parametrize("where", ["a-file", "a-file/sub"])
def test_explain_refuses_an_impossible_out_before_any_query(tmp_path, wav, capsys, monkeypatch, where):
    """`freqrex explain FILE --out X` ran the whole explanation (minutes on a real model) and only then
    found that X was a file, or under one; flip and explain DIR check first."""
    (tmp_path / "a-file").write_text("mine")

    def never(*args, **kwargs):
        raise AssertionError("the explanation ran")

    monkeypatch.setattr(freqrex, "explain", never)
    code = main(fast_cli(tmp_path, wav) + ["--out", str(tmp_path / where)])
    err = capsys.readouterr().err
    assert code == 2 and "nothing was run" in err and (tmp_path / "a-file").read_text() == "mine"


def test_max_queries_is_never_exceeded_with_the_quality_curves(tmp_path, wav, capsys):
    """`--max-queries 10` ran 15 queries (a floor of 1 for the search, then the curves' 14) although
    the README says the total is never exceeded."""
    argv = [a for a in fast_cli(tmp_path, wav) if a != "--no-quality"]
    argv[argv.index("--max-queries") + 1] = "10"
    capsys.readouterr()
    assert main(argv + ["--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "--max-queries 10" in err and "--no-quality" in err and not (tmp_path / "o").exists()
    argv[argv.index("--max-queries") + 1] = "16"
    assert main(argv + ["--out", str(tmp_path / "o"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    e = freqrex.Explanation.load(tmp_path / "o")
    assert e.queries + e.metadata["quality"]["queries"] <= 16 and summary["queries"] == e.queries


def test_explain_of_another_class_never_calls_it_the_top_class(tmp_path, wav, capsys):
    """`explain --target X` for a class the model does not decide printed "top class 'X'", and the report
    called it the model's decision."""
    pytest.importorskip("jinja2")
    argv = fast_cli(tmp_path, wav) + ["--out", str(tmp_path / "o"), "--report"]
    capsys.readouterr()
    assert main(argv) == 0
    decided = json.loads((tmp_path / "o" / "summary.json").read_text())["target"]
    assert "top class '" in capsys.readouterr().out
    other = 1 - decided
    assert main(argv + ["--target", str(other)]) == 0
    out = capsys.readouterr().out
    assert f"explaining '{other}'" in out and f"not the model's decision '{decided}'" in out and "top class" not in out
    e = freqrex.Explanation.load(tmp_path / "o")
    assert e.target == other and e.decision == decided
    page = (tmp_path / "o" / "report.html").read_text()
    assert "explained class" in page and f"not its decision, class {decided}" in page


def test_the_masked_stft_flip_is_not_announced_as_k_cells(tmp_path, wav, capsys):
    model = energy_onnx(tmp_path / "energy.onnx")
    capsys.readouterr()
    code = main(["flip", str(wav), "--model", str(model), "--output", "logits", "--sample-rate", str(SR),
                 "--space", "stft", "--budget", "6", "--quiet", "--out", str(tmp_path / "f")])
    out = capsys.readouterr().out
    assert code == 0 and "k <= " not in out and "as many cells as it needs" in out


def test_a_loud_clips_flip_goes_beside_its_own_explanation(tmp_path):
    """A float WAV held libsndfile's PEAK chunk with the time of writing: the same loud clip written a
    second later had other bytes, so its flip was refused beside its own explanation ("another clip")."""
    import time

    x = 3.0 * make_clip()
    e = freqrex.explain(x, SR, BandClassifier(), budget=24, iterations=2, rule="minimal")
    out = e.save(tmp_path / "run")
    held = (out / "original.wav").read_bytes()
    time.sleep(1.1)
    assert freqrex.io.wav_bytes(x, SR, subtype="auto") == held  # the same audio, the same bytes
    r = freqrex.flip(x, SR, BandClassifier(), budget=8, explain_budget=24, explain_iterations=2, rule="minimal",
                     max_queries=None)
    r.save(out, original=x)
    assert (out / "original.wav").read_bytes() == held
    freqrex.Explanation.load(out)
    FlipResult.load(out)
    e.save(out)  # the explanation saved again: the flip's manifest still holds
    FlipResult.load(out)


def test_an_older_flip_folder_is_no_explanation_and_a_broken_explanation_is_kept(tmp_path):
    r = freqrex.flip(make_clip(), SR, BandClassifier(), budget=8, explain_budget=24, explain_iterations=2,
                     rule="minimal", max_queries=None)
    old = r.save(tmp_path / "old", original=make_clip())
    (old / "flip-manifest.json").rename(old / "manifest.json")  # how flips were saved before per-kind manifests
    other = 0.5 * make_clip(seed=3)
    r.save(old, original=other)  # another clip's flip: nothing of an explanation to keep
    back, _ = sf.read(old / "original.wav", dtype="float32")
    np.testing.assert_array_equal(back, freqrex.io.load_audio(old / "original.wav")[0])
    e = freqrex.explain(make_clip(), SR, BandClassifier(), budget=24, iterations=2, rule="minimal")
    d = e.save(tmp_path / "e")
    (d / "original.wav").unlink()
    with pytest.raises(ParameterError, match="cannot be read"):
        r.save(d, original=make_clip())
    assert not (d / "original.wav").exists() and not (d / "flip.json").exists()
