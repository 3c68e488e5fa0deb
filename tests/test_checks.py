"""Exercise checks accept the reference answers and name the typical mistakes."""

import numpy as np
import pytest
import torch

from helpers import checks
from helpers.checks import augment, data, explain, training


@pytest.fixture(autouse=True)
def lenient(monkeypatch):
    monkeypatch.delenv(checks.STRICT_ENV, raising=False)


def test_check_value_numbers_tuples_and_missing_answers(capsys):
    assert checks.check_value("e", 0.5, 0.5)
    assert checks.check_value("e", ("cat", "dog"), ("cat", "dog"))
    assert not checks.check_value("e", ("dog", "cat"), ("cat", "dog"))
    assert not checks.check_value("e", [1.0, 2.0], [1.0, 2.0, 3.0])
    assert not checks.check_value("e", None, 1.0)
    out = capsys.readouterr().out
    assert "forma" in out and "todavía no hay respuesta" in out


def test_strict_mode_raises_after_printing(monkeypatch, capsys):
    monkeypatch.setenv(checks.STRICT_ENV, "1")
    with pytest.raises(checks.ExerciseError, match="Ejercicio 9"):
        checks.check_value("Ejercicio 9", 1, 2, "pista")
    assert "Pista: pista" in capsys.readouterr().out


def test_call_reports_stubs_errors_and_missing_returns(capsys):
    def stub(a):
        raise NotImplementedError

    assert checks.call("e", stub, 1) == (False, None)
    assert checks.call("e", lambda a: 1 / 0, 1) == (False, None)
    assert checks.call("e", lambda a: None, 1) == (False, None)
    assert checks.call("e", lambda a: 2 * a, 1) == (True, 2)
    out = capsys.readouterr().out
    assert "no está implementada" in out and "ZeroDivisionError" in out and "return" in out


def _cam(alpha_from="mean", relu=True):
    def f(a, g):
        alpha = g.mean((1, 2), keepdim=True) if alpha_from == "mean" else g.sum((1, 2), True)
        cam = (alpha * a).sum(0)
        return cam.relu() if relu else cam
    return f


def test_grad_cam_check_names_the_mistake(capsys):
    assert explain.check_grad_cam_formula("e", _cam())
    assert not explain.check_grad_cam_formula("e", _cam(relu=False))
    assert not explain.check_grad_cam_formula("e", _cam(alpha_from="sum"))
    out = capsys.readouterr().out
    assert "falta la ReLU" in out and "suma de los gradientes" in out


def test_guided_relu_check_names_the_mistake(capsys):
    assert explain.check_guided_relu_rule("e", lambda z, g: g.clamp(min=0) * (z > 0))
    assert not explain.check_guided_relu_rule("e", lambda z, g: g * (z > 0))
    assert not explain.check_guided_relu_rule("e", lambda z, g: g.clamp(min=0))
    out = capsys.readouterr().out
    assert "gradiente normal" in out and "deconvnet" in out


def test_ig_linear_check_names_the_mistake(capsys):
    assert explain.check_ig_linear("e", lambda w, x, b: (x - b) * w)
    assert not explain.check_ig_linear("e", lambda w, x, b: w)
    assert not explain.check_ig_linear("e", lambda w, x, b: x * w)
    assert not explain.check_ig_linear("e", lambda w, x, b: torch.zeros(3))
    out = capsys.readouterr().out
    assert "falta el factor" in out and "en vez de por (x - x')" in out and "forma" in out


def test_cutmix_weight_check_rejects_the_unadjusted_lambda(capsys):
    def right(lam, y0, y1, x0, x1, h, w):
        return (y1 - y0) * (x1 - x0) / (h * w)

    assert augment.check_cutmix_weight("e", right)
    assert not augment.check_cutmix_weight("e", lambda lam, *box: 1 - lam)
    assert not augment.check_cutmix_weight("e", lambda lam, *box: lam)
    out = capsys.readouterr().out
    assert "recalcularse" in out and "imagen original" in out


def test_best_epoch_check_names_the_mistake(capsys):
    import numpy as np

    assert training.check_best_epoch("e", lambda h: int(np.argmax(h["val_accuracy"])) + 1)
    assert not training.check_best_epoch("e", lambda h: int(np.argmax(h["val_accuracy"])))
    assert not training.check_best_epoch("e", lambda h: int(np.argmin(h["val_loss"])) + 1)
    assert not training.check_best_epoch("e", lambda h: len(h["val_accuracy"]))
    assert not training.check_best_epoch("e", lambda h: "tres")
    out = capsys.readouterr().out
    assert "empezando en 0" in out and "val_loss" in out and "última época" in out
    assert "se esperaba un número entero de época" in out


def test_brightness_check_names_the_mistake(capsys):
    import numpy as np

    assert augment.check_brightness("e", lambda x, d: np.clip(x + 255 * d, 0, 255))
    assert not augment.check_brightness("e", lambda x, d: x + 255 * d)
    assert not augment.check_brightness("e", lambda x, d: np.clip(x + d, 0, 255))
    assert not augment.check_brightness("e", lambda x, d: np.clip(x * (1 + d), 0, 255))
    out = capsys.readouterr().out
    assert "faltan los límites" in out and "delta * 255" in out and "multiplicativo" in out


