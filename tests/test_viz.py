"""freqrex.viz: one signature convention, names escaped for mathtext and HTML, links that are only ever
relative, Markdown tables, the templates shipped, and no import of the evaluation by the report."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib", reason="plots need matplotlib (pip install freqrex[plot])")
matplotlib.use("Agg")

import freqrex  # noqa: E402
from freqrex import ParameterError, viz  # noqa: E402
from freqrex.viz.html import markdown_html, markdown_table, safe_href  # noqa: E402
from synthetic import SR, BandClassifier, make_clip  # noqa: E402

PACKAGE = Path(freqrex.__file__).resolve().parent
#: A name matplotlib's mathtext cannot parse, and one that would be markup in HTML.
BAD_MATH = r"$\frac{x^ $ (loud)"
BAD_HTML = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def explanation():
    return freqrex.explain(make_clip(), SR, BandClassifier("one"), budget=120, iterations=2)


def _png(fig):
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    assert buf.getvalue()[:4] == b"\x89PNG"


def test_names_that_mathtext_cannot_parse_are_drawn_literally(explanation):
    e = dataclasses.replace(explanation, target_name=BAD_MATH)
    fig = viz.plot_explanation(e)
    _png(fig)  # savefig parses every text: it raised ValueError before the names were escaped
    head = fig.get_suptitle()
    assert r"\frac" in head and "$" in head
    flip = SimpleNamespace(audio=e.audio("sufficient"), original_audio=e.audio("original"), sample_rate=SR,
                           original_name=BAD_MATH, new_name="$$", success=True, space="fft")
    ax = viz.plot_flip(flip)
    _png(ax.figure)
    assert viz.mathtext_escape("a $b$") == r"a \$b\$"


def test_report_escapes_names_for_html_and_matplotlib(explanation, tmp_path):
    from freqrex.viz.report import write_explanation_report

    e = dataclasses.replace(explanation, target_name=BAD_HTML + BAD_MATH)
    text = write_explanation_report(e, tmp_path / "r.html", model_name=BAD_HTML, source="a<b>.wav").read_text()
    assert BAD_HTML not in text and "&lt;script&gt;" in text
    assert "<b>" not in text and 'id="img-explanation"' in text


def test_report_shows_the_explanations_warnings(explanation, tmp_path):
    from freqrex.viz.report import write_explanation_report

    e = dataclasses.replace(explanation)
    e.warnings = ["the top two classes are tied " + BAD_HTML]  # read with getattr: older Explanations lack it
    text = write_explanation_report(e, tmp_path / "w.html").read_text()
    assert '<p class="warn">the top two classes are tied &lt;script&gt;' in text


def test_safe_href_allows_only_relative_paths_and_file_urls():
    for ok in ("clip.html", "../runs/a/original.wav", "a%3Ab/report.html", "file:///tmp/x.html", "#top"):
        assert safe_href(ok) == ok
    for bad in ("javascript:alert(1)", " JavaScript:alert(1)", "data:text/html,x", "http://example.com/x",
                "//example.com/x", "vbscript:x", "java\tscript:alert(1)"):
        with pytest.raises(ParameterError):
            safe_href(bad)


def test_evaluation_report_links_are_relative_even_for_hostile_paths(explanation, tmp_path):
    """A run directory named like a URL scheme: the link is percent-encoded, never a javascript: href."""
    from freqrex.report import write_evaluation_report

    hostile = tmp_path / "javascript:alert(document.domain)"
    explanation.save(hostile)
    (tmp_path / "http:").mkdir()
    (tmp_path / "http:" / "report.html").write_text("<!DOCTYPE html><title>x</title>")
    records = [{"clip": BAD_HTML, "out": hostile.name}, {"clip": "b", "report": "http:/report.html"},
               {"clip": "c", "out": "javascript:alert(2)"}]  # names no file: no link at all
    jsonl = tmp_path / "results.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    index = write_evaluation_report(jsonl, tmp_path / "index.html")
    pages = [index] + sorted((tmp_path / "index_clips").glob("*.html"))
    assert len(pages) == 2
    for page in pages:
        text = page.read_text()
        refs = re.findall(r'(?:href|src)="([^"]*)"', text)
        assert refs
        for ref in refs:
            assert urlsplit(ref).scheme in ("", "file", "data"), ref
            if urlsplit(ref).scheme == "data":
                assert ref.startswith(("data:image/png;base64,", "data:audio/wav;base64,", "data:,"))
        assert BAD_HTML not in text
    text = index.read_text()
    assert 'href="index_clips/clip-0000.html"' in text and 'href="http%3A/report.html"' in text
    with pytest.raises(ParameterError, match="javascript"):
        from freqrex.viz.report import write_explanation_report

        write_explanation_report(explanation, tmp_path / "x.html", index_href="javascript:alert(1)")


def test_markdown_table_is_one_small_function():
    md = markdown_table(["model", "rate"], [["a|b", "58%"], ["c\nd", 1]], align=["left", "right"])
    assert md.splitlines() == ["| model | rate |", "|---|--:|", r"| a\|b | 58% |", "| c d | 1 |"]
    html = markdown_html(md + "\n**bold** and <b>raw</b>\n")
    assert html.count("<tr>") == 3 and "<td>a|b</td>" in html and "58%" in html
    assert "<strong>bold</strong>" in html and "<b>" not in html  # raw HTML is escaped, never passed through
    with pytest.raises(ParameterError):
        markdown_table(["a", "b"], [["only one"]])
    with pytest.raises(ParameterError):
        markdown_table(["a"], [["x"]], align=["middle"])


def test_plot_signature_convention(explanation):
    from matplotlib.figure import Figure

    e = explanation
    for plot in (viz.plot_waveform, viz.plot_responsibility, viz.plot_sets):
        fig = Figure()
        ax = fig.add_subplot()
        assert plot(e, ax=ax) is ax  # ax= in, Axes out
    outer = Figure(figsize=(14, 12), layout="constrained")
    left, right = outer.subfigures(1, 2, width_ratios=[3, 1])
    assert viz.plot_explanation(e, fig=left) is left  # fig= in (a SubFigure too), Figure out
    viz.plot_waveform(e, ax=right.add_subplot())
    _png(outer)
    assert isinstance(viz.plot_explanation(e), Figure)


def test_templates_are_package_data():
    from importlib.resources import files

    templates = files("freqrex.viz") / "templates"
    for name in ("base.html", "macros.html", "explanation.html", "evaluation.html", "style.css"):
        assert (templates / name).is_file(), name


def test_missing_jinja2_is_a_clear_error(explanation, tmp_path, monkeypatch):
    from freqrex.viz import html
    from freqrex.viz.report import write_explanation_report

    monkeypatch.setattr(html, "_ENV", None)
    monkeypatch.setitem(sys.modules, "jinja2", None)
    with pytest.raises(ParameterError, match=r"freqrex\[report\]"):
        write_explanation_report(explanation, tmp_path / "r.html")


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            yield "." * node.level + (node.module or "")
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def test_viz_never_imports_the_evaluation():
    """The report takes the results as an argument: no import of freqrex.evaluation anywhere in viz/."""
    for path in sorted((PACKAGE / "viz").glob("*.py")):
        for name in _imports(path):
            assert "evaluation" not in name.split(".") or name == ".evaluation_report", (path.name, name)
    code = ("import sys, freqrex.viz.report, freqrex.viz.evaluation_report, freqrex.report, freqrex.plots; "
            "print(sorted(m for m in sys.modules if m.startswith('freqrex.evaluation') or m in "
            "('matplotlib', 'jinja2', 'markdown')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_modules_stay_under_600_lines():
    paths = list((PACKAGE / "viz").glob("*.py")) + [PACKAGE / n for n in ("report.py", "plots.py", "progress.py")]
    paths.append(PACKAGE / "cli" / "report.py")
    for path in paths:
        n = len(path.read_text().splitlines())
        assert n < 600, f"{path.name}: {n} lines"


def test_markdown_results_table_in_the_evaluation_report(tmp_path):
    from freqrex.viz.evaluation_report import write_evaluation_report

    md = markdown_table(["model", "1 freq."], [["band", "50%"]], align=["left", "right"])
    index = write_evaluation_report([{"clip": "a", "seconds": 1.0}], tmp_path / "e.html", results_markdown=md)
    text = index.read_text()
    assert "<h2>Results</h2>" in text and "50%" in text


def test_evaluation_report_of_two_models_shows_the_transfer_matrix(tmp_path):
    """freqrex.report reads the transfer records beside the results (``<stem>.transfer.jsonl``)."""
    from freqrex.evaluate import EvalOptions, evaluate_many
    from freqrex.io import save_wav
    from freqrex.report import write_evaluation_report

    save_wav(tmp_path / "clip.wav", make_clip() * 0.5, SR)
    options = EvalOptions(explain_budget=60, explain_iterations=1, flip_budget=4, ks=(1,), stft=False,
                          n_fft=512, hop_length=128)
    out = tmp_path / "results.jsonl"
    evaluate_many([tmp_path / "clip.wav"], {"one": BandClassifier("one"), "and": BandClassifier("and")}, out,
                  options=options)
    text = write_evaluation_report(out, tmp_path / "results.html").read_text()
    assert "<h2>Results</h2>" in text and "Transfer of the sufficient set" in text
    assert "Transfer of the complete set" in text and ">100% / 100% (1)</td>" in text  # a cell per model pair


def test_report_of_a_failed_flip_saved_without_perturbed_audio(tmp_path, capsys):
    """A failed flip saves flip.json and original.wav only: `freqrex report DIR` shows its numbers and the original."""
    from freqrex.cli import main
    from freqrex.io import save_wav

    d = tmp_path / "failed"
    d.mkdir()
    save_wav(d / "original.wav", make_clip(), SR)
    (d / "flip.json").write_text(json.dumps({"success": False, "space": "fft", "original_name": "present",
                                             "original_score": 0.8, "queries": 12, "model": BAD_HTML}))
    assert main(["report", str(d), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    text = Path(out["report"]).read_text()
    assert out["kind"] == "flip"
    assert re.findall(r'<audio id="audio-([a-z_]+)"', text) == ["original"]
    assert 'class="bad">no<' in text and "No flip plot" in text and BAD_HTML not in text


# ------------------------------------------------------------------ a FlipResult in a notebook


def _label(page, text):
    return f">{text}</span>" in page


def _row(page, name):
    return f">{name}</th>" in page


def test_flip_display_shows_its_plot_and_the_rebuilt_original():
    """A FlipResult holds no original: it is rebuilt (perturbed clip minus the change) and drawn."""
    from freqrex.notebook import flip_original

    x = make_clip()
    r = freqrex.flip(x, SR, BandClassifier("one"), budget=40, strategy="magnitude")
    assert r.success and r.space == "fft" and r.change == "subtract"
    original, why = flip_original(r)
    assert why == "" and np.abs(original - x).max() <= 1e-6
    page = r._repr_html_()
    assert "<img" in page and "data:image/png;base64," in page
    assert _label(page, "original") and _label(page, "perturbed") and page.count("data:audio/wav;base64,") == 2
    assert _row(page, "change") and _row(page, "frequencies") and "of 1 bins" in page


@pytest.mark.parametrize("change", ["gain", "phase"])
def test_fixed_changes_are_undone_too(change):
    from freqrex.notebook import flip_original

    x = make_clip()
    r = freqrex.flip(x, SR, BandClassifier("one"), budget=20, strategy="magnitude", change=change)
    original, why = flip_original(r)
    assert why == "" and np.abs(original - x).max() <= 1e-6


def test_failed_flip_display_plays_the_closest_attempt_as_such():
    from freqrex.notebook import flip_original

    x = make_clip()

    def stubborn(waves):
        return np.tile([0.9, 0.1], (len(waves), 1))

    stubborn.class_names = ["a", "b"]
    for strategy in ("random", "additive"):  # an in-phase attempt, and the additive search's seeded tones
        r = freqrex.flip(x, SR, stubborn, budget=6, strategy=strategy)
        assert not r.success and r.bins.size and r.audio.size  # a closest attempt, which changed bins
        assert np.abs(flip_original(r)[0] - x).max() <= 1e-6
        page = r._repr_html_()
        assert "<img" in page
        assert _label(page, "closest attempt (not a flip)") and not _label(page, "perturbed")
        assert _label(page, "original")
        # no change rows for a flip that changed nothing ("add of 0 bins" next to a frequency)
        assert not _row(page, "change") and not _row(page, "frequencies") and "of 0 bins" not in page
        assert _row(page, "closest attempt") and _row(page, "closest margin")


def test_flip_display_says_when_the_original_cannot_be_rebuilt(tmp_path):
    from freqrex.manipulation.result import FlipResult
    from freqrex.notebook import flip_original

    x = make_clip()
    r = freqrex.flip(x, SR, BandClassifier("one"), budget=40, strategy="magnitude", change="remove")
    assert r.success and r.change == "remove"
    assert flip_original(r)[0] is None  # what was removed is gone
    page = r._repr_html_()
    assert "<img" in page and "original clip is not held" in page
    assert _label(page, "perturbed") and not _label(page, "original")
    # held originals are used as they are
    r.original_audio = x
    page = r._repr_html_()
    assert _label(page, "original") and "original clip is not held" not in page
    # a failed flip saved without its closest attempt has no audio: the summary alone
    failed = freqrex.flip(x, SR, lambda w: np.tile([0.9, 0.1], (len(w), 1)), budget=3, strategy="random")
    loaded = FlipResult.load(failed.save(tmp_path / "f"))
    assert loaded.audio.size == 0
    page = loaded._repr_html_()
    assert "<table>" in page and "<img" not in page and "<audio" not in page
