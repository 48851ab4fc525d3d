#!/usr/bin/env python3
"""The exhaustive one-tone limit on corpus clips (docs/evaluation.md, "How close to the limit").

Every tone of a 1/12-octave grid from 27.5 Hz to Nyquist (99 tones at 16 kHz), each scored at
0, 10, ..., 60 dB SNR and its quietest flipping level bisected to 0.5 dB
(``freqrex.manipulation.limit.tone_limit``): at most 1 + 99 x 12 = 1,189 queries a clip.

Clips are loaded at the model's own sample rate (16 kHz for a model that declares none), as
``freqrex evaluate`` loads them.  Resumable: one JSON line per (clip, model) in ``--out``, appended
as one complete, fsynced line; a last line cut short by a killed run is cut off when the run
resumes, and that clip is run again.  A clip is known by its id (its resolved path, field
``clip_id``; ``clip`` stays its file name, which the summaries read), so two clips of the same name
in different folders are two clips; records written before ``clip_id`` existed are matched by file
name.  A clip that fails (unreadable, too short, a model error) is written to ``<out>.errors.jsonl``
(``--errors``) and the run goes on; it is tried again when the run resumes, and the exit status is
1 when a clip failed.

    nice python scripts/tone_limit_eval.py --clips-from /tmp/freqrex-corpus/order.txt --n 24 \\
        --model madmom_key --out docs/results/tone-limit-key.jsonl
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import List, Optional, Set, Tuple

from freqrex.errors import FreqrexError
from freqrex.evaluation import OutputLock, append_record, clip_id, load_records
from freqrex.io import load_audio
from freqrex.manipulation.limit import tone_limit
from freqrex.models import load_model

#: The rate clips are loaded at for a model that declares none (as ``freqrex evaluate`` does).
DEFAULT_RATE = 16000


def finished(out: str, model: str) -> Tuple[Set[str], Set[str]]:
    """The clips of ``model`` recorded in ``out``: (clip ids, file names of records that have no id).

    The file is read with :func:`freqrex.evaluation.load_records` ``repair=True``: a last line cut
    short by a killed run is cut off, so that the run appends on a clean line.
    """
    ids: Set[str] = set()
    names: Set[str] = set()
    for rec in load_records(out, repair=True):
        if rec.get("model") != model:
            continue
        if rec.get("clip_id"):
            ids.add(str(rec["clip_id"]))
        elif rec.get("clip"):
            names.add(os.path.basename(str(rec["clip"])))  # written before clip ids: the file name
    return ids, names


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips-from", required=True, help="a file with one clip path per line (order.txt)")
    ap.add_argument("--n", type=int, default=24, help="the first N clips")
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--errors", default=None, help="where failed clips are recorded (default <out>.errors.jsonl)")
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args(argv)
    errors_out = args.errors or args.out + ".errors.jsonl"
    try:
        with open(args.clips_from) as f:
            clips = [line.strip() for line in f if line.strip()][: args.n]
        with OutputLock(args.out):  # a second run on the same --out would write its clips twice
            return run(args, clips, errors_out)
    except (FreqrexError, OSError) as exc:  # a bad --out, --clips-from or --model: no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run(args, clips: List[str], errors_out: str) -> int:
    done_ids, done_names = finished(args.out, args.model)
    model = load_model(args.model)
    rate = int(getattr(model, "sample_rate", None) or DEFAULT_RATE)
    failed = 0
    for path in clips:
        name, cid = os.path.basename(path), clip_id(path)
        if cid in done_ids or name in done_names:
            continue
        start = time.perf_counter()
        try:
            x, sr = load_audio(path, sample_rate=rate, duration=30.0)
            lim = tone_limit(x, sr, model, batch_size=args.batch_size)
        except Exception as exc:  # this clip only: record it and go on with the others
            failed += 1
            append_record(errors_out, {"clip": name, "clip_id": cid, "file": path, "model": args.model,
                                       "status": "error", "error": f"{type(exc).__name__}: {exc}",
                                       "seconds": time.perf_counter() - start})
            print(f"{path}: failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            continue
        append_record(args.out, {"clip": name, "clip_id": cid, "file": path, "model": args.model,
                                 "sample_rate": sr, **lim.to_dict()})
        done_ids.add(cid)
        print(f"{name}: best {lim.best_snr_db} dB at {lim.best_frequency_hz} Hz, "
              f"{lim.queries} queries, {lim.seconds:.0f} s", flush=True)
    if failed:
        print(f"{failed} clip(s) failed: see {errors_out}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
