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

``--variants`` instead runs one search per intervention (``--searches``: ``zero``, ``noise`` = removed
bins filled by ``quality.noise_fill``, ``paired`` = both per coalition, ``margin_search(fill=...)``),
caches them (``--cache``) and scores the variant keys of :func:`variant_keys` (``--keys`` picks some):
standard-error shrinkage, noise-fill effects, their sums. ``--start`` picks the first clip.

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


def _z(effects):
    eff = np.asarray(effects, dtype=np.float64)
    sd = float(eff.std()) if eff.size > 1 else 0.0
    return eff / sd if sd > 0 else np.zeros_like(eff)


def _cells(values, leaves, shape):
    """Per-part values spread to every cell of the part (flat; 0 outside the searched region)."""
    from freqrex.margin.tree import leaf_index

    idx = leaf_index([tuple(int(v) for v in leaf) for leaf in leaves], *shape).ravel()
    return np.where(idx >= 0, np.append(np.asarray(values, dtype=np.float64), 0.0)[idx], 0.0)


def shrunk(effects, se, c):
    """Effects shrunk by their standard error: beta * max(0, 1 - (c se / |beta|)^2)."""
    b = np.asarray(effects, dtype=np.float64)
    s = np.asarray(se, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(np.abs(b) > 0, np.clip(1.0 - (c * s / np.abs(b)) ** 2, 0.0, None), 0.0)
    return b * f


PREFIX = {"zero": "", "noise": "n", "paired": "p", "paired:fill": "pn"}


def variant_keys(searches, energy):
    """Ranking keys from the searches of one clip ({"zero": (leaves, effects, se), "noise": ...};
    a paired search adds "paired:fill", its fill channel on the same leaves)."""
    shape = energy.shape
    logE = np.log10(energy.ravel() + 1e-30)
    keys = {"magnitude": logE}
    for name, (leaves, b, se) in searches.items():
        p = PREFIX[name]
        sd = float(np.std(b)) or 1.0
        for w in (0.5, 1.0, 2.0):
            keys[f"{p}blend:{w:g}"] = logE + w * _cells(_z(b), leaves, shape)
        for c in (1.0, 2.0):
            for w in (1.0, 2.0):
                keys[f"{p}shr:{c:g}:{w:g}"] = logE + w * _cells(shrunk(b, se, c) / sd, leaves, shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(se > 0, b / se, 0.0)
        keys[f"{p}t:0.25"] = logE + 0.25 * _cells(t, leaves, shape)
    if "zero" in searches and "noise" in searches:
        (lz, bz, _), (ln, bn, _) = searches["zero"], searches["noise"]
        both = _cells(_z(bz), lz, shape) + _cells(_z(bn), ln, shape)
        keys["both:0.5"] = logE + 0.5 * both
        keys["both:1"] = logE + 1.0 * both
        for a, c in ((1.0, 0.25), (1.0, 0.5), (0.75, 0.5)):
            keys[f"mix:{a:g}:{c:g}"] = logE + a * _cells(_z(bz), lz, shape) + c * _cells(_z(bn), ln, shape)
        _, _, sez = searches["zero"]
        _, _, sen = searches["noise"]
        for c, w in ((1.0, 0.5), (1.0, 1.0), (2.0, 1.0)):
            sh = (_cells(shrunk(bz, sez, c) / (float(np.std(bz)) or 1.0), lz, shape)
                  + _cells(shrunk(bn, sen, c) / (float(np.std(bn)) or 1.0), ln, shape))
            keys[f"bshr:{c:g}:{w:g}"] = logE + w * sh
    if "paired" in searches:
        (lv, bz, _), (_, bn, _) = searches["paired"], searches["paired:fill"]
        both = _cells(_z(bz) + _z(bn), lv, shape)
        for w in (0.0625, 0.125, 0.25, 0.5, 1.0):
            keys[f"pboth:{w:g}"] = logE + w * both
        # contiguous runs: the energy prior smoothed over a fraction of an octave (soct:N = 1/N
        # octave each side; hoct:N = half bin, half smoothed) or +-H bins (slin:H), effects at 0.125
        power = energy.ravel()
        for n in (12, 24, 48):
            smooth = np.log10(_smoothed(power, lambda k: (k / 2 ** (1 / n), k * 2 ** (1 / n))) + 1e-30)
            keys[f"soct:{n}"] = smooth + 0.125 * both
            keys[f"hoct:{n}"] = 0.5 * (smooth + logE) + 0.125 * both
        for h in (15, 60):
            keys[f"slin:{h}"] = np.log10(_smoothed(power, lambda k: (k - h, k + h)) + 1e-30) + 0.125 * both
        for a, c in ((1.0, 0.25), (1.0, 0.5), (0.5, 0.25), (0.5, 0.5), (0.75, 0.5)):
            keys[f"pmix:{a:g}:{c:g}"] = logE + _cells(a * _z(bz) + c * _z(bn), lv, shape)
        (_, _, sz), (_, _, sn) = searches["paired"], searches["paired:fill"]
        for c, w in ((1.0, 0.5), (1.0, 1.0)):
            sh = (shrunk(bz, sz, c) / (float(np.std(bz)) or 1.0) + shrunk(bn, sn, c) / (float(np.std(bn)) or 1.0))
            keys[f"pbshr:{c:g}:{w:g}"] = logE + w * _cells(sh, lv, shape)
    return keys


def _smoothed(power, window):
    """Mean power over ``window(k) -> (lo, hi)`` (bins, clipped, inclusive) around every bin k."""
    k = np.arange(power.size, dtype=np.float64)
    lo, hi = window(k)
    lo = np.clip(np.floor(lo), 0, power.size - 1).astype(int)
    hi = np.clip(np.ceil(hi), 0, power.size - 1).astype(int)
    c = np.concatenate([[0.0], np.cumsum(power)])
    return (c[hi + 1] - c[lo]) / (hi - lo + 1)


class NoiseSpace:
    """A frequency space whose removed bins are filled with :func:`freqrex.quality.noise_fill`
    coefficients (seed 1: not the realisation the curves use) instead of zero (fft space only)."""

    def __init__(self, space, audio):
        from freqrex import quality

        self.shape = tuple(space.shape)
        self.audio = np.asarray(audio, dtype=np.float64)
        self.fill = quality.noise_fill(self.audio, seed=1)

    def synthesize(self, masks):
        from freqrex import quality

        m = np.asarray(masks, dtype=bool).reshape(-1, *self.shape)
        return quality._noise_waves(self.audio, m[:, 0, :], self.fill)


def run_search(audio, sr, model, intervention, nb, res, max_queries, cache):
    """One default explanation with the search's removed bins filled by ``intervention`` ("zero",
    "noise", or "paired": every coalition under both); returns {search: (leaves, effects, se)}, band,
    target of its margin search (cached as npz in ``cache``)."""
    if not (cache and os.path.exists(cache)):
        _search(audio, sr, model, intervention, nb, res, max_queries, cache)
    d = np.load(cache)
    out = {intervention: (d["leaves"], d["effects"], d["se"])}
    if "fill_effects" in d:
        out[intervention + ":fill"] = (d["leaves"], d["fill_effects"], d["fill_se"])
    return out, tuple(int(v) for v in d["band"]), int(d["target"])


def _search(audio, sr, model, intervention, nb, res, max_queries, cache):
    import freqrex
    from freqrex import explainer

    real = explainer.margin_search
    got = []

    def patched(space, evaluate, **kw):
        if intervention == "noise":
            space = NoiseSpace(space, audio)
        if intervention == "paired":
            from freqrex import quality

            kw["fill"] = quality.noise_fill(np.asarray(audio, dtype=np.float64), seed=1)
        found = real(space, evaluate, **kw)
        got.append(found)
        return found

    explainer.margin_search = patched
    try:
        e = freqrex.explain(audio, sr, model, n_bands=nb, resolution=res, max_queries=max_queries, seed=0)
    finally:
        explainer.margin_search = real
    f = got[0]
    extra = {} if f.fill_effects is None else {"fill_effects": f.fill_effects, "fill_se": f.fill_se}
    np.savez(cache, leaves=np.asarray(f.leaves), effects=f.effects, se=f.se, band=np.asarray(e.options["_band"]),
             target=e.target, queries=f.queries, **extra)


def variants(args, names) -> int:
    """--variants: per clip, one search per intervention (zero, noise), then every variant key."""
    from freqrex import quality
    from freqrex.io import load_audio
    from freqrex.models import load_model

    model = load_model(args.model)
    os.makedirs(args.cache, exist_ok=True)
    done = {}
    if os.path.exists(args.out):
        for line in open(args.out):
            r = json.loads(line)
            done[(r["clip"], r["setting"])] = r
    for name in names:
        path = os.path.join(args.corpus, name)
        audio, sr = load_audio(path, sample_rate=model.sample_rate, duration=args.duration)
        energy = np.abs(np.fft.rfft(audio.astype(np.float64)))[None, :] ** 2
        for setting in args.settings.split(","):
            nb, res = (int(v) for v in setting.split("/"))
            tag = f"{args.model}-{os.path.basename(name)}-{nb}-{res}-{args.duration:g}"
            searches, band, target = {}, None, None
            for iv in args.searches.split(","):
                got, band, target = run_search(audio, sr, model, iv, nb, res, args.max_queries,
                                               os.path.join(args.cache, f"{tag}-{iv}.npz"))
                searches.update(got)
            rec = done.get((name, setting)) or {"clip": name, "model": args.model, "setting": setting,
                                                 "duration": args.duration, "target": target, "curves": {}}
            new = False
            wanted = set(args.keys.split(",")) if args.keys else None
            for kname, key in variant_keys(searches, energy).items():
                if f"{kname}|zero" in rec["curves"] or (wanted and kname not in wanted):
                    continue
                r = rank(key, band)
                for op in ("zero", "noise"):
                    c = quality.ranking_curves(audio, sr, model, r, target=target, operator=op)
                    rec["curves"][f"{kname}|{op}"] = [c.deletion_auc, c.insertion_auc]
                new = True
            if new:
                lines = [line for line in open(args.out)] if os.path.exists(args.out) else []
                lines = [l for l in lines if (json.loads(l)["clip"], json.loads(l)["setting"]) != (name, setting)]
                lines.append(json.dumps(rec) + "\n")
                with open(args.out + ".tmp", "w") as fh:
                    fh.writelines(lines)
                os.replace(args.out + ".tmp", args.out)
            done[(name, setting)] = rec
            print(os.path.basename(name), setting, time.strftime("%H:%M:%S"), flush=True)
    return 0


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
            names = list(dict.fromkeys(key for r in rs for key in r["curves"]))
            for key in names:
                k, op = key.split("|")
                if op != "zero":
                    continue
                rk = [r for r in rs if key in r["curves"]]
                if len(rk) < len(rs):
                    k = f"{k} ({len(rk)} clips)"
                cells, wins, rs_all, rs = [], [], rs, rk
                k0 = key.split("|")[0]
                for o in ("zero", "noise"):
                    d = [r["curves"][f"{k0}|{o}"][0] for r in rs]
                    i = [r["curves"][f"{k0}|{o}"][1] for r in rs]
                    cells += [f"{np.median(d):.3f}", f"{np.median(i):.3f}"]
                    wins += [sum(r["curves"][f"{k0}|{o}"][0] < r["curves"][f"magnitude|{o}"][0] for r in rs),
                             sum(r["curves"][f"{k0}|{o}"][1] > r["curves"][f"magnitude|{o}"][1] for r in rs)]
                out.append(f"| {k} | " + " | ".join(cells) + " | " + ", ".join(f"{w}/{len(rs)}" for w in wins) + " |")
                rs = rs_all
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
    ap.add_argument("--start", type=int, default=1, help="first clip of order.txt (1-based)")
    ap.add_argument("--variants", action="store_true",
                    help="score the variant keys (standard-error shrinkage, noise-fill searches, blends)")
    ap.add_argument("--searches", default="zero,noise", help="--variants: the search interventions")
    ap.add_argument("--keys", default="", help="--variants: only these keys (comma-separated)")
    ap.add_argument("--cache", default="/tmp/freqrex-tune-cache", help="--variants: npz of every search")
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
    names = names[args.start - 1: args.start - 1 + args.n]
    if args.variants:
        return variants(args, names)
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
