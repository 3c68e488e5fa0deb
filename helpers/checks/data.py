"""Exercise checks of datasets and input pipelines: each derives its expected value itself.

Lessons: ``00_entorno_y_datos.ipynb`` and ``10_flowers102_datos_y_pipeline.ipynb``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from helpers.checks import Verdict, check_value


def check_class_count(exercise: str, answer: Any, labels: np.ndarray, classes: Sequence[str],
                      name: str) -> Verdict:
    """``answer`` must be how many of ``labels`` belong to the class called ``name``."""
    expected = int(np.sum(np.asarray(labels) == list(classes).index(name)))
    return check_value(exercise, answer, expected,
                       "compara las etiquetas con el índice de la clase en la lista de nombres "
                       "y suma los aciertos.")


def check_shorter_side(exercise: str, answer: Any, dataset) -> Verdict:
    """``answer`` must be the shorter side (pixels) of the first image of ``dataset``."""
    image, _ = next(iter(dataset))
    return check_value(exercise, answer, int(min(image.shape[:2])),
                       "toma la primera imagen con next(iter(dataset)) y mira shape[:2] "
                       "(alto, ancho).")


def check_batches_per_epoch(exercise: str, answer: Any, dataset) -> Verdict:
    """``answer`` must be the number of batches one pass over ``dataset`` yields."""
    return check_value(exercise, answer, sum(1 for _ in dataset),
                       "divide el número de imágenes entre el tamaño de lote y redondea hacia "
                       "arriba.")


def check_one_hot_batch_shape(exercise: str, answer: Any, batch_size: int, n_examples: int,
                              num_classes: int) -> Verdict:
    """``answer`` must be the shape of the first batch's one-hot labels."""
    return check_value(exercise, tuple(answer) if isinstance(answer, list) else answer,
                       (min(batch_size, n_examples), num_classes),
                       "usa make_pipeline(..., one_hot=102) y mira .shape de las etiquetas "
                       "del primer lote.")
