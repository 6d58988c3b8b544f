"""EDA and MLM-contextual augmentation on real reviews: Chinese-aware, reproducible, train-only."""

from __future__ import annotations

import unicodedata
from collections import Counter

import numpy as np
import pytest

from _helpers import run_lmforge
from lmforge.augment import AugmentConfig, augment_texts, augment_train
from lmforge.augment.words import (
    content_positions,
    cut,
    n_changes,
    random_delete,
    random_insert,
    random_swap,
    synonym_replace,
)
from lmforge.classify.data import ClassificationData
from lmforge.classify.leakage import check_leakage, find_leakage
from lmforge.errors import LmforgeError


def punctuation(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c).startswith("P")]


def standalone_marks(text: str) -> list[str]:
    """Punctuation tokens as jieba cuts the text (a mark inside "1.8" belongs to a word)."""
    import jieba

    return [t for t in jieba.lcut(text) if all(unicodedata.category(c)[0] == "P" for c in t)]


def in_order(marks: list[str], text: str) -> bool:
    at = 0
    for mark in marks:
        at = text.find(mark, at)
        if at < 0:
            return False
        at += len(mark)
    return True


@pytest.mark.parametrize("op", ["delete", "swap", "insert", "synonym"])
def test_each_op_keeps_punctuation_in_place_and_adds_no_space(texts, op):
    origins, labels = texts
    res = augment_texts(origins, labels, config=AugmentConfig(ops=[op], rate=0.2, copies=2))
    text_of = dict(enumerate(origins))
    assert res.stats[f"{op}.made"] >= 0.8 * len(origins)  # it really changes real reviews
    for copy in res.copies:
        origin = text_of[int(copy.origin_id)]
        assert copy.op == op and copy.text != origin
        assert copy.text.count(" ") <= origin.count(" ")
        # no standalone mark lost or moved out of order, none added (a deleted word may take
        # its own inner mark along)
        assert in_order(standalone_marks(origin), copy.text)
        n_marks, n_origin = len(punctuation(copy.text)), len(punctuation(origin))
        assert n_marks <= n_origin if op == "delete" else n_marks == n_origin
        if op == "swap":  # words move, nothing else: same characters
            assert Counter(copy.text) == Counter(origin)
        if op == "delete":
            assert len(copy.text) < len(origin)
        if op == "insert":
            assert len(copy.text) > len(origin)


def test_rate_sets_how_many_words_change(texts):
    origins, _ = texts
    for rate in (0.1, 0.3):
        for i, text in enumerate(origins[:60]):
            tokens = cut(text)
            n = n_changes(tokens, rate)
            assert n == max(1, round(rate * len(content_positions(tokens))))
            rng = np.random.default_rng(i)
            deleted = random_delete(tokens, n, rng)
            if deleted is not None:
                assert len(content_positions(tokens)) - len(content_positions(deleted)) == min(
                    n, len(content_positions(tokens)) - 1
                )
            inserted = random_insert(tokens, n, rng, _syn, frozenset())
            if inserted is not None:
                assert len(inserted) == len(tokens) + n
            replaced = synonym_replace(tokens, n, rng, _syn, frozenset())
            if replaced is not None:
                assert 1 <= sum(a != b for a, b in zip(tokens, replaced, strict=True)) <= n
            swapped = random_swap(tokens, n, rng)
            if swapped is not None:
                assert sum(a != b for a, b in zip(tokens, swapped, strict=True)) <= 2 * n


def _syn(word: str):
    from lmforge.augment.synonyms import synonyms

    return synonyms(word)


def test_a_seed_reproduces_the_copies_whatever_the_order(texts):
    origins, labels = texts
    ids = [f"r{i}" for i in range(len(origins))]
    config = AugmentConfig(rate=0.2, copies=3)
    a = augment_texts(origins, labels, ids, config, seed=7)
    b = augment_texts(origins[::-1], labels[::-1], ids[::-1], config, seed=7)
    c = augment_texts(origins, labels, ids, config, seed=8)
    key = {(x.id, x.text) for x in a.copies}
    assert key == {(x.id, x.text) for x in b.copies}
    assert key != {(x.id, x.text) for x in c.copies}
    # every copy names its origin: id = origin~aug<k>, origin among the inputs, label carried
    label_of = dict(zip(ids, labels, strict=True))
    for copy in a.copies:
        assert copy.origin_id in label_of and copy.id.startswith(f"{copy.origin_id}~aug")
        assert copy.label == label_of[copy.origin_id]


