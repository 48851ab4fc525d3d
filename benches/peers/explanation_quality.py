"""Is the responsibility ranking more faithful than the baselines? Equal total queries, two operators.

For each clip and model, ``freqrex.explain`` with its defaults (``rule="margin"``, at most 400
queries in all); its total ``queries`` is what every other method gets:

* ``freqrex_effects``: the same explanation ranked by its responsibility map alone (each part's
  effect shared by energy), not by the default key (energy reordered by the effects);
* ``rex``: the paper's pass/fail rule (``rule="rex"``) at the same ``max_queries``;
* ``shap_bands``: Kernel SHAP over 32 log bands (benches/peers/shap_bands.py), bins inside a band
  by magnitude (the same tie-break freqrex uses, so the comparison is about the band values);
* ``freqrise``: FreqRISE (benches/peers/freqrise.py);
* ``occlusion``: one query per log band removing it (``queries - 1`` bands), bands by score drop,
  bins inside by magnitude;
* ``magnitude``: bins by |X| (free); ``random`` (free).

Every ranking is scored by deletion and insertion curves (``freqrex.quality.ranking_curves``,
freqrex's target class, 14 queries each, not counted in the method's cost) under two operators:
``zero`` (removed bins zeroed, the explanation's own masking) and ``noise`` (removed bins replaced by
random-phase coefficients at the clip's local level: the energy stays, the content goes). One JSON
line per (clip, model) in ``--out``, resumable; ``--summary`` writes the markdown table.

    python benches/peers/explanation_quality.py --clips-from /tmp/freqrex-corpus/order.txt --n 16 \\
        --model MSD_musicnn --out docs/results/explanation-quality.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Dict, List, Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import freqrise  # noqa: E402
import shap_bands  # noqa: E402
from compare_explanations import Counting, load_records, write_records  # noqa: E402

METHODS = ("freqrex", "freqrex_effects", "rex", "shap_bands", "freqrise", "occlusion", "magnitude", "random")
OPERATORS = ("zero", "noise")


def _by_band_then_magnitude(values_per_bin: np.ndarray, mag: np.ndarray) -> np.ndarray:
    idx = np.arange(values_per_bin.size)
    return np.lexsort((idx, -mag, -values_per_bin)).astype(np.int64)


def occlusion_ranking(audio, model, queries: int, target: int):
    """Remove each of ``queries - 1`` log bands alone (plus the original, known): bands by drop."""
    x = np.asarray(audio, dtype=np.float32)
    X = np.fft.rfft(x.astype(np.float64))
    n_bands = max(2, queries - 1)
    edges = shap_bands.band_edges(X.size, n_bands, first_bin=1)
    m = len(edges) - 1
    spent = 0
    base = float(np.asarray(model(x[None]), dtype=np.float64)[0, target])
    spent += 1
    drops = np.zeros(m)
    for start in range(0, m, 16):
        waves = []
        for b in range(start, min(m, start + 16)):
            Y = X.copy()
            Y[edges[b]:edges[b + 1]] = 0
            waves.append(np.fft.irfft(Y, n=x.size).astype(np.float32))
        s = np.asarray(model(np.stack(waves)), dtype=np.float64)[:, target]
        drops[start:start + len(waves)] = base - s
        spent += len(waves)
    per_bin = np.repeat(drops, np.diff(edges))
    return _by_band_then_magnitude(per_bin, np.abs(X)), spent


def run_clip(path: str, model, model_name: str, methods, seed: int, duration: float,
             reuse: Optional[dict] = None) -> dict:
    """One clip's record. ``reuse``: an earlier record of the same clip and model whose peers (every
    method but freqrex's own two) are copied instead of recomputed, when they had at least freqrex's
    new total of queries (freqrex's ``max_queries`` is capped at theirs, so the comparison can only
    favour the peers)."""
    import freqrex
    from freqrex import quality
    from freqrex.io import load_audio

    sr = int(model.sample_rate)
    audio, sr = load_audio(path, sample_rate=sr, duration=duration)
    X = np.abs(np.fft.rfft(audio.astype(np.float64)))
    n_bins = X.size
    rec: Dict = {"clip": os.path.abspath(path), "name": os.path.basename(path), "model": model_name,
                 "seed": seed, "n_bins": n_bins, "seconds_audio": audio.size / sr, "duration": duration,
                 "methods": {}}
    counted = Counting(model)
    t = time.perf_counter()
    # with reused peers, freqrex may spend at most what they had (a handicap for freqrex only)
    cap = {} if reuse is None else {"max_queries": min(int(reuse["queries"]), 400)}
    e = freqrex.explain(audio, sr, counted, seed=seed, **cap)
    secs = time.perf_counter() - t
    q = int(e.queries)
    assert counted.rows == q, (counted.rows, q)
    names = getattr(model, "class_names", None)
    rec.update(target=int(e.target), target_name=e.target_name or str(e.target), score=float(e.score),
               queries=q, margin=e.margin, warnings=list(e.warnings))
    share = e.share("sufficient")
    info = {"freqrex": {"queries": q, "seconds": secs, "search_queries": e.search_queries,
                        "extraction_queries": e.extraction_queries,
                        "sufficient_bins": None if share is None else share["bins"],
                        "sufficient_energy": None if share is None else share.get("energy"),
                        "sufficient_margin": e.set_margins.get("sufficient", {}).get("kept_margin"),
                        "sn_bins": None if e.share("sufficient_necessary") is None
                        else e.share("sufficient_necessary")["bins"],
                        "leaves": e.stats.get("leaves")}}
    rankings = {"freqrex": np.asarray(e.ranking, dtype=np.int64)}
    if "freqrex_effects" in methods:  # the same explanation ranked by its responsibility map alone
        b0, b1 = e.options["_band"]
        cells = np.arange(b0, b1)
        r = np.asarray(e.responsibility)[b0:b1]
        rankings["freqrex_effects"] = cells[np.lexsort((cells, -X[b0:b1], -r))].astype(np.int64)
        info["freqrex_effects"] = {"queries": q, "seconds": 0.0}
    if reuse is not None and int(reuse["queries"]) < q:
        reuse = None
    if reuse is not None:
        rec["peers_from"] = {"queries": int(reuse["queries"]), "options": reuse.get("options")}
    for name in methods:
        if name in ("freqrex", "freqrex_effects"):
            continue
        if reuse is not None and name in reuse["methods"]:
            rec["methods"][name] = dict(reuse["methods"][name])
            continue
        counted = Counting(model)
        t = time.perf_counter()
        extra = {}
        if name == "rex":
            er = freqrex.explain(audio, sr, counted, seed=seed, rule="rex", max_queries=q)
            r, spent = np.asarray(er.ranking, dtype=np.int64), er.queries
            sh = er.share("sufficient")
            extra = {"sufficient_bins": None if sh is None else sh["bins"]}
        elif name == "shap_bands":
            sal, inf = shap_bands.shap_band_saliency(audio, sr, counted, queries=q, seed=seed, target=e.target,
                                                     return_info=True)
            r, spent = _by_band_then_magnitude(sal, X), inf["queries"]
        elif name == "freqrise":
            r, spent = freqrise.explain_ranking(audio, sr, counted, queries=q, seed=seed, target=e.target)
        elif name == "occlusion":
            r, spent = occlusion_ranking(audio, counted, q, e.target)
        elif name == "magnitude":
            r, spent = quality.magnitude_ranking(audio), 0
        elif name == "random":
            r, spent = np.random.default_rng(seed).permutation(n_bins).astype(np.int64), 0
        else:
            raise SystemExit(f"unknown method {name!r}")
        assert counted.rows == spent and spent <= q, (name, counted.rows, spent, q)
        rankings[name] = r
        info[name] = {"queries": int(spent), "seconds": time.perf_counter() - t, **extra}
    rec["options"] = {k: e.options[k] for k in ("effect_weight", "fill") if k in e.options}
    for name in methods:
        if name in rec["methods"]:
            continue
        d = dict(info[name])
        for op in OPERATORS:
            c = quality.ranking_curves(audio, sr, model, rankings[name], target=e.target, operator=op)
            d[f"{op}_deletion_auc"], d[f"{op}_insertion_auc"] = c.deletion_auc, c.insertion_auc
        rec["methods"][name] = d
        print(f"  {name:11s} zero {d['zero_deletion_auc']:.4f}/{d['zero_insertion_auc']:.4f}  noise "
              f"{d['noise_deletion_auc']:.4f}/{d['noise_insertion_auc']:.4f}  queries {d['queries']}", flush=True)
    return rec


def summary_markdown(records: List[dict]) -> str:
    lines = ["# Ranking faithfulness at equal queries (issue 16)", "",
             "Deletion AUC (lower is better) and insertion AUC (higher is better): mean target score with the "
             "top 1-60% of the bins removed / kept alone. `wins` = clips where freqrex beats the method on "
             "that curve. Every method gets freqrex's total queries.", ""]
    for model in sorted({r["model"] for r in records}):
        recs = [r for r in records if r["model"] == model]
        methods = [m for m in METHODS if any(m in r["methods"] for r in recs)]
        lines += [f"## {model} ({len(recs)} clips, {recs[0]['seconds_audio']:.0f} s each)", "",
                  "| method | queries | zero: deletion | insertion | noise: deletion | insertion | "
                  "freqrex wins (zero del / ins, noise del / ins) |", "|---|---:|---:|---:|---:|---:|---|"]
        for m in methods:
            rows = [(r["methods"][m], r["methods"]["freqrex"]) for r in recs if m in r["methods"]]
            med = lambda k: float(np.median([a[k] for a, _ in rows]))  # noqa: E731
            if m == "freqrex":
                wins = "-"
            else:
                w = []
                for op in OPERATORS:
                    w.append(sum(f[f"{op}_deletion_auc"] < a[f"{op}_deletion_auc"] for a, f in rows))
                    w.append(sum(f[f"{op}_insertion_auc"] > a[f"{op}_insertion_auc"] for a, f in rows))
                wins = ", ".join(f"{v}/{len(rows)}" for v in w)
            lines.append(f"| {m} | {med('queries'):.0f} | {med('zero_deletion_auc'):.4f} | "
                         f"{med('zero_insertion_auc'):.4f} | {med('noise_deletion_auc'):.4f} | "
                         f"{med('noise_insertion_auc'):.4f} | {wins} |")
        fr = [r["methods"]["freqrex"] for r in recs]
        suff = [x["sufficient_bins"] for x in fr if x.get("sufficient_bins") is not None]
        marg = [x["sufficient_margin"] for x in fr if x.get("sufficient_margin") is not None]
        warned = sum(bool(r.get("warnings")) for r in recs)
        lines += ["", f"freqrex: median sufficient set {100 * np.median(suff):.1f}% of the bins ({len(suff)} of "
                  f"{len(recs)} clips have one), median margin kept {np.median(marg):+.4f}; {warned} clips "
                  "with a warning." if suff and marg else "freqrex: no sufficient set.", ""]
    lines += ["Command: `python benches/peers/explanation_quality.py --clips-from CORPUS/order.txt --n 16 "
              "--model MODEL --out docs/results/explanation-quality-MODEL.jsonl`.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clips", nargs="*")
    ap.add_argument("--clips-from")
    ap.add_argument("--corpus", default=None, help="folder the --clips-from names are relative to")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--model", default="MSD_musicnn")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--out", default="docs/results/explanation-quality.jsonl")
    ap.add_argument("--summary", default=None)
    ap.add_argument("--reuse", default=None,
                    help="earlier records (JSONL) whose peers are copied when they had at least freqrex's queries")
    args = ap.parse_args(argv)
    from freqrex._atomic import write_text
    from freqrex.models import load_model

    methods = [m for m in args.methods.split(",") if m]
    if "freqrex" not in methods:
        methods.insert(0, "freqrex")
    clips = list(args.clips)
    if args.clips_from:
        base = args.corpus or os.path.dirname(os.path.abspath(args.clips_from))
        listed = [os.path.join(base, ln.strip()) for ln in open(args.clips_from) if ln.strip()]
        clips += listed[: args.n] if args.n else listed
    model = load_model(args.model)
    summary = args.summary or os.path.splitext(args.out)[0] + ".md"
    records = load_records(args.out)
    done = {(r["clip"], r["model"], r["seed"], r.get("duration")) for r in records}
    reused = {(r["clip"], r["model"], r["seed"], r.get("duration")): r
              for r in (load_records(args.reuse) if args.reuse else [])}
    for path in clips:
        if (os.path.abspath(path), args.model, args.seed, args.duration) in done:
            print(f"{path}: done, skipped", flush=True)
            continue
        print(f"{path}:", flush=True)
        t = time.perf_counter()
        old = reused.get((os.path.abspath(path), args.model, args.seed, args.duration))
        rec = run_clip(path, model, args.model, methods, args.seed, args.duration, reuse=old)
        rec["total_seconds"] = time.perf_counter() - t
        records.append(rec)
        write_records(args.out, records)
        write_text(summary, summary_markdown(records))
    if records:
        write_text(summary, summary_markdown(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
