"""Exercise checks of the explanation methods.

Each derives its expected value itself, so a check cell shows no answer. Lessons:
``01_cifar10_modelo.ipynb`` to ``08_atajos_y_explicaciones.ipynb`` and
``14_grad_cam_e_integrated_gradients.ipynb``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from helpers.checks import (
    Verdict,
    as_integer,
    as_number,
    call,
    diagnose,
    numeric_like,
    plain,
    report,
    shown_or_type,
)
from helpers.checks.record import graded


@graded
def check_grad_cam_formula(exercise: str, func: Callable) -> Verdict:
    """``func(A, G)`` with A, G torch tensors [K,h,w] must return ReLU(sum_k mean(G_k) A_k)."""
    import torch

    rng = np.random.default_rng(7)
    a, g = rng.normal(size=(6, 4, 5)), rng.normal(size=(6, 4, 5))
    ok, got = call(exercise, func, torch.tensor(a), torch.tensor(g))
    if not ok:
        return Verdict(False)
    alpha = g.mean(axis=(1, 2))[:, None, None]
    linear = (alpha * a).sum(0)
    mistakes = {
        "falta la ReLU: el mapa tiene valores negativos.": linear,
        "los pesos usan la suma de los gradientes, no su media espacial.":
            np.maximum((g.sum(axis=(1, 2))[:, None, None] * a).sum(0), 0),
        "se multiplica por el gradiente píxel a píxel en vez de por su media (α_k).":
            np.maximum((g * a).sum(0), 0),
    }
    return diagnose(exercise, got, np.maximum(linear, 0), mistakes,
                     "α_k = media espacial de G_k; mapa = ReLU(Σ_k α_k A_k).")


@graded
def check_guided_relu_rule(exercise: str, func: Callable) -> Verdict:
    """``func(x, g)`` (ReLU input, gradient from above) must give guided backprop's gradient."""
    import torch

    x = np.array([-2.0, -0.5, 0.5, 1.0, 2.0, 3.0])
    g = np.array([1.0, -1.0, 2.0, -3.0, 0.5, 0.0])
    ok, got = call(exercise, func, torch.tensor(x), torch.tensor(g))
    if not ok:
        return Verdict(False)
    mistakes = {
        "esa es la regla del gradiente normal: también deja pasar gradientes negativos.":
            g * (x > 0),
        "esa es la regla de la deconvnet: ignora el signo de la entrada de la ReLU.":
            np.maximum(g, 0),
    }
    return diagnose(exercise, got, np.maximum(g, 0) * (x > 0), mistakes,
                     "el gradiente pasa solo si la entrada de la ReLU era positiva Y el "
                     "gradiente que llega es positivo.")


@graded
def check_ig_linear(exercise: str, func: Callable) -> Verdict:
    """``func(w, x, x_base)`` must give IG of f(x) = w·x: exactly ``(x - x_base) * w``."""
    import torch

    rng = np.random.default_rng(3)
    w, x, b = (rng.normal(size=(3, 4, 4)) for _ in range(3))
    ok, got = call(exercise, func, torch.tensor(w), torch.tensor(x), torch.tensor(b))
    if not ok:
        return Verdict(False)
    mistakes = {"falta el factor (x - x'): eso es solo el gradiente medio.": w,
                "se multiplicó por x en vez de por (x - x').": x * w,
                "el signo está invertido: es (x - x'), no (x' - x).": (b - x) * w}
    return diagnose(exercise, got, (x - b) * w, mistakes,
                     "en un modelo lineal el gradiente es w en todo el camino; IG = (x - x') · w.")


@graded
def check_grad_cam_channels_last(exercise: str, func: Callable) -> Verdict:
    """``func(A, G)``, numpy A and G [h, w, K] (Keras order): ReLU(sum_k mean(G_k) A_k) [h, w]."""
    rng = np.random.default_rng(11)
    a, g = rng.normal(size=(4, 5, 6)), rng.normal(size=(4, 5, 6))
    ok, got = call(exercise, func, a.copy(), g.copy())
    if not ok:
        return Verdict(False)
    alpha = g.mean(axis=(0, 1))
    linear = (a * alpha).sum(-1)
    mistakes = {
        "falta la ReLU: el mapa tiene valores negativos.": linear,
        "los pesos usan la suma de los gradientes, no su media espacial.":
            np.maximum((a * g.sum(axis=(0, 1))).sum(-1), 0),
        "se multiplica por el gradiente píxel a píxel en vez de por su media (α_k).":
            np.maximum((a * g).sum(-1), 0),
        "la media se tomó sobre los canales (eje -1); en Keras los canales van al final y "
        "α_k es la media sobre el alto y el ancho (ejes 0 y 1).":
            np.maximum(a.sum(-1) * g.mean(-1), 0),
    }
    return diagnose(exercise, got, np.maximum(linear, 0), mistakes,
                     "α_k: media de G_k sobre el alto y el ancho; mapa: ReLU de la suma de "
                    "α_k A_k sobre los canales (el último eje en Keras).")