def test_choice_function_check_rejects_any_use_of_the_test_split(capsys):
    assert training.check_choice_function("e", lambda val, test: max(val, key=val.get))
    assert training.check_choice_function(  # the other one of a tie is right too
        "e", lambda val, test: max(reversed(list(val)), key=val.get))
    assert not training.check_choice_function("e", lambda val, test: max(test, key=test.get))
    assert not training.check_choice_function(
        "e", lambda val, test: max(val, key=lambda k: val[k] + test[k]))
    assert not training.check_choice_function("e", lambda val, test: min(val, key=val.get))
    assert not training.check_choice_function("e", lambda val, test: 1)
    out = capsys.readouterr().out
    assert out.count("conjunto de PRUEBA") == 2 and "PEOR" in out
    assert "nombre de una variante" in out


def test_cascade_auc_check_accepts_equivalent_forms_and_names_mistakes(capsys):
    import torch

    def auc(rows):
        curve = np.vstack([np.ones_like(rows[0][1])] + [v for _, v in rows])
        return ((curve[1:] + curve[:-1]) / 2).mean(0)

    assert explain.check_cascade_auc("e", auc)
    assert explain.check_cascade_auc("e", lambda rows: torch.tensor(auc(rows)).tolist())
    assert explain.check_cascade_auc("e", lambda rows: np.trapezoid(
        np.vstack([np.ones(6)] + [v for _, v in rows]), dx=1 / len(rows), axis=0))
    assert not explain.check_cascade_auc("e", lambda rows: np.vstack(
        [np.ones(6)] + [v for _, v in rows]).mean(0))
    assert not explain.check_cascade_auc("e", lambda rows: auc(rows) * len(rows))
    out = capsys.readouterr().out
    assert "media de las similitudes" in out and "no está normalizada" in out


def test_channels_last_grad_cam_check_names_the_mistake(capsys):
    import numpy as np

    def cam(axis=(0, 1), relu=True):
        def f(a, g):
            m = (a * g.mean(axis=axis)).sum(-1) if axis == (0, 1) else a.sum(-1) * g.mean(-1)
            return np.maximum(m, 0) if relu else m
        return f

    assert explain.check_grad_cam_channels_last("e", cam())
    assert not explain.check_grad_cam_channels_last("e", cam(relu=False))
    assert not explain.check_grad_cam_channels_last("e", cam(axis=-1))
    assert not explain.check_grad_cam_channels_last(
        "e", lambda a, g: np.maximum((a * g.sum(axis=(0, 1))).sum(-1), 0))
    out = capsys.readouterr().out
    assert "falta la ReLU" in out and "sobre los canales" in out and "suma de los gradientes" in out


def test_per_class_accuracy_check_names_the_mistake(capsys):
    import numpy as np

    assert training.check_per_class_accuracy("e", lambda cm: np.diag(cm) / cm.sum(1))
    assert not training.check_per_class_accuracy("e", lambda cm: np.diag(cm) / cm.sum(0))
    assert not training.check_per_class_accuracy("e", lambda cm: np.diag(cm) / cm.sum())
    out = capsys.readouterr().out
    assert "COLUMNA" in out and "total de imágenes" in out


def test_most_confused_check_names_the_mistake(capsys):
    import numpy as np

    cm = np.array([[9, 1, 0], [4, 6, 0], [0, 2, 8]])
    assert training.check_most_confused("e", (1, 0), cm)
    assert not training.check_most_confused("e", (0, 0), cm)
    assert not training.check_most_confused("e", (0, 1), cm)
    assert not training.check_most_confused("e", (2, 1), cm)
    assert not training.check_most_confused("e", (5, 1), cm)
    out = capsys.readouterr().out
    assert "diagonal" in out and "al revés" in out and "4" in out and "índices entre 0 y 2" in out


def test_fair_checks_bools_none_returns_and_stated_tolerances(capsys):
    assert not checks.check_value("e", True, 1)  # a bool is not a number
    assert not checks.check_value("e", np.array([True, False]), np.array([1, 0]))
    assert checks.check_value("e", True, True)
    assert not explain.check_ig_linear("e", lambda w, x, b: None)
    assert checks.check_value("e", 0.1 + 1e-7, 0.1, rtol=1e-5)
    assert not checks.check_value("e", 3, 4) and checks.check_value("e", 3, np.int64(3))
    out = capsys.readouterr().out
    assert out.count("booleano") == 2 and out.count("¿falta un `return`?") == 1
    assert "error relativo de 1e-05" in out


def test_data_checks_derive_the_expected_value(capsys):
    images = [(np.zeros((5, 9, 3)), 0), (np.zeros((2, 2, 3)), 1)]
    assert data.check_landscape_count("e", 1, [*images, (np.zeros((3, 3, 3)), 2)])
    assert not data.check_landscape_count("e", 0, images)
    tall_wide_square = [(np.zeros((5, 9, 3)), 0), (np.zeros((9, 5, 3)), 0),
                        (np.zeros((8, 2, 3)), 0), (np.zeros((4, 4, 3)), 0)]
    assert not data.check_landscape_count("e", 2, tall_wide_square)  # the tall ones
    assert not data.check_landscape_count("e", torch.tensor(2.0), tall_wide_square[:2] +
                                          tall_wide_square[3:])  # square counted
    out = capsys.readouterr().out
    assert "verticales" in out and "cuadradas" in out


def test_confusion_checks_accept_names_ties_and_reject_reversed_pairs(capsys):
    cm = np.array([[5, 3, 0], [1, 6, 3], [0, 0, 9]])  # (0, 1) and (1, 2) tie with 3
    names = ["cat", "dog", "frog"]
    assert training.check_most_confused("e", ("cat", "dog"), cm, names)
    assert training.check_most_confused("e", ("dog", "frog"), cm, names)
    assert training.check_most_confused("e", (1, 2), cm)
    assert not training.check_most_confused("e", ("dog", "cat"), cm, names)
    assert not training.check_most_confused("e", ("cat", "bird"), cm, names)


