"""Knowledge distillation: a fine-tuned teacher → a smaller, faster student.

Transfer set (:func:`build_transfer_set`): the labelled train split (hard label + teacher soft
target) plus unlabelled in-domain text from the built corpus (teacher soft target only) --
corpus documents whose ``meta.source`` is in ``corpus_sources`` (default ``reviews``), deduped
among themselves and against every train / val / test text (:func:`~lmforge.classify.leakage.leakage_key`),
so no evaluation text reaches the student through the teacher. The validation split is kept
out for early stopping; the test split is touched only by the final evaluation.

Teacher targets (:func:`teacher_logits`): computed once over the transfer set through the
:class:`~lmforge.predictor.Predictor` (so any classifier folder can teach) as log-probabilities
-- softmax(log p / T) equals softmax(z / T) for the teacher's logits z -- and cached in
``OUT/teacher_logits.npz`` keyed by the texts and the teacher folder.

Loss per row (Hinton et al. 2015): labelled ``α·T²·KL(p_T ‖ q_T) + (1−α)·CE(q, y)``,
unlabelled ``T²·KL(p_T ‖ q_T)``; mean over the batch.

Students (:data:`STUDENTS`; ``name[:key=value...]``):

- ``tiny2`` (``transformer:layers=2``): the teacher's architecture with fewer layers, initialised
  DistilBERT-style by copying weights from ``init`` (default: the teacher itself -- its
  embeddings, every other encoder layer and its classifier; or a pretrained MLM folder, whose
  embeddings and first layers are taken and the classifier is new). Copying is by name and
  shape: nothing is left randomly initialised that could be copied, and the JSON records what was.
- ``textcnn``, ``bilstm``, ``gru``: the :mod:`lmforge.classify.neural` networks (their encoders,
  batching and early stopping), trained on soft targets through the same
  :meth:`~lmforge.classify.torch_classifier.TorchTextClassifier.train_network` as ``fit``; ``key=value`` sets their
  constructor parameters (``textcnn:embed_dim=64``).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lmforge.classify.data import ClassificationData
from lmforge.classify.estimator import get_model_class, parse_model_spec, read_model_meta
from lmforge.classify.leakage import leakage_key
from lmforge.errors import LmforgeError

STUDENTS = {
    "tiny2": ("transformer", {"layers": 2}),
    "transformer": ("transformer", {}),
    "textcnn": ("textcnn", {}),
    "bilstm": ("bilstm", {}),
    "gru": ("gru", {}),
}
# distillation defaults per student family (constructor params of the estimator + loop settings)
NEURAL_DEFAULTS = {"max_len": 128, "epochs": 6, "patience": 2, "lr": 2e-3, "batch_size": 64}
TRANSFORMER_DEFAULTS = {"epochs": 3, "patience": 2, "lr": 3e-4, "batch_size": 32}
LOOP_KEYS = ("layers", "init")


@dataclass
class TransferSet:
    """Texts the student learns from; ``hard[i]`` is a label index, or -1 for unlabelled text."""

    texts: list[str]
    hard: np.ndarray
    stats: dict = field(default_factory=dict)

    @property
    def n_labelled(self) -> int:
        return int((self.hard >= 0).sum())


def corpus_documents(corpus_dir: str | Path, sources=None):
    """(text, source) of every kept document of a corpus folder, optionally only some sources."""
    import pyarrow.parquet as pq

    root = Path(corpus_dir)
    paths = sorted((root / "data").glob("*.parquet"))
    if not paths:
        raise LmforgeError(f"no corpus shards at {root / 'data'}/*.parquet")
    for path in paths:
        try:
            table = pq.read_table(path, columns=["text", "meta"])
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types
            raise LmforgeError(f"{path}: cannot read corpus shard: {exc}") from exc
        for text, meta in zip(
            table.column("text").to_pylist(), table.column("meta").to_pylist(), strict=True
        ):
            try:
                source = json.loads(meta).get("source", "") if meta else ""
            except (TypeError, json.JSONDecodeError):
                source = ""
            if sources is None or source in sources:
                yield text, source


def build_transfer_set(
    data: ClassificationData,
    corpus_dir: str | Path | None = None,
    corpus_sources: tuple[str, ...] | None = ("reviews",),
    max_unlabelled: int | None = None,
    seed: int = 0,
) -> TransferSet:
    """Train split (labelled) + deduplicated, leakage-free corpus text (unlabelled)."""
    index = {str(c): i for i, c in enumerate(data.label_names)}
    texts = list(data.train_texts)
    hard = [index[str(y)] for y in data.train_labels.tolist()]
    stats = {"labelled": len(texts), "corpus_dir": str(corpus_dir) if corpus_dir else None}
    if corpus_dir is not None:
        seen = {leakage_key(t) for t in data.train_texts + data.val_texts + data.test_texts}
        held_out = {leakage_key(t) for t in data.val_texts + data.test_texts}
        extra, n_read, n_eval, n_dup = [], 0, 0, 0
        for text, _ in corpus_documents(
            corpus_dir, set(corpus_sources) if corpus_sources else None
        ):
            n_read += 1
            key = leakage_key(text or "")
            if not key:
                continue
            if key in seen:
                n_eval += key in held_out
                n_dup += key not in held_out
                continue
            seen.add(key)
            extra.append(text)
        if max_unlabelled is not None and len(extra) > max_unlabelled:
            rng = np.random.default_rng(seed)
            extra = [extra[i] for i in sorted(rng.choice(len(extra), max_unlabelled, False))]
        texts += extra
        hard += [-1] * len(extra)
        stats.update(
            {
                "corpus_sources": list(corpus_sources) if corpus_sources else "all",
                "corpus_read": n_read,
                "corpus_dropped_val_test": n_eval,
                "corpus_dropped_train_or_dup": n_dup,
                "unlabelled": len(extra),
            }
        )
    else:
        stats["unlabelled"] = 0
    stats["total"] = len(texts)
    return TransferSet(texts, np.asarray(hard, dtype=np.int64), stats)


def teacher_logits(
    teacher_dir: str | Path,
    texts: list[str],
    cache: str | Path | None = None,
    batch_size: int = 64,
    progress=None,
) -> np.ndarray:
    """The teacher's log-probabilities of ``texts`` (computed once, cached in ``cache``)."""
    from lmforge.predictor import Predictor

    meta = read_model_meta(teacher_dir)
    digest = hashlib.sha256()
    digest.update(str(Path(teacher_dir).resolve()).encode())
    digest.update(str(meta.get("saved_at")).encode())
    for t in texts:
        digest.update(t.encode("utf-8", "surrogatepass") + b"\0")
    key = digest.hexdigest()
    if cache is not None and Path(cache).is_file():
        with np.load(cache) as stored:
            if str(stored["key"]) == key:
                return stored["logits"]
    predictor = Predictor.load(teacher_dir, batch_size=batch_size, max_chars=None)
    chunk = 1024
    out = np.zeros((len(texts), len(predictor.labels)), dtype=np.float32)
    for start in range(0, len(texts), chunk):
        proba = predictor.predict_proba(texts[start : start + chunk])
        out[start : start + chunk] = np.log(np.clip(proba, 1e-12, 1.0))
        if progress:
            progress(min(start + chunk, len(texts)), len(texts))
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, key=np.asarray(key), logits=out)
    return out


