"""``freqrex explain``: explain one clip with a model (defaults: the demo clip and MSD_musicnn)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import add_common, add_model_options, open_clip, open_model


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "explain",
        help="which frequencies does the model rely on for this clip?",
        description="Explain a classifier's decision on a clip: responsibility of every frequency, "
        "and the sufficient, sufficient-and-necessary and complete sets written as audio.",
    )
    p.add_argument("audio", nargs="?", help="audio file (any format soundfile reads); default: the built-in demo clip")
    add_model_options(p)
    p.add_argument("--out", default="freqrex-out", help="output directory (default ./freqrex-out)")
    p.add_argument("--space", choices=("fft", "stft"), default="fft")
    p.add_argument("--budget", type=int, default=400, help="model queries for the search (default 400)")
    p.add_argument("--max-queries", type=int, default=None,
                   help="bound on the whole explanation's queries (original + search + extraction); "
                   "the search gets at most --budget of it and leaves the extraction a reserve")
    p.add_argument("--iterations", type=int, default=4, help="random partition refinements (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cuts", choices=("uniform", "log"), default="log", help="cut spacing (default log-frequency)")
    p.add_argument("--fmin", type=float, default=None, help="lowest frequency searched (Hz)")
    p.add_argument("--fmax", type=float, default=None, help="highest frequency searched (Hz)")
    p.add_argument("--n-fft", type=int, default=2048, help="STFT window (stft space)")
    p.add_argument("--hop-length", type=int, default=512, help="STFT hop (stft space)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of audio analysed from the start (default 30)")
    p.add_argument("--report", action="store_true", help="also write report.html in the output directory")
    p.add_argument("--no-quality", action="store_true",
                   help="skip the deletion/insertion curves of the ranking (14 more queries, reported apart)")
    add_common(p)
    return p


def run(args: argparse.Namespace) -> int:
    import freqrex
    from ..progress import ProgressBar

    model = open_model(args)
    audio, sr, source = open_clip(args, model)
    bar = ProgressBar("explain", enabled=not args.quiet)
    start = time.perf_counter()
    try:
        e = freqrex.explain(
            audio,
            sr,
            model,
            space=args.space,
            budget=args.budget,
            iterations=args.iterations,
            seed=args.seed,
            cuts=args.cuts,
            fmin=args.fmin,
            fmax=args.fmax,
            n_fft=args.n_fft,
            hop_length=args.hop_length,
            max_queries=args.max_queries,
            progress=bar,
        )
    finally:
        bar.close()
    e.metadata.update(model=args.model, audio=source)
    quality = None
    if not args.no_quality:
        from ..quality import explanation_curves

        quality = explanation_curves(e, audio, model)
        e.metadata["quality"] = quality.to_dict()
    shares = {name: e.share(name) for name in ("sufficient", "sufficient_necessary", "complete")}
    e.metadata["shares"] = shares
    out = e.save(Path(args.out))
    if args.report:
        from ..report import write_explanation_report

        write_explanation_report(e, out / "report.html", model_name=args.model, source=source)
    seconds = time.perf_counter() - start
    summary = e.summary()
    summary.update(out=str(out), seconds=seconds)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    name = e.target_name or str(e.target)
    print(f"{source}: {len(audio) / sr:.1f} s at {sr} Hz, {e.space} space, {e.responsibility.size} elements")
    print(f"model {args.model}: top class '{name}' (score {e.score:.3f})")
    for set_name in ("sufficient", "sufficient_necessary", "complete"):
        label = set_name.replace("_", " & ") if set_name == "sufficient_necessary" else set_name
        if e.get_set(set_name) is None:
            print(f"  {label:<22} absent: {e.reasons.get(set_name)}")
            continue
        bands = e.bands(set_name)
        shown = ", ".join(_hz(lo, hi) for lo, hi in bands[:6]) + (f", ... ({len(bands)} bands)" if len(bands) > 6 else "")
        sh = shares[set_name] or {}
        share = f"{100 * sh.get('bins', 0):.1f}% of bins" + (f", {100 * sh['energy']:.1f}% of energy" if "energy" in sh else "")
        print(f"  {label:<22} {e.size(set_name):>7} elements ({share}), score {e.set_scores[set_name]:.3f}: {shown}")
    print(f"queries {e.queries} (search {e.search_queries}, extraction {e.extraction_queries}), {seconds:.1f} s")
    if quality is not None:
        print(f"ranking quality: deletion AUC {quality.deletion_auc:.3f} (lower is better), insertion AUC "
              f"{quality.insertion_auc:.3f} (higher is better), {quality.queries} more queries")
    if e.runner_up is not None:
        names = getattr(model, "class_names", None)
        ru = str(names[e.runner_up]) if names is not None and e.runner_up < len(names) else str(e.runner_up)
        print(f"runner-up class '{ru}' (its map: explanation.npz, class_responsibility)")
    print(f"wrote {out}/ (summary.json, explanation.npz, original/sufficient/... .wav{', report.html' if args.report else ''})")
    return 0


def _hz(lo: float, hi: float) -> str:
    return f"{lo:.1f} Hz" if lo == hi else f"{lo:.1f}-{hi:.1f} Hz"

