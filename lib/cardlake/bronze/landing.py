"""The landing zone's file system: a local folder or an object store (``s3a://bucket/landing``).

The driver lists and reads landing files through ``pyarrow.fs`` (already installed with delta-rs's
Arrow; no second client library), never ``pathlib`` on what may be a URI. An S3 zone takes its
endpoint, region and credentials from the usual AWS environment (``AWS_ENDPOINT_URL``,
``AWS_REGION``, ``AWS_ACCESS_KEY_ID``...), as boto3 and Hadoop's S3A connector do; Spark reads
the same files by their URI through Hadoop's file system of the scheme.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from pyarrow import fs as pafs

from cardlake.config import S3_SCHEMES, is_object_store, local_path


@dataclass(frozen=True)
class Landed:
    """One file of a source's month folder: ``<root>/<source>/<month>/<name>``."""

    month: str
    name: str
    uri: str  # what Spark and :func:`open_input` read
    size: int


def _s3() -> pafs.S3FileSystem:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return _s3_at(endpoint, os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))


@functools.lru_cache(maxsize=4)
def _s3_at(endpoint: str | None, region: str | None) -> pafs.S3FileSystem:
    # One client per endpoint, not one per file read (a landing zone has a thousand files).
    options: dict[str, Any] = {}
    if endpoint:
        parsed = urlparse(endpoint)
        options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme or "https")
    if region:
        options["region"] = region
    return pafs.S3FileSystem(**options)


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The file system ``uri`` lives on and the path on it."""
    if uri.startswith(S3_SCHEMES):
        return _s3(), uri.split("://", 1)[1]
    if is_object_store(uri):  # another scheme pyarrow knows (gs://, hdfs://)
        found: tuple[pafs.FileSystem, str] = pafs.FileSystem.from_uri(uri)
        return found
    return pafs.LocalFileSystem(), os.path.abspath(local_path(uri))


def month_files(root: str, source: str, months: set[str] | None = None) -> list[Landed]:
    """The files directly in ``<root>/<source>/<month>/`` (every month, or ``months``), sorted
    by month and name; dot names are files still being written and are left out."""
    base_uri = f"{root.rstrip('/')}/{source}"
    fs, base = filesystem(base_uri)
    selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    found = []
    for info in fs.get_file_info(selector):
        parts = info.path[len(base) :].strip("/").split("/")
        if info.type != pafs.FileType.File or len(parts) != 2:
            continue
        month, name = parts
        if name.startswith(".") or (months and month not in months):
            continue
        found.append(Landed(month, name, f"{base_uri}/{month}/{name}", info.size or 0))
    return sorted(found, key=lambda f: (f.month, f.name))


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as stream:
        return bytes(stream.readall())


def open_input(uri: str) -> Any:
    """A binary stream of the file (``.read(n)``), for reading a big file in chunks."""
    fs, path = filesystem(uri)
    return fs.open_input_stream(path)
