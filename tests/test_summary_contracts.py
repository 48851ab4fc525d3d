"""What a summary of evaluation records promises: the records that stand, one group per run, no pooling of
two runs of one model, tolerance of absent fields and a named error for a malformed record; and the
scripts that summarise (summarize_flip_eval.py, run_art_eval.py) keep the same promises."""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from freqrex.errors import ResultFileError
from freqrex.evaluation import append_record, load_records, summarize, summary_markdown
from freqrex.evaluation.summary import limit_comparison, limit_markdown, per_clip_markdown

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
STRATEGIES = ("causal", "random")


def _flip(success=True, snr=30.0, queries=100):
    return {"success": success, "n_changed": 1, "change": "add" if success else None,
            "snr_db": snr if success else None, "queries": queries, "flip_queries": queries - 10,
            "inaudible": success, "margin_db": 0.5 if success else None, "art_max_excess_db": -1.0,
            "n_cells": 3}


def record(clip, model="m", protocol="p1", status="ok", snr=30.0, success=True, seconds=10.0):
    """A minimal record of freqrex evaluate (the fields a summary reads)."""
    rec = {"clip": clip, "clip_id": f"/data/{clip}.wav", "file": f"/data/{clip}.wav", "model": model,
           "protocol": protocol, "version": 6, "status": status, "options": {"seed": 0}}
    if status != "ok":
        return {**rec, "error": "RuntimeError: boom"}
    rec.update({
        "original": {"class": 0, "name": "a", "score": 0.9, "runner_up": 1, "runner_up_score": 0.1},
        "fft_explanation": {"sets": {n: {"size": 10, "fraction": 0.01, "score": 0.9}
                                     for n in ("sufficient", "sufficient_necessary", "complete")},
                            "queries": 200, "n_bins": 1000, "bin_hz": 1.0},
        "fft_flips": {s: {str(k): _flip(success, snr) for k in (1, 5)} for s in STRATEGIES},
        "stft_flips": {s: _flip(success, snr) for s in STRATEGIES},
        "seconds": seconds,
    })
    return rec


def rows_of(md: str, first: str = "| ") -> list:
    return [line for line in md.splitlines() if line.startswith(first)]


# --------------------------------------------------------------------------- defect 4: pooling


def test_two_protocols_of_one_model_are_two_groups_and_never_all_models():
    recs = [record(f"c{i}", protocol="v3") for i in range(3)] + [record(f"c{i}", protocol="v6") for i in range(3)]
    s = summarize(recs)
    assert set(s["models"]) == {"m [v3]", "m [v6]"}
    assert s["models"]["m [v3]"]["clips"] == 3 and s["models"]["m [v3]"]["protocol"] == "v3"
    # a second model beside them: still no "all models" row, it would pool the two runs of m
    s2 = summarize(recs + [record("c0", model="n")])
    assert "all models" not in s2["models"] and set(s2["models"]) == {"m [v3]", "m [v6]", "n"}
    # two models of one protocol each: pooled as before
    s3 = summarize([record("c0"), record("c1"), record("c0", model="n", protocol="q")])
    assert s3["models"]["all models"]["clips"] == 3 and set(s3["models"]) == {"m", "n", "all models"}
    assert "protocol" not in s3["models"]["m"]


def test_a_superseded_error_and_a_repeated_record_are_not_counted():
    """A clip that failed and then succeeded on a resumed run: its error no longer stands; a record
    written twice (two files of one run concatenated) is one clip."""
    recs = [record("c0", status="error"), record("c0"), record("c1"), record("c1", snr=5.0)]
    s = summarize(recs)
    assert s["errors"] == {} and s["models"]["m"]["clips"] == 2
    # the first ok record of a clip stands (30 dB), not the repeat (5 dB)
    assert s["models"]["m"]["strategies"]["causal"]["snr_db_median"]["1"] == 30.0
    # an error that no retry superseded is still counted
    assert summarize([record("c0"), record("c2", status="error")])["errors"] == {"m": 1}


def test_the_report_of_two_runs_in_one_file_pools_nothing(tmp_path):
    from freqrex.report import evaluation_results_markdown

    recs = [record(f"c{i}", protocol="v3") for i in range(4)] + [record(f"c{i}", protocol="v6") for i in range(4)]
    md = evaluation_results_markdown(recs)
    assert "all models" not in md
    rates = md.split("\n\n")[0]  # the first table: one row per group and strategy
    assert len(rows_of(rates, "| m [v3] | 4 |")) == len(rows_of(rates, "| m [v6] | 4 |")) == len(STRATEGIES)


