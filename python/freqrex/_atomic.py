"""Atomic file writes: readers see the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Iterator, Union


@contextlib.contextmanager
def atomic_writer(path: Union[str, "os.PathLike[str]"], mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it into place.

    The new file gets the old file's permissions, or 0644 (less the umask) for a new
    one. On any error the temporary file is removed and ``path`` is untouched.
    """
    path = Path(os.fspath(path))
    if path.exists():
        perms = path.stat().st_mode & 0o7777
    else:
        umask = os.umask(0)
        os.umask(umask)
        perms = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, perms)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text(path: Union[str, "os.PathLike[str]"], text: str) -> None:
    """Write a text file atomically."""
    with atomic_writer(path, "w") as fh:
        fh.write(text)
