"""The README runs as written: every YAML block is a valid recipe, every command of the CLI
tour has working ``--help``, the cheap shell lines (``lmforge recipe ...``) run, and CI runs the
README's test command from the lock."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import lmforge
from lmforge.run.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
# The CLI of the lmforge these tests import (this checkout), not whichever one is on PATH.
LMFORGE = f"{shlex.quote(sys.executable)} -m lmforge.cli"
SRC = str(Path(lmforge.__file__).resolve().parents[1])


def fenced_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.M | re.S)


def tour_commands(text: str) -> list[tuple[str, ...]]:
    """Command paths of the CLI table (``("classify", "eval")``), from the first column's code
    spans; a span without ``lmforge`` continues the row's first command (``classify models``)."""
    section = text.split("## Tour of the CLI", 1)[1].split("\n## ", 1)[0]
    paths = []
    for row in re.findall(r"^\| (`lmforge .*?) \|", section, flags=re.M):
        for span in re.findall(r"`([^`]+)`", row):
            words = span.split()
            if words[0] == "lmforge":
                words = words[1:]
            path = []
            for word in words:
                if not re.fullmatch(r"[a-z][a-z-]*", word):
                    break
                path.append(word)
            paths.append(tuple(path))
    return list(dict.fromkeys(paths))


def cli_commands() -> set[tuple[str, ...]]:
    """Every leaf command the ``lmforge`` app registers."""
    import typer.main

    from lmforge.cli import app

    def walk(command, path):
        subcommands = getattr(command, "commands", None)
        if not subcommands:
            yield tuple(path)
            return
        for name, sub in subcommands.items():
            yield from walk(sub, [*path, name])

    return set(walk(typer.main.get_command(app), []))


def run_shell(line: str, cwd: Path) -> subprocess.CompletedProcess:
    command = re.sub(r"^lmforge\b", LMFORGE, line.split(" #", 1)[0].strip())
    return subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])},
        capture_output=True,
        text=True,
        timeout=120,
    )


YAML_BLOCKS = fenced_blocks(README, "yaml")
TOUR = tour_commands(README)
SHELL_LINES = [
    line.strip()
    for block in fenced_blocks(README, "bash")
    for line in block.splitlines()
    if line.strip().startswith("lmforge recipe ")
]


def test_the_readme_has_what_these_tests_check() -> None:
    assert YAML_BLOCKS and SHELL_LINES
    assert ("run",) in TOUR and ("classify", "models") in TOUR and len(TOUR) >= 15


@pytest.mark.parametrize("index", range(len(YAML_BLOCKS)))
def test_every_yaml_block_is_a_valid_recipe(index: int, tmp_path: Path) -> None:
    path = tmp_path / f"readme-block-{index}.yaml"
    path.write_text(YAML_BLOCKS[index], encoding="utf-8")
    load_recipe(path)  # raises LmforgeError naming the key that is wrong


@pytest.mark.parametrize("path", TOUR, ids=" ".join)
def test_every_command_of_the_tour_has_help(path: tuple[str, ...]) -> None:
    from typer.testing import CliRunner

    from lmforge.cli import app

    result = CliRunner().invoke(app, [*path, "--help"])  # in-process: 17 interpreters cost ~1 min
    assert result.exit_code == 0, result.output[-2000:]
    assert "Usage:" in result.output and " ".join(path) in result.output


def test_every_command_is_in_the_tour() -> None:
    missing = sorted(" ".join(p) for p in cli_commands() - set(TOUR))
    assert not missing, f"commands missing from the README's CLI table: {missing}"


def test_the_recipe_lines_run_in_order(tmp_path: Path) -> None:
    for line in SHELL_LINES:
        result = run_shell(line, tmp_path)
        assert result.returncode == 0, f"{line}: {result.stderr[-2000:]}"
    written = [p for p in tmp_path.iterdir() if p.suffix == ".yaml"]
    assert written and all(load_recipe(p).name == "default" for p in written)


def test_ci_runs_the_readmes_test_command_from_the_lock() -> None:
    bash = fenced_blocks(README, "bash")
    test_command = next(block.strip() for block in bash if block.strip().endswith("&& pytest"))
    steps = [step.strip() for step in test_command.split("&&")]
    assert any("-c constraints.txt" in step for step in steps)
    assert (ROOT / "constraints.txt").is_file()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for step in steps:
        assert any(line == step or line.startswith(step + " ") for line in ci), (
            f".ci/run does not run the README's `{step}`"
        )