@pytest.mark.skipif(not (RESULTS / "flips-madmom-key-v6.jsonl").is_file(), reason="docs/results not present")
def test_the_reviewers_repro_two_key_runs_are_not_pooled_into_48_clips():
    from freqrex.report import evaluation_results_markdown

    recs = load_records(RESULTS / "flips-madmom-key.jsonl") + load_records(RESULTS / "flips-madmom-key-v6.jsonl")
    md = evaluation_results_markdown(recs)
    assert "all models" not in md and "| 48 |" not in md
    rates = md.split("\n\n")[0]
    assert len([r for r in rows_of(rates) if "| madmom_key [" in r and "| 24 | freqrex (causal ranking)" in r]) == 2


def test_transfer_records_of_another_protocol_are_left_out():
    recs = [record("c0", model="a", protocol="pa"), record("c0", model="b", protocol="pb")]

    def transfer(sp, tp, keeps=True):
        return {"kind": "transfer", "clip": "c0", "clip_id": "/data/c0.wav", "source": "a", "target": "b",
                "source_protocol": sp, "target_protocol": tp, "status": "ok",
                "sets": {"sufficient": {"present": True, "keeps_target_decision": keeps,
                                        "equals_source_decision": keeps},
                         "complete": {"present": False}}}

    s = summarize(recs, [transfer("pa", "pb"), transfer("old", "pb", keeps=False), transfer("pa", "old", False)])
    cell = s["transfer"]["cells"]["a"]["b"]
    assert cell["clips"] == 1 and cell["sufficient"] == {"present": 1, "keeps": 1.0, "equals": 1.0}
    assert s["transfer"]["other_protocol"] == 2 and s["transfer"]["models"] == ["a", "b"]
    # a transfer record repeated (two runs' files concatenated) counts once
    s = summarize(recs, [transfer("pa", "pb"), transfer("pa", "pb", keeps=False)])
    assert s["transfer"]["cells"]["a"]["b"]["clips"] == 1


def test_summarize_flip_eval_script_never_pools_two_runs(tmp_path):
    a, b = tmp_path / "v3.jsonl", tmp_path / "v6.jsonl"
    a.write_text("".join(json.dumps(record(f"c{i}", protocol="v3")) + "\n" for i in range(3)))
    b.write_text("".join(json.dumps(record(f"c{i}", protocol="v6", snr=40.0)) + "\n" for i in range(3)))
    limits = tmp_path / "limits.jsonl"
    limits.write_text("".join(json.dumps({"clip": f"c{i}.wav", "model": "m", "best_snr_db": 35.0, "queries": 700})
                              + "\n" for i in range(3)))
    out = tmp_path / "summary.md"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "summarize_flip_eval.py"), str(a), str(b),
                          "--limits", str(limits), "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "2 protocols (v3, v6)" in run.stderr
    md = out.read_text()
    assert "all models" not in md and "| m [v3] | 3 | freqrex" in md and "| m [v6] | 3 | freqrex" in md
    data = json.loads(out.with_suffix(".json").read_text())
    assert set(data["models"]) == {"m [v3]", "m [v6]"}
    # the limit comparison: one group per run (v3 at 30 dB misses a 35 dB limit, v6 at 40 dB beats it)
    assert data["limit"]["m [v3]"]["strategies"]["causal"]["within_1db"] == 0.0
    assert data["limit"]["m [v6]"]["strategies"]["causal"]["within_1db"] == 1.0
    assert data["limit"]["m [v3]"]["clips"] == 3


# --------------------------------------------------------------------------- defect 5: within 1 dB


