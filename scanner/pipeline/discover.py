"""Find the recordings under the paths given to a scan, and say why every other file was passed over.

`discover_recordings(inputs, exclude)` returns the files to analyse (sorted) and the files found
but not analysed, each with its reason (`SkippedFile`). Nothing found vanishes silently except
hidden files and folders (names starting with '.') and the scanner's own metadata files
(manifest and sidecars), which are read, not scanned.

- A file named on the command line is always scanned, so a broken one is reported.
- Inside folders, files with a media extension are scanned; others only when their first bytes
  look like audio, video or an image (`scanner.media.sniff`).
- Symlinks are never followed blindly. A symlink to a file inside a scanned folder is scanned
  (it is a recording someone pointed at); a symlink to a folder is passed over (what it points
  to is scanned where it lives, when that is inside the scan); a symlink whose target lies
  outside every scanned folder, a symlink loop and a dangling symlink are skipped with the
  reason.
- Unreadable folders are reported as skipped ("folder cannot be read: permission denied") and
  the walk goes on; unreadable files are scanned, so they surface as unreadable recordings.
- Named pipes, sockets and devices are skipped: opening one could block the scan forever.
- File names that are not valid UTF-8 come back as surrogate-escaped `str` paths (Python's
  `os.fsdecode`); they open correctly, and the report writers must encode them with an error
  handler.
- Deep trees are walked with folder descriptors (`os.scandir(fd)`, `openat`), so files whose
  path is longer than the system's PATH_MAX are still found and listed as skipped with the
  reason (nothing downstream could open them by path), and a folder swapped for a symlink
  mid-walk is not followed (O_NOFOLLOW).
- Thousands of small files: one `scandir` per folder, no `stat` or `resolve` per file beyond
  what `scandir` gives, content sniffed only for files without a media extension (8 KB read).

`discover_inputs(inputs, exclude, storage)` does the same for a mix of local paths and object-store
URLs (`scanner.media.objstore.ObjectURL`): prefixes are walked like folders by `objstore.list_objects`,
and the objects come back with their `ObjectFacts` (ETag, size, last-modified).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from scanner.media.files import file_type
from scanner.media.objstore import ObjectFacts, ObjectURL, StorageSettings, list_objects
from scanner.media.sniff import MEDIA_EXTENSIONS, SNIFF_BYTES, looks_like_media
from scanner.models import SkippedFile
from scanner.policy.manifest import is_metadata_file

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)

try:
    PATH_MAX = os.pathconf("/", "PC_PATH_MAX")
except (OSError, ValueError, AttributeError):
    PATH_MAX = 4096

REASON_EXCLUDED = "enrolment media of the consent file"
REASON_NOT_MEDIA = "not a media file"


def discover_recordings(
    inputs: list[Path], exclude: set[Path] | frozenset[Path] = frozenset()
) -> tuple[list[Path], list[SkippedFile]]:
    """Files to scan under `inputs`, sorted, plus the files passed over and why.

    Parameters
    ----------
    inputs : list of Path
        Files and folders given to the scan. Folders are walked recursively.
    exclude : set of Path
        Resolved paths never scanned (the consent file's enrolment media); listed as skipped.

    Returns
    -------
    (recordings, skipped)
        `recordings` sorted by POSIX path, each once; `skipped` in walk order. Never raises for
        anything found on disk.
    """
    walker = _Walker(inputs, exclude)
    for item in inputs:
        item = Path(item)
        if _is_dir(item):
            walker.walk(item)
        else:
            walker.found.setdefault(item, None)
    return sorted(walker.found, key=lambda p: p.as_posix()), walker.skipped


@dataclass
class Discovery:
    """What `discover_inputs` found: recordings sorted by their text (local paths and object URLs),
    the files and objects passed over with the reason, and the listed facts of each object."""

    recordings: list[Path] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    objects: dict[ObjectURL, ObjectFacts] = field(default_factory=dict)


def discover_inputs(
    inputs: list[Path], exclude: set[Path] | frozenset[Path] = frozenset(), storage: StorageSettings | None = None
) -> Discovery:
    """`discover_recordings` for local inputs plus `objstore.list_objects` for `ObjectURL` inputs.

    Raises `objstore.ObjectStoreError` when a URL cannot be listed at all (nothing is scanned then).
    """
    urls = [p for p in inputs if isinstance(p, ObjectURL)]
    listing = list_objects(urls, storage or StorageSettings(), pass_over_object) if urls else None
    found, skipped = discover_recordings([p for p in inputs if not isinstance(p, ObjectURL)], exclude)
    if listing is None:
        return Discovery(found, skipped)
    recordings = sorted({*found, *listing.objects}, key=lambda p: p.as_posix())
    return Discovery(recordings, skipped + listing.skipped, dict(listing.objects))


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _realpath(path: Path) -> str | None:
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return None


class _Walker:
    def __init__(self, inputs: list[Path], exclude) -> None:
        self.found: dict[Path, None] = {}
        self.skipped: list[SkippedFile] = []
        self.exclude = {os.fspath(p) for p in exclude}
        roots = [_realpath(Path(p)) for p in inputs if _is_dir(Path(p))]
        self.roots = [r for r in roots if r]

    # ---------------------------------------------------------------------------------------

    def walk(self, top: Path) -> None:
        real_top = _realpath(top)
        try:
            fd = os.open(top, _DIR_FLAGS & ~getattr(os, "O_NOFOLLOW", 0))  # the input itself may be a symlink
        except OSError as exc:
            self._skip(top, f"folder cannot be read: {_reason(exc)}")
            return
        # Iterative depth-first walk in sorted order. Each child folder is opened relative to its
        # parent's descriptor (no long absolute paths; O_NOFOLLOW: no symlink swapped in between
        # listing and opening). Open descriptors = depth of the current folder.
        stack: list[tuple[int, Path, str | None, list[str]]] = []
        stack.append((fd, top, real_top, self._scan_folder(fd, top, real_top)))
        while stack:
            fd, path, real, pending = stack[-1]
            if not pending:
                os.close(fd)
                stack.pop()
                continue
            name = pending.pop()
            child = path / name
            try:
                child_fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                self._skip(child, f"folder cannot be read: {_reason(exc)}")
                continue
            child_real = os.path.join(real, name) if real else None
            stack.append((child_fd, child, child_real, self._scan_folder(child_fd, child, child_real)))

    def _scan_folder(self, fd: int, path: Path, real: str | None) -> list[str]:
        """Handle the files of one folder; return the names of its subfolders, sorted."""
        try:
            with os.scandir(fd) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self._skip(path, f"folder cannot be read: {_reason(exc)}")
            return []
        subfolders: list[str] = []  # reversed below: popped from the end in sorted order
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            child = path / name
            try:
                if entry.is_symlink():
                    self._symlink(fd, child, real, name)
                elif entry.is_dir(follow_symlinks=False):
                    subfolders.append(name)
                elif entry.is_file(follow_symlinks=False):
                    self._file(fd, child, real, name)
                else:
                    mode = entry.stat(follow_symlinks=False).st_mode
                    self._skip(child, f"not a regular file ({file_type(mode)}); not opened")
            except OSError as exc:  # entry vanished or cannot be inspected
                self._skip(child, f"cannot be inspected: {_reason(exc)}")
        subfolders.reverse()
        return subfolders

    # ---------------------------------------------------------------------------------------

    def _file(self, dir_fd: int, path: Path, real_dir: str | None, name: str) -> None:
        real = os.path.join(real_dir, name) if real_dir else None
        length = max(len(os.fsencode(path)), len(os.fsencode(real)) if real else 0)
        if length >= PATH_MAX:
            self._skip(path, f"path too long for the operating system ({length} bytes, limit {PATH_MAX - 1}); "
                             "cannot be opened: move or rename it to scan it")
        elif self.exclude and real in self.exclude:
            self._skip(path, REASON_EXCLUDED)
        elif is_metadata_file(path):
            return
        elif _looks_like_media(dir_fd, name):
            self.found.setdefault(path, None)
        else:
            self._skip(path, REASON_NOT_MEDIA)

    def _symlink(self, dir_fd: int, path: Path, real_dir: str | None, name: str) -> None:
        try:
            target = os.readlink(name, dir_fd=dir_fd)
        except OSError as exc:
            self._skip(path, f"symlink cannot be read: {_reason(exc)}")
            return
        shown = os.fsdecode(target)
        base = real_dir if real_dir else os.fspath(path.parent)
        try:
            resolved = os.path.realpath(os.path.join(base, target), strict=True)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                self._skip(path, f"symlink loop (-> {shown}); not followed")
            elif exc.errno == errno.ENOENT:
                self._skip(path, f"dangling symlink (-> {shown}: target does not exist)")
            else:
                self._skip(path, f"symlink cannot be resolved (-> {shown}): {_reason(exc)}")
            return
        except RuntimeError:  # older Pythons report loops this way
            self._skip(path, f"symlink loop (-> {shown}); not followed")
            return
        if not any(_inside(resolved, root) for root in self.roots):
            self._skip(path, f"symlink points outside the scanned folders (-> {shown}); not followed")
            return
        try:
            st = os.stat(resolved)
        except OSError as exc:
            self._skip(path, f"symlink target cannot be read (-> {shown}): {_reason(exc)}")
            return
        if stat.S_ISDIR(st.st_mode):
            self._skip(path, f"symlink to a folder (-> {shown}); its files are scanned where they are")
        elif not stat.S_ISREG(st.st_mode):
            self._skip(path, f"symlink to {file_type(st.st_mode)} (-> {shown}); not opened")
        elif resolved in self.exclude:
            self._skip(path, REASON_EXCLUDED)
        elif is_metadata_file(path):
            return
        elif _looks_like_media(None, resolved):
            self.found.setdefault(path, None)
        else:
            self._skip(path, REASON_NOT_MEDIA)

    def _skip(self, path: Path, reason: str) -> None:
        self.skipped.append(SkippedFile(path, reason))


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _looks_like_media(dir_fd: int | None, name: str) -> bool:
    if os.path.splitext(name)[1].lower() in MEDIA_EXTENSIONS:
        return True
    try:
        fd = os.open(name, _FILE_FLAGS & ~(getattr(os, "O_NOFOLLOW", 0) if dir_fd is None else 0), dir_fd=dir_fd)
    except OSError:
        return True  # unreadable: scan it so the problem is reported
    try:
        head = os.read(fd, SNIFF_BYTES)
    except OSError:
        return True
    finally:
        os.close(fd)
    return looks_like_media(head)


def pass_over_object(relative: str, url: ObjectURL, read_head: Callable[[int], bytes]) -> str | None:
    """Why an object listed under a prefix is not scanned, by the rules for files in a folder: hidden
    names (a path segment starting with '.') and the scanner's metadata files are left out silently
    (""), objects neither named nor sniffed as media are passed over as `REASON_NOT_MEDIA`; None: scan it.
    `read_head(n)` reads the object's first n bytes."""
    if any(part.startswith(".") for part in relative.split("/")):
        return ""
    if is_metadata_file(url):
        return ""
    if url.suffix.lower() in MEDIA_EXTENSIONS:
        return None
    try:
        head = read_head(SNIFF_BYTES)
    except Exception:  # noqa: BLE001 - unreadable: scan it, so that the problem is reported
        return None
    return None if looks_like_media(head) else REASON_NOT_MEDIA


def _reason(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENAMETOOLONG:
        return "path too long for the operating system"
    return (exc.strerror or str(exc)).lower()