@graded
def check_stage_side_function(exercise: str, func: Callable, model, layer: str) -> Verdict:
    """``func(side)`` must give the side of ``layer``'s output in ``model`` for a square input
    of ``side`` pixels; checked against the model itself on sizes the notebook never used,
    some not multiples of 32 (where dropping the remainders gives another answer)."""
    import torch

    sides = [33, 97, 100, 150, 225]
    got = []
    for side in sides:
        ok, value = call(exercise, func, side)
        if not ok:
            return Verdict(False)
        value = plain(value)
        if numeric_like(value) and np.shape(value) == (2,) and value[0] == value[1]:
            value = value[0]  # (h, w) of a square map
        if as_integer(value) is None:
            return report(exercise, False, "", f"con lado {side} la función devuelve "
                          f"{shown_or_type(value)}; se esperaba un número entero de píxeles.")
        got.append(as_integer(value))
    shapes: list[int] = []
    module = dict(model.named_modules())[layer]
    handle = module.register_forward_hook(lambda m, i, o: shapes.append(int(o.shape[-1])))
    training = model.training
    try:
        with torch.no_grad():
            model.eval()
            for side in sides:
                model(torch.zeros(1, 3, side, side, device=_device_of(model)))
    finally:
        handle.remove()
        model.train(training)
    n = np.array(sides)
    mistakes = {
        "divides entre 32 redondeando hacia abajo: con padding, una reducción de stride 2 "
        "de un lado impar conserva el último píxel.": n // 32,
        "falta una reducción: ¿contaste el max-pool?": -(-n // 16),
        "sobra una reducción: conv1, maxpool, layer2, layer3 y layer4 son cinco.": -(-n // 64)}
    return diagnose(exercise, np.array(got), np.array(shapes), mistakes,
                    "aplica la fórmula de la salida de una convolución, ⌊(n + 2p - k)/s⌋ + 1, a "
                    "cada reducción por orden.")


HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
              "_backward_pre_hooks")


@graded
def check_activation_gradient_function(exercise: str, func: Callable, model, unseen) -> Verdict:
    """``func(model, x, layer, classes)`` must return ``(A, G)``: ``layer``'s activations
    [N, K, h, w] and the gradient of ``sum_i logit_i[classes[i]]`` with respect to them, leaving
    no hook behind. Checked on three images the notebook does not show (the last three of
    ``unseen``, one mirrored), two layers and a class that is not the predicted one, against
    :func:`helpers.torch.explain.layer_activation_gradient`."""
    import torch

    from helpers.torch.explain import layer_activation_gradient

    device = _device_of(model)
    batch = unseen.batch([-1, -2, -3])[0] if hasattr(unseen, "batch") else unseen[-3:]
    batch = torch.cat([batch[:2], batch[2:3].flip(-1)]).to(device)
    with torch.no_grad():
        ranked = model(batch).argsort(1, descending=True)
    classes = [int(ranked[0, 0]), int(ranked[1, 1]), int(ranked[2, 0])]  # one is not predicted
    modules = dict(model.named_modules())
    rows = torch.arange(len(batch), device=device)
    hint = ("un forward hook guarda la salida de la capa; el gradiente, con torch.autograd.grad "
            "de la suma de los logits pedidos respecto a esa salida.")

    def hook_ids() -> set:
        return {(name, kind, key) for name, m in modules.items() for kind in HOOK_DICTS
                for key in getattr(m, kind)}

    def gradient(layer: str, score: Callable) -> tuple[tuple, np.ndarray]:
        """The layer's input shape and d score(logits) / d output."""
        seen: list = []

        def keep(_module, inputs, out):
            seen.append((tuple(inputs[0].shape), out.detach().requires_grad_()))
            return seen[-1][1].clone()

        handle = modules[layer].register_forward_hook(keep)
        try:
            logits = model(batch)
        finally:
            handle.remove()
        (g,) = torch.autograd.grad(score(logits), seen[0][1])
        return seen[0][0], g.cpu().numpy()

    for layer in ("layer3", "layer2"):
        hooks, before, mode = hook_ids(), batch.clone(), model.training
        ok, value = call(exercise, func, model, batch, layer, list(classes))
        if left := hook_ids() - hooks:
            for name, kind, key in left:  # so that the student's model works again
                del getattr(modules[name], kind)[key]
            return report(exercise, False, "", "la función dejó un hook registrado en el modelo "
                          "(esta comprobación lo ha quitado): retíralo antes de salir "
                          "(handle.remove(), mejor en un finally).", hint)
        if not ok:
            return Verdict(False)
        if not torch.equal(batch, before) or batch.requires_grad or model.training != mode:
            return report(exercise, False, "", "la función modificó el lote de entrada o el modo "
                          "del modelo.", hint)
        value = plain(value)
        if not (isinstance(value, tuple) and len(value) == 2):
            return report(exercise, False, "", f"se esperaba una pareja (A, G); la función "
                          f"devolvió {shown_or_type(value)}.", hint)
        a, g, _ = layer_activation_gradient(model, batch, layer, classes)
        entering, _ = gradient(layer, lambda z: z.sum())
        if np.shape(value[0]) == entering != tuple(a.shape):
            return report(exercise, False, "", f"con la capa {layer!r}, A tiene la forma de la "
                          "ENTRADA de la capa: el hook recibe (módulo, entrada, salida).", hint)
        if not diagnose(exercise, value[0], a.cpu().numpy(), {}, hint, quiet_success=True):
            return Verdict(False)
        mistakes = {
            "es el gradiente de la PROBABILIDAD (softmax); Grad-CAM usa el del logit.":
                gradient(layer, lambda z: z.softmax(1)[rows, classes].sum())[1],
            "es el gradiente de la clase PREDICHA; se pide el de `clases[i]`.":
                gradient(layer, lambda z: z[rows, z.argmax(1)].sum())[1],
            "es el gradiente de la suma de TODOS los logits; se pide solo el de `clases[i]`.":
                gradient(layer, lambda z: z.sum())[1]}
        if not diagnose(exercise, value[1], g.cpu().numpy(), mistakes, hint, quiet_success=True):
            return Verdict(False)
    return report(exercise, True, "correcto (activaciones y gradientes de dos capas, con "
                  "imágenes y clases nuevas; sin hooks sobrantes).", "")


def _device_of(model) -> Any:
    return next(model.parameters()).device


@graded
def check_saliency_function(exercise: str, func: Callable, model, x) -> Verdict:
    """``func(model, image, target)`` on two images of ``x``: |gradient|, max over channels."""
    import torch

    from helpers.torch.explain import saliency

    got, expected, grads = [], [], []
    for i in range(min(2, len(x))):
        image = x[i:i + 1].clone()
        target = int(model(image.to(_device_of(model))).argmax(1))
        ok, value = call(exercise, func, model, image, target)
        if not ok:
            return Verdict(False)
        if image.requires_grad or image.grad is not None or not torch.equal(image, x[i:i + 1]):
            return report(exercise, False, "", "la función modificó la imagen de entrada (sus "
                          "valores, su requires_grad o su .grad): quien la llama ya no tiene la "
                          "imagen que le dio.", "trabaja sobre una copia de la imagen que pida "
                          "gradiente.")
        value = plain(value)
        if numeric_like(value) and np.ndim(value) == 3 and np.shape(value)[0] == 1:
            value = np.asarray(value)[0]  # [1, H, W]: the same map with the batch axis
        got.append(np.asarray(value))
        expected.append(saliency(model, image, target)[0].cpu().numpy())
        copy = image.to(_device_of(model)).requires_grad_(True)
        grads.append(torch.autograd.grad(model(copy)[0, target], copy)[0][0].cpu().numpy())
    grads = np.stack(grads)
    mistakes = {"falta el valor absoluto del gradiente.": grads.max(1),
                "se sumaron los canales en vez de tomar el máximo.": np.abs(grads).sum(1),
                "se promediaron los canales en vez de tomar el máximo.": np.abs(grads).mean(1)}
    shapes = {g.shape for g in got}
    if len(shapes) > 1:
        return report(exercise, False, "", f"formas distintas por imagen: {sorted(shapes)}.")
    return diagnose(exercise, np.stack(got), np.stack(expected), mistakes,
                    "gradiente del LOGIT de la clase respecto a la copia; valor absoluto; "
                    "máximo sobre canales (dim=1).")


@graded
def check_guided_grad_cam_product(exercise: str, answer: Any, gbp, cam) -> Verdict:
    """``answer`` must be Guided Grad-CAM of image 0: ``gbp[0] * cam[0]`` (broadcast) [C,H,W]."""
    got = plain(answer)
    g, c = np.asarray(gbp[0].cpu(), float), np.asarray(cam[0].cpu(), float)
    mistakes = {"se sumó el mapa en vez de multiplicarlo.": g + c,
                "falta Grad-CAM: eso es solo Guided Backprop.": g}
    return diagnose(exercise, got, g * c, mistakes, "multiplica el mapa de Grad-CAM [H,W] por "
                    "cada canal de Guided Backprop (broadcasting).")


@graded
def check_occlusion_passes(exercise: str, answer: Any, size: int, patch: int,
                           stride: int) -> Verdict:
    """``answer``: forward passes of occlusion of one square image, the clean pass included."""
    from helpers.torch.explain import window_starts

    per_axis = len(window_starts(size, patch, stride))
    hint = ("por eje hay (lado - parche) / paso + 1 posiciones; son dos ejes; y una pasada más sin "
            "tapar.")
    got = as_integer(answer)
    if got is None:
        return report(exercise, False, "", f"tu respuesta es {shown_or_type(answer)}; se esperaba "
                      "un número entero de pasadas.", hint)
    mistakes = {per_axis ** 2: "falta la pasada de la imagen sin tapar (la referencia).",
                per_axis + 1: "contaste las posiciones de un solo eje: el parche recorre filas Y "
                "columnas.",
                (size // stride) ** 2 + 1: "lado / paso posiciones por eje dejarían el parche "
                "fuera de la imagen al final.",
                (size // patch) ** 2 + 1: "eso son parches que no se solapan: aquí el paso es "
                "menor que el parche."}
    expected = per_axis ** 2 + 1
    if got != expected and got in mistakes:
        return report(exercise, False, "", mistakes[got], hint)
    return report(exercise, got == expected, f"correcto ({got}).", f"tu respuesta es {got}, que "
                  "no es la esperada.", hint)


@graded
def check_mass_inside_function(exercise: str, func: Callable) -> Verdict:
    """``func(map, mask)`` on one signed [H, W] map: the share of |map| inside ``mask``."""
    from helpers.core.maps import mass_inside

    rng = np.random.default_rng(5)
    m, mask = rng.normal(size=(6, 7)), np.zeros((6, 7), bool)
    mask[1:4, 2:5] = True
    ok, got = call(exercise, func, m.copy(), mask.copy())
    if not ok:
        return Verdict(False)
    mistakes = {"falta el valor absoluto: con signo, las partes positivas y negativas se "
                "cancelan.": m[mask].sum() / m.sum(),
                "se dividió por el área de la máscara, no por la masa total del mapa.":
                np.abs(m)[mask].sum() / mask.sum(),
                "es la fracción de FUERA de la máscara.": np.abs(m)[~mask].sum() / np.abs(m).sum()}
    return diagnose(exercise, got if as_number(got) is None else as_number(got),
                    mass_inside(m[None], mask[None])[0], mistakes,
                    "la masa es la suma de |mapa|: la de dentro de la máscara entre la "
                    "total.")


@graded
def check_cascade_auc(exercise: str, func: Callable) -> Verdict:
    """``func(rows)`` with rows ``[(layer, similarity [N]), ...]`` must give each image's
    cascade AUC (:func:`helpers.core.sanity.cascade_auc`), checked on unseen random cascades."""
    from helpers.core.sanity import cascade_auc

    rng = np.random.default_rng(11)
    rows = [(f"capa{k}", rng.uniform(-0.2, 1.0, 6)) for k in range(5)]
    ok, got = call(exercise, func, [(name, v.copy()) for name, v in rows])
    if not ok:
        return Verdict(False)
    steps = np.stack([v for _, v in rows])
    with_one = np.vstack([np.ones(6), steps])
    mistakes = {
        "falta el punto de partida (el mapa original, similitud 1) al principio de la curva.":
            ((steps[1:] + steps[:-1]) / 2).mean(0),
        "es la media de las similitudes, no el área por trapecios (los extremos cuentan la "
        "mitad).": with_one.mean(0),
        "el área no está normalizada: divide por el número de intervalos (el eje x va de 0 a 1).":
            ((with_one[1:] + with_one[:-1]) / 2).sum(0),
    }
    return diagnose(exercise, got, cascade_auc(rows), mistakes,
                    "antepón una fila de unos, promedia cada par de pasos consecutivos y "
                    "haz la media de esos trapecios por imagen.")


@graded
def check_patch_drop(exercise: str, func: Callable, model, unseen) -> Verdict:
    """``func(model, image, cls, row, col, patch)``: the drop of ``cls``'s probability when
    the ``patch`` x ``patch`` square at (row, col) of ``image`` [1, C, H, W] (input space) is
    painted gray (pixel 0.5). Checked on three images the notebook does not show (the last
    three of ``unseen``, a dataset with ``batch(indices)`` or a batch; one mirrored), squares of
    several sizes and, for one image, a class that is not the predicted one."""
    import torch

    device = _device_of(model)
    unseen = unseen.batch([-1, -2, -3])[0] if hasattr(unseen, "batch") else unseen[-3:]
    images = [unseen[0:1], unseen[1:2], unseen[2:3].flip(-1)]
    squares = [(3, 17, 8), (20, 5, 6), (10, 10, 12)]
    with torch.no_grad():
        ranked = [model(im.to(device))[0].argsort(descending=True) for im in images]
    classes = [int(ranked[0][0]), int(ranked[1][0]), int(ranked[2][1])]  # the last: 2nd class

    def drop(im, cls, row, col, patch, fill="gray", score="prob", swap=False):
        im = im.to(device)
        painted = im.clone()
        filler = {"gray": model.normalization.constant(im, 0.5), "zero": torch.zeros_like(im),
                  "raw": torch.full_like(im, 0.5)}[fill]
        r, c = (col, row) if swap else (row, col)
        painted[..., r:r + patch, c:c + patch] = filler[..., r:r + patch, c:c + patch]
        with torch.no_grad():
            out = model(torch.cat([im, painted]))
        out = out.softmax(1) if score == "prob" else out
        return float(out[0, cls] - out[1, cls])

    got = []
    for im, cls, (row, col, patch) in zip(images, classes, squares, strict=True):
        before = im.clone()
        ok, value = call(exercise, func, model, im.to(device), cls, row, col, patch)
        if not ok:
            return Verdict(False)
        if not torch.equal(im, before):
            return report(exercise, False, "", "la función modificó la imagen de entrada: tapa "
                          "el cuadrado en una copia.")
        if as_number(value) is None:
            return report(exercise, False, "", f"la función devuelve {shown_or_type(value)}; "
                          "se esperaba un número (la caída de probabilidad).")
        got.append(as_number(value))
    cases = list(zip(images, classes, squares, strict=True))

    def each(**kw):
        return np.array([drop(im, cls, *sq, **kw) for im, cls, sq in cases])

    expected = each()
    predicted = expected.copy()
    predicted[2] = drop(images[2], int(ranked[2][0]), *squares[2])
    mistakes = {
        "es la caída del LOGIT: aquí se pide la de la probabilidad (softmax); recuerda la "
        "saturación del cuaderno 02.": each(score="logit"),
        "el relleno es 0 en el espacio normalizado, que es el color medio, no el gris.":
            each(fill="zero"),
        "el relleno es 0,5 sin normalizar: el modelo recibe imágenes normalizadas, así que el "
        "gris debe pasar por la misma normalización.": each(fill="raw"),
        "el signo está invertido: es la probabilidad sin tapar menos la probabilidad tapada.":
            -expected,
        "filas y columnas están intercambiadas: la esquina es (fila, columna) = [..., fila, "
        "columna].": each(swap=True),
        "usas la clase predicha, no la clase `clase` que recibe la función.": predicted,
    }
    return diagnose(exercise, np.array(got), expected, mistakes,
                    "compara la probabilidad de `clase` en la imagen y en una copia con ese "
                    "cuadrado gris (del espacio de entrada del modelo).")


@graded
def check_smoothgrad_average(exercise: str, func: Callable) -> Verdict:
    """``func(saliency_map, image, noises)``: SmoothGrad's map, the mean over k of
    ``saliency_map(image + noises[k])``; checked with a map function, an image and noises the
    notebook never used (a non-linear map, so averaging images first gives another result)."""
    import torch

    gen = torch.Generator().manual_seed(13)
    image = torch.randn(1, 3, 6, 5, generator=gen, dtype=torch.float64)
    noises = 0.3 * torch.randn(7, 3, 6, 5, generator=gen, dtype=torch.float64)
    weights = torch.randn(3, 1, 1, generator=gen, dtype=torch.float64)

    def saliency_map(batch):  # a stand-in for a saliency method: [N, 3, H, W] -> [N, H, W]
        return ((batch * weights) ** 2).sum(1).sqrt()

    kept = image.clone(), noises.clone()
    ok, got = call(exercise, func, saliency_map, image, noises)
    if not ok:
        return Verdict(False)
    if not (torch.equal(image, kept[0]) and torch.equal(noises, kept[1])):
        return report(exercise, False, "", "la función modificó la imagen o los ruidos.")
    maps = saliency_map(image + noises)
    mistakes = {
        "promediaste las imágenes ruidosas y calculaste un solo mapa: SmoothGrad promedia los "
        "MAPAS de las copias.": saliency_map((image + noises).mean(0, keepdim=True))[0],
        "sumaste los mapas sin dividir entre el número de copias.": maps.sum(0),
        "falta el ruido: ese es el mapa de la imagen original.": saliency_map(image)[0],
        "es el mapa de los ruidos solos: el ruido se suma a la imagen.":
            saliency_map(noises).mean(0)}
    return diagnose(exercise, got, maps.mean(0).numpy(), {k: v.numpy() for k, v in
                                                         mistakes.items()},
                    "un mapa por copia ruidosa (imagen + ruido k) y la media de esos mapas.")


@graded
def check_ig_riemann(exercise: str, func: Callable) -> Verdict:
    """``func(f, gradient, x, x_base, m)`` must return ``(attributions, gap)``: IG by the
    midpoint Riemann sum with ``m`` steps, ``(x - x') * mean_k gradient(x' + a_k (x - x'))`` with
    ``a_k = (k - 1/2) / m``, and ``sum(attributions) - (f(x) - f(x'))``. Checked on an unseen
    smooth function with its exact gradient (torch, float64)."""
    import torch

    gen = torch.Generator().manual_seed(29)
    w = torch.randn(1, 2, 3, 4, generator=gen, dtype=torch.float64)
    x = torch.randn(1, 2, 3, 4, generator=gen, dtype=torch.float64)
    base = 0.2 * torch.randn(1, 2, 3, 4, generator=gen, dtype=torch.float64)
    m = 7

    def f(z):  # [N, 2, 3, 4] -> [N]
        return torch.tanh(w * z).sum(dim=(1, 2, 3))

    def gradient(z):  # its exact gradient, [N, 2, 3, 4]
        return w * (1 - torch.tanh(w * z) ** 2)

    kept = x.clone(), base.clone()
    ok, got = call(exercise, func, f, gradient, x, base, m)
    if not ok:
        return Verdict(False)
    if not (torch.equal(x, kept[0]) and torch.equal(base, kept[1])):
        return report(exercise, False, "", "la función modificó x o la referencia.")
    got = plain(got)
    if not (isinstance(got, tuple) and len(got) == 2):
        return report(exercise, False, "", f"se esperaba una pareja (atribuciones, brecha); la "
                      f"función devolvió {shown_or_type(got)}.")

    def riemann(alphas, scale=1.0):
        path = base + torch.tensor(alphas, dtype=torch.float64)[:, None, None, None] * (x - base)
        return ((x - base) * gradient(path).mean(0, keepdim=True) * scale).numpy()

    k = np.arange(1, m + 1)
    expected = riemann((k - 0.5) / m)
    mistakes = {
        "usas α_k = k/m (Riemann por la derecha); se pide el punto medio, (k - 1/2)/m.":
            riemann(k / m),
        "usas α_k = (k - 1)/m (Riemann por la izquierda); se pide el punto medio, (k - 1/2)/m.":
            riemann((k - 1) / m),
        "falta multiplicar por (x - x'): eso es solo el gradiente medio del camino.":
            gradient(base + torch.tensor((k - 0.5) / m)[:, None, None, None] * (x - base))
            .mean(0, keepdim=True).numpy(),
        "sumaste los gradientes de los pasos sin dividir entre m.": riemann((k - 0.5) / m, m)}
    hint = ("m puntos del camino recto de x' a x, en los centros de m tramos iguales; la media de "
            "sus gradientes, multiplicada por (x - x').")
    if not diagnose(exercise, got[0], expected, mistakes, hint, quiet_success=True):
        return Verdict(False)
    delta = float(f(x)[0] - f(base)[0])
    gap = float(expected.sum()) - delta
    number = as_number(got[1])
    return diagnose(exercise, got[1] if number is None else np.array(number), np.array(gap),
                    {"la brecha tiene el signo cambiado: es Σ atribuciones - (f(x) - f(x')).":
                     np.array(-gap),
                     "la brecha debe restar f(x) - f(x'), no solo f(x).":
                     np.array(float(expected.sum()) - float(f(x)[0]))},
                    "brecha = suma de las atribuciones - (f(x) - f(x')).")


@graded
def check_smoothgrad_deletion(exercise: str, answer: Any, model, x, saliency_result,
                              n_samples: int, sigma: float, seed: int,
                              batch_size: int | None = None) -> Verdict:
    """``answer``: ``(mean, low, high)`` of the paired difference of the deletion AUC (blurred
    fill, 32 steps) of SmoothGrad's saliency (``n_samples``, ``sigma``, ``seed``) minus that of
    plain saliency (``saliency_result``, the notebook's :class:`DeletionInsertion`), recomputed
    here from the model."""
    from helpers.checks.training import check_paired_interval
    from helpers.torch.explain import saliency, smoothgrad
    from helpers.torch.metrics import deletion_insertion

    maps = smoothgrad(saliency, model, x, n_samples=n_samples, sigma=sigma, seed=seed,
                      batch_size=batch_size)
    mine = deletion_insertion(model, x, maps, steps=32, baseline="blur", batch_size=batch_size)
    return check_paired_interval(
        exercise, answer, mine.deletion_auc, saliency_result.deletion_auc,
        "mapas de SmoothGrad con esos parámetros; su AUC de borrado (relleno difuminado, 32 "
        "pasos) por imagen; diferencia pareada con la de la saliencia.",
        {"es la AUC de INSERCIÓN; se pide la de borrado.":
         (mine.insertion_auc, saliency_result.insertion_auc)})


@graded
def check_layer_mass_difference(exercise: str, answer: Any, model, x, masks, target,
                                reference_mass, layer: str = "layer3") -> Verdict:
    """``answer``: ``(mean, low, high)`` of the paired difference of the mass inside ``masks``
    of Grad-CAM at ``layer`` minus ``reference_mass`` (the notebook's Grad-CAM at ``layer4``);
    a null map counts as 0. Recomputed here from the model."""
    from helpers.checks.training import check_paired_interval
    from helpers.core.maps import as_heatmaps, mass_inside
    from helpers.torch.explain import grad_cam

    def mass(at: str) -> np.ndarray:
        cams = as_heatmaps(grad_cam(model, x, at, target=target).cpu().numpy())
        return np.nan_to_num(mass_inside(cams, masks))

    mine = mass(layer)
    return check_paired_interval(
        exercise, answer, mine, reference_mass,
        f"Grad-CAM en {layer} de la clase del atajo; su masa en la señal por imagen (un mapa "
        "nulo cuenta 0); diferencia pareada con la de layer4.",
        {"esa es la diferencia con layer2, no con layer3.": (mass("layer2"), reference_mass)}
        if layer == "layer3" else None)


@graded
def check_keras_activation_gradient(exercise: str, func: Callable, model, unseen,
                                    layers: Sequence[str]) -> Verdict:
    """``func(split, x, classes)``, with ``split = split_model(model, layer)`` (``x -> [A,
    logits]``), must return ``(A, G)``: the activations [N, h, w, K] and the gradient of
    ``sum_i logits[i, classes[i]]`` with respect to them. Checked on three images the notebook
    does not show (the first three training images of ``unseen``, a FlowersSplits, or a batch of
    raw pixels; the last one mirrored), the first and last of ``layers`` and a class that is not
    the predicted one."""
    import tensorflow as tf

    from helpers.keras.explain import split_model

    images = unseen.images("train", [0, 1, 2]) if hasattr(unseen, "images") else unseen
    layers = list(dict.fromkeys([layers[0], layers[-1]]))
    x = np.asarray(images, np.float32).copy()
    x[-1] = x[-1, :, ::-1]
    logits = np.asarray(model(x, training=False))
    ranked = np.argsort(-logits, axis=1)
    classes = [int(ranked[i, 1 if i == 0 else 0]) for i in range(len(x))]  # the 1st: 2nd class
    hint = ("dentro de un tf.GradientTape, llama al modelo partido: da [A, logits]; el gradiente "
            "de la suma de los logits pedidos respecto a A.")

    def reference(split, score: Callable) -> tuple[np.ndarray, np.ndarray]:
        with tf.GradientTape() as tape:
            a, out = split(tf.constant(x), training=False)
            value = score(out)
        return a.numpy(), tape.gradient(value, a).numpy()

    rows = np.arange(len(x))
    picked = tf.constant(np.stack([rows, classes], 1))
    top = tf.constant(np.stack([rows, ranked[:, 0]], 1))
    scores = {
        "right": lambda z: tf.reduce_sum(tf.gather_nd(z, picked)),
        "es el gradiente de la PROBABILIDAD (softmax); Grad-CAM usa el del logit.":
            lambda z: tf.reduce_sum(tf.gather_nd(tf.nn.softmax(z), picked)),
        "es el gradiente de la clase PREDICHA; se pide el de `clases[i]`.":
            lambda z: tf.reduce_sum(tf.gather_nd(z, top)),
        "es el gradiente de la suma de TODOS los logits; se pide solo el de `clases[i]`.":
            tf.reduce_sum}
    for layer in layers:
        split = split_model(model, layer)
        kept = x.copy()
        ok, value = call(exercise, func, split, x, list(classes))
        if not ok:
            return Verdict(False)
        if not np.array_equal(x, kept):
            return report(exercise, False, "", "la función modificó las imágenes de entrada.", hint)
        value = plain(value)
        if not (isinstance(value, tuple) and len(value) == 2):
            return report(exercise, False, "", f"se esperaba una pareja (A, G); la función "
                          f"devolvió {shown_or_type(value)}.", hint)
        a, g = reference(split, scores["right"])
        if not diagnose(exercise, value[0], a, {}, hint, quiet_success=True):
            return Verdict(False)
        mistakes = {message: reference(split, score)[1] for message, score in scores.items()
                    if message != "right"}
        if not diagnose(exercise, value[1], g, mistakes, hint, quiet_success=True):
            return Verdict(False)
    return report(exercise, True, f"correcto (activaciones y gradientes en {len(layers)} capas, "
                  "con imágenes y clases nuevas).", "")


@graded
def check_keras_ig(exercise: str, func: Callable) -> Verdict:
    """``func(model, x, baseline, target, m)`` on ONE image [H, W, C] must give Integrated
    Gradients of the target's logit by the midpoint Riemann sum with ``m`` steps (as
    :func:`helpers.keras.explain.integrated_gradients` with ``method="riemann_middle"``);
    checked on a small Keras model and an image the notebook never used."""
    import keras
    import tensorflow as tf

    from helpers.keras.explain import integrated_gradients

    keras.utils.set_random_seed(31)
    tiny = keras.Sequential([keras.Input((6, 7, 3)), keras.layers.Rescaling(1 / 255),
                             keras.layers.Conv2D(4, 3, activation="tanh"),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(5)])
    rng = np.random.default_rng(31)
    x = rng.uniform(0, 255, (6, 7, 3)).astype(np.float32)
    base = rng.uniform(0, 40, (6, 7, 3)).astype(np.float32)
    target, m = 3, 9
    kept = x.copy(), base.copy()
    ok, got = call(exercise, func, tiny, x, base, target, m)
    if not ok:
        return Verdict(False)
    if not (np.array_equal(x, kept[0]) and np.array_equal(base, kept[1])):
        return report(exercise, False, "", "la función modificó la imagen o la referencia.")

    def ig(method: str) -> np.ndarray:
        return integrated_gradients(tiny, x[None], target=[target], baseline=base[None],
                                    steps=m, method=method)[0]

    def softmax_ig() -> np.ndarray:
        alphas = ((np.arange(1, m + 1) - 0.5) / m).astype(np.float32)
        path = tf.constant(base + alphas[:, None, None, None] * (x - base))
        with tf.GradientTape() as tape:
            tape.watch(path)
            prob = tf.nn.softmax(tiny(path, training=False))[:, target]
        return (x - base) * tape.gradient(prob, path).numpy().mean(0)

    expected = ig("riemann_middle")
    mistakes = {
        "usaste la PROBABILIDAD (softmax): IG atribuye el logit, que no satura.": softmax_ig(),
        "usas α_k = k/m (Riemann por la derecha); se pide el punto medio, (k - 1/2)/m.":
            ig("riemann_right"),
        "usas α_k = (k - 1)/m (Riemann por la izquierda); se pide el punto medio, (k - 1/2)/m.":
            ig("riemann_left"),
        "falta multiplicar por (x - x'): eso es solo el gradiente medio del camino.":
            expected / np.where(x == base, 1, x - base),
        "sumaste los gradientes de los pasos sin dividir entre m.": m * expected}
    return diagnose(exercise, got, expected, mistakes,
                    "m imágenes en el camino recto de x' a x (puntos medios de m tramos); el "
                    "gradiente del logit de `clase` en cada una con tf.GradientTape; su media "
                    "por (x - x').")
