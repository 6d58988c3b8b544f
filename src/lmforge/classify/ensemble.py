"""An ensemble of trained classifier folders: their probabilities combined by a small model
fitted on texts the members were *not* trained on (the validation split).

Two ways to combine (``method``):

``stack`` (the default): stacked generalization (Wolpert, 1992). A logistic regression reads each
member's centred log-probabilities (for two classes: its log-odds) and predicts the label. It
learns how far to trust each member *and* puts their scales on one footing: Naive Bayes's
probabilities are extreme, the encoder's moderate, a decision tree's 0/1, so a plain weighted
mean of probabilities lets the most over-confident member decide. Measured on the built-in split
(docs/benchmarks_selection.md, 40 random halves of the held-out texts, fitted on one half, scored
on the other): +1.4 macro-F1 over Naive Bayes with the encoder among the members, against +0.6
for greedy selection.

``select``: greedy ensemble selection with replacement (Caruana et al., 2004, "Ensemble selection
from libraries of models"): start from the member with the best macro-F1 (or from the mean of
all members when that scores higher), then repeatedly add (again) the member whose addition
raises macro-F1 most (log loss breaks ties), until no addition raises it. The result is a
weighted mean of probabilities.

scikit-learn's ``StackingClassifier`` refits its members from raw features, and it has no
ensemble selection; the members here are folders that are already trained, so only the combiner
is fitted here (the stacker *is* scikit-learn's ``LogisticRegression``; its coefficients are
stored as numbers in the JSON, nothing is pickled).

The folder is a normal model folder that :func:`lmforge.classify.estimator.load_model` (and so
the Predictor, ``lmforge predict``, ``serve`` and ``classify eval``) loads::

    DIR/lmforge_model.json      model_type "ensemble", params {members, method, weights},
                                the stacker's coefficients, label names
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
from scipy.special import expit, softmax
from sklearn.linear_model import LogisticRegression
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
METHODS = ("stack", "select")
# the stacker's inverse regularisation: C = 0.1 and 1.0 gave the same held-out macro-F1 on the
# built-in split (0.8617 / 0.8619 over 40 halves), 0.01 a little less (0.8596)
STACK_C = 1.0
LOG_FLOOR = 1e-6  # a 0/1 probability (a decision tree's) becomes a large finite log-odds


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


def stack_features(probas: list[np.ndarray]) -> np.ndarray:
    """Each member's centred log-probabilities side by side (for two classes, ± half its
    log-odds): what the stacker reads."""
    logs = [np.log(np.clip(p, LOG_FLOOR, 1.0)) for p in probas]
    return np.hstack([lp - lp.mean(axis=1, keepdims=True) for lp in logs])


def fit_stacker(probas: list[np.ndarray], y: np.ndarray) -> dict:
    """A logistic regression on :func:`stack_features`; its coefficients as plain lists."""
    n_classes = probas[0].shape[1]
    stacker = LogisticRegression(C=STACK_C, max_iter=1000)
    stacker.fit(stack_features(probas), y)
    if len(stacker.classes_) != n_classes:
        raise LmforgeError(
            f"the stacker needs every class in the texts it is fitted on; got "
            f"{len(stacker.classes_)} of {n_classes}"
        )
    return {"coef": stacker.coef_.tolist(), "intercept": stacker.intercept_.tolist()}


def apply_stacker(stacker: dict, probas: list[np.ndarray]) -> np.ndarray:
    """Class probabilities from a fitted stacker (``LogisticRegression.predict_proba``'s maths,
    redone from the stored numbers)."""
    coef, intercept = np.asarray(stacker["coef"]), np.asarray(stacker["intercept"])
    z = stack_features(probas) @ coef.T + intercept
    if coef.shape[0] == 1:  # two classes: one logit for the second
        p1 = expit(z[:, 0])
        return np.column_stack([1.0 - p1, p1])
    return softmax(z, axis=1)


def member_influence(stacker: dict, n_members: int) -> np.ndarray:
    """How much each member moves the stacker's decision: the norm of its coefficient block,
    normalised to sum to 1 (a reading aid for the leaderboard, not a mixing weight)."""
    coef = np.asarray(stacker["coef"])
    blocks = np.split(coef, n_members, axis=1)
    norms = np.asarray([np.linalg.norm(b) for b in blocks])
    return norms / norms.sum() if norms.sum() > 0 else np.full(n_members, 1.0 / n_members)


def combine(method: str, fitted, probas: list[np.ndarray]) -> np.ndarray:
    """The ensemble's probabilities from its members' for a fitted combiner (weights or a
    stacker)."""
    if method == "stack":
        return apply_stacker(fitted, probas)
    return sum(w * p for w, p in zip(fitted, probas, strict=True))


def fit_combiner(method: str, probas: list[np.ndarray], y: np.ndarray):
    if method == "stack":
        return fit_stacker(probas, y)
    return select_weights(probas, y)


def cross_fitted_score(
    probas: list[np.ndarray], y: np.ndarray, folds: int = 5, seed: int = 0, method: str = "stack"
) -> float:
    """Macro-F1 of the combiner measured honestly: fitted on all but one part of the texts,
    scored on that part, for every part; the pooled predictions are scored once."""
    pred = np.zeros(len(y), dtype=int)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for fit_idx, score_idx in splitter.split(np.zeros(len(y)), y):
        fitted = fit_combiner(method, [p[fit_idx] for p in probas], y[fit_idx])
        mixed = combine(method, fitted, [p[score_idx] for p in probas])
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
    """Member folders' probabilities combined by a stacker or a weighted mean (``method``).

    ``members``: member folders (paths while building; plain names inside ``DIR/members/`` once
    saved). ``fit(texts, y)`` fits the combiner only (on held-out texts: the members are already
    trained). ``weights`` given and not ``None`` make a fixed weighted mean (``method`` is then
    ``select``, nothing is fitted).
    """

    trains_from_texts = False

    def __init__(
        self,
        members: list[str] | None = None,
        weights: list[float] | None = None,
        method: str = "stack",
    ):
        self.members = members
        self.weights = weights
        self.method = method

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
        if self.method not in METHODS:
            raise LmforgeError(f"ensemble method {self.method!r}: choose one of {METHODS}")
        self._load_members()
        labels = np.asarray(y).astype(str)
        self.classes_ = np.asarray(sorted(set(self.predictors_[0].labels)))
        index = {c: i for i, c in enumerate(self.classes_.tolist())}
        unknown = sorted(set(labels) - set(index))
        if unknown:
            raise LmforgeError(f"labels {unknown} are not among the members' {list(index)}")
        y_idx = np.asarray([index[v] for v in labels])
        probas = self.member_probas(texts)
        self.method_ = "select" if self.weights is not None else self.method
        if self.weights is not None:
            self.weights_ = np.asarray(self.weights, dtype=float) / np.sum(self.weights)
        elif self.method_ == "stack":
            self.stacker_ = fit_stacker(probas, y_idx)
            self.weights_ = member_influence(self.stacker_, len(probas))
        else:
            self.weights_ = select_weights(probas, y_idx)
        if self.weights is None:
            self.cross_fitted_macro_f1_ = cross_fitted_score(probas, y_idx, method=self.method_)
        self.member_scores_ = [_score(y_idx, p)[0] for p in probas]
        return self

    # -- prediction --------------------------------------------------------------------------
    def predict_proba(self, texts) -> np.ndarray:
        self._check_fitted()
        texts = list(texts)
        classes = [str(c) for c in self.classes_]
        if self.method_ == "stack":
            return apply_stacker(
                self.stacker_, [_aligned(p, texts, classes) for p in self.predictors_]
            )
        out = np.zeros((len(texts), len(self.classes_)))
        for w, predictor in zip(self.weights_, self.predictors_, strict=True):
            if w > 0:  # a member selection left out costs nothing at prediction time
                out += w * _aligned(predictor, texts, classes)
        return out

    # -- persistence -------------------------------------------------------------------------
    def json_params(self):
        names = [p.name for p in self.member_paths_]
        if self.method_ == "stack":
            return {"members": names, "method": "stack", "weights": None}
        return {"members": names, "method": "select", "weights": [float(w) for w in self.weights_]}

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
        if self.method_ == "stack":
            extra["stacker"] = self.stacker_
            extra["member_influence"] = [float(w) for w in self.weights_]
        if hasattr(self, "cross_fitted_macro_f1_"):
            extra["cross_fitted_val_macro_f1"] = self.cross_fitted_macro_f1_
        return extra

    def _load_weights(self, directory: Path, meta: dict) -> None:
        self.classes_ = np.asarray([str(c) for c in meta["label_names"]])
        self._load_members(base=directory)
        if self.weights is None and "stacker" in meta:
            self.method_ = "stack"
            self.stacker_ = _checked_stacker(directory, meta["stacker"], len(self.predictors_),
                                             len(self.classes_))  # fmt: skip
            self.weights_ = member_influence(self.stacker_, len(self.predictors_))
            return
        self.method_ = "select"  # folders from before stacking hold weights only
        self.weights_ = np.asarray(self.weights if self.weights else [], dtype=float)
        if len(self.weights_) != len(self.predictors_):
            raise LmforgeError(
                f"{directory}: {len(self.predictors_)} members but weights {self.weights}"
            )


def _checked_stacker(directory: Path, stacker, n_members: int, n_classes: int) -> dict:
    """The stored stacker, refused with one line unless its shapes fit the members."""
    try:
        coef = np.asarray(stacker["coef"], dtype=float)
        intercept = np.asarray(stacker["intercept"], dtype=float)
    except (KeyError, TypeError, ValueError) as exc:
        raise LmforgeError(f"{directory}: the ensemble's stacker is unreadable ({exc})") from exc
    rows = 1 if n_classes == 2 else n_classes
    if coef.shape != (rows, n_members * n_classes) or intercept.shape != (rows,):
        raise LmforgeError(
            f"{directory}: stacker coefficients {coef.shape} do not fit {n_members} members "
            f"and {n_classes} classes"
        )
    return {"coef": coef.tolist(), "intercept": intercept.tolist()}
