"""``freqrex explain``: explain one clip with a model (defaults: the demo clip and MSD_musicnn)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .._atomic import check_out_folder
from . import add_common, add_model_options, open_clip, open_model
from .explain_options import add_explain_options, describe_set, explain_kwargs


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "explain",
        help="which frequencies does the model rely on for this clip?",
        description="Explain a classifier's decision on a clip: responsibility of every frequency, "
        "and the sufficient, sufficient-and-necessary and complete sets written as audio.",
    )
    p.add_argument("audio", nargs="?", help="audio file (any format soundfile reads), or a directory: every audio "
                   "file under it, one output folder each under --out; default: the built-in demo clip")
    add_model_options(p)
    p.add_argument("--out", default="freqrex-out", help="output directory (default ./freqrex-out)")
    add_explain_options(p)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of audio analysed from the start (default 30)")
    p.add_argument("--report", action="store_true", help="also write report.html in the output directory")
    p.add_argument("--no-quality", action="store_true",
                   help="skip the deletion/insertion curves of the ranking (14 queries, counted inside --max-queries)")
    p.add_argument("--workers", type=int, default=None,
                   help="with a directory: explain on a local Ray instance with N workers (pip install 'freqrex[ray]')")
    p.add_argument("--address", default=None, help="with a directory: run on an existing Ray cluster ('auto' or its address)")
    p.add_argument("--threads-per-worker", type=int, default=None,
                   help="ONNX/torch threads of each worker, and CPUs of each Ray worker (default: 1 on Ray; "
                        "in this process the models' own; 1 lets two runs share a machine)")
    p.add_argument("--max-retries", type=int, default=2,
                   help="retries of a clip whose worker died or that raised (default 2)")
    add_common(p)
    return p


def run(args: argparse.Namespace) -> int:
    import freqrex
    from ..progress import ProgressBar

    if args.audio is not None and Path(args.audio).is_dir():
        return _run_directory(args)
    if args.workers is not None or args.address is not None:
        from ..errors import ParameterError

        raise ParameterError("--workers and --address explain a directory of clips: give a directory")
    if args.threads_per_worker is not None and args.threads_per_worker < 1:
        from ..errors import ParameterError

        raise ParameterError(f"--threads-per-worker must be >= 1, got {args.threads_per_worker}")
    check_out_folder(Path(args.out))  # before any query: a --out that cannot be a folder fails at once
    model = open_model(args)
    if args.threads_per_worker is not None:
        from ..models.base import limit_threads

        limit_threads(model, args.threads_per_worker)
    audio, sr, source = open_clip(args, model)
    bar = ProgressBar("explain", enabled=not args.quiet)
    start = time.perf_counter()
    try:
        e = freqrex.explain(audio, sr, model, progress=bar, **explain_kwargs(args))
    finally:
        bar.close()
    e.metadata.update(model=args.model, audio=source)
    quality = None
    if not args.no_quality:
        from ..quality import explanation_curves

        quality = explanation_curves(e, audio, model, target=e.target)
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
    decision = e.decision
    if decision is None or decision == e.target:
        print(f"model {args.model}: top class '{name}' (score {e.score:.3f})")
    else:
        names = getattr(model, "class_names", None)
        top = str(names[decision]) if names is not None and decision < len(names) else f"class {decision}"
        print(f"model {args.model}: explaining '{name}' (score {e.score:.3f}), not the model's decision "
              f"'{top}' (score {float(np.asarray(e.original_scores)[decision]):.3f})")
    for set_name in ("sufficient", "sufficient_necessary", "complete"):
        print(describe_set(e, set_name, shares[set_name], getattr(model, "class_names", None)))
    print(f"queries {e.queries + (quality.queries if quality is not None else 0)} in all (search "
          f"{e.search_queries}, extraction {e.extraction_queries}"
          + (f", quality curves {quality.queries}" if quality is not None else "") + f"), {seconds:.1f} s")
    if quality is not None:
        print(f"ranking quality: deletion AUC {quality.deletion_auc:.3f} (lower is better), insertion AUC "
              f"{quality.insertion_auc:.3f} (higher is better), {quality.queries} more queries")
    if e.runner_up is not None:
        names = getattr(model, "class_names", None)
        ru = str(names[e.runner_up]) if names is not None and e.runner_up < len(names) else str(e.runner_up)
        print(f"runner-up class '{ru}' (its map: explanation.npz, class_responsibility)")
    for line in e.warnings:
        print(f"warning: {line}")
    print(f"wrote {out}/ (summary.json, explanation.npz, original/sufficient/... .wav{', report.html' if args.report else ''})")
    return 0


def _hz(lo: float, hi: float) -> str:
    return f"{lo:.1f} Hz" if lo == hi else f"{lo:.1f}-{hi:.1f} Hz"


def _run_directory(args: argparse.Namespace) -> int:
    """``freqrex explain DIR --out OUT``: one output folder per clip (see freqrex.evaluation.explain_many)."""
    from ..errors import ParameterError
    from ..evaluation.explain_many import explain_many
    from ..evaluation.jobs import ModelFactory
    from ..progress import RunProgress
    from . import open_model_spec

    for name in ("workers", "threads_per_worker"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise ParameterError(f"--{name.replace('_', '-')} must be >= 1")
    if args.max_retries < 0:
        raise ParameterError("--max-retries must be >= 0")
    if args.workers is not None or args.address is not None:
        recipe = argparse.Namespace(**{k: getattr(args, k, None) for k in
                                       ("sample_rate", "output", "class_names", "trust_model_code")})
        model = ModelFactory(open_model_spec, args.model, recipe)
    else:
        model = open_model(args)
    bar = RunProgress("explain", enabled=not args.quiet)

    def on_done(res):
        if res["status"] == "error" and not args.json:
            bar.write(f"{res['file']}: {res['error']}")

    results = explain_many([args.audio], model, Path(args.out), explain_options=explain_kwargs(args),
                           duration=args.duration, quality=not args.no_quality, report=args.report,
                           model_name=args.model, workers=args.workers, address=args.address,
                           threads_per_worker=args.threads_per_worker, max_retries=args.max_retries,
                           on_done=on_done, run_progress=bar)
    if not results:
        raise ParameterError(f"no audio files in {args.audio}")
    counts = {s: sum(1 for r in results if r["status"] == s) for s in ("ok", "skipped", "error")}
    if args.json:
        json.dump({"out": str(args.out), **counts,
                   "clips": [{k: v for k, v in r.items() if k != "summary"} for r in results]}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(f"{counts['ok']} explained, {counts['skipped']} already done, {counts['error']} failed; "
              f"one folder per clip under {args.out}/")
    if counts["error"] == 0:
        return 0
    return failure_exit_code([r["error"] for r in results if r["status"] == "error"])


def failure_exit_code(errors) -> int:
    """The exit code of a run over many clips some of which failed, as a single clip's would be: 2 when
    every failure is a bad option or meaningless audio (ParameterError), 3 a bad audio file, else 4."""
    kinds = {str(e).split(":", 1)[0] for e in errors}
    if kinds <= {"ParameterError"}:
        return 2
    return 3 if kinds <= {"AudioFileError"} else 4