def test_torch_explanation_checks_derive_the_expected_value(capsys):
    from toy_models import SmallConvNet

    from helpers.torch.explain import grad_cam, guided_backprop

    torch.manual_seed(0)
    model, x = SmallConvNet().eval(), torch.rand(3, 3, 8, 8)

    def mine(m, image, c):
        copy = image.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(m(copy)[0, c], copy)
        return g.abs().amax(dim=1)[0]

    assert explain.check_saliency_function("e", mine, model, x)
    assert not explain.check_saliency_function("e", lambda m, i, c: mine(m, i, c) * 2, model, x)

    def on_the_input(m, image, c):  # the pattern the lesson warns about: .grad of the input
        image.requires_grad_(True)
        m(image)[0, c].backward()
        return image.grad.abs().amax(dim=1)[0]

    assert not explain.check_saliency_function("e", on_the_input, model, x)
    assert "su requires_grad o su .grad" in capsys.readouterr().out
    gbp, cam = guided_backprop(model, x), grad_cam(model, x, "conv2")
    assert explain.check_guided_grad_cam_product("e", gbp[0] * cam[0], gbp, cam)
    assert not explain.check_guided_grad_cam_product("e", gbp[0], gbp, cam)
    assert explain.check_occlusion_passes("e", 170, size=32, patch=8, stride=2)
    assert not explain.check_occlusion_passes("e", 169, size=32, patch=8, stride=2)
    assert "falta el valor absoluto" not in capsys.readouterr().out


def test_keras_augment_checks():
    assert augment.check_horizontal_flip("e", lambda b: b[:, :, ::-1, :])
    assert not augment.check_horizontal_flip("e", lambda b: b[:, ::-1])
    assert augment.check_mixup_pair("e", lambda a, b, ya, yb, lam: (lam * a + (1 - lam) * b,
                                                                   lam * ya + (1 - lam) * yb))
    assert not augment.check_mixup_pair("e", lambda a, b, ya, yb, lam: ((1 - lam) * a + lam * b,
                                                                       (1 - lam) * ya + lam * yb))


def test_mass_inside_function_check_names_the_mistake(capsys):
    assert explain.check_mass_inside_function(
        "e", lambda m, k: float(np.abs(m)[k].sum() / np.abs(m).sum()))
    assert not explain.check_mass_inside_function("e", lambda m, k: float(m[k].sum() / m.sum()))
    assert "falta el valor absoluto" in capsys.readouterr().out


def test_paired_bootstrap_check_accepts_any_generator_and_names_mistakes(capsys):
    import torch

    from helpers.core.intervals import bootstrap_mean

    def mine(a, b, seed=5):
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(a), (4000, len(a)))
        means = (a - b)[idx].mean(1)
        return (a - b).mean(), *np.percentile(means, [2.5, 97.5])

    assert training.check_paired_bootstrap("e", mine)
    assert training.check_paired_bootstrap("e", lambda a, b: bootstrap_mean(a - b, seed=9))
    assert training.check_paired_bootstrap("e", lambda a, b: [torch.tensor(v) for v in mine(a, b)])

    def unpaired(a, b):
        rng = np.random.default_rng(0)
        ia, ib = rng.integers(0, len(a), (2, 4000, len(a)))
        means = a[ia].mean(1) - b[ib].mean(1)
        return (a - b).mean(), *np.percentile(means, [2.5, 97.5])

    assert not training.check_paired_bootstrap("e", unpaired)
    assert not training.check_paired_bootstrap(
        "e", lambda a, b: ((a - b).mean(), *np.percentile(a - b, [2.5, 97.5])))
    assert not training.check_paired_bootstrap("e", lambda a, b: (a - b).mean())
    out = capsys.readouterr().out
    assert "por separado" in out and "de su MEDIA" in out and "tres números" in out


def _with_grad(value):
    """``value`` as a float64 tensor that requires grad (computed without no_grad)."""
    return torch.tensor(value, dtype=torch.float64, requires_grad=True) * 1


@pytest.mark.parametrize("answer", [7, 7.0, np.int64(7), np.float32(7), torch.tensor(7),
                                    _with_grad(7.0)], ids=repr)
def test_every_form_of_a_right_number_is_accepted(answer, capsys):
    assert checks.check_value("e", answer, 7)
    assert "✅" in capsys.readouterr().out


@pytest.mark.parametrize("answer", [[8, 8], (8.0, 8.0), torch.Size([8, 8]), np.array([8, 8]),
                                    torch.tensor([8, 8])], ids=repr)
def test_every_form_of_a_right_pair_is_accepted(answer):
    assert checks.check_value("e", answer, (8, 8))


@pytest.mark.parametrize("answer", [3, 3.0, np.int64(3), torch.tensor(3), _with_grad(3.0)],
                         ids=repr)
def test_an_epoch_in_any_integral_form_is_accepted(answer):
    assert training.check_best_epoch("e", lambda history: answer)


@pytest.mark.parametrize("answer, message", [
    ("3", "un texto"), (3.5, "3.5"), (True, "un booleano"), ({"epoca": 3}, "un diccionario")])
