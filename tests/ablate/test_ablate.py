"""`lmforge ablate` on a small slice of the real data: variants, one tokenizer, shared held-out
text, identical variants trained once, resume, and a report that opens with the outcome."""

from __future__ import annotations

import json
import math
import re
from itertools import pairwise
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lmforge.ablate.report import difference, loss_noise, verdict
from lmforge.ablate.runner import combine_downstream, combine_pretrained, finetuned_variants
from lmforge.ablate.variants import default_variant_names, make_variants
from lmforge.cli import app
from lmforge.errors import LmforgeError
from lmforge.run.recipe import load_recipe
from lmforge.tokenizer.pack import load_split


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


@pytest.fixture()
def ablate_recipe(tmp_path: Path, review_sample: list[dict], news_sample: list[str]) -> Path:
    # the reviews hold exact copies (exact_dedup has work) and real e-mail addresses (pii has
    # work); no text here is shorter than 2 characters, so without that length step the
    # documents are the same (only their length scores differ) and that variant is not retrained
    # each news paragraph twice, under another line: raw keeps copies of full's held-out text
    records = review_sample + [{"text": t} for t in news_sample] * 2
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), "utf-8")
    labelled = tmp_path / "reviews.jsonl"
    labelled.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in review_sample), "utf-8"
    )
    recipe = tmp_path / "ablate.yaml"
    recipe.write_text(
        f"""
name: abl
seed: 0
runs_dir: {tmp_path / "runs"}
corpus:
  sources: [{{type: files, paths: ["{data}"]}}]
  steps: [{{type: normalize}}, {{type: length, min_chars: 2, min_words: 0}}, {{type: pii}}, {{type: exact_dedup}}]
  workers: 1
tokenizer: {{kind: wordpiece, vocab_size: 1500}}
pack: {{val_fraction: 0.1}}
pretrain: {{objective: mlm, preset: tiny, max_minutes: 10, batch_size: 8, seq_len: 64, eval_every: 2, save_every: 2, warmup_steps: 1}}
classify:
  data: {labelled}
  models: [nb]
  transformer_params: {{max_len: 64, batch_size: 32, threads: 1}}
ablate:
  variants: [raw, full, no-exact_dedup, no-length]
  pretrain: {{max_steps: 3}}
  pretrain_seeds: [0, 1]
  finetune:
    few_shot: 8
    seeds: [0, 1]
    params: {{epochs: 1}}
    few_shot_params: {{epochs: 2, patience: 5}}
""",
        encoding="utf-8",
    )
    return recipe


def test_variant_names_cover_raw_full_and_each_step(ablate_recipe: Path):
    corpus = load_recipe(ablate_recipe).corpus
    assert default_variant_names(corpus) == ["raw", "full", "no-length", "no-pii", "no-exact_dedup"]
    variants = {v.name: [s.type for s in v.corpus.steps] for v in make_variants(corpus)}
    assert variants["raw"] == ["normalize"]
    assert variants["no-pii"] == ["normalize", "length", "exact_dedup"]
    with pytest.raises(LmforgeError, match="unknown variant 'no-badwords'"):
        make_variants(corpus, ["full", "no-badwords"])
    with pytest.raises(LmforgeError, match="must include 'full'"):
        make_variants(corpus, ["raw"])


def test_finetuned_variants_default_to_all_trained_and_always_include_full():
    chosen = ["full", "raw", "no-length", "no-pii", "no-exact_dedup"]
    same_as = {"no-length": "full"}
    assert finetuned_variants(None, chosen, same_as) == ["full", "raw", "no-pii", "no-exact_dedup"]
    assert finetuned_variants(["no-pii"], chosen, same_as) == ["full", "no-pii"]
    assert finetuned_variants(["no-length", "raw"], chosen, same_as) == ["full", "raw"]
    with pytest.raises(LmforgeError, match="no-badwords not among the variants"):
        finetuned_variants(["no-badwords"], chosen, {})


