"""Evaluation on Ray workers: the same records as in-process, faults, interruption and resume."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import ray  # in the test extra (freqrex[ray])

from freqrex.evaluation import EvalOptions, comparable, evaluate_many, load_records, transfer_path  # noqa: E402
from freqrex.io import save_wav  # noqa: E402

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module

SR = 8000
N = 4000

OPTIONS = EvalOptions(strategies=("causal", "random"), ks=(1, 2), equal_total=False, explain_budget=30,
                      explain_iterations=2, extraction_batch=8, flip_budget=6, stft=False)


class ToneModel:
    """Three classes by which of 1000, 1500 and 2000 Hz is loudest."""

    sample_rate = SR
    class_names = ["low", "mid", "high"]

    def __call__(self, waves):
        w = np.asarray(waves, dtype=np.float64)
        t = np.arange(w.shape[1])
        mags = np.stack([np.abs(w @ np.exp(-2j * np.pi * f * t / SR)) for f in (1000, 1500, 2000)], 1)
        z = 4 * np.log(mags + 1e-9)
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(1, keepdims=True)


class DiesOnce(ToneModel):
    """ToneModel whose worker process dies (``os._exit``) at its first call of the run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __call__(self, waves):
        if not os.path.exists(self.marker):
            Path(self.marker).write_text("died once\n")
            os._exit(1)
        return super().__call__(waves)


class Fails(ToneModel):
    """Raises on clips shorter than N samples (a bug in a model, not in freqrex)."""

    def __call__(self, waves):
        if np.asarray(waves).shape[1] < N:
            raise RuntimeError("planted model failure")
        return super().__call__(waves)


