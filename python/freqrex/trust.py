"""Can this explanation be trusted? Set margins, and warnings when it cannot.

A set is only a finding when the model's decision holds on it by a margin: a
"sufficient" set that keeps the class by 0.0002 says more about the model's
ties than about the audio. Every set reports the decision's **margin** (the
target's score minus the best other class's; or minus the contrast class's)
when the set is kept alone and when it is removed from the clip, with the
class that wins in each case. :func:`warnings_for` lists, in one line each,
the reasons to distrust an explanation.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from .margin import margin_of

#: A set covering more than this share of the searched cells is not "small".
LARGE_SET = 0.5
#: The largest share of cells that may share one responsibility value before a map is "nearly flat".
FLAT_PLATEAU = 0.9


def _name(c: Optional[int], names: Optional[Sequence[str]]) -> str:
    if c is None:
        return "?"
    if names is not None and 0 <= c < len(names):
        return repr(str(names[c]))
    return f"class {c}"


def set_margins(
    masks: Dict[str, Optional[np.ndarray]],
    band: tuple,
    synthesize: Callable[[np.ndarray], np.ndarray],
    score_of: Callable[[np.ndarray], Optional[np.ndarray]],
    target: int,
    contrast: Optional[int],
) -> Dict[str, Dict[str, Any]]:
    """Margins of every present set, kept alone and removed.

    ``masks`` are (n_frames, n_bins) booleans over the searched band;
    ``score_of(wave)`` returns the model's scores (from a cache or a query
    within budget) or None when the budget is spent.
    """
    out: Dict[str, Dict[str, Any]] = {}
    b0, b1 = band
    for name, m in masks.items():
        if m is None:
            continue
        keep = np.ones_like(m, dtype=bool)
        keep[:, b0:b1] = m[:, b0:b1]
        remove = np.ones_like(m, dtype=bool)
        remove[:, b0:b1] = ~m[:, b0:b1]
        entry: Dict[str, Any] = {}
        for label, mask in (("kept", keep), ("removed", remove)):
            wave = np.asarray(synthesize(mask[None]))[0]
            row = score_of(wave)
            if row is None:
                entry[f"{label}_margin"] = None
                entry[f"{label}_class"] = None
                continue
            entry[f"{label}_margin"] = float(margin_of(row, target, contrast)[0])
            entry[f"{label}_class"] = int(np.argmax(row))
        out[name] = entry
    return out


def warnings_for(
    *,
    original: np.ndarray,
    target: int,
    decision: int,
    names: Optional[Sequence[str]],
    responsibility: np.ndarray,
    band: tuple,
    rule: str,
    effects: Optional[np.ndarray],
    margin: float,
    empty_scores: Optional[np.ndarray],
    masks: Dict[str, Optional[np.ndarray]],
    margins: Dict[str, Dict[str, Any]],
    margin_tol: float,
    truncated: bool,
) -> List[str]:
    """One line per reason to distrust an explanation (empty when there is none)."""
    out: List[str] = []
    row = np.asarray(original, dtype=np.float64).reshape(-1)
    top = row.max()
    if np.count_nonzero(row >= top - 1e-12) > 1:
        tied = [int(c) for c in np.flatnonzero(row >= top - 1e-12)]
        out.append(f"the model's output is tied between {', '.join(_name(c, names) for c in tied)}: "
                   "its decision is an arbitrary pick")
    if target != decision:
        out.append(f"explaining {_name(target, names)}, which is not the model's decision "
                   f"({_name(decision, names)}): the sets ask when it would be")
    if empty_scores is not None and int(np.argmax(empty_scores)) == target:
        out.append(f"the masked clip alone (every searched cell removed) is already {_name(target, names)}: "
                   "the decision does not need the searched frequencies, so no set can say which matter")
    b0, b1 = band
    r = np.asarray(responsibility).reshape(-1, np.asarray(responsibility).shape[-1])[:, b0:b1].ravel()
    if r.size and np.ptp(r) == 0:
        out.append("the responsibility map is flat: no part was found to matter, and the ranking is by "
                   "magnitude alone")
    elif rule == "margin" and effects is not None and effects.size and \
            float(np.max(np.abs(effects))) < margin_tol * max(abs(margin), 1e-12):
        out.append(f"the responsibility map is nearly flat: no part's removal moves the margin by more than "
                   f"{margin_tol:g} of it")
    elif rule != "margin" and r.size:
        _, counts = np.unique(r, return_counts=True)
        share = counts.max() / r.size
        if share > FLAT_PLATEAU:
            out.append(f"the responsibility map is nearly flat: {share:.0%} of the searched cells share one "
                       "value, so the sets come from the magnitude tie-break")
    n_band = r.size
    for name, m in masks.items():
        if m is None:
            continue
        mg = margins.get(name, {})
        kept = mg.get("kept_margin")
        if kept is not None and 0 <= kept < margin_tol:
            out.append(f"the {name.replace('_', ' & ')} set keeps {_name(target, names)} by a margin of only "
                       f"{kept:.4g} (below margin_tol={margin_tol:g})")
        removed = mg.get("removed_margin")
        if name == "sufficient_necessary" and removed is not None and -margin_tol < removed < 0:
            out.append(f"removing the sufficient & necessary set changes the decision by a margin of only "
                       f"{-removed:.4g} (below margin_tol={margin_tol:g})")
        share = float(m[:, b0:b1].sum()) / max(n_band, 1)
        if name == "sufficient_necessary" and share > LARGE_SET:
            out.append(f"no small necessary set: the decision is spread over most of the spectrum "
                       f"(the sufficient & necessary set is {share:.0%} of the searched cells)")
    if truncated:
        out.append("the query budget ran out before every set was settled")
    return out
