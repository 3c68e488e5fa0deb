"""Shared plumbing of the explainers: validation, targets, frozen models, hooks, input space.

Every public explainer runs inside :func:`explaining`, which validates ``x``, warns once about
untrained models, freezes the model (eval mode, no parameter gradients) and restores it after.
Lesson: ``02_mapas_de_saliencia.ipynb`` (why the model must not change while it is explained).
"""

from __future__ import annotations

import contextvars
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from helpers.core.attribution import resolve_targets, unknown_name_message
from helpers.core.validate import positive_int, require_finite
from helpers.torch.normalization import Normalization, identity

Target = int | Sequence[int] | Tensor | None
Layer = nn.Module | str

# True while an explainer runs: nested calls (SmoothGrad, Guided Grad-CAM) do not warn again.
_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("torch_explain_active",
                                                              default=False)


@dataclass(frozen=True)
class Prepared:
    """What an explainer works on: a private copy of ``x`` on the model's device."""

    x: Tensor
    normalization: Normalization


def check_input(x: Tensor) -> None:
    """Raise ValueError unless ``x`` is a finite 4-D floating-point tensor [N,C,H,W], N >= 1."""
    if not isinstance(x, Tensor):
        raise ValueError(f"x must be a torch.Tensor [N,C,H,W], got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"x must be a 4-D batch [N,C,H,W], got shape {tuple(x.shape)}; "
                         "use x[None] for a single image")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor, got {x.dtype}")
    if x.shape[0] == 0:
        raise ValueError("x is an empty batch")
    require_finite("x", int((~torch.isfinite(x)).sum()), x.numel())


def model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of the model's first parameter (CPU float32 if none)."""
    param = next(model.parameters(), None)
    if param is None or not param.is_floating_point():
        return torch.device("cpu"), torch.float32
    return param.device, param.dtype


def resolve_normalization(model: nn.Module, normalization: Normalization | None,
                          channels: int) -> Normalization:
    """Explicit ``normalization``, else ``model.normalization``, else raw pixels in [0, 1]."""
    norm = normalization if normalization is not None else getattr(model, "normalization", None)
    norm = norm if norm is not None else identity(channels)
    if len(norm.mean) != channels:
        raise ValueError(f"normalization has {len(norm.mean)} channels, x has {channels}")
    return norm


def warn_if_untrained(model: nn.Module) -> None:
    """UserWarning when ``model.xai_trained is False``."""
    if getattr(model, "xai_trained", True) is False:
        warnings.warn("el modelo no está entrenado (model.xai_trained es False): sus "
                      "explicaciones dicen poco más que la arquitectura", UserWarning, stacklevel=5)


@contextmanager
def frozen(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode and ``requires_grad=False`` on every parameter; restores both exactly."""
    modes = [(module, module.training) for module in model.modules()]
    flags = [(param, param.requires_grad) for param in model.parameters()]
    try:
        model.eval()
        for param, _ in flags:
            param.requires_grad_(False)
        yield model
    finally:
        for module, training in modes:
            module.training = training
        for param, flag in flags:
            param.requires_grad_(flag)


@contextmanager
def hooks() -> Iterator[list[RemovableHandle]]:
    """A list to append hook handles to; every handle is removed on exit, also on errors."""
    handles: list[RemovableHandle] = []
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def explaining(model: nn.Module, x: Tensor,
               normalization: Normalization | None = None) -> Iterator[Prepared]:
    """Validate ``x``, warn if untrained (outermost call only), freeze the model, copy ``x``.

    The copy is detached and lives on the model's device with the model's dtype, so the
    caller's tensor is never modified and never receives ``.grad``.
    """
    check_input(x)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    norm = resolve_normalization(model, normalization, x.shape[1])
    outermost = not _ACTIVE.get()
    if outermost:
        warn_if_untrained(model)
    token = _ACTIVE.set(True)
    try:
        device, dtype = model_device_dtype(model)
        x = x.detach().to(device=device, dtype=dtype, copy=True)
        with frozen(model):
            yield Prepared(x, norm)
    finally:
        _ACTIVE.reset(token)


def logits_of(model: nn.Module, x: Tensor) -> Tensor:
    """``model(x)``, checked to be a [N, K] batch of scores."""
    out = model(x)
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
        shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(f"the model must return logits [N, K] for N={x.shape[0]}, got {shape}")
    return out


def resolve_target(target: Target, logits: Tensor) -> Tensor:
    """Class index per image as a long tensor [N] on ``logits.device``.

    ``None`` = predicted class (argmax of the logits), an int = the same class for all images,
    a sequence or 1-D integer tensor = one class per image (rules:
    :func:`helpers.core.attribution.resolve_targets`).
    """
    if isinstance(target, Tensor):
        target = target.detach().cpu().numpy()
    t = resolve_targets(target, *logits.shape)
    if t is None:
        return logits.detach().argmax(dim=1)
    return torch.from_numpy(t).to(logits.device)


def pick(scores: Tensor, t: Tensor) -> Tensor:
    """``scores[n, t[n]]`` for every n."""
    return scores.gather(1, t[:, None])[:, 0]


def resolve_layer(model: nn.Module, layer: Layer) -> nn.Module:
    """A submodule given as a module inside ``model`` or as a dotted name like ``"layer4.1"``."""
    modules = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        if not any(layer is m for m in modules.values()):
            raise ValueError(f"layer {type(layer).__name__} is not a submodule of the model")
        return layer
    if isinstance(layer, str) and layer in modules:
        return modules[layer]
    names = [name for name in modules if name]
    shallow = [name for name in names if name.count(".") <= 1]
    deep = next((name for name in reversed(names) if name.count(".") > 1), None)
    note = (f"(and {len(names) - len(shallow)} deeper ones such as {deep!r})" if deep else "")
    raise ValueError(unknown_name_message("layer", layer, names, shallow, len(shallow), note))


def to_output(t: Tensor) -> Tensor:
    """A float32 CPU tensor that is a normal (non-inference) tensor without a graph."""
    return t.detach().to(device="cpu", dtype=torch.float32).clone()


def chunks(total: int, size: int, device: torch.device) -> Iterator[Tensor]:
    """Index ranges ``arange(start, stop)`` that split ``range(total)`` in pieces of ``size``."""
    size = positive_int("batch_size", size)
    for start in range(0, total, size):
        yield torch.arange(start, min(start + size, total), device=device)
