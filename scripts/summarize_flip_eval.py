#!/usr/bin/env python3
"""Summarise flip evaluation records into a Markdown table and a JSON summary, with the
exhaustive one-tone limit beside them.

    python scripts/summarize_flip_eval.py docs/results/flips-madmom-key.jsonl docs/results/flips-musicnn.jsonl \\
        --limits docs/results/tone-limit-key.jsonl docs/results/tone-limit-musicnn.jsonl \\
        --out docs/results/flips-summary.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

from freqrex.evaluation import load_records, write_summary  # noqa: E402
from freqrex.evaluation.summary import limit_comparison, limit_markdown, per_clip_markdown  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("records", nargs="+", help="evaluation records (JSON lines of freqrex evaluate)")
    ap.add_argument("--limits", nargs="*", default=[], help="records of scripts/tone_limit_eval.py")
    ap.add_argument("--out", default=str(ROOT / "docs/results/flips-summary.md"))
    args = ap.parse_args()
    records = [r for f in args.records if os.path.exists(f) for r in load_records(f)]
    out = Path(args.out)
    summary = write_summary(records, out, out.with_suffix(".json"))
    limits = [json.loads(line) for f in args.limits if os.path.exists(f) for line in open(f) if line.strip()]
    if limits:
        comparison = limit_comparison(records, limits)
        table = limit_markdown(comparison)
        if table:
            with open(out, "a") as f:
                f.write("\nHow close to the exhaustive one-tone limit (k = 1, equal total queries; the limit: "
                        "every 1/12-octave tone, each level bisected, `scripts/tone_limit_eval.py`):\n\n" + table)
        with open(out.with_suffix(".json")) as f:
            data = json.load(f)
        data["limit"] = comparison
        with open(out.with_suffix(".json"), "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
    table = per_clip_markdown(records, limits)
    if table:
        with open(out, "a") as f:
            f.write("\nPer clip (equal total queries): SNR in dB of the quietest flip of each strategy, \"—\" when it "
                    "found none, not even at 0 dB; the STFT flip of the causal strategy with whether it stays under "
                    "ART's masking threshold in every cell; the exhaustive one-tone limit:\n\n" + table)
    print(f"{len(records)} records, {len(limits)} limit records -> {out} ({len(summary['models'])} models)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
