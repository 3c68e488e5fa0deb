"""What a training run produced, the same for both tracks (numpy only).

Lessons: ``01_cifar10_modelo.ipynb`` (PyTorch, :func:`helpers.torch.train.train`) and
``13_entrenamiento_y_comparacion.ipynb`` (Keras, :func:`helpers.keras.train.train_classifier`).
Both keep the weights of the epoch with the highest validation accuracy, the first one on ties
(what Keras' ``EarlyStopping(restore_best_weights=True)`` does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def best_epoch(val_accuracy: Sequence[float]) -> int:
    """1-based epoch of the first highest validation accuracy."""
    if len(val_accuracy) == 0:
        raise ValueError("no epoch was run: the history has no validation accuracy")
    return int(np.argmax(val_accuracy)) + 1


@dataclass
class TrainResult:
    """One run: per-epoch ``history`` (``"loss"`` and ``"val_accuracy"`` at least, in the
    order of the epochs), the epoch whose weights the model keeps, and the wall time."""

    history: dict[str, list[float]]
    best_epoch: int  # 1-based
    epochs_run: int
    val_accuracy: float  # at best_epoch
    seconds: float  # wall time of the training itself

    @classmethod
    def from_history(cls, history: dict[str, Sequence[float]], seconds: float) -> TrainResult:
        """The result of a run whose model keeps its best epoch (:func:`best_epoch`)."""
        hist = {key: [float(v) for v in values] for key, values in history.items()}
        best = best_epoch(hist["val_accuracy"])
        return cls(hist, best, len(hist["val_accuracy"]), hist["val_accuracy"][best - 1], seconds)
