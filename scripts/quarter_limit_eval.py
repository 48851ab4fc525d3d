#!/usr/bin/env python3
"""k = 1 flips at a quarter of the one-tone limit's queries (docs/evaluation.md, "How close to the limit").

Issue 17's tagger goal: within 1 dB of the exhaustive one-tone limit's median SNR at a quarter of
its queries.  For every clip of a limit record (``scripts/tone_limit_eval.py``), each strategy gets
``limit queries // 4`` queries in all, the original clip's query included: the baselines and the
additive search spend them on the flip; ``causal`` spends half on its explanation (counted) and the
rest on the flip.  One JSON line per (clip, model, strategy) in ``--out``; resumable.

    nice python scripts/quarter_limit_eval.py --limits docs/results/tone-limit-key.jsonl \\
        --model madmom_key --out docs/results/quarter-limit-key.jsonl
    python scripts/quarter_limit_eval.py --table docs/results/quarter-limit-key.jsonl
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any, Dict, List, Sequence, Tuple

STRATEGIES = ("causal", "additive", "tone_scan", "random", "magnitude")


def _done(path: str) -> set:
    """The (clip, model, strategy) already recorded in ``path``.  A last line cut short by a killed run
    is cut off the file (:func:`freqrex.evaluation.load_records` with ``repair=True``), so that the
    resumed run appends on a clean line and runs that clip and strategy again."""
    from freqrex.evaluation import load_records

    return {(r.get("clip"), r.get("model"), r.get("strategy")) for r in load_records(path, repair=True)}


def run(args) -> None:
    from freqrex import explain
    from freqrex.evaluation import append_record, load_records
    from freqrex.io import load_audio
    from freqrex.manipulation import flip
    from freqrex.models import load_model

    limits = [r for r in load_records(args.limits) if r.get("model") == args.model][: args.n]
    done = _done(args.out)
    model = load_model(args.model)
    for lim in limits:
        total = int(lim["queries"]) // 4
        x, sr = load_audio(os.path.join(args.corpus, lim["clip"]), sample_rate=16000, duration=30.0)
        for s in args.strategies:
            if (lim["clip"], args.model, s) in done:
                continue
            t = time.perf_counter()
            explanation, explained = None, 0
            if s == "causal":
                # half of the total in all (search and set extraction): max_queries caps both
                explanation = explain(x, sr, model, budget=total // 2, max_queries=total // 2, seed=args.seed)
                explained = int(explanation.queries)
            # the rest of the total: the explanation has scored the original clip, else it costs one query
            budget = total - explained if explanation is not None else total - 1
            r = flip(x, sr, model, k=1, strategy=s, budget=max(budget, 1), seed=args.seed,
                     explanation=explanation)
            rec = {"clip": lim["clip"], "model": args.model, "strategy": s, "total_budget": total,
                   "success": bool(r.success), "snr_db": float(r.snr_db) if r.success else None,
                   "hz": [float(f) for f in r.frequencies_hz], "queries": int(r.queries),
                   "explanation_queries": explained, "flip_queries": int(r.flip_queries),
                   "original": r.original_name, "new": r.new_name,
                   "limit_snr_db": lim["best_snr_db"], "limit_queries": int(lim["queries"]),
                   "seconds": time.perf_counter() - t}
            append_record(args.out, rec)  # one complete line: a single write, then fsync
            done.add((lim["clip"], args.model, s))
            print(f"{lim['clip']} {s}: {'flip at %.1f dB' % rec['snr_db'] if rec['success'] else 'no flip'} "
                  f"(limit {lim['best_snr_db']}), {rec['queries']} queries", flush=True)


def as_evaluation_records(recs: List[Dict[str, Any]]) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
    """These records in the shape of ``freqrex evaluate``'s (k = 1 only) and the limit records they
    were run against, so that the table is :func:`freqrex.evaluation.summary.limit_comparison`'s:
    one definition of "within 1 dB of the limit".  Only clips every strategy has finished count."""
    by_clip: Dict[Tuple[str, str], Dict[str, Any]] = {}
    for r in recs:
        by_clip.setdefault((r["model"], r["clip"]), {})[r["strategy"]] = r
    records, limits = [], []
    for (model, clip), rows in sorted(by_clip.items()):
        if not set(STRATEGIES) <= set(rows):
            continue
        flips = {s: {"1": {"success": r["success"], "snr_db": r["snr_db"], "queries": r["queries"]}}
                 for s, r in rows.items()}
        records.append({"status": "ok", "model": model, "clip": clip, "fft_flips": flips})
        any_row = next(iter(rows.values()))
        limits.append({"model": model, "clip": clip, "best_snr_db": any_row["limit_snr_db"],
                       "queries": any_row["limit_queries"]})
    return records, limits


def table(paths: Sequence[str]) -> str:
    """The Markdown table of record files (the limit comparison of ``scripts/summarize_flip_eval.py``)."""
    from freqrex.evaluation.summary import limit_comparison, limit_markdown

    from freqrex.evaluation import load_records

    recs: List[Dict[str, Any]] = []
    for p in paths:
        recs += load_records(p)  # read only: a last line being written (or cut short) is left out
    records, limits = as_evaluation_records(recs)
    return limit_markdown(limit_comparison(records, limits))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limits", help="a tone_limit_eval.py record file")
    ap.add_argument("--model", help="the model of the limit records to run")
    ap.add_argument("--corpus", default="/tmp/freqrex-corpus")
    ap.add_argument("--n", type=int, default=24, help="the first N clips of the limit records")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--out", help="records (JSONL), appended to and resumed")
    ap.add_argument("--table", nargs="*", help="print the table of these record files and stop")
    args = ap.parse_args()
    if args.table is not None:
        print(table(args.table or [args.out]))
        return
    if not (args.limits and args.model and args.out):
        ap.error("--limits, --model and --out are needed to run")
    args.strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    run(args)
    print(table([args.out]))


if __name__ == "__main__":
    main()
