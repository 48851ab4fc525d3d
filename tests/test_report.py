"""HTML reports: structure, loading saved runs, the CLI, and a real headless browser.

The browser tests drive Debian's chromium over the DevTools protocol on a pipe
(``--remote-debugging-pipe``: no extra Python package, no network port). They
fail with a clear message when chromium is missing, unless FREQREX_NO_BROWSER=1.
Screenshots go to ``test-artifacts/`` at the repository root.

Run as a script to screenshot any HTML file::

    python tests/test_report.py report.html docs/report.png [width]
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
INSTALL_HINT = "apt-get update && apt-get install -y --no-install-recommends chromium"


# =========================================================================== browser
def find_chromium():
    exe = os.environ.get("FREQREX_CHROMIUM")
    if exe:
        return exe if shutil.which(exe) else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """A headless chromium driven over the DevTools protocol on a pipe (fds 3 and 4)."""

    def __init__(self, exe, width=1280, height=900, timeout=60.0):
        self.timeout = timeout
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="freqrex-chromium-")
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()

        def child_fds():  # the protocol: chromium reads fd 3 and writes fd 4
            a, b = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [
            exe,
            "--headless",
            "--no-sandbox",  # CI containers run as root
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-features=Translate,MediaRouter,OptimizationHints",
            "--mute-audio",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            f"--user-data-dir={self.profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.stderr,
                                     preexec_fn=child_fds, close_fds=False)
        os.close(to_child_r)
        os.close(from_child_w)
        self.out = os.fdopen(to_child_w, "wb", buffering=0)
        self.inp = os.fdopen(from_child_r, "rb", buffering=0)
        self.next_id = 0
        self.replies = {}
        self.events = queue.Queue()
        self.lock = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = self.inp.read(65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self.lock:
                    self.replies[None] = "closed"
                    self.lock.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg:
                    with self.lock:
                        self.replies[msg["id"]] = msg
                        self.lock.notify_all()
                else:
                    self.events.put(msg)

    def send(self, method, params=None, session=None):
        self.next_id += 1
        mid = self.next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.out.write(json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        with self.lock:
            while mid not in self.replies:
                if None in self.replies:
                    raise RuntimeError(f"chromium exited during {method}: {self.stderr_text()[-2000:]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"chromium did not answer {method} in {self.timeout} s")
                self.lock.wait(left)
            reply = self.replies.pop(mid)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def call(self, method, params=None):
        return self.send(method, params, self.session)

    def drain(self):
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def wait_event(self, method, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                for m in seen:
                    self.events.put(m)
                raise TimeoutError(f"no {method} event")
            try:
                msg = self.events.get(timeout=left)
            except queue.Empty:
                continue
            seen.append(msg)
            if msg.get("method") == method and msg.get("sessionId") == self.session:
                for m in seen:
                    self.events.put(m)
                return msg

    def open(self, path):
        """Load a local file; returns (problems, network urls) seen while loading."""
        self.drain()
        url = Path(path).resolve().as_uri()
        result = self.call("Page.navigate", {"url": url})
        if result.get("errorText"):
            raise RuntimeError(f"navigation to {url} failed: {result['errorText']}")
        self.wait_event("Page.loadEventFired")
        return url

    def evaluate(self, expression):
        r = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"page script failed: {r['exceptionDetails']}")
        return r["result"].get("value")

    def screenshot(self, path, max_height=20000):
        metrics = self.call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        height = int(min(max_height, max(1, round(size["height"]))))
        shot = self.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1},
        })
        import base64

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(base64.b64decode(shot["data"]))
        return Path(path)

    def stderr_text(self):
        try:
            self.stderr.seek(0)
            return self.stderr.read().decode(errors="replace")
        except Exception:
            return ""

    def close(self):
        try:
            self.send("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for f in (self.out, self.inp):
            try:
                f.close()
            except OSError:
                pass
        self.stderr.close()
        shutil.rmtree(self.profile, ignore_errors=True)


PAGE_CHECK = r"""
(async () => {
  const withTimeout = (p, ms) => Promise.race([p, new Promise(r => setTimeout(r, ms))]);
  const audios = [...document.querySelectorAll('audio')];
  await withTimeout(Promise.all(audios.map(a => (a.readyState >= 1 || a.error || a.networkState === 3) ? null : new Promise(res => {
    a.addEventListener('loadedmetadata', res, {once: true});
    a.addEventListener('error', res, {once: true});
    if (a.networkState === 0) a.load();
  }))), 20000);
  const imgs = [...document.images];
  await withTimeout(Promise.all(imgs.map(i => i.decode().catch(() => null))), 20000);
  return {
    title: document.title,
    audio: audios.map(a => ({id: a.id, duration: a.duration, error: a.error ? a.error.code : null,
                              readyState: a.readyState})),
    images: imgs.map(i => ({id: i.id, alt: i.alt, naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight,
                            shownWidth: i.getBoundingClientRect().width})),
    links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
    externalRefs: [...document.querySelectorAll('[src],[href]')]
      .map(el => el.getAttribute('src') || el.getAttribute('href'))
      .filter(u => /^(https?:)?\/\//i.test(u)),
    height: document.documentElement.scrollHeight,
  };
})()
"""


def problems_in(events, session):
    """Console errors, uncaught exceptions, failed loads and non-local requests in DevTools events."""
    problems, requests = [], []
    for ev in events:
        if ev.get("sessionId") != session:
            continue
        m, p = ev.get("method"), ev.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            problems.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description", "")))
                                                                    for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            problems.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:500])
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            problems.append("log error: " + p["entry"].get("text", "") + " " + p["entry"].get("url", ""))
        elif m == "Network.loadingFailed":
            problems.append("failed load: " + p.get("errorText", ""))
        elif m == "Network.requestWillBeSent":
            requests.append(p.get("request", {}).get("url", ""))
    external = [u for u in requests if not re.match(r"^(data|file|about|blob):", u)]
    return problems, external


def check_page(browser, path, shot=None):
    """Load a page and assert what the issue asks; returns the page facts."""
    browser.open(path)
    facts = browser.evaluate(PAGE_CHECK)
    time.sleep(0.2)  # let late console messages arrive
    problems, external = problems_in(browser.drain(), browser.session)
    assert not problems, f"{path}: the page reported errors: {problems}"
    assert not external, f"{path}: the page fetched non-local URLs: {external}"
    assert not facts["externalRefs"], f"{path}: external references: {facts['externalRefs']}"
    for a in facts["audio"]:
        assert a["error"] is None, f"{path}: audio {a['id']} failed to load (MediaError code {a['error']})"
        assert a["duration"] and a["duration"] > 0, f"{path}: audio {a['id']} has no positive duration: {a}"
    for i in facts["images"]:
        assert i["naturalWidth"] > 0 and i["naturalHeight"] > 0, f"{path}: image {i['id']} did not render: {i}"
        assert i["shownWidth"] > 0, f"{path}: image {i['id']} is not shown: {i}"
    if shot is not None:
        out = browser.screenshot(shot)
        assert out.stat().st_size > 10_000
    return facts


@pytest.fixture(scope="module")
def browser():
    exe = find_chromium()
    if exe is None:
        if os.environ.get("FREQREX_NO_BROWSER") == "1":
            pytest.skip("FREQREX_NO_BROWSER=1: browser checks of the HTML report skipped on purpose")
        pytest.fail(
            "chromium is needed to test the HTML report in a real browser but was not found "
            f"(looked for {', '.join(CHROMIUM_NAMES)} on PATH and $FREQREX_CHROMIUM). Install it with "
            f"`{INSTALL_HINT}`, or set FREQREX_NO_BROWSER=1 to skip these checks.",
            pytrace=False,
        )
    b = Browser(exe)
    try:
        yield b
    finally:
        b.close()


# =========================================================================== fixtures
@pytest.fixture(scope="module")
def synth():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import freqrex
    from freqrex.psychoacoustic import perturbation_margin_db
    from freqrex.reference import FrequencySpace
    from synthetic import SR, BandClassifier, make_clip

    x = make_clip()
    model = BandClassifier("one")
    e_fft = freqrex.explain(x, SR, model, budget=300, iterations=2)
    e_stft = freqrex.explain(x, SR, model, space="stft", n_fft=512, hop_length=128, budget=300, iterations=2)
    # A real one-bin flip: the 1000 Hz tone is exactly bin 1000 of this 1 s clip.
    spec = np.fft.rfft(x.astype(np.float64))
    spec[1000] = 0
    y = np.fft.irfft(spec, n=x.size).astype(np.float32)
    p = model(y[None])[0]
    # Duck-typed like freqrex.flip.FlipResult: `audio` is the perturbed clip.
    flip_fft = SimpleNamespace(
        success=bool(np.argmax(p) != e_fft.target), original_class=e_fft.target, new_class=int(np.argmax(p)),
        original_name="present", new_name="absent", original_score=e_fft.score, new_score=float(p.max()),
        bins=np.array([1000]), frequencies_hz=np.array([1000.0]), frames=None, times_s=None,
        audio=y, sample_rate=SR, snr_db=12.3, queries=7, space="fft", strategy="causal", change="remove", k=1,
    )
    # An STFT change: six cells of the 1000 Hz bin removed.
    space = FrequencySpace(x.astype(np.float64), space="stft", n_fft=512, hop_length=128)
    keep = np.ones(space.shape, dtype=bool)
    keep[20:26, 64] = False
    y2 = space.synthesize(keep[None])[0]
    margin, inaudible = perturbation_margin_db(x, y2, SR, n_fft=512, hop_length=128)
    p2 = model(y2[None])[0]
    flip_stft = SimpleNamespace(
        success=bool(np.argmax(p2) != e_stft.target), original_class=e_stft.target, new_class=int(np.argmax(p2)),
        original_score=e_stft.score, new_score=float(p2.max()), bins=np.full(6, 64), frames=np.arange(20, 26),
        times_s=np.arange(20, 26) * 128 / SR, frequencies_hz=np.full(6, 1000.0), audio=y2, sample_rate=SR,
        snr_db=25.0, queries=31, space="stft", inaudible=inaudible, margin_db=float(np.min(margin)),
    )
    absent = dataclasses.replace(
        e_fft, sufficient=None, sufficient_necessary=None, complete=None,
        reasons={n: "the budget ran out before a passing mutant" for n in ("sufficient", "sufficient_necessary", "complete")},
    )
    return SimpleNamespace(x=x, sr=SR, model=model, fft=e_fft, stft=e_stft, flip_fft=flip_fft, flip_stft=flip_stft,
                           absent=absent)


@pytest.fixture(scope="module")
def reports(synth, tmp_path_factory):
    from freqrex.report import write_evaluation_report, write_explanation_report

    d = tmp_path_factory.mktemp("reports")
    out = SimpleNamespace(dir=d)
    out.fft = write_explanation_report(synth.fft, d / "fft.html", model_name="BandClassifier", source="clip.wav",
                                       flip=synth.flip_fft)
    out.stft = write_explanation_report(synth.stft, d / "stft.html", model_name="BandClassifier", source="clip.wav",
                                        flip=synth.flip_stft)
    out.absent = write_explanation_report(synth.absent, d / "absent.html")
    # An evaluation: two saved explanations and a JSONL that points at them.
    runs = d / "runs"
    synth.fft.save(runs / "a")
    synth.stft.save(runs / "b")
    lines = [
        {"clip": "a.wav", "out": str(runs / "a"), "seconds": 1.5, "sets": {"sufficient": 40},
         "flips": {"k1": {"success": True, "snr_db": 12.0}}},
        {"clip": "b.wav", "out": "runs/b", "seconds": 2.5, "sets": {"sufficient": 1300},
         "flips": {"k1": {"success": False, "snr_db": 30.0}}},
        {"clip": "c.wav", "seconds": 0.5, "sets": {"sufficient": None}, "flips": {"k1": {"success": True, "snr_db": None}}},
        {"type": "summary", "clips": 3, "flip_rate_k1": 0.667, "paper_k1": 0.58},
    ]
    jsonl = d / "results.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in lines) + "\n{not json\n")
    out.jsonl = jsonl
    out.evaluation = write_evaluation_report(jsonl, d / "evaluation.html")
    return out


# =========================================================================== structure
def _html(path):
    return Path(path).read_text(encoding="utf-8")


def test_explanation_report_is_self_contained(reports, synth):
    text = _html(reports.fft)
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "no external fetches"
    assert "@import" not in text and "url(http" not in text
    # Players: original, the three sets, and the flip.
    ids = re.findall(r'<audio id="audio-([a-z_]+)"', text)
    assert ids == ["original", "sufficient", "sufficient_necessary", "complete", "flipped"]
    assert text.count('src="data:audio/wav;base64,') == 5
    assert text.count('src="data:image/png;base64,') == 2  # figure 1 and the flip
    # The sets as Hz tables; the run's facts.
    for band in synth.fft.bands("sufficient")[:3]:
        assert f"{band[0]:,.0f}" in text
    assert "BandClassifier" in text and "clip.wav" in text
    assert f"{synth.fft.queries:,}" in text
    assert ">seed<" in text and ">budget<" in text
    # Written atomically: no temporary file left behind.
    assert not [p for p in reports.dir.iterdir() if p.name.endswith(".tmp")]


def test_report_of_absent_sets(reports):
    text = _html(reports.absent)
    assert text.count("<audio ") == 1  # the original only
    assert text.count("absent: the budget ran out") >= 3
    assert 'src="data:image/png;base64,' in text


def test_stft_report_lists_time_spans(reports, synth):
    text = _html(reports.stft)
    assert "frames)" in text  # the time column of the band tables
    assert "masking threshold" in text


def test_flip_only_report(synth, tmp_path):
    from freqrex.report import write_flip_report

    path = write_flip_report(synth.flip_fft, tmp_path / "flip.html", audio=synth.x, model_name="m")
    text = _html(path)
    assert re.findall(r'<audio id="audio-([a-z_]+)"', text) == ["original", "flipped"]
    assert 'id="img-flip"' in text and "1,000" in text
    # Without the original clip: the perturbed clip's player, and a note instead of the plot.
    text = _html(write_flip_report(synth.flip_fft, tmp_path / "bare.html"))
    assert re.findall(r'<audio id="audio-([a-z_]+)"', text) == ["flipped"]
    assert "No flip plot" in text and "pass audio=" in text


def test_report_of_a_real_flip(synth, tmp_path, capsys):
    """freqrex.flip on the synthetic model, saved as `freqrex flip --out` saves it, rendered by the CLI."""
    from freqrex.cli import main
    from freqrex.manipulation import flip
    from freqrex.io import save_wav
    from freqrex.report import write_explanation_report

    for space, extra in (("fft", {}), ("stft", {"n_fft": 512, "hop_length": 128})):
        e = synth.fft if space == "fft" else synth.stft
        r = flip(synth.x, synth.sr, synth.model, k=2, space=space, explanation=e, budget=24, **extra)
        text = _html(write_explanation_report(e, tmp_path / f"{space}.html", flip=r))
        assert 'id="img-flip"' in text and 'id="audio-flipped"' in text
        d = tmp_path / f"flip-{space}"
        d.mkdir()
        save_wav(d / "original.wav", synth.x, synth.sr)
        save_wav(d / "perturbed.wav", r.audio, synth.sr)
        summary = r.summary()
        summary.update(audio="clip.wav", model="BandClassifier")
        (d / "flip.json").write_text(json.dumps(summary))
        assert main(["report", str(d), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["kind"] == "flip"
        page = _html(out["report"])
        assert re.findall(r'<audio id="audio-([a-z_]+)"', page) == ["original", "flipped"]
        assert 'id="img-flip"' in page and "BandClassifier" in page and "clip.wav" in page


def test_report_replaces_atomically(synth, tmp_path, monkeypatch):
    import freqrex.report as report

    path = tmp_path / "r.html"
    path.write_text("old")

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report.os, "replace", boom)
    with pytest.raises(RuntimeError):
        report.write_explanation_report(synth.fft, path)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_load_saved_explanation_round_trip(synth, tmp_path):
    from freqrex.report import load_explanation_dir, write_explanation_report

    for e in (synth.fft, synth.stft):
        d = e.save(tmp_path / e.space)
        back = load_explanation_dir(d)
        assert back.space == e.space and back.target == e.target and back.seed == e.seed
        np.testing.assert_array_equal(back.responsibility, e.responsibility)
        for name in ("sufficient", "sufficient_necessary", "complete"):
            np.testing.assert_array_equal(back.get_set(name), e.get_set(name))
            assert back.bands(name) == e.bands(name)
            assert back.audio(name).shape == e.audio(name).shape
        assert back.summary()["sets"] == e.summary()["sets"]
        text = _html(write_explanation_report(back, d / "report.html"))
        assert text.count("<audio ") == 4


def test_load_rejects_other_directories(tmp_path):
    from freqrex import ParameterError
    from freqrex.report import load_explanation_dir

    with pytest.raises(ParameterError, match="summary.json"):
        load_explanation_dir(tmp_path)


def test_evaluation_report(reports):
    text = _html(reports.evaluation)
    assert "3 clips" in text and "1 line could not be read" in text
    assert "flips.k1.success" in text and "66.7% true" in text
    assert "paper_k1" in text  # the summary record
    pages = sorted((reports.dir / "evaluation_clips").glob("*.html"))
    assert [p.name for p in pages] == ["clip-0000.html", "clip-0001.html"]
    assert 'href="evaluation_clips/clip-0000.html"' in text
    page = _html(pages[0])
    assert 'href="../evaluation.html"' in page
    # The synthetic clip peaks at 1.45: its saved WAV files hold it unclipped (float), and the page plays
    # every set scaled by one gain so that none clips, embedded (a linked file would play clipped)
    assert "data:audio/wav" in page and "scaled by -3.2 dB" in page and "runs/a/original.wav" not in page
    assert 'data:image/png;base64,' in page


def test_evaluation_pages_link_the_wav_files_of_a_clip_within_full_scale(synth, tmp_path):
    """Clip pages link the runs' WAV files (small pages) unless asked to embed them."""
    import freqrex
    from freqrex.report import write_evaluation_report
    from synthetic import SR, BandClassifier, make_clip

    x = make_clip() / np.float32(2 * np.max(np.abs(make_clip())))
    freqrex.explain(x, SR, BandClassifier("one"), budget=60, iterations=1).save(tmp_path / "runs" / "a")
    jsonl = tmp_path / "results.jsonl"
    jsonl.write_text(json.dumps({"clip": "a.wav", "out": "runs/a", "seconds": 1.0}) + "\n")
    write_evaluation_report(jsonl, tmp_path / "evaluation.html")
    page = _html(tmp_path / "evaluation_clips" / "clip-0000.html")
    assert 'src="../runs/a/original.wav"' in page and "data:audio/wav" not in page


def test_evaluation_pages_can_embed_audio(reports, tmp_path):
    from freqrex.report import write_evaluation_report

    index = write_evaluation_report(reports.jsonl, tmp_path / "e.html", embed_audio=True)
    page = _html(tmp_path / "e_clips" / "clip-0001.html")
    assert page.count('src="data:audio/wav;base64,') == 4
    assert "e_clips/clip-0001.html" in _html(index)


@pytest.fixture(scope="module")
def real_evaluation(synth, tmp_path_factory):
    """A tiny run of freqrex.evaluate (two clips, the synthetic model) and its report."""
    from freqrex.evaluate import EvalOptions, evaluate_many
    from freqrex.io import save_wav
    from freqrex.report import write_evaluation_report
    from synthetic import make_clip

    d = tmp_path_factory.mktemp("evaluation")
    files = []
    for i in range(2):
        save_wav(d / f"clip{i}.wav", make_clip(seed=i) * 0.5, synth.sr)
        files.append(d / f"clip{i}.wav")
    options = EvalOptions(explain_budget=80, explain_iterations=2, flip_budget=8, ks=(1, 2), stft_explain_budget=40,
                          stft_explain_iterations=1, stft_flip_budget=8, n_fft=512, hop_length=128)
    evaluate_many(files, {"band": synth.model}, d / "results.jsonl", options=options)
    return write_evaluation_report(d / "results.jsonl", d / "results.html")


def test_report_of_a_real_evaluation(real_evaluation):
    text = _html(real_evaluation)
    assert "<h2>Results</h2>" in text and "58%" in text  # the paper's number beside ours
    assert "causal: smallest k flipped" in text and "random: STFT" in text
    assert text.count("<td>clip0</td>") == 1 and "every field of every record" in text


def test_cli_report(synth, tmp_path, capsys):
    from freqrex.cli import main

    d = synth.fft.save(tmp_path / "run")
    assert main(["report", str(d), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "explanation" and Path(out["report"]) == d / "report.html"
    assert (d / "report.html").is_file()
    jsonl = tmp_path / "results.jsonl"
    jsonl.write_text(json.dumps({"clip": "x.wav", "out": str(d)}) + "\n")
    assert main(["report", str(jsonl), "--out", str(tmp_path / "eval.html")]) == 0
    assert "wrote" in capsys.readouterr().out
    assert (tmp_path / "eval.html").is_file()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "freqrex: error:" in capsys.readouterr().err


def test_cli_report_refuses_a_save_altered_since(synth, tmp_path, capsys):
    """``freqrex report`` reads a run as Explanation.load does: checked against its manifest."""
    from freqrex.cli import main

    d = synth.fft.save(tmp_path / "run")
    summary = d / "summary.json"
    summary.write_text(summary.read_text().replace('"score"', '"score" ', 1))
    assert main(["report", str(d)]) == 3
    err = capsys.readouterr().err
    assert "changed since it was saved" in err and "Traceback" not in err
    assert not (d / "report.html").exists()


# =========================================================================== browser
def test_reports_in_headless_chromium(browser, reports):
    for name in ("fft", "stft", "absent"):
        facts = check_page(browser, getattr(reports, name), ARTIFACTS / f"report-{name}.png")
        assert facts["title"].startswith("freqrex")
        expected_audio = 1 if name == "absent" else 5
        assert len(facts["audio"]) == expected_audio
        assert all(abs(a["duration"] - 1.0) < 0.01 for a in facts["audio"])  # 1 s clips
        assert len(facts["images"]) == (1 if name == "absent" else 2)


def test_evaluation_report_in_headless_chromium(browser, reports):
    facts = check_page(browser, reports.evaluation, ARTIFACTS / "report-evaluation.png")
    pages = [h for h in facts["links"] if h.startswith("evaluation_clips/")]
    assert len(pages) == 2
    clip = check_page(browser, reports.dir / pages[0])
    assert len(clip["audio"]) == 4 and len(clip["images"]) == 1


def test_real_evaluation_report_in_headless_chromium(browser, real_evaluation):
    facts = check_page(browser, real_evaluation, ARTIFACTS / "report-evaluation-flips.png")
    assert facts["audio"] == [] and facts["images"] == []


def test_browser_checks_catch_broken_pages(browser, tmp_path):
    """A negative control: the checks above do fail on a console error, a broken image or bad audio."""
    cases = {
        "console": "<script>console.error('boom')</script>",
        "exception": "<script>undefined_function()</script>",
        "image": '<img id="x" src="data:image/png;base64,AAAA">',
        "audio": '<audio id="y" preload="metadata" src="data:audio/wav;base64,AAAA"></audio>',
    }
    for name, body in cases.items():
        page = tmp_path / f"{name}.html"
        page.write_text(f"<!DOCTYPE html><html><head><link rel='icon' href='data:,'></head><body>{body}</body></html>")
        with pytest.raises(AssertionError):
            check_page(browser, page)


# =========================================================================== script
if __name__ == "__main__":  # python tests/test_report.py page.html shot.png [width]
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    exe = find_chromium()
    if exe is None:
        sys.exit(f"chromium not found; {INSTALL_HINT}")
    b = Browser(exe, width=int(sys.argv[3]) if len(sys.argv) > 3 else 1280)
    try:
        facts = check_page(b, sys.argv[1], sys.argv[2])
        print(json.dumps({k: facts[k] for k in ("title", "audio", "images", "height")}, indent=1))
    finally:
        b.close()
