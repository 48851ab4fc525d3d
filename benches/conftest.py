"""Benchmarks: Rust core vs the pure-NumPy reference, in the same process.

Run with ``pytest benches`` (see the README's Performance section). Each
benchmark records its median under a key; the session ends with a table of
the ratios the README quotes. No timing thresholds are asserted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

RESULTS: dict = {}


@pytest.fixture
def record():
    def _record(key: str, benchmark, **extra):
        RESULTS[key] = {"median_s": benchmark.stats.stats.median, **extra}

    return _record


RATIOS = [
    ("synthesis, 30 s fft, batch 32: numpy / rust", "synth_numpy", "synth_rust"),
    ("synthesis, 30 s stft, batch 8: numpy / rust", "stft_numpy", "stft_rust"),
    ("explain, 30 s fft, free model: numpy / rust", "explain_numpy", "explain_rust"),
]


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("freqrex ratios")
    out = {"results": RESULTS, "ratios": {}, "cpus": os.cpu_count()}
    for label, slow, fast in RATIOS:
        if slow in RESULTS and fast in RESULTS:
            ratio = RESULTS[slow]["median_s"] / RESULTS[fast]["median_s"]
            out["ratios"][label] = ratio
            tr.write_line(f"{label:<48} {ratio:6.2f}x")
    for key in ("explain_rust", "explain_numpy"):
        r = RESULTS.get(key)
        if r and "per_query_overhead_s" in r and "bare_irfft_s" in RESULTS:
            rel = r["per_query_overhead_s"] / RESULTS["bare_irfft_s"]["median_s"]
            out["ratios"][f"{key}: per-query time outside the model / one bare irfft"] = rel
            tr.write_line(
                f"{key}: {r['per_query_overhead_s'] * 1e3:.2f} ms per query outside the model = "
                f"{rel:.2f}x one bare numpy irfft of the clip ({RESULTS['bare_irfft_s']['median_s'] * 1e3:.2f} ms)"
            )
    if "frontend" in RESULTS and "model_call" in RESULTS:
        rel = RESULTS["frontend"]["median_s"] / RESULTS["model_call"]["median_s"]
        out["ratios"]["musicnn front end / whole model call"] = rel
        tr.write_line(f"musicnn log-mel front end = {rel:.1%} of the whole model call (batch 8 x 30 s)")
    path = Path(".benchmarks")
    path.mkdir(exist_ok=True)
    (path / "freqrex-ratios.json").write_text(json.dumps(out, indent=2))
