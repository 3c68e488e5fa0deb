"""Batched attribution methods for PyTorch image classifiers (one small module per method).

All explainers take ``model`` and a batch ``x`` [N,C,H,W] in the model's input space, explain the
target's logit (occlusion: its softmax probability), return float32 CPU tensors and leave the
model (train/eval mode, ``requires_grad``), its hooks and ``x`` as they were. The shared plumbing
(validation, frozen model, hooks, targets) is :mod:`~helpers.torch.explain.base`; the rules both
tracks share live in :mod:`helpers.core.attribution`. A new method gets its own
``_<method>.py`` over ``base`` and is exported here. Lessons: ``02_mapas_de_saliencia.ipynb``
to ``07_comparativa.ipynb``.
"""

from helpers.torch.explain._grad_cam import grad_cam, layer_activation_gradient
from helpers.torch.explain._guided_backprop import guided_backprop
from helpers.torch.explain._guided_grad_cam import guided_grad_cam
from helpers.torch.explain._integrated_gradients import integrated_gradients
from helpers.torch.explain._occlusion import occlusion, window_starts
from helpers.torch.explain._references import gaussian_blur, make_reference
from helpers.torch.explain._saliency import saliency
from helpers.torch.explain._smoothgrad import smoothgrad

__all__ = [
    "gaussian_blur",
    "grad_cam",
    "guided_backprop",
    "guided_grad_cam",
    "integrated_gradients",
    "layer_activation_gradient",
    "make_reference",
    "occlusion",
    "saliency",
    "smoothgrad",
    "window_starts",
]
