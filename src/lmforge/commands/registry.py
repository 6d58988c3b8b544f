"""``lmforge registry add|list|activate``: the model versions ``lmforge serve REGISTRY`` serves
and switches between (:mod:`lmforge.serve.registry`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from lmforge.commands import trust_model_code_option


def register(app: typer.Typer) -> None:
    registry_app = typer.Typer(help="Model versions for lmforge serve (hot swap).")
    app.add_typer(registry_app, name="registry")

    @registry_app.command("add")
    def add_cmd(
        registry: Path = typer.Argument(..., help="registry folder (created if missing)"),
        model_dir: Path = typer.Argument(..., help="a classifier folder to add as a version"),
        version: str = typer.Option(None, "--version", help="name (default v<N+1>)"),
        data: str = typer.Option(
            None,
            "--data",
            help="training data (file: its SHA-256 is kept); also the drift reference profile",
        ),
        activate: bool = typer.Option(True, "--activate/--no-activate", help="make it current"),
        trust_model_code: bool = trust_model_code_option(),
    ) -> None:
        """Copy MODEL_DIR into REGISTRY as a new version with its metadata."""
        from lmforge.serve.registry import Registry

        reg = Registry.create(registry)
        name = reg.add(model_dir, version, data, activate, trust_model_code=trust_model_code)
        Console().print(f"added {name} to {registry}" + (" (current)" if activate else ""))

    @registry_app.command("activate")
    def activate_cmd(registry: Path = typer.Argument(...), version: str = typer.Argument(...)):
        """Make VERSION current; a running server switches on POST /admin/reload or SIGHUP."""
        from lmforge.serve.registry import Registry

        Registry(registry).activate(version)
        Console().print(f"{registry}: current is {version}")

    @registry_app.command("list")
    def list_cmd(registry: Path = typer.Argument(...)) -> None:
        """Versions with created time, data hash and test metrics."""
        from lmforge.serve.registry import Registry

        reg = Registry(registry)
        current = reg.current
        t = Table(title=str(registry))
        for col in ("version", "created", "data hash", "accuracy", "macro-F1", "current"):
            t.add_column(col)
        for v in reg.versions():
            meta = reg.metadata(v)
            m = meta.get("metrics") or {}
            t.add_row(
                v,
                str(meta.get("created") or ""),
                str(meta.get("data_hash") or "")[:12],
                f"{m['accuracy']:.4f}" if "accuracy" in m else "",
                f"{m['macro_f1']:.4f}" if "macro_f1" in m else "",
                "*" if v == current else "",
            )
        Console().print(t)
