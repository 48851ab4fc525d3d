"""``freqrex flip``: change a few frequencies so that the model changes its mind."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .._atomic import begin_save, check_out_folder, explanation_in
from ..manipulation.options import CHANGES, FLIP_SPACES, FLIP_STRATEGIES, FlipOptions
from ..manipulation.result import check_beside_explanation
from ..options import CUTS, ExplainOptions
from . import add_common, add_model_options, open_clip, open_model
from .dataclass_options import CliOption, add_options, given_options

DEFAULT_MODEL = "MSD_musicnn"

#: ``freqrex flip``'s options: one for every field of FlipOptions, which holds the defaults.
FLIP_CLI = (
    CliOption("k", "most FFT bins changed together"),
    CliOption("space", "whole-clip FFT bins, or STFT cells kept under the masking threshold", choices=FLIP_SPACES),
    CliOption("budget", "model queries of the flip search"),
    CliOption("explain_budget", "budget of the explanation"),
    CliOption("explain_iterations", "iterations of the explanation", flag="--iterations"),
    CliOption("strategy", "where candidates come from: the causal maps, the additive partition search "
              "(quiet tones added to mel bands), or a baseline; auto: the additive search for an fft quietest "
              "flip, else causal", choices=FLIP_STRATEGIES),
    CliOption("change", "quietest: the quietest addition/subtraction (fft) or masked change (stft); "
              "auto: fixed removal, then gain", choices=CHANGES),
    CliOption("probe_snr_db", "SNR at which candidates are first tried (dB)"),
    CliOption("min_snr_db", "the loudest change allowed (SNR, dB)"),
    CliOption("max_snr_db", "the quietest change worth finding (SNR, dB)"),
    CliOption("tol_db", "resolution of the amplitude search (dB)"),
    CliOption("masking_safety_db", "stft: cells are bounded this many dB under the masking threshold"),
    CliOption("max_gain_db", "gain of the fixed 'gain' change (dB)"),
    CliOption("max_phase", "rotation of the fixed 'phase' change (rad)", parse=float),
    CliOption("candidates", "fixed changes: candidates considered; None: enough for the budget", parse=int),
    CliOption("minimize", "fixed changes: keep a flipping block whole instead of shrinking it",
              flag="--no-minimize", switch_off=True),
    CliOption("margin_safety_db", "fixed stft changes: margin of the uniform scaling under the threshold (dB)"),
    CliOption("target", "targeted flip: class index or name to reach; None: any other class", parse=str),
    CliOption("seed", "seed of the candidates, the tones' phases and the explanation"),
    CliOption("n_fft", "STFT window (stft space)"),
    CliOption("hop_length", "STFT hop (stft space)"),
    CliOption("batch_size", "most perturbed clips per model call"),
)
#: Options of the explanation a causal flip computes (the rest of ExplainOptions keeps its defaults).
EXPLANATION_CLI = (CliOption("cuts", "cut spacing of the explanation", choices=CUTS),)


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "flip",
        help="flip the model's label by changing k frequencies (or a few STFT cells, inaudibly)",
        description="Find a change of at most k frequency bins (fft) or STFT cells kept under the masking "
        "threshold (stft) that changes the model's top-1 class: by default (fft) the additive causal search, "
        "which adds quiet tones where they cut the decision's margin; stft: the explanation's causal ranking "
        "(or a baseline). Writes flip.json, original.wav and, for a flip, "
        "perturbed.wav; a failed flip reports how close it came and writes no perturbed audio.",
    )
    p.add_argument("audio", nargs="?", help="audio file; default: the built-in demo clip")
    add_model_options(p)
    add_options(p.add_argument_group("flip options (defaults: freqrex.manipulation.FlipOptions)"),
                FlipOptions, FLIP_CLI)
    add_options(p.add_argument_group("explanation options (defaults: freqrex.options.ExplainOptions)"),
                ExplainOptions, EXPLANATION_CLI)
    p.add_argument("--vulnerability", action="store_true",
                   help="also write the vulnerability spectrum (where an added quiet tone moves the model): "
                        "vulnerability/ (vulnerability.json) and vulnerability.png; the additive strategy's own, "
                        "else an additive search of --budget more queries")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of audio analysed from the start (default 30)")
    p.add_argument("--out", default="freqrex-flip", help="output directory (default ./freqrex-flip)")
    p.add_argument("--report", action="store_true", help="also write report.html in the output directory (flip-report.html in an explanation's "
                   "folder, whose report.html is the explanation's)")
    p.add_argument("--save-closest", action="store_true",
                   help="when no flip is found, write the closest attempt as closest_attempt.wav "
                        "(never perturbed.wav)")
    add_common(p)
    return p


def _target(spec, model):
    if spec is None:
        return None
    from ..errors import ParameterError

    text = spec.strip()
    if text.lstrip("-").isdecimal():  # isdigit() takes '²', which int() refuses
        try:
            return int(text)
        except ValueError:  # pragma: no cover - isdecimal() strings are ints
            pass
    names = [str(n) for n in (getattr(model, "class_names", None) or [])]
    lowered = [n.lower() for n in names]
    if spec.lower() in lowered:
        return lowered.index(spec.lower())
    raise ParameterError(f"unknown target class {spec!r}" + (f"; the model's classes: {', '.join(names)}" if names else ""))


def run(args: argparse.Namespace) -> int:
    from ..manipulation import flip
    from ..progress import ProgressBar

    out = Path(args.out)
    check_out_folder(out)  # before any query: a --out that cannot be a folder fails at once
    model = open_model(args)
    audio, sr, source = open_clip(args, model)
    # in an explanation's folder: of the same clip only (its original.wav stays), its report.html kept
    beside_explanation = check_beside_explanation(out, audio, sr)
    report_file = FLIP_REPORT_FILE if beside_explanation else REPORT_FILE
    given = given_options(args, FLIP_CLI)
    if "target" in given:
        given["target"] = _target(given["target"], model)
    options = FlipOptions(**given)
    bar = ProgressBar("flip", enabled=not args.quiet)
    start = time.perf_counter()
    try:
        r = flip(audio, sr, model, options=options, progress=bar, **given_options(args, EXPLANATION_CLI))
    finally:
        bar.close()
    spectrum = r.vulnerability
    if args.vulnerability and spectrum is None:
        from ..manipulation import vulnerability

        bar = ProgressBar("vulnerability", enabled=not args.quiet)
        try:
            spectrum = vulnerability(audio, sr, model, budget=options.budget, seed=options.seed,
                                     target=options.target, batch_size=options.batch_size,
                                     probe_snr_db=options.probe_snr_db, min_snr_db=options.min_snr_db,
                                     max_snr_db=options.max_snr_db, tol_db=options.tol_db, progress=bar)
        finally:
            bar.close()
        r.vulnerability = spectrum
    extra = dict(audio=source, model=args.model, out=str(out), seconds=time.perf_counter() - start)
    begin_save(out, "flip")  # the folder, checked (a file of that name is a ParameterError), marked incomplete
    # outputs of an earlier run into this folder that this run does not write: never beside the new flip.json
    _remove_stale(out, report=not args.report, vulnerability=not args.vulnerability)
    if args.vulnerability:
        extra["vulnerability"] = _save_spectrum(spectrum, out)
    # perturbed.wav only for a flip; original.wav and these fields are part of the save its manifest checks
    r.save(out, closest_attempt=args.save_closest, original=audio, extra=extra)
    summary = r.summary_with(extra)  # what flip.json holds
    if args.report:
        from ..report import write_flip_report

        write_flip_report(r, out / report_file, audio=audio, model_name=args.model, source=source)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    orig = r.original_name or str(r.original_class)
    new = r.new_name or str(r.new_class)
    what = "cells" if r.space == "stft" else "bins"
    scope = ("as many cells as it needs under the masking threshold" if r.method == "masked"
            else f"k <= {r.k} {what}")  # the masked STFT search takes no k
    print(f"{source}: model {args.model} says '{orig}' ({r.original_score:.3f}); strategy {r.strategy}, "
          f"{scope}, budget {r.budget}")
    if r.success:
        size = {"gain": f"{r.gain_db or 0:+g} dB gain", "phase": f"{r.phase_rad or 0:.2f} rad phase",
                "remove": "removal", "add": "an in-phase addition", "subtract": "an anti-phase subtraction",
                "mixed": "additions and subtractions", "masked": "a change under the masking threshold"}[r.change]
        print(f"FLIPPED to '{new}' ({r.new_score:.3f}; '{orig}' now {r.original_class_score:.3f}) by {size} of "
              f"{r.n_changed} {what if r.n_changed > 1 else what[:-1]}:")
        for i, f in enumerate(r.frequencies_hz[:16]):
            at = f" at {r.times_s[i]:.2f} s" if r.times_s is not None else ""
            print(f"  bin {int(r.bins[i])}: {f:.3f} Hz{at}")
        if r.bins.size > 16:
            print(f"  ... and {r.bins.size - 16} more")
        print(audibility_line(r))
        wrote = "original.wav, perturbed.wav, flip.json"
    else:
        print(no_flip_line(r))
        wrote = "original.wav, flip.json" + (", closest_attempt.wav" if args.save_closest else "")
    if args.report:
        wrote += f", {report_file}"
    if args.vulnerability:
        wrote += ", vulnerability/" + (", vulnerability.png" if summary["vulnerability"]["plot"] else "")
        print(vulnerability_line(spectrum))
    print(f"queries {r.queries} (explanation {r.explanation_queries}, flip {r.flip_queries}), "
          f"{summary['seconds']:.1f} s; wrote {out}/ ({wrote})")
    return 0


#: What ``freqrex flip`` writes beside flip.json when asked: report.html (--report; flip-report.html in an
#: explanation's folder, whose report.html is the explanation's), the vulnerability spectrum's folder and
#: plot (--vulnerability).
REPORT_FILE = "report.html"
FLIP_REPORT_FILE = "flip-report.html"
SPECTRUM_DIR = "vulnerability"
SPECTRUM_PLOT = "vulnerability.png"
#: The files a saved spectrum folder holds (VulnerabilitySpectrum.save).
SPECTRUM_FILES = ("vulnerability.json", "vulnerability-manifest.json")


def _remove_stale(out: Path, *, report: bool, vulnerability: bool) -> None:
    """Remove report.html (``report``) and the vulnerability folder and plot (``vulnerability``) that an
    earlier run left in ``out``: a folder only holds what its flip.json describes.  A vulnerability
    folder with other files in it keeps them; in an explanation's folder (a flip beside it, the layout
    ``freqrex report`` reads) report.html is the explanation's and stays (the flip's is flip-report.html)."""
    import contextlib
    import os

    from ..errors import AudioFileError

    names = ([FLIP_REPORT_FILE] if report and explanation_in(out) else [REPORT_FILE] if report else [])
    names += [SPECTRUM_PLOT] if vulnerability else []
    files = [out / n for n in names] + ([out / SPECTRUM_DIR / n for n in SPECTRUM_FILES] if vulnerability else [])
    try:
        for f in files:
            if f.is_file() or f.is_symlink():
                f.unlink()
        if vulnerability and (out / SPECTRUM_DIR).is_dir():
            with contextlib.suppress(OSError):  # not empty: files that are not ours stay
                os.rmdir(out / SPECTRUM_DIR)
    except OSError as exc:
        raise AudioFileError(f"cannot remove an earlier run's output in {out}: {exc.strerror or exc}") from exc


def _save_spectrum(spectrum, out: Path) -> dict:
    """Save the spectrum under ``out/vulnerability`` and plot it to ``out/vulnerability.png``
    (when matplotlib is installed); what was written, for flip.json."""
    spectrum.save(out / "vulnerability")
    plot = None
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if (out / SPECTRUM_PLOT).is_file():  # an earlier run's plot would pass for this spectrum's
            try:
                (out / SPECTRUM_PLOT).unlink()
            except OSError as exc:
                from ..errors import AudioFileError

                raise AudioFileError(f"cannot remove {out / SPECTRUM_PLOT}: {exc.strerror or exc}") from exc
    else:
        from ..viz.vulnerability import plot_vulnerability

        ax = plot_vulnerability(spectrum)
        ax.figure.savefig(out / SPECTRUM_PLOT, dpi=120)
        plot = SPECTRUM_PLOT
    return {"directory": "vulnerability", "plot": plot, "queries": spectrum.queries,
            "most_vulnerable": spectrum.most_vulnerable(5)}


def vulnerability_line(spectrum) -> str:
    """The most vulnerable bands of a spectrum, in one line."""
    bands = spectrum.most_vulnerable(3)
    if not bands:
        return "vulnerability: no band measured"
    parts = []
    for b in bands:
        share = "n/a" if b["cut_share"] is None else f"{100 * b['cut_share']:.0f}%"
        flip = "" if b["flip_snr_db"] is None else f", flips at {b['flip_snr_db']:.1f} dB SNR"
        parts.append(f"{b['lo_hz']:.0f}-{b['hi_hz']:.0f} Hz (margin cut {share}{flip})")
    return f"vulnerability ({spectrum.queries} queries): most vulnerable " + "; ".join(parts)


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _db(v) -> str:
    return "n/a" if v is None else f"{v:+.1f} dB"


def audibility_line(r) -> str:
    """One line with every audibility measure of a flip."""
    verdict = "inaudible (under both thresholds in every cell)" if r.inaudible else "AUDIBLE by the masking model"
    return (f"SNR {r.snr_db:.1f} dB (quietest frame {r.quietest_frame_snr_db:.1f} dB), dB_x {r.db_x:.1f}; "
            f"{verdict}: over freqrex's threshold in {_pct(r.over_threshold_share)} of cells "
            f"(largest excess {_db(r.max_excess_db)}), over ART's in {_pct(r.art_over_threshold_share)} "
            f"(largest {_db(r.art_max_excess_db)}); louder than the clip in {_pct(r.louder_than_clip_share)} of cells")


def no_flip_line(r) -> str:
    """The one line a failed flip prints: how close it came, and that no audio was written as a result."""
    orig = r.original_name or str(r.original_class)
    other = r.closest_name or str(r.closest_class)
    if r.target is not None:
        return (f"NO FLIP within {r.budget} queries: the closest attempt left the target '{other}' "
                f"{-r.closest_margin:.3f} short of the top class; no perturbed audio written")
    return (f"NO FLIP within {r.budget} queries: the closest attempt left '{orig}' {-r.closest_margin:.3f} "
            f"ahead of '{other}' (its nearest rival); no perturbed audio written")
