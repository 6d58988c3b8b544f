"""``lmforge tokenizer train`` and ``lmforge tokenizer pack``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lmforge.errors import LmforgeError
from lmforge.terminal import make_console

tokenizer_app = typer.Typer(
    name="tokenizer",
    help="Train a tokenizer on a built corpus, and pack the corpus into token shards.",
    no_args_is_help=True,
)


def _summary(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    make_console().print(table)


@tokenizer_app.command("train")
def train_command(
    corpus_dir: Annotated[
        Path | None,
        typer.Argument(
            help="Built corpus folder (CORPUS_DIR/data/*.parquet). Optional with --from."
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder to write the tokenizer to.")
    ] = ...,
    kind: Annotated[
        str,
        typer.Option(help="wordpiece (encoder, BERT-Chinese style) or bpe (decoder, byte-level)."),
    ] = "wordpiece",
    vocab_size: Annotated[
        int, typer.Option(help="Vocabulary size, special tokens included.")
    ] = 8000,
    min_frequency: Annotated[
        int,
        typer.Option(
            help="Minimum count of a merge, and of a character to enter the WordPiece alphabet."
        ),
    ] = 2,
    lowercase: Annotated[
        bool, typer.Option(help="Lowercase before WordPiece (ignored for bpe).")
    ] = True,
    heldout_fraction: Annotated[
        float,
        typer.Option(help="Documents held out to measure the [UNK] rate (same split as pack)."),
    ] = 0.01,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split.")] = 0,
    from_dir: Annotated[
        str | None,
        typer.Option(
            "--from", help="Copy and validate an existing tokenizer folder instead of training."
        ),
    ] = None,
) -> None:
    """Train a WordPiece or byte-level BPE tokenizer, saved so AutoTokenizer.from_pretrained(OUT) loads it."""
    from lmforge.tokenizer.folder import META_FILE, copy_tokenizer
    from lmforge.tokenizer.train import KINDS, train_from_corpus

    if from_dir is not None:
        result = copy_tokenizer(from_dir, out)
        title = f"tokenizer copied from {from_dir}"
    else:
        if corpus_dir is None:
            raise LmforgeError("give a CORPUS_DIR to train on, or --from DIR to copy a tokenizer")
        if kind not in KINDS:
            raise LmforgeError(f"--kind must be one of {', '.join(KINDS)}, got {kind!r}")
        result = train_from_corpus(
            corpus_dir,
            kind,
            vocab_size,
            out,
            lowercase=lowercase,
            min_frequency=min_frequency,
            heldout_fraction=heldout_fraction,
            seed=seed,
            show_progress=True,
        )
        title = f"{kind} tokenizer trained on {corpus_dir}"
    meta = json.loads((result / META_FILE).read_text(encoding="utf-8"))
    rows = [
        ("folder", str(result)),
        ("kind", str(meta.get("kind"))),
        ("vocabulary", f"{meta.get('vocab_size'):,}"),
        ("documents", f"{meta.get('documents') or 0:,}"),
        ("seconds", f"{meta.get('seconds') or 0:.1f}"),
    ]
    if meta.get("alphabet"):
        rows.append(
            ("alphabet", f"{meta['alphabet']:,} of {meta['characters_seen']:,} characters seen")
        )
    heldout = meta.get("heldout")
    if heldout:
        rows += [
            ("held-out docs", f"{heldout['documents']:,}"),
            (
                "held-out [UNK] rate",
                f"{heldout['unk_rate']:.4%} ({heldout['unk_tokens']:,} of {heldout['tokens']:,})",
            ),
            ("chars / token", f"{heldout['characters_per_token']:.2f}"),
        ]
    _summary(title, rows)


@tokenizer_app.command("pack")
def pack_command(
    corpus_dir: Annotated[
        Path, typer.Argument(help="Built corpus folder (CORPUS_DIR/data/*.parquet).")
    ],
    tokenizer: Annotated[
        Path, typer.Option("--tokenizer", "-t", help="Tokenizer folder (AutoTokenizer-loadable).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the token shards to.")],
    val_fraction: Annotated[
        float, typer.Option(help="Fraction of documents for validation.")
    ] = 0.01,
    seed: Annotated[int, typer.Option(help="Seed of the document-level split.")] = 0,
    shard_tokens: Annotated[int, typer.Option(help="Maximum tokens per shard.")] = 50_000_000,
    workers: Annotated[
        int | None,
        typer.Option(help="1: one thread; default: the tokenizer's thread pool on all cores."),
    ] = None,
) -> None:
    """Tokenize a corpus into uint16/uint32 numpy shards with document offsets and a train/validation split."""
    from lmforge.tokenizer.pack import pack_corpus

    manifest = pack_corpus(
        corpus_dir,
        tokenizer,
        out,
        val_fraction=val_fraction,
        seed=seed,
        workers=workers,
        shard_tokens=shard_tokens,
        show_progress=True,
    )
    rows = [
        ("folder", str(out)),
        ("dtype", manifest["dtype"]),
        ("vocabulary", f"{manifest['vocab_size']:,}"),
    ]
    for split, info in manifest["splits"].items():
        rows.append(
            (
                split,
                f"{info['documents']:,} docs, {info['tokens']:,} tokens, {len(info['shards'])} shard(s)"
                f", {info['empty_documents']:,} empty skipped",
            )
        )
    rows += [
        ("tokens/s", f"{manifest['tokens_per_second']:,.0f}"),
        ("seconds", f"{manifest['seconds']:.1f}"),
    ]
    _summary(f"packed {corpus_dir}", rows)


def register(app: typer.Typer) -> None:
    """Add the ``tokenizer`` command group to the main app."""
    app.add_typer(tokenizer_app, name="tokenizer")
