"""What a file on disk is before it is decoded: a readable regular file, and its SHA-256.

Only regular files are opened: a named pipe or a device named like a video would block or never end.
Every problem is a `MediaError` with a one-line reason.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from scanner.models import MediaError

#: Bytes read at a time while hashing a file (1 MiB).
HASH_CHUNK = 1 << 20


def file_type(mode: int) -> str:
    """What a non-regular file is, in words, from its `st_mode` (for messages)."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a plain file"


def check_readable_file(path: Path) -> None:
    """Raise MediaError unless `path` is a non-empty regular file this process may read."""
    try:
        st = path.stat()
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise MediaError(f"not a regular file ({file_type(st.st_mode)})")
    if st.st_size == 0:
        raise MediaError("empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise MediaError("cannot read file: permission denied")


def sha256_file(path: Path, chunk_size: int = HASH_CHUNK) -> str:
    """Hex SHA-256 of a file's bytes, read in `chunk_size` pieces (default 1 MiB).

    Raises MediaError for a file that cannot be read or is not a regular file.
    """
    digest = hashlib.sha256()
    try:
        # O_NONBLOCK: a named pipe put where a recording was expected must not hang the scan;
        # the fstat below then refuses anything that is not a regular file.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise MediaError(f"not a regular file ({file_type(mode)})")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            while block := fh.read(chunk_size):
                digest.update(block)
    except OSError as exc:
        raise MediaError(f"cannot read file: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    return digest.hexdigest()
