"""Evaluation records: audio files found, one JSON line per (clip, model), written atomically."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from .._atomic import write_text
from ..errors import AudioFileError, ParameterError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au")


# --------------------------------------------------------------------------- JSON helpers


def _clean(v: Any) -> Any:
    """JSON-safe values: non-finite floats become strings ("inf", "-inf") or None (NaN)."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return None
        if math.isinf(f):
            return "inf" if f > 0 else "-inf"
        return f
    if isinstance(v, np.ndarray):
        return _clean(v.tolist())
    return v


def _num(v: Any) -> Optional[float]:
    """A record value back to a float (``"inf"`` strings included); None when absent."""
    if v is None:
        return None
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return float(v)


# --------------------------------------------------------------------------- files


def find_audio(paths: Iterable[os.PathLike]) -> List[Path]:
    """Audio files named directly, or found (recursively, sorted) in the directories named."""
    out: List[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_SUFFIXES
                              and not any(part.startswith((".", "_")) for part in f.relative_to(p).parts)))
        elif p.is_file():
            out.append(p)
        else:
            raise AudioFileError(f"no such file or directory: {p}")
    seen = set()
    unique = []
    for f in out:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique


def load_records(path: os.PathLike, *, repair: bool = False) -> List[Dict[str, Any]]:
    """The records of a JSONL file; a truncated or unreadable last line is ignored.

    With ``repair=True`` such a last line is also cut off the file (atomically:
    the good lines are written to a temporary file that replaces it), so that
    appending continues on a clean line.  A malformed line elsewhere raises
    :class:`ParameterError` (the file is not ours, or was damaged otherwise).
    """
    p = Path(path)
    if not p.exists():
        return []
    data = p.read_bytes()
    if not data:
        return []
    parts = data.split(b"\n")
    records: List[Dict[str, Any]] = []
    damaged_tail = False
    for i, line in enumerate(parts):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if all(not rest.strip() for rest in parts[i + 1 :]):
                damaged_tail = True  # the last line, cut short by a killed run
                break
            raise ParameterError(f"{p}: line {i + 1} is not a JSON record") from None
        if not isinstance(rec, dict):
            raise ParameterError(f"{p}: line {i + 1} is not a JSON object")
        records.append(rec)
    if repair and (damaged_tail or not data.endswith(b"\n")):
        _rewrite(p, records)
    return records


def _rewrite(path: Path, records: List[Dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(rec, sort_keys=True) + "\n" for rec in records))


def append_record(path: os.PathLike, record: Dict[str, Any]) -> None:
    """Append one record as one complete line: a single write, then flush and fsync."""
    line = (json.dumps(_clean(record), sort_keys=True) + "\n").encode()
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(line)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)


