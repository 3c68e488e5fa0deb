"""Model-randomization sanity check for Keras: copy, cumulative re-initialization, scores, cache."""

import keras
import numpy as np
import pytest

from helpers.core.similarity import ssim
from helpers.keras import explain as ke
from helpers.keras import models as km
from helpers.keras import sanity as ks
from helpers.keras.sanity import METRICS as METRICS_CHANNELS_LAST

S, K = 16, 4
L = keras.layers
CASCADE = ["logits", "conv3", "conv2", "bn1", "conv1"]  # top first, all the weights in the end


def tiny_classifier(seed: int = 0) -> keras.Model:
    """``image -> Preprocess -> backbone (nested: conv1, bn1, conv2, conv3) -> pool -> logits``.

    Built like :func:`helpers.keras.models.build_classifier` (no 1x1 stride-2 convolution:
    its filter gradient crashes under oneDNN, TF 2.21).
    """
    keras.utils.set_random_seed(seed)
    inp = keras.Input((S, S, 3))
    x = L.Conv2D(8, 3, padding="same", name="conv1")(inp)
    x = L.ReLU(name="relu1")(L.BatchNormalization(name="bn1")(x))
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv3")(x)
    backbone = keras.Model(inp, x, name="backbone")
    bn = backbone.get_layer("bn1")  # non-trivial values, so a reset to identity shows
    for var, value in zip(bn.weights, ([1.5] * 8, [0.2] * 8, [0.3] * 8, [2.0] * 8), strict=True):
        var.assign(np.asarray(value, np.float32))
    images = keras.Input((S, S, 3), name="image")
    x = backbone(km.Preprocess("mobilenet", name="preprocess")(images))
    x = L.Dropout(0.2, name="dropout")(L.GlobalAveragePooling2D(name="pool")(x))
    model = keras.Model(images, L.Dense(K, name="logits")(x), name="tiny_classifier")
    for var in model.weights:  # "trained" biases, so a reset to their zero init shows
        if var.name == "bias":
            var.assign(np.full(var.shape, 0.5, np.float32))
    return model


def glorot_std(shape: tuple[int, ...]) -> float:
    """Std of Keras' default GlorotUniform: sqrt(2 / (fan_in + fan_out)), Keras' fans."""
    receptive = int(np.prod(shape[:-2]))
    return (2 / (receptive * (shape[-2] + shape[-1]))) ** 0.5


def weights_of(model: keras.Model) -> dict[str, np.ndarray]:
    return {v.path: np.array(v.numpy()) for v in model.weights}


def grad_cam_conv3(model, x):
    return ke.grad_cam(model, x, layer="conv3")


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (4, S, S, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def mobilenet():
    keras.utils.set_random_seed(0)
    return km.build_classifier("mobilenet", 5, weights=None, input_size=64)


def test_cascade_randomizes_a_copy_cumulatively_and_leaves_the_model_untouched(images):
    model = tiny_classifier()
    before = weights_of(model)
    steps = list(ks.cascading_randomization(model, CASCADE, lambda m, x: weights_of(m), images))
    assert [name for name, _ in steps] == ["original", *CASCADE]
    after = weights_of(model)
    assert after.keys() == before.keys()
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value)
    original = steps[0][1]
    for path, value in original.items():  # the copy starts as the model
        np.testing.assert_array_equal(value, before[path])
    for k, (name, state) in enumerate(steps[1:], start=1):
        done = set(CASCADE[:k])
        for path, value in state.items():
            layer = path.split("/")[0]
            if layer not in done:  # not yet randomized: still the original weights
                np.testing.assert_array_equal(value, original[path], err_msg=f"{name}: {path}")
            elif layer != "bn1":  # randomized (at this step or before): new values
                assert not np.allclose(value, original[path]), f"{name}: {path}"
    final = steps[-1][1]
    for var, expected in [("gamma", 1), ("beta", 0), ("moving_mean", 0), ("moving_variance", 1)]:
        np.testing.assert_array_equal(final[f"bn1/{var}"], np.full(8, expected))
    # each layer from its own initializers: GlorotUniform kernels, zero biases
    for name, rel in [("logits", 0.35), ("conv3", 0.1), ("conv2", 0.1), ("conv1", 0.15)]:
        kernel = final[f"{name}/kernel"]
        assert kernel.std() == pytest.approx(glorot_std(kernel.shape), rel=rel), name
        limit = (3 ** 0.5) * glorot_std(kernel.shape)  # uniform on [-limit, limit]
        assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.8 * limit, name
        np.testing.assert_array_equal(final[f"{name}/bias"], 0.0)


