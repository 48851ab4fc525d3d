"""Flip rates, SNR curves and costs from evaluation records, beside the paper's numbers."""

from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from .._atomic import make_folder, write_text
from ..viz.html import markdown_table
from .protocol import PAPER, STRATEGIES
from ..errors import ParameterError, ResultFileError
from .._records import standing
from .records import _clean, _num, clip_id
from .results import ClipRecord, FlipSummary


# --------------------------------------------------------------------------- summary


def _rate(values: List[bool]) -> Optional[float]:
    return None if not values else sum(values) / len(values)


def _median(values: List[Optional[float]]) -> Optional[float]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return None if not vals else float(statistics.median(vals))


def _fl(v: Any) -> Optional[float]:
    """A checked record number as a float; None stays None (a field the record does not hold)."""
    return None if v is None else float(v)


def _check_number(v: Any, what: str) -> None:
    if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)):
        return
    raise ParameterError(f"{what} is {v!r}, not a number")


def _check_flip(f: FlipSummary, what: str) -> None:
    for name in ("snr_db", "queries", "flip_queries", "margin_db", "art_max_excess_db", "n_cells"):
        _check_number(getattr(f, name), f"{what}: {name}")


def _check_record(r: ClipRecord) -> None:
    """The fields a summary computes with hold numbers (or are absent): else :class:`ParameterError`."""
    _check_number(r.seconds, "seconds")
    if r.original is not None:
        _check_number(r.original.score, "original.score")
        _check_number(r.original.runner_up_score, "original.runner_up_score")
    for field, by_k in (("fft_flips", True), ("fft_flips_given_explanation", True), ("stft_flips", False),
                        ("stft_flips_given_explanation", False)):
        for s, v in getattr(r, field).items():
            for k, f in (v.items() if by_k else [(None, v)]):
                _check_flip(f, f"{field}[{s!r}]" + ("" if k is None else f"[{k}]"))
    for name, e in (("fft_explanation", r.fft_explanation), ("stft_explanation", r.stft_explanation)):
        if e is None:
            continue
        for field in ("queries", "n_bins"):
            _check_number(getattr(e, field), f"{name}.{field}")
        for set_name, st in e.sets.items():
            _check_number(st.size, f"{name}.sets[{set_name!r}].size")
            _check_number(st.fraction, f"{name}.sets[{set_name!r}].fraction")


def _typed(records: Iterable[Union[Dict[str, Any], ClipRecord]]) -> List[ClipRecord]:
    """The evaluation records as checked :class:`ClipRecord` objects (transfer records left out).

    Raises
    ------
    ResultFileError
        A record that is not a readable evaluation record (a field of the wrong type, flips keyed
        by something other than k, a newer record version), named by its place and clip.
    """
    out: List[ClipRecord] = []
    for i, rec in enumerate(records, 1):
        if isinstance(rec, Mapping) and rec.get("kind") == "transfer":
            continue
        where = (f"record {i} (clip {rec.get('clip')!r}, model {rec.get('model')!r})" if isinstance(rec, Mapping)
                 else f"record {i} (clip {getattr(rec, 'clip', None)!r}, model {getattr(rec, 'model', None)!r})")
        try:
            if isinstance(rec, Mapping):
                rec = ClipRecord.from_dict(rec)
            elif not isinstance(rec, ClipRecord):
                raise ParameterError(f"not an evaluation record but a {type(rec).__name__}")
            if rec.ok:
                _check_record(rec)
        except ResultFileError as exc:
            raise ResultFileError(f"{where}: {exc}") from None
        except (ParameterError, TypeError, ValueError, AttributeError, KeyError) as exc:
            raise ResultFileError(f"{where} is malformed: {exc}") from None
        out.append(rec)
    return out


def _clip_key(r: ClipRecord, i: int) -> str:
    """What identifies a record's clip: its ``clip_id``, else its file resolved, else its label."""
    if r.clip_id:
        return str(r.clip_id)
    if r.file:
        return clip_id(r.file)
    return f"label:{r.clip}" if r.clip is not None else f"record:{i}"


def _standing(recs: List[ClipRecord]) -> List[ClipRecord]:
    """:func:`~.records.current_records` of typed records: per model, protocol and clip the first ``ok``
    record, else the last error (an error that a later retry superseded is not counted)."""
    return standing(recs, lambda r, i: (r.model, r.protocol, _clip_key(r, i)), ok=lambda r: r.status == "ok")


