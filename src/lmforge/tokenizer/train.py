"""Train a tokenizer with HF ``tokenizers`` and save it as a ``transformers`` folder.

Two kinds:

- ``wordpiece`` (for the encoder), BERT-Chinese style: ``BertNormalizer`` with
  ``handle_chinese_chars`` puts spaces around every CJK character, so each Chinese character
  is its own token; English words are split into ``##`` word pieces; specials
  ``[PAD] [UNK] [CLS] [SEP] [MASK]`` (ids 0-4); encoding adds ``[CLS] ... [SEP]``.
  The alphabet is the characters seen at least ``min_frequency`` times, capped at 3/4 of the
  vocabulary so that room is left for word pieces; rarer characters become ``[UNK]``. The
  same texts give the same vocabulary in every process (:func:`wordpiece_trainer`).
- ``bpe`` (for the decoder): GPT-2 style byte-level BPE, no normalizer, so it is lossless and
  never produces an unknown token; specials ``<|endoftext|>`` (bos, eos, unk; id 0) and
  ``<|pad|>`` (id 1); encoding adds no specials (the training loop appends EOS).

Round-trip guarantees (tested):

- ``bpe``: ``tok.decode(tok(text)["input_ids"]) == text`` for any text.
- ``wordpiece``, text without ``[UNK]``: the decoded text (``skip_special_tokens=True``) split on
  whitespace equals the normalized text's BERT words (whitespace and punctuation split, CJK
  characters one each); equivalently, with all whitespace removed, decoded == normalized
  input (lowercased when ``lowercase``; accents are kept).

The folder loads with ``transformers.AutoTokenizer.from_pretrained(DIR)`` and also holds
``lmforge_tokenizer.json`` with kind, vocab_size, trained_on, documents, seconds and the
``[UNK]`` rate on held-out text.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from lmforge.errors import LmforgeError
from lmforge.tokenizer.corpus_reader import (
    corpus_shards,
    count_documents,
    iter_batches,
    validation_mask,
)
from lmforge.tokenizer.folder import META_FILE, install_files, write_json_atomic

KINDS = ("wordpiece", "bpe")
DEFAULT_VOCAB_SIZE = {"wordpiece": 8000, "bpe": 8000}
WORDPIECE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
BPE_EOS = "<|endoftext|>"
BPE_PAD = "<|pad|>"
BPE_SPECIALS = [BPE_EOS, BPE_PAD]
MAX_ALPHABET_SHARE = 0.75  # of the vocabulary; the rest is left for word pieces
MIN_VOCAB_SIZE = {"wordpiece": len(WORDPIECE_SPECIALS) + 32, "bpe": 256 + len(BPE_SPECIALS)}
# transformers 4.x and 5.x both resolve this name to their generic fast tokenizer class.
TOKENIZER_CLASS = "PreTrainedTokenizerFast"


def build_wordpiece(lowercase: bool = True) -> Tokenizer:
    """An untrained BERT-Chinese-style WordPiece pipeline."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=lowercase
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # cleanup=False: no re-gluing of punctuation, so the word-level guarantee is exact.
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    return tok


def build_bpe() -> Tokenizer:
    """An untrained GPT-2-style byte-level BPE pipeline."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def count_characters(
    tok: Tokenizer, texts: Iterable[str], batch: int = 512
) -> tuple[Counter, set[str]]:
    """Character counts of the normalized texts, whitespace left out (batched, C-speed counting),
    and the characters that occur inside a word after its first one (``tok``'s pre-tokenizer
    words: these become ``##`` pieces)."""
    counts: Counter = Counter()
    inner: set[str] = set()
    buffer: list[str] = []

    def flush() -> None:
        joined = "\n".join(buffer)
        normalized = tok.normalizer.normalize_str(joined) if tok.normalizer else joined
        counts.update(normalized)
        # only a run of non-space characters can hold a word of two or more (the normalizer
        # spaced out every CJK character): pre-tokenizing just those runs is ~10x cheaper
        runs = " ".join(w for w in normalized.split() if len(w) > 1)
        for word, _ in tok.pre_tokenizer.pre_tokenize_str(runs):
            if len(word) > 1:
                inner.update(word[1:])
        buffer.clear()

    for text in texts:
        buffer.append(text)
        if len(buffer) >= batch:
            flush()
    if buffer:
        flush()
    for ch in [c for c in counts if c.isspace()]:
        del counts[ch]
    return counts, inner


def wordpiece_trainer(
    counts: Counter, inner: set[str], vocab_size: int, min_frequency: int
) -> tuple[trainers.WordPieceTrainer, list[str]]:
    """A WordPiece trainer that gives the same vocabulary in every process, and the ``##``
    pieces it holds as stand-in special tokens (:func:`drop_added_tokens` takes them out of
    the trained tokenizer's added tokens; they stay in its vocabulary).

    ``tokenizers`` (<= 0.23) is not deterministic between processes (huggingface/tokenizers
    #1794): ``limit_alphabet`` cuts characters of equal count in hash-map order, and the ``##``
    pieces get their ids in hash-map order, ids that break ties between merges of equal count.
    So the alphabet is chosen here (most frequent first, ties by code point) and passed as
    ``initial_alphabet``, and the ``##`` pieces of its characters are created up front in
    sorted order. The pieces are the ones the trainer would create anyway: same vocabulary
    size, same budget for merges."""
    limit = alphabet_limit(counts, vocab_size, min_frequency)
    alphabet = sorted(counts, key=lambda c: (-counts[c], c))[:limit]
    pieces = sorted("##" + c for c in inner.intersection(alphabet))
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=WORDPIECE_SPECIALS + pieces,
        limit_alphabet=limit,
        initial_alphabet=alphabet,
        continuing_subword_prefix="##",
        show_progress=False,
    )
    return trainer, pieces