@pytest.mark.slow  # ~2 min of CPU: pretraining three variants twice, seven fine-tunes
def test_ablate_trains_each_distinct_variant_once_on_shared_heldout_text(ablate_recipe: Path):
    result = CliRunner().invoke(app, ["ablate", str(ablate_recipe)])
    assert result.exit_code == 0, result.output
    out = ablate_recipe.parent / "runs" / "abl" / "ablation"
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    by_name = {v["name"]: v for v in results["variants"]}

    # raw keeps the exact copies that full removes; the length step changes nothing here
    assert by_name["raw"]["counts"]["kept"] > by_name["full"]["counts"]["kept"]
    assert by_name["no-exact_dedup"]["counts"]["kept"] > by_name["full"]["counts"]["kept"]
    assert by_name["no-length"]["same_as"] == "full"
    assert by_name["raw"]["same_as"] is None
    assert set(results["pretrained"]) == {"full", "raw", "no-exact_dedup"}
    assert not (out / "pretrain" / "no-length").exists()
    # two pretraining seeds: a second replicate of every trained variant, averaged in the table
    assert results["pretrain_seeds"] == [0, 1]
    for name in ("full", "raw", "no-exact_dedup"):
        assert (out / "pretrain" / f"{name}-seed1" / "manifest.json").is_file()
        assert set(results["pretrained"][name]["replicates"]) == {"0", "1"}

    # one tokenizer; every variant is measured on the full variant's validation documents, and
    # trains on none of them (raw keeps copies of some under other ids: those are left out)
    full_val = json.loads((out / "tokens" / "full" / "manifest.json").read_text())["splits"]
    [(val_tokens, val_offsets)] = load_split(out / "tokens" / "full", "validation")
    held_out = {tuple(val_tokens[a:b].tolist()) for a, b in pairwise(val_offsets.tolist())}
    for name in ("raw", "no-exact_dedup"):
        tokens = json.loads((out / "tokens" / name / "manifest.json").read_text())
        assert tokens["splits"]["validation"] == full_val["validation"]
        assert tokens["splits"]["train"]["tokens"] > full_val["train"]["tokens"]
        assert tokens["excluded_train_documents"] > 0
        [(train_tokens, offsets)] = load_split(out / "tokens" / name, "train")
        trained = {tuple(train_tokens[a:b].tolist()) for a, b in pairwise(offsets.tolist())}
        assert not trained & held_out, name
    for name, manifest in results["pretrained"].items():
        assert manifest["steps"] == 3, name
        assert manifest["final_val_loss"] is not None

    # downstream from every trained variant and from random init, full data and few-shot
    assert set(results["downstream"]) == {"full", "raw", "no-exact_dedup", "random init"}
    for row in results["downstream"].values():  # 2 replicates x (1 full-data run, 2 samples)
        assert len(row["full"]["scores"]) == 2
        assert all(0.0 <= f1 <= 1.0 for f1 in row["full"]["scores"])
        assert len(row["few_shot"]["scores"]) == 4

    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.index("Outcome") < page.index("Variants") < page.index("What each step removed")
    assert page.count("<img") == 2

    # a rerun finds every step done and trains nothing again
    before = (out / "pretrain" / "raw" / "manifest.json").stat().st_mtime_ns
    again = CliRunner().invoke(app, ["ablate", str(ablate_recipe)])
    assert again.exit_code == 0, again.output
    assert (out / "pretrain" / "raw" / "manifest.json").stat().st_mtime_ns == before
    assert not _finetuned(again.output)

    # another budget is another encoder: pretrained again and fine-tuned again (a result of the
    # old encoder must not be reused); random init does not depend on the budget
    more = CliRunner().invoke(app, ["ablate", str(ablate_recipe), "--max-steps", "4"])
    assert more.exit_code == 0, more.output
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert {m["steps"] for m in results["pretrained"].values()} == {4}
    for name in ("full", "raw", "no-exact_dedup"):
        assert name in _finetuned(more.output)
    assert "random init" not in _finetuned(more.output)


def test_replicates_are_averaged_and_their_spread_is_the_noise():
    manifests = {
        0: {"final_val_loss": 6.0, "final_val_acc": 0.10, "steps": 30, "tokens_seen": 100},
        1: {"final_val_loss": 6.2, "final_val_acc": 0.12, "steps": 31, "tokens_seen": 104},
    }
    pre = combine_pretrained(manifests, ["full", "full-seed1"])
    assert pre["final_val_loss"] == pytest.approx(6.1)
    assert pre["final_val_loss_std"] == pytest.approx(0.1)
    assert pre["final_val_acc"] == pytest.approx(0.11)
    assert pre["replicates"]["1"]["steps"] == 31 and pre["folders"] == ["full", "full-seed1"]

    def run(full: float, few: list[float]) -> dict:
        return {
            "test_n": 1737,
            "full": {"macro_f1": full, "val_macro_f1": full, "accuracy": full, "train_s": 1.0},
            "few_shot": {"n_per_class": 64, "seeds": [0, 1], "scores": few, "mean": 0, "std": 0},
        }

    full = combine_downstream([run(0.80, [0.6, 0.7]), run(0.84, [0.5, 0.6])])
    assert full["full"]["macro_f1"] == pytest.approx(0.82)
    assert full["full"]["std"] == pytest.approx(0.02)
    assert full["few_shot"]["scores"] == [0.6, 0.7, 0.5, 0.6]
    assert full["few_shot"]["mean"] == pytest.approx(0.6)
    assert combine_downstream([run(0.8, [0.6])]) == run(0.8, [0.6])  # one replicate: as is

    # held-out loss: the replicates' spread pooled over the variants (sample variance)
    spread = {"replicates": {"0": {"final_val_loss": 6.0}, "1": {"final_val_loss": 6.2}}}
    flat = {"replicates": {"0": {"final_val_loss": 6.1}, "1": {"final_val_loss": 6.1}}}
    assert loss_noise({"full": spread, "raw": flat}) == pytest.approx(2 * math.sqrt(0.01))
    assert loss_noise({"full": {"final_val_loss": 6.0}}) is None

    # replicates that disagree by 8 points make a 3-point gap noise; the test set alone would
    # call 3 points real (two binomial standard errors on 1,737 texts ≈ 2.6 points)
    wide = combine_downstream([run(0.81, [0.6]), run(0.89, [0.6])])
    tight = combine_downstream([run(0.88, [0.6]), run(0.88, [0.6])])
    assert verdict(difference(tight, wide, "full")) == "+3.0 (noise)"
    narrow = combine_downstream([run(0.849, [0.6]), run(0.851, [0.6])])
    assert verdict(difference(tight, narrow, "full")) == "+3.0"


def _finetuned(output: str) -> set[str]:
    """Variants whose fine-tuning result the command printed (``<name>: full data macro-F1 ...``
    or ``<name>: 8/class ...``); rich's status line ("fine-tuning from ...") is not in captured
    output, so it cannot tell; a result may follow a progress bar on the same line)."""
    return set(re.findall(r"([\w#-]+(?: init)?): (?:full data macro-F1|\d+/class)", output))