def _group_name(model: Any, protocol: Any, protocols: Mapping[Any, List[Any]]) -> str:
    """A model's name in the tables; ``model [protocol]`` when its records hold several protocols."""
    name = str(model) if model is not None else "?"
    return name if len(protocols[model]) < 2 else f"{name} [{protocol}]"


def _groups(records: Iterable[Union[Dict[str, Any], ClipRecord]]) -> Dict[str, Any]:
    """The standing records grouped by (model, protocol): one group per run, never two runs pooled.

    Returns ``ok`` (name -> the ok records), ``errors`` (name -> error records that stand), ``names``
    ((model, protocol) -> name), ``protocols`` (model -> its protocols, in file order) and ``in_order``
    ((name, record) of the ok records, in file order).
    """
    recs = _standing(_typed(records))
    protocols: Dict[Any, List[Any]] = {}
    for r in recs:
        ps = protocols.setdefault(r.model, [])
        if r.protocol not in ps:
            ps.append(r.protocol)
    names = {(m, p): _group_name(m, p, protocols) for m, ps in protocols.items() for p in ps}
    ok: Dict[str, List[ClipRecord]] = {}
    errors: Dict[str, int] = {}
    in_order: List[Tuple[str, ClipRecord]] = []
    for r in recs:
        name = names[(r.model, r.protocol)]
        if r.ok:
            ok.setdefault(name, []).append(r)
            in_order.append((name, r))
        else:
            errors[name] = errors.get(name, 0) + 1
    return {"ok": ok, "errors": errors, "names": names, "protocols": protocols, "in_order": in_order}


