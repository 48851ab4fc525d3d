#!/usr/bin/env python3
"""Do the current searches reproduce a flip evaluation's records?  (docs/reliability.md)

Re-runs the FFT part of the protocol of every record in ``--records`` (the same
explanation, then the flips of ``--strategies`` for every k, at both budgets)
with the code at hand, and compares each flip with the record: success, bins
changed, queries, and SNR within ``--tol-db`` (another machine's floating point
moves SNRs by ~1e-5 dB).  One JSON line per clip in ``--out`` (resumable);
prints the differences and exits 1 if any.

Each clip is loaded at the model's sample rate (16 kHz for a model that declares none), as
``freqrex evaluate`` loaded it.  ``--records`` may be a file a live run is appending to: a last
line cut short is left out.  ``--out`` is appended one complete, fsynced line at a time; a last
line cut short by a killed run is cut off when the run resumes.  A clip that cannot be re-run
(its file gone, a model error) gets a line with its ``error`` and the run goes on; it is tried
again when the run resumes, and counts as a difference in the exit status.

    python scripts/reproduce_flip_records.py --records docs/results/flips-madmom-key-v6.jsonl \\
        --model madmom_key --strategies causal,additive --out /tmp/reproduce-key.jsonl   # ~50 min here
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Dict, List, Optional, Tuple


def compare(old: Dict[str, Any], new: Dict[str, Any], strategies: List[str], tol_db: float) -> List[Tuple]:
    """The flips of two records that differ: (section, strategy, k, old, new) as (success, SNR, bins, queries)."""
    diffs = []
    for section in ("fft_flips", "fft_flips_given_explanation"):
        for s in strategies:
            for k in sorted(set((old.get(section) or {}).get(s, {})) | set((new.get(section) or {}).get(s, {}))):
                a = (old.get(section) or {}).get(s, {}).get(k)
                b = (new.get(section) or {}).get(s, {}).get(k)
                if a is None or b is None:
                    diffs.append((section, s, k, a is not None, b is not None))
                    continue
                fa = (a["success"], a["snr_db"], a["n_changed"], a["queries"])
                fb = (b["success"], b["snr_db"], b["n_changed"], b["queries"])
                snr_apart = (fa[1] is None) != (fb[1] is None) or (
                    fa[1] is not None and abs(fa[1] - fb[1]) > tol_db)
                if fa[0] != fb[0] or fa[2:] != fb[2:] or snr_apart:
                    diffs.append((section, s, k, fa, fb))
    return diffs


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", required=True, help="a freqrex evaluate JSONL")
    ap.add_argument("--model", required=True, help="the model of the records to re-run")
    ap.add_argument("--strategies", default="causal,additive")
    ap.add_argument("--out", required=True, help="per-clip results (JSONL), appended to and resumed")
    ap.add_argument("--tol-db", type=float, default=0.01)
    ap.add_argument("--limit", type=int, default=None, help="the first N records")
    args = ap.parse_args(argv)

    from freqrex.errors import FreqrexError

    try:
        from freqrex.evaluation import OutputLock

        with OutputLock(args.out):  # a second run on the same --out would re-run its clips twice
            return run(args)
    except (FreqrexError, OSError) as exc:  # a bad --records, --out or --model: no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


#: The rate clips are loaded at for a model that declares none (as ``freqrex evaluate`` does).
DEFAULT_RATE = 16000


def run(args) -> int:
    from freqrex.evaluation import EvalOptions, append_record, evaluate_clip, load_records
    from freqrex.io import load_audio
    from freqrex.models import load_model

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    # read only: a last line being written (or cut short) is left out, the file is not touched
    records = [r for r in load_records(args.records) if r.get("model") == args.model and r.get("status") == "ok"]
    records = records[: args.limit] if args.limit else records
    # ours: a last line cut short by a killed run is cut off, so that appending goes on on a clean line
    done = {r["clip"]: r for r in load_records(args.out, repair=True) if "clip" in r and "error" not in r}
    model = load_model(args.model)
    rate = int(getattr(model, "sample_rate", None) or DEFAULT_RATE)
    failed = {}
    for rec in records:
        clip = rec.get("clip")
        if clip in done:
            continue
        try:
            o = dict(rec["options"], strategies=tuple(strategies), stft=False, ks=tuple(rec["options"]["ks"]))
            x, sr = load_audio(rec["file"], sample_rate=rate, duration=float(o.get("duration", 30.0)))
            new = evaluate_clip(x, sr, model, EvalOptions(**o))
            line = {"clip": clip, "diffs": compare(rec, new, strategies, args.tol_db)}
        except Exception as exc:  # this clip only: say so and go on with the others
            failed[clip] = f"{type(exc).__name__}: {exc}"
            line = {"clip": clip, "error": failed[clip]}
            print(json.dumps(line), file=sys.stderr, flush=True)
            append_record(args.out, line)
            continue
        print(json.dumps(line), flush=True)
        append_record(args.out, line)
        done[clip] = line
    bad = {c: r["diffs"] for c, r in done.items() if r.get("diffs")}
    print(f"{len(done)} clips re-run; {len(bad)} with a flip that differs"
          + (f"; {len(failed)} could not be re-run" if failed else ""), file=sys.stderr)
    return 1 if bad or failed else 0

if __name__ == "__main__":
    sys.exit(main())