def test_seeded_and_deterministic(images):
    model = tiny_classifier()

    def last(seed):
        steps = list(ks.cascading_randomization(model, ["logits", "conv3"],
                                                lambda m, x: weights_of(m), images, seed=seed))
        return steps[-1][1]

    a, b, c = last(0), last(0), last(1)
    for path in a:
        np.testing.assert_array_equal(a[path], b[path])
    assert not np.allclose(a["conv3/kernel"], c["conv3/kernel"])


@pytest.mark.filterwarnings("ignore:Grad-CAM:UserWarning")  # random models: all-zero maps
def test_weight_independent_map_scores_one_and_grad_cam_does_not(images):
    model = tiny_classifier()
    explainers = {
        "ignora los pesos": lambda m, x: np.asarray(x).sum(-1),  # channel sum, no model
        "grad_cam": grad_cam_conv3,
    }
    both = ks.randomization_metrics(model, CASCADE, explainers, images)
    assert set(both) == {"spearman", "ssim"}
    for metric, scores in both.items():
        assert set(scores) == set(explainers)
        for method, rows in scores.items():
            assert [layer for layer, _ in rows] == CASCADE, (metric, method)
            assert all(isinstance(s, float) for _, s in rows)
        assert all(s == pytest.approx(1.0) for _, s in scores["ignora los pesos"]), metric
        assert scores["grad_cam"][-1][1] < 0.9, metric
    assert ks.randomization_scores(model, CASCADE, explainers, images) == both["spearman"]
    with pytest.raises(ValueError, match="metric"):
        ks.randomization_scores(model, CASCADE, explainers, images, metric="pearson")


def test_ssim_sums_channels_last_maps():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(2, 2, 9, 7, 3))
    expected = ssim(np.abs(a).sum(-1), np.abs(b).sum(-1))
    np.testing.assert_allclose(METRICS_CHANNELS_LAST["ssim"](a, b), expected)
    assert ks.METRICS is METRICS_CHANNELS_LAST


@pytest.mark.filterwarnings("ignore:Grad-CAM:UserWarning")
def test_cached_grad_cam_of_the_copy_follows_its_new_weights(images):
    model = tiny_classifier()
    original = grad_cam_conv3(model, images)  # caches a graph for the caller's model first
    assert original.max() > 0
    explained = []

    def explain(m, x):
        explained.append(m)
        maps = grad_cam_conv3(m, x)  # the copy's cached graph, traced at the first step
        fresh = grad_cam_conv3(ks.copy_model(m), x)  # a new object: a graph traced just now
        np.testing.assert_allclose(maps, fresh, rtol=1e-5, atol=1e-6 * original.max())
        return maps

    steps = list(ks.cascading_randomization(model, ["logits", "conv3"], explain, images))
    assert explained[0] is not model and all(m is explained[0] for m in explained)
    np.testing.assert_allclose(steps[0][1], original, rtol=1e-5, atol=1e-6 * original.max())
    for name, maps in steps[1:]:
        assert not np.allclose(maps, original, atol=0.05 * original.max()), name
    assert not np.allclose(steps[1][1], steps[2][1])
    # another cascade (another copy, another seed): starts from the original again
    again = list(ks.cascading_randomization(model, ["logits"], grad_cam_conv3, images, seed=1))
    np.testing.assert_allclose(again[0][1], original, rtol=1e-5, atol=1e-6 * original.max())
    assert not np.allclose(again[1][1], steps[1][1])
    np.testing.assert_array_equal(grad_cam_conv3(model, images), original)