def kd_loss(student_logits, teacher_logits, hard, temperature: float, alpha: float):
    """α·T²·KL(p_T‖q_T) + (1−α)·CE on labelled rows (hard ≥ 0); T²·KL alone on the others."""
    import torch
    import torch.nn.functional as F

    T = float(temperature)
    s = student_logits.float()
    kl = F.kl_div(
        F.log_softmax(s / T, dim=1), F.log_softmax(teacher_logits / T, dim=1),
        reduction="none", log_target=True,
    ).sum(dim=1) * (T * T)  # fmt: skip
    labelled = hard >= 0
    ce = F.cross_entropy(s, hard.clamp(min=0), reduction="none")
    row = torch.where(labelled, alpha * kl + (1 - alpha) * ce, kl)
    return row.mean()


# ---------------------------------------------------------------------------------- students


def parse_student(spec: str) -> tuple[str, dict]:
    name, params = parse_model_spec(spec)
    if name not in STUDENTS:
        raise LmforgeError(f"unknown student {name!r}; choose one of {', '.join(STUDENTS)}")
    model_type, base = STUDENTS[name]
    return model_type, {**base, **params}


def _copy_matching(student, sources: list[dict], layer_map: list[int]) -> dict:
    """Copy tensors by name (encoder layer i ← source layer layer_map[i]) where shapes match."""
    import re

    state = student.state_dict()
    copied, fresh = [], []
    for key, tensor in state.items():
        m = re.search(r"encoder\.layer\.(\d+)\.", key)
        src_key = key
        if m:
            src_key = key.replace(m.group(0), f"encoder.layer.{layer_map[int(m.group(1))]}.", 1)
        for source in sources:
            if src_key in source and tuple(source[src_key].shape) == tuple(tensor.shape):
                state[key] = source[src_key].clone()
                copied.append(key)
                break
        else:
            fresh.append(key)
    student.load_state_dict(state)
    return {"copied": len(copied), "fresh": fresh}


