"""``freqrex report``: render a saved explanation directory or an evaluation JSONL as one HTML file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import add_common


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "report",
        help="write a self-contained HTML report of a saved run or an evaluation",
        description="Write one self-contained HTML report (inline plots and audio players; opens offline) of "
        "a directory written by `freqrex explain --out DIR` (summary.json, explanation.npz, *.wav; with a flip "
        "when flip.json is there too), of one written by `freqrex flip --out DIR` (flip.json, original.wav, and "
        "perturbed.wav for a successful flip), or of an evaluation's results JSONL (a summary table and one row per clip, "
        "linked to per-clip pages).",
        epilog="Exit codes: 0 ok, 2 not a saved run or results file, 1 internal error.",
    )
    p.add_argument("input", metavar="RUN_DIR_OR_RESULTS",
                   help="a directory written by `freqrex explain --out` or `freqrex flip --out`, or an evaluation "
                   ".jsonl file (or a directory holding one)")
    p.add_argument("--out", default=None,
                   help="HTML file to write (default: RUN_DIR/report.html, or RESULTS.html beside the JSONL)")
    p.add_argument("--model", default=None, help="model name to show (when the saved run does not record it)")
    p.add_argument("--source", default=None, help="audio file name to show (when the saved run does not record it)")
    p.add_argument("--title", default=None, help="page heading")
    p.add_argument("--no-pages", action="store_true",
                   help="evaluation: do not render per-clip pages from the saved explanation directories")
    p.add_argument("--embed-audio", action="store_true",
                   help="evaluation: embed the audio in every clip page (default: link the runs' WAV files)")
    add_common(p)
    return p


def _results_in(directory: Path):
    for name in ("results.jsonl", "evaluation.jsonl"):
        if (directory / name).is_file():
            return directory / name
    found = sorted(directory.glob("*.jsonl"))
    return found[0] if len(found) == 1 else None


def run(args: argparse.Namespace) -> int:
    from ..errors import ParameterError
    from ..viz.saved import load_flip_beside, load_flip_dir

    src = Path(args.input)
    if not src.exists():
        raise ParameterError(f"no such file or directory: {src}")
    if src.is_dir() and (src / "summary.json").is_file() and (src / "explanation.npz").is_file():
        from ..viz.report import write_explanation_report

        from ..explanation import Explanation

        e = Explanation.load(src)  # checked against its manifest: an interrupted save is refused
        out = Path(args.out) if args.out else src / "report.html"
        write_explanation_report(e, out, model_name=args.model, source=args.source, title=args.title,
                                 flip=load_flip_beside(src, e))
        kind = "explanation"
        pages = 0
    elif src.is_dir() and (src / "flip.json").is_file():
        from ..viz.report import write_flip_report

        f = load_flip_dir(src)
        out = Path(args.out) if args.out else src / "report.html"
        model = args.model or (f.model if isinstance(getattr(f, "model", None), str) else None)
        source = args.source or (f.audio if isinstance(getattr(f, "audio", None), str) else None)
        write_flip_report(f, out, audio=getattr(f, "original_audio", None), model_name=model, source=source,
                          title=args.title)
        kind = "flip"
        pages = 0
    else:
        from ..report import evaluation_results_markdown
        from ..viz.evaluation_report import read_records, write_evaluation_report

        results = _results_in(src) if src.is_dir() else src
        if results is None or results.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
            raise ParameterError(
                f"{src} is not a saved explanation (summary.json, explanation.npz), a saved flip "
                "(flip.json) or an evaluation results .jsonl file"
            )
        out = Path(args.out) if args.out else results.with_suffix(".html")
        records, _ = read_records(results)
        table = evaluation_results_markdown(records, records_path=results)
        write_evaluation_report(results, out, title=args.title, pages=not args.no_pages,
                                embed_audio=args.embed_audio, results_markdown=table)
        kind = "evaluation"
        pages_dir = out.parent / f"{out.stem}_clips"
        pages = len(list(pages_dir.glob("*.html"))) if pages_dir.is_dir() else 0
    if args.json:
        json.dump({"report": str(out), "kind": kind, "pages": pages}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not args.quiet:
        print(f"wrote {out}" + (f" (and {pages} clip pages in {out.parent / (out.stem + '_clips')}/)" if pages else ""))
    return 0
