"""Explain many files, one output folder per clip, in this process or on Ray workers.

``freqrex explain DIR --out OUT [--workers N]`` runs :func:`explain_many`:
every audio file under ``DIR`` is explained and saved in its own folder under
``OUT`` (its path below ``DIR``, the suffix's dot made ``_``:
``DIR/a/x.wav`` -> ``OUT/a/x_wav``, so ``x.wav`` and ``x.flac`` differ).  The
driver writes every folder (atomically: a temporary folder renamed into
place); a folder already complete is skipped, so an interrupted run resumes.
A clip that fails is reported and the run goes on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .._atomic import _write_error, make_folder
from ..errors import FreqrexError
from .jobs import error_text, write_folder
from .records import find_audio, locked


def output_folder(path: Path, root: Optional[Path]) -> Path:
    """The folder of one file's explanation, relative to the output directory."""
    rel = path.relative_to(root) if root is not None else Path(path.name)
    suffix = rel.suffix
    name = rel.stem + ("_" + suffix[1:] if suffix else "")
    return rel.parent / name


def _run_of(summary: Path, run: Dict[str, Any]) -> Dict[str, Any]:
    """The run options of a saved explanation: those its summary records, or for a folder without them
    (an older ``explain DIR``, a single ``freqrex explain``) ``run`` as far as its summary bears it out
    (the model's name and every explain option ``run`` sets), else what the summary says."""
    try:
        s = json.loads(summary.read_text())
    except (OSError, ValueError):
        return {"unreadable": str(summary)}
    if not isinstance(s, dict):
        return {"unreadable": str(summary)}
    if isinstance(s.get("run"), dict):
        return s["run"]
    from ..options import make_options

    saved = s.get("options") if isinstance(s.get("options"), dict) else {}
    try:  # every option, the defaults included, as the summary holds them
        resolved = json.loads(json.dumps(make_options(**run["explain"]).to_dict(), default=str))
    except Exception:  # noqa: BLE001 - options explain() will refuse with its own message
        resolved = dict(run["explain"])
    differs = {k: saved.get(k) for k, v in resolved.items() if k in saved and saved.get(k) != v}
    if s.get("model", run["model"]) != run["model"]:
        differs["model"] = s.get("model")
    return run if not differs else {**run, "explain": {**run["explain"], **differs}}


def explain_many(
    inputs: Sequence[os.PathLike],
    model: Any,
    out: os.PathLike,
    *,
    explain_options: Dict[str, Any],
    duration: float = 30.0,
    quality: bool = True,
    report: bool = False,
    model_name: str = "model",
    workers: Optional[int] = None,
    address: Optional[str] = None,
    threads_per_worker: Optional[int] = None,
    max_retries: int = 2,
    on_done: Optional[Callable[[Dict[str, Any]], None]] = None,
    run_progress: Any = None,
) -> List[Dict[str, Any]]:
    """Explain every audio file of ``inputs`` (files or directories) into ``out/<folder>``.

    Parameters
    ----------
    inputs : sequence of path
    model : object or specification
        Built in each Ray worker when ``workers``/``address`` are given (see
        :func:`~freqrex.evaluation.jobs.build_model`).
    out : path
        The output directory (locked for the run).
    threads_per_worker : int, optional
        ONNX/torch intra-op threads of each worker, and CPUs of each Ray
        worker (default: 1 on Ray; in this process the model's own).
    explain_options : dict
        Keyword options of :func:`freqrex.explain`.

    Returns
    -------
    list of dict
        Per file: ``file``, ``folder``, ``status`` (``ok``, ``skipped``:
        already done, or ``error``) and ``error`` or ``summary``.
    """
    from ..io import load_audio
    from .distributed import make_executor

    out = Path(out)
    out_resolved = out.resolve()
    files: List[Tuple[Path, Path]] = []
    for item in inputs:
        root = Path(item) if Path(item).is_dir() else None
        for f in find_audio([item]):
            if out_resolved in Path(f).resolve().parents:
                continue  # the WAVs of earlier explanations, when --out lies inside the input directory
            files.append((Path(f), output_folder(Path(f), root)))
    seen: Dict[Path, Path] = {}
    for f, folder in files:
        if folder in seen:
            from ..errors import ParameterError

            raise ParameterError(f"{f} and {seen[folder]} would share the output folder {out / folder}")
        seen[folder] = f
    make_folder(out)  # a file there or in its path: ParameterError; no permission: AudioFileError
    results: List[Dict[str, Any]] = []
    # what makes an explanation in a folder this run's: a folder made otherwise is never skipped as
    # done, nor overwritten
    run = json.loads(json.dumps({"model": model_name, "explain": explain_options, "duration": duration,
                                 "quality": bool(quality)}, sort_keys=True, default=str))
    with locked(out / ".explain"):
        todo = []
        for f, folder in files:
            summary = out / folder / "summary.json"
            if summary.is_file():
                made_by = _run_of(summary, run)
                if made_by != run:
                    from ..errors import ParameterError

                    raise ParameterError(
                        f"{out / folder} holds an explanation made with other options ({made_by}, not {run}): "
                        "write to another output folder, or remove it to explain again")
                results.append({"file": str(f), "folder": str(out / folder), "status": "skipped"})
            else:
                todo.append([f, folder, 0])
        if run_progress is not None:
            run_progress.start(len(todo))
        if not todo:
            if run_progress is not None:
                run_progress.close()
            return results
        executor = make_executor({model_name: model}, workers=workers, address=address, threads=threads_per_worker)
        rate = int(executor.sample_rates()[model_name] or 16000)

        def finish(job: list, outcome: tuple) -> None:
            f, folder, attempts = job
            res: Dict[str, Any] = {"file": str(f), "folder": str(out / folder), "attempts": attempts + 1}
            if outcome[0] == "ok":
                try:
                    write_folder(out / folder, outcome[1]["files"])
                except Exception as exc:  # noqa: BLE001 - a folder that cannot be written fails its clip
                    res.update(status="error", error=error_text(exc if isinstance(exc, FreqrexError) or not isinstance(exc, OSError)
                                                      else _write_error(out / folder, exc)))
                else:
                    res.update(status="ok", summary=outcome[1]["summary"])
            else:
                res.update(status="error", error=outcome[1])
            results.append(res)
            if run_progress is not None:
                run_progress.update({"status": res["status"]})
            if on_done is not None:
                on_done(res)

        try:
            queue = list(todo)
            while queue or executor.busy():
                while queue and executor.free_slots() > 0:
                    job = queue.pop(0)
                    try:
                        audio, sr = load_audio(job[0], sample_rate=rate, duration=duration)
                    except Exception as exc:  # noqa: BLE001 - one bad file fails its clip, not the run
                        finish(job, ("error", error_text(exc), False))
                        continue
                    payload = {"audio": audio, "sample_rate": sr, "explain": explain_options, "quality": quality,
                               "report": report, "metadata": {"model": model_name, "audio": str(job[0]), "run": run}}
                    executor.submit(job, "explain", model_name, payload)
                got = executor.next_result(timeout=1.0)
                if run_progress is not None:
                    run_progress.tick()
                if got is None:
                    continue
                job, outcome = got
                if outcome[0] != "ok" and outcome[2] and job[2] < max_retries:
                    job[2] += 1
                    queue.insert(0, job)
                    continue
                finish(job, outcome)
        finally:
            executor.close()
            if run_progress is not None:
                run_progress.close()
    return results