def build_transformer_student(teacher_dir: Path, layers: int, init: str | None, labels: list[str]):
    """(model, tokenizer, init record): the teacher's config with ``layers`` encoder layers."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from lmforge.tokenizer.folder import load_tokenizer

    config = AutoConfig.from_pretrained(teacher_dir)
    n_teacher = int(config.num_hidden_layers)
    if not 1 <= layers <= n_teacher:
        raise LmforgeError(f"student layers={layers}: choose 1..{n_teacher} (the teacher's)")
    config.num_hidden_layers = int(layers)
    config.num_labels = len(labels)
    config.id2label = dict(enumerate(labels))
    config.label2id = {n: i for i, n in enumerate(labels)}
    student = AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")
    init_dir = Path(init) if init and init != "teacher" else Path(teacher_dir)
    weights = init_dir / "model.safetensors"
    if not weights.is_file():
        raise LmforgeError(f"student init={init_dir}: no model.safetensors")
    source = load_file(str(weights))
    n_source = AutoConfig.from_pretrained(init_dir).num_hidden_layers
    if init_dir == Path(teacher_dir):  # DistilBERT: every other layer of the teacher
        step = max(1, n_source // layers)
        layer_map = [min(i * step, n_source - 1) for i in range(layers)]
    else:  # a pretrained MLM folder: its first layers
        layer_map = list(range(min(layers, n_source)))
        layer_map += [layer_map[-1]] * (layers - len(layer_map))
    record = _copy_matching(student, [source], layer_map)
    record.update({"from": str(init_dir), "layer_map": layer_map})
    if record["copied"] == 0:
        raise LmforgeError(f"student init={init_dir}: no weight matches the student's shapes")
    return student, load_tokenizer(teacher_dir), record


def _make_student(model_type: str, params: dict, teacher_dir: Path, teacher_meta: dict, texts):
    """(estimator ready to train, init record)."""
    labels = [str(x) for x in teacher_meta["label_names"]]
    cls = get_model_class(model_type)
    loop = {k: params.pop(k) for k in LOOP_KEYS if k in params}
    if model_type == "transformer":
        if teacher_meta.get("model_type") != "transformer":
            raise LmforgeError("a transformer student needs a transformer teacher to copy from")
        tparams = teacher_meta.get("params") or {}
        defaults = {**TRANSFORMER_DEFAULTS, "max_len": tparams.get("max_len", 128)}
        est = cls(**{**defaults, **params, "init": str(teacher_dir)})
        est.classes_ = np.asarray(labels)
        layers = int(loop.get("layers", 2))
        model, tokenizer, record = build_transformer_student(
            teacher_dir, layers, loop.get("init"), labels
        )
        est.use_model(model, tokenizer)
        return est, record
    if loop:
        raise LmforgeError(f"{model_type} student takes no {sorted(loop)}")
    est = cls(**{**NEURAL_DEFAULTS, **params})
    est.setup(labels, texts)
    return est, {"from": "random", "note": "non-transformer student: nothing to copy"}


def distill(
    teacher_dir: str | Path,
    student: str,
    transfer: TransferSet,
    logits: np.ndarray,
    data: ClassificationData,
    out_dir: str | Path,
    temperature: float = 2.0,
    alpha: float = 0.5,
    seed: int = 0,
    progress=None,
) -> dict:
    """Train ``student`` on the transfer set's teacher targets; save to ``out_dir``; summary."""
    import torch

    teacher_dir, out_dir = Path(teacher_dir), Path(out_dir)
    teacher_meta = read_model_meta(teacher_dir)
    model_type, params = parse_student(student)
    if len(logits) != len(transfer.texts):
        raise LmforgeError("teacher logits and transfer set differ in length")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    est, init_record = _make_student(
        model_type, dict(params), teacher_dir, teacher_meta, transfer.texts
    )
    device = est.device_
    t_logits = torch.from_numpy(np.asarray(logits, dtype=np.float32)).to(device)
    hard = torch.from_numpy(transfer.hard).to(device)

    def loss(student_logits, batch):
        idx = torch.from_numpy(np.asarray(batch.idx)).to(device)
        return kd_loss(student_logits, t_logits[idx], hard[idx], temperature, alpha)

    n = len(transfer.texts)
    start_all = time.perf_counter()
    result = est.train_network(
        transfer.texts,
        loss,
        data.val_texts,
        data.val_labels,
        rng=rng,
        name="distill",
        on_step=(lambda epoch, done: progress(epoch, done, n)) if progress else None,
    )
    est.history_, est.best_val_macro_f1_ = result.history, result.best_score
    train_s = time.perf_counter() - start_all
    summary = {
        "teacher": str(teacher_dir),
        "student": student,
        "model_type": model_type,
        "temperature": temperature,
        "alpha": alpha,
        "transfer": transfer.stats,
        "init": init_record,
        "epochs_run": len(est.history_),
        "best_val_macro_f1": result.best_score,
        "train_seconds": train_s,
        "parameters": int(sum(p.numel() for p in est.model_.parameters())),
    }
    est.save(
        out_dir,
        extra={"spec": f"distilled:{student}", "name": out_dir.name, "distillation": summary},
    )
    return summary
