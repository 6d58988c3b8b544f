"""Input URLs through fsspec: the file system for a URL, and every driver error as one line
that says what failed, where, and which package (or lmforge extra) to install.

Drivers are optional: ``pip install 'lmforge[s3]'`` (s3fs) and ``'lmforge[http]'`` (aiohttp,
what fsspec's HTTP file system needs); any other fsspec driver (gcsfs, adlfs, ...) works
once installed. ``file://`` and ``memory://`` need nothing.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from lmforge.errors import LmforgeError

# Protocols whose driver an lmforge extra installs.
PROTOCOL_EXTRAS = {"s3": "s3", "s3a": "s3", "http": "http", "https": "http"}
LOCAL_PROTOCOLS = ("file", "local", "memory")


def one_line(exc: BaseException) -> str:
    """'<ExceptionType>: <first line of its message>' (drivers raise multi-line messages)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def protocol_of(url: str) -> str:
    return url.split("://", 1)[0].lower() if "://" in url else "file"


def install_hint(protocol: str, message: str = "") -> str:
    """'; <what to install>' for `protocol`'s driver: the lmforge extra, else fsspec's own
    hint unless `message` (the driver's error) already says it."""
    extra = PROTOCOL_EXTRAS.get(protocol)
    if extra is not None:
        return f"; pip install 'lmforge[{extra}]'"
    from fsspec.registry import known_implementations

    known = known_implementations.get(protocol)
    if known is None:
        return ""
    hint = known.get("err") or f"install the package that provides {known['class']}"
    return "" if hint in message else f"; {hint}"


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[list[bytes]]:
    """Hold back what native code writes straight to file descriptor 2 (pyarrow's libhdfs
    prints a dlopen line per place it looked for Java). The caller re-emits it on success;
    on failure the one-line error stands for it."""
    held: list[bytes] = []
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded, closed): nothing to hold back
        yield held
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield held
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            held.append(sink.read())


def filesystem_for(url: str, role: str = "input path") -> tuple[Any, str]:
    """(fsspec file system, path inside it) for a local path or URL; LmforgeError (one line,
    naming the `role` ("input path", "output folder"), the URL and what to install) when the
    driver is missing or cannot start."""
    from fsspec.core import url_to_fs

    protocol = protocol_of(url)
    if protocol in LOCAL_PROTOCOLS:
        try:
            return url_to_fs(url)
        except (ValueError, OSError) as exc:
            raise LmforgeError(f"cannot open {role} {url}: {one_line(exc)}") from None
    with _quiet_native_stderr() as held:
        try:
            fs, root = url_to_fs(url)
        except ImportError as exc:
            why = str(exc).strip().splitlines()[0] if str(exc).strip() else "ImportError"
            raise LmforgeError(
                f"cannot open {role} {url}: the {protocol}:// driver is not installed "
                f"({why}){install_hint(protocol, why)}"
            ) from None
        except ValueError as exc:
            if "Protocol not known" in str(exc):
                raise LmforgeError(
                    f"cannot open {role} {url}: unknown protocol {protocol}:// "
                    "(no fsspec driver is registered for it)"
                ) from None
            raise LmforgeError(f"cannot open {role} {url}: {one_line(exc)}") from None
        except Exception as exc:  # drivers raise anything (OSError, RuntimeError, SDK errors)
            why = one_line(exc)
            raise LmforgeError(
                f"cannot open {role} {url}: the {protocol}:// file system did not start "
                f"({why}){install_hint(protocol, why)}"
            ) from None
    if held and held[0]:  # the driver started: what it printed was not about a failure
        with contextlib.suppress(AttributeError, OSError, ValueError):
            sys.stderr.buffer.write(held[0])
            sys.stderr.flush()
    return fs, root


@contextlib.contextmanager
def remote_errors(url: str, action: str = "list") -> Iterator[None]:
    """Turn a driver's error while listing `url` (network, permissions, credentials) into
    one line; LmforgeError passes through."""
    try:
        yield
    except LmforgeError:
        raise
    except Exception as exc:  # drivers raise their own types (aiohttp, botocore, ...)
        why = one_line(exc)
        hint = install_hint(protocol_of(url), why) if isinstance(exc, ImportError) else ""
        raise LmforgeError(f"cannot {action} input path {url}: {why}{hint}") from None
