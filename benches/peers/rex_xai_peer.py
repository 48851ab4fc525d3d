"""rex-xai 0.4.1 (the ReX authors' tool) on a clip, measured: wall time, model calls, peak memory.

Run from freqrex's environment; rex-xai runs in its own virtual environment
(it pins numpy 1.26.4 and needs torch)::

    python -m venv /work/rexvenv && /work/rexvenv/bin/pip install rex-xai==0.4.1 onnxruntime soundfile
    python benches/peers/rex_xai_peer.py python/freqrex/data/demo.flac --iters 20 \\
        --out docs/results/explanation-peers.rex.json

It runs ``ReX CLIP --script benches/peers/rex_xai_script.py --mode spectral
--iters N -c rex.toml --database rex.db`` under ``/usr/bin/time -v`` (peak
resident memory, wall time), with the config ``[rex] gpu = false,
batch_size = 16`` (extraction mutants per model call; the spectral search
scores one mutant per call whatever it is; in the runs recorded the extraction
also sent one mutant per call) and ``[explanation] chunk_size``
(bins added per extraction step: ReX's default of 10 bins would take up to
24,000 steps over 240,001 bins). The script counts every model call and
every waveform scored. The driver then reads ReX's responsibility map and
sufficient set from its database (in the venv) and, back in this
environment, scores the responsibility ranking with
``freqrex.quality.ranking_curves`` (deletion / insertion AUC, same fractions
and target as ``compare_explanations.py``) for the side-by-side table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))

READ_DB = r"""
import json, sys, numpy as np
from rex_xai.output.database import db_to_pandas
df = db_to_pandas(sys.argv[1])
row = df.iloc[-1]
resp = np.asarray(row["responsibility"], dtype=np.float32)
suff = np.asarray(row["sufficiency_mask"], dtype=bool)
np.savez_compressed(sys.argv[2], responsibility=resp, sufficiency_mask=suff)
keep = {k: row[k] for k in df.columns if k not in ("responsibility", "sufficiency_mask", "necessity_mask",
        "complete_mask") and not isinstance(row[k], (bytes, bytearray))}
