"""Early stopping on the validation loss, counted in evaluations.

An evaluation *improves* when its loss is lower than the best so far by more than ``min_delta``
(the first evaluation always improves). After ``patience`` evaluations in a row without an
improvement the run should stop; ``patience = 0`` never stops. The state is plain JSON so it
travels in checkpoints.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class EarlyStopping:
    patience: int = 0
    min_delta: float = 0.0
    best_val_loss: float | None = None
    best_step: int | None = None
    evals_without_improvement: int = 0

    def update(self, val_loss: float, step: int) -> bool:
        """Record one evaluation; True when it is a new best."""
        if self.best_val_loss is None or val_loss < self.best_val_loss - self.min_delta:
            self.best_val_loss = val_loss
            self.best_step = step
            self.evals_without_improvement = 0
            return True
        self.evals_without_improvement += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.evals_without_improvement >= self.patience

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_val_loss = state.get("best_val_loss")
        self.best_step = state.get("best_step")
        self.evals_without_improvement = int(state.get("evals_without_improvement", 0))
