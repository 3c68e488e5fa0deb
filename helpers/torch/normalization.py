"""Per-channel input normalization, shared by data loaders, models and explainers.

A model's *input space* is ``(pixel - mean) / std`` with pixels in [0, 1]. Explainers need to
know it to build pixel-meaningful references (a black IG baseline, a gray occlusion patch).
Lesson: ``01_cifar10_modelo.ipynb``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Normalization:
    """Channel mean and std of the pixels in [0, 1]."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std):
            raise ValueError(f"mean and std differ in length: {self.mean} vs {self.std}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be positive, got {self.std}")

    def _stats(self, like):
        shape = (1, len(self.mean), 1, 1)
        mean = like.new_tensor(self.mean).reshape(shape)
        std = like.new_tensor(self.std).reshape(shape)
        return mean, std

    def normalize(self, pixels):
        """Map a torch batch [N,C,H,W] of pixels in [0, 1] to the input space."""
        mean, std = self._stats(pixels)
        return (pixels - mean) / std

    def denormalize(self, x):
        """Map a torch batch [N,C,H,W] from the input space back to pixels in [0, 1]."""
        mean, std = self._stats(x)
        return x * std + mean

    def constant(self, like, value: float | Sequence[float]):
        """A batch shaped like ``like`` filled with the pixel ``value`` (e.g. 0 = black)."""
        values = [float(value)] * len(self.mean) if isinstance(value, int | float) else value
        pixels = like.new_tensor(list(values)).reshape(1, -1, 1, 1).expand_as(like)
        return self.normalize(pixels)


CIFAR10 = Normalization((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
IMAGENET = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def identity(channels: int) -> Normalization:
    """The input space of a model fed raw pixels in [0, 1]."""
    return Normalization((0.0,) * channels, (1.0,) * channels)
