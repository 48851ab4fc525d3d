"""`freqrex report` and the HTML reports: what they refuse, and what they never show as true.

Each test pins a defect found in review: a report that overwrote its own input, a flip save that
was interrupted or altered but rendered as valid, one damaged run that crashed a whole evaluation's
report, clips counted wrong and superseded errors shown, an evaluation folder refused for its
transfer file, the exit codes the help text gives, and a failed flip's closest attempt shown as a change.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib", reason="reports need matplotlib (pip install freqrex[plot])")
matplotlib.use("Agg")
pytest.importorskip("jinja2", reason="reports need jinja2 (pip install freqrex[report])")

import freqrex  # noqa: E402
from freqrex.errors import FreqrexWarning, ResultFileError  # noqa: E402
from synthetic import SR, BandClassifier, make_clip  # noqa: E402


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A saved explanation, and a flip of the same clip saved into its folder (as `freqrex flip --out`)."""
    from freqrex.manipulation import flip

    x = make_clip()
    model = BandClassifier("one")
    e = freqrex.explain(x, SR, model, budget=120, iterations=2)
    r = flip(x, SR, model, k=2, space="fft", explanation=e, budget=24)
    assert r.success
    return SimpleNamespace(x=x, model=model, e=e, flip=r, tmp=tmp_path_factory)


def _saved_run(run, tmp_path, name="run", with_flip=True):
    d = run.e.save(tmp_path / name)
    if with_flip:
        run.flip.save(d, original=run.x)
    return d


def _text(path):
    return Path(path).read_text(encoding="utf-8")


# ============================================================== 1: never overwrite an input
def test_report_refuses_an_out_that_is_its_input(run, tmp_path, capsys):
    from freqrex.cli import main

    jsonl = tmp_path / "victim.jsonl"
    jsonl.write_text(json.dumps({"clip": "a.wav", "seconds": 1.0}) + "\n")
    before = jsonl.read_bytes()
    assert main(["report", str(jsonl), "--out", str(jsonl)]) == 2
    assert "would overwrite" in capsys.readouterr().err
    assert jsonl.read_bytes() == before
    # the same file by another spelling, and the transfer records beside it
    (tmp_path / "sub").mkdir()
    assert main(["report", str(jsonl), "--out", str(tmp_path / "sub" / ".." / "victim.jsonl")]) == 2
    transfer = tmp_path / "victim.transfer.jsonl"
    transfer.write_text(json.dumps({"kind": "transfer"}) + "\n")
    assert main(["report", str(jsonl), "--out", str(transfer)]) == 2
    assert jsonl.read_bytes() == before and json.loads(transfer.read_text()) == {"kind": "transfer"}
    capsys.readouterr()

    d = _saved_run(run, tmp_path)
    for name in ("summary.json", "explanation.npz", "original.wav", "flip.json", "manifest.json",
                 "flip-manifest.json", "perturbed.wav"):
        assert main(["report", str(d), "--out", str(d / name)]) == 2, name
        assert "would overwrite" in capsys.readouterr().err
    assert main(["report", str(d), "--out", str(d)]) == 2  # a folder
    # an evaluation's report written into a run it links to
    assert main(["report", str(jsonl), "--out", str(d / "summary.json")]) == 2
    # nothing was touched: both saves still pass their manifests
    freqrex.Explanation.load(d)
    freqrex.FlipResult.load(d)
    capsys.readouterr()
    # the default (RUN_DIR/report.html) and an HTML file beside the run are fine
    assert main(["report", str(d)]) == 0
    assert main(["report", str(d), "--out", str(d / "again.html")]) == 0
    freqrex.Explanation.load(d)


