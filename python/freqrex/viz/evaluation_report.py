"""The HTML report of an evaluation: results, summary, statistics, and one row (and page) per clip.

The page is ``templates/evaluation.html``. This module imports nothing of
:mod:`freqrex.evaluation`: the results table comes in as an argument
(``results_markdown``, e.g. ``summary_markdown(summarize(records))``), so the
report depends on the records' layout only, never on the code that made them.
Which records stand follows the records' rule (:func:`_standing`, the rule of
:func:`freqrex.evaluation.records.current_records`, which the tests hold it to).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import numpy as np

from .._records import record_clip_id, run_key, standing
from ..errors import FreqrexError, ParameterError
from .html import cell, fmt_num, href_of_path, markdown_html, render_page, write_page
from .report import write_explanation_report
from .saved import load_flip_beside

__all__ = ["read_records", "write_evaluation_report"]

PathLike = Union[str, "os.PathLike[str]"]
_ID_KEYS = ("clip", "file", "path", "audio", "name", "id", "source")
_LINK_KEYS = ("report", "report_html", "html", "explanation_dir", "out_dir", "out", "dir", "run_dir", "directory", "folder")


def read_records(source: Union[PathLike, Iterable[Mapping[str, Any]]]) -> Tuple[List[Dict[str, Any]], int]:
    """Records of an evaluation JSONL file (or an iterable of dicts) and the count of unreadable lines."""
    if not isinstance(source, (str, os.PathLike)):
        return [dict(r) for r in source], 0
    p = Path(source)
    if not p.is_file():
        raise ParameterError(f"no such results file: {p}")
    records, bad = [], 0
    with open(p, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(r, dict):
                records.append(r)
            else:
                bad += 1
    return records, bad


def _flatten(d: Mapping[str, Any], prefix: str = "", out: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    out = {} if out is None else out
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            _flatten(v, key + ".", out)
        elif isinstance(v, (list, tuple)):
            if len(v) <= 6 and all(isinstance(x, (int, float, str, bool)) or x is None for x in v):
                out[key] = ", ".join(fmt_num(x) if not isinstance(x, str) else x for x in v)
            else:
                out[key] = f"[{len(v)} items]"
        else:
            out[key] = v
    return out


def _is_summary_record(r: Mapping[str, Any]) -> bool:
    return str(r.get("type", r.get("kind", r.get("record", "")))).lower() == "summary"


def _columns(rows: List[Dict[str, Any]]) -> List[str]:
    columns: List[str] = []
    for r in rows:
        for k in r:
            if k not in columns:
                columns.append(k)
    return columns


def _numeric(rows: List[Dict[str, Any]], c: str) -> bool:
    vals = [r.get(c) for r in rows if r.get(c) is not None]
    return bool(vals) and all(isinstance(v, (int, float)) for v in vals)


def _column_stats(rows: List[Dict[str, Any]], columns: List[str]) -> List[List[str]]:
    """(column, n, mean or rate, median, min, max) of every boolean or numeric column."""
    out = []
    for c in columns:
        vals = [r.get(c) for r in rows if r.get(c) is not None]
        if not vals:
            continue
        if all(isinstance(v, bool) for v in vals):
            out.append([c, f"{len(vals)}", f"{100 * sum(vals) / len(vals):.1f}% true", "", "", ""])
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            ints = all(isinstance(v, int) for v in vals)
            a = np.asarray(vals, dtype=np.float64)
            a = a[np.isfinite(a)]
            if a.size == 0:
                continue

            def fmt(v, exact=False):
                return fmt_num(int(v)) if ints and (exact or float(v).is_integer()) else fmt_num(float(v))

            out.append([c, f"{a.size}", fmt_num(float(a.mean()), 4 if not ints else 1), fmt(np.median(a)),
                        fmt(a.min(), True), fmt(a.max(), True)])
    return out


def _records_table(rows: List[Dict[str, Any]], links: Optional[List[Optional[str]]]) -> Dict[str, Any]:
    """Every field of every record: the identifying column first, linked to the clip's page."""
    columns = _columns(rows)
    ident = [c for c in columns if c.split(".")[-1] in _ID_KEYS][:1]
    columns = ident + [c for c in columns if c not in ident]
    numeric = tuple(j for j, c in enumerate(columns) if _numeric(rows, c))
    body = []
    for i, r in enumerate(rows):
        cells: List[Any] = []
        for j, c in enumerate(columns):
            v = r.get(c)
            text = v if isinstance(v, str) else fmt_num(v)
            if c in ident and isinstance(v, str):
                text = Path(v).name or v
            if j == 0 and links is not None and links[i]:
                cells.append(cell(text, href=links[i]))
            else:
                cells.append(text)
        body.append(cells)
    return {"head": columns, "rows": body, "numeric": numeric}


