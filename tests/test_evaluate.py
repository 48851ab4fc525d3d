"""The evaluation runner: records, resume after a crash or a kill, the summary table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from freqrex.errors import ParameterError
from freqrex.evaluate import (
    PAPER,
    EvalOptions,
    evaluate,
    find_audio,
    load_records,
    summarize,
    summary_markdown,
    write_summary,
)
from freqrex.io import save_wav

SR = 8000
N = 8000

MODEL_SOURCE = textwrap.dedent(
    '''
    import time
    import numpy as np

    class ToneModel:
        """Three classes by which of three bins (1000, 1500, 2000 Hz) is loudest."""

        sample_rate = 8000
        class_names = ["low", "mid", "high"]

        def __init__(self, delay=0.0):
            self.delay = delay
            self.evaluated = 0

        def __call__(self, waves):
            time.sleep(self.delay)
            self.evaluated += len(waves)
            w = np.asarray(waves, dtype=np.float64)
            t = np.arange(w.shape[1])
            mags = np.stack([np.abs(w @ np.exp(-2j * np.pi * b * t / w.shape[1])) for b in (1000, 1500, 2000)], 1)
            z = 4 * np.log(mags + 1e-9)
            z -= z.max(1, keepdims=True)
            p = np.exp(z)
            return p / p.sum(1, keepdims=True)
    '''
)
namespace: dict = {}
exec(MODEL_SOURCE, namespace)
ToneModel = namespace["ToneModel"]

OPTIONS = EvalOptions(
    strategies=("causal", "random", "magnitude"),
    equal_total=False,
    explain_budget=40,
    explain_iterations=2,
    extraction_batch=8,
    flip_budget=8,
    stft_explain_budget=40,
    stft_explain_iterations=2,
    stft_k=3,
    stft_flip_budget=8,
    n_fft=512,
    hop_length=128,
)


def make_clips(directory: Path, n: int = 3) -> list:
    rng = np.random.default_rng(0)
    t = np.arange(N) / SR
    paths = []
    for i in range(n):
        amps = [0.3, 0.2, 0.1]
        amps[i % 3] = 0.4
        x = sum(a * np.sin(2 * np.pi * f * t) for a, f in zip(amps, (1000, 1500, 2000)))
        x = x + 0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(N)
        p = directory / f"clip{i}.wav"
        save_wav(p, (0.5 * x).astype(np.float32), SR, subtype="FLOAT")
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return make_clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def finished(clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "results.jsonl"
    records = evaluate(clips, ToneModel(), out, options=OPTIONS, model_name="tone")
    return out, records


def test_end_to_end_records(finished, clips):
    out, records = finished
    assert [r["clip"] for r in records] == ["clip0", "clip1", "clip2"]
    on_disk = load_records(out)
    assert len(on_disk) == 3
    for rec in on_disk:
        assert rec["status"] == "ok" and rec["model"] == "tone"
        assert rec["original"]["name"] in ToneModel.class_names
        sets = rec["fft_explanation"]["sets"]
        assert set(sets) == {"sufficient", "sufficient_necessary", "complete"}
        assert rec["fft_explanation"]["n_bins"] == N // 2 + 1
        for strategy in ("causal", "random", "magnitude"):
            ks = rec["fft_flips"][strategy]
            assert sorted(ks, key=int) == ["1", "2", "3", "4", "5"]
            for v in ks.values():
                assert v["flip_queries"] <= OPTIONS.flip_budget
                assert isinstance(v["success"], bool)
                if v["success"]:
                    assert v["snr_db"] is not None and 1 <= v["n_changed"] <= 5
            st = rec["stft_flips"][strategy]
            assert st["inaudible"] in (True, False) and st["flip_queries"] <= OPTIONS.stft_flip_budget
            assert st["margin_db"] is not None
        assert rec["seconds"] > 0
    # the causal flip of the loudest tone's bin works on these clips
    assert all(r["fft_flips"]["causal"]["1"]["success"] for r in on_disk)


def test_resume_skips_finished_clips(finished, clips):
    out, _ = finished
    model = ToneModel()
    again = evaluate(clips, model, out, options=OPTIONS, model_name="tone")
    assert model.evaluated == 0
    assert len(again) == 3 and len(load_records(out)) == 3
    # another protocol is evaluated afresh, beside the old records
    other = EvalOptions(**{**OPTIONS.to_dict(), "flip_budget": 4, "stft": False})
    evaluate(clips[:1], model, out, options=other, model_name="tone")
    assert model.evaluated > 0
    assert len(load_records(out)) == 4


class Crash(Exception):
    pass


def test_resume_after_a_crash_loses_nothing(clips, tmp_path):
    out = tmp_path / "r.jsonl"

    def boom(rec, i, total):
        raise Crash

    with pytest.raises(Crash):
        evaluate(clips, ToneModel(), out, options=OPTIONS, model_name="tone", on_record=boom)
    assert [r["clip"] for r in load_records(out)] == ["clip0"]
    seen = []
    evaluate(clips, ToneModel(), out, options=OPTIONS, model_name="tone",
             on_start=lambda p, i, n: seen.append(p.stem))
    assert seen == ["clip1", "clip2"]
    recs = load_records(out)
    assert sorted(r["clip"] for r in recs) == ["clip0", "clip1", "clip2"]


def test_truncated_last_line_is_tolerated_and_repaired(finished, tmp_path, clips):
    out = tmp_path / "r.jsonl"
    good = Path(finished[0]).read_bytes().split(b"\n")
    out.write_bytes(good[0] + b"\n" + good[1][: len(good[1]) // 2])  # killed while writing record 2
    recs = load_records(out)
    assert [r["clip"] for r in recs] == ["clip0"]
    seen = []
    evaluate(clips, ToneModel(), out, options=OPTIONS, model_name="tone",
             on_start=lambda p, i, n: seen.append(p.stem))
    assert seen == ["clip1", "clip2"]
    data = out.read_bytes()
    assert data.endswith(b"\n")
    recs = [json.loads(line) for line in data.splitlines()]  # every line is whole again
    assert sorted(r["clip"] for r in recs) == ["clip0", "clip1", "clip2"]


def test_a_damaged_line_in_the_middle_is_an_error(tmp_path):
    out = tmp_path / "r.jsonl"
    out.write_text('{"clip": "a"}\nnot json\n{"clip": "b"}\n')
    with pytest.raises(ParameterError, match="line 2"):
        load_records(out)


def test_resume_after_a_killed_process(clips, tmp_path):
    out = tmp_path / "killed.jsonl"
    script = tmp_path / "run.py"
    script.write_text(
        MODEL_SOURCE
        + textwrap.dedent(
            f"""
            import sys
            from freqrex.evaluate import EvalOptions, evaluate
            opts = EvalOptions(**{OPTIONS.to_dict()!r})
            evaluate({[str(c) for c in clips]!r}, ToneModel(delay=float(sys.argv[1])), {str(out)!r},
                     options=opts, model_name="tone")
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, str(script), "0.05"], env=env)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            if out.exists() and out.read_bytes().count(b"\n") >= 1:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run finished before it could be killed; slow the model down"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    first = load_records(out)
    assert 1 <= len(first) < 3
    subprocess.run([sys.executable, str(script), "0"], env=env, check=True, timeout=300)
    recs = load_records(out)
    clips_seen = [r["clip"] for r in recs]
    assert sorted(clips_seen) == ["clip0", "clip1", "clip2"]  # all present, no duplicates
    assert recs[: len(first)] == first  # finished records kept as they were