def test_an_epoch_that_is_not_an_integer_is_refused_in_spanish(answer, message, capsys):
    assert not training.check_best_epoch("e", lambda history: answer)
    out = capsys.readouterr().out
    assert "se esperaba un número entero de época" in out and message in out


def test_wrong_types_get_a_spanish_sentence_never_a_traceback(capsys):
    assert not checks.check_value("e", {"valor": 7}, 7)
    assert not checks.check_value("e", "7", 7)
    assert not explain.check_grad_cam_formula("e", lambda a, g: {"mapa": a})
    assert not augment.check_cutmix_weight("e", lambda lam, *box: "0,5")
    assert not training.check_most_confused("e", {"real": 1}, np.eye(3) + 1)
    out = capsys.readouterr().out
    assert out.count("un diccionario") == 3 and "un texto (str)" in out
    assert "Error" not in out and "Traceback" not in out


def test_maps_computed_with_autograd_on_and_as_float32_are_accepted():
    def cam(a, g):  # a student who forgot no_grad: the result requires grad
        a = a.clone().requires_grad_(True)
        return torch.relu((g.mean(dim=(1, 2))[:, None, None] * a).sum(0)).float()

    assert explain.check_grad_cam_formula("e", cam)

    def weight(lam, y0, y1, x0, x1, h, w):
        return torch.tensor((y1 - y0) * (x1 - x0) / (h * w), requires_grad=True)

    assert augment.check_cutmix_weight("e", weight)
    assert training.check_most_confused("e", torch.tensor([2, 0]), np.array(
        [[5, 0, 1], [0, 5, 0], [4, 0, 5]]))


def test_count_per_class_check_needs_the_empty_classes(capsys):
    assert data.check_count_per_class("e", lambda y, k: np.bincount(y, minlength=k))
    assert data.check_count_per_class("e", lambda y, k: [int((y == c).sum()) for c in range(k)])
    assert not data.check_count_per_class("e", lambda y, k: np.bincount(y))
    assert not data.check_count_per_class("e", lambda y, k: np.bincount(y, minlength=k) / len(y))
    out = capsys.readouterr().out
    assert "clases sin ninguna imagen" in out and "fracciones" in out


