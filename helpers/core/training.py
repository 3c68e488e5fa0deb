"""What a training run produced, the same for both tracks (numpy only).

Lessons: ``01_cifar10_modelo.ipynb`` (PyTorch, :func:`helpers.torch.train.train`) and
``13_entrenamiento_y_comparacion.ipynb`` (Keras, :func:`helpers.keras.train.train_classifier`).
Both keep the weights of the epoch with the highest validation accuracy, the first one on ties
(what Keras' ``EarlyStopping(restore_best_weights=True)`` does).
"""

from __future__ import annotations

import os
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


LONG_ENV = "XAI_ALLOW_LONG"
LONG_MINUTES = 45.0  # on a CPU, a training estimated longer than this needs an explicit opt-in


class LongRunError(RuntimeError):
    """A training run estimated to take too long on this device was not allowed to start."""


def announce_duration(seconds: float, what: str, on_cpu: bool, say=print,
                      allow_long: bool = False) -> None:
    """Say how long ``what`` is expected to take; on a CPU, refuse more than
    :data:`LONG_MINUTES` unless ``allow_long`` or ``$XAI_ALLOW_LONG=1`` (LongRunError)."""
    from helpers.core.spanish import num

    minutes = seconds / 60
    shown = f"unos {num(minutes, 0)} min" if minutes >= 1 else "menos de 1 min"
    say(f"Entrenamiento de {what}: {shown} en este dispositivo (estimación a partir de lo que "
        "tarda aquí ahora).")
    if not on_cpu or minutes <= LONG_MINUTES or allow_long or os.environ.get(LONG_ENV) == "1":
        return
    say(f"Eso es mucho para una CPU (más de {num(LONG_MINUTES, 0)} min). Alternativas: el perfil "
        "rápido (XAI_PROFILE=fast), los puntos de control ya entrenados en $XAI_DATA_DIR/"
        f"checkpoints o una GPU (p. ej. en Colab). Para entrenar aquí de todos modos: {LONG_ENV}=1 "
        "(o allow_long=True).")
    raise LongRunError(f"training {what} would take about {minutes:.0f} min on this CPU; set "
                       f"{LONG_ENV}=1 or pass allow_long=True to start it anyway")
