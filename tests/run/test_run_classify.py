"""The classify stage's holdout: the split's val + test texts are exported and decontaminated."""

from __future__ import annotations

import json

from lmforge.classify.data import load_classification_data
from lmforge.corpus.config import CorpusConfig
from lmforge.run.classify import export_heldout, model_entries, with_holdout
from lmforge.run.recipe import ClassifyStage, Recipe
from lmforge.run.stages import corpus_config


def test_heldout_file_holds_val_and_test_and_joins_the_corpus_steps(tmp_path, review_sample):
    data = tmp_path / "reviews.jsonl"
    data.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in review_sample), encoding="utf-8"
    )
    stage = ClassifyStage(data=str(data))
    path = export_heldout(stage, 0, tmp_path)
    split = load_classification_data(str(data), seed=0)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert sorted(lines) == sorted(" ".join(t.split()) for t in split.val_texts + split.test_texts)
    assert not set(lines) & {" ".join(t.split()) for t in split.train_texts}
    assert export_heldout(stage, 0, tmp_path) == path  # same split, same file
    assert export_heldout(stage, 1, tmp_path) != path  # another seed, another file (and hash)

    corpus = CorpusConfig(sources=[{"type": "files", "paths": [str(data)]}])
    held = with_holdout(corpus, path)
    types = [s.type for s in held.steps]
    assert types.index("decontaminate") == types.index("exact_dedup") - 1
    assert held.steps[types.index("decontaminate")].eval_files == [str(path)]
    assert with_holdout(held, path).steps == held.steps  # idempotent

    recipe = Recipe(runs_dir=str(tmp_path), corpus=corpus, classify=stage)
    assert [s.type for s in corpus_config(recipe).steps] == types
    off = recipe.model_copy(update={"classify": ClassifyStage(holdout_from_corpus=False)})
    assert "decontaminate" not in [s.type for s in corpus_config(off).steps]


def test_model_entries_add_the_pretrained_and_random_init_encoders(tmp_path):
    stage = ClassifyStage(models=["nb", "svm:C=0.5"], random_init=True)
    entries = model_entries(stage, tmp_path)
    assert [e[0] for e in entries] == [
        "nb",
        "svm:C=0.5",
        "transformer (pretrained)",
        "transformer (random init)",
    ]
    assert entries[1][2] == {"C": 0.5} and entries[2][2]["init"] == str(tmp_path)
    assert entries[3][2]["init"] == "none" and entries[3][2]["config_from"] == str(tmp_path)