def summarize(records: Iterable[Union[Dict[str, Any], ClipRecord]],
              transfer_records: Optional[Iterable[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """Success rates per model and strategy (and over all models), set sizes, SNRs, cost.

    ``records``: the JSON records (:func:`~.records.load_records`) or typed
    ones (:func:`~.results.read_results`).  The records that stand are
    summarised (:func:`~.records.current_records`: per model, protocol and
    clip the first ``ok`` record, else the last error; an error a retry
    superseded is not counted).  One group per model and protocol: a model
    whose records hold several protocols (another seed, budget or record
    version) gets one group per protocol, named ``model [protocol]``, and no
    "all models" group is made then (it would pool two runs of one model);
    with several models of one protocol each, "all models" pools them.
    Records with ``status != "ok"`` are counted as errors and left out of the
    rates.  A field a record lacks (``seconds``, a set, a score) is left out
    of its median.  With ``transfer_records`` (see :mod:`.transfer`), the
    summary's ``transfer`` holds :func:`~.transfer.transfer_matrix` of those
    whose source and target protocols are those of the groups.

    Raises
    ------
    ResultFileError
        A record that is not a readable evaluation record (a field of the
        wrong type, or a newer record version), named by its place and clip.
    """
    g = _groups(records)
    by_model: Dict[str, List[ClipRecord]] = g["ok"]
    groups = dict(by_model)
    models = g["protocols"]
    if len(by_model) > 1 and len(models) > 1 and all(len(ps) == 1 for ps in models.values()):
        groups["all models"] = [r for rs in by_model.values() for r in rs]
    out: Dict[str, Any] = {"paper": PAPER, "models": {}, "errors": g["errors"]}
    if transfer_records is not None:
        from .transfer import transfer_matrix

        out["transfer"] = transfer_matrix(transfer_records, protocols=g["names"])
    split = {name: p for (m, p), name in g["names"].items() if len(models[m]) > 1}
    for model, recs in groups.items():
        ks = sorted({k for r in recs for per_k in r.fft_flips.values() for k in per_k})
        strategies = [s for s in STRATEGIES if any(s in r.fft_flips for r in recs)]
        m: Dict[str, Any] = {"clips": len(recs), "strategies": {}}
        if model in split:  # one of several runs of its model: say which
            m["protocol"] = split[model]
        for s in strategies:
            row: Dict[str, Any] = {"k": {}, "snr_db_median": {}, "queries_median": {}}
            for k in ks:
                vals = [r.fft_flips[s][k] for r in recs if k in r.fft_flips.get(s, {})]
                row["k"][str(k)] = _rate([v.success for v in vals])
                row["snr_db_median"][str(k)] = _median([_num(v.snr_db) for v in vals if v.success])
                row["queries_median"][str(k)] = _median([_fl(v.flip_queries) for v in vals])
                row.setdefault("removal_only", {})[str(k)] = _rate([v.success and v.change == "remove" for v in vals])
            st = [r.stft_flips[s] for r in recs if s in r.stft_flips]
            row["stft"] = _rate([v.success for v in st])
            row["stft_inaudible"] = _rate([bool(v.success and v.inaudible) for v in st])
            row["stft_snr_db_median"] = _median([_num(v.snr_db) for v in st if v.success])
            row["stft_margin_db_median"] = _median([_num(v.margin_db) for v in st if v.success])
            row["stft_clips"] = len(st)
            m["strategies"][s] = row
        explained = [r.fft_explanation for r in recs if r.fft_explanation is not None]
        sizes = {}
        for name in ("sufficient", "sufficient_necessary", "complete"):
            present = [v for v in (e.sets.get(name) for e in explained) if v is not None and v.size is not None]
            sizes[name] = {
                "present": len(present),
                "size_median": _median([float(v.size) for v in present]),
                "fraction_median": _median([_fl(v.fraction) for v in present]),
            }
        m["snr_curves"] = _snr_curves(recs, "fft_flips", strategies)
        m["snr_curves_given_explanation"] = _snr_curves(recs, "fft_flips_given_explanation", strategies)
        m["stft"] = _stft_rows(recs, "stft_flips", strategies)
        m["stft_given_explanation"] = _stft_rows(recs, "stft_flips_given_explanation", strategies)
        m["fft_sets"] = sizes
        m["n_bins_median"] = _median([_fl(e.n_bins) for e in explained])
        m["explain_queries_median"] = _median([_fl(e.queries) for e in explained])
        m["stft_explain_queries_median"] = _median(
            [_fl(r.stft_explanation.queries) for r in recs if r.stft_explanation is not None])
        m["seconds_median"] = _median([_fl(r.seconds) for r in recs])
        m["seconds_total"] = float(sum(float(r.seconds) for r in recs if r.seconds is not None))
        m["runner_up_gap_median"] = _median(
            [float(r.original.score - r.original.runner_up_score) for r in recs
             if r.original is not None and r.original.score is not None and r.original.runner_up_score is not None])
        opts = [r.options for r in recs]
        m["options"] = opts[0] if opts and all(o == opts[0] for o in opts) else "mixed"
        out["models"][model] = m
    return out


#: SNR thresholds (dB) of the flip-rate curves.
SNR_THRESHOLDS = (10, 20, 30, 40)


def _snr_curves(recs: List[ClipRecord], field: str, strategies: Sequence[str]) -> Dict[str, Any]:
    """Per strategy and k: the share of clips flipped at SNR >= each threshold, and median queries."""
    out: Dict[str, Any] = {}
    for s in strategies:
        per_k: Dict[str, Any] = {}
        flips = [getattr(r, field).get(s, {}) for r in recs]
        for k in sorted({k for f in flips for k in f}):
            vals = [f[k] for f in flips if k in f]
            snrs = [(_num(v.snr_db) if v.success else None) for v in vals]
            per_k[str(k)] = {
                "clips": len(vals),
                "rate": {str(t): sum(1 for x in snrs if x is not None and x >= t) / len(vals) for t in SNR_THRESHOLDS},
                "any": sum(1 for x in snrs if x is not None) / len(vals),
                "inaudible": sum(1 for v in vals if v.success and v.inaudible) / len(vals),
                "snr_db_median": _median([x for x in snrs if x is not None]),
                "queries_median": _median([_fl(v.queries) for v in vals]),
            }
        if per_k:
            out[s] = per_k
    return out


def _stft_rows(recs: List[ClipRecord], field: str, strategies: Sequence[str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for s in strategies:
        vals = [getattr(r, field)[s] for r in recs if s in getattr(r, field)]
        if not vals:
            continue
        ok = [v for v in vals if v.success and v.inaudible]
        # the independent check: ART's threshold on ART's own framing, never exceeded
        art = [v for v in ok if v.art_max_excess_db is not None and v.art_max_excess_db <= 0]
        out[s] = {
            "clips": len(vals),
            "inaudible_rate": len(ok) / len(vals),
            "under_art_rate": len(art) / len(vals),
            "snr_db_median": _median([_num(v.snr_db) for v in ok]),
            "margin_db_median": _median([_num(v.margin_db) for v in ok]),
            "cells_median": _median([float(v.n_cells) for v in ok if v.n_cells is not None]),
            "queries_median": _median([_fl(v.queries) for v in vals]),
        }
    return out


def curves_markdown(summary: Dict[str, Any]) -> str:
    """Flip rate over SNR (k = 1 and the largest k) and the inaudible STFT rate, per model and strategy."""
    lines = []
    for title, field, sfield in (
        ("equal total queries (the causal strategy's explanation counted)", "snr_curves", "stft"),
        ("explanation given (every strategy gets the flip budget alone)", "snr_curves_given_explanation",
         "stft_given_explanation"),
    ):
        rows = []
        ks_seen: set = set()
        for model, m in summary["models"].items():
            curves = dict(m.get(field) or {})
            stft = dict(m.get(sfield) or {})
            if field.endswith("given_explanation"):
                curves.setdefault("causal", (m.get("snr_curves") or {}).get("causal"))
                stft.setdefault("causal", (m.get("stft") or {}).get("causal"))
            for s in STRATEGIES:
                c = curves.get(s)
                if not c:
                    continue
                ks = sorted(c, key=int)
                ks_seen.add((ks[0], ks[-1]))
                cells = [model, str(c[ks[0]]["clips"]), LABELS.get(s, s)]
                for k in (ks[0], ks[-1]):
                    cells += [_pct(c[k]["rate"][str(t)]) for t in SNR_THRESHOLDS]
                    cells.append(_db(c[k]["snr_db_median"]))
                st = stft.get(s)
                cells += [_pct(st["inaudible_rate"]) if st else "–",
                          _pct(st.get("under_art_rate")) if st else "–", _db(st["snr_db_median"]) if st else "–",
                          "–" if not st or st["cells_median"] is None else f"{st['cells_median']:.0f}"]
                cells.append(f"{c[ks[0]]['queries_median']:.0f}" if c[ks[0]]["queries_median"] is not None else "–")
                rows.append(cells)
        if not rows:
            continue
        lines.append(f"Flip rate by SNR, {title}:")
        lines.append("")
        header = ["model", "clips", "strategy"]
        lo, hi = next(iter(ks_seen)) if len(ks_seen) == 1 else ("smallest k", "largest k")
        labels = (f"k={lo}", f"k<={hi}") if len(ks_seen) == 1 else (lo, hi)
        for k_label in labels:
            header += [f"{k_label}: >= {SNR_THRESHOLDS[0]} dB"] + [f">= {t} dB" for t in SNR_THRESHOLDS[1:]]
            header.append("median SNR")
        header += ["STFT inaudible", "under ART's threshold", "its SNR", "cells", f"median queries ({labels[0]})"]
        align = ["left", "right", "left"] + ["right"] * (len(header) - 3)
        lines.append(markdown_table(header, rows, align=align))
    return "\n".join(lines)


def _pct(v: Optional[float]) -> str:
    return "–" if v is None else f"{100 * v:.0f}%"


def _db(v: Optional[float]) -> str:
    return "–" if v is None else f"{v:.1f}"


LABELS = {"causal": "freqrex (causal ranking)", "random": "random bins", "magnitude": "largest magnitude",
          "tone_scan": "tone scan", "additive": "additive search"}


def _clip_stem(path: Any) -> str:
    """A clip's file name without folder and extension: what matches a record to its limit record."""
    return os.path.splitext(os.path.basename(str(path or "")))[0]


def _limits_by_clip(limits: Iterable[Dict[str, Any]]) -> Dict[Any, Dict[str, Any]]:
    """Records of ``scripts/tone_limit_eval.py`` keyed by (model, :func:`_clip_stem`)."""
    return {(r.get("model"), _clip_stem(r.get("clip"))): r for r in limits}


def limit_comparison(records: Iterable[Union[Dict[str, Any], ClipRecord]],
                     limits: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
    """How close each strategy's k = 1 flips come to the exhaustive one-tone limit, clip by clip.

    ``limits``: records of ``scripts/tone_limit_eval.py`` (``clip``, ``model``,
    ``best_snr_db``, ``queries``); evaluation records (those that stand, one
    group per model and protocol as in :func:`summarize`) are matched to them
    by model and clip file name.  Per group: the clips compared, the clips the
    limit flips (``limit_flips``: a tone flips them at some SNR), the limit's
    median SNR and queries; per strategy: its median SNR (a failed flip counts
    as no SNR), the clips it flipped, ``within_1db_count``: the clips the limit
    flips that the strategy flipped at an SNR at most 1 dB under the limit's
    (quieter counts), and ``within_1db`` that count's share of the clips the
    limit flips (None when it flips none); ``beyond_limit``: clips the limit
    does not flip that the strategy flipped; and its median queries.
    """
    lim = _limits_by_clip(limits)
    out: Dict[str, Any] = {}
    for name, recs in _groups(records)["ok"].items():
        for rec in recs:
            ref = lim.get((rec.model, _clip_stem(rec.clip)))
            if ref is None:
                continue
            m = out.setdefault(name, {"clips": 0, "limit_flips": 0, "limit_snr": [], "limit_queries": [],
                                      "strategies": {}})
            best = _num(ref.get("best_snr_db"))
            m["clips"] += 1
            m["limit_flips"] += best is not None
            m["limit_snr"].append(best)
            m["limit_queries"].append(_num(ref.get("queries")))
            for s, per_k in rec.fft_flips.items():
                v = per_k.get(1)
                if v is None:
                    continue
                row = m["strategies"].setdefault(s, {"snr": [], "close": 0, "beyond": 0, "queries": []})
                snr = _num(v.snr_db) if v.success else None
                row["snr"].append(snr)
                if best is not None:
                    row["close"] += snr is not None and snr >= best - 1.0
                elif snr is not None:
                    row["beyond"] += 1
                row["queries"].append(_fl(v.queries))
    for m in out.values():
        m["limit_snr_median"] = _median(m.pop("limit_snr"))
        m["limit_queries_median"] = _median(m.pop("limit_queries"))
        n = m["limit_flips"]
        for s, row in m["strategies"].items():
            m["strategies"][s] = {
                "snr_db_median": _median(row["snr"]),
                "flipped": sum(1 for x in row["snr"] if x is not None),
                "within_1db_count": row["close"],
                "within_1db": None if n == 0 else row["close"] / n,
                "beyond_limit": row["beyond"],
                "queries_median": _median(row["queries"]),
            }
    return out


def limit_markdown(comparison: Dict[str, Any]) -> str:
    """The limit comparison as a Markdown table.

    "within 1 dB of the limit" counts, of the clips the limit flips, those the strategy flipped at most
    1 dB under the limit's SNR (or quieter); "flips beyond the limit" the clips the limit does not flip that
    the strategy flipped.
    """
    rows = []
    ns = {m["limit_flips"] for m in comparison.values()}
    for model, m in comparison.items():
        n = m["limit_flips"]
        rows.append([model, str(m["clips"]), "**exhaustive one-tone limit**", _db(m["limit_snr_median"]),
                     f"{n}/{m['clips']}", "–", "–",
                     "–" if m["limit_queries_median"] is None else f"{m['limit_queries_median']:.0f}"])
        for s in STRATEGIES:
            r = m["strategies"].get(s)
            if r is None:
                continue
            close = "–" if not n else f"{r['within_1db_count']}/{n} ({_pct(r['within_1db'])})"
            rows.append([model, str(m["clips"]), LABELS.get(s, s), _db(r["snr_db_median"]),
                         f"{r['flipped']}/{m['clips']}", close, str(r["beyond_limit"]),
                         "–" if r["queries_median"] is None else f"{r['queries_median']:.0f}"])
    if not rows:
        return ""
    of = f"of the {next(iter(ns))} clips the limit flips" if len(ns) == 1 else "of the clips the limit flips"
    head = ["model", "clips", "method (k = 1)", "median SNR of flips (dB)", "flipped",
            f"within 1 dB of the limit or quieter ({of})", "flips beyond the limit (clips it does not flip)",
            "median queries"]
    return markdown_table(head, rows, align=["left", "right", "left", "right", "right", "right", "right", "right"])


def per_clip_markdown(records: Iterable[Union[Dict[str, Any], ClipRecord]],
                      limits: Iterable[Dict[str, Any]] = (), *, field: str = "fft_flips") -> str:
    """One row per clip and model: the quietest flip of every strategy, for k = 1 and for k <= 5.

    A cell is the SNR (dB) of the quietest flip; "—" when the strategy found none (not even at 0 dB);
    columns are named by strategy (``causal``, ``random``, ...) and k. The row
    also gives the decision, its top-1 margin (score minus runner-up), the ``causal`` STFT flip (its
    SNR, and whether it stays under ART's threshold in every cell) and, when ``limits`` (records of
    ``scripts/tone_limit_eval.py``) hold the clip, the exhaustive one-tone limit.  ``field``:
    ``"fft_flips"`` (equal total queries, the default) or ``"fft_flips_given_explanation"``.
    The records that stand, one group per model and protocol as in :func:`summarize`, by model and
    then clip name, whatever order they were written in.
    """
    lim = _limits_by_clip(limits)
    # by model, then clip: the table never depends on the order the records were written in (workers)
    named = sorted(_groups(records)["in_order"], key=lambda nr: (nr[0], _clip_stem(nr[1].clip or nr[1].file or "?"),
                                                                str(nr[1].clip_id or nr[1].file or nr[1].clip or "")))
    if not named:
        return ""
    recs = [r for _, r in named]
    strategies = [s for s in STRATEGIES if any(s in getattr(r, field) for r in recs)]
    models = list(dict.fromkeys(name for name, _ in named))

    def snr(flips: Mapping[Any, Any], k: int) -> str:
        v = flips.get(k)
        if v is None:
            return ""
        return "—" if not v.success or v.snr_db is None else f"{_num(v.snr_db):.1f}"

    top_k = max((k for r in recs for f in getattr(r, field).values() for k in f), default=1)
    head = (["clip"] + (["model"] if len(models) > 1 else []) + ["decision", "top-1 margin"]
            + [f"{s} k=1" for s in strategies] + ([f"{s} k<={top_k}" for s in strategies] if top_k > 1 else [])
            + ["STFT causal (under ART)"] + (["one-tone limit"] if lim else []))
    rows = []
    for name, r in named:
        clip = _clip_stem(r.clip or r.file or "?")
        o = r.original
        margin = (None if o is None or o.score is None or o.runner_up_score is None
                  else float(o.score) - float(o.runner_up_score))
        cells = [clip] + ([name] if len(models) > 1 else [])
        cells += [o.label if o is not None else "?", "–" if margin is None else f"{margin:.3f}"]
        flips = getattr(r, field)
        cells += [snr(flips.get(s, {}), 1) for s in strategies]
        if top_k > 1:
            cells += [snr(flips.get(s, {}), top_k) for s in strategies]
        st = r.stft_flips.get("causal")
        if st is None:
            cells.append("")
        elif not (st.success and st.inaudible) or st.snr_db is None:
            cells.append("—")
        else:
            art = st.art_max_excess_db
            cells.append(f"{_num(st.snr_db):.1f} ({'?' if art is None else 'yes' if art <= 0 else 'no'})")
        if lim:
            ref = lim.get((r.model, clip))
            best = None if ref is None else _num(ref.get("best_snr_db"))
            cells.append("" if ref is None else "—" if best is None else f"{best:.1f}")
        rows.append(cells)
    n_left = 1 + (len(models) > 1) + 1
    return markdown_table(head, rows, align=["left"] * n_left + ["right"] * (len(head) - n_left))


def summary_markdown(summary: Dict[str, Any]) -> str:
    """The results table (Markdown), laid out like the paper's, its numbers beside ours."""
    models = summary["models"]
    ks = sorted({int(k) for m in models.values() for s in m["strategies"].values() for k in s["k"]}) or [1, 2, 3, 4, 5]
    lines = []
    head = ["model", "clips", "method"] + [f"{k} freq." for k in ks] + ["STFT flip", "STFT inaudible flip"]
    paper = summary.get("paper", PAPER)
    prow = ["**paper** (8 models, GTZAN + sung emotion)", "–", "ReX, causal"]
    prow += [_pct(paper["k1"]) if k == 1 else _pct(paper["k5"]) if k == 5 else "–" for k in ks]
    prow += ["–", _pct(paper["stft"])]
    rows = [prow]
    for model, m in models.items():
        for s, row in m["strategies"].items():
            name = f"**{model}**" if model == "all models" else model
            cells = [name, str(m["clips"]), LABELS.get(s, s)]
            cells += [_pct(row["k"].get(str(k))) for k in ks]
            cells += [_pct(row["stft"]), _pct(row["stft_inaudible"])]
            rows.append(cells)
    lines.append(markdown_table(head, rows, align=["left"] * 3 + ["right"] * (len(ks) + 2)))
    lines.append("Flip rate: share of clips whose top-1 class changed. \"k freq.\": at most k whole-clip FFT bins "
                 "changed (the quietest change found; fixed changes: removal or a +{g} dB gain), at any SNR. "
                 "STFT: cells changed within the MPEG-1 masking threshold; \"inaudible\": every frame under "
                 "the threshold.".format(g=_fmt_gain(models)))
    lines.append("")
    # SNR and cost
    removal_ks = sorted({ks[0], ks[-1]}, key=int) if ks else []  # the smallest and largest k
    head = (["model", "method"] + [f"median SNR k={k} (dB)" for k in ks]
            + ["STFT median SNR (dB)", "STFT median margin (dB)"] + [f"removal-only k={k}" for k in removal_ks])
    rows = []
    for model, m in models.items():
        for s, row in m["strategies"].items():
            cells = [model, LABELS.get(s, s)] + [_db(row["snr_db_median"].get(str(k))) for k in ks]
            cells += [_db(row["stft_snr_db_median"]), _db(row["stft_margin_db_median"]),
                      *[_pct(row.get("removal_only", {}).get(str(k))) for k in removal_ks]]
            rows.append(cells)
    lines.append(markdown_table(head, rows, align=["left"] * 2 + ["right"] * (len(ks) + 2 + len(removal_ks))))
    head = ["model", "clips", "FFT bins", "sufficient (median bins, share)", "sufficient & necessary", "complete",
            "explanation queries (fft / stft)", "top-1 vs runner-up gap", "seconds per clip"]
    rows = []
    for model, m in models.items():
        def cell(name: str) -> str:
            v = m["fft_sets"][name]
            if v["size_median"] is None:
                return f"absent ({m['clips']})"
            miss = m["clips"] - v["present"]
            extra = f", absent in {miss}" if miss else ""
            share = "?" if v["fraction_median"] is None else f"{100 * v['fraction_median']:.1f}"
            return f"{v['size_median']:.0f} ({share}%{extra})"

        cells = [model, str(m["clips"]), _db(m["n_bins_median"]).replace(".0", ""), cell("sufficient"),
                 cell("sufficient_necessary"), cell("complete"),
                 f"{_db(m['explain_queries_median'])} / "
                 + ("fft's, projected" if m["stft_explain_queries_median"] == 0 else _db(m["stft_explain_queries_median"])),
                 "–" if m["runner_up_gap_median"] is None else f"{m['runner_up_gap_median']:.3f}",
                 _db(m["seconds_median"])]
        rows.append(cells)
    lines.append(markdown_table(head, rows, align=["left"] + ["right"] * (len(head) - 1)).rstrip("\n"))
    curves = curves_markdown(summary)
    if curves:
        lines.append("")
        lines.append(curves)
    if summary.get("transfer"):
        from .transfer import transfer_markdown

        table = transfer_markdown(summary["transfer"])
        if table:
            lines.append("")
            lines.append(table.rstrip("\n"))
    if summary.get("errors"):
        lines.append("")
        lines.append("Clips that could not be evaluated: " + ", ".join(f"{k}: {v}" for k, v in summary["errors"].items()))
    return "\n".join(lines) + "\n"


def _fmt_gain(models: Dict[str, Any]) -> str:
    for m in models.values():
        o = m.get("options")
        if isinstance(o, dict):
            return f"{o.get('max_gain_db', 20):g}"
    return "20"


def write_summary(records: Iterable[Dict[str, Any]], markdown: Optional[os.PathLike] = None,
                  json_path: Optional[os.PathLike] = None,
                  transfer_records: Optional[Iterable[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """Summarise records and write the Markdown table and/or the JSON summary (atomically)."""
    summary = summarize(records, transfer_records)
    for path, text in ((markdown, summary_markdown(summary) if markdown else None),
                       (json_path, json.dumps(_clean(summary), indent=2) + "\n" if json_path else None)):
        if path is None:
            continue
        p = Path(path)
        make_folder(p.parent)
        write_text(p, text)
    return summary