def test_augment_train_never_touches_val_or_test(reviews):
    small = ClassificationData(
        reviews.train_texts[:80], reviews.train_labels[:80],
        reviews.val_texts[:30], reviews.val_labels[:30],
        reviews.test_texts[:30], reviews.test_labels[:30], reviews.label_names,
    )  # fmt: skip
    out = augment_train(small, AugmentConfig(rate=0.2, copies=2), seed=0)
    assert out.val_texts == small.val_texts and out.test_texts == small.test_texts
    assert out.train_texts[:80] == small.train_texts
    added = out.train_texts[80:]
    assert len(added) == out.stats["augment"]["added"] > 100
    assert set(out.augmented_origins) == set(added)
    assert set(out.augmented_origins.values()) <= set(small.train_texts)
    assert not find_leakage(out).leaked


def test_leakage_guard_refuses_a_training_copy_of_a_test_text(reviews):
    test_text = reviews.test_texts[0]
    copy = test_text[1:] + "！"
    data = ClassificationData(
        reviews.train_texts[:50] + [copy],
        np.concatenate([reviews.train_labels[:50], reviews.test_labels[:1]]),
        [], np.asarray([], dtype=object),
        reviews.test_texts[:20], reviews.test_labels[:20], reviews.label_names,
        augmented_origins={copy: test_text},
    )  # fmt: skip
    report = find_leakage(data)
    assert report.augmented_from_eval == [copy] and report.leaked
    with pytest.raises(LmforgeError, match="augmented training texts were made from"):
        check_leakage(data)


def test_teacher_drops_exactly_the_copies_whose_prediction_flips(texts, nb_teacher_dir):
    from lmforge.predictor import Predictor

    origins, labels = texts
    config = AugmentConfig(ops=["delete", "synonym"], rate=0.5, copies=4)
    every = augment_texts(origins, labels, config=config, seed=3)
    kept = augment_texts(
        origins, labels, config=config.model_copy(update={"teacher": str(nb_teacher_dir)}), seed=3
    )
    predictor = Predictor.load(nb_teacher_dir)
    origin_pred = [p.label for p in predictor.predict(origins)]
    copy_pred = [p.label for p in predictor.predict([c.text for c in every.copies])]
    same = {
        c.id for c, p in zip(every.copies, copy_pred, strict=True)
        if p == origin_pred[int(c.origin_id)]
    }  # fmt: skip
    flipped = len(every.copies) - len(same)
    assert flipped > 0  # aggressive copies do flip a real model's prediction
    assert {c.id for c in kept.copies} == same
    assert sum(v for k, v in kept.stats.items() if k.endswith("teacher_flipped")) == flipped


def test_mlm_replacement_redraws_whole_chinese_words_in_place(texts, tiny_mlm_dir):
    from lmforge.augment.words import is_cjk_word

    origins, labels = texts
    config = AugmentConfig(ops=["mlm"], rate=0.2, copies=2, mlm_model=str(tiny_mlm_dir))
    res = augment_texts(origins[:40], labels[:40], config=config, seed=0)
    again = augment_texts(origins[:40], labels[:40], config=config, seed=0)
    assert [c.text for c in res.copies] == [c.text for c in again.copies]
    assert res.stats["mlm.made"] >= 60
    for copy in res.copies:
        origin = origins[int(copy.origin_id)]
        # same length, every change is one CJK character for another, all else at its offset
        assert len(copy.text) == len(origin)
        changed = [(a, b) for a, b in zip(origin, copy.text, strict=True) if a != b]
        assert changed and all(is_cjk_word(a) and is_cjk_word(b) for a, b in changed)
        assert copy.text.count(" ") == origin.count(" ")


def test_mlm_needs_a_model_folder(texts):
    with pytest.raises(LmforgeError, match="needs an MLM model folder"):
        augment_texts(texts[0][:3], config=AugmentConfig(ops=["mlm"]))