def test_batches_function_check_names_floor_and_the_extra_batch(capsys):
    assert data.check_batches_function("e", lambda n, b: -(-n // b))
    assert data.check_batches_function("e", lambda n, b: torch.tensor(float(np.ceil(n / b))))
    assert not data.check_batches_function("e", lambda n, b: n // b)
    assert not data.check_batches_function("e", lambda n, b: n // b + 1)
    assert not data.check_batches_function("e", lambda n, b: n / b)
    out = capsys.readouterr().out
    assert "hacia abajo" in out and "múltiplo" in out and "entero" in out


def test_accuracy_function_check_tells_accuracy_from_balanced_accuracy(capsys):
    assert training.check_accuracy_function("e", lambda cm: np.trace(cm) / cm.sum())
    assert training.check_accuracy_function("e", lambda cm: torch.tensor(cm).diag().sum() /
                                            torch.tensor(cm).sum())
    assert not training.check_accuracy_function(
        "e", lambda cm: np.mean(np.diag(cm) / cm.sum(1)))
    assert not training.check_accuracy_function("e", lambda cm: 100 * np.trace(cm) / cm.sum())
    out = capsys.readouterr().out
    assert "exactitud equilibrada" in out and "porcentaje" in out


def test_patch_drop_check_names_logit_fill_sign_axes_and_class(capsys):
    from toy_models import SmallConvNet

    from helpers.torch.normalization import CIFAR10

    torch.manual_seed(0)
    model = SmallConvNet().eval()
    model.normalization = CIFAR10
    x = torch.randn(3, 3, 32, 32)

    def right(m, image, cls, row, col, patch, fill=None, score=torch.softmax, swap=False,
              sign=1, in_place=False):
        painted = image if in_place else image.clone()
        gray = m.normalization.constant(image, 0.5) if fill is None else fill(image)
        r, c = (col, row) if swap else (row, col)
        painted[..., r:r + patch, c:c + patch] = gray[..., r:r + patch, c:c + patch]
        with torch.no_grad():
            before = score(m(image), 1)[0, cls] if score else m(image)[0, cls]
            after = score(m(painted), 1)[0, cls] if score else m(painted)[0, cls]
        return sign * (before - after)

    assert explain.check_patch_drop("e", right, model, x)
    assert explain.check_patch_drop("e", lambda *a: float(right(*a)), model, x)
    wrong = {"LOGIT": {"score": None}, "color medio": {"fill": torch.zeros_like},
             "sin normalizar": {"fill": lambda im: torch.full_like(im, 0.5)},
             "signo": {"sign": -1}, "intercambiadas": {"swap": True},
             "modificó la imagen": {"in_place": True}}
    for message, kw in wrong.items():
        assert not explain.check_patch_drop("e", lambda *a, kw=kw: right(*a, **kw), model, x)
        assert message in capsys.readouterr().out, message

    def predicted(m, image, cls, *square):
        return right(m, image, int(m(image).argmax()), *square)

    assert not explain.check_patch_drop("e", predicted, model, x)
    assert "clase predicha" in capsys.readouterr().out


def test_the_answer_lookup_guard_finds_printed_answers_only_as_whole_numbers():
    import nbval_answers as guard

    assert guard.answer_shown("✅ Ejercicio 2: correcto (0,1234; se admite un error relativo "
                              "de 1e-05 o absoluto de 1e-08).") == ("Ejercicio 2", "0,1234")
    assert guard.answer_shown("✅ Ejercicio 1: correcto ((32, 102)).") == ("Ejercicio 1",
                                                                          "(32, 102)")
    assert guard.answer_shown("✅ Ejercicio 1: correcto (7).") is None  # a single digit
    assert guard.answer_shown("✅ Ejercicio 1: correcto (se admite un error relativo de "
                              "1e-04).") is None  # a function exercise shows no value
    assert guard.appears_in("0,1234", "la brecha es 0,1234 en la imagen 0")
    assert not guard.appears_in("0,1234", "vale 10,12345")
    assert guard.appears_in("170", "hay 170 pasadas")
    assert not guard.appears_in("170", "hay 1170 pasadas y 170,5 s")


def test_smoothgrad_average_check_names_image_averaging_sum_and_missing_noise(capsys):
    assert explain.check_smoothgrad_average("e", lambda m, im, r: m(im + r).mean(0))
    assert explain.check_smoothgrad_average(
        "e", lambda m, im, r: sum(m(im + r[k:k + 1])[0] for k in range(len(r))) / len(r))
    wrong = {"promediaste las imágenes": lambda m, im, r: m((im + r).mean(0, keepdim=True))[0],
             "sin dividir": lambda m, im, r: m(im + r).sum(0),
             "falta el ruido": lambda m, im, r: m(im)[0],
             "modificó": lambda m, im, r: m(im.add_(r[:1])).mean(0)}
    for message, func in wrong.items():
        assert not explain.check_smoothgrad_average("e", func)
        assert message in capsys.readouterr().out, message


def test_ig_riemann_check_names_the_rule_the_factor_and_the_gap_sign(capsys):
    def mine(f, grad, x, base, m, alpha=lambda k, m: (k - 0.5) / m, factor=True, sign=1,
             divide=True):
        total = sum(grad(base + alpha(k, m) * (x - base)) for k in range(1, m + 1))
        mean = total / m if divide else total
        attributions = (x - base) * mean if factor else mean
        return attributions, sign * (attributions.sum() - (f(x) - f(base)).sum())

    assert explain.check_ig_riemann("e", mine)
    assert explain.check_ig_riemann("e", lambda *a: [t.numpy() for t in mine(*a)])
    wrong = {"por la derecha": {"alpha": lambda k, m: k / m},
             "por la izquierda": {"alpha": lambda k, m: (k - 1) / m},
             "falta multiplicar": {"factor": False}, "sin dividir": {"divide": False},
             "signo cambiado": {"sign": -1}}
    for message, kw in wrong.items():
        assert not explain.check_ig_riemann("e", lambda *a, kw=kw: mine(*a, **kw))
        assert message in capsys.readouterr().out, message
    assert not explain.check_ig_riemann("e", lambda *a: mine(*a)[0])
    assert "pareja (atribuciones, brecha)" in capsys.readouterr().out


def test_paired_standard_error_check_names_independence_one_accuracy_and_sqrt_n(capsys):
    def paired(a, b, ddof=1):
        d = a.astype(float) - b.astype(float)
        return d.std(ddof=ddof) / np.sqrt(len(d))

    assert training.check_paired_standard_error("e", paired)
    assert training.check_paired_standard_error("e", lambda a, b: paired(a, b, ddof=0))
    assert training.check_paired_standard_error(
        "e", lambda a, b: (torch.tensor(a, dtype=torch.float64) - torch.tensor(
            b, dtype=torch.float64)).std() / len(a) ** 0.5)
    wrong = {"independientes": lambda a, b: np.sqrt(a.mean() * (1 - a.mean()) / len(a) +
                                                    b.mean() * (1 - b.mean()) / len(b)),
             "UNA exactitud": lambda a, b: np.sqrt(a.mean() * (1 - a.mean()) / len(a)),
             "falta dividir": lambda a, b: (a.astype(float) - b).std(ddof=1),
             "puntos porcentuales": lambda a, b: 100 * paired(a, b)}
    for message, func in wrong.items():
        assert not training.check_paired_standard_error("e", func)
        assert message in capsys.readouterr().out, message


def test_one_hot_function_check_names_transposed_narrow_and_shifted(capsys):
    import tensorflow as tf

    assert data.check_one_hot_function("e", lambda y, k: np.eye(k)[y])
    assert data.check_one_hot_function("e", lambda y, k: tf.one_hot(y, k))
    assert data.check_one_hot_function("e", lambda y, k: (y[:, None] == np.arange(k)).astype(int))
    wrong = {"traspuesta": lambda y, k: np.eye(k)[y].T,
             "faltan columnas": lambda y, k: np.eye(y.max() + 1)[y],
             "desplazadas": lambda y, k: np.eye(k)[y - 1]}
    for message, func in wrong.items():
        assert not data.check_one_hot_function("e", func)
        assert message in capsys.readouterr().out, message


def test_validation_pipeline_check_names_augmenting_and_shuffling(capsys):
    from helpers.keras.pipeline import make_pipeline

    assert augment.check_validation_pipeline(
        "e", lambda ds, n, block: make_pipeline(ds, n, training=False, augment=block))
    assert augment.check_validation_pipeline("e", lambda ds, n, block: make_pipeline(ds, n))
    wrong = {"AUMENTA": lambda ds, n, block: make_pipeline(ds, n, training=True, augment=block),
             "baraja": lambda ds, n, block: make_pipeline(ds, n, training=True),
             "se esperaban": lambda ds, n, block: make_pipeline(ds, n + 1),
             "tf.data.Dataset": lambda ds, n, block: [1, 2]}
    for message, func in wrong.items():
        assert not augment.check_validation_pipeline("e", func)
        assert message in capsys.readouterr().out, message


def test_stage_side_check_runs_the_model_on_unseen_sizes_and_names_rounding(capsys):
    import math

    from torchvision.models import resnet18

    model = resnet18(weights=None).train()

    def formula(side):
        for k, s, p in [(7, 2, 3), (3, 2, 1), (3, 2, 1), (3, 2, 1), (3, 2, 1)]:
            side = (side + 2 * p - k) // s + 1
        return side

    assert explain.check_stage_side_function("e", formula, model, "layer4")
    assert explain.check_stage_side_function("e", lambda n: math.ceil(n / 32), model, "layer4")
    assert explain.check_stage_side_function(  # (h, w) of the square map, as a tensor
        "e", lambda n: torch.tensor([formula(n)] * 2), model, "layer4")
    assert model.training and not model._forward_hooks and not model.layer4._forward_hooks
    assert not explain.check_stage_side_function("e", lambda n: n // 32, model, "layer4")
    assert not explain.check_stage_side_function("e", lambda n: -(-n // 16), model, "layer4")
    assert not explain.check_stage_side_function("e", lambda n: n / 32, model, "layer4")
    assert not explain.check_stage_side_function("e", lambda n: 7, model, "layer4")
    out = capsys.readouterr().out
    assert "redondeando hacia abajo" in out and "max-pool" in out
    assert "número entero de píxeles" in out and "no coincide" in out


def _activation_gradient(score="logit", leave_hook=False, output=True):
    def func(model, x, layer, classes):
        kept = []
        handle = dict(model.named_modules())[layer].register_forward_hook(
            lambda m, i, o: kept.append(o if output else i[0]))
        logits = model(x)
        if not leave_hook:
            handle.remove()
        rows = torch.arange(len(x))
        chosen = {"logit": logits[rows, classes], "prob": logits.softmax(1)[rows, classes],
                  "predicted": logits.amax(1)}[score]
        (grad,) = torch.autograd.grad(chosen.sum(), kept[0])
        return kept[0], grad  # A still requires grad: accepted
    return func


def test_activation_gradient_check_names_probability_class_hooks_and_input(capsys):
    from helpers.torch.models import resnet18_cifar

    torch.manual_seed(0)
    model, unseen = resnet18_cifar(8, weights=None).eval(), torch.randn(5, 3, 32, 32)
    assert explain.check_activation_gradient_function("e", _activation_gradient(), model, unseen)
    for wrong in ("prob", "predicted"):
        assert not explain.check_activation_gradient_function(
            "e", _activation_gradient(wrong), model, unseen)
    assert not explain.check_activation_gradient_function(
        "e", _activation_gradient(output=False), model, unseen)
    assert not explain.check_activation_gradient_function(
        "e", _activation_gradient(leave_hook=True), model, unseen)
    assert not any(m._forward_hooks for m in model.modules())  # the check removed the leftover
    assert not model.training
    out = capsys.readouterr().out
    for named in ("PROBABILIDAD", "clase PREDICHA", "ENTRADA de la capa", "dejó un hook"):
        assert named in out


def test_paired_interval_check_accepts_any_bootstrap_and_names_a_reversed_difference(capsys):
    from helpers.core.intervals import bootstrap_paired_difference

    rng = np.random.default_rng(2)
    base = rng.normal(size=40)
    a, b = base + rng.normal(0.2, 0.1, 40), base
    ref = bootstrap_paired_difference(a, b)
    assert training.check_paired_interval("e", ref, a, b, "pista")  # the Estimate itself
    assert training.check_paired_interval("e", [np.float32(v) for v in (ref.value, ref.low,
                                                                       ref.high)], a, b, "")
    other = bootstrap_paired_difference(a, b, seed=7)  # another generator's interval
    assert training.check_paired_interval("e", torch.tensor([other.value, other.low, other.high]),
                                          a, b, "")
    assert not training.check_paired_interval("e", bootstrap_paired_difference(b, a), a, b, "")
    assert not training.check_paired_interval("e", (ref.value, ref.value - 1, ref.value + 1),
                                              a, b, "")
    assert not training.check_paired_interval("e", (float(np.mean(a)), 0, 1), a, b, "",
                                              {"usaste solo a.": (a, np.zeros_like(a))})
    assert not training.check_paired_interval("e", ref.value, a, b, "")
    out = capsys.readouterr().out
    assert "al revés" in out and "bootstrap PAREADO" in out and "usaste solo a." in out
    assert "tres números" in out


def test_smoothgrad_deletion_and_layer_mass_checks_recompute_the_analysis(capsys):
    from helpers.core.intervals import bootstrap_paired_difference
    from helpers.core.maps import as_heatmaps, mass_inside
    from helpers.torch.explain import grad_cam, saliency, smoothgrad
    from helpers.torch.metrics import deletion_insertion
    from helpers.torch.models import resnet18_cifar

    torch.manual_seed(0)
    model, x = resnet18_cifar(8, weights=None).eval(), torch.randn(6, 3, 32, 32)
    model.xai_trained = True  # random weights are enough here
    plain_saliency = deletion_insertion(model, x, saliency(model, x), steps=32, baseline="blur")
    smooth = deletion_insertion(model, x, smoothgrad(saliency, model, x, n_samples=3, sigma=0.2,
                                                     seed=4), steps=32, baseline="blur")
    right = bootstrap_paired_difference(smooth.deletion_auc, plain_saliency.deletion_auc)
    args = (model, x, plain_saliency)
    assert explain.check_smoothgrad_deletion("e", right, *args, n_samples=3, sigma=0.2, seed=4)
    inserted = bootstrap_paired_difference(smooth.insertion_auc, plain_saliency.insertion_auc)
    assert not explain.check_smoothgrad_deletion("e", inserted, *args, n_samples=3, sigma=0.2,
                                                 seed=4)
    assert not explain.check_smoothgrad_deletion("e", right, *args, n_samples=3, sigma=0.2,
                                                 seed=5)  # another seed: another analysis
    masks = np.zeros((6, 32, 32), bool)
    masks[:, 4:8, 10:14] = True

    target = model(x).argmax(1).tolist()

    def mass(layer):
        cams = as_heatmaps(grad_cam(model, x, layer, target=target).numpy())
        return np.nan_to_num(mass_inside(cams, masks))

    layer4, layer3 = mass("layer4"), mass("layer3")
    assert np.abs(layer3 - layer4).min() > 1e-4  # a test that can fail
    right = bootstrap_paired_difference(layer3, layer4)
    assert explain.check_layer_mass_difference("e", right, model, x, masks, target, layer4)
    assert not explain.check_layer_mass_difference(
        "e", bootstrap_paired_difference(layer4, layer3), model, x, masks, target, layer4)
    out = capsys.readouterr().out
    assert "INSERCIÓN" in out and "al revés" in out and "no coincide" in out


def test_second_choice_fraction_check_names_denominator_order_and_top2(capsys):
    rng = np.random.default_rng(8)
    p = rng.dirichlet(np.ones(6), 200)
    y = rng.integers(0, 6, 200)
    order = np.argsort(-p, 1)
    wrong = order[:, 0] != y
    right = np.mean(order[wrong, 1] == y[wrong])
    assert training.check_second_choice_fraction("e", right, p, y)
    assert training.check_second_choice_fraction("e", torch.tensor(right), p, y)
    for mistake in (np.sum(order[wrong, 1] == y[wrong]) / 200, 100 * right,
                    np.mean(np.argsort(p, 1)[wrong, 1] == y[wrong]), "0.4"):
        assert not training.check_second_choice_fraction("e", mistake, p, y)
    out = capsys.readouterr().out
    for named in ("TODAS las imágenes", "porcentaje", "de menor a mayor", "un texto"):
        assert named in out


def _keras_activation_gradient(score="logit"):
    import tensorflow as tf

    def func(split, x, classes):
        with tf.GradientTape() as tape:
            a, logits = split(x, training=False)
            if score == "prob":
                logits = tf.nn.softmax(logits)
            chosen = (tf.reduce_max(logits, 1) if score == "predicted"
                      else tf.gather(logits, classes, batch_dims=1))
            total = tf.reduce_sum(chosen)
        return a, tape.gradient(total, a)  # tensors: accepted
    return func


def test_keras_activation_gradient_and_ig_checks_name_softmax_class_and_rule(capsys):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    h = keras.layers.Rescaling(1 / 255)(inputs)
    h = keras.layers.Conv2D(4, 3, activation="relu", name="c1")(h)
    h = keras.layers.Conv2D(6, 3, strides=2, activation="relu", name="c2")(h)
    outputs = keras.layers.Dense(5)(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inputs, outputs)
    images = np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 3)).astype("float32")
    check = explain.check_keras_activation_gradient
    assert check("e", _keras_activation_gradient(), model, images, ["c1", "c2"])
    assert not check("e", _keras_activation_gradient("prob"), model, images, ["c2"])
    assert not check("e", _keras_activation_gradient("predicted"), model, images, ["c2"])

    def ig(model, x, base, target, m, offset=0.5, softmax=False):
        alphas = (np.arange(1, m + 1, dtype="float32") - offset) / m
        path = tf.constant(base + alphas[:, None, None, None] * (x - base))
        with tf.GradientTape() as tape:
            tape.watch(path)
            out = model(path, training=False)
            out = tf.nn.softmax(out) if softmax else out
            score = out[:, target]
        return (x - base) * tf.reduce_mean(tape.gradient(score, path), 0).numpy()

    assert explain.check_keras_ig("e", ig)
    assert not explain.check_keras_ig("e", lambda *a: ig(*a, offset=1.0))
    assert not explain.check_keras_ig("e", lambda *a: ig(*a, softmax=True))
    out = capsys.readouterr().out
    for named in ("PROBABILIDAD", "clase PREDICHA", "Riemann por la izquierda"):
        assert named in out


def _np_cam(a, g):  # Grad-CAM written with numpy on the torch inputs
    a, g = a.numpy(), g.numpy()
    return np.maximum(np.tensordot(g.mean(axis=(1, 2)), a, axes=1), 0)


LANDSCAPE = [(np.zeros((5, 9, 3)), 0), (np.zeros((9, 5, 3)), 1), (np.zeros((7, 2, 3)), 1)]
EQUIVALENT_AND_MISTAKE = {
    "cutmix_weight": (
        lambda: augment.check_cutmix_weight(
            "e", lambda lam, y0, y1, x0, x1, h, w: np.float32((y1 - y0) * (x1 - x0)) / (h * w)),
        lambda: augment.check_cutmix_weight("e", lambda lam, *box: 1 - lam), "recalcularse"),
    "brightness": (
        lambda: augment.check_brightness(
            "e", lambda x, d: torch.clamp(torch.tensor(x, dtype=torch.float64) + 255 * d, 0, 255)),
        lambda: augment.check_brightness("e", lambda x, d: np.clip(x + d, 0, 255)), "delta * 255"),
    "horizontal_flip": (
        lambda: augment.check_horizontal_flip("e", lambda b: np.flip(b, axis=2).copy()),
        lambda: augment.check_horizontal_flip("e", lambda b: b[:, ::-1]), "volteo VERTICAL"),
    "mixup_pair": (
        lambda: augment.check_mixup_pair(
            "e", lambda a, b, ya, yb, lam: [b + lam * (a - b), yb + lam * (ya - yb)]),
        lambda: augment.check_mixup_pair(
            "e", lambda a, b, ya, yb, lam: ((1 - lam) * a + lam * b, (1 - lam) * ya + lam * yb)),
        "intercambiados"),
    "landscape_count": (
        lambda: data.check_landscape_count("e", np.int64(1), LANDSCAPE),
        lambda: data.check_landscape_count("e", 2, LANDSCAPE), "verticales"),
    "grad_cam_formula": (
        lambda: explain.check_grad_cam_formula("e", _np_cam),
        lambda: explain.check_grad_cam_formula("e", lambda a, g: (g * a).sum(0).relu()),
        "píxel a píxel"),
    "guided_relu_rule": (
        lambda: explain.check_guided_relu_rule(
            "e", lambda z, g: torch.where((z > 0) & (g > 0), g, torch.zeros_like(g)).tolist()),
        lambda: explain.check_guided_relu_rule("e", lambda z, g: g.clamp(min=0)), "deconvnet"),
    "ig_linear": (
        lambda: explain.check_ig_linear("e", lambda w, x, b: (x.numpy() - b.numpy()) * w.numpy()),
        lambda: explain.check_ig_linear("e", lambda w, x, b: (b - x) * w), "signo"),
    "grad_cam_channels_last": (
        lambda: explain.check_grad_cam_channels_last(
            "e", lambda a, g: torch.relu(torch.tensor(a @ g.mean(axis=(0, 1))))),
        lambda: explain.check_grad_cam_channels_last("e", lambda a, g: a @ g.mean(axis=(0, 1))),
        "falta la ReLU"),
    "occlusion_passes": (
        lambda: explain.check_occlusion_passes("e", torch.tensor(170.0), 32, 8, 2),
        lambda: explain.check_occlusion_passes("e", 169, 32, 8, 2), "sin tapar"),
    "mass_inside_function": (
        lambda: explain.check_mass_inside_function(
            "e", lambda m, k: torch.tensor(np.abs(m)[k].sum() / np.abs(m).sum()).float()),
        lambda: explain.check_mass_inside_function("e", lambda m, k: np.abs(m)[k].sum() / k.sum()),
        "área de la máscara"),
    "best_epoch": (
        lambda: training.check_best_epoch("e", lambda h: np.argmax(h["val_accuracy"]) + 1.0),
        lambda: training.check_best_epoch("e", lambda h: np.argmax(h["val_accuracy"])),
        "empezando en 0"),
    "per_class_accuracy": (
        lambda: training.check_per_class_accuracy(
            "e", lambda cm: [cm[i, i] / cm[i].sum() for i in range(len(cm))]),
        lambda: training.check_per_class_accuracy("e", lambda cm: np.diag(cm) / cm.sum(0)),
        "COLUMNA"),
    "most_confused": (
        lambda: training.check_most_confused("e", np.array([1, 0]), np.array([[9, 1], [4, 6]])),
        lambda: training.check_most_confused("e", (0, 1), np.array([[9, 1], [4, 6]])), "al revés"),
}


@pytest.mark.parametrize("name", sorted(EQUIVALENT_AND_MISTAKE))
def test_each_check_accepts_an_equivalent_form_and_names_a_typical_mistake(name, capsys):
    right, wrong, message = EQUIVALENT_AND_MISTAKE[name]
    assert right(), capsys.readouterr().out
    assert not wrong()
    assert message in capsys.readouterr().out


def test_saliency_and_guided_grad_cam_checks_name_abs_channels_and_missing_cam(capsys):
    from toy_models import SmallConvNet

    from helpers.torch.explain import grad_cam, guided_backprop

    torch.manual_seed(1)
    model, x = SmallConvNet().eval(), torch.rand(3, 3, 8, 8)

    def gradient(m, image, c):
        copy = image.detach().clone().requires_grad_(True)
        return torch.autograd.grad(m(copy)[0, c], copy)[0]

    assert explain.check_saliency_function(  # numpy, [1, H, W]
        "e", lambda m, i, c: np.abs(gradient(m, i, c).numpy()).max(axis=1), model, x)
    assert not explain.check_saliency_function(
        "e", lambda m, i, c: gradient(m, i, c).amax(dim=1)[0], model, x)
    assert not explain.check_saliency_function(
        "e", lambda m, i, c: gradient(m, i, c).abs().sum(dim=1)[0], model, x)
    gbp, cam = guided_backprop(model, x), grad_cam(model, x, "conv2")
    assert explain.check_guided_grad_cam_product(
        "e", np.einsum("chw,hw->chw", gbp[0].numpy(), cam[0].numpy()), gbp, cam)
    assert not explain.check_guided_grad_cam_product("e", gbp[0], gbp, cam)
    out = capsys.readouterr().out
    assert "falta el valor absoluto" in out and "se sumaron los canales" in out
    assert "falta Grad-CAM" in out