print(json.dumps({k: (v.item() if hasattr(v, "item") else v) for k, v in keep.items()}, default=str))
"""


def parse_time_v(text: str) -> dict:
    out = {}
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if m:
        out["peak_rss_mb"] = int(m.group(1)) / 1024
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    if m:
        parts = [float(p) for p in m.group(1).split(":")]
        secs = 0.0
        for p in parts:
            secs = secs * 60 + p
        out["wall_seconds"] = secs
    m = re.search(r"User time \(seconds\): ([\d.]+)", text)
    if m:
        out["user_seconds"] = float(m.group(1))
    m = re.search(r"Exit status: (\d+)", text)
    if m:
        out["exit_status"] = int(m.group(1))
    return out


def freqrex_command(clip: str, model: str, budget: int, seed: int, out: str) -> list:
    return ["/usr/bin/time", "-v", "freqrex", "explain", os.path.abspath(clip), "--model", model,
            "--budget", str(budget), "--cuts", "log", "--seed", str(seed), "--no-quality", "--json", "--quiet",
            "--out", out]


def measure_freqrex(clip: str, model: str, budget: int, seed: int, work: str) -> dict:
    """``freqrex explain`` on the same clip under ``/usr/bin/time -v``: wall time, peak memory, queries, sets."""
    cmd = freqrex_command(clip, model, budget, seed, os.path.join(work, "freqrex-out"))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    return freqrex_record(cmd, proc.stdout, proc.stderr)


def freqrex_record(cmd: list, stdout: str, stderr: str) -> dict:
    rec = {"command": " ".join(cmd)}
    rec.update(parse_time_v(stderr))
    try:
        summary = json.loads(stdout)
    except ValueError:
        rec["error"] = stderr[-2000:]
        return rec
    rec["summary"] = summary
    return rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clip")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--venv", default="/work/rexvenv")
    ap.add_argument("--model", default="MSD_musicnn")
    ap.add_argument("--chunk-size", type=int, default=240, help="bins per ReX extraction step")
    ap.add_argument("--batch-size", type=int, default=16, help="ReX extraction mutants per model call")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=1800,
                    help="seconds; past them the next model call ends ReX's run (counts kept)")
    ap.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    ap.add_argument("--out", default="docs/results/explanation-peers.rex.json")
    ap.add_argument("--no-curves", action="store_true", help="skip the deletion/insertion curves")
    ap.add_argument("--with-freqrex", action="store_true",
                    help="also time `freqrex explain` on the clip (peak memory, wall time) for the table")
    ap.add_argument("--freqrex-budget", type=int, default=400)
    args = ap.parse_args(argv)

    work = args.work or tempfile.mkdtemp(prefix="rexpeer-")
    os.makedirs(work, exist_ok=True)
    with open(os.path.join(work, "rex.toml"), "w") as fh:
        fh.write(f"[rex]\ngpu = false\nbatch_size = {args.batch_size}\nseed = {args.seed}\n\n"
                 f"[explanation]\nchunk_size = {args.chunk_size}\n")
    db = os.path.join(work, "rex.db")
    if os.path.exists(db):
        os.remove(db)
    stats_path = os.path.join(work, "stats.json")
    env = dict(os.environ, REX_PEER_REPO=REPO, REX_PEER_STATS=stats_path, REX_PEER_MODEL=args.model,
               REX_PEER_DEADLINE=str(time.time() + args.timeout),
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    cmd = ["/usr/bin/time", "-v", os.path.join(args.venv, "bin", "ReX"), os.path.abspath(args.clip),
           "--script", os.path.join(HERE, "rex_xai_script.py"), "--mode", "spectral", "--iters", str(args.iters),
           "-c", os.path.join(work, "rex.toml"), "--database", db]
    print("running:", " ".join(cmd), flush=True)
    t = time.time()
    try:
        # the script stops itself at the deadline; the hard timeout is a last resort
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=args.timeout + 600)
        timed_out = False
        stderr, stdout = proc.stderr, proc.stdout
    except subprocess.TimeoutExpired as exc:
        timed_out = True
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
    wall = time.time() - t
    with open(os.path.join(work, "rex.log"), "w") as fh:
        fh.write(stdout + "\n" + stderr)
    rec = {"tool": "rex-xai 0.4.1", "clip": os.path.abspath(args.clip), "model": args.model,
           "iters": args.iters, "chunk_size": args.chunk_size, "batch_size": args.batch_size,
           "seed": args.seed, "command": " ".join(cmd), "driver_wall_seconds": wall, "timed_out": timed_out}
    rec.update(parse_time_v(stderr))
    if os.path.exists(stats_path):
        with open(stats_path) as fh:
            st = json.load(fh)
        rec.update(model_calls=st["calls"], model_rows=st["rows"], model_seconds=st["model_seconds"],
                   target=st["target"], target_score=st["target_score"], stopped=st.get("stopped"),
                   rows_by_caller=st.get("rows_by_caller"))
        by = st.get("rows_by_caller") or {}
        if by:
            rec["search_rows"] = by.get("causal_explanation", 0)
            rec["extraction_rows"] = sum(v for k, v in by.items() if k not in ("causal_explanation", "predict_target"))
    # ReX's progress bars: iterations of the search ("k/N"), then extraction steps
    lines = (stdout + "\n" + stderr).replace("\r", "\n").splitlines()
    its = [re.search(r"\| *(\d+)/(\d+) \[", ln) for ln in lines if "Extracting" not in ln]
    its = [m for m in its if m]
    if its:
        rec["iterations_done"] = max(int(m.group(1)) for m in its)
    ext = [re.search(r"\| *(\d+)/(\d+) \[", ln) for ln in lines if "Extracting" in ln]
    ext = [m for m in ext if m]
    if ext:
        rec["extraction_steps"] = max(int(m.group(1)) for m in ext)
        rec["extraction_steps_max"] = int(ext[-1].group(2))
    npz = os.path.join(work, "rex_result.npz")
    if os.path.exists(db):
        r = subprocess.run([os.path.join(args.venv, "bin", "python"), "-c", READ_DB, db, npz],
                           capture_output=True, text=True, env=env)
        if r.returncode == 0 and os.path.exists(npz):
            rec["db_row"] = json.loads(r.stdout.strip().splitlines()[-1])
            res = np.load(npz)
            resp = res["responsibility"].reshape(-1)
            suff = res["sufficiency_mask"].reshape(-1)
            rec["n_bins"] = int(resp.size)
            rec["sufficient"] = int(np.count_nonzero(suff))
            rec["sufficient_share"] = float(np.count_nonzero(suff) / resp.size)
            rec["responsibility_nonzero"] = int(np.count_nonzero(resp))
            rec["responsibility_distinct"] = int(np.unique(resp).size)
            import shutil

            kept = os.path.splitext(args.out)[0] + ".npz"
            os.makedirs(os.path.dirname(os.path.abspath(kept)), exist_ok=True)
            shutil.copyfile(npz, kept)  # ReX's responsibility map and sufficient mask, beside the record
            rec["npz"] = kept
            if not args.no_curves:
                from freqrex import quality
                from freqrex.io import load_audio
                from freqrex.models import load_model

                model = load_model(args.model)
                audio, sr = load_audio(args.clip, sample_rate=model.sample_rate, duration=30)
                ranking = np.lexsort((np.arange(resp.size), -resp.astype(np.float64)))
                c = quality.ranking_curves(audio, sr, model, ranking, target=rec.get("target"))
                rec["curves"] = c.to_dict()
                rec["deletion_auc"] = c.deletion_auc
                rec["insertion_auc"] = c.insertion_auc
        else:
            rec["db_error"] = (r.stderr or "")[-2000:]
    else:
        rec["error"] = (stderr or "")[-3000:]
    if args.with_freqrex:
        rec["freqrex_cli"] = measure_freqrex(args.clip, args.model, args.freqrex_budget, args.seed, work)
    from freqrex._atomic import write_text

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_text(args.out, json.dumps(rec, indent=1, sort_keys=True, default=str) + "\n")
    print(json.dumps({k: v for k, v in rec.items() if k not in ("curves", "db_row", "error")}, indent=1,
                     default=str))
    return 0 if "sufficient" in rec else 1


if __name__ == "__main__":
    sys.exit(main())
