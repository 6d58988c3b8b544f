"""Tokenizer folders: load one (local folder or hub id), copy one, and the lmforge metadata file.

A tokenizer folder is whatever ``transformers.AutoTokenizer.from_pretrained`` loads. lmforge
adds ``lmforge_tokenizer.json`` (kind, vocabulary size, what it was trained on, timings),
written last, so its presence marks a complete folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError

META_FILE = "lmforge_tokenizer.json"

# Files that never belong to a tokenizer: copying a model folder copies only its tokenizer.
_WEIGHT_SUFFIXES = {
    ".safetensors",
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".onnx",
    ".h5",
    ".msgpack",
    ".gguf",
}
# any one of these makes a folder a tokenizer folder
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "tokenizer.model",
    "spiece.model",
)
# everything a tokenizer's save_pretrained may write next to them
ALL_TOKENIZER_FILES = (
    *TOKENIZER_FILES,
    "special_tokens_map.json",
    "added_tokens.json",
    "merges.txt",
    "chat_template.jinja",
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def load_tokenizer(source: str | Path) -> Any:
    """``AutoTokenizer.from_pretrained(source)``, with a one-line LmforgeError when that fails.

    ``source`` is a local folder, or (when no such path exists) a hub id, which only works
    where the hub or its cache can be reached.
    """
    from transformers import AutoTokenizer

    path = Path(source)
    if path.exists() and not path.is_dir():
        raise LmforgeError(f"tokenizer must be a folder, got a file: {path}")
    if not path.exists() and not _HUB_ID.match(str(source)):
        raise LmforgeError(f"tokenizer folder not found: {path}")
    if path.is_dir() and not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise LmforgeError(f"no tokenizer in {path} (expected one of {', '.join(TOKENIZER_FILES)})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source))
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError, ...
        reason = " ".join(str(exc).split()) or type(exc).__name__
        reason = reason if len(reason) <= 300 else reason[:297] + "..."
        where = (
            f"folder {source}" if path.exists() else f"{source} (no such folder; tried as a hub id)"
        )
        raise LmforgeError(f"cannot load a tokenizer from {where}: {reason}") from exc
    if isinstance(tokenizer, bool) or not hasattr(tokenizer, "decode"):
        raise LmforgeError(f"{source} did not load as a tokenizer")
    return tokenizer


def backend_of(tokenizer: Any) -> Any | None:
    """The underlying ``tokenizers.Tokenizer`` of a fast tokenizer, or None."""
    return getattr(tokenizer, "backend_tokenizer", None)


def tokenizer_kind(tokenizer: Any) -> str:
    """'wordpiece', 'bpe' (byte-level BPE) or the model's own name for anything else."""
    backend = backend_of(tokenizer)
    if backend is None:
        return type(tokenizer).__name__
    state = json.loads(backend.to_str())
    model = (state.get("model") or {}).get("type", "unknown")
    if model == "WordPiece":
        return "wordpiece"
    if model == "BPE":
        return "bpe" if "ByteLevel" in json.dumps(state.get("pre_tokenizer")) else "bpe-other"
    return str(model).lower()


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON to a temporary name in the same folder, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_meta(tokenizer_dir: str | Path) -> dict | None:
    """The folder's ``lmforge_tokenizer.json``, or None when it has none."""
    path = Path(tokenizer_dir) / META_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def install_files(src_dir: Path, out_dir: Path) -> list[str]:
    """Move every file of ``src_dir`` into ``out_dir`` (rename per file), then remove ``src_dir``."""
    names = sorted(p.name for p in src_dir.iterdir() if p.is_file())
    for name in names:
        os.replace(src_dir / name, out_dir / name)
    shutil.rmtree(src_dir, ignore_errors=True)
    return names


def copy_tokenizer(source: str | Path, out_dir: str | Path, tokenizer: Any = None) -> Path:
    """Validate an existing tokenizer (local folder or hub id) and copy it to ``out_dir``.

    A local folder's files are copied as they are (weights and sub-folders left out); a hub id
    is saved with ``save_pretrained``. ``out_dir`` gets a ``lmforge_tokenizer.json`` too.
    ``tokenizer``: the already loaded ``source``, to skip loading it again. Returns ``out_dir``.
    """
    start = time.perf_counter()
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(source)
    probe = "lmforge 分词器 check 123"
    try:
        tokenizer.decode(tokenizer(probe, add_special_tokens=False)["input_ids"])
    except Exception as exc:
        raise LmforgeError(f"tokenizer in {source} cannot encode and decode text: {exc}") from exc

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    src = Path(source)
    same = src.is_dir() and src.resolve() == out_dir.resolve()
    if not same:
        tmp = out_dir / f".copy-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        if src.is_dir():
            for path in sorted(src.iterdir()):
                if (
                    path.is_file()
                    and path.suffix not in _WEIGHT_SUFFIXES
                    and path.name != META_FILE
                ):
                    shutil.copy2(path, tmp / path.name)
        else:
            tokenizer.save_pretrained(str(tmp))
        install_files(tmp, out_dir)

    previous = read_meta(src) if src.is_dir() else None
    meta = dict(previous or {})
    meta.update(
        {
            "kind": (previous or {}).get("kind") or tokenizer_kind(tokenizer),
            "vocab_size": len(tokenizer),
            "trained_on": (previous or {}).get("trained_on"),
            "documents": (previous or {}).get("documents", 0),
            "seconds": (previous or {}).get("seconds", 0.0),
            "copied_from": str(source),
            "copy_seconds": round(time.perf_counter() - start, 3),
        }
    )
    write_json_atomic(out_dir / META_FILE, meta)
    return out_dir
