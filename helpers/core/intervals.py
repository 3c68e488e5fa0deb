"""Uncertainty for every comparison the course prints (numpy only, both tracks).

Lessons: ``07_comparativa.ipynb`` (method tables over images),
``13_entrenamiento_y_comparacion.ipynb`` (paired accuracy differences, seeds) and
``14_grad_cam_e_integrated_gradients.ipynb``.

One rule reads every comparison: an :class:`Estimate` (a value with its confidence interval) is
*above* a reference when its whole interval is above it, *below* when its whole interval is below
it, and otherwise it does **not** differ from it (:func:`verdict`). :func:`compare_sentence` turns
that into the Spanish sentence the notebooks print, so no lesson reads a difference inside its
interval as a result.

* :func:`bootstrap_mean` / :func:`bootstrap_median`: percentile bootstrap interval of a mean or
  a median (per column for [N, K]);
* :func:`bootstrap_paired_difference`: the same for the mean of paired differences ``a - b``;
* :func:`bootstrap_difference`: difference of the means of two independent groups;
* :func:`paired_accuracy_difference`: accuracy of A minus B on the same images, with its paired
  standard error and normal interval;
* :func:`proportion_interval`: Wilson interval of one accuracy;
* :func:`seed_summary`: mean and standard deviation over training seeds;
* :func:`compare_sentence` and :func:`position_sentence`: the verdict in Spanish.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from helpers.core.spanish import interval, num, pct
from helpers.core.stats import paired_difference

LEVEL = 0.95
N_BOOT = 2000


@dataclass(frozen=True)
class Estimate:
    """A value, its ``level`` confidence interval ``[low, high]`` and the sample size ``n``.

    ``se`` is the standard error when the interval comes from one (normal approximation).
    """

    value: float
    low: float
    high: float
    n: int
    level: float = LEVEL
    se: float | None = None

    def __post_init__(self) -> None:
        if not self.low <= self.value <= self.high:
            raise ValueError(f"interval [{self.low}, {self.high}] does not contain the value "
                             f"{self.value}")


def _finite_samples(values, name: str) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim not in (1, 2) or len(v) < 2:
        raise ValueError(f"{name} must be [N] or [N, K] with N >= 2 samples, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} holds {int((~np.isfinite(v)).sum())} non-finite values: drop "
                         "or replace them (e.g. NaN Spearman of a constant map) first")
    return v


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), e.g. 0.95, got {level!r}")


def bootstrap_mean(values, level: float = LEVEL, n_boot: int = N_BOOT,
                   seed: int = 0) -> Estimate | list[Estimate]:
    """Mean of ``values`` [N] with its percentile bootstrap interval (resampling the N items).

    For ``values`` [N, K] (K columns measured on the same N items) the same resamples are used
    for every column and a list of K estimates is returned. Deterministic for a given ``seed``.
    """
    return _bootstrap(values, np.mean, level, n_boot, seed)


def bootstrap_median(values, level: float = LEVEL, n_boot: int = N_BOOT,
                     seed: int = 0) -> Estimate | list[Estimate]:
    """:func:`bootstrap_mean` for the median (robust to a few extreme items)."""
    return _bootstrap(values, np.median, level, n_boot, seed)


def _bootstrap(values, statistic, level: float, n_boot: int, seed: int):
    _check_level(level)
    v = _finite_samples(values, "values")
    cols = v if v.ndim == 2 else v[:, None]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(cols), size=(n_boot, len(cols)))
    stats = statistic(cols[idx], axis=1)  # [n_boot, K]
    tail = (1 - level) / 2
    low, high = np.quantile(stats, [tail, 1 - tail], axis=0)
    centre = statistic(cols, axis=0)
    out = [Estimate(float(c), float(min(lo, c)), float(max(hi, c)), len(cols), level)
           for c, lo, hi in zip(centre, low, high, strict=True)]
    return out if v.ndim == 2 else out[0]


def bootstrap_paired_difference(a, b, level: float = LEVEL, n_boot: int = N_BOOT,
                                seed: int = 0) -> Estimate:
    """Mean of ``a - b`` over paired items (same images) with its bootstrap interval."""
    a, b = _finite_samples(a, "a"), _finite_samples(b, "b")
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"a and b must be paired vectors of the same length, got {a.shape} "
                         f"and {b.shape}")
    return bootstrap_mean(a - b, level, n_boot, seed)


def bootstrap_difference(a, b, level: float = LEVEL, n_boot: int = N_BOOT,
                         seed: int = 0) -> Estimate:
    """Mean of ``a`` minus mean of ``b`` for two *independent* groups (different items, e.g.
    right and wrong images), each resampled on its own; ``n`` is the smaller group's size."""
    _check_level(level)
    a, b = _finite_samples(a, "a"), _finite_samples(b, "b")
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"a and b must be vectors, got shapes {a.shape} and {b.shape}")
    rng = np.random.default_rng(seed)
    diffs = (a[rng.integers(0, len(a), (n_boot, len(a)))].mean(1)
             - b[rng.integers(0, len(b), (n_boot, len(b)))].mean(1))
    tail = (1 - level) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    value = float(a.mean() - b.mean())
    return Estimate(value, float(min(low, value)), float(max(high, value)), min(len(a), len(b)),
                    level)


