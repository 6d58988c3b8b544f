"""``lmforge augment DATA --out OUT``: augmented copies of a CSV / JSONL file's training rows.

The output holds every input row unchanged (``origin_id`` empty) and, after each augmented row,
its copies: ``id`` = ``<origin id>~aug<k>``, ``origin_id`` = the origin's id, ``aug_op`` = the
operation, every other column copied from the origin (``split`` = ``train``). Rows whose
``split`` is ``val`` / ``test`` are never augmented; without a ``split`` column every row is, and
:func:`lmforge.classify.data.load_classification_data` later keeps a copy only if its origin
lands in the training split. Rows without an id get ``row-<n>`` (n from 1).

Work is done in chunks saved under ``OUT.parts-<hash>/``: an interrupted run resumes from the
last finished chunk (copies are per-record deterministic, so the result is the same).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from rich.console import Console

from lmforge.augment.core import AugmentConfig, AugmentedCopy, augment_texts
from lmforge.classify.data import ID_COL, ORIGIN_COL, _read_table
from lmforge.errors import LmforgeError

OP_COL = "aug_op"
CHUNK = 2000


def _write_table(df, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        df.to_csv(tmp, index=False)
    elif suffix in (".jsonl", ".json"):
        df.to_json(tmp, orient="records", lines=True, force_ascii=False)
    else:
        raise LmforgeError(f"--out must end in .csv or .jsonl, got {path.name}")
    tmp.replace(path)


def augment_file(
    data: str | Path,
    out: str | Path,
    config: AugmentConfig,
    text_col: str = "text",
    label_col: str = "label",
    seed: int = 0,
    console: Console | None = None,
) -> dict:
    """Write ``out`` (CSV or JSONL by suffix); return the counts."""
    import pandas as pd

    console = console or Console()
    data, out = Path(data).expanduser(), Path(out).expanduser()
    if out.suffix.lower() not in (".csv", ".jsonl", ".json"):
        raise LmforgeError(f"--out must end in .csv or .jsonl, got {out.name}")
    df = _read_table(data, text_col, label_col)
    if ORIGIN_COL in df.columns and df[ORIGIN_COL].astype(str).str.strip().ne("").any():
        raise LmforgeError(f"{data}: already holds augmented copies (column {ORIGIN_COL!r})")
    df = df.reset_index(drop=True)
    if ID_COL not in df.columns:
        df.insert(0, ID_COL, [f"row-{i + 1}" for i in range(len(df))])
    df[ID_COL] = df[ID_COL].astype(str)
    dup = df[ID_COL][df[ID_COL].duplicated()]
    if len(dup):
        raise LmforgeError(f"{data}: column {ID_COL!r} repeats {dup.iloc[0]!r}; ids must be unique")
    df[ORIGIN_COL] = ""
    df[OP_COL] = ""
    if "split" in df.columns:
        train = df["split"].astype(str).str.strip().str.lower().eq("train")
    else:
        train = pd.Series(True, index=df.index)
    rows = df[train]
    texts = [t if isinstance(t, str) else "" for t in rows[text_col].tolist()]
    ids = rows[ID_COL].tolist()
    labels = rows[label_col].tolist()
    seed = config.seed if config.seed is not None else seed
    key = json.dumps(
        {"config": config.model_dump(), "seed": seed, "ids": ids, "texts": texts},
        ensure_ascii=False,
        sort_keys=True,
        default=str,
    )
    parts = out.with_name(f"{out.name}.parts-{hashlib.sha256(key.encode()).hexdigest()[:12]}")
    parts.mkdir(parents=True, exist_ok=True)
    copies: list[AugmentedCopy] = []
    stats: dict = {}
    n_chunks = max(1, -(-len(texts) // CHUNK))
    for c in range(n_chunks):
        done = parts / f"chunk-{c:05d}.json"
        if done.is_file():
            saved = json.loads(done.read_text(encoding="utf-8"))
        else:
            lo, hi = c * CHUNK, (c + 1) * CHUNK
            console.print(f"chunk {c + 1}/{n_chunks}: rows {lo + 1}-{min(hi, len(texts))}")
            res = augment_texts(texts[lo:hi], labels[lo:hi], ids[lo:hi], config, seed, console)
            saved = {"copies": [vars(x) for x in res.copies], "stats": res.stats}
            tmp = done.with_suffix(".tmp")
            tmp.write_text(json.dumps(saved, ensure_ascii=False, default=str), encoding="utf-8")
            tmp.replace(done)
        copies += [AugmentedCopy(**x) for x in saved["copies"]]
        for k, v in saved["stats"].items():
            if k != "seed":
                stats[k] = stats.get(k, 0) + v
    by_origin: dict[str, list[AugmentedCopy]] = {}
    for copy in copies:
        by_origin.setdefault(copy.origin_id, []).append(copy)
    records = []
    for row in df.to_dict(orient="records"):
        records.append(row)
        for copy in by_origin.get(row[ID_COL], []):
            new = dict(row)
            new.update({ID_COL: copy.id, text_col: copy.text, ORIGIN_COL: copy.origin_id})
            new[OP_COL] = copy.op
            if "split" in new:
                new["split"] = "train"
            records.append(new)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_table(pd.DataFrame(records, columns=list(df.columns)), out)
    shutil.rmtree(parts, ignore_errors=True)
    stats.update({"rows": len(df), "augmented_rows": len(texts), "seed": seed, "out": str(out)})
    return stats
