"""The first cell of every notebook: profile, device, seeds, data sources, one clear banner.

Lesson: ``00_entorno_y_datos.ipynb``.
"""

from __future__ import annotations

import os
import platform
import random
import sys
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from helpers.data import describe_sources
from helpers.profile import Profile, get_profile

Framework = Literal["torch", "tensorflow"]


@dataclass(frozen=True)
class Session:
    """What a notebook needs to know about its run."""

    profile: Profile
    framework: Framework
    device: Any  # torch.device for torch, a device name for TensorFlow
    seed: int


def setup(framework: Framework, seed: int = 0, profile: str | None = None,
          quiet: bool = False) -> Session:
    """Pick the profile and device, seed every generator, and print the run banner."""
    prof = get_profile(profile)
    random.seed(seed)
    np.random.seed(seed)
    if framework == "torch":
        device = _setup_torch(seed)
    elif framework == "tensorflow":
        device = _setup_tensorflow(seed)
    else:
        raise ValueError(f"framework must be 'torch' or 'tensorflow', got {framework!r}")
    session = Session(prof, framework, device, seed)
    if not quiet:
        print(banner(session))
    return session


def banner(session: Session) -> str:
    """The run description every notebook prints first (in Spanish, like the notebooks)."""
    prof = session.profile
    lines = [f"Perfil: {prof.name}  |  dispositivo: {session.device}  |  semilla: {session.seed}",
             f"Python {platform.python_version()}, {_framework_versions(session.framework)}"]
    lines += [f"Datos {name}: {where}" for name, where in describe_sources().items()]
    if prof.reduced:
        lines.append("AVISO: ejecución reducida (perfil 'fast': modelos más pequeños, menos épocas "
                     "y subconjuntos de prueba). "
                     "Los números de este cuaderno son de esa ejecución reducida; con GPU "
                     "o XAI_PROFILE=full se ejecuta la versión completa.")
    return "\n".join(lines)


def _setup_torch(seed: int):
    import torch

    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick kernels
        return torch.device("cuda")
    return torch.device("cpu")


def _setup_tensorflow(seed: int) -> str:
    tf = import_tensorflow_quietly()
    import keras

    keras.utils.set_random_seed(seed)
    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    return "GPU" if gpus else "CPU"


def import_tensorflow_quietly():
    """Import TensorFlow with its C++ start-up lines (absl, oneDNN) kept out of the output.

    ``TF_CPP_MIN_LOG_LEVEL`` does not hide them in TF 2.21, so the process' stderr is sent to
    /dev/null while TF loads and runs its first op. Python exceptions still propagate.
    """
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf

            tf.constant(1.0) + 1.0  # first op: triggers the remaining one-time log lines
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return tf


def _framework_versions(framework: Framework) -> str:
    if framework == "torch":
        import torch
        import torchvision

        return f"torch {torch.__version__}, torchvision {torchvision.__version__}"
    import keras
    import tensorflow as tf

    return f"tensorflow {tf.__version__}, keras {keras.__version__}"
