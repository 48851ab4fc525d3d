"""The units of work of a run, the same in-process and on a Ray worker.

A job is one clip for one model (``clip``: :func:`~.protocol.evaluate_clip`),
the transfer of other models' sets to one model (``transfer``), or one
explanation saved as a folder (``explain``).  :func:`run_job` runs one and
turns its failure into an outcome the driver can record or retry, so that a
worker and the in-process path give identical results.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from ..errors import AudioFileError, ParameterError

#: An outcome: ("ok", value) or ("error", "Type: message", retryable).
Outcome = Tuple[Any, ...]

#: Exceptions a retry cannot help: the input or the options are wrong.
PERMANENT = (ParameterError, AudioFileError)


def error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def run_job(kind: str, model: Any, payload: Dict[str, Any],
            progress: Optional[Callable[[str, int, int], None]] = None) -> Outcome:
    """Run one job and return its outcome; never raises an ``Exception`` (``KeyboardInterrupt`` passes)."""
    try:
        audio = payload.get("audio")
        if audio is not None and not (isinstance(audio, np.ndarray) and audio.flags.writeable):
            # arrays from Ray's object store are read-only views: the core and the model get a copy
            payload = {**payload, "audio": np.array(audio, dtype=np.float32, copy=True)}
        fresh_output_guess(model)  # "auto" decides on each clip's own scores, whatever came before
        if kind == "clip":
            from .protocol import evaluate_clip

            value = evaluate_clip(payload["audio"], payload["sample_rate"], model, payload["options"],
                                  progress=progress)
        elif kind == "transfer":
            from .transfer import transfer_sets

            value = transfer_sets(payload["audio"], payload["sample_rate"], model, payload["sources"])
        elif kind == "explain":
            value = explain_files(payload["audio"], payload["sample_rate"], model, payload["explain"],
                                  quality=payload.get("quality", True), report=payload.get("report", False),
                                  metadata=payload.get("metadata", {}))
        else:
            raise ParameterError(f"unknown job kind {kind!r}")
    except PERMANENT as exc:
        return ("error", error_text(exc), False)
    except Exception as exc:  # noqa: BLE001 - every clip's failure becomes its own record
        return ("error", error_text(exc), True)
    return ("ok", value)


def fresh_output_guess(model: Any) -> None:
    """Let a model with ``output="auto"`` guess again from the next scores
    (:meth:`~freqrex.models.CallableModel.reset_output_guess`): a clip's record never depends on the
    clips the same model instance scored before it (their order, the resume point, the worker count)."""
    reset = getattr(type(model), "reset_output_guess", None)
    if callable(reset):
        reset(model)


def worker_fields(worker: str) -> Dict[str, Any]:
    """Where a job ran (left out when records are compared, see ``comparable``)."""
    return {"host": socket.gethostname(), "worker": worker}


def explain_files(audio: np.ndarray, sample_rate: int, model: Any, explain_options: Dict[str, Any], *,
                  quality: bool = True, report: bool = False, metadata: Dict[str, Any]) -> Dict[str, Any]:
    """Explain one clip and return its output folder's files (name -> bytes) and its summary.

    The folder is written in a temporary directory where the job runs and
    shipped back as bytes, so the driver writes every output (also when the
    worker is another machine).
    """
    import freqrex

    e = freqrex.explain(audio, sample_rate, model, **explain_options)
    e.metadata.update(metadata)
    if quality:
        from ..quality import explanation_curves

        e.metadata["quality"] = explanation_curves(e, audio, model, target=e.target).to_dict()
    e.metadata["shares"] = {name: e.share(name) for name in ("sufficient", "sufficient_necessary", "complete")}
    with tempfile.TemporaryDirectory(prefix="freqrex-explain-") as tmp:
        out = e.save(Path(tmp) / "out")
        if report:
            from ..report import write_explanation_report

            write_explanation_report(e, out / "report.html", model_name=str(metadata.get("model")),
                                     source=str(metadata.get("audio")))
        files = {}
        for f in sorted(out.rglob("*")):
            if f.is_file():
                files[f.relative_to(out).as_posix()] = f.read_bytes()
    return {"files": files, "summary": e.summary()}


def write_folder(directory: os.PathLike, files: Dict[str, bytes]) -> Path:
    """Write a folder of files atomically: into a temporary sibling, then renamed into place."""
    import shutil

    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for name, data in files.items():
            p = tmp / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.replace(target, old / "x")
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def build_model(spec: Any) -> Any:
    """A model from its specification, built where it runs.

    ``spec`` is a name or path :func:`freqrex.models.load_model` accepts (a
    built-in name, a model file or directory), a :class:`ModelFactory`, a
    model object (returned as it is), or ``"module:callable"``
    naming a factory that returns a model (used when ``load_model`` does not
    take such specifications itself).
    """
    from ..errors import FreqrexError, ModelError

    try:
        return _build_model(spec)
    except FreqrexError:
        raise
    except Exception as exc:  # noqa: BLE001 - a model that cannot be built: the same error here and on Ray
        raise ModelError(f"cannot build the model {_spec_text(spec)}: {error_text(exc)}") from exc


def _spec_text(spec: Any) -> str:
    return repr(os.fspath(spec)) if isinstance(spec, (str, os.PathLike)) else repr(spec)[:200]


def _build_model(spec: Any) -> Any:
    from ..errors import ModelError
    from ..models import as_model, load_model

    if isinstance(spec, ModelFactory):
        return spec()
    if isinstance(spec, str) and _is_factory_spec(spec):
        try:
            return load_model(spec)
        except ModelError:
            pass
        import importlib

        module_name, _, attr = spec.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except Exception as exc:  # noqa: BLE001 - ImportError, AttributeError, or what the module raised
            raise ModelError(f"cannot import the model factory {spec!r}: {error_text(exc)}") from exc
        try:
            made = factory()
        except Exception as exc:  # noqa: BLE001
            raise ModelError(f"the model factory {spec!r} raised {error_text(exc)}") from exc
        return as_model(made)  # a transformers model or pipeline, a torch module, a function...
    if isinstance(spec, (str, os.PathLike)):
        return load_model(spec)
    return as_model(spec)  # a model object: HF models, pipelines, torch modules wrapped (freqrex.models.as_model)


def _is_factory_spec(spec: str) -> bool:
    import re

    return (not os.path.exists(spec)
            and re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", spec) is not None)


class ModelFactory:
    """A picklable recipe for a model: ``function(*args, **kwargs)``, called where the model is used.

    The driver sends the recipe, not the model, so that a Ray worker builds
    its own (an ONNX session cannot be pickled).  The driver's working
    directory is the worker's too (when it exists there): relative model paths
    and ``module:callable`` resolve as on the driver.
    """

    def __init__(self, function: Callable[..., Any], *args: Any, **kwargs: Any):
        self.function = function
        self.args = args
        self.kwargs = kwargs
        self.cwd = os.getcwd()

    def __call__(self) -> Any:
        import sys

        from ..models import as_model

        if os.path.isdir(self.cwd):  # relative model paths and modules, as on the driver
            if os.getcwd() != self.cwd:
                os.chdir(self.cwd)
            if self.cwd not in sys.path:
                sys.path.append(self.cwd)
        return as_model(self.function(*self.args, **self.kwargs))

    def __repr__(self) -> str:
        return f"ModelFactory({getattr(self.function, '__name__', self.function)!r}, {self.args!r})"
