"""Where a corpus build keeps its results and its resume state: a local folder, or a folder at
any fsspec URL (``s3://bucket/prefix``, ``gs://``, ``hdfs://``, ``memory://``, ``file://``).

The build code names every file as a path under a local folder, :attr:`Storage.staging`, and
writes it there under a temp name unique to the attempt (:func:`temp_path`); once the file is
complete and checked, :meth:`Storage.commit` puts it at the same relative path of the output:

- a **local folder** (a plain path or ``file://``): staging *is* the output; the temp file is
  fsynced and renamed (atomic on POSIX);
- a **URL**: staging is a private temp folder of this process (per-rank work stays on local
  disk); the finished file is uploaded and its local copy deleted. On object stores (S3, GCS,
  Azure, ...) that is a single put of the finished file to its final key: the store makes an
  object visible only once its upload completed (multi-part included), so there is no temp
  object to rename or to leave behind. Elsewhere (HDFS, memory, SFTP, ...) it is a put to a
  unique temp name, then a rename.

Everything that decides what is done (completion markers, the files they certify, the plan, the
manifest) is read from the output itself, never from a local copy: a rank may run on another
node than the one that checks it.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import posixpath
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from lmforge.corpus.remote import filesystem_for, one_line, protocol_of

LOCAL_PROTOCOLS = ("file", "local")
# Object stores: a put is atomic (the object appears only once the upload completed).
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "r2"})


class StorageError(OSError):
    """The output's file system failed (network, credentials, permissions, a driver's own
    exception): one line naming the URL. An ``OSError``, so that a marker that cannot be read
    counts as not done and a failed write is the writers' one-line ``OutputError``."""


def temp_path(path: Path) -> Path:
    """``<name>.<pid>-<random>.tmp`` next to `path`: unique to this attempt, so a retried rank
    never writes into (or renames) the temp file of a stale attempt still running elsewhere."""
    return path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def is_local(out: str | Path) -> bool:
    return isinstance(out, Path) or protocol_of(str(out)) in LOCAL_PROTOCOLS