def test_within_1db_counts_only_clips_the_limit_flips():
    """A clip no tone of the limit flips and that the strategy does not flip either is not "within 1 dB";
    a clip the strategy flips beyond the limit is counted apart."""
    recs = [record("c0", snr=29.5), record("c1", snr=20.0), record("c2", success=False), record("c3", snr=12.0)]
    limits = [{"model": "m", "clip": "c0.wav", "best_snr_db": 30.0, "queries": 700},
              {"model": "m", "clip": "c1.wav", "best_snr_db": 30.0, "queries": 700},
              {"model": "m", "clip": "c2.wav", "best_snr_db": None, "queries": 700},
              {"model": "m", "clip": "c3.wav", "best_snr_db": None, "queries": 700}]
    c = limit_comparison(recs, limits)["m"]
    assert c["clips"] == 4 and c["limit_flips"] == 2
    row = c["strategies"]["causal"]
    assert row["flipped"] == 3 and row["within_1db_count"] == 1 and row["within_1db"] == 0.5
    assert row["beyond_limit"] == 1  # c3: flipped, the limit does not flip it
    md = limit_markdown({"m": c})
    assert "of the 2 clips the limit flips" in md
    causal = next(r for r in rows_of(md) if "freqrex (causal ranking)" in r)
    assert "| 3/4 | 1/2 (50%) | 1 |" in causal
    assert "| 2/4 | – | – |" in next(r for r in rows_of(md) if "exhaustive one-tone limit" in r)


def test_within_1db_is_not_made_up_when_the_limit_flips_nothing():
    c = limit_comparison([record("c0", success=False)],
                         [{"model": "m", "clip": "c0.wav", "best_snr_db": None, "queries": 700}])["m"]
    assert c["limit_flips"] == 0 and c["strategies"]["causal"]["within_1db"] is None
    assert "| 0/1 | – | 0 |" in limit_markdown({"m": c})


# --------------------------------------------------------------------------- defect 7: malformed records


def _one_broken(change):
    recs = [record("c0"), record("c1"), record("c2")]
    change(recs[1])
    return recs


@pytest.mark.parametrize("change, needle", [
    (lambda r: r["fft_flips"]["causal"].__setitem__("one", r["fft_flips"]["causal"].pop("1")), "'one'"),
    (lambda r: r["fft_flips"]["random"]["1"].__setitem__("flip_queries", "many"), "flip_queries"),
    (lambda r: r["fft_explanation"].__setitem__("sets", ["sufficient"]), "sets"),
    (lambda r: r.__setitem__("seconds", "slow"), "seconds"),
], ids=["k-not-a-number", "queries-not-a-number", "sets-not-an-object", "seconds-not-a-number"])
def test_a_malformed_ok_record_is_a_result_file_error_naming_it(change, needle):
    recs = _one_broken(change)
    for f in (summarize, lambda rs: per_clip_markdown(rs), lambda rs: limit_comparison(rs, [])):
        with pytest.raises(ResultFileError) as info:
            f(recs)
        msg = str(info.value)
        assert "record 2" in msg and "'c1'" in msg and needle in msg


@pytest.mark.parametrize("change", [
    lambda r: r["fft_explanation"]["sets"].pop("sufficient_necessary"),
    lambda r: r.pop("seconds"),
    lambda r: r["original"].__setitem__("score", None),
    lambda r: r.pop("original"),
    lambda r: r.pop("fft_explanation"),
    lambda r: r["fft_flips"]["causal"]["1"].pop("queries"),
    lambda r: r["fft_flips"]["causal"]["1"].pop("flip_queries"),
    lambda r: r["fft_explanation"]["sets"]["sufficient"].pop("fraction"),
], ids=["no-sufficient-necessary", "no-seconds", "score-none", "no-original", "no-fft-explanation",
        "no-queries", "no-flip-queries", "no-fraction"])
def test_a_partial_ok_record_is_summarised_without_its_absent_fields(change):
    recs = _one_broken(change)
    s = summarize(recs)
    m = s["models"]["m"]
    assert m["clips"] == 3 and m["strategies"]["causal"]["k"]["1"] == 1.0
    assert m["seconds_median"] == 10.0 and m["runner_up_gap_median"] == pytest.approx(0.8)
    md = summary_markdown(s)
    assert "| m | 3 | freqrex (causal ranking) | 100% |" in md
    assert per_clip_markdown(recs).count("\n| c") == 3


def test_freqrex_report_on_a_malformed_record_says_which_and_is_no_internal_error(tmp_path, capsys):
    pytest.importorskip("jinja2")
    from freqrex.cli import main

    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _one_broken(
        lambda r: r["fft_flips"]["causal"].__setitem__("one", r["fft_flips"]["causal"].pop("1")))))
    code = main(["report", str(path), "--out", str(tmp_path / "r.html"), "--no-pages"])
    err = capsys.readouterr().err
    assert code != 0 and "internal error" not in err and "'c1'" in err and "'one'" in err
    path.write_text("".join(json.dumps(r) + "\n" for r in _one_broken(lambda r: r.pop("seconds"))))
    assert main(["report", str(path), "--out", str(tmp_path / "r.html"), "--no-pages"]) == 0


