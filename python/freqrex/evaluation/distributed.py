"""Executors of a run's jobs: in this process, or on Ray workers (``pip install 'freqrex[ray]'``).

Both take jobs from the driver and give back outcomes; the driver alone
writes records, so resume, locking and de-duplication are the same.  Ray is
imported only when a :class:`RayExecutor` is made.

On Ray, one actor per worker holds every model of the run, built inside the
worker from its specification (ONNX sessions cannot be pickled), with the
ONNX Runtime and torch threads limited to the worker's share of cores.  An
actor runs one job at a time.  A worker that dies (killed, ``os._exit``, out
of memory) is replaced by a fresh actor and its job handed back to the driver
to retry.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

from ..errors import ModelError, ParameterError
from ..models.base import check_threads, limit_threads
from .jobs import Outcome, build_model, run_job, worker_fields

Result = Tuple[Any, Outcome]


class LocalExecutor:
    """Runs each job at once, in this process, on models built here.

    ``threads``, when given, holds the models' ONNX Runtime sessions and torch
    to that many intra-op threads (two runs side by side on one machine then
    share its cores instead of spinning against each other); by default the
    models keep their own settings.
    """

    def __init__(self, models: Dict[str, Any], *, threads: Optional[int] = None):
        check_threads(threads, "threads per worker")
        self.models = {name: build_model(m) for name, m in models.items()}
        if threads is not None:
            for model in self.models.values():
                limit_threads(model, threads)
        self._done: List[Result] = []
        self.workers = 1

    def sample_rates(self) -> Dict[str, Optional[int]]:
        return {name: getattr(m, "sample_rate", None) for name, m in self.models.items()}

    def free_slots(self) -> int:
        return 0 if self._done else 1

    def busy(self) -> int:
        return len(self._done)

    def submit(self, job: Any, kind: str, model: str, payload: Dict[str, Any], progress: Any = None) -> None:
        outcome = run_job(kind, self.models[model], payload, progress)
        if outcome[0] == "ok" and isinstance(outcome[1], dict) and kind != "explain":
            outcome = ("ok", {**outcome[1], **worker_fields(f"pid {os.getpid()}")})
        self._done.append((job, outcome))

    def next_result(self, timeout: float) -> Optional[Result]:
        return self._done.pop(0) if self._done else None

    def close(self) -> None:
        self._done.clear()


class _Worker:
    """The Ray actor: every model of the run, built here; runs one job at a time."""

    def __init__(self, specs: Dict[str, Any], n_threads: int, index: int):
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(n_threads)
        self.index = index
        self.error: Optional[str] = None
        self.models: Dict[str, Any] = {}
        try:
            for name, spec in specs.items():
                self.models[name] = build_model(spec)
                limit_threads(self.models[name], n_threads)
        except Exception as exc:  # noqa: BLE001 - reported by info(), raised on the driver
            self.error = f"{type(exc).__name__}: {exc}"

    def info(self) -> Dict[str, Any]:
        return {"error": self.error, "pid": os.getpid(),
                "sample_rates": {n: getattr(m, "sample_rate", None) for n, m in self.models.items()}}

    def run(self, kind: str, model: str, payload: Dict[str, Any]) -> Outcome:
        outcome = run_job(kind, self.models[model], payload)
        if outcome[0] == "ok" and isinstance(outcome[1], dict) and kind != "explain":
            outcome = ("ok", {**outcome[1], **worker_fields(f"worker {self.index} pid {os.getpid()}")})
        return outcome


def import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise ParameterError("--workers and --address need Ray: pip install 'freqrex[ray]'") from exc
    return ray


class RayExecutor:
    """Runs jobs on Ray actors, one per worker; a dead worker is replaced and its job retried by the driver.

    Parameters
    ----------
    models : dict
        Name -> specification (see :func:`~freqrex.evaluation.jobs.build_model`);
        a model object is shipped by pickling.
    workers : int, optional
        Local Ray workers (``ray.init(num_cpus=workers)``); with ``address``,
        the number of actors (default: the cluster's CPUs / threads).
    address : str, optional
        An existing cluster (``"auto"`` or ``"ray://host:port"``).
    threads : int, optional
        CPUs (and ONNX/torch threads) of each worker (default 1).

    A Ray instance already running in this process is used as it is and left
    running; one started here is shut down by :meth:`close`.
    """

    def __init__(self, models: Dict[str, Any], *, workers: Optional[int] = None, address: Optional[str] = None,
                 threads: Optional[int] = None):
        check_threads(threads, "threads per worker")
        threads = 1 if threads is None else threads
        ray = import_ray()
        self.ray = ray
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ParameterError(f"workers must be a positive integer, got {workers!r}")
        for name, spec in models.items():
            if not isinstance(spec, (str, os.PathLike)):
                try:
                    ray.cloudpickle.dumps(spec)
                except Exception as exc:  # noqa: BLE001
                    raise ParameterError(f"model {name!r} cannot be sent to Ray workers ({exc}); give its "
                                         "specification (a built-in name, a file or 'module:callable')") from exc
        self.started = False
        if not ray.is_initialized():
            try:
                if address is None:
                    ray.init(num_cpus=(workers or 1) * threads, include_dashboard=False, log_to_driver=False,
                             configure_logging=False)
                else:
                    ray.init(address=address, log_to_driver=False)
            except Exception as exc:  # noqa: BLE001 - no cluster at the address (ConnectionError), a bad one...
                where = "start a local Ray instance" if address is None else f"connect to the Ray cluster at {address!r}"
                first = (str(exc).splitlines() or [""])[0][:300]
                raise ParameterError(f"cannot {where}: {type(exc).__name__}: {first}"
                                     + ("" if address is None else " (is a cluster running there? `ray start --head`)")
                                     ) from exc
            self.started = True
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
        self.workers = workers
        self.threads = threads
        self.specs = {name: (os.fspath(s) if isinstance(s, os.PathLike) else s) for name, s in models.items()}
        self._remote = ray.remote(num_cpus=threads, max_restarts=0, max_task_retries=0)(_Worker)
        self.actors: List[Any] = [self._actor(i) for i in range(workers)]
        try:
            infos = ray.get([a.info.remote() for a in self.actors])
        except ray.exceptions.RayError as exc:  # a worker that cannot start (no freqrex there, out of memory)
            self.close()
            raise ModelError(f"the Ray workers cannot start: {str(exc).splitlines()[0][:300]}") from exc
        for info in infos:
            if info["error"]:
                self.close()
                raise ModelError(f"a Ray worker cannot build the models: {info['error']}")
        self._rates = infos[0]["sample_rates"]
        self.idle: List[int] = list(range(workers))
        self.inflight: Dict[Any, Tuple[Any, int]] = {}
        self.restarts = 0

    def _actor(self, index: int) -> Any:
        return self._remote.remote(self.specs, self.threads, index)

    def sample_rates(self) -> Dict[str, Optional[int]]:
        return dict(self._rates)

    def free_slots(self) -> int:
        return len(self.idle)

    def busy(self) -> int:
        return len(self.inflight)

    def submit(self, job: Any, kind: str, model: str, payload: Dict[str, Any], progress: Any = None) -> None:
        index = self.idle.pop(0)
        ref = self.actors[index].run.remote(kind, model, payload)
        self.inflight[ref] = (job, index)

    def next_result(self, timeout: float) -> Optional[Result]:
        if not self.inflight:
            return None
        ray = self.ray
        ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=timeout)
        if not ready:
            return None
        ref = ready[0]
        job, index = self.inflight.pop(ref)
        try:
            outcome = ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            # the worker died with this job: a fresh actor takes its place, the driver retries the job
            self.restarts += 1
            try:
                ray.kill(self.actors[index])
            except Exception:  # noqa: BLE001 - already gone
                pass
            self.actors[index] = self._actor(index)
            outcome = ("error", f"worker died: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}", True)
        except ray.exceptions.RayError as exc:
            outcome = ("error", f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}", True)
        self.idle.append(index)
        return job, outcome

    def close(self) -> None:
        """Cancel what runs, end the actors, and shut Ray down if it was started here."""
        ray = self.ray
        for ref in list(getattr(self, "inflight", {})):
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - actor tasks cannot always be cancelled; the kill below ends them
                pass
        for actor in getattr(self, "actors", []):
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001
                pass
        self.inflight = {}
        if self.started and ray.is_initialized():
            ray.shutdown()
            self.started = False


def make_executor(models: Dict[str, Any], *, workers: Optional[int] = None, address: Optional[str] = None,
                  threads: Optional[int] = None) -> Any:
    """In-process without ``workers`` and ``address``; else Ray. ``threads``: ONNX/torch threads of
    each worker (and CPUs of each Ray worker), default 1 on Ray and the models' own in this process."""
    if workers is None and address is None:
        return LocalExecutor(models, threads=threads)
    return RayExecutor(models, workers=workers, address=address, threads=threads)