def commit_local(tmp: Path, path: Path) -> None:
    """Make a finished local temp file durable, then give it its final name."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _stale_temps_glob(name: str) -> str:
    # `<name>.tmp` (the names before attempts had their own) and `<name>.<pid>-<random>.tmp`
    return glob.escape(name) + ".*tmp"


class LocalStorage:
    """A build's output is a folder on this machine (or mounted on every node)."""

    is_local = True
    atomic_put = False

    def __init__(self, out: Path) -> None:
        self.staging = Path(out)
        self.url = str(out)

    def location(self, path: Path) -> str:
        return str(path)

    def commit(self, tmp: Path, path: Path) -> None:
        commit_local(tmp, path)

    def exists(self, path: Path) -> bool:
        return path.exists()

    def size(self, path: Path) -> int:
        return path.stat().st_size

    def open(self, path: Path) -> BinaryIO:
        return pa.OSFile(str(path), "r")  # native reads: as fast as handing pyarrow the path

    def read_text(self, path: Path) -> str:
        return path.read_text(encoding="utf-8")

    def list(self, folder: Path) -> list[str]:
        """Names of the files in `folder` (none when it does not exist)."""
        return sorted(p.name for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

    def local_copy(self, path: Path) -> Path:
        return path

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)

    def remove_tree(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)

    def remove_stale_temps(self, path: Path) -> None:
        """Delete the temp files earlier (killed) attempts left for `path`."""
        if path.parent.is_dir():
            for stale in path.parent.glob(_stale_temps_glob(path.name)):
                with contextlib.suppress(OSError):
                    stale.unlink()

    def close(self) -> None:
        pass

    def __enter__(self) -> LocalStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class UrlStorage:
    """A build's output is a folder at an fsspec URL; this process stages its files locally.

    Driver errors (network, credentials, an SDK's own exception types) surface as
    :class:`StorageError` with one line; a missing file stays ``FileNotFoundError``.
    """

    is_local = False

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.fs, root = filesystem_for(self.url, "output folder")
        self.root = root.rstrip("/")
        self.protocol = protocol_of(self.url)
        self.atomic_put = self.protocol in OBJECT_STORES
        name = posixpath.basename(self.root) or "corpus"
        self._tmp = Path(tempfile.mkdtemp(prefix="lmforge-out-"))
        self.staging = self._tmp / name

    # -- names ---------------------------------------------------------------------------
    def _remote(self, path: Path) -> str:
        rel = Path(path).relative_to(self.staging).as_posix()
        return self.root if rel == "." else f"{self.root}/{rel}"

    def location(self, path: Path) -> str:
        """The URL of the file that `path` (under staging) stands for."""
        rel = Path(path).relative_to(self.staging).as_posix()
        return self.url if rel == "." else f"{self.url}/{rel}"

    @contextlib.contextmanager
    def _driver(self, path: Path) -> Iterator[None]:
        try:
            yield
        except FileNotFoundError:
            raise
        except Exception as exc:  # drivers raise their own types (botocore, aiohttp, ...)
            raise StorageError(f"{self.location(path)}: {one_line(exc)}") from None

    def _fresh(self, target: str) -> None:
        # s3fs & co cache listings: another node's writes must be seen
        with contextlib.suppress(Exception):
            self.fs.invalidate_cache(target)

    # -- writes --------------------------------------------------------------------------
    def commit(self, tmp: Path, path: Path) -> None:
        target = self._remote(path)
        try:
            with self._driver(path):
                sent = tmp.stat().st_size
                if self.atomic_put:
                    self.fs.put_file(str(tmp), target)  # one put: visible only when complete
                else:
                    self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
                    temp = temp_path(Path(posixpath.basename(target))).name
                    temp = f"{posixpath.dirname(target)}/{temp}"
                    self.fs.put_file(str(tmp), temp)
                    self.fs.mv(temp, target)
                self._fresh(target)
                arrived = self.fs.size(target)
        finally:
            tmp.unlink(missing_ok=True)
        if arrived != sent:
            raise OSError(f"{self.location(path)}: {arrived} bytes arrived, {sent} sent")

    def remove(self, path: Path) -> None:
        with self._driver(path), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._remote(path))

    def remove_tree(self, folder: Path) -> None:
        target = self._remote(folder)
        with self._driver(folder):
            self._fresh(target)
            if self.fs.exists(target):
                self.fs.rm(target, recursive=True)

    def remove_stale_temps(self, path: Path) -> None:
        if self.atomic_put:  # an object store holds no temp objects of ours
            return
        target = self._remote(path)
        with self._driver(path):
            self._fresh(posixpath.dirname(target))
            for stale in self.fs.glob(_stale_temps_glob(target)):
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm_file(stale)

    # -- reads ---------------------------------------------------------------------------
    def exists(self, path: Path) -> bool:
        target = self._remote(path)
        with self._driver(path):
            self._fresh(target)
            return self.fs.exists(target)

    def size(self, path: Path) -> int:
        target = self._remote(path)
        with self._driver(path):
            self._fresh(target)
            return self.fs.size(target)

    def open(self, path: Path) -> BinaryIO:
        target = self._remote(path)
        with self._driver(path):
            self._fresh(target)
            return self.fs.open(target, "rb")

    def read_text(self, path: Path) -> str:
        with self.open(path) as f:
            return f.read().decode("utf-8")

    def list(self, folder: Path) -> list[str]:
        target = self._remote(folder)
        with self._driver(folder):
            self._fresh(target)
            if not self.fs.isdir(target):
                return []
            return sorted(
                posixpath.basename(e["name"].rstrip("/"))
                for e in self.fs.ls(target, detail=True)
                if e.get("type") == "file"
            )

    def local_copy(self, path: Path) -> Path:
        """Download `path` into staging (for steps that read local files); its local path."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._driver(path):
            self.fs.get_file(self._remote(path), str(path))
        return path

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> UrlStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Storage = LocalStorage | UrlStorage


def open_storage(out: str | Path) -> Storage:
    """The storage for a build's ``--out``: a local path, ``file://...``, or any fsspec URL.
    A missing or broken driver is one line naming the URL and what to install."""
    if isinstance(out, Path):
        return LocalStorage(out)
    if is_local(out):
        return LocalStorage(Path(out.split("://", 1)[1] if "://" in out else out))
    return UrlStorage(out)


def sha256_of(storage: Storage, path: Path) -> str:
    digest = hashlib.sha256()
    with storage.open(path) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