def _summary(summary: Any) -> Dict[str, Any]:
    if isinstance(summary, Mapping):
        rows = summary.get("rows") if isinstance(summary.get("rows"), list) else None
        if rows and all(isinstance(r, Mapping) for r in rows):
            return dict(kind="table", **_records_table([_flatten(r) for r in rows], None))
        flat = _flatten(summary)
        return {"kind": "kv", "rows": [{"key": k, "value": "—" if v is None else fmt_num(v), "cls": None}
                                       for k, v in flat.items() if k not in ("type", "kind", "record")]}
    if isinstance(summary, list) and all(isinstance(r, Mapping) for r in summary):
        return dict(kind="table", **_records_table([_flatten(r) for r in summary], None))
    return {"kind": "pre", "text": json.dumps(summary, indent=2, default=str)}


def _find_summary(path: Optional[Path]) -> Optional[Any]:
    if path is None:
        return None
    for cand in (path.with_suffix(".summary.json"), path.parent / f"{path.stem}_summary.json",
                 path.parent / "summary.json"):
        if cand.is_file():
            try:
                return json.loads(cand.read_text())
            except (OSError, ValueError):
                continue
    return None


def _clip_page(record: Mapping[str, Any], base: Path, pages_dir: Path, index: int, back_href: str,
               embed_audio: bool, notes: Optional[List[str]] = None) -> Optional[str]:
    """Link (relative to the index's directory) to a clip's page, rendering one from a saved run when possible.

    The run is read as :meth:`Explanation.load` reads it (checked against its manifest: an
    interrupted or altered save raises :class:`~freqrex.errors.ResultFileError`)."""
    from ..explanation import Explanation

    for key in _LINK_KEYS:
        v = record.get(key)
        if not isinstance(v, str) or not v:
            continue
        p = Path(v)
        if not p.is_absolute():
            p = (base / p) if (base / p).exists() else p
        if p.is_file() and p.suffix.lower() in (".html", ".htm"):
            return href_of_path(p, pages_dir.parent)
        if p.is_dir():
            if (p / "report.html").is_file():
                return href_of_path(p / "report.html", pages_dir.parent)
            if (p / "summary.json").is_file() and (p / "explanation.npz").is_file():
                e = Explanation.load(p)
                name = next((record.get(k) for k in _ID_KEYS if isinstance(record.get(k), str)), None)
                model = record.get("model") if isinstance(record.get("model"), str) else None
                target = pages_dir / f"clip-{index:04d}.html"
                page_notes: List[str] = []
                flip = load_flip_beside(p, e, notes=page_notes)
                write_explanation_report(e, target, source=name or e.source, model_name=model, flip=flip,
                                         index_href=back_href, embed_audio=embed_audio, notes=page_notes)
                if notes is not None:
                    notes.extend(f"{_row_name(record, index)}: {n}" for n in page_notes)
                return href_of_path(target, pages_dir.parent)
    return None


def _row_name(record: Mapping[str, Any], index: int) -> str:
    name = next((record.get(k) for k in _ID_KEYS if isinstance(record.get(k), str) and record.get(k)), None)
    return f"clip {name}" if name else f"row {index + 1}"


