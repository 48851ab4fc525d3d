#!/usr/bin/env python3
"""The exhaustive one-tone limit on corpus clips (docs/evaluation.md, "How close to the limit").

Every tone of a 1/12-octave grid from 27.5 Hz to Nyquist (99 tones at 16 kHz), each scored at
0, 10, ..., 60 dB SNR and its quietest flipping level bisected to 0.5 dB
(``freqrex.manipulation.limit.tone_limit``): at most 1 + 99 x 12 = 1,189 queries a clip.  Resumable: one JSON line per (clip, model) in ``--out``.

    nice python scripts/tone_limit_eval.py --clips-from /tmp/freqrex-corpus/order.txt --n 24 \\
        --model madmom_key --out docs/results/tone-limit-key.jsonl
"""

from __future__ import annotations

import argparse
import json
import os

from freqrex.io import load_audio
from freqrex.manipulation.limit import tone_limit
from freqrex.models import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips-from", required=True, help="a file with one clip path per line (order.txt)")
    ap.add_argument("--n", type=int, default=24, help="the first N clips")
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    with open(args.clips_from) as f:
        clips = [line.strip() for line in f if line.strip()][: args.n]
    done = set()
    if os.path.exists(args.out):
        with open(args.out) as f:
            done = {(r["clip"], r["model"]) for r in map(json.loads, f)}
    model = load_model(args.model)
    for path in clips:
        name = os.path.basename(path)
        if (name, args.model) in done:
            continue
        x, sr = load_audio(path, sample_rate=16000, duration=30.0)
        lim = tone_limit(x, sr, model, batch_size=args.batch_size)
        rec = {"clip": name, "model": args.model, **lim.to_dict()}
        with open(args.out, "a") as f:
            f.write(json.dumps(rec) + "\n")
        print(f"{name}: best {lim.best_snr_db} dB at {lim.best_frequency_hz} Hz, "
              f"{lim.queries} queries, {lim.seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
