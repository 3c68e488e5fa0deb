"""Attribution rules shared by the PyTorch and Keras explainers (numpy only).

Lessons: ``06_integrated_gradients.ipynb`` (quadrature, path integral, baselines) and
``14_grad_cam_e_integrated_gradients.ipynb`` (the Keras twin). Each framework computes gradients;
everything else about a method's definition lives here once:

* :func:`resolve_targets`: what ``target=`` may be and the messages when it is wrong;
* :func:`check_baseline`: the reference images both tracks accept;
* :func:`quadrature` and :func:`path_integral`: Integrated Gradients' integral
  ``sum_s w_s grad f_t(x' + a_s (x - x'))``;
* :func:`unknown_name_message`: "unknown layer ..., did you mean ...?".

``"gausslegendre"`` (Captum's default) is exact for polynomials of degree < 2 * steps;
``"trapezoid"`` uses ``steps`` equally spaced points from 0 to 1 with weights ``1/(steps-1)``
halved at both ends. Captum's ``"riemann_trapezoid"`` uses the same points but weights
``1/steps``, so its attributions are ``(steps-1)/steps`` of ours. ``"riemann_left"``,
``"riemann_right"`` and ``"riemann_middle"`` are Captum's Riemann sums, with the same results.
"""

from __future__ import annotations

import difflib
import numbers
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

# What ``baseline=`` may name; an array (already in the model's input space) is accepted too.
BASELINES = ("black", "gray", "blur", "mean", "noise")


def resolve_targets(target: Any, n: int, k: int) -> np.ndarray | None:
    """Class index per image as int64 [n], or None for "the predicted class".

    ``target``: None, an int (the same class for all images) or a sequence / 1-D integer array
    with one class per image (a framework tensor is converted by its adapter first). Raises
    ValueError for bools, non-integers, a wrong count or a class outside ``0..k-1``.
    """
    if target is None:
        return None
    if isinstance(target, bool | np.bool_):
        raise ValueError("target must be an int class index, not a bool")
    if isinstance(target, numbers.Integral):
        t = np.full(n, int(target), dtype=object)
    else:
        t = _as_index_array(target)
        if t.ndim == 0:
            t = np.full(n, t.item(), dtype=object)
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(f"target must have one class per image: expected {n}, "
                         f"got shape {tuple(t.shape)}")
    bad = sorted({int(v) for v in t if not 0 <= int(v) < k})
    if bad:
        raise ValueError(f"target out of range: the model has {k} outputs (0..{k - 1}), "
                         f"got {bad}")
    return t.astype(np.int64)


def _as_index_array(target: Any) -> np.ndarray:
    message = f"target must be None, an int or a sequence of ints, got {target!r}"
    if isinstance(target, str | bytes):
        raise ValueError(message)
    try:
        t = np.asarray(target)
    except (TypeError, ValueError) as err:
        raise ValueError(message) from err
    if t.dtype.kind == "b":
        raise ValueError("target must hold int class indices, not bools")
    if t.dtype.kind not in "iu":
        raise ValueError(f"target must hold integers, got {t.dtype}" if t.dtype.kind in "fc"
                         else message)
    return t


def check_baseline(baseline: Any) -> str | None:
    """The baseline's name (None means ``"black"``), or None when it is an array-like.

    Raises ValueError for an unknown name; the framework adapters build the image.
    """
    if baseline is None:
        return "black"
    if isinstance(baseline, str):
        if baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {', '.join(map(repr, BASELINES))} or an "
                             f"array broadcastable to the images, got {baseline!r}")
        return baseline
    return None


QUADRATURES = ("gausslegendre", "trapezoid", "riemann_left", "riemann_right", "riemann_middle")


def quadrature(method: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``a_s`` in [0, 1] and weights ``w_s`` (summing to 1) of the rule ``method``.

    The Riemann sums of the IG paper (Sundararajan et al., 2017, right sums) take ``steps``
    equal weights ``1/steps`` at the left ends ``k/steps``, right ends ``(k+1)/steps`` or
    midpoints ``(k+1/2)/steps`` of the ``steps`` sub-intervals (Captum's names).
    """
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
        raise ValueError(f"steps must be an int, got {steps!r}")
    if method == "gausslegendre" and steps >= 1:
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (nodes + 1), 0.5 * weights
    if method == "trapezoid" and steps >= 2:
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
        return np.linspace(0.0, 1.0, steps), weights
    offsets = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}
    if method in offsets and steps >= 1:
        return (np.arange(steps) + offsets[method]) / steps, np.full(steps, 1.0 / steps)
    raise ValueError(f"method must be one of {', '.join(QUADRATURES)} (steps >= 1; >= 2 for "
                     f"'trapezoid'), got {method!r} with steps={steps}")


def path_chunks(n_images: int, steps: int, batch_size: int
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(image index, step index)`` of the n_images x steps path points, ``batch_size`` at a time.

    Points are ordered image by image, so each chunk covers a run of consecutive images.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    total = n_images * steps
    for start in range(0, total, batch_size):
        idx = np.arange(start, min(start + batch_size, total))
        yield idx // steps, idx % steps


def path_integral(gradient: Callable[[Any, Any], Any], x: Any, ref: Any, targets: Any,
                  alphas: Any, weights: Any, batch_size: int, total: Any) -> Any:
    """``total[n] += sum_s w_s * gradient(ref_n + a_s (x_n - ref_n), t_n)`` for every image n.

    Framework-neutral: ``x``, ``ref``, ``targets``, ``alphas``, ``weights`` and ``total`` (zeros
    shaped like ``x``) are arrays of one library (numpy, torch) that accept numpy index arrays;
    ``gradient(points, targets)`` returns ``d f_t / d points`` for a chunk. The N x steps points
    are evaluated in chunks of ``batch_size``. Returns ``total``.
    """
    for img, step in path_chunks(len(x), len(alphas), batch_size):
        a = alphas[step][:, None, None, None]
        points = ref[img] + a * (x[img] - ref[img])
        grads = gradient(points, targets[img]) * weights[step][:, None, None, None]
        for i in np.unique(img):
            total[int(i)] += grads[img == i].sum(0)
    return total


def unknown_name_message(kind: str, wrong: object, names: Sequence[str],
                         candidates: Sequence[str] | None = None, shown: int = 12,
                         note: str = "") -> str:
    """``unknown <kind> 'x'. Did you mean ...? Valid names: ...`` for a bad layer name.

    ``names``: every valid name (close matches are looked for among them); ``candidates``: the
    ones worth listing (default: all), of which the last ``shown`` are printed, followed by
    ``note`` (what the list leaves out, say).
    """
    close = difflib.get_close_matches(str(wrong), list(names), n=3)
    listed = list(names if candidates is None else candidates)
    text = f"unknown {kind} {wrong!r}. "
    if close:
        text += f"Did you mean {', '.join(map(repr, close))}? "
    if len(listed) > shown:
        text += f"Valid names (last {shown} of {len(listed)}): {', '.join(listed[-shown:])}"
    else:
        text += f"Valid names: {', '.join(listed)}"
    return text + (f" {note}" if note else "")
