"""CLI command groups; each module exposes ``register(app)``."""

import typer


def trust_model_code_option():
    """``--trust-model-code``: the one opt-in every command that loads model folders takes
    (:meth:`lmforge.predictor.Predictor.load`'s ``trust_model_code``)."""
    return typer.Option(
        False,
        "--trust-model-code",
        help="allow model folders that run the code they hold (TorchScript); only if you trust them",
    )
