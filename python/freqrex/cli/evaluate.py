"""``freqrex evaluate``: flip rates on a corpus, resumable, with the paper's numbers beside ours."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from ..evaluation.protocol import EvalOptions
from ..manipulation.options import CHANGES, STRATEGIES
from ..options import CUTS
from . import add_common, add_model_options, open_model_spec
from .dataclass_options import CliOption, add_options, given_options


def _ints(text: str):
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _names(text: str):
    return tuple(s.strip() for s in text.split(",") if s.strip())


#: ``freqrex evaluate``'s protocol options: one for every field of EvalOptions, which holds the defaults.
EVALUATE_CLI = (
    CliOption("explain_budget", "budget of the fft explanation, as flip's --explain-budget (--budget: the same, "
              "kept from older versions; flip's --budget is the flip's, here --flip-budget)",
              flag="--explain-budget", aliases=("--budget",)),
    CliOption("explain_iterations", "iterations of the fft explanation, and of the stft one unless "
              "--stft-iterations is given", flag="--iterations"),
    CliOption("flip_budget", "flip-search queries of the causal strategy; baselines get this plus the "
              "explanation's queries (equal total), and this alone"),
    CliOption("equal_total", "give the baselines the flip budget only (no equal-total runs)",
              flag="--no-equal-total", switch_off=True),
    CliOption("probe_snr_db", "SNR at which candidates are first tried (dB)"),
    CliOption("min_snr_db", "the loudest change allowed (SNR, dB)"),
    CliOption("max_snr_db", "the quietest change worth finding (SNR, dB)"),
    CliOption("tol_db", "resolution of the amplitude search (dB)"),
    CliOption("masking_safety_db", "STFT flips: cells are bounded this many dB under the masking threshold"),
    CliOption("ks", "flip sizes, comma-separated", parse=_ints),
    CliOption("strategies", f"comma-separated, among {', '.join(STRATEGIES)}", parse=_names),
    CliOption("change", "quietest: amplitude-searched changes; or a fixed change", choices=CHANGES),
    CliOption("max_gain_db", "gain of the fixed 'gain' change (dB)"),
    CliOption("stft", "skip the STFT explanation and flip", flag="--no-stft", switch_off=True),
    CliOption("stft_explain_budget", "budget of the stft explanation (0: rank cells by the fft explanation; "
              "fixed changes only: --change auto/remove/gain/phase)", flag="--stft-budget"),
    CliOption("stft_explain_iterations", "iterations of the stft explanation (not given: --iterations)",
              flag="--stft-iterations"),
    CliOption("stft_k", "STFT cells changed by fixed changes"),
    CliOption("stft_flip_budget", "queries of the masked STFT flip"),
    CliOption("n_fft", "STFT window"),
    CliOption("hop_length", "STFT hop"),
    CliOption("cuts", "cut spacing of the explanations", choices=CUTS),
    CliOption("extraction_batch", "candidate prefixes per extraction step"),
    CliOption("tol", "tolerance of the complete set"),
    CliOption("seed", "seed of the explanations and the flips"),
    CliOption("duration", "seconds analysed from the start of each file"),
)


def protocol(args: argparse.Namespace) -> EvalOptions:
    """The EvalOptions of the command line: the options given, EvalOptions' defaults for the rest
    (``--iterations`` also sets the stft explanation's unless ``--stft-iterations`` is given)."""
    given = given_options(args, EVALUATE_CLI)
    if "explain_iterations" in given:
        given.setdefault("stft_explain_iterations", given["explain_iterations"])
    return EvalOptions(**given)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "evaluate",
        help="measure flip rates (k = 1..5 bins, STFT) on many clips, against baselines",
        description="For every clip: the explanation's set sizes, flip success with k changed FFT bins for the "
        "causal ranking and the random / largest-magnitude baselines, the inaudible STFT flip, SNRs, queries "
        "and seconds. One JSON line per clip is appended to --out; an interrupted run resumes where it stopped. "
        "A Markdown summary (and JSON next to it) lays the results out beside the paper's.",
    )
    p.add_argument("inputs", nargs="+", metavar="FILES_OR_DIR", help="audio files or directories (searched recursively)")
    add_model_options(p, multiple=True)
    p.add_argument("--out", required=True, help="results file (JSONL), appended to and resumed")
    p.add_argument("--summary", default=None, help="write the Markdown table here (and the JSON summary beside it)")
    p.add_argument("--limit", type=int, default=None, help="evaluate at most the first N clips (per model)")
    p.add_argument("--summarize-only", action="store_true",
                   help="evaluate nothing: summarise the records already in --out for these models and options")
    add_options(p.add_argument_group("protocol (defaults: freqrex.evaluation.EvalOptions)"), EvalOptions,
                EVALUATE_CLI)
    p.add_argument("--report", action="store_true", help="also write an HTML report next to --out (RESULTS.html)")
    p.add_argument("--workers", type=int, default=None,
                   help="run on a local Ray instance with N workers (pip install 'freqrex[ray]'); "
                        "default: in this process")
    p.add_argument("--address", default=None,
                   help="run on an existing Ray cluster: its address, or 'auto' (with --workers: that many workers)")
    p.add_argument("--threads-per-worker", type=int, default=None,
                   help="ONNX/torch threads of each worker, and CPUs of each Ray worker (default: 1 on Ray; "
                        "in this process the models' own; 1 lets two runs share a machine)")
    p.add_argument("--max-retries", type=int, default=2,
                   help="retries of a clip whose worker died or that raised (default 2); then an error record")
    p.add_argument("--no-transfer", action="store_true",
                   help="with several models, skip the transfer table (every model's sets played to the others)")
    add_common(p)
    return p