def make_clips(directory: Path, n: int = 4) -> list:
    rng = np.random.default_rng(1)
    t = np.arange(N) / SR
    paths = []
    for i in range(n):
        amps = [0.3, 0.2, 0.1]
        amps[i % 3] = 0.45
        x = sum(a * np.sin(2 * np.pi * f * t) for a, f in zip(amps, (1000, 1500, 2000)))
        x = x + 0.2 * np.sin(2 * np.pi * 3000 * t) + 0.01 * rng.standard_normal(N)
        p = directory / f"clip{i}.wav"
        save_wav(p, (0.5 * x).astype(np.float32), SR, subtype="FLOAT")
        paths.append(p)
    return paths


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return make_clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def serial(clips, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "r.jsonl"
    evaluate_many(clips, {"a": ToneModel(), "b": ToneModel()}, out, options=OPTIONS)
    return out


def keyed(path):
    return {(r["clip_id"], r["model"]): comparable(r) for r in load_records(path)}


def keyed_transfers(path):
    return {(r["clip_id"], r["source"], r["target"]): comparable(r) for r in load_records(path)}


def test_records_on_two_workers_equal_the_serial_run(local_ray, clips, serial, tmp_path):
    out = tmp_path / "r.jsonl"
    res = evaluate_many(clips, {"a": ToneModel(), "b": ToneModel()}, out, options=OPTIONS, workers=2)
    records = load_records(out)
    assert len(records) == 8 and len({(r["clip_id"], r["model"]) for r in records}) == 8
    assert keyed(out) == keyed(serial)
    assert keyed_transfers(transfer_path(out)) == keyed_transfers(transfer_path(serial))
    assert len(load_records(transfer_path(out))) == 8  # 4 clips x (a->b, b->a)
    assert {r["worker"].split(" pid")[0] for r in records} <= {"worker 0", "worker 1"}
    assert [r["clip_id"] for r in res["a"]] == [str(Path(c).resolve()) for c in clips]  # file order
    assert ray.is_initialized()  # a Ray the caller started is left running


def test_a_worker_killed_mid_run_and_every_record_written_once(local_ray, clips, serial, tmp_path):
    out = tmp_path / "r.jsonl"
    marker = tmp_path / "died"
    evaluate_many(clips, {"a": DiesOnce(marker), "b": ToneModel()}, out, options=OPTIONS, workers=2,
                  max_retries=1)
    assert marker.exists()  # a worker did die
    records = load_records(out)
    assert sorted((r["clip_id"], r["model"]) for r in records) == sorted(keyed(serial))  # each once
    assert all(r["status"] == "ok" for r in records)
    assert sorted(r["attempts"] for r in records if r["model"] == "a")[-1] == 2  # the retried clip
    assert keyed(out) == keyed(serial)


def test_a_failing_clip_gets_an_error_record_after_its_retries(local_ray, clips, tmp_path):
    out = tmp_path / "r.jsonl"
    short = tmp_path / "short.wav"
    save_wav(short, np.asarray(0.1 * np.sin(np.arange(N // 2)), dtype=np.float32), SR, subtype="FLOAT")
    evaluate_many([*clips[:2], short, *clips[2:]], {"f": Fails()}, out, options=OPTIONS, workers=2, max_retries=2)
    records = {r["clip"]: r for r in load_records(out)}
    assert set(records) == {"clip0", "clip1", "short", "clip2", "clip3"}
    bad = records["short"]
    assert bad["status"] == "error" and "planted model failure" in bad["error"] and bad["attempts"] == 3
    assert all(records[c]["status"] == "ok" and records[c]["attempts"] == 1 for c in ("clip0", "clip1", "clip2",
                                                                                       "clip3"))


def test_interrupted_run_resumes(local_ray, clips, serial, tmp_path):
    out = tmp_path / "r.jsonl"

    def stop(rec, i, total, model):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate_many(clips, {"a": ToneModel(), "b": ToneModel()}, out, options=OPTIONS, workers=2, on_record=stop)
    first = load_records(out)
    assert len(first) == 1
    seen = []
    evaluate_many(clips, {"a": ToneModel(), "b": ToneModel()}, out, options=OPTIONS, workers=2,
                  on_record=lambda rec, i, n, m: seen.append((rec["clip_id"], m)))
    assert (first[0]["clip_id"], first[0]["model"]) not in seen and len(seen) == 7
    assert keyed(out) == keyed(serial)
    assert len(load_records(out)) == 8
    assert keyed_transfers(transfer_path(out)) == keyed_transfers(transfer_path(serial))


def test_cli_evaluate_and_explain_on_workers(local_ray, clips, tmp_path, monkeypatch):
    """The command line with --workers: a model from a module:callable factory built in each worker."""
    from freqrex.cli import main

    module = tmp_path / "planted_models.py"
    module.write_text(
        "import numpy as np\n"
        "from freqrex.models import CallableModel\n"
        "def make():\n"
        "    def f(w):\n"
        "        w = np.asarray(w, dtype=np.float64)\n"
        "        e = np.abs(np.fft.rfft(w, axis=1))\n"
        f"        hz = np.fft.rfftfreq(w.shape[1], 1 / {SR})\n"
        "        return np.stack([e[:, abs(hz - f) < 100].sum(1) for f in (1000, 1500, 2000)], 1)\n"
        f"    return CallableModel(f, sample_rate={SR}, class_names=['low', 'mid', 'high'], output='logits')\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "cli.jsonl"
    args = ["evaluate", str(clips[0].parent), "--model", "planted_models:make", "--trust-model-code", "--out",
            str(out), "--budget", "30", "--iterations", "2", "--flip-budget", "6", "--ks", "1", "--strategies",
            "causal", "--no-stft", "--extraction-batch", "8", "--workers", "2", "--quiet"]
    assert main(args) == 0
    records = load_records(out)
    assert len(records) == 4 and all(r["status"] == "ok" for r in records)
    assert main(args) == 0  # resumed: nothing new
    assert len(load_records(out)) == 4
    explained = tmp_path / "explained"
    assert main(["explain", str(clips[0].parent), "--model", "planted_models:make", "--trust-model-code",
                 "--out", str(explained), "--budget", "30", "--iterations", "2", "--no-quality",
                 "--workers", "2", "--quiet"]) == 0
    folders = sorted(p.name for p in explained.iterdir() if p.is_dir())
    assert folders == ["clip0_wav", "clip1_wav", "clip2_wav", "clip3_wav"]
    import json

    summaries = {name: json.loads((explained / name / "summary.json").read_text()) for name in folders}
    assert [summaries[name]["target_name"] for name in folders] == ["low", "mid", "high", "low"]
    assert all((explained / name / "sufficient.wav").is_file() for name in folders)
    again = ["explain", str(clips[0].parent), "--model", "planted_models:make", "--trust-model-code",
             "--out", str(explained), "--budget", "30", "--iterations", "2", "--no-quality", "--workers", "2",
             "--quiet", "--json"]
    assert main(again) == 0  # all done: nothing new
    assert main([a for a in again if a not in ("--no-quality",)]) == 2  # other options: refused, nothing redone


def test_ctrl_c_stops_the_workers_and_a_rerun_resumes(clips, tmp_path):
    """SIGINT to the whole process group (what a terminal's Ctrl-C does): exit 130, then a rerun finishes."""
    import signal
    import subprocess
    import time

    out = tmp_path / "r.jsonl"
    # once the first record is on disk every call takes 0.5 s, so the rest of the run (dozens of calls
    # a clip) cannot end before the interrupt arrives, however loaded the machine
    (tmp_path / "slow_models.py").write_text(
        "import os\n"
        "import time\n"
        "import numpy as np\n"
        "from freqrex.models import CallableModel\n"
        f"OUT = {str(out)!r}\n"
        "def make():\n"
        "    def f(w):\n"
        "        started = (not os.environ.get('SLOW_MODELS_FAST') and os.path.exists(OUT)\n"
        "                   and open(OUT, 'rb').read().count(b'\\n') >= 1)\n"
        "        time.sleep(0.5 if started else 0.05)\n"
        "        w = np.asarray(w, dtype=np.float64)\n"
        "        e = np.abs(np.fft.rfft(w, axis=1))\n"
        f"        hz = np.fft.rfftfreq(w.shape[1], 1 / {SR})\n"
        "        return np.stack([e[:, abs(hz - f) < 100].sum(1) for f in (1000, 1500, 2000)], 1)\n"
        f"    return CallableModel(f, sample_rate={SR}, class_names=['low', 'mid', 'high'], output='logits')\n"
    )
    cmd = [sys.executable, "-m", "freqrex", "evaluate", *map(str, clips), "--model", "slow_models:make",
           "--trust-model-code", "--out", str(out), "--budget", "30", "--iterations", "2", "--flip-budget", "6",
           "--ks", "1", "--strategies", "causal", "--no-stft", "--extraction-batch", "8", "--workers", "1", "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    # a terminal's Ctrl-C reaches a process that handles SIGINT; a test run started in the background by a
    # non-interactive shell inherits SIGINT ignored, which the child would keep, so restore the default
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, start_new_session=True, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 240
        while time.time() < deadline and proc.poll() is None:
            if out.exists() and out.read_bytes().count(b"\n") >= 1:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be interrupted: " + proc.stderr.read()
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 130
        deadline = time.time() + 60
        while time.time() < deadline:  # Ray's processes (workers, raylet, GCS) end too
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("processes of the interrupted run are still alive")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    first = load_records(out)
    assert 1 <= len(first) < 4
    done = subprocess.run(cmd, cwd=tmp_path, env={**env, "SLOW_MODELS_FAST": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    records = load_records(out)
    assert sorted(r["clip"] for r in records) == ["clip0", "clip1", "clip2", "clip3"]  # each once
    assert records[: len(first)] == first


def test_a_model_the_workers_cannot_build_is_a_model_error(local_ray, clips, tmp_path):
    from freqrex.errors import ModelError

    with pytest.raises(ModelError, match="no_such_model"):
        evaluate_many(clips, {"bad": "no_such_model"}, tmp_path / "r.jsonl", options=OPTIONS, workers=2)
    assert load_records(tmp_path / "r.jsonl") == []
    # the lock was released: the next run on the output goes ahead
    evaluate_many(clips[:1], {"a": ToneModel()}, tmp_path / "r.jsonl", options=OPTIONS, workers=2)
    assert len(load_records(tmp_path / "r.jsonl")) == 1
