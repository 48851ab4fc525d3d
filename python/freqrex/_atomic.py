"""Atomic file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, Dict, Iterable, Iterator, Tuple, Union


def _write_error(path: Path, exc: OSError) -> Exception:
    """freqrex's error for an OS failure writing ``path`` (no permission, a read-only or full
    disk, a missing folder): :class:`AudioFileError`, which is still an ``OSError``."""
    from .errors import AudioFileError

    return AudioFileError(f"cannot write {path}: {exc.strerror or exc}")


def make_folder(folder: Union[str, "os.PathLike[str]"]) -> Path:
    """Make ``folder`` and its parents: an existing file there or a part of its path that is a file
    is a ParameterError, any other OS failure (no permission, a read-only or missing mount) an
    AudioFileError."""
    from .errors import AudioFileError, ParameterError

    out = Path(os.fspath(folder))
    try:
        taken = out.exists() and not out.is_dir()
    except OSError as exc:  # a part of the path that cannot be searched
        raise AudioFileError(f"cannot make the output folder {out}: {exc.strerror or exc}") from exc
    if taken:
        raise ParameterError(f"the output folder {out} names an existing file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise ParameterError(f"cannot make the output folder {out}: a part of its path is a file") from exc
    except OSError as exc:
        raise AudioFileError(f"cannot make the output folder {out}: {exc.strerror or exc}") from exc
    return out


def _process_umask() -> int:
    """The process's umask, read without changing it where the system tells it (Linux's
    /proc/self/status): setting it to 0 and back would give files other threads create in
    between the wrong permissions."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # elsewhere: the only way to read it is to set it (and back)
        umask = os.umask(0o022)
        os.umask(umask)
    return umask


_UMASK_LOCK = threading.Lock()


