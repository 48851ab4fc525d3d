"""Evaluate many clips and models, resumably: every finished record survives a crash.

The driver (this module) is the only writer of the records: it holds a lock
on the output for the whole run, skips the (clip, model) pairs already
recorded, hands the others to an executor (this process, or Ray workers:
:mod:`.distributed`) and appends each record as it comes back.  A clip that
fails, however it fails, becomes an error record; a job whose worker died or
that raised something other than a bad-input error is retried ``max_retries``
times first.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .._checks import check_int
from ..errors import ParameterError
from .jobs import error_text
from .protocol import RECORD_VERSION, EvalOptions
from .records import _clean, append_record, check_outputs, clip_id, clip_labels, load_records, locked, record_clip_id
from .transfer import TRANSFER_SETS, has_kept_set, kept_bands_hz_of, transfer_path

ProgressCallback = Callable[[str, int, int], None]


def _model_name(model: Any) -> str:
    """The name a run keeps its records under when none is given: a built-in name or path, a Model's
    ``name``, a function's qualified name (two functions never share records), for a model that wraps a
    function (:class:`~freqrex.models.CallableModel`, what :func:`~freqrex.models.as_model` makes of
    one) that name with the adapter's options, for an adapter of a file or folder (an
    :class:`~freqrex.models.OnnxModel` or :class:`~freqrex.models.HuggingFaceModel` made from a path)
    the path with the adapter's options.  A lambda, or a model object with nothing that tells it
    from another of its class, needs one (``model_name=``): two such models would share their records."""
    import types

    if isinstance(model, str):
        return model
    if isinstance(model, os.PathLike):
        return os.fspath(model)
    if isinstance(model, types.FunctionType):
        if "<lambda>" in model.__qualname__:
            raise ParameterError("name the model (model_name=...): a lambda has no name to keep its records under")
        return f"{model.__module__}.{model.__qualname__}"
    named = _own_attribute(model, "name")
    if isinstance(named, str) and named:
        return named
    from ..models import CallableModel
    from ..models.base import FunctionModel

    fn = _own_attribute(model, "fn") if isinstance(model, FunctionModel) else (
        _own_attribute(model, "_fn") if isinstance(model, CallableModel) else None)
    source = _own_attribute(model, "source") if isinstance(model, CallableModel) else None
    if isinstance(fn, types.FunctionType) or (isinstance(source, str) and source and source != "<bytes>"):
        # a function, or a file or folder (OnnxModel, HuggingFaceModel, TorchModel from a path): that, with the options
        base = _model_name(fn) if isinstance(fn, types.FunctionType) else source  # a lambda: the error above
        if isinstance(model, FunctionModel):
            return base  # what evaluate() makes of the function itself: the same model, the same records
        output = getattr(model, "configured_output", None) or getattr(model, "output", None)
        options = [f"output={output}", f"sample_rate={model.sample_rate}"]
        options += [f"{k}={getattr(model, k)}" for k in ("window", "window_hop")
                    if getattr(model, k, None) is not None]
        # what else of a file changes its scores: the input and output picked (ONNX), how a clip is fitted
        options += [f"{k}={getattr(model, k)}" for k in ("input_name", "output_name", "fit_policy")
                    if source is not None and getattr(model, k, None) is not None]
        names = getattr(model, "class_names", None)
        if source is not None and names is not None and [str(n) for n in names] != [str(i) for i in range(len(names))]:
            # (a function's model keeps its name of earlier versions: its records resume)
            import hashlib  # names of its own: another reading of the same scores, never the same records

            digest = hashlib.sha256("\n".join(str(n) for n in names).encode()).hexdigest()[:12]
            options.append(f"class_names={digest}")
        return f"{base} ({type(model).__name__}, {', '.join(options)})"
    raise ParameterError(
        f"name the model (model_name=...): a {type(model).__name__} has nothing to tell it from another "
        f"{type(model).__name__}, and two models under one name would share their records")


def _own_attribute(model: Any, name: str) -> Any:
    """An attribute of the model itself (a FunctionModel forwards the ones it lacks to its function)."""
    from ..models.base import FunctionModel

    if isinstance(model, FunctionModel):
        return vars(model).get(name)
    return getattr(model, name, None)


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
    **run_options: Any,
) -> List[Dict[str, Any]]:
    """Evaluate ``model`` on ``files``, appending one record per clip to ``out`` (JSONL).

    Clips already recorded in ``out`` for the same model and protocol are
    skipped (resume).  ``limit`` caps the clips considered (the first ``limit``
    of ``files``, in order).  Returns the records of this model and protocol,
    old and new, in file order.

    ``model_name`` (the records' ``model``) defaults to a name string or path
    as given, a model's ``name``, a function's qualified name, or for a
    :class:`~freqrex.models.CallableModel` of a function (or an ONNX file or
    Hugging Face folder given as a path) that name or path with the
    adapter's options; a lambda, or a model object nothing tells from another
    of its class, is a :class:`ParameterError` without one.

    ``on_start(path, index, total)`` is called before each clip evaluated (it
    may return a progress callback for that clip, used in-process), ``on_record(record, index,
    total)`` after each record is written.  ``run_options`` go to
    :func:`evaluate_many` (``workers``, ``address``, ``max_retries``, ...).
    """
    name = model_name or _model_name(model)
    results = evaluate_many(
        files, {str(name): model}, out, options=options, limit=limit, progress=progress,
        on_record=None if on_record is None else (lambda rec, i, n, _m: on_record(rec, i, n)),
        on_start=None if on_start is None else (lambda path, i, n, _m: on_start(path, i, n)),
        **run_options,
    )
    return results[str(name)]


@dataclass
class _Job:
    kind: str  # "clip" or "transfer"
    clip: int  # index into the run's files
    model: str  # the model that runs it (for a transfer: model B)
    attempts: int = 0
    duration_s: Optional[float] = None
    sources: List[Dict[str, Any]] = field(default_factory=list)


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
    workers: Optional[int] = None,
    address: Optional[str] = None,
    threads_per_worker: Optional[int] = None,
    max_retries: int = 2,
    transfer: bool = True,
    run_progress: Any = None,
    on_transfer: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> Dict[str, List[Dict[str, Any]]]:
    """Evaluate several models, clip by clip (every model on clip 1, then on clip 2, ...).

    Parameters
    ----------
    files : sequence of path
        Audio files; each is identified by :func:`~.records.clip_id` (its
        resolved path), so equal stems in different folders, or ``x.wav`` and
        ``x.flac``, are different clips.
    models : dict
        Name (recorded as ``model``) -> a model, or a specification for
        :func:`freqrex.models.load_model` (with Ray: built in each worker).
    out : path
        The JSONL records, appended to; locked for the run (a second run on
        it raises :class:`ParameterError`).
    workers : int, optional
        Run on a local Ray instance with this many workers.
    address : str, optional
        Run on an existing Ray cluster (``"auto"``, ``"ray://..."``).
    threads_per_worker : int, optional
        ONNX/torch intra-op threads of each worker, and CPUs of each Ray
        worker (default: 1 on Ray; in this process the models' own).
    max_retries : int
        Retries of a job whose worker died or that raised (bad audio and
        bad options are not retried); then the clip gets an error record.
    transfer : bool
        With two models or more, also play every model's sufficient and
        complete sets to every other model (:mod:`.transfer`), recorded in
        ``<out stem>.transfer.jsonl``.
    run_progress : object, optional
        Told of the run: ``start(total)``, ``update(record)`` per clip record,
        ``close()`` (see :class:`freqrex.progress.RunProgress`).

    Interleaving keeps the models' clip counts level when a long run is
    stopped early; a stopped run resumes where it stopped.  Returns each
    model's records (of this protocol) in file order.
    """
    from ..io import load_audio
    from .distributed import make_executor

    limit = None if limit is None else check_int(limit, "limit", 1)
    max_retries = check_int(max_retries, "max_retries", 0)
    if not models:
        raise ParameterError("no model to evaluate")
    paths: List[Path] = []
    ids: List[str] = []
    for f in files:
        cid = clip_id(f)
        if cid not in ids:
            paths.append(Path(f))
            ids.append(cid)
    paths, ids = paths[: limit if limit is not None else None], ids[: limit if limit is not None else None]
    labels = clip_labels(paths)
    out = Path(out)
    tpath = transfer_path(out)
    do_transfer = transfer and len(models) > 1
    check_outputs({"records": out, "transfer records": tpath if do_transfer else None}, paths)
    keys = {name: options.key(name) for name in models}
    with locked(out):
        done: Dict[Tuple[str, str], Dict[str, Any]] = {}
        for rec in load_records(out, repair=True):
            name = rec.get("model")
            if name in keys and rec.get("protocol") == keys[name] and rec.get("status") == "ok":
                done.setdefault((name, record_clip_id(rec)), rec)  # a clip that failed is tried again
        tdone = set()
        if do_transfer:
            for rec in load_records(tpath, repair=True):
                if rec.get("status") == "ok":  # a transfer that failed is tried again, as a clip is
                    tdone.add((rec.get("source"), rec.get("target"), rec.get("clip_id"),
                               rec.get("source_protocol"), rec.get("target_protocol")))
        pending = sum(1 for cid in ids for name in models if (name, cid) not in done)
        if run_progress is not None:
            run_progress.start(pending)
        executor = make_executor(models, workers=workers, address=address, threads=threads_per_worker) \
            if pending or do_transfer else None
        try:
            if executor is not None:
                _drive(executor, paths, ids, labels, list(models), keys, done, tdone, out, tpath, options,
                       do_transfer, max_retries, load_audio, progress, on_start, on_record, on_transfer,
                       run_progress)
        finally:
            if executor is not None:
                executor.close()
            if run_progress is not None:
                run_progress.close()
    return {name: [done[(name, cid)] for cid in ids if (name, cid) in done] for name in models}


def _drive(executor: Any, paths: List[Path], ids: List[str], labels: List[str], names: List[str],
           keys: Dict[str, str], done: Dict[Tuple[str, str], Dict[str, Any]], tdone: set, out: Path, tpath: Path,
           options: EvalOptions, do_transfer: bool, max_retries: int, load_audio: Callable,
           progress: Optional[ProgressCallback], on_start: Optional[Callable], on_record: Optional[Callable],
           on_transfer: Optional[Callable], run_progress: Any) -> None:
    """Hand out jobs while workers are free, write each outcome as it arrives, until every clip is done."""
    rates = {n: int(r or 16000) for n, r in executor.sample_rates().items()}
    queue: Deque[_Job] = deque()
    outstanding = [0] * len(paths)  # clip jobs of each clip not finished yet
    next_clip = 0
    audio_cache: Dict[Tuple[int, int], Any] = {}
    total = len(paths)

    def header(i: int, name: str) -> Dict[str, Any]:
        return {"clip": labels[i], "clip_id": ids[i], "file": str(paths[i]), "model": name,
                "protocol": keys[name], "options": options.to_dict(), "version": RECORD_VERSION}

    def audio_of(i: int, name: str) -> Tuple[np.ndarray, int]:
        key = (i, rates[name])
        if key not in audio_cache:
            if len(audio_cache) >= 8:
                audio_cache.pop(next(iter(audio_cache)))
            try:
                audio_cache[key] = load_audio(paths[i], sample_rate=rates[name], duration=options.duration)
            except Exception as exc:  # noqa: BLE001 - a file that cannot be read fails its clip, not the run
                audio_cache[key] = exc
        got = audio_cache[key]
        if isinstance(got, Exception):
            raise got
        return got

    def expand(i: int) -> None:
        for name in names:
            if (name, ids[i]) not in done:
                queue.append(_Job("clip", i, name))
                outstanding[i] += 1
        if outstanding[i] == 0:
            queue_transfers(i)

    def queue_transfers(i: int) -> None:
        if not do_transfer:
            return
        for b in names:
            rb = done.get((b, ids[i]))
            if rb is None or rb.get("status") != "ok":
                continue
            sources = []
            for a in names:
                ra = done.get((a, ids[i]))
                if a == b or ra is None or ra.get("status") != "ok":
                    continue
                if (a, b, ids[i], keys[a], keys[b]) in tdone:
                    continue
                sets = ra["fft_explanation"]["sets"]
                if not all(has_kept_set(sets[s]) for s in TRANSFER_SETS):
                    continue  # a record of an older version: its sets were not kept
                bin_hz = ra["fft_explanation"]["bin_hz"]
                sources.append({"source": a, "decision": {"class": ra["original"]["class"],
                                                          "name": ra["original"]["name"]},
                                "bin_hz": bin_hz,
                                "sets": {s: kept_bands_hz_of(sets[s], bin_hz) for s in TRANSFER_SETS}})
            if sources:
                queue.append(_Job("transfer", i, b, sources=sources))

    def finish_clip(job: _Job, outcome: Tuple[Any, ...]) -> None:
        rec = header(job.clip, job.model)
        if outcome[0] == "ok":
            rec.update(outcome[1])
            rec["status"] = "ok"
        else:
            rec["status"] = "error"
            rec["error"] = outcome[1]
        rec["attempts"] = job.attempts + 1
        rec["duration_s"] = job.duration_s
        append_record(out, rec)
        rec = _roundtrip(rec)
        done[(job.model, ids[job.clip])] = rec
        outstanding[job.clip] -= 1
        if run_progress is not None:
            run_progress.update(rec)
        if on_record is not None:
            on_record(rec, job.clip + 1, total, job.model)
        if outstanding[job.clip] == 0:
            queue_transfers(job.clip)

    def finish_transfer(job: _Job, outcome: Tuple[Any, ...]) -> None:
        for k, src in enumerate(job.sources):
            a = src["source"]
            rec = {"kind": "transfer", "clip": labels[job.clip], "clip_id": ids[job.clip],
                   "file": str(paths[job.clip]), "source": a, "target": job.model, "source_protocol": keys[a],
                   "target_protocol": keys[job.model], "version": RECORD_VERSION, "source_decision": src["decision"],
                   "attempts": job.attempts + 1}
            if outcome[0] == "ok":
                value = outcome[1]
                rec.update(status="ok", target_decision=value["original"], sets=value["results"][k],
                           host=value.get("host"), worker=value.get("worker"))
            else:
                rec.update(status="error", error=outcome[1])
            append_record(tpath, rec)
            if rec["status"] == "ok":
                tdone.add((a, job.model, ids[job.clip], keys[a], keys[job.model]))
            if on_transfer is not None:
                on_transfer(_roundtrip(rec))

    def submit(job: _Job) -> None:
        i, name = job.clip, job.model
        cb = None
        if job.kind == "clip" and job.attempts == 0 and on_start is not None:
            cb = on_start(paths[i], i + 1, total, name)
        try:
            audio, sr = audio_of(i, name)
        except Exception as exc:  # noqa: BLE001
            (finish_clip if job.kind == "clip" else finish_transfer)(job, ("error", error_text(exc), False))
            return
        job.duration_s = audio.size / sr
        if job.kind == "clip":
            payload = {"audio": audio, "sample_rate": sr, "options": options}
        else:
            payload = {"audio": audio, "sample_rate": sr, "sources": job.sources}
        executor.submit(job, job.kind, name, payload, cb or progress)

    while True:
        while executor.free_slots() > 0:
            while not queue and next_clip < len(paths):
                expand(next_clip)
                next_clip += 1
            if not queue:
                break
            submit(queue.popleft())
        if executor.busy() == 0 and not queue and next_clip >= len(paths):
            break
        got = executor.next_result(timeout=1.0)
        if run_progress is not None:
            run_progress.tick()
        if got is None:
            continue
        job, outcome = got
        if outcome[0] != "ok" and outcome[2] and job.attempts < max_retries:
            job.attempts += 1
            queue.appendleft(job)
            continue
        (finish_clip if job.kind == "clip" else finish_transfer)(job, outcome)


def _roundtrip(rec: Dict[str, Any]) -> Dict[str, Any]:
    """The record as it reads back from the file."""
    import json

    return json.loads(json.dumps(_clean(rec)))
