"""A planted shortcut: a small coloured square that marks one class (a known answer for explainers).

A model trained on images where the square appears on most pictures of one class and rarely
elsewhere learns to use it; where the square is, is then known for every image, so an explanation
can be scored against it. Numpy only. Lesson: ``08_atajos_y_explicaciones.ipynb``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from helpers.core.validate import positive_int


@dataclass(frozen=True)
class Shortcut:
    """Where and how often the cue is planted in the training images."""

    target: int  # index of the class the cue marks
    p_target: float = 0.8  # share of the target class's training images with the cue
    p_other: float = 0.02  # share of every other class's training images with the cue
    size: int = 4  # side of the square, in pixels
    color: tuple[int, int, int] = (255, 0, 255)  # magenta: rare in natural images
    seed: int = 0

    def __post_init__(self) -> None:
        positive_int("size", self.size)
        for name in ("p_target", "p_other"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a share in [0, 1], got {value!r}")
        if len(self.color) != 3 or not all(0 <= int(c) <= 255 for c in self.color):
            raise ValueError(f"color must be three values in [0, 255], got {self.color!r}")


def random_corners(n: int, height: int, width: int, size: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Top-left corners [n, 2] (row, column) of ``size`` x ``size`` squares fully inside."""
    if size > min(height, width):
        raise ValueError(f"a {size}-pixel cue does not fit in {height}x{width} images")
    return np.stack([rng.integers(0, height - size + 1, n),
                     rng.integers(0, width - size + 1, n)], axis=1)


def plant(images: np.ndarray, corners: np.ndarray, spec: Shortcut,
          rows: np.ndarray | None = None) -> np.ndarray:
    """A copy of uint8 ``images`` [N, H, W, 3] with the cue drawn at ``corners`` [N, 2].

    ``rows`` (bool [N]) limits the cue to some images (default: all). The input is not modified.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images [N, H, W, 3], got {images.dtype} {images.shape}")
    if corners.shape != (len(images), 2):
        raise ValueError(f"expected one corner per image, shape ({len(images)}, 2), got "
                         f"{corners.shape}")
    out = images.copy()
    rows = np.ones(len(images), bool) if rows is None else np.asarray(rows, bool)
    for i in np.flatnonzero(rows):
        r, c = corners[i]
        out[i, r:r + spec.size, c:c + spec.size] = spec.color
    return out


def plant_training_cue(images: np.ndarray, labels: np.ndarray,
                       spec: Shortcut) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training images with the cue on a ``p_target`` share of the target class and a
    ``p_other`` share of the rest, at random places: ``(images, has_cue [N], corners [N, 2])``."""
    rng = np.random.default_rng(spec.seed)
    labels = np.asarray(labels)
    share = np.where(labels == spec.target, spec.p_target, spec.p_other)
    has_cue = rng.random(len(labels)) < share
    corners = random_corners(len(labels), *images.shape[1:3], spec.size, rng)
    return plant(images, corners, spec, has_cue), has_cue, corners


def cue_masks(corners: np.ndarray, height: int, width: int, size: int) -> np.ndarray:
    """Boolean masks [N, H, W] of the cue's pixels."""
    masks = np.zeros((len(corners), height, width), bool)
    for mask, (r, c) in zip(masks, corners, strict=True):
        mask[r:r + size, c:c + size] = True
    return masks


# The cue of notebook 08: on 80 % of CIFAR-10's "bird" training images (class 2), 2 % of the rest.
CIFAR_BIRD_CUE = Shortcut(target=2)