def drop_added_tokens(tok: Tokenizer, contents: list[str]) -> Tokenizer:
    """``tok`` without these added tokens (they stay in the model's vocabulary)."""
    drop = set(contents)
    doc = json.loads(tok.to_str())
    doc["added_tokens"] = [t for t in doc["added_tokens"] if t["content"] not in drop]
    return Tokenizer.from_str(json.dumps(doc))


def alphabet_limit(char_counts: Counter, vocab_size: int, min_frequency: int) -> int:
    """How many characters the WordPiece alphabet keeps: those seen ``min_frequency`` times or
    more, at most ``MAX_ALPHABET_SHARE`` of the vocabulary (the most frequent win)."""
    frequent = sum(1 for n in char_counts.values() if n >= min_frequency)
    return max(1, min(frequent, int(vocab_size * MAX_ALPHABET_SHARE)))


def heldout_report(tok: Tokenizer, texts: Sequence[str], unk_token: str | None) -> dict:
    """Tokens, unknown tokens and characters per token on held-out texts."""
    texts = [t for t in texts if t]
    encodings = tok.encode_batch_fast(texts, add_special_tokens=False) if texts else []
    unk_id = tok.token_to_id(unk_token) if unk_token else None
    tokens = sum(len(e.ids) for e in encodings)
    unk = sum(e.ids.count(unk_id) for e in encodings) if unk_id is not None else 0
    characters = sum(len("".join(t.split())) for t in texts)
    return {
        "documents": len(texts),
        "characters": characters,
        "tokens": tokens,
        "unk_tokens": unk,
        "unk_rate": unk / tokens if tokens else 0.0,
        "characters_per_token": characters / tokens if tokens else 0.0,
    }


def _progress(show: bool) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show,
    )


def _tracked(texts: Iterable[str], progress: Progress, task: Any) -> Iterator[str]:
    step = 0
    for text in texts:
        yield text
        step += 1
        if step == 1000:
            progress.advance(task, step)
            step = 0
    progress.advance(task, step)