def test_summary_table_has_the_paper_beside_ours(finished):
    out, records = finished
    s = summarize(records)
    m = s["models"]["tone"]
    assert m["clips"] == 3
    assert set(m["strategies"]) == {"causal", "random", "magnitude"}
    assert m["strategies"]["causal"]["k"]["1"] == 1.0
    for row in m["strategies"].values():
        for k in "12345":
            assert 0.0 <= row["k"][k] <= 1.0
        assert row["stft"] is not None
    md = summary_markdown(s)
    assert "58%" in md and "78%" in md and "62%" in md
    assert "| tone | 3 | freqrex (causal ranking) | 100%" in md
    assert "random bins" in md and "largest magnitude" in md
    assert s["paper"] == PAPER
    # written atomically, both formats
    md_path = out.parent / "summary.md"
    summary = write_summary(records, md_path, out.parent / "summary.json")
    assert md_path.read_text() == summary_markdown(summary)
    assert json.loads((out.parent / "summary.json").read_text())["models"]["tone"]["clips"] == 3


def test_find_audio_and_bad_options(clips, tmp_path):
    found = find_audio([clips[0].parent])
    assert [p.name for p in found] == ["clip0.wav", "clip1.wav", "clip2.wav"]
    assert find_audio([clips[1], clips[1]]) == [clips[1]]
    from freqrex.errors import AudioFileError

    with pytest.raises(AudioFileError):
        find_audio([tmp_path / "missing"])
    with pytest.raises(ParameterError):
        EvalOptions(ks=(0,))
    with pytest.raises(ParameterError):
        EvalOptions(strategies=("oracle",))
    with pytest.raises(ParameterError):
        EvalOptions(flip_budget=0)
    with pytest.raises(ParameterError):
        evaluate(clips, ToneModel(), tmp_path / "x.jsonl", options=OPTIONS, limit=0)


