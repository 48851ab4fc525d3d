#!/usr/bin/env python3
"""Tuning table of the margin estimator: search settings x ranking keys, on real clips.

For every clip and every search setting (``--settings``: n_bands/resolution pairs), one
``freqrex.explain`` at the default 400 queries; then every ranking key computed from that one
search (no more search queries) is scored by deletion and insertion curves under zero masking
and noise fill (``freqrex.quality.ranking_curves``, 14 queries each), beside plain magnitude:

* ``energy``: the part's effect shared by energy (the responsibility map itself);
* ``uniform``: the part's effect per cell, magnitude inside the part;
* ``blend:A``: log-energy of the cell + A x its part's standardised effect (A=0 is magnitude).

One JSON line per (clip, setting) in ``--out``; clips already there are skipped (resumable).

    python scripts/tune_margin.py /tmp/freqrex-corpus --model MSD_musicnn --n 6 --duration 10 \\
        --out docs/results/margin-tuning.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

BLENDS = (0.5, 1.0, 2.0, 4.0)


def keys_from(e, energy):
    """Ranking keys per searched cell (flat), from one explanation's parts and effects."""
    from freqrex.margin.tree import leaf_index

    parts = np.asarray(e.parts)
    leaves, effects = [tuple(int(v) for v in p[:4]) for p in parts], parts[:, 4]
    n_frames, n_bins = energy.shape
    idx = leaf_index(leaves, n_frames, n_bins).ravel()
    eff = np.where(idx >= 0, np.append(effects, 0.0)[idx], 0.0)
    e_flat = energy.ravel()
    sizes = np.bincount(idx[idx >= 0], minlength=len(leaves))
    per = np.where(idx >= 0, eff / np.maximum(sizes[np.maximum(idx, 0)], 1), 0.0)
    logE = np.log10(e_flat + 1e-30)
    sd = float(np.std(effects)) or 1.0
    keys = {"energy": np.asarray(e.responsibility).ravel(), "uniform": per + 1e-18 * e_flat}
    for a in BLENDS:
        keys[f"blend:{a:g}"] = logE + a * eff / sd
    keys["magnitude"] = logE
    return keys


def rank(key, band):
    b0, b1 = band
    cells = np.arange(b0, b1)
    return cells[np.lexsort((cells, -key[b0:b1]))]


def table(paths) -> str:
    """Markdown: per model and setting, the median AUCs of every ranking key and operator, and
    on how many clips each key beats magnitude (deletion lower, insertion higher)."""
    rows = [json.loads(line) for p in paths if os.path.exists(p) for line in open(p) if line.strip()]
    out = []
    for model in sorted({r["model"] for r in rows}):
        for setting in sorted({r["setting"] for r in rows if r["model"] == model}):
            rs = [r for r in rows if r["model"] == model and r["setting"] == setting]
            durations = ", ".join(sorted({"%g s" % r["duration"] for r in rs}))
            out += [f"**{model}, n_bands/resolution {setting}** ({len(rs)} clips, {durations})", "",
                    "| key | zero: deletion | insertion | noise: deletion | insertion | beats magnitude (z del/ins, n del/ins) |",
                    "|---|---:|---:|---:|---:|---|"]
            for key in rs[0]["curves"]:
                k, op = key.split("|")
                if op != "zero":
                    continue
                cells, wins = [], []
                for o in ("zero", "noise"):
                    d = [r["curves"][f"{k}|{o}"][0] for r in rs]
                    i = [r["curves"][f"{k}|{o}"][1] for r in rs]
                    cells += [f"{np.median(d):.3f}", f"{np.median(i):.3f}"]
                    wins += [sum(r["curves"][f"{k}|{o}"][0] < r["curves"][f"magnitude|{o}"][0] for r in rs),
                             sum(r["curves"][f"{k}|{o}"][1] > r["curves"][f"magnitude|{o}"][1] for r in rs)]
                out.append(f"| {k} | " + " | ".join(cells) + " | " + ", ".join(f"{w}/{len(rs)}" for w in wins) + " |")
            out.append("")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", help="a folder of clips (order.txt gives the order when present)")
    ap.add_argument("--model", default="MSD_musicnn")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--settings", default="16/96", help="comma-separated n_bands/resolution pairs")
    ap.add_argument("--max-queries", type=int, default=400)
    ap.add_argument("--out", default="docs/results/margin-tuning.jsonl")
    ap.add_argument("--table", nargs="*", help="print the markdown table of these records files and stop")
    args = ap.parse_args(argv)
    if args.table is not None:
        print(table(args.table or [args.out]))
        return 0

    import freqrex
    from freqrex import quality
    from freqrex.io import load_audio
    from freqrex.models import load_model

    order = os.path.join(args.corpus, "order.txt")
    names = open(order).read().split() if os.path.exists(order) else sorted(
        f for f in os.listdir(args.corpus) if f.endswith((".wav", ".flac")))
    names = names[: args.n]
    model = load_model(args.model)
    done = set()
    if os.path.exists(args.out):
        for line in open(args.out):
            r = json.loads(line)
            done.add((r["clip"], r["model"], r["setting"], r["duration"]))
    for name in names:
        path = os.path.join(args.corpus, name)
        audio, sr = load_audio(path, sample_rate=model.sample_rate, duration=args.duration)
        energy = np.abs(np.fft.rfft(audio.astype(np.float64)))[None, :] ** 2
        for setting in args.settings.split(","):
            nb, res = (int(v) for v in setting.split("/"))
            if (name, args.model, setting, args.duration) in done:
                continue
            t = time.perf_counter()
            e = freqrex.explain(audio, sr, model, n_bands=nb, resolution=res, max_queries=args.max_queries,
                                seed=0)
            secs = time.perf_counter() - t
            rec = {"clip": name, "model": args.model, "setting": setting, "duration": args.duration,
                   "target": e.target, "target_name": e.target_name, "queries": e.queries, "seconds": secs,
                   "leaves": e.stats.get("leaves"), "warnings": e.warnings, "curves": {}}
            for kname, key in keys_from(e, energy).items():
                r = rank(key, e.options["_band"])
                for op in ("zero", "noise"):
                    c = quality.ranking_curves(audio, sr, model, r, target=e.target, operator=op)
                    rec["curves"][f"{kname}|{op}"] = [c.deletion_auc, c.insertion_auc]
            with open(args.out, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            best = {k: v for k, v in rec["curves"].items()}
            print(name, setting, f"{secs:.0f}s", " ".join(f"{k}={v[0]:.3f}/{v[1]:.3f}" for k, v in best.items()),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