def _z(level: float) -> float:
    _check_level(level)
    return NormalDist().inv_cdf(0.5 + level / 2)


def paired_accuracy_difference(correct_a, correct_b, level: float = LEVEL) -> Estimate:
    """Accuracy of A minus accuracy of B on the same images: value, paired SE, normal interval.

    ``correct_a``/``correct_b``: booleans [N], whether each model got each image right.
    """
    diff, se = paired_difference(correct_a, correct_b)
    half = _z(level) * se
    return Estimate(diff, diff - half, diff + half, len(np.asarray(correct_a)), level, se)


def proportion_interval(successes: int, n: int, level: float = LEVEL) -> Estimate:
    """Wilson score interval of a proportion (an accuracy: ``successes`` right out of ``n``)."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    z, p = _z(level), successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Estimate(p, max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)), n,
                    level, math.sqrt(p * (1 - p) / n))


def seed_summary(values) -> tuple[float, float, int]:
    """Mean, sample standard deviation (ddof 1; 0 for one seed) and count of per-seed results."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if len(v) == 0 or not np.isfinite(v).all():
        raise ValueError(f"need one or more finite per-seed values, got {v.tolist()}")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)


def verdict(estimate: Estimate, reference: float = 0.0) -> int:
    """+1 when the whole interval is above ``reference``, -1 when below, 0 when it contains it."""
    if estimate.low > reference:
        return 1
    if estimate.high < reference:
        return -1
    return 0


def compare_sentence(a: str, b: str, difference: Estimate, higher_is_better: bool = True,
                     digits: int = 2, percent: bool = False, what: str = "",
                     points: bool = False) -> str:
    """The Spanish reading of ``difference`` = (A - B) under the :func:`verdict` rule.

    "A supera a B", "A queda por debajo de B" (by the metric's own direction: with
    ``higher_is_better=False`` a negative difference is the better one) or "A no se distingue de B"
    when the interval contains 0; then the difference, its interval and n (``points``: a
    difference of two fractions in percentage points).
    """
    sign = verdict(difference) * (1 if higher_is_better else -1)
    head = {1: f"{a} supera a {b}", -1: f"{a} queda por debajo de {b}",
            0: f"{a} no se distingue de {b}"}[sign]
    return (f"{head}{' en ' + what if what else ''} (diferencia "
            f"{interval(difference, digits, percent, signed=True, points=points)}, "
            f"IC {_level(difference)}, n = {difference.n})")


def position_sentence(name: str, estimate: Estimate, reference: float, reference_name: str,
                      digits: int = 2, percent: bool = False) -> str:
    """"name está por encima / por debajo de reference_name" or "no se distingue de" it."""
    head = {1: "está por encima de", -1: "está por debajo de",
            0: "no se distingue de"}[verdict(estimate, reference)]
    value = pct(reference, digits) if percent else num(reference, digits)
    return (f"{name} {head} {reference_name} ({value}): "
            f"{interval(estimate, digits, percent)}, IC {_level(estimate)}, n = {estimate.n}")


def _level(estimate: Estimate) -> str:
    return pct(estimate.level, 0)
