"""Evaluate many clips and models, resumably: every finished record survives a crash."""

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

from ..errors import AudioFileError, ParameterError
from .protocol import RECORD_VERSION, EvalOptions, evaluate_clip
from .records import _clean, append_record, load_records

ProgressCallback = Callable[[str, int, int], None]


# --------------------------------------------------------------------------- many clips


def evaluate(
    files: Sequence[os.PathLike],
    model: Any,
    out: os.PathLike,
    *,
    options: EvalOptions = EvalOptions(),
    model_name: Optional[str] = None,
    limit: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    on_record: Optional[Callable[[Dict[str, Any], int, int], None]] = None,
    on_start: Optional[Callable[[Path, int, int], Any]] = None,
) -> List[Dict[str, Any]]:
    """Evaluate ``model`` on ``files``, appending one record per clip to ``out`` (JSONL).

    Clips already recorded in ``out`` for the same model and protocol are
    skipped (resume).  ``limit`` caps the clips considered (the first ``limit``
    of ``files``, in order).  Returns the records of this model and protocol,
    old and new, in file order.

    ``on_start(path, index, total)`` is called before each clip evaluated (it
    may return a progress callback for that clip), ``on_record(record, index,
    total)`` after each record is written.
    """
    name = model_name or (model if isinstance(model, str) else getattr(model, "name", type(model).__name__))
    results = evaluate_many(
        files, {str(name): model}, out, options=options, limit=limit, progress=progress,
        on_record=None if on_record is None else (lambda rec, i, n, _m: on_record(rec, i, n)),
        on_start=None if on_start is None else (lambda path, i, n, _m: on_start(path, i, n)),
    )
    return results[str(name)]


def evaluate_many(
    files: Sequence[os.PathLike],
    models: Dict[str, Any],
    out: os.PathLike,
    *,
    options: EvalOptions = EvalOptions(),
    limit: Optional[int] = None,
    progress: Optional[ProgressCallback] = None,
    on_record: Optional[Callable[[Dict[str, Any], int, int, str], None]] = None,
    on_start: Optional[Callable[[Path, int, int, str], Any]] = None,
) -> Dict[str, List[Dict[str, Any]]]:
    """Evaluate several models, clip by clip (every model on clip 1, then on clip 2, ...).

    ``models`` maps a name (recorded as ``model``) to a model or a model
    specification for :func:`freqrex.models.load_model`.  Interleaving keeps
    the models' clip counts level when a long run is stopped early; a stopped
    run resumes where it stopped.  Returns each model's records in file order.
    """
    from ..io import load_audio
    from ..models import load_model

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ParameterError(f"limit must be a positive integer, got {limit!r}")
    if not models:
        raise ParameterError("no model to evaluate")
    loaded = {name: (load_model(m) if isinstance(m, (str, os.PathLike)) else m) for name, m in models.items()}
    files = [Path(f) for f in files][: limit if limit is not None else None]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    keys = {name: options.key(name) for name in loaded}
    done: Dict[Tuple[str, str], Dict[str, Any]] = {}
    for rec in load_records(out, repair=True):
        name = rec.get("model")
        if name in keys and rec.get("protocol") == keys[name]:
            done[(name, rec.get("clip"))] = rec
    results: Dict[str, List[Dict[str, Any]]] = {name: [] for name in loaded}
    total = len(files)
    stems = [f.stem for f in files]
    audio_cache: Dict[int, Tuple[np.ndarray, int]] = {}
    for i, path in enumerate(files, 1):
        clip_id = path.stem if stems.count(path.stem) == 1 else f"{path.parent.name}/{path.stem}"
        audio_cache.clear()
        for name, m in loaded.items():
            if (name, clip_id) in done:
                results[name].append(done[(name, clip_id)])
                continue
            rate = int(getattr(m, "sample_rate", None) or 16000)
            cb = on_start(path, i, total, name) if on_start is not None else None
            rec: Dict[str, Any] = {
                "clip": clip_id,
                "file": str(path),
                "model": name,
                "protocol": keys[name],
                "options": options.to_dict(),
                "version": RECORD_VERSION,
            }
            try:
                if rate not in audio_cache:
                    audio_cache[rate] = load_audio(path, sample_rate=rate, duration=options.duration)
                audio, sr = audio_cache[rate]
                rec["duration_s"] = audio.size / sr
                rec.update(evaluate_clip(audio, sr, m, options, progress=cb or progress))
                rec["status"] = "ok"
            except (AudioFileError, ParameterError) as exc:
                rec["status"] = "error"
                rec["error"] = f"{type(exc).__name__}: {exc}"
            append_record(out, rec)
            rec = json.loads(json.dumps(_clean(rec)))
            results[name].append(rec)
            if on_record is not None:
                on_record(rec, i, total, name)
    return results


