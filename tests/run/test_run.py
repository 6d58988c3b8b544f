"""`lmforge run` wires the stages together: corpus → tokenizer → tokens → pretrain, skip and resume."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from _helpers import run_lmforge


@pytest.fixture()
def small_recipe(tmp_path: Path, review_sample: list[dict], news_sample: list[str]) -> Path:
    records = review_sample + [{"text": t} for t in news_sample]
    data = tmp_path / "docs.jsonl"
    data.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    labelled = tmp_path / "reviews.jsonl"  # the same reviews, as a labelled classification set
    labelled.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in review_sample), encoding="utf-8"
    )
    recipe = tmp_path / "small.yaml"
    recipe.write_text(
        f"""
name: small
seed: 0
runs_dir: {tmp_path / "runs"}
corpus:
  sources: [{{type: files, paths: ["{data}"]}}]
  workers: 1
tokenizer: {{kind: wordpiece, vocab_size: 2000}}
pack: {{val_fraction: 0.05}}
pretrain: {{objective: mlm, preset: tiny, max_steps: 4, batch_size: 8, seq_len: 64, eval_every: 2, save_every: 2, warmup_steps: 1}}
classify:
  data: {labelled}
  models: [nb]
  transformer_params: {{epochs: 1, max_len: 64, batch_size: 16, threads: 1}}
