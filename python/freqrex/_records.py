"""Which records stand: one rule for evaluation records, transfer records and the reports.

A leaf module (no freqrex imports) so that ``freqrex.viz`` reads records by the evaluation's rule
without importing ``freqrex.evaluation``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Hashable, List, Mapping, Optional, Sequence, TypeVar

T = TypeVar("T")


def record_clip_id(record: Mapping[str, Any]) -> Optional[str]:
    """The clip id of a record: its ``clip_id``, else its ``file`` resolved to an absolute POSIX path
    (records of older versions); None when it has neither (or a ``file`` that is no path)."""
    if record.get("clip_id"):
        return str(record["clip_id"])
    if record.get("file"):
        try:
            return Path(record["file"]).resolve().as_posix()
        except (TypeError, ValueError, OSError, RuntimeError):
            return None
    return None


def standing(records: Sequence[T], key: Callable[[T, int], Optional[Hashable]],
             ok: Callable[[T], bool] = lambda r: r.get("status") == "ok") -> List[T]:  # type: ignore[attr-defined]
    """The records that stand, in file order: per ``key`` the first ``ok`` record, else the last one
    (a failed clip is retried when a run resumes; its error stays in the file).  A record whose key is
    None, or not hashable, identifies nothing and stands on its own."""
    best: dict = {}
    alone = set()
    for i, rec in enumerate(records):
        k = key(rec, i)
        try:
            hash(k)
        except TypeError:
            k = None
        if k is None:
            alone.add(i)
            continue
        j = best.get(k)
        if j is None or not ok(records[j]):
            best[k] = i
    keep = alone | set(best.values())
    return [rec for i, rec in enumerate(records) if i in keep]


def run_key(record: Mapping[str, Any], index: int = 0) -> Optional[Hashable]:
    """(model, protocol, clip id) of an evaluation record; None without a clip id."""
    cid = record_clip_id(record)
    return None if cid is None else (record.get("model"), record.get("protocol"), cid)
