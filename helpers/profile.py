"""Run profiles: ``full`` on a CUDA GPU, ``fast`` elsewhere (CPU, CI).

A profile only sets sizes (subset sizes, epochs, the ResNet-18's width, IG steps, occlusion
stride, images shown, images behind each compared number); every notebook runs the same code
in both. ``XAI_PROFILE=fast|full`` overrides the automatic choice.
Lesson: ``00_entorno_y_datos.ipynb``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "XAI_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Sizes for one kind of run. ``None`` subset sizes mean the whole split."""

    name: str
    # CIFAR-10 (PyTorch track)
    cifar_train_size: int | None  # training split (validation included) of the ResNet-18
    cifar_test_size: int | None  # test images the explanation notebooks (02-08) use
    cifar_width: int  # channels of the ResNet-18's first stage (64 = the standard ResNet-18)
    cifar_epochs: int
    cifar_batch_size: int
    shortcut_train_size: int | None  # training split of the shortcut model (notebook 08)
    shortcut_epochs: int
    explain_batch_size: int  # images per forward in occlusion / IG chunks
    ig_steps: int
    occlusion_stride: int
    n_show: int  # images in example figures
    compare_images: int | None  # images behind every compared number (None: all eligible)
    # (1000 in full: the gradient explainers take a whole batch at once, and all ~9,500 correctly
    # classified CIFAR-10 test images would not fit in a GPU's memory)
    # Flowers102 (Keras track)
    flowers_train_size: int | None
    flowers_val_size: int | None
    flowers_test_size: int | None
    flowers_epochs: int  # maximum per variant (early stopping may end sooner)
    flowers_finetune_epochs: int  # maximum of the fine-tuning stage
    flowers_batch_size: int
    flowers_seeds_features: int  # training seeds of the variants trained on cached features
    flowers_seeds_images: int  # training seeds of the variants trained on images
    robustness_images: int | None  # validation images of the robustness study (None: all)

    @property
    def reduced(self) -> bool:
        """True when the run uses subsets, a narrower model or shortened training."""
        return self.name != "full"


FAST = Profile(
    name="fast",
    cifar_train_size=None, cifar_test_size=1000, cifar_width=16, cifar_epochs=6,
    cifar_batch_size=256, shortcut_train_size=15000, shortcut_epochs=3,
    explain_batch_size=32, ig_steps=32, occlusion_stride=4, n_show=4,
    compare_images=32, flowers_train_size=None, flowers_val_size=None, flowers_test_size=1020,
    flowers_epochs=12, flowers_finetune_epochs=5, flowers_batch_size=32,
    flowers_seeds_features=3, flowers_seeds_images=2, robustness_images=510,
)
FULL = Profile(
    name="full",
    cifar_train_size=None, cifar_test_size=None, cifar_width=64, cifar_epochs=30,
    cifar_batch_size=256, shortcut_train_size=None, shortcut_epochs=30,
    explain_batch_size=256, ig_steps=64, occlusion_stride=2, n_show=8,
    compare_images=1000, flowers_train_size=None, flowers_val_size=None, flowers_test_size=None,
    flowers_epochs=30, flowers_finetune_epochs=10, flowers_batch_size=64,
    flowers_seeds_features=3, flowers_seeds_images=3, robustness_images=None,
)
PROFILES = {p.name: p for p in (FAST, FULL)}


def cuda_gpu_present() -> bool:
    """Whether an NVIDIA GPU is visible, checked without importing a framework."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return True
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def get_profile(name: str | None = None) -> Profile:
    """The profile named by ``name``, else by ``$XAI_PROFILE``, else ``full`` iff a GPU is seen."""
    name = name or os.environ.get(ENV_VAR) or ("full" if cuda_gpu_present() else "fast")
    try:
        return PROFILES[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown profile {name!r} (from ${ENV_VAR}?); "
                         f"choose one of {sorted(PROFILES)}") from None
