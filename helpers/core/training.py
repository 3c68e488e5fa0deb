"""What a training run produced, the same for both tracks (numpy only).

Lessons: ``01_cifar10_modelo.ipynb`` (PyTorch, :func:`helpers.torch.train.train`) and
``13_entrenamiento_y_comparacion.ipynb`` (Keras, :func:`helpers.keras.train.train_classifier`).
Both keep the weights of the epoch with the highest validation accuracy, the first one on ties
(what Keras' ``EarlyStopping(restore_best_weights=True)`` does), say how long a run should take
before it starts (:func:`announce_duration`) and say so when an epoch runs far past that
(:class:`EpochWatch`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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


STALL_FACTOR = 3.0  # an epoch this many times longer than estimated gets a warning...
STALL_MIN_SECONDS = 120.0  # ...once it is also this much longer (short epochs vary a lot)


class EpochWatch:
    """Warns, from a timer thread, when an epoch of ``what`` runs far past its estimate
    (``seconds`` per epoch): after ``max(STALL_FACTOR x seconds, seconds + STALL_MIN_SECONDS)``.
    A training stuck in native code prints nothing else, and its progress bar just stops."""

    def __init__(self, seconds: float, what: str, say: Callable[[str], object] = print,
                 factor: float = STALL_FACTOR, min_seconds: float = STALL_MIN_SECONDS) -> None:
        self.seconds, self.what, self.say = float(seconds), what, say
        self.limit = max(factor * self.seconds, self.seconds + min_seconds)

    @contextmanager
    def epoch(self, number: int, total: int) -> Iterator[None]:
        """Times epoch ``number`` (1-based) of ``total``; the timer never outlives the block."""
        timer = threading.Timer(self.limit, self._warn, (number, total))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            timer.join()

    def _warn(self, number: int, total: int) -> None:
        from helpers.core.spanish import num

        self.say(f"Aviso: la época {number}/{total} de {self.what} lleva más de "
                 f"{num(self.limit / 60, 1)} min; se estimaban unos {num(self.seconds / 60, 1)} "
                 "min por época. Si la barra de progreso no avanza, el proceso puede estar "
                 "bloqueado. Qué probar: interrumpe el kernel y, si no responde, reinícialo; al "
                 "volver a ejecutar el cuaderno, el entrenamiento sigue desde la última época "
                 "terminada. Si se repite: cierra otros programas que usen la CPU, usa menos "
                 "hilos (OMP_NUM_THREADS=1 antes de abrir Jupyter), el perfil rápido "
                 "(XAI_PROFILE=fast), los modelos ya entrenados de $XAI_DATA_DIR/checkpoints o "
                 "una GPU (p. ej. en Colab).")
