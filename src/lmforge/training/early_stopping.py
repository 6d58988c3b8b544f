"""Early stopping on a validation score (higher is better) that keeps the best weights."""

from __future__ import annotations


class EarlyStopping:
    """``update(score, model)`` after each epoch: True once ``patience`` epochs in a row brought
    no gain; ``restore(model)`` puts the best epoch's weights back."""

    def __init__(self, patience: int) -> None:
        self.patience = int(patience)
        self.best = -float("inf")
        self.bad_epochs = 0
        self.state: dict | None = None

    def update(self, score: float, model) -> bool:
        if score > self.best:
            self.best, self.bad_epochs = score, 0
            self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience

    def restore(self, model) -> None:
        if self.state is not None:
            model.load_state_dict(self.state)

    @property
    def best_score(self) -> float | None:
        return self.best if self.state is not None else None

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_epochs": self.bad_epochs, "state": self.state}

    def load_state_dict(self, saved: dict) -> None:
        self.best, self.bad_epochs, self.state = saved["best"], saved["bad_epochs"], saved["state"]