def _clip_key(record: Mapping[str, Any], index: int) -> Any:
    """What identifies a record's clip: its clip id, else its first identifying field, else its row."""
    cid = record_clip_id(record)
    if cid is not None:
        return ("id", cid)
    name = next((record.get(k) for k in _ID_KEYS
                 if isinstance(record.get(k), (str, int)) and not isinstance(record.get(k), bool)
                 and record.get(k) != ""), None)
    return ("name", name) if name is not None else ("row", index)


def _standing(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The records that stand (:func:`freqrex._records.standing`, the rule of
    :func:`freqrex.evaluation.records.current_records`): per model, protocol and clip the first ``ok``
    record, else the last error; records without a clip id all stand."""
    return standing(records, run_key)


def _flips_table(records: List[Dict[str, Any]], links: List[Optional[str]]) -> Dict[str, Any]:
    """One row per (clip, model) of a ``freqrex evaluate`` JSONL: the smallest k that flipped, per strategy."""
    strategies: List[str] = []
    for r in records:
        for s in (r.get("fft_flips") or {}):
            if s not in strategies:
                strategies.append(s)
    stft = any(isinstance(r.get("stft_flips"), Mapping) for r in records)
    head = ["clip", "model", "top class", "score", "sufficient (bins)"]
    head += [f"{s}: smallest k flipped" for s in strategies]
    head += [f"{s}: STFT" for s in strategies] if stft else []
    head += ["seconds"]
    rows = []
    for r, link in zip(records, links):
        original = r.get("original") or {}
        name = cell(r.get("clip") or Path(str(r.get("file", "?"))).stem, href=link, td="clip")
        if r.get("status", "ok") != "ok":
            rows.append([name, str(r.get("model", "")), cell(r.get("error") or r.get("status"), cls="bad")]
                        + [""] * (len(head) - 3))
            continue
        size = (((r.get("fft_explanation") or {}).get("sets") or {}).get("sufficient") or {}).get("size")
        cells: List[Any] = [name, str(r.get("model", "")), str(original.get("name") or original.get("class", "")),
                            fmt_num(original.get("score")), fmt_num(size)]
        for s in strategies:
            by_k = (r.get("fft_flips") or {}).get(s) or {}
            ks = sorted(int(k) for k, v in by_k.items() if isinstance(v, Mapping) and v.get("success"))
            cells.append(cell(f"k = {ks[0]}", cls="ok") if ks else "—")
        if stft:
            for s in strategies:
                v = (r.get("stft_flips") or {}).get(s)
                if not isinstance(v, Mapping):
                    cells.append("")
                elif v.get("success"):
                    cells.append(cell("flipped", cls="ok", after=" (inaudible)" if v.get("inaudible") else " (audible)"))
                else:
                    cells.append("—")
        cells.append(fmt_num(r.get("seconds"), 1))
        rows.append(cells)
    return {"head": head, "rows": rows, "numeric": (3, 4, len(head) - 1)}


def write_evaluation_report(
    records_jsonl: Union[PathLike, Iterable[Mapping[str, Any]]],
    path: PathLike,
    *,
    title: Optional[str] = None,
    summary: Any = None,
    results_markdown: Optional[str] = None,
    pages: bool = True,
    embed_audio: bool = False,
    notes: Optional[List[str]] = None,
) -> Path:
    """Write an HTML report of an evaluation: the results, the summary and one row per clip.

    Parameters
    ----------
    records_jsonl : path or iterable of dict
        The evaluation's JSONL file (one JSON object per clip), or the records.
        Nested fields are shown as dotted columns. Records whose ``type`` is
        ``"summary"`` are shown as the summary.
    path : str or os.PathLike
        The index HTML file to write (atomically).
    title : str, optional
    summary : dict, list or path, optional
        The evaluation's summary (e.g. its summary JSON), shown field by field.
        When None, a ``<results>.summary.json``, ``<results>_summary.json`` or
        ``summary.json`` beside the JSONL file is used if present. Per-column
        statistics of the records are always shown.
    results_markdown : str, optional
        The results table as Markdown (``freqrex.evaluation.summary_markdown``),
        shown first, rendered by the ``markdown`` package. ``freqrex.report.
        write_evaluation_report`` fills it in from the records.
    pages : bool
        Link every clip to its page: a record field (``report``, ``out``,
        ``explanation_dir``, ...) naming an HTML file or a directory with
        ``report.html`` is linked by relative URL; a saved explanation
        directory is rendered into ``<index stem>_clips/clip-NNNN.html``.
        Links are only ever relative paths (see :func:`freqrex.viz.html.safe_href`).
    embed_audio : bool
        False (default): rendered clip pages link to the run directories' WAV
        files (pages of ~1 MB instead of ~6 MB for 30 s clips). True: every
        clip page is self-contained.
    notes : list, optional
        What the report leaves out, and why, is appended here (a run directory
        that cannot be read: its row stays, unlinked; a saved flip left out of
        a clip page). The same notes are shown on the index page.

    Records are those that stand: a clip retried after an error shows its
    ``ok`` record only (:func:`freqrex.evaluation.records.current_records`), and
    the clips are counted once each (by clip id), whatever the number of lines.

    Returns
    -------
    pathlib.Path
        The index file.
    """
    path = Path(path)
    src = Path(records_jsonl) if isinstance(records_jsonl, (str, os.PathLike)) else None
    records, bad = read_records(records_jsonl)
    summaries = [r for r in records if _is_summary_record(r)]
    records = _standing([r for r in records if not _is_summary_record(r)])
    if summary is not None and isinstance(summary, (str, os.PathLike)):
        try:
            summary = json.loads(Path(summary).read_text())
        except (OSError, ValueError) as exc:
            raise ParameterError(f"cannot read the summary {summary}: {exc}") from exc
    if summary is None and summaries:
        summary = summaries[-1]
    if summary is None:
        summary = _find_summary(src)

    base = src.parent if src is not None else Path.cwd()
    pages_dir = path.parent / f"{path.stem}_clips"
    back_href = href_of_path(path, pages_dir)
    links: List[Optional[str]] = []
    page_notes: List[str] = []
    for i, r in enumerate(records):
        link = None
        if pages:
            try:
                link = _clip_page(r, base, pages_dir, i, back_href, embed_audio, page_notes)
            except MemoryError:
                raise
            except Exception as exc:  # a run that cannot be read or drawn: the row stays, unlinked
                link = None
                why = str(exc) if isinstance(exc, FreqrexError) else f"{type(exc).__name__}: {exc}"
                page_notes.append(f"{_row_name(r, i)}: no page: {why}")
                stale = pages_dir / f"clip-{i:04d}.html"  # an earlier report's page of another run
                try:
                    stale.unlink()
                except OSError:
                    pass
        links.append(link)
    if notes is not None:
        notes.extend(page_notes)
    flat = [_flatten(r) for r in records]
    flips_layout = any(isinstance(r.get("fft_flips"), Mapping) for r in records)
    text = render_page(
        "evaluation.html",
        page_title=title or "freqrex evaluation",
        heading=title or "freqrex evaluation",
        n_clips=len({_clip_key(r, i) for i, r in enumerate(records)}),
        n_records=len(records),
        notes=page_notes,
        source_name=None if src is None else src.name,
        bad_lines=bad,
        n_linked=sum(1 for x in links if x),
        results_html=markdown_html(results_markdown) if results_markdown else None,
        summary=None if summary is None else _summary(summary),
        stats=_column_stats(flat, _columns(flat)),
        stats_head=["column", "n", "mean / rate", "median", "min", "max"],
        flips_layout=flips_layout,
        flips=_flips_table(records, links) if flips_layout and records else None,
        records=_records_table(flat, None if flips_layout else links),
    )
    return write_page(path, text)