compress: {{student: "textcnn:epochs=1", latency_n: 10}}
""",
        encoding="utf-8",
    )
    return recipe


def run_cli(recipe: Path) -> subprocess.CompletedProcess:
    # a safety net: ~5 minutes on a quiet 2-core machine, far more on a busy one
    return run_lmforge("run", recipe, timeout=1800)


@pytest.mark.slow  # ~2 min: every stage twice; .ci/run runs it (and smoke.sh a tiny run)
def test_run_builds_every_stage_then_skips_unchanged_ones(
    small_recipe: Path, tmp_path: Path, one_thread
) -> None:
    first = run_cli(small_recipe)
    assert first.returncode == 0, first.stderr[-2000:]
    run_dir = tmp_path / "runs" / "small"
    for stage in ("corpus", "tokenizer", "tokens", "pretrain"):
        assert (run_dir / stage).is_dir(), stage
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    model = AutoModelForMaskedLM.from_pretrained(run_dir / "pretrain")
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "pretrain")
    assert model.config.vocab_size == len(tokenizer)
    manifest = json.loads((run_dir / "pretrain" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["steps"] == 4
    page = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "Pretraining loss" not in page or "data:image/png" in page
    assert "这个手机[MASK]量很好" in page

    # classify: the split's val + test reviews were taken out of the corpus before it was built,
    # so the leakage guard passed without --allow-leakage; both models are on the leaderboard
    stats = json.loads((run_dir / "corpus" / "stats.json").read_text(encoding="utf-8"))
    decontam = next(s for s in stats["steps"] if s["name"] == "decontaminate")
    assert decontam["docs_in"] > decontam["docs_out"]
    board = json.loads((run_dir / "classify" / "leaderboard.json").read_text(encoding="utf-8"))
    assert {r["model"] for r in board["rows"]} == {"nb", "transformer (pretrained)", "ensemble"}
    assert board["leakage"]["in_corpus"] == 0 and board["leakage"]["corpus_docs"] > 0
    assert all(0.3 < r["macro_f1"] <= 1 for r in board["rows"])
    assert "<h2>Classification</h2>" in page and "transformer (pretrained)" in page

    # compress: the ensemble distilled into a TextCNN, exported as int8 ONNX, benched beside the
    # fine-tuned encoder through a transformers pipeline (the serving stage benches the ensemble)
    bench = json.loads((run_dir / "compress" / "bench.json").read_text(encoding="utf-8"))
    assert len(bench["rows"]) == 3 and bench["headline"]["x_smaller"] > 1
    assert bench["rows"][0]["backend"] == "transformers-pipeline"
    manifest = json.loads((run_dir / "compress" / "manifest.json").read_text(encoding="utf-8"))
    assert Path(manifest["source"]) == run_dir / "classify" / "ensemble"
    assert "Compression" in page

    # the ensemble: a model folder with its members inside, stacked on validation; through the
    # Predictor it scores about as well as its best member on the validation split, or better
    # (a logistic regression maximises likelihood, not macro-F1: no guarantee to the last text)
    import numpy as np

    from lmforge.classify.data import load_classification_data
    from lmforge.classify.metrics import classification_metrics
    from lmforge.predictor import Predictor

    ensemble = Predictor.load(run_dir / "classify" / "ensemble")
    assert ensemble.model_type == "ensemble"
    assert sorted(p.name for p in (run_dir / "classify" / "ensemble" / "members").iterdir()) == [
        "nb",
        "transformer_pretrained",
    ]
    split = load_classification_data(str(tmp_path / "reviews.jsonl"), seed=0)
    pred = np.asarray(ensemble.labels)[np.argmax(ensemble.predict_proba(split.val_texts), axis=1)]
    gold = split.val_labels.astype(str)
    ensemble_val = classification_metrics(gold, pred, sorted(set(gold)))["macro_f1"]
    members = [r for r in board["rows"] if r["model"] != "ensemble"]
    assert ensemble.meta["params"]["method"] == "stack"
    assert ensemble_val >= max(r["val_macro_f1"] for r in members) - 0.02

    # serving/: the model with the best validation score, chosen among every model of the run
    serving = json.loads((run_dir / "serving" / "serving.json").read_text(encoding="utf-8"))
    names = {c["name"] for c in serving["candidates"]}
    assert {"nb", "transformer (pretrained)", "ensemble"} <= names
    assert any(n.startswith("compress/") for n in names)
    best = max(c["val_macro_f1"] for c in serving["candidates"])
    assert serving["val_macro_f1"] == best and serving["command"] == f"lmforge serve {run_dir}"
    assert len(serving["bench"]) in (1, 2) and serving["bench"][0]["throughput_32"] > 0
    served = Predictor.load(run_dir)  # a run folder resolves to the model it serves
    assert served.directory == run_dir / "serving"
    # the report opens with the outcome, then the stage timings, then the stages
    assert page.index("<h2>Outcome</h2>") < page.index("<h2>Stage timings</h2>")
    assert page.index("<h2>Stage timings</h2>") < page.index("<h2>Corpus</h2>")
    assert f"lmforge serve {run_dir}" in page
    # every stage recorded its own peak resident memory (process + workers), shown in the report
    stages = ("corpus", "tokenizer", "tokens", "pretrain", "classify", "compress", "serving")
    for stage in stages:
        state = json.loads((run_dir / stage / "lmforge_stage.json").read_text(encoding="utf-8"))
        assert state["status"] == "done" and state["peak_rss_bytes"] > 10 * 2**20, stage
    timings = page[page.index("<h2>Stage timings</h2>") : page.index("<h2>Corpus</h2>")]
    assert "peak RSS" in timings and timings.count(" MiB") == len(stages) + 1  # + the total
    assert first.stdout.count("· peak RSS") == len(stages)
    # the plan is printed before anything runs
    assert first.stdout.index("lmforge run: plan") < first.stdout.index("corpus: read")

    second = run_cli(small_recipe)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.count("unchanged, skipped") == 5
    assert second.stdout.count("done earlier") == 3
    for stage in stages:  # skipped stages keep the figures of the run that built them
        state = json.loads((run_dir / stage / "lmforge_stage.json").read_text(encoding="utf-8"))
        assert state["peak_rss_bytes"] > 10 * 2**20, stage


def test_serve_takes_a_run_folder(tmp_path: Path, review_sample: list[dict], monkeypatch) -> None:
    """`lmforge serve runs/<name>` serves runs/<name>/serving/."""
    import uvicorn
    from typer.testing import CliRunner

    from lmforge.classify.data import load_classification_data
    from lmforge.classify.evaluate import train_and_evaluate
    from lmforge.cli import app
    from lmforge.serve.app import MODEL_ENV

    data = tmp_path / "reviews.jsonl"
    data.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in review_sample), encoding="utf-8"
    )
    run_dir = tmp_path / "runs" / "r"
    train_and_evaluate("nb", load_classification_data(str(data), seed=0), run_dir / "serving")
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda target, **kw: seen.update(kw, target=target))
    monkeypatch.delenv(MODEL_ENV, raising=False)
    result = CliRunner().invoke(app, ["serve", str(run_dir), "--port", "0"])
    assert result.exit_code == 0, result.output
    # one worker serves the model it loaded before listening (an app object), several workers
    # load it again from the environment (an import string): either way the serving/ folder
    assert seen["target"] == "lmforge.serve.app:app_from_env" or not isinstance(seen["target"], str)
    assert os.environ[MODEL_ENV] == str((run_dir / "serving").resolve())