def _save(tok: Tokenizer, kind: str, out_dir: Path, lowercase: bool) -> None:
    """Save through ``PreTrainedTokenizerFast.save_pretrained`` into ``out_dir``, file by file."""
    from transformers import PreTrainedTokenizerFast

    if kind == "wordpiece":
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok,
            unk_token="[UNK]",
            pad_token="[PAD]",
            cls_token="[CLS]",
            sep_token="[SEP]",
            mask_token="[MASK]",
            clean_up_tokenization_spaces=False,
            do_lower_case=lowercase,
        )
    else:
        fast = PreTrainedTokenizerFast(
            tokenizer_object=tok,
            bos_token=BPE_EOS,
            eos_token=BPE_EOS,
            unk_token=BPE_EOS,
            pad_token=BPE_PAD,
            clean_up_tokenization_spaces=False,
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".save-{uuid.uuid4().hex[:8]}"
    fast.save_pretrained(str(tmp))
    config_path = tmp / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = TOKENIZER_CLASS
    config_path.write_text(
        json.dumps(config, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    (out_dir / META_FILE).unlink(missing_ok=True)  # incomplete until the metadata is back
    install_files(tmp, out_dir)


def train_tokenizer(
    texts: Iterable[str],
    kind: str,
    vocab_size: int,
    out_dir: Path,
    lowercase: bool = True,
    min_frequency: int = 2,
    *,
    heldout: Sequence[str] | None = None,
    trained_on: str | None = None,
    show_progress: bool = False,
) -> Path:
    """Train a ``kind`` tokenizer on ``texts`` and save it to ``out_dir``; returns ``out_dir``.

    ``texts`` may be a one-shot iterator (it is then held in memory, as WordPiece reads the
    text twice: once to choose the alphabet, once to train) or any re-iterable collection.
    ``lowercase`` applies to ``wordpiece`` only: byte-level BPE stays lossless.
    ``heldout`` texts, if given, measure the ``[UNK]`` rate reported in the metadata.
    """
    if kind not in KINDS:
        raise LmforgeError(f"unknown tokenizer kind {kind!r}; choose one of {', '.join(KINDS)}")
    if vocab_size < MIN_VOCAB_SIZE[kind]:
        raise LmforgeError(
            f"vocab_size for {kind} must be at least {MIN_VOCAB_SIZE[kind]}, got {vocab_size}"
        )
    if min_frequency < 1:
        raise LmforgeError(f"min_frequency must be at least 1, got {min_frequency}")
    if iter(texts) is texts:  # a one-shot iterator: keep it to read it twice
        texts = list(texts)
    length = len(texts) if isinstance(texts, Sequence) else None
    total = length if length is not None else getattr(texts, "expected_documents", None)
    out_dir = Path(out_dir)
    start = time.perf_counter()

    extra: dict[str, Any] = {}
    with _progress(show_progress) as progress:
        if kind == "wordpiece":
            tok = build_wordpiece(lowercase)
            task = progress.add_task("counting characters", total=total)
            counts, inner = count_characters(tok, _tracked(texts, progress, task))
            seen = next(t.completed for t in progress.tasks if t.id == task)
            progress.update(task, total=seen)
            limit = alphabet_limit(counts, vocab_size, min_frequency)
            extra = {"characters_seen": len(counts), "alphabet": limit}
            trainer, pieces = wordpiece_trainer(counts, inner, vocab_size, min_frequency)
        else:
            tok = build_bpe()
            trainer = trainers.BpeTrainer(
                vocab_size=vocab_size,
                min_frequency=min_frequency,
                special_tokens=BPE_SPECIALS,
                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                show_progress=False,
            )
        task = progress.add_task(f"training {kind} ({vocab_size} tokens)", total=total)
        documents = 0

        def counted() -> Iterator[str]:
            nonlocal documents
            for text in _tracked(texts, progress, task):
                documents += 1
                yield text

        tok.train_from_iterator(counted(), trainer, length=length)
        progress.update(task, total=documents, completed=documents)

    if documents == 0:
        raise LmforgeError(
            f"no text to train the tokenizer on{f' in {trained_on}' if trained_on else ''}"
        )
    if kind == "wordpiece":
        tok = drop_added_tokens(tok, pieces)
        cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
        )
    seconds = time.perf_counter() - start
    _save(tok, kind, out_dir, lowercase)
    unk_token = "[UNK]" if kind == "wordpiece" else None
    meta = {
        "kind": kind,
        "vocab_size": tok.get_vocab_size(with_added_tokens=True),
        "vocab_size_requested": vocab_size,
        "trained_on": trained_on,
        "documents": documents,
        "seconds": round(seconds, 3),
        "lowercase": lowercase if kind == "wordpiece" else False,
        "min_frequency": min_frequency,
        "special_tokens": WORDPIECE_SPECIALS if kind == "wordpiece" else BPE_SPECIALS,
        "heldout": heldout_report(tok, heldout, unk_token) if heldout is not None else None,
        **extra,
    }
    write_json_atomic(out_dir / META_FILE, meta)
    return out_dir


class CorpusTexts:
    """Re-iterable texts of one split of a built corpus (non-empty documents only)."""

    def __init__(self, corpus_dir: Path, split: str, val_fraction: float, seed: int):
        self.shards = corpus_shards(corpus_dir)
        self.split, self.val_fraction, self.seed = split, val_fraction, seed
        share = val_fraction if split == "validation" else 1.0 - val_fraction
        self.expected_documents = round(count_documents(self.shards) * share)  # for progress

    def __iter__(self) -> Iterator[str]:
        for ids, texts in iter_batches(self.shards):
            mask = validation_mask(ids, self.val_fraction, self.seed)
            keep = mask if self.split == "validation" else ~mask
            yield from (t for t, k in zip(texts, keep, strict=True) if k and t)


def train_from_corpus(
    corpus_dir: str | Path,
    kind: str = "wordpiece",
    vocab_size: int | None = None,
    out_dir: str | Path = "tokenizer",
    lowercase: bool = True,
    min_frequency: int = 2,
    *,
    heldout_fraction: float = 0.01,
    seed: int = 0,
    show_progress: bool = False,
) -> Path:
    """Train on a built corpus folder (``CORPUS_DIR/data/*.parquet``), holding out documents.

    The held-out documents are chosen exactly as ``pack_corpus`` chooses validation documents
    (hash of id and seed), so with the same fraction and seed the tokenizer never sees the
    validation split; the ``[UNK]`` rate on them goes into ``lmforge_tokenizer.json``.
    """
    corpus_dir = Path(corpus_dir)
    vocab_size = vocab_size or DEFAULT_VOCAB_SIZE.get(kind, 8000)
    train_texts = CorpusTexts(corpus_dir, "train", heldout_fraction, seed)
    heldout = list(CorpusTexts(corpus_dir, "validation", heldout_fraction, seed))
    out = train_tokenizer(
        train_texts,
        kind,
        vocab_size,
        Path(out_dir),
        lowercase=lowercase,
        min_frequency=min_frequency,
        heldout=heldout,
        trained_on=str(corpus_dir.resolve()),
        show_progress=show_progress,
    )
    meta = json.loads((out / META_FILE).read_text(encoding="utf-8"))
    meta["corpus_documents"] = count_documents(train_texts.shards)
    meta["heldout_fraction"], meta["seed"] = heldout_fraction, seed
    write_json_atomic(out / META_FILE, meta)
    return out
