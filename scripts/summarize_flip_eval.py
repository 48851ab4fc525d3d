#!/usr/bin/env python3
"""Summarise the flip evaluation records (docs/results/flips-*.jsonl) into docs/results/flips-summary.md/.json.

    python scripts/summarize_flip_eval.py
"""

from __future__ import annotations

import glob
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))

from freqrex.evaluation import load_records, write_summary  # noqa: E402


def main() -> int:
    files = sorted(glob.glob(str(ROOT / "docs/results/flips-*.jsonl")))
    records = [r for f in files for r in load_records(f)]
    out = ROOT / "docs/results/flips-summary.md"
    write_summary(records, out, out.with_suffix(".json"))
    print(f"{len(records)} records from {len(files)} files -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
