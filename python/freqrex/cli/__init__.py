"""The ``freqrex`` command line.

Sub-commands live in modules of this package, each with ``add_parser(subparsers)``
and ``run(args) -> int``. Exit codes:

====  =========================================================
0     success
1     unexpected internal error (a bug: please report it)
2     bad usage or options (ParameterError)
3     an audio or result file that is missing, cannot be decoded, or cannot
      be written (a full disk, no permission: AudioFileError, OSError)
4     a model that cannot be loaded or misbehaves (ModelError)
130   interrupted
141   stdout closed by its reader (``| head``): no message
====  =========================================================
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import sys
from typing import List, Optional

from ..errors import AudioFileError, FreqrexError, ModelError, ParameterError
from .model_options import add_model_options, open_model, open_model_spec  # noqa: F401  (the commands' shared model options)

EXIT_OK, EXIT_BUG, EXIT_USAGE, EXIT_AUDIO, EXIT_MODEL, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a pipe's writer killed by it

#: Sub-command modules, in help order. A module missing from the install is skipped.
COMMANDS = ("explain", "flip", "evaluate", "report", "models")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="freqrex",
        description="Explain and stress-test audio classifiers by causal analysis of the frequency space.",
        epilog="Exit codes: 0 ok, 1 internal error, 2 bad options, 3 bad audio or output file, 4 model error, "
               "130 interrupted, 141 stdout closed (| head).",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"freqrex {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue
            raise
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def add_common(p: argparse.ArgumentParser) -> None:
    """Options every command shares."""
    p.add_argument("--json", action="store_true", help="print a JSON result on stdout instead of text")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def open_clip(args: argparse.Namespace, model):
    """(audio, sample_rate, source) of the AUDIO argument at the model's rate, or the demo clip."""
    from ..io import demo_clip, load_audio

    rate = int(getattr(model, "sample_rate", None) or 16000)
    duration = getattr(args, "duration", None)
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise ParameterError(f"--duration must be a positive number of seconds, got {duration}")
    if args.audio is None:
        audio, sr = demo_clip(sample_rate=rate)
        return audio[: int(args.duration * sr)], sr, "built-in demo clip"
    audio, sr = load_audio(args.audio, sample_rate=rate, duration=args.duration)
    return audio, sr, args.audio


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    try:
        code = int(args._run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        # The reader of stdout went away (`freqrex ... --json | head`): stop quietly, and
        # keep Python from complaining again when it flushes stdout at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        print("freqrex: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ParameterError, AudioFileError, ModelError, FreqrexError) as exc:
        _traceback(debug)
        code = (
            EXIT_USAGE if isinstance(exc, ParameterError)
            else EXIT_AUDIO if isinstance(exc, AudioFileError)
            else EXIT_MODEL if isinstance(exc, ModelError)
            else EXIT_BUG
        )
        kind = {EXIT_USAGE: "error", EXIT_AUDIO: "audio error", EXIT_MODEL: "model error"}.get(code, "error")
        cause = f" ({type(exc.__cause__).__name__}: {exc.__cause__})" if exc.__cause__ and str(exc.__cause__) not in str(exc) else ""
        print(f"freqrex: {kind}: {exc}{cause}", file=sys.stderr)
        return code
    except OSError as exc:  # the environment: a full disk, no permission, a path that is a file
        _traceback(debug)
        print(f"freqrex: file error: {exc}", file=sys.stderr)
        return EXIT_AUDIO
    except MemoryError:
        _traceback(debug)
        print("freqrex: error: out of memory (try a shorter clip, a smaller batch_size or budget)", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # a bug of ours: one line, unless --debug
        _traceback(debug)
        print(f"freqrex: internal error: {type(exc).__name__}: {exc}"
              + ("" if debug else " (run with --debug for a traceback)"), file=sys.stderr)
        return EXIT_BUG


def _traceback(debug: bool) -> None:
    """With ``--debug``, the traceback of the error being handled, on stderr; the exit code stays the
    one the error gives without it."""
    if debug:
        import traceback

        traceback.print_exc(file=sys.stderr)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
