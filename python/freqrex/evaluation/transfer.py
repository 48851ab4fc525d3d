"""How explanations transfer between models: A's sets played to model B.

For every clip and ordered pair of models (A, B), A's sufficient set and
complete set (the ``fft`` explanation's bins, kept alone, everything else
zeroed, exactly as freqrex scores a set) are played to B.  Each transfer
record says whether B keeps its own decision on the clip and whether B's
decision on the set equals A's decision (by class name when both models name
their classes, else by index).

A record keeps each set as its bit mask over A's spectrum (``kept_bins``,
:func:`pack_kept_bins`: packed bits, zlib, base64; about 30 times smaller than
the frequency ranges older records kept as ``kept_bands_hz``).  Sets travel to
B as frequency ranges (:func:`kept_bands_hz_of`), so models at different sample
rates can be compared: B keeps every bin of its own spectrum whose centre lies
within half of A's bin width of a range.  At equal rate and length this is
exactly A's set.

The records live beside the evaluation's (``<out>.transfer.jsonl``, see
:func:`transfer_path`); :func:`transfer_matrix` and :func:`transfer_markdown`
turn them into the model-by-model matrix.
"""

from __future__ import annotations

import base64
import binascii
import os
import zlib
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from .._records import standing
from ..errors import ResultFileError
from ..viz.html import markdown_table

#: The sets played to the other model.
TRANSFER_SETS = ("sufficient", "complete")


def transfer_path(out: os.PathLike) -> Path:
    """Where the transfer records of the evaluation records ``out`` go: ``<stem>.transfer.jsonl`` beside it."""
    out = Path(out)
    return out.with_name(out.stem + ".transfer.jsonl")


#: How ``kept_bins`` stores a set: the mask's bits packed (:func:`numpy.packbits`), zlib, base64.
KEPT_BINS_ENCODING = "packbits-zlib-base64"


def pack_kept_bins(keep: np.ndarray) -> Dict[str, Any]:
    """A set's boolean mask over the bins as a record stores it (``kept_bins``).

    Returns ``{"encoding", "n_bins", "count", "data"}``: ``count`` the kept bins,
    ``data`` the packed mask (:data:`KEPT_BINS_ENCODING`).  Lossless:
    :func:`unpack_kept_bins` gives the mask back.
    """
    keep = np.asarray(keep, dtype=bool).reshape(-1)
    data = base64.b64encode(zlib.compress(np.packbits(keep).tobytes(), 9)).decode("ascii")
    return {"encoding": KEPT_BINS_ENCODING, "n_bins": int(keep.size), "count": int(keep.sum()), "data": data}


def unpack_kept_bins(packed: Mapping[str, Any]) -> np.ndarray:
    """The boolean mask of a record's ``kept_bins`` (:func:`pack_kept_bins`).

    Raises
    ------
    ResultFileError
        An unknown encoding, or data that is not a packed mask of ``n_bins``
        bins with ``count`` of them kept.
    """
    if not isinstance(packed, Mapping) or packed.get("encoding") != KEPT_BINS_ENCODING:
        enc = packed.get("encoding") if isinstance(packed, Mapping) else type(packed).__name__
        raise ResultFileError(f"kept_bins: unknown encoding {enc!r} (this freqrex reads {KEPT_BINS_ENCODING!r})")
    try:
        n = int(packed["n_bins"])
        raw = zlib.decompress(base64.b64decode(str(packed["data"]), validate=True))
    except (KeyError, TypeError, ValueError, binascii.Error, zlib.error) as exc:
        raise ResultFileError(f"kept_bins: not a packed mask ({exc})") from None
    if n < 0 or len(raw) != (n + 7) // 8:
        raise ResultFileError(f"kept_bins: {len(raw)} bytes do not hold {n} bins")
    keep = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), count=n).astype(bool)
    if packed.get("count") is not None and int(packed["count"]) != int(keep.sum()):
        raise ResultFileError(f"kept_bins: {int(keep.sum())} bins kept, the record says {packed['count']}")
    return keep


def bands_of_mask(keep: np.ndarray, bin_hz: float) -> List[List[float]]:
    """``[[first, last], ...]``: the centres (Hz, bin ``i`` at ``i * bin_hz``) of every run of kept bins."""
    idx = np.flatnonzero(np.asarray(keep, dtype=bool).reshape(-1))
    if idx.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(idx) > 1)
    starts = np.concatenate([[idx[0]], idx[breaks + 1]])
    ends = np.concatenate([idx[breaks], [idx[-1]]])
    return [[float(a) * float(bin_hz), float(b) * float(bin_hz)] for a, b in zip(starts, ends)]


