"""Evaluation records: audio files found, one JSON line per (clip, model), written atomically."""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence

import numpy as np

from .._atomic import write_text
from .._records import record_clip_id, run_key, standing  # noqa: F401  (record_clip_id: re-exported)
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
        except (ValueError, RecursionError):  # not JSON, not UTF-8 (UnicodeDecodeError), absurdly nested
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




# --------------------------------------------------------------------------- clip ids


def clip_id(path: os.PathLike) -> str:
    """The unique, stable id of an audio file: its resolved absolute path (POSIX form).

    Two files with the same stem in different folders, or ``x.wav`` beside
    ``x.flac``, get different ids; the id does not depend on the other files
    of a run, on their order or on the working directory, so a resume
    recognises every finished clip.  (Moving the data set changes the ids.)
    """
    return Path(path).resolve().as_posix()


def clip_labels(files: Sequence[os.PathLike]) -> List[str]:
    """Short readable names of files for tables: the stem, made unique by parent folders and suffix."""
    paths = [Path(f).resolve() for f in files]
    labels = [p.stem for p in paths]
    depth = 0
    while len(set(labels)) < len(labels) and depth < 64:
        depth += 1
        counts: Dict[str, int] = {}
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
        for i, p in enumerate(paths):
            if counts[labels[i]] > 1:
                parents = [q.name for q in p.parents][:depth][::-1]
                labels[i] = "/".join([*parents, p.name if depth > 1 else p.stem + p.suffix])
    return labels


def current_records(records: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The records that stand, in file order: per model, protocol and clip the first ``ok`` record, else
    the last error (a clip that failed is retried when the run resumes; its error stays in the file).
    A record without a clip id stands on its own (:func:`freqrex._records.standing`)."""
    return standing(records, run_key)


#: Fields that differ between two runs of the same evaluation: wall time, host and worker.
RUN_FIELDS = ("seconds", "elapsed", "host", "worker", "attempts")


def comparable(rec: Any) -> Any:
    """A record without its timing, host and worker fields (at any depth): what a rerun reproduces."""
    if isinstance(rec, dict):
        return {k: comparable(v) for k, v in rec.items() if k not in RUN_FIELDS}
    if isinstance(rec, list):
        return [comparable(v) for v in rec]
    return rec


# --------------------------------------------------------------------------- outputs


def check_outputs(outputs: Dict[str, Optional[os.PathLike]], inputs: Sequence[os.PathLike] = ()) -> None:
    """Refuse outputs that name the same file twice, or an input file.

    ``outputs`` maps a role (``records``, ``summary``, ...) to a path (None:
    not written).  Paths are compared resolved, so ``a/../r.jsonl`` and
    ``r.jsonl`` are one file.

    Raises
    ------
    ParameterError
        Two outputs, or an output and an input, are the same file.
    """
    seen: Dict[Path, str] = {}
    for role, path in outputs.items():
        if path is None:
            continue
        r = Path(path).resolve()
        if r in seen:
            raise ParameterError(f"the {role} output {path} is the {seen[r]} output too: "
                                 "choose different names (nothing was written)")
        if r.is_dir():
            raise ParameterError(f"the {role} output {path} is a directory")
        seen[r] = role
    for f in inputs:
        r = Path(f).resolve()
        if r in seen:
            raise ParameterError(f"the {seen[r]} output {r} is one of the input audio files")


class OutputLock:
    """An exclusive lock on an output file (``<out>.lock``), held for a whole run.

    A second run on the same output fails at once with
    :class:`ParameterError` instead of recording clips twice.  The lock is
    an advisory ``flock`` (released by the kernel when the process dies, so a
    killed run never leaves a stale lock); on systems without ``fcntl`` the
    lock file is created exclusively and removed on release.
    """

    def __init__(self, path: os.PathLike):
        self.target = Path(path)
        self.path = self.target.with_name(self.target.name + ".lock")
        self._fd: Optional[int] = None
        self._exclusive_file = False

    def acquire(self) -> "OutputLock":
        from .._atomic import make_folder

        make_folder(self.path.parent)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            try:
                self._fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                raise ParameterError(self._busy()) from None
            self._exclusive_file = True
            return self
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        except OSError as exc:  # no permission, a read-only disk: freqrex's error, still an OSError
            raise AudioFileError(f"cannot make the lock file {self.path}: {exc.strerror or exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ParameterError(self._busy()) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:  # a full disk
            os.close(fd)
            raise AudioFileError(f"cannot write the lock file {self.path}: {exc.strerror or exc}") from exc
        self._fd = fd
        return self

    def _busy(self) -> str:
        return (f"another run is writing {self.target} (lock {self.path} is held); wait for it to finish, "
                "or choose another --out")

    def release(self) -> None:
        if self._fd is None:
            return
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None
        if self._exclusive_file:  # pragma: no cover - Windows
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


@contextlib.contextmanager
def locked(path: os.PathLike) -> Iterator[OutputLock]:
    """Hold :class:`OutputLock` on ``path`` for the ``with`` block."""
    lock = OutputLock(path).acquire()
    try:
        yield lock
    finally:
        lock.release()
