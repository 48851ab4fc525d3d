"""Typed evaluation records (freqrex.evaluation.results): round trip, old versions, newer refused, repr, summary."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from freqrex.errors import ResultFileError
from freqrex.evaluation import (
    RECORD_VERSION,
    ClipRecord,
    FlipSummary,
    append_record,
    evaluate,
    load_records,
    read_results,
    summarize,
    summary_markdown,
    write_summary,
)
from freqrex.evaluation.records import _clean
from test_evaluate import OPTIONS, ToneModel, make_clips

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"
CURRENT = RESULTS / "flips-madmom-key.jsonl"  # record version 3 (the layout of 4)
OLD = [RESULTS / "musicnn-eval.jsonl", *sorted((RESULTS / "round2").glob("flips-*.jsonl"))]  # versions 1 and 2


def lines_of(path: Path) -> list:
    """The complete lines of a records file (a line being written at the end is left out)."""
    data = path.read_text()
    lines = data.split("\n")
    if not data.endswith("\n"):
        lines = lines[:-1]
    return [line for line in lines if line.strip()]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Records made here: two clips of the tone model, and one clip that cannot be read (an error record)."""
    d = tmp_path_factory.mktemp("results")
    clips = make_clips(d, n=2)
    bad = d / "broken.wav"
    bad.write_bytes(b"RIFF not audio")
    out = d / "results.jsonl"
    evaluate([*clips, bad], ToneModel(), out, options=OPTIONS, model_name="tone")
    return out


def snapshot(path: Path, tmp_path: Path) -> Path:
    """A copy of a records file holding complete lines only (the evaluation may be appending to it)."""
    copy = tmp_path / path.name
    copy.write_text("".join(line + "\n" for line in lines_of(path)))
    return copy


def test_round_trip_is_exact_on_records_made_here(made):
    recs = read_results(made)
    lines = lines_of(made)
    assert len(recs) == len(lines) == 3
    assert [r.ok for r in recs].count(False) == 1
    for r, line in zip(recs, lines):
        assert r.to_dict() == json.loads(line)
        assert json.dumps(r.to_dict(), sort_keys=True) == line
        assert r.version == RECORD_VERSION
    ok = [r for r in recs if r.ok]
    for r in ok:
        assert r.original.name in ToneModel.class_names
        assert set(r.fft_flips) == {"causal", "random", "magnitude"}
        assert all(isinstance(k, int) for per_k in r.fft_flips.values() for k in per_k)
        assert sorted(r.fft_flips["causal"]) == [1, 2, 3, 4, 5]
        f = r.fft_flips["causal"][1]
        assert isinstance(f, FlipSummary) and f.success and f.new_name in ToneModel.class_names
        assert f.closest_name is not None and f.over_threshold_share is not None  # version 3 fields
        assert set(r.stft_flips) == {"causal", "random", "magnitude"}
        suff = r.fft_explanation.sets["sufficient"]
        assert suff.kept_bins is not None and suff.kept_bands_hz is None
        mask = r.fft_explanation.keep_mask("sufficient")
        assert mask.dtype == bool and mask.size == r.fft_explanation.n_bins and mask.sum() >= suff.size
        assert r.flipped()["causal"] == 1
    err = next(r for r in recs if not r.ok)
    assert err.status == "error" and err.error and err.original is None and err.fft_flips == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        err.status = "ok"  # type: ignore[misc]


def test_a_record_written_back_reads_the_same(made, tmp_path):
    recs = read_results(made)
    again = tmp_path / "again.jsonl"
    for r in recs:
        append_record(again, r.to_dict())
    assert again.read_bytes() == made.read_bytes()
    assert read_results(again) == recs


def test_round_trip_is_exact_on_the_current_records():
    if not CURRENT.is_file():
        pytest.skip("docs/results not present")
    lines = lines_of(CURRENT)
    for line in lines:
        d = json.loads(line)
        r = ClipRecord.from_dict(d)
        assert r.to_dict() == d
        assert json.dumps(r.to_dict(), sort_keys=True) == line
    assert lines and json.loads(lines[0])["version"] == 3 < RECORD_VERSION


@pytest.mark.parametrize("path", OLD, ids=lambda p: p.name)
def test_records_of_older_versions_are_readable(path, tmp_path):
    if not path.is_file():
        pytest.skip("docs/results not present")
    recs = read_results(snapshot(path, tmp_path))
    assert recs and all(r.version < RECORD_VERSION for r in recs)
    for r, line in zip(recs, lines_of(path)):
        assert r.to_dict() == json.loads(line)  # written back without the fields its version lacked
        assert r.ok and r.original is not None and r.fft_explanation.n_bins > 0
        assert r.clip_id is None and r.host is None  # fields of later versions: None
        f = next(iter(next(iter(r.fft_flips.values())).values()))
        assert f.closest_name is None and f.art_max_excess_db is None
        if r.version == 1:
            assert f.method is None and r.fft_flips_given_explanation == {}
            assert r.stft_explanation.projected_from == "fft" and r.stft_explanation.sets == {}