def test_unknown_or_weightless_layer_is_rejected_at_once(images):
    model = tiny_classifier()
    calls = []
    with pytest.raises(ValueError, match=r"unknown layer 'logit'. Did you mean 'logits'") as err:
        ks.cascading_randomization(model, ["logits", "logit"], lambda m, x: calls.append(m),
                                   images)
    assert "conv3" in str(err.value)  # the candidates are listed
    with pytest.raises(ValueError, match=r"'pool' has no weights.*logits, conv3"):
        ks.cascading_randomization(model, ["pool"], lambda m, x: calls.append(m), images)
    with pytest.raises(ValueError, match="unknown layer 'nope'"):
        ks.randomization_scores(model, ["nope"], {"x": lambda m, x: calls.append(m)}, images)
    assert calls == []


def test_copy_of_a_course_classifier_is_independent(mobilenet):
    x = np.random.default_rng(2).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    copy = ks.copy_model(mobilenet)
    assert [lyr.name for lyr in copy.layers] == [lyr.name for lyr in mobilenet.layers]
    assert isinstance(copy.get_layer("backbone"), keras.Model)
    assert copy.get_layer("backbone") is not mobilenet.get_layer("backbone")
    assert isinstance(copy.get_layer("preprocess"), km.Preprocess)
    assert copy.get_layer("preprocess").module == "mobilenet"
    assert not {id(v) for v in copy.weights} & {id(v) for v in mobilenet.weights}
    feats = [np.asarray(km.feature_extractor(m)(x)) for m in (mobilenet, copy)]
    np.testing.assert_allclose(feats[1], feats[0], rtol=1e-5, atol=0)
    assert np.abs(feats[0]).max() > 0


@pytest.mark.filterwarnings("ignore:Grad-CAM:UserWarning")
def test_default_cascade_on_a_course_classifier(mobilenet):
    assert ks.default_cascade(mobilenet) == [
        "logits", "conv_pw_13", "conv_dw_13", "conv_pw_12", "conv_dw_12"]
    assert ks.default_cascade(tiny_classifier(), n_layers=2) == ["logits", "conv3", "conv2"]
    flat = keras.Sequential([keras.Input((S, S, 3)), L.Conv2D(4, 3, name="c1"),
                             L.BatchNormalization(name="b1"), L.Conv2D(4, 3, name="c2"),
                             L.GlobalAveragePooling2D(), L.Dense(K, name="out")])
    assert ks.default_cascade(flat, n_layers=1) == ["out", "c2"]  # no backbone: top-most kernels
    x = np.random.default_rng(3).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    before = weights_of(mobilenet)
    layers = ks.default_cascade(mobilenet, n_layers=2)

    def explain(m, images):
        kernels = {lyr: m.get_layer("backbone").get_layer(lyr).kernel.numpy()
                   for lyr in ("conv_pw_13", "conv_dw_13")}
        return ke.grad_cam(m, images, layer="conv_pw_13_relu"), kernels

    steps = list(ks.cascading_randomization(mobilenet, layers, explain, x))
    assert [name for name, _ in steps] == ["original", *layers]
    np.testing.assert_allclose(steps[0][1][0],
                               ke.grad_cam(mobilenet, x, layer="conv_pw_13_relu"), rtol=1e-4)
    pw, dw = (steps[-1][1][1][lyr] for lyr in ("conv_pw_13", "conv_dw_13"))
    assert pw.shape[:2] == (1, 1) and dw.shape[-1] == 1
    # re-drawn from their own GlorotUniform initializers (Keras' fans: depthwise [3,3,C,1])
    assert pw.std() == pytest.approx(glorot_std(pw.shape), rel=0.05)
    assert dw.std() == pytest.approx(glorot_std(dw.shape), rel=0.15)
    after = weights_of(mobilenet)
    for path, value in before.items():
        np.testing.assert_array_equal(after[path], value)
