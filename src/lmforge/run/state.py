"""What a run knows about its stage folders: fingerprints, status, timings, and which folders
lmforge created (and may therefore delete).

- ``<stage>/lmforge_stage.json``: the stage's fingerprint (hash of its own config and of the
  fingerprint of the stage it reads), its status (``started`` / ``done``), its wall time, its
  peak resident memory and whatever else the stage wants to remember for the next run (the
  pretraining budget).
- ``<stage>/.lmforge-created``: written when lmforge creates the folder. :func:`remove_stage_folder`
  refuses to delete a folder without it, so a recipe can never make lmforge delete a folder it
  did not make (a user's data next to ``runs/``, a folder a symlink points at).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from lmforge.errors import LmforgeError

STAGE_FILE = "lmforge_stage.json"
CREATED_FILE = ".lmforge-created"


def fingerprint(config: Any, upstream: str) -> str:
    data = config.model_dump(mode="json") if hasattr(config, "model_dump") else config
    blob = json.dumps({"config": data, "upstream": upstream}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def stage_state(folder: Path) -> dict[str, Any]:
    path = folder / STAGE_FILE
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return {}
    return state if isinstance(state, dict) else {}


def mark_stage(folder: Path, digest: str, status: str, **extra: Any) -> None:
    """Record the stage's fingerprint and status (plus ``extra``), atomically."""
    create_stage_folder(folder)
    state = {"fingerprint": digest, "status": status, **extra}
    tmp = folder / (STAGE_FILE + ".tmp")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    tmp.replace(folder / STAGE_FILE)


def update_stage(folder: Path, **extra: Any) -> None:
    """Add ``extra`` to a stage's recorded state (its peak memory, measured around it), keeping
    what the stage recorded itself; a stage that recorded nothing gets nothing."""
    state = stage_state(folder)
    if state.get("fingerprint") and state.get("status"):
        mark_stage(folder, state.pop("fingerprint"), state.pop("status"), **(state | extra))


def is_ours(folder: Path) -> bool:
    """lmforge created this folder (it holds the marker)."""
    return (folder / CREATED_FILE).is_file()


def create_stage_folder(folder: Path) -> Path:
    """Make ``folder`` (and its parents); mark it as lmforge's own when lmforge creates it (or
    finds it empty). A folder that was there before with something in it stays unmarked, so
    lmforge writes into it but never deletes it."""
    if folder.is_symlink():
        raise LmforgeError(f"{folder}: is a symbolic link; lmforge writes runs only into folders")
    new = not folder.exists() or not any(folder.iterdir())
    folder.mkdir(parents=True, exist_ok=True)
    if new:
        (folder / CREATED_FILE).write_text("created by lmforge; lmforge may delete this folder\n")
    return folder


def remove_stage_folder(folder: Path, run_dir: Path) -> None:
    """Delete a stage folder to rebuild it — only one inside ``run_dir`` that lmforge created."""
    if not folder.exists() and not folder.is_symlink():
        return
    root = run_dir.resolve()
    if folder.is_symlink() or root not in folder.resolve().parents:
        raise LmforgeError(f"refusing to delete {folder}: it is not a folder inside {run_dir}")
    if not is_ours(folder):
        raise LmforgeError(
            f"refusing to delete {folder}: lmforge did not create it (no {CREATED_FILE}); "
            "delete it yourself if it should go"
        )
    shutil.rmtree(folder)
