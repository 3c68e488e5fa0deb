"""Deletion / insertion curves, AUC, reference maps and SSIM, with hand-computed answers.

The numpy core (:mod:`helpers.core.quality`) is tested with plain-numpy ``score_fn`` callbacks; the
PyTorch and Keras adapters on tiny models whose probabilities have a closed form.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn
from toy_models import PixelLinear

from helpers.core import filters, similarity
from helpers.core import quality as Q
from helpers.torch import metrics as tm
from helpers.torch.explain import gaussian_blur as torch_blur
from helpers.torch.normalization import CIFAR10


def mean_score(batch, rows):
    """Score = mean of all pixel values of each image (channels included)."""
    return batch.reshape(len(batch), -1).mean(axis=1)


IMG = np.array([[1.0, 2.0], [3.0, 4.0]])[None, None]  # [1,1,2,2], channels first
MAP = np.array([[[0.1, 0.4], [0.3, 0.2]]])  # order: (0,1)=2, (1,0)=3, (1,1)=4, (0,0)=1


# --- curves computed by hand -------------------------------------------------------------------


def test_deletion_and_insertion_by_hand_on_a_2x2_image():
    deletion = Q.deletion_curve(mean_score, IMG, MAP, steps=4)
    insertion = Q.insertion_curve(mean_score, IMG, MAP, steps=4)
    # deletion removes 2, then 3, then 4, then 1: means 10/4, 8/4, 5/4, 1/4, 0
    np.testing.assert_allclose(deletion, [[2.5, 2.0, 1.25, 0.25, 0.0]])
    np.testing.assert_allclose(insertion, [[0.0, 0.5, 1.25, 2.25, 2.5]])
    # trapezoids on x = 0, 1/4, ..., 1: (2.25 + 1.625 + 0.75 + 0.125) / 4
    np.testing.assert_allclose(Q.auc(deletion), [1.1875])
    np.testing.assert_allclose(Q.auc(insertion), [1.3125])


def test_the_baseline_is_what_removed_pixels_become_and_where_insertion_starts():
    base = np.full_like(IMG, 10.0)
    np.testing.assert_allclose(Q.deletion_curve(mean_score, IMG, MAP, steps=4, baseline=base),
                               [[2.5, 4.5, 6.25, 7.75, 10.0]])  # (1 + 10 + 3 + 4) / 4 = 4.5
    np.testing.assert_allclose(Q.insertion_curve(mean_score, IMG, MAP, steps=4, baseline=10.0),
                               [[10.0, 8.0, 6.25, 4.75, 2.5]])


def test_ties_are_broken_in_row_major_order():
    flat = np.zeros((1, 2, 2))
    np.testing.assert_array_equal(Q.pixel_order(flat), [[0, 1, 2, 3]])
    np.testing.assert_array_equal(Q.pixel_order(np.array([[[1.0, 2.0], [2.0, 1.0]]])),
                                  [[1, 2, 0, 3]])
    # removes 1, 2, 3, 4 in turn: (9, 7, 4, 0) / 4
    np.testing.assert_allclose(Q.deletion_curve(mean_score, IMG, flat, steps=4),
                               [[2.5, 2.25, 1.75, 1.0, 0.0]])


def test_uneven_steps_remove_floor_of_k_pixels_over_steps():
    np.testing.assert_array_equal(Q.step_counts(4, 3), [0, 1, 2, 4])
    np.testing.assert_array_equal(Q.step_counts(10, 4), [0, 2, 5, 7, 10])
    np.testing.assert_allclose(Q.deletion_curve(mean_score, IMG, MAP, steps=3),
                               [[2.5, 2.0, 1.25, 0.0]])


def test_auc_of_known_curves():
    np.testing.assert_allclose(Q.auc([0.0, 1.0]), 0.5)
    np.testing.assert_allclose(Q.auc([[1.0, 1.0, 1.0], [0.0, 0.0, 1.0]]), [1.0, 0.25])
    np.testing.assert_allclose(Q.auc(1 - np.linspace(0, 1, 11)), 0.5)  # exact on lines
    # trapezoids overestimate x^2 by h^2/6: 1/3 + 1/600 with h = 1/10
    np.testing.assert_allclose(Q.auc(np.linspace(0, 1, 11) ** 2), 1 / 3 + 1 / 600)
    with pytest.raises(ValueError, match="2 points"):
        Q.auc([1.0])


def region_model():
    """8x8 images; the score is the mean of the 4x4 block rows 2..5, cols 3..6."""
    region = np.zeros((8, 8), dtype=bool)
    region[2:6, 3:7] = True

    def score(batch, rows):
        return batch[:, 0][:, region].mean(axis=1)

    return region, score


def test_true_importance_beats_random_beats_inverted_with_exact_areas():
    region, score = region_model()
    x = np.ones((1, 1, 8, 8))
    perfect = region[None].astype(float)
    inverted = 1.0 - perfect
    rand = Q.random_map((1, 8, 8), seed=0)
    dele = {name: Q.deletion_curve(score, x, m, steps=8)
            for name, m in [("perfect", perfect), ("random", rand), ("inverted", inverted)]}
    ins = {name: Q.insertion_curve(score, x, m, steps=8)
           for name, m in [("perfect", perfect), ("random", rand), ("inverted", inverted)]}
    # 8 pixels per step; the 16 region pixels go in steps 1-2 (perfect) or 7-8 (inverted)
    np.testing.assert_allclose(dele["perfect"][0], [1, 0.5, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(dele["inverted"][0], [1, 1, 1, 1, 1, 1, 1, 0.5, 0])
    np.testing.assert_allclose(Q.auc(dele["perfect"]), [0.125])
    np.testing.assert_allclose(Q.auc(dele["inverted"]), [0.875])
    np.testing.assert_allclose(Q.auc(ins["perfect"]), [0.875])
    np.testing.assert_allclose(Q.auc(ins["inverted"]), [0.125])
    a_del = {k: Q.auc(v)[0] for k, v in dele.items()}
    a_ins = {k: Q.auc(v)[0] for k, v in ins.items()}
    assert a_del["perfect"] < a_del["random"] < a_del["inverted"]
    assert a_ins["perfect"] > a_ins["random"] > a_ins["inverted"]


def test_perfect_map_of_a_linear_model_is_pointwise_best():
    rng = np.random.default_rng(1)
    w = rng.random((6, 6))
    x = rng.uniform(0.5, 1.0, (4, 6, 6, 3))  # channels last, positive
    contrib = (w[None, :, :, None] * x).sum(axis=-1)  # exact share of each pixel in the score

    def score(batch, rows):
        return (w[None, :, :, None] * batch).sum(axis=(1, 2, 3))

    perfect = Q.deletion_curve(score, x, contrib, steps=9)
    inverted = Q.deletion_curve(score, x, -contrib, steps=9)
    rand = Q.deletion_curve(score, x, Q.random_map((4, 6, 6), seed=3), steps=9)
    assert (perfect <= rand + 1e-12).all() and (rand <= inverted + 1e-12).all()
    assert (Q.auc(perfect) < Q.auc(rand)).all() and (Q.auc(rand) < Q.auc(inverted)).all()
    np.testing.assert_allclose(perfect[:, 0], contrib.sum(axis=(1, 2)))
    np.testing.assert_allclose(perfect[:, -1], 0.0, atol=1e-12)


# --- batching and layout -----------------------------------------------------------------------


def naive_deletion(score_one, image_chw, heat, steps, baseline):
    """One perturbed image at a time, written with explicit loops."""
    h, w = heat.shape
    order = sorted(range(h * w), key=lambda p: (-heat.flat[p], p))
    out = []
    for k in range(steps + 1):
        img = image_chw.copy()
        for p in order[: k * h * w // steps]:
            img[:, p // w, p % w] = baseline[:, p // w, p % w]
        out.append(score_one(img))
    return np.array(out)


def test_batched_equals_per_image_and_naive_loops():
    rng = np.random.default_rng(2)
    n, steps = 3, 5
    x = rng.random((n, 2, 5, 6))
    heat = rng.random((n, 5, 6))
    heat[0, :2] = 0.5  # some ties
    base = rng.random((n, 2, 5, 6))
    weights = rng.normal(size=(n, 2, 5, 6))  # a different "target" per image
    sizes = []

    def score(batch, rows):
        sizes.append(len(batch))
        return 1 / (1 + np.exp(-(weights[rows] * batch).sum(axis=(1, 2, 3))))

    batched = Q.deletion_curve(score, x, heat, steps=steps, baseline=base, batch_size=4)
    assert sizes == [4, 4, 4, 4, 2]  # 3 x 6 = 18 images in chunks of 4
    single = np.concatenate([
        Q.deletion_curve(lambda b, r, i=i: score(b, np.full(len(b), i)), x[i:i + 1],
                         heat[i:i + 1], steps=steps, baseline=base[i:i + 1], batch_size=1)
        for i in range(n)])
    np.testing.assert_allclose(batched, single)
    for i in range(n):
        naive = naive_deletion(lambda img, i=i: score(img[None], np.array([i]))[0], x[i],
                               heat[i], steps, base[i])
        np.testing.assert_allclose(batched[i], naive)
    insertion = Q.insertion_curve(score, x, heat, steps=steps, baseline=base, batch_size=7)
    np.testing.assert_allclose(insertion[:, 0], score(base, np.arange(n)))
    np.testing.assert_allclose(insertion[:, -1], score(x, np.arange(n)))


def test_layouts_agree_and_ambiguous_shapes_need_the_flag():
    rng = np.random.default_rng(3)
    x_first = rng.random((2, 3, 4, 5))
    heat = rng.random((2, 4, 5))
    x_last = x_first.transpose(0, 2, 3, 1)
    first = Q.deletion_curve(mean_score, x_first, heat, steps=4)
    last = Q.deletion_curve(mean_score, x_last, heat, steps=4)
    np.testing.assert_allclose(first, last)
    np.testing.assert_allclose(Q.deletion_curve(mean_score, x_last, heat[0], steps=4)[0],
                               last[0])  # one [H,W] map for every image
    cube = rng.random((1, 3, 3, 3))
    with pytest.raises(ValueError, match="channels_last"):
        Q.deletion_curve(mean_score, cube, rng.random((1, 3, 3)))
    a = Q.deletion_curve(mean_score, cube, rng.random((1, 3, 3)), channels_last=True, steps=3)
    assert a.shape == (1, 4)
    with pytest.raises(ValueError, match="do not match"):
        Q.deletion_curve(mean_score, x_first, heat, channels_last=True)


def test_invalid_inputs_are_rejected():
    with pytest.raises(ValueError, match="steps"):
        Q.deletion_curve(mean_score, IMG, MAP, steps=5)  # more steps than pixels
    with pytest.raises(ValueError, match="NaN"):
        Q.deletion_curve(mean_score, IMG, np.full((1, 2, 2), np.nan), steps=2)
    with pytest.raises(ValueError, match="one score per image"):
        Q.deletion_curve(lambda b, r: np.zeros(1), IMG, MAP, steps=2, batch_size=3)
    with pytest.raises(ValueError, match="broadcast"):
        Q.deletion_curve(mean_score, IMG, MAP, steps=2, baseline=np.zeros((2, 2, 2, 2)))


# --- reference maps and blur -------------------------------------------------------------------


def test_reference_maps():
    np.testing.assert_array_equal(Q.random_map((2, 3, 4), seed=5), Q.random_map((2, 3, 4), 5))
    assert not np.array_equal(Q.random_map((2, 3, 4), seed=5), Q.random_map((2, 3, 4), seed=6))
    g = Q.centered_gaussian_map(5, 7, sigma=2.0)
    assert g.shape == (5, 7) and g[2, 3] == 1.0 and np.unravel_index(g.argmax(), g.shape) == (2, 3)
    np.testing.assert_allclose(g[2, 5], math.exp(-0.5))  # 2 pixels = one sigma away
    np.testing.assert_allclose(g, g[::-1, ::-1])
    # even sizes: the peak is between the four central pixels, which tie
    g4 = Q.centered_gaussian_map(4, 4)
    np.testing.assert_allclose(g4[1:3, 1:3], g4[1, 1])
    np.testing.assert_array_equal(Q.pixel_order(g4[None])[0, :4], [5, 6, 9, 10])


def test_numpy_blur_matches_the_torch_blur():
    for shape, sigma in [((2, 3, 32, 32), None), ((1, 2, 9, 13), 1.7), ((1, 1, 5, 5), 4.0)]:
        x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
        s = max(shape[2:]) / 8 if sigma is None else sigma
        expected = torch_blur(x, s).numpy()
        np.testing.assert_allclose(filters.gaussian_blur(x.numpy(), sigma, channels_last=False),
                                   expected, atol=1e-6)
        np.testing.assert_allclose(
            filters.gaussian_blur(x.numpy().transpose(0, 2, 3, 1), sigma).transpose(0, 3, 1, 2),
            expected, atol=1e-6)


# --- SSIM --------------------------------------------------------------------------------------


def test_ssim_identity_invariances_and_inversion():
    a = np.random.default_rng(4).random((3, 16, 16))
    np.testing.assert_allclose(similarity.ssim(a, a), 1.0)
    np.testing.assert_allclose(similarity.ssim(a, 3 * a + 2), 1.0)  # each map is scaled to [0, 1]
    np.testing.assert_allclose(similarity.ssim(a, -a), 1.0)  # magnitudes by default
    inverted = similarity.ssim(a, 1 - a, absolute=False)
    assert (inverted < -0.9).all()


def test_ssim_of_unrelated_random_maps_is_near_zero():
    rng = np.random.default_rng(5)
    s = similarity.ssim(rng.random((8, 64, 64)), rng.random((8, 64, 64)))
    assert abs(s.mean()) < 0.02 and np.abs(s).max() < 0.1


def test_ssim_of_constant_maps_is_defined():
    flat, dense = np.full((1, 16, 16), 3.0), np.random.default_rng(6).random((1, 16, 16))
    np.testing.assert_array_equal(similarity.ssim(flat, np.zeros((1, 16, 16))), [1.0])
    assert 0 <= similarity.ssim(flat, dense)[0] < 0.01
    sparse = np.zeros((1, 32, 32))
    sparse[0, 12:20, 12:20] = 1.0  # 1/16 of the map: the empty rest matches the constant map
    assert 0.5 < similarity.ssim(np.ones((1, 32, 32)), sparse)[0] < 0.95
    with pytest.raises(ValueError, match="N,H,W"):
        similarity.ssim(np.ones((1, 3, 8, 8)), np.ones((1, 3, 8, 8)))


def test_ssim_map_matches_the_formula_with_an_explicit_window():
    rng = np.random.default_rng(7)
    a, b = rng.random((1, 15, 15)), rng.random((1, 15, 15))
    taps = np.exp(-0.5 * (np.arange(-5, 6) / 1.5) ** 2)  # radius = round(3.5 * 1.5) = 5
    win = np.outer(taps, taps) / taps.sum() ** 2
    pa, pb = a[0, 2:13, 3:14], b[0, 2:13, 3:14]  # the 11x11 window centred at (7, 8)
    mu_a, mu_b = (win * pa).sum(), (win * pb).sum()
    var_a, var_b = (win * pa**2).sum() - mu_a**2, (win * pb**2).sum() - mu_b**2
    cov = (win * pa * pb).sum() - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    expected = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
                / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    np.testing.assert_allclose(similarity.ssim_map(a, b)[0, 7, 8], expected)


# --- PyTorch adapter ---------------------------------------------------------------------------


def bn_dropout_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                        nn.Dropout(0.5), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    with torch.no_grad():
        net[1].running_mean.uniform_(-1, 1)
        net[1].running_var.uniform_(0.5, 2)
    net.normalization = CIFAR10
    return net


def test_probability_fn_runs_in_eval_mode_and_restores_the_model():
    net = bn_dropout_net().train()
    net[6].weight.requires_grad_(False)
    x = torch.randn(4, 3, 6, 6)
    x_before = x.clone()
    with torch.no_grad():
        expected = net.eval()(x).softmax(1)
    net.train()
    fn = tm.probability_fn(net, [2, 0, 1, 1])
    p = fn(x)  # rows None: row b is image b
    np.testing.assert_allclose(p, expected[torch.arange(4), torch.tensor([2, 0, 1, 1])],
                               rtol=1e-5)
    np.testing.assert_allclose(fn(x.numpy()[[3, 0]], np.array([3, 0])), p[[3, 0]], rtol=1e-6)
    np.testing.assert_allclose(tm.probability_fn(net, 1)(x), expected[:, 1], rtol=1e-5)
    assert all(m.training for m in net.modules())
    assert [q.requires_grad for q in net.parameters()] == [True] * 4 + [False, True]
    assert torch.equal(x, x_before) and x.grad is None
    with pytest.raises(ValueError, match="target"):
        tm.probability_fn(net, None)
    with pytest.raises(ValueError, match="out of range"):
        tm.probability_fn(net, 3)(x)


def ln_pixel_model(w):
    model = PixelLinear(torch.as_tensor(w, dtype=torch.float32))
    model.normalization = CIFAR10
    return model


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def test_torch_deletion_insertion_endpoints_and_baselines():
    rng = np.random.default_rng(8)
    w = rng.normal(size=(3, 8, 8)) * 0.1
    model = ln_pixel_model(w)
    x = CIFAR10.normalize(torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)))
    heat = rng.random((2, 8, 8))

    def p0(inp):  # softmax class 0 of PixelLinear = sigmoid(w . x)
        return sigmoid((w * np.asarray(inp, dtype=np.float64)).sum(axis=(1, 2, 3)))

    refs = {"black": CIFAR10.constant(x, 0.0), "gray": CIFAR10.constant(x, 0.5),
            "blur": torch_blur(x, 1.0), "tensor": torch.zeros(1, 3, 1, 1)}
    for name, ref in refs.items():
        res = tm.deletion_insertion(model, x, heat, target=0, steps=8,
                                    baseline=ref if name == "tensor" else name)
        assert res.deletion.shape == res.insertion.shape == (2, 9)
        np.testing.assert_allclose(res.deletion[:, 0], p0(x), rtol=1e-5)
        np.testing.assert_allclose(res.deletion[:, -1], p0(ref.expand_as(x)), rtol=1e-5)
        np.testing.assert_allclose(res.insertion[:, 0], p0(ref.expand_as(x)), rtol=1e-5)
        np.testing.assert_allclose(res.insertion[:, -1], p0(x), rtol=1e-5)
        np.testing.assert_allclose(res.deletion_auc, Q.auc(res.deletion))
        np.testing.assert_allclose(res.fractions, np.linspace(0, 1, 9))
    with pytest.raises(ValueError, match="baseline"):
        tm.deletion_insertion(model, x, heat, baseline="white")


def test_torch_true_contributions_beat_random_beat_inverted():
    rng = np.random.default_rng(9)
    w = rng.normal(size=(3, 8, 8)) * 0.3
    model = ln_pixel_model(w)
    x = CIFAR10.normalize(torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(2)))
    ref = CIFAR10.constant(x, 0.0)
    contrib = (torch.as_tensor(w, dtype=torch.float32) * (x - ref)).sum(1)  # logit shares
    out = {name: tm.deletion_insertion(model, x, m, target=0, steps=16, baseline="black")
           for name, m in [("perfect", contrib), ("random", Q.random_map((3, 8, 8), seed=0)),
                           ("inverted", -contrib)]}
    assert (out["perfect"].deletion_auc < out["random"].deletion_auc).all()
    assert (out["random"].deletion_auc < out["inverted"].deletion_auc).all()
    assert (out["perfect"].insertion_auc > out["random"].insertion_auc).all()
    assert (out["random"].insertion_auc > out["inverted"].insertion_auc).all()


def test_torch_adapter_leaves_model_and_input_untouched_and_uses_the_prediction():
    net = bn_dropout_net().train()
    x = torch.randn(3, 3, 8, 8, requires_grad=True)
    x_before = x.detach().clone()
    channel_maps = torch.rand(3, 3, 8, 8)
    res = tm.deletion_insertion(net, x, channel_maps, steps=4, baseline="gray", batch_size=5)
    assert all(m.training for m in net.modules())
    assert torch.equal(x.detach(), x_before) and x.grad is None and x.requires_grad
    with torch.no_grad():
        probs = net.eval()(x_before).softmax(1)
    np.testing.assert_allclose(res.deletion[:, 0], probs.max(1).values, rtol=1e-5)  # target None
    again = tm.deletion_insertion(net, x, channel_maps.abs().sum(1).numpy(), steps=4,
                                  baseline="gray", target=probs.argmax(1))
    np.testing.assert_allclose(again.deletion, res.deletion, rtol=1e-6)  # as_heatmaps
    np.testing.assert_allclose(again.insertion, res.insertion, rtol=1e-6)


# --- Keras adapter -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keras_setup():
    keras = pytest.importorskip("keras")
    from helpers.keras import metrics as km

    rng = np.random.default_rng(10)
    w = rng.normal(size=(4, 4, 2)) * 0.01  # logits [w . x, 0] on raw pixels
    model = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.Flatten(),
                              keras.layers.Dense(2, use_bias=False)])
    model.layers[-1].set_weights([np.stack([w.reshape(-1), np.zeros(w.size)], axis=1)])
    images = rng.uniform(0, 255, (3, 4, 4, 2)).astype(np.float32)
    return km, model, w, images


def test_keras_probability_fn_and_curves(keras_setup):
    km, model, w, images = keras_setup

    def p0(inp):
        return sigmoid((w * np.asarray(inp, dtype=np.float64)).sum(axis=(1, 2, 3)))

    fn = km.probability_fn(model, [0, 1, 0])
    np.testing.assert_allclose(fn(images), [p0(images)[0], 1 - p0(images)[1], p0(images)[2]],
                               rtol=1e-5)
    np.testing.assert_allclose(fn(images[[2, 1]], np.array([2, 1])),
                               fn(images)[[2, 1]], rtol=1e-6)
    contrib = (w * images).sum(axis=-1)  # black baseline: x - 0
    refs = {"black": np.zeros_like(images), "gray": np.full_like(images, 127.5),
            "blur": filters.gaussian_blur(images)}
    for name, ref in refs.items():
        res = km.deletion_insertion(model, images, contrib, target=0, steps=4, baseline=name)
        np.testing.assert_allclose(res.deletion[:, 0], p0(images), rtol=1e-5)
        np.testing.assert_allclose(res.deletion[:, -1], p0(ref), rtol=1e-5)
        np.testing.assert_allclose(res.insertion[:, 0], p0(ref), rtol=1e-5)
        # the adapter equals the numpy core fed the exact probability
        core = Q.deletion_insertion(lambda b, r: p0(b), images, contrib, steps=4, baseline=ref)
        np.testing.assert_allclose(res.deletion, core.deletion, rtol=1e-4)
        np.testing.assert_allclose(res.insertion, core.insertion, rtol=1e-4)
    perfect = km.deletion_insertion(model, images, contrib, target=0, steps=8, baseline="black")
    inverted = km.deletion_insertion(model, images, -contrib, target=0, steps=8,
                                     baseline="black")
    rand = km.deletion_insertion(model, images, Q.random_map((3, 4, 4), seed=1), target=0,
                                 steps=8, baseline="black")
    assert (perfect.deletion_auc < rand.deletion_auc).all()
    assert (rand.deletion_auc < inverted.deletion_auc).all()
    assert (perfect.insertion_auc > rand.insertion_auc).all()
    assert (rand.insertion_auc > inverted.insertion_auc).all()
    predicted = km.deletion_insertion(model, images, contrib, steps=4, baseline="gray")
    np.testing.assert_allclose(predicted.deletion[:, 0], np.maximum(p0(images), 1 - p0(images)),
                               rtol=1e-5)
