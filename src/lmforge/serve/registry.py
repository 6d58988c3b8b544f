"""A model registry folder: versions of one classifier, which one is served, and what each is.

Layout (``lmforge registry add`` writes it; any classifier folder the Predictor takes can be a
version)::

    REGISTRY/
      registry.json        {"current": "v2"}
      v1/  lmforge_model.json, weights ..., version.json
      v2/  ...

``version.json`` holds the version's metadata: ``version``, ``created`` (UTC, ISO 8601),
``data_hash`` (SHA-256 of the training data file when given, else of the folder's recorded data
description), ``metrics`` (the folder's test metrics) and ``source`` (where it was copied from).

``lmforge serve REGISTRY`` serves ``current`` and switches to another version on
``POST /admin/reload`` or SIGHUP (see :mod:`lmforge.serve.app`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

from lmforge.classify.estimator import MODEL_JSON, read_model_meta
from lmforge.errors import LmforgeError

REGISTRY_JSON = "registry.json"
VERSION_JSON = "version.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def is_registry(path: str | Path) -> bool:
    return (Path(path) / REGISTRY_JSON).is_file()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path: Path, doc: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, path)  # readers never see half a file


class Registry:
    """Versions under one folder; ``current`` names the served one."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not is_registry(self.root):
            raise LmforgeError(f"{self.root}: not a model registry (no {REGISTRY_JSON})")

    @classmethod
    def create(cls, root: str | Path) -> Registry:
        root = Path(root)
        if root.exists() and any(root.iterdir()) and not is_registry(root):
            raise LmforgeError(f"{root}: exists and is not a model registry")
        root.mkdir(parents=True, exist_ok=True)
        if not is_registry(root):
            _write_json(root / REGISTRY_JSON, {"current": None})
        return cls(root)

    def _doc(self) -> dict:
        try:
            return json.loads((self.root / REGISTRY_JSON).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise LmforgeError(f"{self.root / REGISTRY_JSON}: invalid JSON: {exc.msg}") from exc

    def versions(self) -> list[str]:
        """Version names, oldest first (by their ``created``)."""
        names = [p.name for p in self.root.iterdir() if (p / MODEL_JSON).is_file()]
        return sorted(names, key=lambda n: (self.metadata(n).get("created") or "", n))

    def path(self, version: str) -> Path:
        if not _NAME.match(version or "") or not (self.root / version / MODEL_JSON).is_file():
            raise LmforgeError(f"{self.root}: no version {version!r}; have {self.versions()}")
        return self.root / version

    @property
    def current(self) -> str:
        name = self._doc().get("current")
        if not name:
            versions = self.versions()
            if not versions:
                raise LmforgeError(f"{self.root}: the registry has no versions yet")
            name = versions[-1]
        self.path(name)
        return name

    def activate(self, version: str) -> None:
        self.path(version)
        _write_json(self.root / REGISTRY_JSON, {**self._doc(), "current": version})

    def metadata(self, version: str) -> dict:
        path = self.root / version / VERSION_JSON
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
        meta = read_model_meta(self.root / version)
        return {"version": version, "created": meta.get("saved_at"), "metrics": meta.get("metrics")}

    def add(
        self,
        model_dir: str | Path,
        version: str | None = None,
        data: str | Path | None = None,
        activate: bool = True,
        trust_model_code: bool = False,
    ) -> str:
        """Copy ``model_dir`` in as ``version`` (default ``v<N+1>``) with its metadata."""
        model_dir = Path(model_dir)
        meta = read_model_meta(model_dir)
        existing = set(self.versions())
        if version is None:
            numbers = [int(v[1:]) for v in existing if re.fullmatch(r"v\d+", v)]
            version = f"v{max(numbers, default=0) + 1}"
        if not _NAME.match(version):
            raise LmforgeError(f"version {version!r}: use letters, digits, '.', '_', '-'")
        if version in existing or (self.root / version).exists():
            raise LmforgeError(f"{self.root}: version {version!r} exists already")
        if data is not None and Path(data).is_file():
            data_hash = _sha256(Path(data))
        else:
            described = json.dumps(meta.get("data") or str(data or ""), sort_keys=True)
            data_hash = hashlib.sha256(described.encode()).hexdigest()
        tmp = self.root / f".{version}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(model_dir, tmp)
        _write_json(
            tmp / VERSION_JSON,
            {
                "version": version,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "data_hash": data_hash,
                "metrics": (meta.get("metrics") or {}).get("test"),
                "source": str(model_dir.resolve()),
            },
        )
        if data is not None:  # the training reference the server's drift gauges compare with
            from lmforge.serve.drift import build_reference

            build_reference(tmp, str(data), trust_model_code=trust_model_code)
        os.replace(tmp, self.root / version)
        if activate:
            self.activate(version)
        return version
