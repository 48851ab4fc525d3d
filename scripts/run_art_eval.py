#!/usr/bin/env python3
"""ART's black-box attacks on the clips and models of a flip evaluation, at the same total budget.

For every record of ``freqrex evaluate`` (``--flips``), runs HopSkipJump and
SimBA (``benches/peers/art_flips.py``) on the same clip and model with the
total query budget of freqrex's causal k = 1 flip on that clip (explanation
included), and appends one JSON line per (clip, model) to ``--out``
(resumable; several processes may share ``--out``, each with its ``--shard I/N`` of
the clips, and none repeats an attack another has recorded).  ``--summary`` only prints
what a run prints at its end: each attack's flip rate by SNR, then freqrex's k = 1 flips on
the same clips (equal total queries) beside the attacks'.

    python scripts/run_art_eval.py --flips docs/results/flips-msd-musicnn.jsonl \
        --out docs/results/art-peers.jsonl --attack hopskipjump --attack simba
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from freqrex.evaluation import SNR_THRESHOLDS, append_record, load_records  # noqa: E402
from freqrex.evaluation.records import _num  # noqa: E402


def attack_clip(x, sr, model, **kwargs):
    """One ART attack (``benches.peers.art_flips.art_flip``); ART is imported only when an attack runs."""
    from benches.peers.art_flips import art_flip

    return art_flip(x, sr, model, **kwargs)


def load_model(name):
    from freqrex.models import load_model as load

    return load(name)


def load_audio(path, **kwargs):
    from freqrex.io import load_audio as load

    return load(path, **kwargs)


def summary_table(rows, attacks) -> str:
    """The flip rate by SNR per model and attack: one row per (clip, model, attack), the last recorded."""
    last = {}
    for r in rows:
        last[(r.get("clip"), r.get("model"), r.get("attack"))] = r
    rows = list(last.values())
    lines = ["| model | attack | clips | " + " | ".join(f"SNR >= {t} dB" for t in SNR_THRESHOLDS)
             + " | median SNR | inaudible | median queries |",
             "|---|---|--:|" + "|".join(["--:"] * (len(SNR_THRESHOLDS) + 3)) + "|"]
    for model in sorted({str(r.get("model")) for r in rows}):
        for attack in attacks:
            rs = [r for r in rows if str(r.get("model")) == model and r.get("attack") == attack]
            if not rs:
                continue
            snrs = [_num(r.get("snr_db")) for r in rs if r.get("success")]
            snrs = [v for v in snrs if v is not None]
            rate = [sum(1 for v in snrs if v >= t) / len(rs) for t in SNR_THRESHOLDS]
            med = statistics.median(snrs) if snrs else None
            margins = [_num(r.get("margin_db")) if r.get("success") else None for r in rs]
            inaud = sum(1 for m in margins if m is not None and m >= 0) / len(rs)
            queries = [r["queries"] for r in rs if r.get("queries") is not None]
            q = statistics.median(queries) if queries else None
            lines.append(f"| {model} | {attack} | {len(rs)} | " + " | ".join(f"{100 * v:.0f}%" for v in rate)
                         + f" | {'–' if med is None else f'{med:.1f}'} | {100 * inaud:.0f}% | "
                         + f"{'–' if q is None else f'{q:g}'} |")
    return "\n".join(lines)


def same_clips_table(rows, flips, attacks) -> str:
    """freqrex's k = 1 flips (equal total) on exactly the clips each model's attacks have run: the
    comparison at equal queries while the peers are still running (and after)."""
    last = {}
    for r in rows:
        last[(r.get("clip"), r.get("model"), r.get("attack"))] = r
    by_clip = {(r.get("clip"), r.get("model")): r for r in flips}
    lines = ["| model | method (k = 1, the attacks' clips) | clips | " + " | ".join(
        f"SNR >= {t} dB" for t in SNR_THRESHOLDS) + " |", "|---|---|--:|" + "|".join(["--:"] * len(SNR_THRESHOLDS)) + "|"]
    for model in sorted({str(r.get("model")) for r in last.values()}):
        clips = sorted({c for (c, m, a) in last if m == model and a in attacks and (c, m) in by_clip})
        if not clips:
            continue
        strategies = [s for s in ("causal", "additive", "tone_scan", "random", "magnitude")
                      if all(s in (by_clip[(c, model)].get("fft_flips") or {}) for c in clips)]
        for strategy in strategies:
            snrs = []
            for c in clips:
                f = (by_clip[(c, model)]["fft_flips"][strategy] or {}).get("1") or {}
                snrs.append(_num(f.get("snr_db")) if f.get("success") else None)
            rate = [sum(1 for v in snrs if v is not None and v >= t) / len(snrs) for t in SNR_THRESHOLDS]
            lines.append(f"| {model} | freqrex {strategy} | {len(clips)} | "
                         + " | ".join(f"{100 * v:.0f}%" for v in rate) + " |")
        for attack in attacks:
            rs = [last[(c, model, attack)] for c in clips if (c, model, attack) in last]
            snrs = [_num(r.get("snr_db")) if r.get("success") else None for r in rs]
            if rs:
                rate = [sum(1 for v in snrs if v is not None and v >= t) / len(rs) for t in SNR_THRESHOLDS]
                lines.append(f"| {model} | ART {attack} | {len(rs)} | "
                             + " | ".join(f"{100 * v:.0f}%" for v in rate) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--flips", action="append", required=True, help="freqrex evaluate JSONL (repeatable)")
    p.add_argument("--out", required=True)
    p.add_argument("--attack", action="append", default=None, help="hopskipjump, simba, square")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="only the flips records whose index modulo N is I (0 <= I < N): N processes, one each")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--summary", action="store_true", help="only print the summary table")
    args = p.parse_args(argv)
    attacks = args.attack or ["hopskipjump", "simba"]
    flips = [r for f in args.flips for r in load_records(f) if r.get("status") == "ok"]
    flips = flips[: args.limit] if args.limit else flips
    if args.shard is not None:
        try:
            index, count = (int(v) for v in args.shard.split("/"))
        except ValueError:
            p.error(f"--shard takes I/N (two integers), got {args.shard!r}")
        if not 0 <= index < count:
            p.error(f"--shard {args.shard}: I must lie in 0..N-1")
        flips = flips[index::count]
    models = {}
    if not args.summary:  # --summary only prints: it never starts an attack, nor writes
        # a cut last line (a killed run) is mended by rewriting the file: never while another shard appends
        if args.shard is not None and Path(args.out).is_file() and Path(args.out).stat().st_size \
                and not Path(args.out).read_bytes().endswith(b"\n"):
            p.error(f"{args.out} ends with a cut line: run once without --shard (it mends it), then the shards")
        done = {(r["clip"], r["model"], r["attack"])
                for r in load_records(args.out, repair=args.shard is None)}
        for rec in flips:
            budget = int(rec["fft_flips"]["causal"]["1"]["queries"])
            for attack in attacks:
                key = (rec["clip"], rec["model"], attack)
                # read afresh before each attack: another process on the same --out may have recorded it
                # (no repair here: it rewrites the file, and would drop a line the other appends meanwhile)
                done |= {(r["clip"], r["model"], r["attack"]) for r in load_records(args.out)}
                if key in done:  # recorded, or run already for another --flips file's record of the clip
                    continue
                model = models.setdefault(rec["model"], load_model(rec["model"]))
                x, sr = load_audio(rec["file"], sample_rate=model.sample_rate, duration=rec["options"]["duration"])
                r = attack_clip(x, sr, model, attack=attack, budget=budget, seed=args.seed,
                                original_class=int(rec["original"]["class"]))
                out = {"clip": rec["clip"], "model": rec["model"], "attack": attack, "budget": budget,
                       **{k: r[k] for k in ("success", "queries", "snr_db", "db_x", "margin_db", "new_class",
                                            "elapsed_s")}}
                append_record(args.out, out)
                done.add(key)
                print(json.dumps(out), flush=True)
    rows = load_records(args.out)
    print(summary_table(rows, attacks))
    print()
    print(same_clips_table(rows, flips, attacks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
