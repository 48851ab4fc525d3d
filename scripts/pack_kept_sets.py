"""Rewrite evaluation records so that their sets keep their bins as packed masks (``kept_bins``).

Records written before the packed layout keep the ``fft`` sufficient and complete sets as frequency
ranges (``kept_bands_hz``): a complete set of a 30 s clip has tens of thousands of ranges, about 1 MB
of JSON, against 20-30 KB as a packed mask.  This rewrites a records file in place, set by set, after
checking that the packed mask keeps exactly the bins the ranges kept; everything else in a record is
unchanged.  It holds the records' lock, so it refuses a file that a run is writing.

    python scripts/pack_kept_sets.py docs/results/flips-musicnn.jsonl [more.jsonl ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from freqrex.evaluation.records import _clean, load_records, locked
from freqrex.evaluation.results import SetSummary
from freqrex.evaluation.transfer import pack_kept_bins, unpack_kept_bins


def pack_record(rec: dict) -> int:
    """Pack the ``kept_bands_hz`` of one record's ``fft`` sets in place; returns how many sets changed."""
    fe = rec.get("fft_explanation") or {}
    changed = 0
    for s in (fe.get("sets") or {}).values():
        if not isinstance(s, dict) or s.get("kept_bands_hz") is None:
            continue
        keep = SetSummary.from_dict(s).keep_mask(fe["n_bins"], fe["bin_hz"])
        if s.get("size") is not None and int(s["size"]) > int(keep.sum()):
            raise SystemExit(f"{rec.get('clip')}: the ranges keep {int(keep.sum())} bins, fewer than the set's "
                             f"{s['size']}; nothing rewritten")
        packed = pack_kept_bins(keep)
        assert np.array_equal(unpack_kept_bins(packed), keep)
        del s["kept_bands_hz"]
        s["kept_bins"] = packed
        changed += 1
    return changed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", nargs="+", type=Path)
    args = ap.parse_args(argv)
    for path in args.records:
        with locked(path):
            recs = load_records(path)
            changed = sum(pack_record(r) for r in recs)
            if not changed:
                print(f"{path}: nothing to pack")
                continue
            before = path.stat().st_size
            tmp = path.with_name(path.name + ".packing")
            with open(tmp, "w") as f:
                for r in recs:
                    f.write(json.dumps(_clean(r), sort_keys=True) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            print(f"{path}: {changed} sets packed, {before / 2**20:.1f} -> {path.stat().st_size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