def kept_bands_hz_of(set_record: Mapping[str, Any], bin_hz: float) -> Optional[List[List[float]]]:
    """The frequency ranges of a record's set: from ``kept_bins`` (record version 6 on), or the
    ``kept_bands_hz`` of older records; None when the set is absent or the record kept neither."""
    if set_record.get("kept_bins") is not None:
        return bands_of_mask(unpack_kept_bins(set_record["kept_bins"]), bin_hz)
    bands = set_record.get("kept_bands_hz")
    return None if bands is None else [[float(lo), float(hi)] for lo, hi in bands]


def has_kept_set(set_record: Mapping[str, Any]) -> bool:
    """Whether a record's set says which bins it keeps (records of version 3 on; None for an absent set)."""
    return "kept_bins" in set_record or "kept_bands_hz" in set_record


def keep_mask(bands_hz: Sequence[Sequence[float]], source_bin_hz: float, n_samples: int,
              sample_rate: int) -> np.ndarray:
    """Bins of an ``n_samples`` clip at ``sample_rate`` whose centre lies within a band (± half a source bin)."""
    freqs = np.arange(n_samples // 2 + 1, dtype=np.float64) * (float(sample_rate) / float(n_samples))
    keep = np.zeros(freqs.size, dtype=bool)
    if not len(bands_hz):
        return keep
    bands = np.asarray(sorted((float(lo), float(hi)) for lo, hi in bands_hz), dtype=np.float64)
    tol = 0.5 * float(source_bin_hz)
    lo, hi = bands[:, 0] - tol, bands[:, 1] + tol
    idx = np.searchsorted(lo, freqs, side="right") - 1
    inside = idx >= 0
    keep[inside] = freqs[inside] <= np.maximum.accumulate(hi)[idx[inside]]
    return keep


def _decision(scores: np.ndarray, names: Optional[Sequence[str]]) -> Dict[str, Any]:
    c = int(np.argmax(scores))
    name = str(names[c]) if names is not None and c < len(names) else None
    return {"class": c, "name": name, "score": float(scores[c])}


def transfer_sets(audio: np.ndarray, sample_rate: int, model: Any,
                  sources: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """Play the sets of other models' explanations to ``model`` (one batch).

    Parameters
    ----------
    audio : ndarray
        The clip at ``model``'s sample rate.
    sample_rate : int
    model : callable
        Model B.
    sources : list of dict
        One per model A: ``source`` (its name), ``decision`` (A's
        ``{"class", "name"}`` on the clip), ``bin_hz`` (A's FFT bin width) and
        ``sets`` (set name -> its frequency ranges, :func:`kept_bands_hz_of`, or
        None for an absent set).

    Returns
    -------
    dict
        ``original`` (B's decision on the clip) and ``results``: per source,
        per set, B's decision on the set, ``keeps_target_decision`` and
        ``equals_source_decision``.
    """
    from .._checks import call_model, check_audio
    from ..explainer import _backend

    x = check_audio(audio)
    space_cls, _ = _backend("rust")
    space = space_cls(x, space="fft", n_fft=2048, hop_length=512, mask_value=0.0, n_threads=None)
    masks: List[np.ndarray] = []
    slots: List[tuple] = []
    for i, src in enumerate(sources):
        for name in TRANSFER_SETS:
            bands = (src.get("sets") or {}).get(name)
            if bands is None:
                continue
            masks.append(keep_mask(bands, src["bin_hz"], x.size, sample_rate))
            slots.append((i, name))
    waves = [x.astype(np.float32)[None, :]]
    if masks:
        waves.append(np.asarray(space.synthesize(np.stack(masks)[:, None, :]), dtype=np.float32))
    scores = call_model(model, np.concatenate(waves, axis=0))
    names = getattr(model, "class_names", None)
    original = _decision(scores[0], names)
    results: List[Dict[str, Any]] = []
    for src in sources:
        results.append({name: {"present": False} for name in TRANSFER_SETS})
    for row, (i, name) in enumerate(slots, 1):
        d = _decision(scores[row], names)
        src_dec = sources[i]["decision"]
        if d["name"] is not None and src_dec.get("name") is not None:
            equal = d["name"] == src_dec["name"]
        else:
            equal = d["class"] == src_dec.get("class")
        results[i][name] = {
            "present": True,
            "decision": d,
            "target_class_score": float(scores[row][original["class"]]),
            "keeps_target_decision": d["class"] == original["class"],
            "equals_source_decision": bool(equal),
        }
    return {"original": original, "results": results}


# --------------------------------------------------------------------------- matrix


def _current_transfers(records: List[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
    """Per source, target, their protocols and clip: the first ``ok`` record, else the last error
    (as :func:`~.records.current_records` for evaluation records)."""
    def key(rec: Mapping[str, Any], i: int) -> Any:
        clip = rec.get("clip_id") or rec.get("file") or rec.get("clip")
        return None if not clip else (rec.get("source"), rec.get("target"), rec.get("source_protocol"),
                                      rec.get("target_protocol"), clip)

    return standing(records, key)


def transfer_matrix(records: Iterable[Dict[str, Any]],
                    protocols: Optional[Mapping[Any, str]] = None) -> Dict[str, Any]:
    """The model-by-model transfer matrix of transfer records.

    This is the function a report calls.  Returns ``{"models": [...]``
    (sorted), ``"cells": {source: {target: cell}}}``; a cell holds ``clips`` (transfer
    records with status ok) and, per set, ``present`` (clips where A's set
    exists), ``keeps`` (share of those where B keeps its own decision) and
    ``equals`` (share where B's decision equals A's).  Error records are
    counted in ``errors``.  Per source, target, their protocols and clip the
    first ``ok`` record counts (else the last error).

    ``protocols``: (model, protocol) -> the model's name in the tables (as
    :func:`~.summary.summarize` names its groups); a record counts only when
    its ``(source, source_protocol)`` and ``(target, target_protocol)`` are
    keys (a record without protocols: when its model has one protocol there),
    the others are counted in ``other_protocol``.  Without it, a model whose
    records name several protocols is named ``model [protocol]`` per protocol:
    two runs are never pooled in a cell.
    """
    recs = _current_transfers([r for r in records if r.get("source") is not None and r.get("target") is not None])
    if protocols is None:
        seen: Dict[Any, List[Any]] = {}
        for rec in recs:
            for m, p in ((rec["source"], rec.get("source_protocol")), (rec["target"], rec.get("target_protocol"))):
                if p not in seen.setdefault(m, []):
                    seen[m].append(p)
        names: Dict[Any, str] = {(m, p): (str(m) if len(ps) < 2 else f"{m} [{p}]")
                                 for m, ps in seen.items() for p in ps}
    else:
        names = dict(protocols)
    by_model: Dict[Any, List[str]] = {}
    for (m, _), name in names.items():
        by_model.setdefault(m, []).append(name)

    def name_of(model: Any, protocol: Any) -> Optional[str]:
        if (model, protocol) in names:
            return names[(model, protocol)]
        if protocol is None and len(by_model.get(model, ())) == 1:  # an older record: no protocols kept
            return by_model[model][0]
        return None

    cells: Dict[str, Dict[str, Dict[str, Any]]] = {}
    models: List[str] = []
    errors = 0
    other = 0
    for rec in recs:
        a = name_of(rec["source"], rec.get("source_protocol"))
        b = name_of(rec["target"], rec.get("target_protocol"))
        if a is None or b is None:
            other += 1
            continue
        for m in (a, b):
            if m not in models:
                models.append(m)
        if rec.get("status") != "ok":
            errors += 1
            continue
        cell = cells.setdefault(a, {}).setdefault(b, {"clips": 0, **{
            s: {"present": 0, "keeps": 0, "equals": 0} for s in TRANSFER_SETS}})
        cell["clips"] += 1
        for s in TRANSFER_SETS:
            r = (rec.get("sets") or {}).get(s) or {}
            if not r.get("present"):
                continue
            cell[s]["present"] += 1
            cell[s]["keeps"] += int(bool(r.get("keeps_target_decision")))
            cell[s]["equals"] += int(bool(r.get("equals_source_decision")))
    for row in cells.values():
        for cell in row.values():
            for s in TRANSFER_SETS:
                n = cell[s]["present"]
                cell[s]["keeps"] = None if n == 0 else cell[s]["keeps"] / n
                cell[s]["equals"] = None if n == 0 else cell[s]["equals"] / n
    out = {"models": sorted(models), "cells": cells, "errors": errors}
    if other:
        out["other_protocol"] = other
    return out


def transfer_markdown(matrix: Dict[str, Any]) -> str:
    """The matrix as Markdown: one table per set, rows = the set's model A, columns = model B."""
    models = matrix.get("models") or []
    if not models or not matrix.get("cells"):
        return ""

    def pct(v: Optional[float]) -> str:
        return "–" if v is None else f"{100 * v:.0f}%"

    lines: List[str] = []
    for s in TRANSFER_SETS:
        lines.append(f"Transfer of the {s} set: model A's set played to model B; cell = B keeps its own decision "
                     f"/ B's decision equals A's (clips with A's set):")
        lines.append("")
        rows = []
        for a in models:
            cells = [a]
            for b in models:
                c = matrix["cells"].get(a, {}).get(b)
                if a == b or c is None:
                    cells.append("–")
                    continue
                cells.append(f"{pct(c[s]['keeps'])} / {pct(c[s]['equals'])} ({c[s]['present']})")
            rows.append(cells)
        lines.append(markdown_table(["A's set \\ played to B", *models], rows,
                                    align=["left"] + ["right"] * len(models)))
    if matrix.get("errors"):
        lines.append(f"Transfers that could not be measured: {matrix['errors']}")
        lines.append("")
    if matrix.get("other_protocol"):
        lines.append(f"Transfer records of models or protocols not among the evaluation records, left out: "
                     f"{matrix['other_protocol']}")
        lines.append("")
    return "\n".join(lines)
