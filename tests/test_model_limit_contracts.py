"""The evaluation scripts around the one-tone limit keep their records whole and their clips apart.

``scripts/tone_limit_eval.py`` and ``scripts/reproduce_flip_records.py``: a record file whose last
line is cut short (a run killed while appending, or one still appending) is read, not a crash; a
resumed run cuts that line off and appends on a clean line; clips are loaded at the model's rate;
two clips of the same name in different folders are two clips; one clip that fails is recorded and
the run goes on; and the limit's records keep the fields the summaries read.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from freqrex.evaluation import load_records

ROOT = Path(__file__).resolve().parents[1]
RATE = 8000  # the toy model's rate; the clips are written at 16 kHz


def load_script(name):
    spec = importlib.util.spec_from_file_location(f"script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BandModel:
    """Class 1 when 1000-1100 Hz holds more than 1 % of the energy; it checks it gets 8 kHz clips."""

    sample_rate = RATE
    class_names = ["quiet", "band"]

    def __init__(self):
        self.calls = 0

    def __call__(self, waves):
        self.calls += 1
        w = np.asarray(waves, dtype=np.float64)
        spec = np.abs(np.fft.rfft(w, axis=1)) ** 2
        f = np.fft.rfftfreq(w.shape[1], 1.0 / RATE)
        share = spec[:, (f >= 1000) & (f <= 1100)].sum(1) / (spec.sum(1) + 1e-12)
        p = 1.0 / (1.0 + np.exp(-(np.log(share + 1e-12) - np.log(0.01))))
        return np.stack([1 - p, p], 1)


def write_clip(path, seed, seconds=0.5, rate=16000):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * (300 + 50 * seed) * t) + 0.01 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), rate, subtype="FLOAT")
    return str(path)


def lines_are_whole(path):
    data = Path(path).read_bytes()
    assert data.endswith(b"\n")
    return [json.loads(line) for line in data.splitlines() if line.strip()]


# ------------------------------------------------------------------ scripts/tone_limit_eval.py


@pytest.fixture
def tone_limit_eval(monkeypatch):
    script = load_script("tone_limit_eval")
    model = BandModel()
    monkeypatch.setattr(script, "load_model", lambda name: model)
    script.the_model = model

    def run(args):  # from the command line, as it is run
        monkeypatch.setattr(sys, "argv", ["tone_limit_eval.py", *args])
        return script.main()

    script.run_cli = run
    return script


def test_tone_limit_eval_keys_on_the_clip_id_loads_at_the_model_rate_and_survives_a_bad_clip(
        tone_limit_eval, tmp_path):
    a = write_clip(tmp_path / "a" / "clip.wav", 1)
    b = write_clip(tmp_path / "b" / "clip.wav", 2)  # the same name in another folder: another clip
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    order = tmp_path / "order.txt"
    order.write_text(f"{a}\n{bad}\n{b}\n")
    out = tmp_path / "limit.jsonl"
    args = ["--clips-from", str(order), "--model", "band", "--out", str(out)]
    assert tone_limit_eval.run_cli(args) == 1  # one clip failed; the others ran
    recs = lines_are_whole(out)
    assert [r["clip"] for r in recs] == ["clip.wav", "clip.wav"]
    assert [r["clip_id"] for r in recs] == [Path(a).resolve().as_posix(), Path(b).resolve().as_posix()]
    assert all(r["sample_rate"] == RATE and r["model"] == "band" for r in recs)
    assert recs[0]["flip_snr_db"] != recs[1]["flip_snr_db"] or recs[0]["queries"] != recs[1]["queries"]
    # the fields of the existing records (docs/results/tone-limit-*.jsonl), which the summaries read
    old = load_records(ROOT / "docs" / "results" / "tone-limit-key.jsonl")[0]
    assert set(old) <= set(recs[0])
    errors = lines_are_whole(str(out) + ".errors.jsonl")
    assert len(errors) == 1 and errors[0]["file"] == str(bad) and errors[0]["status"] == "error"
    # resumed: the two clips are not run again; the bad one is tried again
    calls = tone_limit_eval.the_model.calls
    assert tone_limit_eval.run_cli(args) == 1
    assert tone_limit_eval.the_model.calls == calls
    assert len(load_records(out)) == 2 and len(load_records(str(out) + ".errors.jsonl")) == 2


def test_tone_limit_eval_resumes_after_a_cut_last_line_and_reads_old_records(tone_limit_eval, tmp_path):
    a = write_clip(tmp_path / "a" / "clip.wav", 1)
    order = tmp_path / "order.txt"
    order.write_text(f"{tmp_path / 'gone' / 'old.wav'}\n{a}\n")
    out = tmp_path / "limit.jsonl"
    old = {"clip": "old.wav", "model": "band", "queries": 10, "best_snr_db": 20.0}  # before clip ids
    out.write_text(json.dumps(old) + "\n" + '{"clip": "clip.wav", "model": "ba')  # killed mid-line
    assert tone_limit_eval.run_cli(["--clips-from", str(order), "--model", "band", "--out", str(out)]) == 0
    recs = lines_are_whole(out)
    assert recs[0] == old  # matched by file name: old.wav (which is gone) is not run again
    assert len(recs) == 2 and recs[1]["clip_id"] == Path(a).resolve().as_posix()
    assert not os.path.exists(str(out) + ".errors.jsonl")


# ------------------------------------------------------------------ scripts/reproduce_flip_records.py


def test_reproduce_flip_records_reads_cut_files_loads_at_the_model_rate_and_goes_on(monkeypatch, tmp_path):
    import freqrex.evaluation
    import freqrex.models

    script = load_script("reproduce_flip_records")
    seen = []
    flips = {"causal": {"1": {"success": True, "snr_db": 30.0, "n_changed": 1, "queries": 9}}}

    def evaluate_clip(x, sr, model, options):
        seen.append((sr, x.size))
        return {"fft_flips": flips}

    monkeypatch.setattr(freqrex.models, "load_model", lambda name: BandModel())
    monkeypatch.setattr(freqrex.evaluation, "evaluate_clip", evaluate_clip)
    monkeypatch.setattr(freqrex.evaluation, "EvalOptions", lambda **o: o)
    a = write_clip(tmp_path / "a.wav", 1)
    options = {"ks": [1], "duration": 0.5}
    records = tmp_path / "records.jsonl"
    good = {"clip": "a", "file": a, "model": "band", "status": "ok", "options": options, "fft_flips": flips}
    gone = dict(good, clip="gone", file=str(tmp_path / "gone.wav"))
    records.write_text(json.dumps(good) + "\n" + json.dumps(gone) + "\n" + '{"clip": "c", "fi')  # being written
    out = tmp_path / "reproduce.jsonl"
    out.write_text('{"clip": "a", "di')  # a run killed mid-line
    args = ["--records", str(records), "--model", "band", "--strategies", "causal", "--out", str(out)]
    assert script.main(args) == 1  # gone.wav could not be re-run
    assert seen == [(RATE, RATE // 2)]  # at the model's rate, as the evaluation loaded it
    lines = lines_are_whole(out)
    assert lines[0] == {"clip": "a", "diffs": []}
    assert lines[1]["clip"] == "gone" and "error" in lines[1]
    # resumed: a is done; gone is tried again
    assert script.main(args) == 1 and len(seen) == 1
    assert len(lines_are_whole(out)) == 3


def test_reproduce_flip_records_says_what_is_wrong_with_a_damaged_records_file(monkeypatch, tmp_path, capsys):
    import freqrex.models

    script = load_script("reproduce_flip_records")
    monkeypatch.setattr(freqrex.models, "load_model", lambda name: BandModel())
    records = tmp_path / "records.jsonl"
    records.write_text('{"clip": "a"}\nnot json\n{"clip": "b"}\n')  # damaged in the middle: not ours
    args = ["--records", str(records), "--model", "band", "--out", str(tmp_path / "o.jsonl")]
    assert script.main(args) == 2
    assert "line 2 is not a JSON record" in capsys.readouterr().err
