"""The ``lmforge`` command line. Thin: each command parses its arguments and calls one function.

Command groups live in :mod:`lmforge.commands`, one module per stage, each exposing
``register(app)``. Errors the user can cause (:class:`~lmforge.errors.LmforgeError`)
are printed as one line and exit with status 2, never as a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console
from rich.markup import escape

from lmforge.errors import LmforgeError

app = typer.Typer(
    name="lmforge",
    help="Raw text to a served language model, showing at every step what the data did to it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# One module per command group, in the order of a run; each exposes ``register(app)``.
COMMAND_MODULES = ["run", "corpus", "tokenizer", "pretrain", "classify", "compress"]
COMMAND_MODULES.append("serve")  # lmforge serve MODEL_DIR
COMMAND_MODULES.append("recipe")  # lmforge recipe init|check
COMMAND_MODULES.insert(1, "collect")  # lmforge collect RECIPE, lmforge demo-shop
COMMAND_MODULES.append("augment")  # lmforge augment DATA --out OUT
COMMAND_MODULES.append("ablate")  # lmforge ablate RECIPE
COMMAND_MODULES.append("registry")  # lmforge registry add|list|activate
COMMAND_MODULES.append("feedback")  # lmforge feedback export|import

for _name in COMMAND_MODULES:
    importlib.import_module(f"lmforge.commands.{_name}").register(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except LmforgeError as exc:
        message = escape(str(exc))  # a path or an extra such as lmforge[s3] is not markup
        Console(stderr=True).print(
            f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