def test_cli_augments_train_rows_only_and_the_loader_keeps_copies_in_train(tmp_path, reviews):
    import pandas as pd
    from typer.testing import CliRunner

    from lmforge.classify.data import load_classification_data
    from lmforge.cli import app

    rows = [
        {"text": t, "label": y, "split": name}
        for name in ("train", "val", "test")
        for t, y in zip(*[x[:30] for x in reviews.split(name)], strict=True)
    ]
    src = tmp_path / "in.csv"
    pd.DataFrame(rows).to_csv(src, index=False)
    out = tmp_path / "out.jsonl"
    args = ["augment", str(src), "--out", str(out), "--rate", "0.2", "--copies", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    df = pd.read_json(out, lines=True, dtype=False)
    copies = df[df["origin_id"] != ""]
    origin_split = dict(zip(df["id"], df["split"], strict=True))
    assert len(copies) >= 55 and set(copies["split"]) == {"train"}
    assert {origin_split[o] for o in copies["origin_id"]} == {"train"}  # val/test never augmented
    originals = df[df["origin_id"] == ""][["text", "label", "split"]]
    assert originals.to_dict(orient="records") == rows  # every input row, unchanged, in order
    assert not list(tmp_path.glob("out.jsonl.parts-*"))  # finished: no chunk folder left

    data = load_classification_data(str(out))
    assert data.val_texts == reviews.val_texts[:30] and data.test_texts == reviews.test_texts[:30]
    assert len(data.train_texts) == 30 + len(copies)
    assert data.stats["augmented"]["added"] == len(copies)

    # without a split column, copies follow their origin: only those landing in train are kept
    plain = tmp_path / "plain.jsonl"
    df.drop(columns=["split"]).to_json(plain, orient="records", lines=True, force_ascii=False)
    split = load_classification_data(str(plain), seed=1)
    assert set(split.augmented_origins.values()) <= set(split.train_texts)
    assert split.stats["augmented"]["origin_not_in_train"] > 0
    assert not set(split.augmented_origins) & set(split.val_texts + split.test_texts)


def test_cli_bad_options_are_one_line_errors(tmp_path, reviews):

    src = tmp_path / "in.csv"
    src.write_text("text,label\n好用,pos\n", encoding="utf-8")
    for extra in (["--ops", "shuffle"], ["--ops", "mlm"], ["--rate", "0.9"]):
        proc = run_lmforge("augment", src, "--out", tmp_path / "o.csv", *extra)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error:") and "Traceback" not in proc.stderr


def test_recipe_takes_classify_augment():
    from lmforge.run.recipe import ClassifyStage

    stage = ClassifyStage(augment={"ops": ["swap", "synonym"], "rate": 0.2, "copies": 2})
    assert stage.augment.ops == ["swap", "synonym"]
    with pytest.raises(ValueError, match="copies"):
        ClassifyStage(augment={"copies": 0})


def test_run_classify_trains_on_augmented_train_split(tmp_path, reviews):
    import json

    import pandas as pd

    from lmforge.run.classify import run_classify
    from lmforge.run.recipe import ClassifyStage

    rows = [
        {"text": t, "label": y, "split": name}
        for name in ("train", "val", "test")
        for t, y in zip(*[x[:40] for x in reviews.split(name)], strict=True)
    ]
    src = tmp_path / "d.csv"
    pd.DataFrame(rows).to_csv(src, index=False)
    stage = ClassifyStage(
        data=str(src), models=["nb"], transformer=False, augment={"rate": 0.2, "copies": 2}
    )
    run_classify(stage, 0, tmp_path, None, "fp")
    meta = json.loads((tmp_path / "classify" / "nb" / "lmforge_model.json").read_text())
    added = meta["data"]["stats"]["augment"]["added"]
    assert added > 60
    assert meta["data"]["sizes"] == {"train": 40 + added, "val": 40, "test": 40}


class Killed(Exception):
    """Stands for the process dying in the middle of a chunk."""


def test_an_interrupted_file_run_resumes_and_gives_the_same_file(tmp_path, reviews, monkeypatch):
    import pandas as pd

    import lmforge.augment.files as files

    src = tmp_path / "in.csv"
    pd.DataFrame({"text": reviews.train_texts[:60], "label": reviews.train_labels[:60]}).to_csv(
        src, index=False
    )
    config = AugmentConfig(rate=0.2, copies=2)
    monkeypatch.setattr(files, "CHUNK", 20)
    files.augment_file(src, tmp_path / "whole.csv", config)

    real, calls, die_at = files.augment_texts, [], [2]

    def dies_on_the_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) in die_at:
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(files, "augment_texts", dies_on_the_second_chunk)
    with pytest.raises(Killed):
        files.augment_file(src, tmp_path / "out.csv", config)
    assert not (tmp_path / "out.csv").exists()
    calls.clear()
    die_at.clear()
    files.augment_file(src, tmp_path / "out.csv", config)
    assert len(calls) == 2  # chunk 1 was read back, chunks 2 and 3 computed
    assert (tmp_path / "out.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
