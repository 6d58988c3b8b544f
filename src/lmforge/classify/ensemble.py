"""An ensemble of trained classifier folders: a weighted mean of their probabilities.

The members are folders that already exist (the baselines and the fine-tuned encoder of one
split); only the weights are fitted, on texts the members were *not* trained on (the validation
split). Weights come from greedy ensemble selection with replacement (Caruana et al., 2004,
"Ensemble selection from libraries of models"): start from the member with the best macro-F1
(or from the mean of all members when that scores higher),
then repeatedly add (again) the member whose addition raises macro-F1 most (log loss breaks
ties between candidates), until no addition raises macro-F1. So on the texts it was fitted on, the ensemble scores at least
its best member. scikit-learn has no ensemble selection (``VotingClassifier`` refits its members
and ``StackingClassifier`` needs them unfitted), hence these few lines.

The folder is a normal model folder that :func:`lmforge.classify.estimator.load_model` (and so
the Predictor, ``lmforge predict``, ``serve`` and ``classify eval``) loads::

    DIR/lmforge_model.json      model_type "ensemble", params {members, weights}, label names
    DIR/members/<name>/...      a copy (hard links where possible) of every member folder

Members are loaded only from inside ``DIR/members/``; a member name that would lead elsewhere
(absolute, ``..``, a symbolic link) is refused. Members run through the Predictor, and only with
the backends that execute no code from the folder (``native``, ``onnx``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score, log_loss
from sklearn.model_selection import StratifiedKFold

from lmforge.classify.estimator import (
    MODEL_JSON,
    TextClassifier,
    read_model_meta,
    register_model,
)
from lmforge.errors import LmforgeError

MEMBERS_DIR = "members"
SAFE_BACKENDS = ("native", "onnx")
MAX_ROUNDS = 25


def _score(y: np.ndarray, proba: np.ndarray) -> tuple[float, float]:
    """(macro-F1, -log loss): larger is better, compared as a tuple."""
    pred = np.argmax(proba, axis=1)
    f1 = f1_score(y, pred, average="macro")
    clipped = np.clip(proba, 1e-7, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    return float(f1), -float(log_loss(y, clipped, labels=np.arange(proba.shape[1])))


def select_weights(probas: list[np.ndarray], y: np.ndarray, max_rounds: int = MAX_ROUNDS):
    """Greedy ensemble selection with replacement: integer counts per member, normalized."""
    scores = [_score(y, p) for p in probas]
    best = max(range(len(probas)), key=lambda i: scores[i])
    counts = np.zeros(len(probas))
    counts[best] = 1
    total, current = probas[best].copy(), scores[best]
    # greedy steps from one member can stall below the plain mean of all (measured on the
    # built-in split: 0.857 vs 0.868 validation): start from the mean when it scores higher
    mean_score = _score(y, sum(probas) / len(probas))
    if mean_score[0] > current[0]:
        counts[:] = 1
        total, current = sum(probas).astype(float), mean_score
    for _ in range(max_rounds):
        trials = [_score(y, (total + p) / (counts.sum() + 1)) for p in probas]
        i = max(range(len(probas)), key=lambda j: trials[j])
        if trials[i][0] <= current[0]:  # only a higher macro-F1 earns a member its place
            break
        counts[i] += 1
        total += probas[i]
        current = trials[i]
    return counts / counts.sum()


def cross_fitted_score(
    probas: list[np.ndarray], y: np.ndarray, folds: int = 2, seed: int = 0
) -> float:
    """Macro-F1 of the selection measured honestly: weights fitted on one part of the texts,
    scored on the other, for every part; the pooled predictions are scored once."""
    pred = np.zeros(len(y), dtype=int)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for fit_idx, score_idx in splitter.split(np.zeros(len(y)), y):
        w = select_weights([p[fit_idx] for p in probas], y[fit_idx])
        mixed = sum(wi * p[score_idx] for wi, p in zip(w, probas, strict=True))
        pred[score_idx] = np.argmax(mixed, axis=1)
    return float(f1_score(y, pred, average="macro"))


def _member_dir(directory: Path, name: str) -> Path:
    """``DIR/members/<name>``, refused unless it is a plain folder name inside the ensemble."""
    root = (directory / MEMBERS_DIR).resolve()
    path = directory / MEMBERS_DIR / name
    if Path(name).name != name or name in ("", ".", "..") or path.is_symlink():
        raise LmforgeError(f"{directory}: ensemble member {name!r} is not a folder inside it")
    if path.resolve().parent != root:
        raise LmforgeError(f"{directory}: ensemble member {name!r} leads outside the ensemble")
    return path


def _load_member(path: Path):
    from lmforge.predictor import Predictor

    backend = read_model_meta(path).get("backend", "native")
    if backend not in SAFE_BACKENDS:
        raise LmforgeError(
            f"{path}: an ensemble member must use one of {', '.join(SAFE_BACKENDS)}, not {backend!r}"
        )
    return Predictor.load(path, backend=backend, max_chars=None)


def _aligned(predictor, texts: list[str], classes: list[str]) -> np.ndarray:
    """A member's probabilities with columns in ``classes`` order."""
    proba = predictor.predict_proba(texts)
    index = {str(label): j for j, label in enumerate(predictor.labels)}
    missing = [c for c in classes if c not in index]
    if missing:
        raise LmforgeError(f"{predictor.directory}: member has no label(s) {missing}")
    return proba[:, [index[c] for c in classes]]


