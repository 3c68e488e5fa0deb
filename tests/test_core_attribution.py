"""The attribution rules both tracks share: targets, baselines, quadrature, the path integral."""

import numpy as np
import pytest

from helpers.core import attribution as A
from helpers.core.filters import gaussian_blur, gaussian_taps


@pytest.mark.parametrize(("method", "steps"), [("gausslegendre", 7), ("trapezoid", 7)])
def test_quadrature_rules_integrate_polynomials(method, steps):
    alphas, weights = A.quadrature(method, steps)
    assert alphas.min() >= 0 and alphas.max() <= 1
    assert weights.sum() == pytest.approx(1.0, abs=1e-12)
    atol = 1e-12 if method == "gausslegendre" else 0.02
    assert (weights * alphas**3).sum() == pytest.approx(0.25, abs=atol)


def test_gauss_legendre_is_exact_up_to_degree_2n_minus_1_and_trapezoid_is_linear():
    alphas, weights = A.quadrature("gausslegendre", 3)
    assert (weights * alphas**5).sum() == pytest.approx(1 / 6, rel=1e-12)
    alphas, weights = A.quadrature("trapezoid", 5)
    np.testing.assert_allclose(alphas, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(weights, [0.125, 0.25, 0.25, 0.25, 0.125])


def test_riemann_sums_by_hand():
    # 4 sub-intervals of [0, 1]: left ends, right ends, midpoints, each weighted 1/4
    for method, nodes in [("riemann_left", [0, 0.25, 0.5, 0.75]),
                          ("riemann_right", [0.25, 0.5, 0.75, 1]),
                          ("riemann_middle", [0.125, 0.375, 0.625, 0.875])]:
        alphas, weights = A.quadrature(method, 4)
        np.testing.assert_allclose(alphas, nodes)
        np.testing.assert_allclose(weights, [0.25] * 4)
    # integral of a on [0, 1] = 1/2: left sums underestimate by 1/(2m), right ones overestimate,
    # midpoints are exact for lines
    sums = {m: (lambda a, w: (a * w).sum())(*A.quadrature(m, 4))
            for m in ("riemann_left", "riemann_right", "riemann_middle")}
    assert sums == pytest.approx({"riemann_left": 0.375, "riemann_right": 0.625,
                                  "riemann_middle": 0.5})


@pytest.mark.parametrize(("method", "steps"), [("simpson", 10), ("trapezoid", 1),
                                               ("gausslegendre", 0), ("riemann_left", 0)])
def test_quadrature_rejects_unknown_rules_and_too_few_steps(method, steps):
    with pytest.raises(ValueError, match="method must be"):
        A.quadrature(method, steps)


def test_path_integral_of_a_quadratic_is_exact():
    # f(x) = sum(x^2) / 2 has gradient x: IG = (x - x') * (x + x') / 2 = (x^2 - x'^2) / 2.
    rng = np.random.default_rng(0)
    x, ref = rng.normal(size=(3, 2, 4, 4)), rng.normal(size=(3, 2, 4, 4))
    alphas, weights = A.quadrature("gausslegendre", 2)
    calls = []

    def gradient(points, targets):
        calls.append(len(points))
        return points

    mean_grad = A.path_integral(gradient, x, ref, np.zeros(3, int), alphas, weights, 4,
                                np.zeros_like(x))
    np.testing.assert_allclose((x - ref) * mean_grad, (x**2 - ref**2) / 2, atol=1e-12)
    assert calls == [4, 2]  # 3 images x 2 steps in chunks of 4


def test_path_integral_passes_each_points_target():
    x = np.ones((2, 1, 1, 1))
    seen = []

    def gradient(points, targets):
        seen.extend(targets.tolist())
        return np.ones_like(points)

    A.path_integral(gradient, x, 0 * x, np.array([7, 9]), *A.quadrature("trapezoid", 3), 2,
                    np.zeros_like(x))
    assert seen == [7, 7, 7, 9, 9, 9]


@pytest.mark.parametrize("size", [0, -1, 2.5, True])
def test_chunk_size_must_be_a_positive_int(size):
    with pytest.raises(ValueError, match="batch_size"):
        list(A.path_chunks(2, 3, size))


def test_targets():
    assert A.resolve_targets(None, 3, 10) is None
    np.testing.assert_array_equal(A.resolve_targets(4, 3, 10), [4, 4, 4])
    np.testing.assert_array_equal(A.resolve_targets(np.int32(2), 2, 10), [2, 2])
    np.testing.assert_array_equal(A.resolve_targets([1, 2, 3], 3, 10), [1, 2, 3])
    assert A.resolve_targets(np.array([1, 2]), 2, 10).dtype == np.int64


@pytest.mark.parametrize(("target", "match"), [
    (10, r"out of range.*10 outputs \(0..9\), got \[10\]"),
    ([0, -1], "out of range"),
    ([0, 1, 2], "one class per image: expected 2"),
    ([[0, 1]], "one class per image"),
    ([0.5, 1.0], "integers"),
    ("cat", "target must be None, an int"),
    (True, "bool"),
    (np.array([True, False]), "bools"),
])
def test_bad_targets(target, match):
    with pytest.raises(ValueError, match=match):
        A.resolve_targets(target, 2, 10)


def test_baseline_names():
    assert A.check_baseline(None) == "black"
    assert all(A.check_baseline(name) == name for name in A.BASELINES)
    assert A.check_baseline(np.zeros(3)) is None
    with pytest.raises(ValueError, match="'black', 'gray', 'blur', 'mean', 'noise'"):
        A.check_baseline("white")


def test_unknown_name_message_suggests_and_lists():
    names = [f"conv_{i}" for i in range(20)] + ["logits"]
    text = A.unknown_name_message("layer", "logit", names, shown=5)
    assert text.startswith("unknown layer 'logit'. Did you mean 'logits'?")
    assert "last 5 of 21" in text and "conv_19" in text and "conv_0," not in text
    assert "Valid names: a, b (note)" in A.unknown_name_message("layer", "zz", ["a", "b"],
                                                                note="(note)")


def test_gaussian_taps_and_blur():
    taps = gaussian_taps(1.0, 32)
    assert len(taps) == 7 and taps.sum() == pytest.approx(1.0) and taps.argmax() == 3
    assert len(gaussian_taps(4.0, 5)) == 9  # radius capped at size - 1
    np.testing.assert_array_equal(gaussian_taps(4.0, 1), [1.0])
    flat = np.full((1, 6, 6, 3), 0.7)
    np.testing.assert_allclose(gaussian_blur(flat, 1.0), flat)
    line = np.random.default_rng(0).random((1, 1, 9, 2))  # a 1-pixel-high image
    assert gaussian_blur(line, 2.0).shape == line.shape
    for bad in (0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="sigma"):
            gaussian_taps(bad, 8)



def test_edge_map_is_high_on_a_step_and_zero_on_flat_regions():
    from helpers.core.filters import edge_map

    img = np.zeros((1, 8, 8, 3))
    img[:, :, 4:] = 90.0  # vertical step between columns 3 and 4
    edges = edge_map(img)
    assert edges.shape == (1, 8, 8)
    # Sobel across the step: (1 + 2 + 1) * 90 on both sides of it, 0 two columns away
    np.testing.assert_allclose(edges[0, :, [3, 4]], 360.0)
    np.testing.assert_allclose(edges[0, :, [0, 1, 6, 7]], 0.0)
    np.testing.assert_allclose(edge_map(np.moveaxis(img, 3, 1), channels_last=False), edges)
    with pytest.raises(ValueError, match="batch of images"):
        edge_map(img[0])