def _outputs(args: argparse.Namespace, out: Path) -> dict:
    """Every file this run writes, by role (None: not written)."""
    from ..evaluation import transfer_path

    md = Path(args.summary) if args.summary else None
    return {
        "records": out,
        "records lock": out.with_name(out.name + ".lock"),
        "transfer records": transfer_path(out) if len(args.model) > 1 and not args.no_transfer else None,
        "summary": md,
        "summary JSON": md.with_suffix(".json") if md is not None else None,
        "report": out.with_suffix(".html") if args.report else None,
    }


def run(args: argparse.Namespace) -> int:
    from ..errors import ParameterError
    from ..evaluation import (check_outputs, evaluate_many, find_audio, load_records, summarize, summary_markdown,
                              transfer_path, write_summary)
    from ..evaluation.records import current_records
    from .explain import failure_exit_code
    from ..progress import RunProgress

    options = protocol(args)
    if args.limit is not None and args.limit < 1:
        raise ParameterError(f"--limit must be >= 1, got {args.limit}")
    if args.workers is not None and args.workers < 1:
        raise ParameterError(f"--workers must be >= 1, got {args.workers}")
    if args.threads_per_worker is not None and args.threads_per_worker < 1:
        raise ParameterError(f"--threads-per-worker must be >= 1, got {args.threads_per_worker}")
    if args.max_retries < 0:
        raise ParameterError(f"--max-retries must be >= 0, got {args.max_retries}")
    if len(set(args.model)) < len(args.model):
        raise ParameterError("a --model is given twice")
    files = find_audio(args.inputs)
    if not files:
        raise ParameterError(f"no audio files in {', '.join(args.inputs)}")
    out = Path(args.out)
    check_outputs(_outputs(args, out), files)
    started = time.perf_counter()
    state = {"new": 0}
    bar = RunProgress("evaluate", enabled=not args.quiet)

    def on_record(rec, i, total, model):
        state["new"] += 1
        if args.quiet:
            return
        if rec.get("status") != "ok":
            bar.write(f"{model} [{i}/{total}] {rec['clip']}: {rec.get('error')}")
            return
        causal = rec["fft_flips"].get("causal", {})
        ks = " ".join(f"k{k}:{'Y' if v['success'] else '.'}" for k, v in causal.items())
        stft = rec.get("stft_flips", {}).get("causal")
        st = "" if stft is None else f" stft:{'Y' if stft['success'] and stft['inaudible'] else '.'}"
        bar.write(f"{model} [{i}/{total}] {rec['clip']}: '{rec['original']['name']}' causal {ks}{st} "
                  f"({rec.get('seconds', 0):.0f} s)")

    distributed = args.workers is not None or args.address is not None
    if not args.summarize_only:
        models = _models(args, distributed)
        evaluate_many(files, models, out, options=options, limit=args.limit, on_record=on_record,
                      workers=args.workers, address=args.address, threads_per_worker=args.threads_per_worker,
                      max_retries=args.max_retries, transfer=not args.no_transfer, run_progress=bar)
    keys = {name: options.key(name) for name in (_run_name(spec, args) for spec in args.model)}
    records = current_records(
        [r for r in load_records(out) if r.get("model") in keys and r.get("protocol") == keys[r["model"]]])
    transfers = None
    if len(args.model) > 1 and transfer_path(out).exists():
        transfers = [r for r in load_records(transfer_path(out))
                     if r.get("source") in keys and r.get("target") in keys
                     and r.get("source_protocol") == keys[r["source"]] and r.get("target_protocol") == keys[r["target"]]]
    if args.summary:
        md = Path(args.summary)
        summary = write_summary(records, md, md.with_suffix(".json"), transfer_records=transfers)
    else:
        summary = summarize(records, transfers)
    if args.report:
        from ..report import write_evaluation_report

        write_evaluation_report(records, Path(out).with_suffix(".html"), results_markdown=summary_markdown(summary))
    if args.json:
        from ..evaluation import _clean

        json.dump(_clean(summary), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(summary_markdown(summary), end="")
        extra = f"; summary {args.summary}" if args.summary else ""
        print(f"{len(records)} records in {out} ({state['new']} new, {time.perf_counter() - started:.0f} s){extra}",
              file=sys.stderr)
    errors = [str(r.get("error", "")) for r in records if r.get("status") != "ok"]
    # as `explain DIR`: 2, 3 or 4 by what failed (a rerun tries those clips again)
    return failure_exit_code(errors) if errors else 0


#: What a Ray worker needs of the command line to open the models as this process would: ``model`` too,
#: since with several models --output is for those that take it (:func:`open_model_spec`).
RECIPE_FIELDS = ("model", "sample_rate", "output", "class_names", "trust_model_code")


def _models(args: argparse.Namespace, distributed: bool) -> dict:
    """Run name -> the model opened here, or (on Ray) the recipe each worker opens it from."""
    from ..evaluation.jobs import ModelFactory

    if distributed:  # each Ray worker builds the models from these recipes
        recipe = argparse.Namespace(**{k: getattr(args, k, None) for k in RECIPE_FIELDS})
        if recipe.model is not None:
            recipe.model = list(recipe.model)
        return {_run_name(spec, args): ModelFactory(open_model_spec, spec, recipe) for spec in args.model}
    return {_run_name(spec, args): open_model_spec(spec, args) for spec in args.model}


def _run_name(spec: str, args: argparse.Namespace) -> str:
    """The name a model's records are kept under: its --model value, with the adapter options given
    (--output, --sample-rate, --class-names): the same file read another way is another model."""
    given = [f"{flag}={getattr(args, attr)}" for attr, flag in
             (("output", "output"), ("sample_rate", "sample-rate"), ("class_names", "class-names"))
             if getattr(args, attr, None) is not None]
    return spec if not given else f"{spec} ({', '.join(given)})"
