"""rex-xai 0.4.1 and ``freqrex explain`` (defaults) side by side on corpus clips: queries, wall time,
peak memory, sufficient-set size (issue 16, evaluation piece "rex-xai side by side").

Both tools run as CLI processes under ``/usr/bin/time -v``, one at a time, on the same 30 s clip
with MSD_musicnn:

* rex-xai: ``ReX CLIP --script benches/peers/rex_xai_script.py --mode spectral --iters N``
  (driven by :mod:`benches.peers.rex_xai_peer`, config ``[rex] gpu = false, batch_size = 16``,
  ``[explanation] chunk_size = 240``); queries are the waveforms its prediction function scored;
* freqrex: ``freqrex explain CLIP --model MSD_musicnn --seed 0 --json --quiet --out DIR``, every
  other option at its default (``rule="margin"``, at most 400 queries in all, quality curves
  included); queries are the explanation's own count (``summary.json``).

Run from the repository root (rex-xai in its own venv, see ``rex_xai_peer.py``)::

    nice python -m benches.peers.rex_side_by_side --iters 5 \\
        --out docs/results/rex-side-by-side.json $(head -3 /tmp/freqrex-corpus/order.txt)

Then ``--margins`` scores rex-xai's sufficient sets the way freqrex reports its own (the margin
the class keeps with the set alone, one model query a clip) and ``--table`` prints the table.

The JSON keeps every run's record (``rex``: the peer driver's record, ``freqrex``: the CLI's
summary with the ``time -v`` figures) and a ``table`` of the figures compared. A partial file is
rewritten after every run, so a run stopped early keeps what it measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from benches.peers import rex_xai_peer
from freqrex._atomic import write_text


def freqrex_default_command(clip: str, model: str, seed: int, out: str) -> list:
    """``freqrex explain`` with its defaults, timed: only the model, the seed and the output are given."""
    return ["/usr/bin/time", "-v", "freqrex", "explain", os.path.abspath(clip), "--model", model,
            "--seed", str(seed), "--json", "--quiet", "--out", out]


def run_freqrex(clip: str, model: str, seed: int, work: str) -> dict:
    cmd = freqrex_default_command(clip, model, seed, os.path.join(work, "freqrex-out"))
    t = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    rec = rex_xai_peer.freqrex_record(cmd, proc.stdout, proc.stderr)
    rec["driver_wall_seconds"] = time.time() - t
    return rec


def run_rex(clip: str, args, work: str) -> dict:
    out = os.path.join(work, "rex.json")
    argv = [clip, "--iters", str(args.iters), "--model", args.model, "--seed", str(args.seed),
            "--timeout", str(args.timeout), "--work", os.path.join(work, "rex"), "--out", out, "--no-curves"]
    rex_xai_peer.main(argv)
    with open(out) as fh:
        return json.load(fh)


def table_row(clip: str, rex: dict, fr: dict) -> dict:
    s = fr.get("summary") or {}
    suff = (s.get("sets") or {}).get("sufficient") or {}
    n_bins = rex.get("n_bins") or (s.get("shape") or [None])[-1]
    return {
        "clip": os.path.basename(clip),
        "rex_queries": rex.get("model_rows"),
        "rex_search_queries": rex.get("search_rows"),
        "rex_wall_s": rex.get("wall_seconds"),
        "rex_user_s": rex.get("user_seconds"),
        "rex_peak_mb": rex.get("peak_rss_mb"),
        "rex_sufficient_bins": rex.get("sufficient"),
        "rex_sufficient_share": rex.get("sufficient_share"),
        "rex_sufficient_kept_margin": rex.get("sufficient_kept_margin"),
        "rex_sufficient_kept_class": rex.get("sufficient_kept_class"),
        "rex_target": rex.get("target"),
        "rex_iters": rex.get("iters"),
        "rex_iterations": rex.get("iterations_done"),
        "freqrex_queries": s.get("queries"),
        "freqrex_wall_s": fr.get("wall_seconds"),
        "freqrex_user_s": fr.get("user_seconds"),
        "freqrex_peak_mb": fr.get("peak_rss_mb"),
        "freqrex_sufficient_bins": suff.get("size"),
        "freqrex_sufficient_share": suff.get("fraction"),
        "freqrex_sufficient_kept_margin": suff.get("kept_margin"),
        "freqrex_target": s.get("target"),
        "freqrex_target_name": s.get("target_name"),
        "freqrex_warnings": s.get("warnings"),
        "n_bins": n_bins,
    }


def kept_margin(clip: str, mask, model, target: int) -> dict:
    """The model on the clip with only ``mask``'s rfft bins kept (the others zeroed, as both tools
    remove a bin): the target's score minus the best other class's, and the winning class."""
    import numpy as np

    from freqrex.io import load_audio

    x, _ = load_audio(clip, sample_rate=16000, duration=30)
    spec = np.fft.rfft(np.asarray(x, dtype=np.float64))
    wave = np.fft.irfft(np.where(np.asarray(mask, dtype=bool).reshape(-1), spec, 0), n=x.size).astype(np.float32)
    scores = np.asarray(model(wave[None]))[0]
    others = np.delete(scores, target)
    return {"kept_margin": float(scores[target] - others.max()), "kept_class": int(np.argmax(scores))}


def add_rex_margins(path: str) -> None:
    """Score rex-xai's sufficient sets the way freqrex reports its own: one model query a clip."""
    import numpy as np

    from freqrex.models import load_model

    with open(path) as fh:
        result = json.load(fh)
    model = load_model(result.get("model", "MSD_musicnn"))
    for run in result["runs"]:
        rex = run["rex"]
        if rex.get("npz") and os.path.exists(rex["npz"]) and rex.get("target") is not None:
            m = kept_margin(run["clip"], np.load(rex["npz"])["sufficiency_mask"], model, int(rex["target"]))
            rex["sufficient_kept_margin"], rex["sufficient_kept_class"] = m["kept_margin"], m["kept_class"]
    result["table"] = [table_row(r["clip"], r["rex"], r["freqrex"]) for r in result["runs"]]
    write_text(path, json.dumps(result, indent=1, sort_keys=True, default=str) + "\n")