def copy_model_folder(src: Path, dst: Path) -> list[str]:
    """Copy a model folder's files (its JSON ``files`` + the JSON) into ``dst``, hard
    links where the file system allows."""
    meta = read_model_meta(src)
    names = [*meta.get("files", []), MODEL_JSON]
    for name in names:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise LmforgeError(f"{src}: file {name!r} is outside the model folder")
        target = dst / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src / name, target)
        except OSError:
            shutil.copy2(src / name, target)
    return names


@register_model("ensemble")
class EnsembleClassifier(TextClassifier):
    """Weighted mean of member folders' probabilities.

    ``members``: member folders (paths while building; plain names inside ``DIR/members/`` once
    saved). ``fit(texts, y)`` fits the weights only (on held-out texts: the members are already
    trained); ``weights`` given and not ``None`` are used as they are.
    """

    trains_from_texts = False

    def __init__(self, members: list[str] | None = None, weights: list[float] | None = None):
        self.members = members
        self.weights = weights

    # -- building ----------------------------------------------------------------------------
    def _load_members(self, base: Path | None = None) -> None:
        if not self.members:
            raise LmforgeError("an ensemble needs at least one member folder")
        if base is None:
            paths = [Path(m) for m in self.members]
        else:
            paths = [_member_dir(base, m) for m in self.members]
        for path in paths:
            if not path.is_dir():
                raise LmforgeError(f"ensemble member not found: {path}")
        if len({p.name for p in paths}) < len(paths):
            raise LmforgeError(f"ensemble members need distinct folder names: {self.members}")
        self.member_paths_ = paths
        self.predictors_ = [_load_member(p) for p in paths]

    def member_probas(self, texts) -> list[np.ndarray]:
        classes = [str(c) for c in self.classes_]
        return [_aligned(p, list(texts), classes) for p in self.predictors_]

    def fit(self, texts, y):
        self._load_members()
        labels = np.asarray(y).astype(str)
        self.classes_ = np.asarray(sorted(set(self.predictors_[0].labels)))
        index = {c: i for i, c in enumerate(self.classes_.tolist())}
        unknown = sorted(set(labels) - set(index))
        if unknown:
            raise LmforgeError(f"labels {unknown} are not among the members' {list(index)}")
        y_idx = np.asarray([index[v] for v in labels])
        probas = self.member_probas(texts)
        if self.weights is None:
            self.weights_ = select_weights(probas, y_idx)
            self.cross_fitted_macro_f1_ = cross_fitted_score(probas, y_idx)
        else:
            self.weights_ = np.asarray(self.weights, dtype=float) / np.sum(self.weights)
        self.member_scores_ = [_score(y_idx, p)[0] for p in probas]
        return self

    # -- prediction --------------------------------------------------------------------------
    def predict_proba(self, texts) -> np.ndarray:
        self._check_fitted()
        texts = list(texts)
        out = np.zeros((len(texts), len(self.classes_)))
        for w, predictor in zip(self.weights_, self.predictors_, strict=True):
            if w > 0:
                out += w * _aligned(predictor, texts, [str(c) for c in self.classes_])
        return out

    # -- persistence -------------------------------------------------------------------------
    def json_params(self):
        names = [p.name for p in self.member_paths_]
        return {"members": names, "weights": [float(w) for w in self.weights_]}

    def _save_weights(self, directory: Path) -> list[str]:
        files = []
        for path in self.member_paths_:
            name = path.name
            dst = directory / MEMBERS_DIR / name
            if dst.resolve() != path.resolve():
                if dst.exists():
                    shutil.rmtree(dst)
                files += [f"{MEMBERS_DIR}/{name}/{f}" for f in copy_model_folder(path, dst)]
            else:
                files += [f"{MEMBERS_DIR}/{name}/{f}" for f in read_model_meta(path)["files"]]
                files.append(f"{MEMBERS_DIR}/{name}/{MODEL_JSON}")
        return files

    def _extra_meta(self) -> dict:
        extra = {"member_val_macro_f1": getattr(self, "member_scores_", None)}
        if hasattr(self, "cross_fitted_macro_f1_"):
            extra["cross_fitted_val_macro_f1"] = self.cross_fitted_macro_f1_
        return extra

    def _load_weights(self, directory: Path, meta: dict) -> None:
        self.classes_ = np.asarray([str(c) for c in meta["label_names"]])
        self._load_members(base=directory)
        self.weights_ = np.asarray(self.weights if self.weights else [], dtype=float)
        if len(self.weights_) != len(self.predictors_):
            raise LmforgeError(
                f"{directory}: {len(self.predictors_)} members but weights {self.weights}"
            )
