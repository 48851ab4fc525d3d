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
        epilog="Exit codes: 0 ok; 2 not a saved run or results file, or an --out that would overwrite an "
        "input; 3 a saved run that is incomplete (an interrupted save), changed since it was saved or "
        "unreadable, or a report that cannot be written; 1 internal error.",
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
    # <out>.transfer.jsonl beside an evaluation's records is read with them, never instead of them
    found = sorted(p for p in directory.glob("*.jsonl") if not p.name.endswith(".transfer.jsonl"))
    if len(found) > 1:
        from ..errors import ParameterError

        raise ParameterError(f"{directory} holds several results files ({', '.join(p.name for p in found)}): "
                             "name the one to report")
    return found[0] if len(found) == 1 else None


#: Files of a saved run (``Explanation.save``, ``FlipResult.save``) that a report must never replace.
_RUN_FILES = ("summary.json", "explanation.npz", "flip.json", "manifest.json", "flip-manifest.json")
_RUN_SUFFIXES = (".wav", ".npz", ".json", ".jsonl")


def _run_files(folder: Path) -> set:
    """Names of the files of the saved run in `folder` (none when it holds no saved run)."""
    if not any((folder / n).is_file() for n in _RUN_FILES):
        return set()
    names = set(_RUN_FILES)
    for manifest in ("manifest.json", "flip-manifest.json"):
        try:
            files = json.loads((folder / manifest).read_text()).get("files") or {}
            names.update(str(n) for n in files)
        except (OSError, ValueError, AttributeError):
            continue
    return names


def _check_out(out: Path, inputs) -> Path:
    """Refuse a report path that is an input (the results file, its transfer or summary file), a folder,
    or a file of a saved run (its summary, arrays, WAV files, manifests): nothing is written then."""
    from ..errors import ParameterError

    try:
        target = out.resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise ParameterError(f"cannot use --out {out}: {exc}") from exc
    if target.is_dir():
        raise ParameterError(f"--out {out} is a folder: name the HTML file to write")
    for p in inputs:
        if Path(p).resolve() == target:
            raise ParameterError(f"--out {out} is the input {p}: the report would overwrite it (nothing was written)")
    folder = target.parent
    if target.name in _run_files(folder) or (target.suffix.lower() in _RUN_SUFFIXES and _run_files(folder)):
        raise ParameterError(f"--out {out} is a file of the saved run in {folder}: the report would overwrite "
                             "it (nothing was written); write the report as an .html file")
    return out


def run(args: argparse.Namespace) -> int:
    from ..errors import ParameterError
    from ..viz.saved import load_flip_beside, load_flip_dir

    src = Path(args.input)
    notes: list = []  # what the report leaves out, and why (shown on the pages and on stderr)
    if not src.exists():
        raise ParameterError(f"no such file or directory: {src}")
    if src.is_dir() and (src / "summary.json").is_file() and (src / "explanation.npz").is_file():
        from ..viz.report import write_explanation_report

        from ..explanation import Explanation

        out = _check_out(Path(args.out) if args.out else src / "report.html", ())
        e = Explanation.load(src)  # checked against its manifest: an interrupted save is refused
        flip = load_flip_beside(src, e, notes=notes)  # one not saved completely is left out, with a note
        write_explanation_report(e, out, model_name=args.model, source=args.source, title=args.title,
                                 flip=flip, notes=notes)
        kind = "explanation"
        pages = 0
    elif src.is_dir() and (src / "flip.json").is_file():
        from ..viz.report import write_flip_report

        out = _check_out(Path(args.out) if args.out else src / "report.html", ())
        f = load_flip_dir(src)  # checked against its manifest: an interrupted or altered save is refused
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
        transfers = results.with_name(results.stem + ".transfer.jsonl")  # freqrex.evaluation.transfer_path
        out = _check_out(Path(args.out) if args.out else results.with_suffix(".html"),
                         (results, transfers, results.with_suffix(".summary.json"),
                          results.parent / f"{results.stem}_summary.json", results.parent / "summary.json"))
        records, _ = read_records(results)
        table = evaluation_results_markdown(records, records_path=results)
        write_evaluation_report(results, out, title=args.title, pages=not args.no_pages,
                                embed_audio=args.embed_audio, results_markdown=table, notes=notes)
        kind = "evaluation"
        pages_dir = out.parent / f"{out.stem}_clips"
        pages = len(list(pages_dir.glob("*.html"))) if pages_dir.is_dir() else 0
    for note in notes:
        print(f"freqrex: warning: {note}", file=sys.stderr)
    if args.json:
        json.dump({"report": str(out), "kind": kind, "pages": pages, "notes": notes}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif not args.quiet:
        print(f"wrote {out}" + (f" (and {pages} clip pages in {out.parent / (out.stem + '_clips')}/)" if pages else ""))
    return 0
