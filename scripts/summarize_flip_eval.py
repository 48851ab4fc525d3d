#!/usr/bin/env python3
"""Summarise flip evaluation records into a Markdown table and a JSON summary, with the
exhaustive one-tone limit beside them.

    python scripts/summarize_flip_eval.py docs/results/flips-madmom-key.jsonl docs/results/flips-musicnn.jsonl \\
        --limits docs/results/tone-limit-key.jsonl docs/results/tone-limit-musicnn.jsonl \\
        --out docs/results/flips-summary.md
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("freqrex") is None:  # not installed: the source tree (built in place)
    sys.path.insert(0, str(ROOT / "python"))

from freqrex._atomic import write_text  # noqa: E402
from freqrex.evaluation import load_records, summarize, summary_markdown  # noqa: E402
from freqrex.evaluation.records import _clean, current_records  # noqa: E402
from freqrex.evaluation.summary import limit_comparison, limit_markdown, per_clip_markdown  # noqa: E402
from freqrex.errors import FreqrexError  # noqa: E402

LIMIT_INTRO = ("\nHow close to the exhaustive one-tone limit (k = 1, equal total queries; the limit: every 1/12-octave "
               "tone, each level bisected, `scripts/tone_limit_eval.py`). \"within 1 dB\": of the clips the limit "
               "flips, those the method flipped at an SNR at most 1 dB under the limit's, or quieter; \"flips beyond "
               "the limit\": clips no single tone of the limit flips that the method flipped:\n\n")
PER_CLIP_INTRO = ("\nPer clip (equal total queries): SNR in dB of the quietest flip of each strategy, \"—\" when it "
                  "found none, not even at 0 dB; the STFT flip of the causal strategy with whether it stays under "
                  "ART's masking threshold in every cell; the exhaustive one-tone limit:\n\n")


def protocols_note(records) -> str:
    """One line per model whose records hold several protocols: they are summarised apart."""
    seen = {}
    for r in current_records([r for r in records if r.get("kind") != "transfer"]):
        ps = seen.setdefault(r.get("model"), [])
        if r.get("protocol") not in ps:
            ps.append(r.get("protocol"))
    return "".join(f"{model}: {len(ps)} protocols ({', '.join(map(str, ps))}), summarised apart "
                   f"as \"{model} [protocol]\", never pooled\n" for model, ps in seen.items() if len(ps) > 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("records", nargs="+", help="evaluation records (JSON lines of freqrex evaluate)")
    ap.add_argument("--limits", nargs="*", default=[], help="records of scripts/tone_limit_eval.py")
    ap.add_argument("--out", default=str(ROOT / "docs/results/flips-summary.md"))
    args = ap.parse_args()
    out = Path(args.out)
    try:
        # read only: a file being appended to by a running evaluation loses nothing (its last,
        # unfinished line is left out, and left alone)
        records = [r for f in args.records if os.path.exists(f) for r in load_records(f)]
        limits = [r for f in args.limits if os.path.exists(f) for r in load_records(f)]
        note = protocols_note(records)
        if note:
            sys.stderr.write(note)
        summary = summarize(records)
        text = summary_markdown(summary)
        data = _clean(summary)
        if limits:
            comparison = limit_comparison(records, limits)
            table = limit_markdown(comparison)
            if table:
                text += LIMIT_INTRO + table
            data["limit"] = _clean(comparison)
        table = per_clip_markdown(records, limits)
        if table:
            text += PER_CLIP_INTRO + table
    except FreqrexError as exc:
        sys.stderr.write(f"summarize_flip_eval.py: {exc}\n")
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, text)
    write_text(out.with_suffix(".json"), json.dumps(data, indent=2) + "\n")
    print(f"{len(records)} records, {len(limits)} limit records -> {out} ({len(summary['models'])} models)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