@contextlib.contextmanager
def atomic_writer(path: Union[str, "os.PathLike[str]"], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it into place.

    The new file gets the old file's permissions, or 0644 (less the umask) for a new
    one. On any error the temporary file is removed and ``path`` is untouched. An
    ``OSError`` (no permission, a read-only or full disk, a missing folder), raised here
    or by the writes in the ``with`` block, becomes :class:`~freqrex.errors.AudioFileError`
    (chained); freqrex's own errors and other exceptions pass unchanged.
    """
    from .errors import FreqrexError

    path = Path(os.fspath(path))
    try:
        if path.exists():
            perms = path.stat().st_mode & 0o7777
        else:
            perms = 0o666 & ~_process_umask()
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except FreqrexError:
        raise
    except OSError as exc:
        raise _write_error(path, exc) from exc
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, perms)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, FreqrexError):
            raise _write_error(path, exc) from exc
        raise


def write_text(path: Union[str, "os.PathLike[str]"], text: str) -> None:
    """Write a text file atomically."""
    with atomic_writer(path, "w") as fh:
        fh.write(text)


# ------------------------------------------------------------- saved folders
#: The file written last by a folder save; :func:`check_saved` verifies it. An explanation's is
#: ``manifest.json``; another kind's is ``<kind>-manifest.json`` (a flip saved into an explanation's
#: folder, as ``freqrex report`` reads them, keeps the explanation's manifest intact).
MANIFEST = "manifest.json"
#: The kinds of saved folder.
SAVED_KINDS = ("explanation", "flip")


def manifest_name(kind: str) -> str:
    """The manifest file of a saved folder of this kind."""
    return MANIFEST if kind == "explanation" else f"{kind}-{MANIFEST}"
_FORMAT = "freqrex-save/1"
#: Largest manifest or JSON summary read back (bytes).
MAX_JSON_BYTES = 64 << 20
#: Most bytes the arrays of one ``.npz`` may expand to when loaded (all members together).
MAX_NPZ_BYTES = 2 << 30


def _digest(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def begin_save(directory: Union[str, "os.PathLike[str]"], kind: str) -> Path:
    """Start saving a result folder: create it and mark it incomplete.

    The marker (a manifest with ``"complete": false``) replaces any earlier
    manifest first, so a save interrupted anywhere (a kill, a full disk) leaves a
    folder that :func:`check_saved` refuses instead of a mix of two runs.
    """
    out = make_folder(directory)
    write_text(out / manifest_name(kind), json.dumps({"format": _FORMAT, "kind": kind, "complete": False}))
    return out  # write_text: an unwritable folder is an AudioFileError, like the mkdir above


def finish_save(directory: Path, kind: str, files: Iterable[str], owned: Iterable[str] = ()) -> None:
    """Finish a folder save: remove ``owned`` files this save did not write (left by an
    earlier save), then write the manifest (size and SHA-256 of every file) last."""
    from .errors import AudioFileError

    files = list(files)
    try:
        for name in set(owned) - set(files):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory / name)
        entries = {name: {"bytes": (directory / name).stat().st_size, "sha256": _digest(directory / name)}
                   for name in files}
    except AudioFileError:
        raise
    except OSError as exc:
        raise AudioFileError(f"cannot finish saving {directory}: {exc.strerror or exc}") from exc
    write_text(
        directory / manifest_name(kind),
        json.dumps({"format": _FORMAT, "kind": kind, "complete": True, "files": entries}, indent=1),
    )
    _fsync_dir(directory)


def read_json(path: Union[str, "os.PathLike[str]"], max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON file of at most ``max_bytes`` (ValueError beyond; RecursionError for
    absurd nesting is the caller's to map)."""
    path = Path(os.fspath(path))
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{path} is {size} bytes, more than the {max_bytes} read back")
    return json.loads(path.read_text())


def explanation_in(directory: Union[str, "os.PathLike[str]"]) -> bool:
    """Whether ``directory`` holds a saved explanation: a ``manifest.json`` of kind "explanation" (a
    flip saved before manifests were per kind wrote ``manifest.json`` of kind "flip": not one), or an
    ``explanation.npz`` (an explanation saved before manifests)."""
    d = Path(os.fspath(directory))
    try:
        if (d / MANIFEST).is_file():
            try:
                m = read_json(d / MANIFEST)
            except (OSError, ValueError, RecursionError):
                return True  # unreadable: taken for an explanation's, so nothing of it is overwritten
            return not (isinstance(m, dict) and m.get("kind") not in (None, "explanation"))
        return (d / "explanation.npz").is_file()
    except OSError:
        return False


def check_saved(directory: Union[str, "os.PathLike[str]"], kind: str) -> bool:
    """Verify a saved folder against its manifest.

    Returns True when the manifest is present and every file it lists has the
    recorded size and SHA-256, False for a folder without a manifest (saved by a
    freqrex before 0.2: accepted unverified). Raises :class:`ResultFileError`
    for an interrupted save, a folder of another kind, or a file missing or
    changed since the save.
    """
    from .errors import ResultFileError

    d = Path(os.fspath(directory))
    if not d.is_dir():
        raise ResultFileError(f"not a saved {kind} folder (not a directory): {d}")
    mpath = d / manifest_name(kind)
    if not mpath.exists():
        legacy = d / MANIFEST  # a flip saved before manifests were per kind
        others = [k for k in SAVED_KINDS if k != kind and (d / manifest_name(k)).exists()]
        if kind != "explanation" and legacy.exists():
            mpath = legacy
        elif others:
            raise ResultFileError(f"{d} holds a saved {others[0]!r}, not a {kind!r}")
        else:
            return False
    try:
        m = read_json(mpath, 16 << 20)
        if not isinstance(m, dict) or m.get("format") != _FORMAT:
            raise ValueError("not a freqrex manifest")
        complete, found_kind, files = m.get("complete"), m.get("kind"), m.get("files", {})
        if not isinstance(files, dict):
            raise ValueError("its file list is malformed")
    except (OSError, ValueError, RecursionError) as exc:
        raise ResultFileError(f"cannot read the manifest of {d}: {exc}") from exc
    if found_kind != kind:
        raise ResultFileError(f"{d} holds a saved {found_kind!r}, not a {kind!r}")
    if complete is not True:
        raise ResultFileError(f"{d} holds an incomplete save (interrupted while writing); save it again")
    for name, entry in files.items():
        p = d / str(name)
        if Path(str(name)).name != name or not p.is_file():
            raise ResultFileError(f"{d} lacks {name}, listed in its manifest")
        try:
            size, digest = int(entry["bytes"]), str(entry["sha256"])
        except (TypeError, KeyError, ValueError) as exc:
            raise ResultFileError(f"the manifest of {d} is malformed at {name!r}") from exc
        if p.stat().st_size != size or _digest(p) != digest:
            raise ResultFileError(f"{p} changed since it was saved (size or SHA-256 differs from the manifest)")
    return True


@contextlib.contextmanager
def reading_saved(directory: Union[str, "os.PathLike[str]"], kind: str) -> Iterator[None]:
    """Map every failure of reading a saved folder to freqrex's errors: our own pass
    through; anything else (a malformed file: KeyError, IndexError, RecursionError,
    a bad zip, ...) becomes :class:`ResultFileError`, chained."""
    from .errors import FreqrexError, ResultFileError

    try:
        yield
    except FreqrexError:
        raise
    except (Exception, RecursionError) as exc:
        raise ResultFileError(f"cannot read a saved {kind} from {directory}: {type(exc).__name__}: {exc}") from exc


def check_npz(path: Union[str, "os.PathLike[str]"], max_bytes: int = MAX_NPZ_BYTES) -> Dict[str, Tuple[Tuple[int, ...], str]]:
    """Read the headers of an ``.npz`` without loading it; refuse object arrays and
    arrays that would expand to more than ``max_bytes`` in all (an 8 MB file can
    declare 8 GiB). Returns {name: (shape, dtype)}. Raises ValueError."""
    import zipfile

    import numpy as np
    from numpy.lib import format as npformat

    out: Dict[str, Tuple[Tuple[int, ...], str]] = {}
    total = 0
    with zipfile.ZipFile(os.fspath(path)) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                raise ValueError(f"{info.filename!r} in {path} is not an array")
            with zf.open(info) as fh:
                version = npformat.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = npformat.read_array_header_1_0(fh)
                elif version == (2, 0):
                    shape, _, dtype = npformat.read_array_header_2_0(fh)
                else:
                    raise ValueError(f"unsupported .npy version {version} in {path}")
            if dtype.hasobject:
                raise ValueError(f"{info.filename!r} in {path} holds Python objects")
            n = 1
            for dim in shape:
                n *= int(dim)
            total += n * dtype.itemsize
            if total > max_bytes:
                raise ValueError(f"the arrays of {path} would take more than {max_bytes} bytes in memory")
            if info.file_size < n * dtype.itemsize:
                raise ValueError(f"{info.filename!r} in {path} is shorter than its header declares")
            out[info.filename[: -len(".npy")]] = (tuple(int(d) for d in shape), np.dtype(dtype).str)
    return out


def check_out_folder(out: Path) -> None:
    """Refuse an output folder that cannot be made, before anything runs (nothing is made or marked):
    a file of that name or a file in its path (ParameterError), a folder that cannot be written to
    (AudioFileError)."""
    from .errors import AudioFileError, ParameterError

    try:
        if out.exists() and not out.is_dir():
            raise ParameterError(f"the output folder {out} names an existing file, not a folder (nothing was run)")
        existing = out if out.exists() else next((p for p in out.absolute().parents if p.exists()), None)
    except OSError as exc:  # a part of the path that cannot be searched
        raise AudioFileError(f"cannot make the output folder {out}: {exc.strerror or exc}") from exc
    if existing is None:  # pragma: no cover - the root exists
        return
    if not existing.is_dir():
        raise ParameterError(f"cannot make the output folder {out}: {existing} is a file (nothing was run)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise AudioFileError(f"cannot write the output folder {out}: {existing} is not writable (nothing was run)")
