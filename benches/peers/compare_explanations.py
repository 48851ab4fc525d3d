"""Rankings of the frequency space side by side, at equal model queries.

For each clip, with one model:

* ``freqrex``: ``freqrex.explain(audio, sr, model, budget=B, cuts="log", seed=0)``;
  its ``queries`` (original + search + extraction) is the cost every other
  method gets; ranking: its responsibility ranking (``Explanation.ranking``).
* ``freqrise``: FreqRISE (benches/peers/freqrise.py), cells uniform over bin
  index as in the paper, ``queries - 1`` masks + the target query;
  ``freqrise_log`` (only with ``--methods``): the same with cells uniform over
  log-frequency.
* ``shap_bands``: Kernel SHAP over 32 log-spaced bands (benches/peers/shap_bands.py),
  exactly ``queries`` queries (counted).
* ``magnitude``: bins by |rfft|, descending (free).
* ``random``: a seeded random permutation (free).

Every ranking is scored by ``freqrex.quality.ranking_curves`` on the whole
spectrum, for freqrex's target class: deletion AUC (lower is better) and
insertion AUC (higher is better), 14 more queries each (not counted in the
method's cost). Results: one JSON line per clip in ``--out`` (rewritten
atomically after each clip; clips already there are skipped, so an
interrupted run resumes), and a markdown summary of medians next to it
(``.md``).

    python benches/peers/compare_explanations.py python/freqrex/data/demo.flac \\
        --model MSD_musicnn --budget 400 --out docs/results/explanation-peers.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Dict, List, Optional

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import freqrise  # noqa: E402
import shap_bands  # noqa: E402

METHODS = ("freqrex", "freqrise", "freqrise_log", "shap_bands", "magnitude", "random")
#: The default set (freqrise_log on request: it doubles FreqRISE's cost).
DEFAULT_METHODS = ("freqrex", "freqrise", "shap_bands", "magnitude", "random")


class Counting:
    """Counts the waveforms a method sends to the model (its queries) and the seconds inside it."""

    def __init__(self, model):
        self.model = model
        self.sample_rate = getattr(model, "sample_rate", None)
        self.class_names = getattr(model, "class_names", None)
        self.rows = 0
        self.seconds = 0.0

    def __call__(self, waves):
        t = time.perf_counter()
        out = self.model(waves)
        self.seconds += time.perf_counter() - t
        self.rows += len(waves)
        return out


def _commit() -> str:
    import subprocess

    try:
        return subprocess.run(["git", "-C", HERE, "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except Exception:  # pragma: no cover - no git
        return ""


def load_rex(out: str) -> Optional[dict]:
    path = os.path.splitext(out)[0] + ".rex.json"
    if not os.path.exists(path):
        return None
    with open(path) as fh:
        return json.load(fh)


def load_records(path: str) -> List[dict]:
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line:
                out.append(json.loads(line))
    return out


def write_records(path: str, records: List[dict]) -> None:
    from freqrex._atomic import write_text

    write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def run_clip(path: str, model, model_name: str, budget: int, methods, seed: int = 0) -> dict:
    import freqrex
    from freqrex import quality
    from freqrex.io import load_audio

    sr = int(model.sample_rate)
    audio, sr = load_audio(path, sample_rate=sr, duration=30)
    n_bins = audio.size // 2 + 1
    rec: Dict = {"clip": os.path.abspath(path), "name": os.path.basename(path), "model": model_name,
                 "budget": budget, "seed": seed, "n_bins": n_bins, "seconds_audio": audio.size / sr,
                 "methods": {}}
    counted = Counting(model)
    t = time.perf_counter()
    e = freqrex.explain(audio, sr, counted, budget=budget, cuts="log", seed=seed)
    fr_seconds = time.perf_counter() - t
    q = int(e.queries)
    assert counted.rows == q, (counted.rows, q)
    rec["freqrex_options"] = {k: v for k, v in (e.options or {}).items()
                              if not k.startswith("_") and isinstance(v, (int, float, str, bool, type(None)))}
    rec["freqrex_commit"] = _commit()
    rec.update(target=int(e.target), target_name=e.target_name or model.class_names[e.target],
               score=float(e.score), queries=q)

    def sizes(mask):
        return None if mask is None else int(np.count_nonzero(mask))

    rankings = {}
    info = {}
    rankings["freqrex"] = quality.explanation_ranking(e)
    info["freqrex"] = {"queries": q, "seconds": fr_seconds, "model_seconds": counted.seconds,
                       "search_queries": int(e.search_queries), "extraction_queries": int(e.extraction_queries),
                       "sufficient": sizes(e.sufficient), "sufficient_necessary": sizes(e.sufficient_necessary),
                       "complete": sizes(e.complete), "ranked": int(rankings["freqrex"].size)}
    for name in methods:
        if name == "freqrex":
            continue
        counted = Counting(model)
        t = time.perf_counter()
        if name in ("freqrise", "freqrise_log"):
            r, spent = freqrise.explain_ranking(audio, sr, counted, queries=q, seed=seed,
                                                spacing="linear" if name == "freqrise" else "log")
        elif name == "shap_bands":
            r, spent = shap_bands.explain_ranking(audio, sr, counted, queries=q, seed=seed)
        elif name == "magnitude":
            r, spent = quality.magnitude_ranking(audio), 0
        elif name == "random":
            r, spent = np.random.default_rng(seed).permutation(n_bins).astype(np.int64), 0
        else:
            raise SystemExit(f"unknown method {name!r}")
        secs = time.perf_counter() - t
        assert counted.rows == spent, (name, counted.rows, spent)
        rankings[name] = r
        info[name] = {"queries": int(counted.rows), "seconds": secs, "model_seconds": counted.seconds}
    for name in methods:
        t = time.perf_counter()
        c = quality.ranking_curves(audio, sr, model, rankings[name], target=int(e.target))
        d = c.to_dict()
        d.update(info[name])
        d["curve_seconds"] = time.perf_counter() - t
        rec["methods"][name] = d
        print(f"  {name:13s} deletion {c.deletion_auc:.4f}  insertion {c.insertion_auc:.4f}  "
              f"queries {info[name]['queries']:4d}  {info[name]['seconds']:6.1f} s", flush=True)
    return rec


def rex_section(records: List[dict], rex: Optional[dict]) -> List[str]:
    """rex-xai (benches/peers/rex_xai_peer.py) beside freqrex on the same clip, when its record exists."""
    if not rex:
        return []
    fr = next((r for r in records if r["clip"] == rex.get("clip") and "freqrex" in r["methods"]), None)
    out = ["", "## rex-xai 0.4.1 beside freqrex (same clip, same model)", "",
           f"Clip `{os.path.basename(rex['clip'])}`; rex-xai `--mode spectral`, {rex['iters']} iterations "
           f"({rex.get('iterations_done', '?')} done), extraction chunk {rex['chunk_size']} bins, batch "
           f"{rex['batch_size']}" + (f"; **stopped at its time limit** ({rex.get('stopped')})" if rex.get("stopped") else "")
           + ". Command: `python benches/peers/rex_xai_peer.py CLIP --iters N`."
           + (f" {rex['note']}" if rex.get("note") else ""), "",
           "| tool | wall s | model queries (calls) | s per query in the model | peak memory MB | sufficient set (share of bins) | deletion AUC | insertion AUC |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]

    def fmt(v, f):
        return "-" if v is None else format(v, f)

    rows = rex.get("model_rows")
    spq = None if not rows else rex["model_seconds"] / rows
    share = rex.get("sufficient_share")
    rex_suff = "-" if share is None else "%d (%.1f%%)" % (rex["sufficient"], 100 * share)
    out.append(f"| rex-xai | {fmt(rex.get('wall_seconds', rex.get('driver_wall_seconds')), '.0f')} | "
               f"{fmt(rows, 'd')} ({fmt(rex.get('model_calls'), 'd')}) | {fmt(spq, '.3f')} | "
               f"{fmt(rex.get('peak_rss_mb'), '.0f')} | {rex_suff} | "
               f"{fmt(rex.get('deletion_auc'), '.4f')} | {fmt(rex.get('insertion_auc'), '.4f')} |")
    cli = rex.get("freqrex_cli") or {}
    summ = cli.get("summary") or {}
    if summ:
        suff = (summ.get("sets") or {}).get("sufficient") or {}
        cli_suff = "-" if suff.get("size") is None else "%d (%.1f%%)" % (suff["size"], 100 * suff["fraction"])
        out.append(f"| freqrex CLI (`freqrex explain`, timed) | {fmt(cli.get('wall_seconds'), '.0f')} | "
                   f"{summ['queries']} | - | {fmt(cli.get('peak_rss_mb'), '.0f')} | {cli_suff} | - | - |")
    if fr:
        m = fr["methods"]["freqrex"]
        suff = m.get("sufficient")
        fr_suff = "-" if suff is None else "%d (%.1f%%)" % (suff, 100 * suff / fr["n_bins"])
        out.append(f"| freqrex | {m['seconds']:.0f} | {m['queries']} | {m['model_seconds'] / max(m['queries'], 1):.3f} | "
                   f"{fmt(fr.get('freqrex_peak_rss_mb'), '.0f')} | {fr_suff} | "
                   f"{m['deletion_auc']:.4f} | {m['insertion_auc']:.4f} |")
    if rows and rex.get("iterations_done"):
        per = rex.get("search_rows", rows) / rex["iterations_done"]
        out += ["", f"rex-xai spent about {per:.0f} search queries per iteration ({rex.get('search_rows', rows)} "
                f"over {rex['iterations_done']}; extraction {rex.get('extraction_rows', '?')}): 20 iterations "
                f"would cost about {20 * per:.0f} search queries. "
                f"{100 * rex['model_seconds'] / rex['wall_seconds']:.0f}% of its wall time was inside the model."
                if rex.get("wall_seconds") else ""]
        if rex.get("rows_split_note"):
            out += ["", f"Split of rex-xai's queries: {rex['rows_split_note']}."]
    if cli.get("command"):
        out += ["", f"freqrex CLI timing: `{cli['command']}`" + (f" ({cli['note']})." if cli.get("note") else ".")]
    if fr:
        out += ["", "The `freqrex` row is the equal-query comparison's run (the Python API, its model calls "
                "counted); its peak memory is not measured there (same process as the peers)."]
    return out


def load_notes(out: str) -> str:
    """Hand-written notes on the runs (``<out>.notes.md``), appended to the summary."""
    path = os.path.splitext(out)[0] + ".notes.md"
    return open(path).read().strip() if os.path.exists(path) else ""


def summary_markdown(records: List[dict], methods, rex: Optional[dict] = None, notes: str = "") -> str:
    if not records:
        return "# Explanation rankings at equal queries\n\nNo clips yet.\n"
    model = sorted({r["model"] for r in records})
    budget = sorted({r["budget"] for r in records})
    lines = [
        "# Explanation rankings at equal queries",
        "",
        f"Model {', '.join(model)}; freqrex budget {', '.join(map(str, budget))}, `cuts=\"log\"`, seed 0; "
        f"{len(records)} clips (30 s, 16 kHz, 240,001 rfft bins). Every other method gets freqrex's total "
        "queries (original + search + extraction). Deletion / insertion AUC: mean target score over "
        "the fractions 1-60% of the bins removed / kept alone (`freqrex.quality.ranking_curves`, "
        "freqrex's target class). Deletion: lower is better; insertion: higher is better. "
        "Medians over clips; `wins vs freqrex` counts the clips where the method beats freqrex's ranking.",
        "",
        "| method | deletion AUC | insertion AUC | queries | seconds | wins vs freqrex (deletion / insertion) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in methods:
        rows = [r["methods"][name] for r in records if name in r["methods"]]
        if not rows:
            continue
        med = lambda k: float(np.median([x[k] for x in rows]))  # noqa: E731
        if name == "freqrex":
            wins = "-"
        else:
            pairs = [(r["methods"][name], r["methods"]["freqrex"]) for r in records
                     if name in r["methods"] and "freqrex" in r["methods"]]
            wd = sum(a["deletion_auc"] < b["deletion_auc"] for a, b in pairs)
            wi = sum(a["insertion_auc"] > b["insertion_auc"] for a, b in pairs)
            wins = f"{wd}/{len(pairs)} / {wi}/{len(pairs)}"
        lines.append(f"| {name} | {med('deletion_auc'):.4f} | {med('insertion_auc'):.4f} | "
                     f"{med('queries'):.0f} | {med('seconds'):.1f} | {wins} |")
    lines += ["", "Per clip (deletion / insertion AUC):", "",
              "| clip | target (score) | queries | " + " | ".join(m for m in methods) + " |",
              "|---|---|---:|" + "---|" * len(methods)]
    for r in records:
        cells = []
        for m in methods:
            x = r["methods"].get(m)
            cells.append("-" if x is None else f"{x['deletion_auc']:.3f} / {x['insertion_auc']:.3f}")
        lines.append(f"| {r['name']} | {r['target_name']} ({r['score']:.3f}) | {r['queries']} | " + " | ".join(cells) + " |")
    fr = [r["methods"]["freqrex"] for r in records if "freqrex" in r["methods"]]
    if fr:
        suff = [x["sufficient"] / r["n_bins"] for x, r in zip(fr, records) if x.get("sufficient") is not None]
        lines += ["", f"freqrex: median queries {np.median([x['queries'] for x in fr]):.0f} (search "
                  f"{np.median([x['search_queries'] for x in fr]):.0f}, extraction "
                  f"{np.median([x['extraction_queries'] for x in fr]):.0f}), median wall time "
                  f"{np.median([x['seconds'] for x in fr]):.1f} s of which "
                  f"{100 * np.median([x['model_seconds'] / x['seconds'] for x in fr]):.0f}% inside the model; "
                  + (f"median sufficient set {100 * np.median(suff):.1f}% of the bins ({len(suff)} clips with one)."
                     if suff else "no sufficient set found.")]
    spq = [x["model_seconds"] / x["queries"] for r in records for x in r["methods"].values() if x.get("queries")]
    if spq:
        lines += ["", f"Seconds per model query over these runs: median {np.median(spq):.2f} (min {min(spq):.2f}, "
                  f"max {max(spq):.2f}); MSD_musicnn alone on an idle 2-core machine takes about 0.12 s a clip, so "
                  "wall times above that reflect the machine's load: compare queries, not seconds."]
    lines += rex_section(records, rex)
    if notes:
        lines += ["", "## Notes", "", notes]
    lines += ["", f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
              "Command: `python benches/peers/compare_explanations.py CLIP... --model MSD_musicnn --budget 400 "
              "--out docs/results/explanation-peers.jsonl`.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clips", nargs="*", help="audio files")
    ap.add_argument("--clips-from", help="a file listing clips, one a line (e.g. order.txt)")
    ap.add_argument("--n", type=int, default=None, help="take the first N clips of --clips-from")
    ap.add_argument("--model", default="MSD_musicnn")
    ap.add_argument("--budget", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    ap.add_argument("--out", default="docs/results/explanation-peers.jsonl")
    ap.add_argument("--summary", default=None, help="markdown summary (default: --out with .md)")
    args = ap.parse_args(argv)
    from freqrex.models import load_model
    from freqrex._atomic import write_text

    methods = [m for m in args.methods.split(",") if m]
    if "freqrex" not in methods:
        methods.insert(0, "freqrex")
    clips = list(args.clips)
    if args.clips_from:
        listed = [ln.strip() for ln in open(args.clips_from) if ln.strip()]
        clips += listed[: args.n] if args.n else listed
    model = load_model(args.model)
    summary = args.summary or os.path.splitext(args.out)[0] + ".md"
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    records = load_records(args.out)
    done = {(r["clip"], r["model"], r["budget"], r["seed"]) for r in records}
    for path in clips:
        key = (os.path.abspath(path), args.model, args.budget, args.seed)
        if key in done:
            print(f"{path}: done, skipped", flush=True)
            continue
        print(f"{path}:", flush=True)
        t = time.perf_counter()
        rec = run_clip(path, model, args.model, args.budget, methods, seed=args.seed)
        rec["total_seconds"] = time.perf_counter() - t
        print(f"  target {rec['target_name']} ({rec['score']:.3f}), {rec['total_seconds']:.0f} s in all", flush=True)
        records.append(rec)
        done.add(key)
        write_records(args.out, records)
        write_text(summary, summary_markdown(records, methods, load_rex(args.out), load_notes(args.out)))
    write_text(summary, summary_markdown(records, methods, load_rex(args.out), load_notes(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