def markdown(path: str) -> str:
    """The comparison table of a result file, in Markdown."""
    with open(path) as fh:
        rows = json.load(fh)["table"]
    head = ("clip", "tool", "queries", "wall s", "CPU s (user)", "peak MB", "sufficient set (bins)", "class")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        share = r["rex_sufficient_share"]
        margin = r.get("rex_sufficient_kept_margin")
        lines.append(f"| {r['clip']} | rex-xai, {r.get('rex_iters') or r.get('rex_iterations')} iterations | "
                     f"{r['rex_queries']} | {r['rex_wall_s']:.0f} | {r['rex_user_s']:.0f} | {r['rex_peak_mb']:.0f} | "
                     f"{r['rex_sufficient_bins']:,} ({100 * share:.2f}%), kept margin "
                     f"{'?' if margin is None else f'{margin:.4f}'} | {r['rex_target']} |")
        share = r["freqrex_sufficient_share"]
        margin = r.get("freqrex_sufficient_kept_margin")
        lines.append(f"| | freqrex explain (defaults) | {r['freqrex_queries']} | {r['freqrex_wall_s']:.0f} | "
                     f"{r['freqrex_user_s']:.0f} | {r['freqrex_peak_mb']:.0f} | "
                     f"{r['freqrex_sufficient_bins']:,} ({100 * share:.2f}%), kept margin "
                     f"{'?' if margin is None else f'{margin:.4f}'} | {r['freqrex_target']} "
                     f"({r['freqrex_target_name']}) |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clips", nargs="*")
    ap.add_argument("--iters", type=int, default=5, help="rex-xai iterations (its default is 20)")
    ap.add_argument("--model", default="MSD_musicnn")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds a rex-xai run may take")
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default="docs/results/rex-side-by-side.json")
    ap.add_argument("--append", action="store_true", help="add the runs to those already in --out")
    ap.add_argument("--table", action="store_true", help="print --out's table in Markdown and exit")
    ap.add_argument("--margins", action="store_true",
                    help="add to --out the margin each rex-xai sufficient set keeps (one query a clip) and exit")
    args = ap.parse_args(argv)
    if args.margins:
        add_rex_margins(args.out)
        return 0
    if args.table:
        print(markdown(args.out))
        return 0
    work = args.work or tempfile.mkdtemp(prefix="rexsbs-")
    command = "python -m benches.peers.rex_side_by_side " + " ".join(argv or sys.argv[1:])
    result = {"commands": [], "model": args.model, "seed": args.seed, "runs": [], "table": []}
    if args.append and os.path.exists(args.out):
        with open(args.out) as fh:
            result = json.load(fh)
        if "command" in result:  # a file written before --append existed
            result["commands"] = [{"command": result.pop("command"), "iters": result.pop("iters", None)}]
    result["commands"].append({"command": command, "iters": args.iters})
    for clip in args.clips:
        cw = os.path.join(work, os.path.splitext(os.path.basename(clip))[0])
        os.makedirs(cw, exist_ok=True)
        rex = run_rex(clip, args, cw)
        fr = run_freqrex(clip, args.model, args.seed, cw)
        result["runs"].append({"clip": os.path.abspath(clip), "rex": rex, "freqrex": fr})
        result["table"] = [table_row(r["clip"], r["rex"], r["freqrex"]) for r in result["runs"]]
        write_text(args.out, json.dumps(result, indent=1, sort_keys=True, default=str) + "\n")
        print(json.dumps(result["table"][-1], default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