def test_a_newer_version_is_refused(made, tmp_path):
    d = json.loads(lines_of(made)[0])
    d["version"] = RECORD_VERSION + 1
    with pytest.raises(ResultFileError, match=rf"version {RECORD_VERSION + 1}, newer"):
        ClipRecord.from_dict(d)
    newer = tmp_path / "newer.jsonl"
    shutil.copy(made, newer)
    append_record(newer, d)
    with pytest.raises(ResultFileError, match=r"newer.jsonl: record 4: .*upgrade freqrex"):
        read_results(newer)


def test_files_that_are_not_records_are_refused(tmp_path):
    with pytest.raises(ResultFileError, match="not a file"):
        read_results(tmp_path / "missing.jsonl")
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"clip": "x", "best_snr_db": 3.0}) + "\n")
    with pytest.raises(ResultFileError, match="not a freqrex evaluate record"):
        read_results(other)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"model": "m", "status": "ok"}\nnot json\n{"model": "m", "status": "ok"}\n')
    with pytest.raises(ResultFileError, match="line 2"):
        read_results(bad)
    cut = tmp_path / "cut.jsonl"  # a run killed mid-write: the partial last line is ignored
    cut.write_text('{"model": "m", "status": "error", "error": "E"}\n{"model": "m", "sta')
    assert [r.error for r in read_results(cut)] == ["E"]


def test_unknown_keys_are_kept(made):
    d = json.loads(lines_of(made)[0])
    d["added_later"] = {"x": 1}
    d["fft_flips"]["causal"]["1"]["also_new"] = [1, 2]
    r = ClipRecord.from_dict(d)
    assert r.extra == {"added_later": {"x": 1}}
    assert r.fft_flips["causal"][1].extra == {"also_new": [1, 2]}
    assert r.to_dict() == d


def test_a_record_made_in_python_writes_the_current_layout():
    f = FlipSummary(success=True, n_changed=1, change="add", snr_db=float("inf"), new_class=2, new_name="high")
    r = ClipRecord(clip="c", model="m", status="ok", fft_flips={"causal": {1: f}}, seconds=1.0)
    d = r.to_dict()
    assert d["fft_flips"]["causal"]["1"]["snr_db"] == "inf"  # as append_record writes it
    assert "error" not in d and "stft_flips" not in d and d["version"] == RECORD_VERSION
    assert set(d["fft_flips"]["causal"]["1"]) == {k for _, k in FlipSummary._KEYS}
    assert ClipRecord.from_dict(d).to_dict() == d
    assert d == _clean(d)


def test_repr_is_one_short_line(made):
    for r in read_results(made):
        text = repr(r)
        assert "\n" not in text and len(text) < 300
        assert r.clip in text and "tone" in text
        if r.ok:
            assert r.original.name in text and "causal@k=1" in text
        else:
            assert "error=" in text
    if CURRENT.is_file():
        text = repr(ClipRecord.from_dict(json.loads(lines_of(CURRENT)[0])))
        assert "\n" not in text and len(text) < 300 and "madmom_key" in text


#: sha256 of write_summary's JSON summary of each file of older records (static files), as written
#: by the dict-based summary before the summary read typed records: the numbers must not change.
SUMMARY_SHA256 = {
    "musicnn-eval.jsonl": "cbcb954a8372cddc03ab89227eca66d796c0933366ec6ed98cd42123e2d6aeff",
    "flips-msd-musicnn.jsonl": "e7bbd618fb4e686658b6c99b4da625541486a5427a4a1bc95a1e18d9f430dd79",
    "flips-msd-vgg.jsonl": "ab74bd1a8b8463b12f1272b65be6a6f151df7d1d61d97e63ccf594772c72117e",
    "flips-silero.jsonl": "5750f4bec259a7c42bb6d53c47eb34110627b31b6b0af62de5226b486ca7740b",
}


@pytest.mark.parametrize("path", [*OLD, CURRENT], ids=lambda p: p.name)
def test_summary_is_unchanged(path, tmp_path):
    if not path.is_file():
        pytest.skip("docs/results not present")
    copy = snapshot(path, tmp_path)
    dicts, typed = load_records(copy), read_results(copy)
    for name, recs in (("dicts", dicts), ("typed", typed)):
        write_summary(recs, tmp_path / f"{name}.md", tmp_path / f"{name}.json")
    assert (tmp_path / "dicts.md").read_bytes() == (tmp_path / "typed.md").read_bytes()
    assert (tmp_path / "dicts.json").read_bytes() == (tmp_path / "typed.json").read_bytes()
    if path.name in SUMMARY_SHA256:
        assert hashlib.sha256((tmp_path / "dicts.json").read_bytes()).hexdigest() == SUMMARY_SHA256[path.name]


def test_summary_of_records_made_here(made):
    dicts, typed = load_records(made), read_results(made)
    s = summarize(typed)
    assert s == summarize(dicts)
    assert s["errors"] == {"tone": 1} and s["models"]["tone"]["clips"] == 2
    assert summary_markdown(s) == summary_markdown(summarize(dicts))


def test_a_replaced_field_is_written(made):
    ok = next(r for r in read_results(made) if r.ok)
    failed = dataclasses.replace(ok, status="error", error="RuntimeError: x")
    assert failed.to_dict()["error"] == "RuntimeError: x" and not failed.ok
    assert dataclasses.replace(ok).to_dict() == ok.to_dict()