def test_cli_evaluate_writes_summary(clips, tmp_path, monkeypatch, capsys):
    """The command line, with a model given as an ONNX-free callable through load_model's registry."""
    from freqrex.cli import main
    import freqrex.models as models

    real = models.load_model
    monkeypatch.setattr(models, "load_model", lambda spec, **kw: ToneModel() if spec == "tone" else real(spec, **kw))
    out = tmp_path / "cli.jsonl"
    args = [str(clips[0].parent), "--model", "tone", "--out", str(out), "--summary", str(tmp_path / "s.md"),
            "--budget", "40", "--iterations", "2", "--flip-budget", "8", "--stft-budget", "40", "--stft-k", "3",
            "--stft-flip-budget", "8", "--extraction-batch", "8", "--limit", "2", "--quiet"]
    assert main(["evaluate", *args]) == 0
    assert len(load_records(out)) == 2
    text = (tmp_path / "s.md").read_text()
    assert "58%" in text and "| tone | 2 |" in text
    assert (tmp_path / "s.json").exists()
    assert main(["evaluate", *args[:-3], "--limit", "3", "--quiet"]) == 0  # resumes: one more clip
    assert len(load_records(out)) == 3
    assert "freqrex (causal ranking)" in capsys.readouterr().out
    (tmp_path / "s.md").unlink()
    assert main(["evaluate", *args[:-3], "--summarize-only", "--quiet"]) == 0  # nothing evaluated
    assert len(load_records(out)) == 3
    assert "| tone | 3 |" in (tmp_path / "s.md").read_text()


def test_models_are_interleaved_clip_by_clip(clips, tmp_path):
    from freqrex.evaluate import evaluate_many

    order = []
    models = {"a": ToneModel(), "b": ToneModel()}
    opts = EvalOptions(**{**OPTIONS.to_dict(), "stft": False, "ks": (1,)})
    res = evaluate_many(clips[:2], models, tmp_path / "m.jsonl", options=opts,
                        on_start=lambda p, i, n, m: order.append((p.stem, m)))
    assert order == [("clip0", "a"), ("clip0", "b"), ("clip1", "a"), ("clip1", "b")]
    assert [r["clip"] for r in res["a"]] == ["clip0", "clip1"]
    assert {r["model"] for r in load_records(tmp_path / "m.jsonl")} == {"a", "b"}
