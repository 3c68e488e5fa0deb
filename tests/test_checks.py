"""Exercise checks accept the reference answers and name the typical mistakes."""

import pytest
import torch

from helpers import checks


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


def test_check_function_reports_stub_errors_and_wrong_values(capsys):
    def stub(a):
        raise NotImplementedError

    assert not checks.check_function("e", stub, [((1,), 1)])
    assert not checks.check_function("e", lambda a: a + 1, [((1,), 1)])
    assert not checks.check_function("e", lambda a: 1 / 0, [((1,), 1)])
    assert checks.check_function("e", lambda a: 2 * a, [((1,), 2), ((3,), 6)])
    out = capsys.readouterr().out
    assert "no está implementada" in out and "ZeroDivisionError" in out


def _cam(alpha_from="mean", relu=True):
    def f(a, g):
        alpha = g.mean((1, 2), keepdim=True) if alpha_from == "mean" else g.sum((1, 2), True)
        cam = (alpha * a).sum(0)
        return cam.relu() if relu else cam
    return f


def test_grad_cam_check_names_the_mistake(capsys):
    assert checks.check_grad_cam_formula("e", _cam())
    assert not checks.check_grad_cam_formula("e", _cam(relu=False))
    assert not checks.check_grad_cam_formula("e", _cam(alpha_from="sum"))
    out = capsys.readouterr().out
    assert "falta la ReLU" in out and "suma de los gradientes" in out


def test_guided_relu_check_names_the_mistake(capsys):
    assert checks.check_guided_relu_rule("e", lambda z, g: g.clamp(min=0) * (z > 0))
    assert not checks.check_guided_relu_rule("e", lambda z, g: g * (z > 0))
    assert not checks.check_guided_relu_rule("e", lambda z, g: g.clamp(min=0))
    out = capsys.readouterr().out
    assert "gradiente normal" in out and "deconvnet" in out


def test_ig_linear_check_names_the_mistake(capsys):
    assert checks.check_ig_linear("e", lambda w, x, b: (x - b) * w)
    assert not checks.check_ig_linear("e", lambda w, x, b: w)
    assert not checks.check_ig_linear("e", lambda w, x, b: x * w)
    assert not checks.check_ig_linear("e", lambda w, x, b: torch.zeros(3))
    out = capsys.readouterr().out
    assert "falta el factor" in out and "en vez de por (x - x')" in out and "forma" in out


def test_cutmix_weight_check_rejects_the_unadjusted_lambda(capsys):
    def right(lam, y0, y1, x0, x1, h, w):
        return (y1 - y0) * (x1 - x0) / (h * w)

    assert checks.check_cutmix_weight("e", right)
    assert not checks.check_cutmix_weight("e", lambda lam, *box: 1 - lam)
    assert not checks.check_cutmix_weight("e", lambda lam, *box: lam)
    out = capsys.readouterr().out
    assert "recalcularse" in out and "imagen original" in out
