"""Helper package of the CNN interpretability and data augmentation notebooks.

``import helpers`` is light: it imports neither PyTorch nor TensorFlow (importing TensorFlow
before torchvision crashes some installs), it only quiets TensorFlow's and Albumentations'
start-up noise for whatever is imported later. Each framework lives in its own modules
(``torch_*`` and ``keras_*``), imported on demand.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TF's C++ info/warning lines
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no network check on import

__version__ = "0.1.0"
