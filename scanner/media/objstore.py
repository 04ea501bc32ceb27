"""Recordings in object storage: `s3://bucket/prefix/` and any other URL fsspec reads, as scan inputs.

- `parse_input(text)` turns a command-line input into a local `Path` or an `ObjectURL`; a malformed
  URL, an unknown scheme, a scheme whose package is not installed, or a URL carrying credentials
  (user:password@, a query string) is an `ObjectStoreError` (the command line exits 2).
- `list_objects(urls, storage, pass_over)` walks prefixes like folders and returns every object with its
  `ObjectFacts` (ETag, size, last-modified): the facts that stand in for a local file's `stat` in
  the scan database, so that an unchanged object is neither downloaded nor decoded again. Objects
  are recognised as local files are: by extension, else by their first bytes (one ranged read).
  A prefix that cannot be listed at all (no such bucket, access denied, unreachable endpoint) is
  an `ObjectStoreError`.
- `spooled(url, storage)` copies one object to a local temporary file (one object per worker at a
  time, deleted afterwards; the SHA-256 is computed while copying), which a worker then analyses
  exactly as a local recording (`scanner.pipeline.objects.analyze_object`). Workers read objects
  themselves with their own credentials, so a Dask cluster needs no shared file system. A read
  that fails (access denied, object gone, timed out after retries, not enough local space) is an
  `ObjectReadError` naming the reason.

Credentials come from where the AWS tools take them (for s3://): the environment
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_ENDPOINT_URL`,
`AWS_PROFILE`), the shared config and credentials files, then container and instance roles; other
schemes use their own package's chain (gcsfs, adlfs, ...). `StorageSettings` (`[storage]` in
likeness.toml) adds what is not secret: an endpoint, a region, a profile, timeouts, the spool folder.
Credentials are never part of a URL, a setting, a message or the scan database.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from scanner.models import SkippedFile

#: `scheme://...`: what makes a command-line input a URL rather than a local path.
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)

#: Chunk of an object copied (and hashed) at a time while spooling, in bytes.
SPOOL_CHUNK = 8 << 20

#: Tries s3fs makes of a request that botocore has already retried (see `filesystem`).
S3FS_TRIES = 2

#: Local space kept free besides the spooled object (the analysis writes nothing else there).
SPOOL_MARGIN = 64 << 20

#: Secret values scrubbed from every message this module builds (defence in depth: the libraries'
#: own messages do not carry them).
_SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")


class ObjectStoreError(Exception):
    """An object-store input that cannot be used at all: a malformed URL or a prefix that cannot be listed."""


class ObjectReadError(Exception):
    """One object could not be read; the message names the reason (the recording becomes unreadable)."""


class ObjectURL(PurePosixPath):
    """The URL of one object (or prefix), usable wherever the scan names a recording by its path.

    A pure path whose text is the URL (`str(ObjectURL("s3://b/k")) == "s3://b/k"`), so that reports,
    SARIF, JSON and the scan database name recordings by their URL. Like a path, repeated and
    trailing slashes are not kept: a key containing "//" is not reachable this way. It is never a
    local file: `resolve()` returns it unchanged and `exists()`, `is_file()` and `is_dir()` are
    False, so local-only features (sidecar files, manifest paths relative to the manifest's folder)
    pass it over.
    """

    def __str__(self) -> str:
        parts = self.parts
        if not parts:
            return ""
        return f"{parts[0]}//{'/'.join(parts[1:])}"

    def as_posix(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"ObjectURL({str(self)!r})"

    @property
    def scheme(self) -> str:
        """The URL scheme, lower case and without "://" ("s3")."""
        return self.parts[0].rstrip(":").lower()

    def resolve(self, strict: bool = False) -> ObjectURL:
        return self

    def absolute(self) -> ObjectURL:
        return self

    def exists(self) -> bool:
        return False

    def is_file(self) -> bool:
        return False

    def is_dir(self) -> bool:
        return False

    def is_symlink(self) -> bool:
        return False


@dataclass(frozen=True)
class StorageSettings:
    """How objects are reached; nothing secret (credentials come from the environment's chain).

    endpoint_url: an S3-compatible store's endpoint (MinIO, Ceph, SeaweedFS); None: `AWS_ENDPOINT_URL`,
        else AWS itself.
    region: the S3 region; None: `AWS_REGION` / `AWS_DEFAULT_REGION` / the profile's.
    profile: a profile of the shared AWS config files; None: `AWS_PROFILE`, else the default one.
    anonymous: read public buckets without credentials.
    timeout_s: a connection or a read that stalls this long fails and is tried again (seconds).
    retries: attempts after the first before a request is given up (an object then becomes
        unreadable; a listing ends the scan). A body cut off mid-transfer gets one more round.
    spool_dir: the folder where a worker copies the object it analyses; None: the system's temporary
        folder. Each worker holds one object there at a time.
    """

    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    anonymous: bool = False
    timeout_s: float = 60.0
    retries: int = 3
    spool_dir: str | None = None

    def options_for(self, scheme: str) -> dict:
        """fsspec storage options for `scheme`: these settings for s3, nothing for the others (their
        packages read their own environment)."""
        if scheme not in ("s3", "s3a"):
            return {}
        options: dict = {
            "anon": self.anonymous,
            "config_kwargs": {
                "connect_timeout": self.timeout_s,
                "read_timeout": self.timeout_s,
                "retries": {"max_attempts": self.retries + 1, "mode": "standard"},
            },
        }
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.profile:
            options["profile"] = self.profile
        if self.region:
            options["client_kwargs"] = {"region_name": self.region}
        return options


@dataclass(frozen=True)
class ObjectFacts:
    """What a listing says about an object's content: it stands in for a local file's stat facts.

    etag: the store's entity tag (changes whenever the content does), None when the store gives none.
    size: bytes. modified: last-modified time as ISO 8601 text, None when not given.
    """

    etag: str | None
    size: int
    modified: str | None

    @property
    def identifies_content(self) -> bool:
        """Whether these facts can vouch for unchanged content (size alone cannot)."""
        return self.etag is not None

    @classmethod
    def of(cls, info: dict) -> ObjectFacts:
        """From an fsspec `info`/listing entry (s3fs, gcsfs, adlfs and http spell the fields differently)."""
        etag = info.get("ETag") or info.get("etag") or info.get("md5Hash")
        modified = info.get("LastModified") or info.get("last_modified") or info.get("updated") or info.get("mtime")
        if hasattr(modified, "isoformat"):
            modified = modified.isoformat()
        return cls(str(etag) if etag else None, int(info.get("size") or 0), str(modified) if modified else None)


@dataclass
class ObjectListing:
    """The objects found under the URLs given to a scan, and what was passed over and why."""

    objects: dict[ObjectURL, ObjectFacts] = field(default_factory=dict)
    skipped: list[SkippedFile] = field(default_factory=list)


def is_url(text: str) -> bool:
    """Whether a command-line input is a URL (`scheme://...`) rather than a local path."""
    return _URL.match(text) is not None


def parse_input(text: str) -> Path:
    """A command-line input as a local `Path`, or an `ObjectURL` for a URL an installed fsspec
    package reads (`file://` URLs are local paths). Raises ObjectStoreError for a URL that cannot be used."""
    match = _URL.match(text)
    if match is None:
        return Path(text)
    scheme, rest = match.group("scheme").lower(), match.group("rest")
    if scheme in ("file", "local"):
        return Path("/" + rest.lstrip("/"))
    where = rest.split("/", 1)[0]
    if "@" in where or "?" in rest or "#" in rest:
        raise ObjectStoreError(
            f"{_redacted(text)}: credentials, query strings and fragments are not accepted in a URL "
            "(they would end up in reports); give credentials through the environment or a profile")
    if not where or where in (".", ".."):
        raise ObjectStoreError(f"{text}: malformed URL: no bucket or host after '{scheme}://'")
    _filesystem_class(scheme, text)
    return ObjectURL(f"{scheme}://{rest}")


def _redacted(text: str) -> str:
    match = _URL.match(text)
    if match is None:
        return text
    where = match.group("rest").split("/", 1)[0].split("?", 1)[0]
    host = where.rsplit("@", 1)[-1]
    return f"{match.group('scheme')}://{host}/..."


def _filesystem_class(scheme: str, text: str):
    """The fsspec file system class of `scheme`; ObjectStoreError when unknown or its package is missing."""
    # fsspec is imported here and in `filesystem` only: scans without URL inputs never pay for it.
    import fsspec

    try:
        return fsspec.get_filesystem_class(scheme)
    except ValueError:
        raise ObjectStoreError(f"{text}: unknown URL scheme '{scheme}://'") from None
    except ImportError as exc:
        raise ObjectStoreError(f"{text}: reading '{scheme}://' URLs needs another package: {exc}") from None


#: Loggers of the storage clients: at DEBUG they print request headers (session tokens, signatures).
_CLIENT_LOGGERS = ("botocore", "aiobotocore", "boto3", "s3fs", "fsspec", "urllib3", "aiohttp", "gcsfs", "adlfs",
                   "azure")


def filesystem(url: ObjectURL, storage: StorageSettings):
    """The fsspec file system and the store path of `url`; ObjectStoreError when it cannot be set up.

    The storage clients' loggers are kept at INFO or above, even under `--verbose`: their DEBUG
    records carry credentials."""
    import fsspec

    for name in _CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)

    # One file system (one client, one connection pool) per scheme, settings and credential
    # environment in each process. fsspec's own instance cache ignores the environment: a process
    # whose credentials changed would go on signing with the old ones.
    key = (url.scheme, storage, _credential_fingerprint())
    fs = _FILESYSTEMS.get(key)
    try:
        if fs is None:
            fs = fsspec.get_filesystem_class(url.scheme)(skip_instance_cache=True, **storage.options_for(url.scheme))
            _FILESYSTEMS[key] = fs
        path = fsspec.core.strip_protocol(str(url))
    except (ImportError, ValueError, TypeError) as exc:
        raise ObjectStoreError(f"{url}: {_scrub(str(exc))}") from None
    if hasattr(fs, "retries") and url.scheme in ("s3", "s3a"):
        # botocore retries requests (`retries` times: timeouts, lost connections, 5xx, throttling); s3fs
        # would try each of those up to 5 times more on top (5 x 4 stalled reads of `timeout_s` each).
        # It keeps one second try, for a body cut off mid-transfer, which botocore cannot retry.
        fs.retries = S3FS_TRIES
    return fs, path


_FILESYSTEMS: dict[tuple, object] = {}


def _credential_fingerprint() -> str:
    """A digest of the environment variables the storage clients read credentials and endpoints from."""
    names = sorted(n for n in os.environ if n.startswith(("AWS_", "GOOGLE_", "AZURE_")))
    text = "\0".join(f"{n}={os.environ[n]}" for n in names)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


#: Why an object under a prefix is not scanned ("" to leave it out silently), or None to scan it; given
#: the object's path relative to the prefix, its URL, and a function that reads its first n bytes.
PassOver = Callable[[str, ObjectURL, Callable[[int], bytes]], str | None]


def list_objects(urls: list[ObjectURL], storage: StorageSettings, pass_over: PassOver) -> ObjectListing:
    """Every object under `urls` with its facts, plus the objects passed over and why.

    A URL naming one object is always scanned (as a file named on the command line is); under a
    prefix, `pass_over` decides (`scanner.pipeline.discover.pass_over_object` applies the rules for files
    in folders). Raises ObjectStoreError when a URL cannot be listed at all or holds nothing.
    """
    listing = ObjectListing()
    for url in urls:
        fs, root = filesystem(url, storage)
        fs.invalidate_cache()  # a listing cached by an earlier scan in this process could be stale
        try:
            entries = _entries(fs, root)
        except Exception as exc:  # noqa: BLE001 - every library error becomes one clear message
            raise ObjectStoreError(f"{url}: cannot be listed: {describe(exc, storage)}") from None
        if not entries:
            raise ObjectStoreError(f"{url}: no object found (an empty or non-existent prefix)")
        single = len(entries) == 1 and entries[0][0] == root
        for path, info in entries:
            object_url = ObjectURL(fs.unstrip_protocol(path))
            facts = ObjectFacts.of(info)
            if single:
                listing.objects[object_url] = facts
                continue
            relative = path[len(root.rstrip("/")):].lstrip("/")
            reason = pass_over(relative, object_url, lambda n, path=path: fs.cat_file(path, start=0, end=n))
            if reason is None:
                listing.objects[object_url] = facts
            elif reason:
                listing.skipped.append(SkippedFile(object_url, reason))
    return listing


def _entries(fs, root: str) -> list[tuple[str, dict]]:
    """(path, info) of the object `root` names, or of every object under the prefix `root`, sorted."""
    denied: PermissionError | None = None
    try:
        info = fs.info(root)
    except FileNotFoundError:
        info = None
    except PermissionError as exc:  # S3 refuses HEAD without read access, even on a prefix that may be listed
        info, denied = None, exc
    if info is not None and info.get("type") == "file":
        return [(root, info)]
    found = fs.find(root.rstrip("/") + "/", detail=True)
    if not found and denied is not None:
        raise denied
    return sorted((p, i) for p, i in found.items() if i.get("type", "file") == "file")


@dataclass(frozen=True)
class SpooledObject:
    """An object copied to a local file: where, its SHA-256 (hex) and its size in bytes."""

    path: Path
    sha256: str
    size: int


@contextmanager
def spooled(url: ObjectURL, storage: StorageSettings, expected_size: int | None = None) -> Iterator[SpooledObject]:
    """Copy one object to a private temporary file (hashing it on the way) and delete it afterwards.

    Raises ObjectReadError naming the reason when the object cannot be read or the spool folder
    lacks the space for it (`expected_size` plus `SPOOL_MARGIN`).
    """
    folder = storage.spool_dir or tempfile.gettempdir()
    if expected_size:
        try:
            free = shutil.disk_usage(folder).free
        except OSError as exc:
            raise ObjectReadError(f"spool folder {folder} cannot be used: {exc.strerror or exc}") from None
        if free < expected_size + SPOOL_MARGIN:
            raise ObjectReadError(
                f"needs {_gb(expected_size)} of local space to be analysed, {folder} has {_gb(free)} free "
                "(set [storage] spool_dir to a larger folder)")
    suffix = url.suffix.lower() if re.fullmatch(r"\.[a-z0-9]{1,8}", url.suffix.lower()) else ""
    try:
        fd, name = tempfile.mkstemp(prefix="likeness-object-", suffix=suffix, dir=folder)  # mode 0600
    except OSError as exc:
        raise ObjectReadError(f"spool folder {folder} cannot be used: {exc.strerror or exc}") from None
    try:
        digest, size = hashlib.sha256(), 0
        try:
            fs, path = filesystem(url, storage)
            with fs.open(path, "rb", block_size=SPOOL_CHUNK) as source, os.fdopen(fd, "wb") as target:
                fd = -1
                while chunk := source.read(SPOOL_CHUNK):
                    digest.update(chunk)
                    target.write(chunk)
                    size += len(chunk)
        except ObjectStoreError as exc:
            raise ObjectReadError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - every library error becomes one clear message
            raise ObjectReadError(f"object cannot be read: {describe(exc, storage)}") from None
        finally:
            if fd >= 0:
                os.close(fd)
        yield SpooledObject(Path(name), digest.hexdigest(), size)
    finally:
        try:
            os.unlink(name)
        except OSError:
            pass


def describe(exc: BaseException, storage: StorageSettings) -> str:
    """A short reason for an object-store failure, without credentials."""
    name = type(exc).__name__
    if isinstance(exc, PermissionError):
        reason = f"access denied ({_scrub(str(exc))}); check the credentials and the bucket's policy"
    elif isinstance(exc, FileNotFoundError):
        reason = "does not exist (deleted, or no such bucket)" if not str(exc) else \
            f"does not exist ({_scrub(str(exc))})"
    elif "Timeout" in name or "timed out" in str(exc).lower() or isinstance(exc, TimeoutError):
        reason = f"timed out (no answer within {storage.timeout_s:g} s, after {storage.retries} retries)"
    elif "EndpointConnection" in name or "ClientConnector" in name or isinstance(exc, ConnectionError):
        reason = f"cannot connect to the store after {storage.retries} retries ({_scrub(str(exc))})"
    elif "NoCredentials" in name or "PartialCredentials" in name:
        reason = "no credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
    elif "ProfileNotFound" in name:
        reason = f"{_scrub(str(exc))}"
    elif isinstance(exc, OSError) and exc.strerror:
        reason = _scrub(exc.strerror)
    else:
        reason = f"{name}: {_scrub(str(exc))}"
    return reason


def _scrub(text: str) -> str:
    for variable in _SECRET_VARIABLES:
        secret = os.environ.get(variable)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def _gb(size: int) -> str:
    return f"{size / 1e9:.1f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB"
