"""Classification statistics both tracks use (numpy only).

Lessons: ``01_cifar10_modelo.ipynb`` (accuracy, confusion matrix, per-class accuracy),
``13_entrenamiento_y_comparacion.ipynb`` (paired standard error) and
``15_analisis_de_errores_y_reflexion.ipynb`` (most confused pairs).
"""

from __future__ import annotations

import numpy as np


def accuracy(probs, labels) -> float:
    """Fraction of argmax predictions ``probs [N, K]`` equal to the integer ``labels [N]``."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    if probs.ndim != 2 or labels.shape != (len(probs),):
        raise ValueError(f"expected scores [N, K] and labels [N], got {probs.shape} and "
                         f"{labels.shape}")
    return float((probs.argmax(1) == labels).mean())


def confusion_matrix(labels, predictions, num_classes: int) -> np.ndarray:
    """Counts ``cm[true, predicted]`` (int64 [K, K]) from integer labels and predictions."""
    labels, predictions = np.asarray(labels, np.int64), np.asarray(predictions, np.int64)
    return np.bincount(labels * num_classes + predictions,
                       minlength=num_classes**2).reshape(num_classes, num_classes)


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class: ``cm[k, k] / sum_j cm[k, j]`` (NaN for a class without images)."""
    cm = np.asarray(cm, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(cm) / cm.sum(axis=1)


def most_confused(cm: np.ndarray, k: int = 10) -> list[tuple[int, int, int]]:
    """The ``k`` largest off-diagonal cells as ``(true, predicted, count)``, count > 0 only.

    Ties are broken by (true, predicted) order, so the result is deterministic.
    """
    cm = np.asarray(cm)
    off = cm.copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-off, axis=None, kind="stable")[:k]
    pairs = [(int(i), int(j), int(off[i, j])) for i, j in zip(*np.unravel_index(flat, cm.shape),
                                                                 strict=True)]
    return [p for p in pairs if p[2] > 0]


def select_examples(probs: np.ndarray, labels: np.ndarray, n: int,
                    n_wrong: int | None = None) -> np.ndarray:
    """Indices of ``n`` images, ``n_wrong`` of them misclassified (default: half).

    Right ones are the most confident, wrong ones the most confidently wrong: the clearest
    cases to explain. Deterministic for given predictions.
    """
    n_wrong = n // 2 if n_wrong is None else n_wrong
    pred, conf = probs.argmax(1), probs.max(1)
    right = np.flatnonzero(pred == labels)
    wrong = np.flatnonzero(pred != labels)
    wrong = wrong[np.argsort(-conf[wrong], kind="stable")][:n_wrong]
    right = right[np.argsort(-conf[right], kind="stable")][:n - len(wrong)]
    return np.concatenate([right, wrong])


def paired_difference(correct_a, correct_b) -> tuple[float, float]:
    """Accuracy of A minus accuracy of B on the same images, and its standard error.

    ``correct_a``/``correct_b``: booleans [N], whether each model got each image right. The
    standard error is that of the mean of the per-image differences (a paired comparison: it
    is smaller than treating the two accuracies as independent when the models agree often).
    """
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"need two boolean vectors of the same length >= 2, got {a.shape}, "
                         f"{b.shape}")
    d = a - b
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d)))


def stratified_sample(labels, n: int | None, mask=None, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``n`` items spread as evenly over the classes of ``labels`` as possible.

    Only items where ``mask`` is True are eligible (e.g. the correctly classified images);
    ``n=None`` takes every eligible item. Classes are visited in turn, one random item each
    (``seed``), so with 32 items and 10 classes every class gets 3 or 4.
    """
    labels = np.asarray(labels)
    eligible = np.ones(len(labels), bool) if mask is None else np.asarray(mask, bool)
    if eligible.shape != labels.shape or labels.ndim != 1:
        raise ValueError(f"labels [N] and mask [N] must agree, got {labels.shape} and "
                         f"{eligible.shape}")
    pool = np.flatnonzero(eligible)
    if n is None:
        return pool
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= len(pool):
        raise ValueError(f"n must be an int in [1, {len(pool)}] (the eligible items), got {n!r}")
    rng = np.random.default_rng(seed)
    queues = [list(rng.permutation(pool[labels[pool] == c])) for c in np.unique(labels[pool])]
    picked: list[int] = []
    while len(picked) < n:
        for q in queues:
            if q and len(picked) < n:
                picked.append(int(q.pop()))
    return np.sort(np.array(picked))