# --------------------------------------------------------------------------- defect 6: run_art_eval.py


def _art_script():
    spec = importlib.util.spec_from_file_location("run_art_eval", ROOT / "scripts" / "run_art_eval.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _art_row(clip, attack, snr, queries, success=True):
    return {"clip": clip, "model": "m", "attack": attack, "budget": 500, "success": success, "snr_db": snr,
            "queries": queries, "db_x": -20.0, "margin_db": -3.0, "new_class": 1, "elapsed_s": 1.0}


def test_art_summary_medians_are_medians_and_one_row_per_clip(tmp_path, capsys):
    art = _art_script()
    out = tmp_path / "art.jsonl"
    rows = [_art_row("c0", "simba", 10.0, 100), _art_row("c1", "simba", 20.0, 200),
            _art_row("c2", "simba", 30.0, 300), _art_row("c3", "simba", 40.0, 400),
            _art_row("c0", "simba", 12.0, 110)]  # c0 again: the last row of a clip stands
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    flips = tmp_path / "flips.jsonl"
    flips.write_text(json.dumps(record("c0")) + "\n")
    called = []
    art.attack_clip = lambda *a, **k: called.append(a)  # --summary never attacks
    assert art.main(["--flips", str(flips), "--out", str(out), "--summary", "--attack", "simba"]) == 0
    assert not called and out.read_text().count("\n") == 5  # nothing written either
    line = next(r for r in capsys.readouterr().out.splitlines() if r.startswith("| m | simba |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[2] == "4"  # c0, c1, c2, c3
    assert cells[-3] == f"{statistics.median([12.0, 20.0, 30.0, 40.0]):.1f}" == "25.0"
    assert cells[-1] == f"{statistics.median([110, 200, 300, 400]):g}" == "250"


def test_art_eval_runs_a_clip_once_when_two_flip_files_hold_it(tmp_path, monkeypatch, capsys):
    art = _art_script()
    calls = []

    class Model:
        sample_rate = 8000

    def attack(x, sr, model, *, attack, budget, seed, original_class):
        calls.append(attack)
        return {"success": True, "queries": budget, "snr_db": 25.0, "db_x": -20.0, "margin_db": -2.0,
                "new_class": 1, "elapsed_s": 0.1}

    monkeypatch.setattr(art, "attack_clip", attack)
    monkeypatch.setattr(art, "load_model", lambda name: Model())
    monkeypatch.setattr(art, "load_audio", lambda path, **k: ([0.0] * 8, 8000))
    rec = record("c0")
    rec["options"]["duration"] = 1.0
    f1, f2 = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    f1.write_text(json.dumps(rec) + "\n")
    f2.write_text(json.dumps({**rec, "protocol": "p2"}) + "\n")
    out = tmp_path / "art.jsonl"
    assert art.main(["--flips", str(f1), "--flips", str(f2), "--out", str(out), "--attack", "simba"]) == 0
    assert calls == ["simba"]
    assert [(r["clip"], r["attack"]) for r in load_records(out)] == [("c0", "simba")]
    assert "| m | simba | 1 |" in capsys.readouterr().out


def test_art_eval_shards_split_the_clips_and_skip_what_another_process_recorded(tmp_path, monkeypatch, capsys):
    art = _art_script()
    calls = []
    out = tmp_path / "art.jsonl"

    class Model:
        sample_rate = 8000

    def attack(x, sr, model, *, attack, budget, seed, original_class):
        calls.append((x, attack))
        if x == "c1.wav":  # meanwhile another process records c3's attack
            append_record(out, {**_art_row("c3", "simba", 30.0, 500), "model": "m"})
        return {"success": True, "queries": budget, "snr_db": 25.0, "db_x": -20.0, "margin_db": -2.0,
                "new_class": 1, "elapsed_s": 0.1}

    monkeypatch.setattr(art, "attack_clip", attack)
    monkeypatch.setattr(art, "load_model", lambda name: Model())
    monkeypatch.setattr(art, "load_audio", lambda path, **k: (Path(path).name, 8000))
    flips = tmp_path / "flips.jsonl"
    recs = [record(f"c{i}") for i in range(5)]
    for rec in recs:
        rec["options"]["duration"] = 1.0
        rec["file"] = f"/data/{rec['clip']}.wav"
    flips.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert art.main(["--flips", str(flips), "--out", str(out), "--attack", "simba", "--shard", "1/2"]) == 0
    assert calls == [("c1.wav", "simba")]  # c1 and c3 are shard 1 of 2; c3 was recorded meanwhile
    assert art.main(["--flips", str(flips), "--out", str(out), "--attack", "simba", "--shard", "0/2"]) == 0
    assert [c for c, _ in calls] == ["c1.wav", "c0.wav", "c2.wav", "c4.wav"]
    assert sorted(r["clip"] for r in load_records(out)) == ["c0", "c1", "c2", "c3", "c4"]
    for bad in ("2/2", "1", "a/b"):
        with pytest.raises(SystemExit):
            art.main(["--flips", str(flips), "--out", str(out), "--shard", bad])
    # a shard never rewrites the file (another may be appending): a cut last line is left to a plain run
    with open(out, "ab") as fh:
        fh.write(b'{"clip": "c9", "mod')
    with pytest.raises(SystemExit):
        art.main(["--flips", str(flips), "--out", str(out), "--attack", "simba", "--shard", "0/2"])
    assert out.read_bytes().endswith(b'"mod')
    assert art.main(["--flips", str(flips), "--out", str(out), "--attack", "simba"]) == 0
    assert out.read_bytes().endswith(b"\n") and len(load_records(out)) == 5
    capsys.readouterr()


def test_the_per_clip_table_does_not_depend_on_the_order_records_were_written_in():
    """Two workers append records in whichever order they finish: the table (and so the published
    summary) followed that order, a rerun with another worker count changed a published file."""
    recs = [record(c, model=m, snr=10.0 + i) for i, (c, m) in
            enumerate([("c2", "m2"), ("c0", "m1"), ("c1", "m2"), ("c1", "m1"), ("c0", "m2")])]
    md = per_clip_markdown(recs)
    assert md == per_clip_markdown(list(reversed(recs))) == per_clip_markdown(recs[2:] + recs[:2])
    rows = [line.split("|")[1:3] for line in rows_of(md)[1:] if not line.startswith("|---")]
    assert [(c.strip(), m.strip()) for c, m in rows] == [("c0", "m1"), ("c1", "m1"), ("c0", "m2"), ("c1", "m2"),
                                                         ("c2", "m2")]


def test_the_facts_script_splits_clips_by_margin_and_counts_what_the_prose_quotes(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("flip_eval_facts", ROOT / "scripts" / "flip_eval_facts.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    recs = []
    for i, (margin, flips) in enumerate([(0.01, True), (0.05, True), (0.2, False), (0.4, False)]):
        r = record(f"c{i}", success=flips, snr=30.0 + i)
        r["original"]["runner_up_score"] = r["original"]["score"] - margin
        if not flips:  # five bins flip it, loudly, where one does not
            r["fft_flips"]["random"]["5"] = _flip(True, 5.0 + i)
        recs.append(r)
    path = tmp_path / "r.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert mod.main([str(path), "--json"]) == 0
    f = json.loads(capsys.readouterr().out)["m [p1]"]
    assert f["clips"] == 4 and f["one_tone_flips"] == 2 and f["split_by_margin"] is True
    assert f["margins_flipped"] == [0.01, 0.05] and f["margins_resisting"] == [0.2, 0.4]
    assert f["resisting_flipped_by_k_top"] == {"c2": 7.0, "c3": 8.0}
    assert f["k_top_vs_k1"] == {"pairs": 8, "lost_a_flip": 0, "louder": 0, "quieter_by_0.5_db": 0}
    assert f["stft"]["flips"] == 4 and f["stft"]["over_art"] == 0 and f["stft"]["largest_art_excess_db"] == -1.0


def test_art_summary_compares_on_the_clips_the_attacks_have_run(tmp_path, capsys):
    art = _art_script()
    out = tmp_path / "art.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in [_art_row("c0", "simba", 35.0, 490),
                                                            _art_row("c1", "simba", 15.0, 490)]))
    flips = tmp_path / "flips.jsonl"
    recs = [record("c0", snr=25.0), record("c1", snr=45.0), record("c2", snr=5.0)]  # c2: no attack yet
    flips.write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert art.main(["--flips", str(flips), "--out", str(out), "--summary", "--attack", "simba"]) == 0
    text = capsys.readouterr().out
    assert "| m | freqrex causal | 2 | 100% | 100% | 50% | 50% |" in text  # c0 and c1 only
    assert "| m | ART simba | 2 | 100% | 50% | 50% | 0% |" in text