# ============================================================== 2: flips checked against their manifest
def test_altered_flip_beside_an_explanation_is_left_out_with_a_note(run, tmp_path, capsys):
    from freqrex.cli import main
    from freqrex.viz.saved import load_flip_beside

    d = _saved_run(run, tmp_path)
    assert main(["report", str(d), "--json"]) == 0  # intact: the flip is on the page
    page = _text(json.loads(capsys.readouterr().out)["report"])
    assert 'id="audio-flipped"' in page

    summary = json.loads((d / "flip.json").read_text())
    summary["success"] = not summary["success"]  # altered since it was saved
    (d / "flip.json").write_text(json.dumps(summary))
    assert main(["report", str(d), "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["notes"] and "not shown" in out["notes"][0] and "changed since it was saved" in out["notes"][0]
    assert "freqrex: warning:" in captured.err and "not shown" in captured.err
    page = _text(out["report"])
    assert 'id="audio-flipped"' not in page and "<h2>Flip</h2>" not in page
    assert "not shown" in page and 'class="warn"' in page

    with pytest.warns(FreqrexWarning, match="not shown"):
        assert load_flip_beside(d) is None
    notes = []
    assert load_flip_beside(d, notes=notes) is None and len(notes) == 1


def test_interrupted_flip_save_is_refused(run, tmp_path, capsys):
    from freqrex._atomic import begin_save
    from freqrex.cli import main
    from freqrex.viz.saved import load_flip_beside, load_flip_dir

    # a flip folder of its own (`freqrex flip --out DIR`), its save interrupted
    d = run.flip.save(tmp_path / "flip", original=run.x)
    load_flip_dir(d)  # complete: read
    begin_save(d, "flip")  # what a save killed after its first step leaves
    with pytest.raises(ResultFileError, match="incomplete save"):
        load_flip_dir(d)
    assert main(["report", str(d)]) == 3
    assert "incomplete save" in capsys.readouterr().err
    assert not (d / "report.html").exists()
    # a file listed in the manifest removed since
    d2 = run.flip.save(tmp_path / "flip2", original=run.x)
    (d2 / "perturbed.wav").unlink()
    with pytest.raises(ResultFileError, match="lacks perturbed.wav"):
        load_flip_dir(d2)
    # beside an explanation: left out, the rest of the report kept
    d3 = _saved_run(run, tmp_path, "run3")
    begin_save(d3, "flip")
    notes = []
    assert load_flip_beside(d3, notes=notes) is None and "incomplete save" in notes[0]
    # a flip.json put into an explanation's folder by hand (no flip manifest)
    d4 = _saved_run(run, tmp_path, "run4", with_flip=False)
    (d4 / "flip.json").write_text(json.dumps(run.flip.summary()))
    notes = []
    assert load_flip_beside(d4, notes=notes) is None and "flip-manifest.json" in notes[0]
    # a flip.json that is not an object, in a folder saved without manifests (freqrex < 0.2)
    d5 = tmp_path / "legacy"
    d5.mkdir()
    (d5 / "flip.json").write_text("[1, 2]")
    with pytest.raises(ResultFileError):
        load_flip_dir(d5)


# ============================================================== 3: one damaged run, the rest reported
def test_a_damaged_run_leaves_its_row_unlinked_and_the_report_written(run, tmp_path, capsys):
    from freqrex.cli import main
    from freqrex.viz.evaluation_report import write_evaluation_report

    good = _saved_run(run, tmp_path, "good", with_flip=False)
    bad = _saved_run(run, tmp_path, "bad", with_flip=False)
    with open(bad / "original.wav", "r+b") as fh:
        fh.truncate(100)
    jsonl = tmp_path / "results.jsonl"
    jsonl.write_text(json.dumps({"clip": "good", "out": str(good)}) + "\n"
                     + json.dumps({"clip": "bad", "out": str(bad)}) + "\n")
    index = write_evaluation_report(jsonl, tmp_path / "e.html")  # IndexError (maximum.reduceat) before
    text = _text(index)
    assert "2 clips" in text and "1 with a page of their own" in text
    assert 'href="e_clips/clip-0000.html"' in text and "e_clips/clip-0001.html" not in text
    notes = []
    text = _text(write_evaluation_report(jsonl, tmp_path / "e.html", notes=notes))
    assert len(notes) == 1 and "clip bad" in notes[0] and "changed since it was saved" in notes[0]
    assert notes[0] in text
    assert not (tmp_path / "e_clips" / "clip-0001.html").exists()

    assert main(["report", str(jsonl), "--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["pages"] == 1 and "clip bad" in out["notes"][0] and "freqrex: warning:" in captured.err
    assert "internal error" not in captured.err


def test_a_run_that_cannot_be_drawn_leaves_its_row_unlinked(run, tmp_path, monkeypatch):
    """An unexpected error on one clip's page (a bug) costs that page, not the index."""
    import freqrex.viz.evaluation_report as er

    good = _saved_run(run, tmp_path, "good", with_flip=False)
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise IndexError("boom")
        return real(*args, **kwargs)

    real = er.write_explanation_report
    monkeypatch.setattr(er, "write_explanation_report", flaky)
    records = [{"clip": "a", "out": str(good)}, {"clip": "b", "out": str(good)}]
    text = _text(er.write_evaluation_report(records, tmp_path / "e.html"))
    assert "clip-0000.html" in text and "clip-0001.html" not in text
    calls.clear()
    notes = []
    text = _text(er.write_evaluation_report(records, tmp_path / "e.html", notes=notes))
    assert notes == ["clip b: no page: IndexError: boom"] and notes[0] in text


def test_legacy_run_with_an_original_of_another_length_still_renders(run, tmp_path):
    """A save without a manifest (freqrex < 0.2) is read unverified: a short original.wav means no spectrum."""
    from freqrex.io import save_wav
    from freqrex.viz import plot_sets
    from freqrex.viz.evaluation_report import write_evaluation_report
    from freqrex.viz.saved import load_explanation_dir

    d = _saved_run(run, tmp_path, "legacy", with_flip=False)
    (d / "manifest.json").unlink()
    save_wav(d / "original.wav", run.x[:50], SR)
    e = load_explanation_dir(d)
    ax = plot_sets(e)  # IndexError in np.maximum.reduceat before
    assert any("does not match" in t.get_text() for t in ax.texts)
    notes = []
    text = _text(write_evaluation_report([{"clip": "a", "out": str(d)}], tmp_path / "e.html", notes=notes))
    assert "clip-0000.html" in text and notes == []


# ============================================================== 10: the records that stand
def _rec(clip, status="ok", model="m", **extra):
    r = {"clip": clip, "clip_id": f"/data/{clip}.wav", "file": f"/data/{clip}.wav", "model": model,
         "protocol": "p", "status": status}
    if status != "ok":
        r["error"] = f"AudioFileError: {clip} was unreadable"
    r.update(extra)
    return r


def test_evaluation_report_counts_clips_and_shows_the_records_that_stand(tmp_path):
    from freqrex.evaluation.records import current_records
    from freqrex.viz.evaluation_report import write_evaluation_report

    records = [
        _rec("a", "error"),  # fixed by the retry below: not shown
        _rec("b", seconds=1.0),
        _rec("a", seconds=2.0),
        _rec("a", model="m2", seconds=3.0),  # the same clip, another model: one clip, two records
        _rec("c", "error"),
        _rec("c", "error", seconds=9.0),  # still failing: the last error stands
    ]
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records))
    text = _text(write_evaluation_report(jsonl, tmp_path / "r.html"))
    assert "3 clips (4 records)" in text
    assert "a was unreadable" not in text and "c was unreadable" in text
    assert text.count("c was unreadable") == 1
    from freqrex.viz.evaluation_report import _standing

    assert _standing(records) == current_records(records)  # the viz keeps the evaluation's rule
    # records without a clip id (not freqrex evaluate's) all stand, counted by their names
    text = _text(write_evaluation_report([{"clip": "x"}, {"clip": "y"}, {"clip": "x", "seconds": 1}],
                                         tmp_path / "n.html"))
    assert "2 clips (3 records)" in text


def test_flips_table_hides_a_superseded_error(tmp_path):
    from freqrex.viz.evaluation_report import write_evaluation_report

    flips = {"causal": {"1": {"success": True}}}
    records = [_rec("a", "error"), _rec("a", fft_flips=flips, original={"name": "x", "score": 0.9}),
               _rec("b", fft_flips=flips, original={"name": "y", "score": 0.8})]
    text = _text(write_evaluation_report(records, tmp_path / "f.html"))
    assert "2 clips from" not in text and re.search(r"2 clips[.;]", text)
    assert "unreadable" not in text and text.count(">k = 1<") == 2


# ============================================================== 11: a folder with a transfer file
def test_report_of_an_evaluation_folder_with_its_transfer_records(tmp_path, capsys):
    from freqrex.cli import main

    d = tmp_path / "evaluation"
    d.mkdir()
    (d / "flips.jsonl").write_text(json.dumps({"clip": "a.wav", "seconds": 1.0}) + "\n")
    (d / "flips.transfer.jsonl").write_text(json.dumps({"kind": "transfer"}) + "\n")
    assert main(["report", str(d), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "evaluation" and Path(out["report"]) == d / "flips.html"
    # two results files: a clear usage error naming them
    (d / "other.jsonl").write_text(json.dumps({"clip": "b.wav"}) + "\n")
    assert main(["report", str(d)]) == 2
    err = capsys.readouterr().err
    assert "flips.jsonl" in err and "other.jsonl" in err and "transfer" not in err


# ============================================================== 13: the exit codes the help gives
def test_report_help_gives_the_exit_code_of_an_altered_save(run, tmp_path, capsys):
    from freqrex.cli import build_parser, main

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    epilog = " ".join(sub.choices["report"].epilog.split())
    assert "3 a saved run that is incomplete" in epilog and "changed since it was saved" in epilog
    assert "2 not a saved run" in epilog
    d = _saved_run(run, tmp_path, with_flip=False)
    with open(d / "explanation.npz", "ab") as fh:
        fh.write(b"\0")
    assert main(["report", str(d)]) == 3  # as the help says
    assert "changed since it was saved" in capsys.readouterr().err
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "saved run that is incomplete or changed since it was saved" in " ".join(readme.split())


# ============================================================== 14: a failed flip changed nothing
def test_failed_flip_lists_its_closest_attempt_as_not_changed(run, tmp_path):
    from freqrex.viz.report import write_flip_report

    n = 420
    failed = SimpleNamespace(
        success=False, space="stft", strategy="causal", original_class=1, original_name="present",
        original_score=0.9, new_class=1, new_name="present", new_score=0.6, n_changed=0,
        frequencies_hz=np.linspace(100.0, 3000.0, n), times_s=np.linspace(0.0, 0.9, n),
        bins=np.arange(n), frames=np.arange(n) % 50, snr_db=31.0, inaudible=True, margin_db=2.0,
        audio=run.x * 0.99, sample_rate=SR, queries=40,
    )
    text = _text(write_flip_report(failed, tmp_path / "failed.html", audio=run.x))
    assert "changed frequencies (Hz)" not in text and "changed frames at (s)" not in text
    assert "closest attempt&#39;s frequencies (Hz), not changed" in text
    assert "closest attempt&#39;s frames at (s), not changed" in text
    assert "nothing was changed" in text and "SNR (dB) (closest attempt, not made)" in text
    assert "would change" in text  # the player of the attempt
    # a flip that succeeded keeps its labels
    ok = SimpleNamespace(**{**vars(failed), "success": True, "n_changed": n})
    text = _text(write_flip_report(ok, tmp_path / "ok.html", audio=run.x))
    assert "changed frequencies (Hz)" in text and "changed frames at (s)" in text
    assert "closest attempt" not in text


def test_rows_of_explain_dir_link_their_folder(run, tmp_path):
    """`freqrex explain DIR --json` names each clip's run "folder": such rows were never linked."""
    from freqrex.viz.evaluation_report import write_evaluation_report

    good = _saved_run(run, tmp_path, "good", with_flip=False)
    jsonl = tmp_path / "clips.jsonl"
    jsonl.write_text(json.dumps({"clip": "good", "folder": str(good), "status": "ok"}) + "\n")
    text = _text(write_evaluation_report(jsonl, tmp_path / "e.html"))
    assert 'href="e_clips/clip-0000.html"' in text
