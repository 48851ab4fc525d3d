"""The explanation's options on the command line, generated from :class:`freqrex.options.ExplainOptions`.

Every option is parsed with ``default=None`` and only the ones given are
passed on, so the command line, the Python API and ``evaluate`` share the
defaults of one dataclass; ``--help`` shows them from there.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Dict, Optional

from ..options import CUTS, FILLS, RULES, SPACES, ExplainOptions
from ..quality import DEFAULT_FRACTIONS

#: Queries the deletion/insertion curves spend (two per fraction), kept inside --max-queries.
QUALITY_QUERIES = 2 * len(DEFAULT_FRACTIONS)

_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ExplainOptions)}


def _class(value: str):
    """A class by index (digits) or by name."""
    return int(value) if value.isdigit() else value


#: option -> (type, choices, help). The default shown is ExplainOptions'.
_CLI = {
    "space": (str, SPACES, "frequency space: the whole clip's rFFT or an STFT grid"),
    "rule": (str, RULES, "responsibility estimator: 'margin' (every query's continuous margin, by "
             "regression over a mel partition tree) or the paper's pass/fail rules ('rex' as ReX, "
             "'minimal', 'confidence')"),
    "max_queries": (int, None, "model queries of the whole explanation: the original, the search, the "
                    "extraction, the sets' margins, and (unless --no-quality) the quality curves"),
    "budget": (int, None, "at most this many of them for the search"),
    "iterations": (int, None, "random partition refinements (pass/fail rules only)"),
    "seed": (int, None, "seed of the random partitions and coalitions"),
    "cuts": (str, CUTS, "cut spacing of the pass/fail rules' partitions"),
    "target": (_class, None, "explain this class (index or name) instead of the model's decision"),
    "contrast": (_class, None, "explain the target against this class (index or name): why A and not B?"),
    "n_bands": (int, None, "mel bands of the margin search's first partition"),
    "resolution": (int, None, "the model's resolution in mel bands over 0..Nyquist: parts are not split "
                   "below one band unless budget is left"),
    "effect_weight": (float, None, "margin rule: the ranking is log-energy plus this times each part's "
                      "standardised effect (0: magnitude alone)"),
    "fill": (str, FILLS, "margin rule, fft space: also score every coalition with its removed bins "
             "filled with noise at the clip's local level (two queries a coalition); 'none': zero only"),
    "margin_tol": (float, None, "margin rule: the sets keep the target ahead by at least this (or half the clip's own margin); "
                   "a set whose margin is below it is reported as not trustworthy"),
    "fmin": (float, None, "lowest frequency searched (Hz); bins outside are always kept"),
    "fmax": (float, None, "highest frequency searched (Hz)"),
    "n_fft": (int, None, "STFT window (stft space)"),
    "hop_length": (int, None, "STFT hop (stft space)"),
    "batch_size": (int, None, "mutants per model call"),
}


def add_explain_options(p: argparse.ArgumentParser) -> None:
    """Add the explanation's options, each with ``default=None`` and ExplainOptions' default in its help."""
    g = p.add_argument_group("explanation options (defaults: freqrex.options.ExplainOptions)")
    for name, (kind, choices, text) in _CLI.items():
        default = _DEFAULTS[name]
        g.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, choices=choices, default=None,
                       help=f"{text} (default {default})")


def explain_kwargs(args: argparse.Namespace, *, quality: Optional[bool] = None) -> Dict[str, Any]:
    """The options given on the command line; with the quality curves on, their queries come out of
    ``max_queries`` so the whole run stays within it."""
    out = {name: getattr(args, name) for name in _CLI if getattr(args, name, None) is not None}
    if quality is None:
        quality = not getattr(args, "no_quality", True)
    total = out.get("max_queries", _DEFAULTS["max_queries"])
    if quality and total is not None:
        if int(total) <= QUALITY_QUERIES:
            from ..errors import ParameterError

            raise ParameterError(
                f"--max-queries {total} leaves no query for the explanation once the quality curves take "
                f"their {QUALITY_QUERIES}: give more than {QUALITY_QUERIES}, or --no-quality")
        out["max_queries"] = int(total) - QUALITY_QUERIES
    return out


def _class_name(c: Optional[int], names) -> str:
    if c is None:
        return "?"
    if names is not None and 0 <= c < len(names):
        return repr(str(names[c]))
    return f"class {c}"


def describe_set(e, name: str, share: Optional[Dict[str, float]], names=None) -> str:
    """One line: size and shares, the margins kept alone and removed, and the merged ranges."""
    label = "sufficient & necessary" if name == "sufficient_necessary" else name
    if e.get_set(name) is None:
        return f"  {label:<22} absent: {e.reasons.get(name)}"
    sh = share or {}
    size = f"{e.size(name):>7} elements ({100 * sh.get('bins', 0):.1f}% of bins" + \
        (f", {100 * sh['energy']:.1f}% of energy)" if "energy" in sh else ")")
    if name == "sufficient_necessary" and sh.get("bins", 0) > 0.5:
        return (f"  {label:<22} none small: the decision is spread over {100 * sh['bins']:.0f}% of the bins "
                "(see the warnings)")
    mg = e.set_margins.get(name, {})
    parts = []
    if mg.get("kept_margin") is not None:
        parts.append(f"alone: margin {mg['kept_margin']:+.4f}")
    if mg.get("removed_margin") is not None:
        parts.append(f"removed: {_class_name(mg.get('removed_class'), names)} wins, margin {mg['removed_margin']:+.4f}")
    ranges = ", ".join(str(r) for r in e.ranges(name))
    return f"  {label:<22} {size}; {'; '.join(parts)}\n  {'':<22} where: {ranges}"
