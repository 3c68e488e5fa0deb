"""Grad-CAM and Integrated Gradients for Keras models, nested backbones included."""

import logging
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers.keras import explain as ke
from helpers.keras import models as km

S, K = 16, 3
L = keras.layers


def toy_parts(seed: int = 0):
    """Backbone (conv1 -> bn -> conv2 [stride 2] + shortcut -> add -> relu) and head layers."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((S, S, 3))
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inp)
    x = L.BatchNormalization(name="bn")(x)
    a = L.Conv2D(6, 3, strides=2, padding="same", name="conv2")(x)
    # (not a 1x1 stride-2 conv: its filter gradient corrupts the heap under oneDNN, TF 2.21)
    b = L.Conv2D(6, 2, strides=2, name="shortcut")(x)
    out = L.ReLU(name="out")(L.Add(name="add")([a, b]))
    backbone = keras.Model(inp, out, name="backbone")
    bn = backbone.get_layer("bn")  # non-trivial statistics: training mode would show
    bn.moving_mean.assign(np.linspace(0.1, 0.5, 4))
    bn.moving_variance.assign(np.linspace(0.5, 2.0, 4))
    head = [L.GlobalAveragePooling2D(name="pool"), L.Dropout(0.5, name="dropout"),
            L.Dense(K, name="logits")]
    return backbone, L.Rescaling(1 / 255, name="scale"), head


def nested_model(parts):
    backbone, scale, head = parts
    inp = keras.Input((S, S, 3))
    x = backbone(scale(inp))
    for layer in head:
        x = layer(x)
    return keras.Model(inp, x)


def flat_model(parts):
    """The same layers (same weights) in one flat graph; also returns its symbolic tensors."""
    backbone, scale, head = parts
    inp = keras.Input((S, S, 3))
    t = {"scale": scale(inp)}
    t["conv1"] = backbone.get_layer("conv1")(t["scale"])
    t["bn"] = backbone.get_layer("bn")(t["conv1"])
    t["conv2"] = backbone.get_layer("conv2")(t["bn"])
    t["add"] = backbone.get_layer("add")([t["conv2"], backbone.get_layer("shortcut")(t["bn"])])
    t["out"] = x = backbone.get_layer("out")(t["add"])
    for layer in head:
        x = layer(x)
    return keras.Model(inp, x), t


@pytest.fixture(scope="module")
def models():
    parts = toy_parts()
    flat, tensors = flat_model(parts)
    return nested_model(parts), flat, tensors


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (5, S, S, 3)).astype(np.float32)


def tape_reference(flat, tensors, layer, x, t):
    """Grad-CAM written out by hand on the flat model's own tensors."""
    probe = keras.Model(flat.input, [tensors[layer], flat.output])
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        acts, logits = probe(x, training=False)
        score = tf.reduce_sum(tf.gather(logits, t, batch_dims=1))
    grads = tape.gradient(score, acts).numpy()
    acts = acts.numpy()
    cams = []
    for n in range(len(x)):  # per image, per channel, exactly as in the paper
        alpha = grads[n].mean(axis=(0, 1))
        cams.append(np.maximum((acts[n] * alpha).sum(axis=-1), 0))
    cams = np.stack(cams)[..., None]
    return tf.image.resize(cams, (S, S), method="bilinear").numpy()[..., 0]


@pytest.mark.parametrize("layer", ["conv1", "bn", "conv2", "out"])
def test_matches_a_hand_written_gradient_tape(models, images, layer):
    nested, flat, tensors = models
    t = np.array([0, 1, 2, 1, 0])
    expected = tape_reference(flat, tensors, layer, images, t)
    assert expected.max() > 0
    np.testing.assert_allclose(ke.grad_cam(nested, images, layer, t), expected,
                               rtol=1e-4, atol=1e-6 * expected.max())


def test_nested_and_flat_models_give_the_same_maps(models, images):
    nested, flat, _ = models
    for layer in ("conv1", "conv2", "add", None):
        np.testing.assert_allclose(ke.grad_cam(nested, images, layer),
                                   ke.grad_cam(flat, images, layer), rtol=1e-4, atol=1e-7)


def test_the_keras_io_recipe_fails_on_nested_layers(models):
    nested = models[0]
    inner = nested.get_layer("backbone").get_layer("conv2")
    with pytest.raises(ValueError):
        keras.Model(nested.inputs, [inner.output, nested.output])


def test_last_layer_before_pooling_has_the_closed_form(models, images):
    """With logits = W^T mean(A) + b, d logit_t / dA^k = W[k, t] / (h w) everywhere."""
    nested = models[0]
    kernel = nested.get_layer("logits").kernel.numpy()
    acts = nested.get_layer("backbone")(images / 255, training=False).numpy()
    h, w = acts.shape[1:3]
    for t in range(K):
        coarse = np.maximum(acts @ kernel[:, t] / (h * w), 0)[..., None]
        expected = tf.image.resize(coarse, (S, S), method="bilinear").numpy()[..., 0]
        np.testing.assert_allclose(ke.grad_cam(nested, images, "out", t), expected,
                                   rtol=1e-4, atol=1e-7)


def test_each_image_is_independent_of_its_batch(models, images):
    nested = models[0]
    t = [2, 0, 1, 1, 2]
    batched = ke.grad_cam(nested, images, "conv1", t)
    single = np.concatenate([ke.grad_cam(nested, images[i:i + 1], "conv1", t[i])
                             for i in range(len(images))])
    np.testing.assert_allclose(batched, single, rtol=1e-5, atol=1e-7)


def test_targets(models, images):
    nested = models[0]
    predicted = np.asarray(nested(images)).argmax(axis=1)
    np.testing.assert_allclose(ke.grad_cam(nested, images, "conv2"),
                               ke.grad_cam(nested, images, "conv2", predicted), atol=1e-7)
    for bad in (K, -1, [0, 1], True, 1.5):
        with pytest.raises(ValueError, match="target"):
            ke.grad_cam(nested, images, "conv2", bad)


def test_graph_is_built_once_per_model_and_layer(images):
    model = nested_model(toy_parts(seed=3))
    for n in (1, 2, 5, 3):
        ke.grad_cam(model, images[:n], "conv2")
    fns = ke._CACHE[model]
    assert len(fns) == 1
    assert next(iter(fns.values())).experimental_get_tracing_count() == 1


def test_one_model_after_another_does_not_warn_of_retracing(images):
    # TensorFlow warns after 5 traces of one Python function; each model traces its graphs once
    # ("Run All" twice, a cascade of randomized copies), and that is not a retracing
    said: list[str] = []
    kept = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    tf.get_logger().addHandler(handler)
    try:
        for seed in range(6):
            model = nested_model(toy_parts(seed=seed))
            kept.append(model)
            ke.grad_cam(model, images, "conv2")
            ke.integrated_gradients(model, images, steps=2)
            km.extract_features(model, tf.data.Dataset.from_tensor_slices(images).batch(5))
    finally:
        tf.get_logger().removeHandler(handler)
    assert all(len(ke._CACHE[m]) == 2 for m in kept)  # each model built its own two graphs
    assert not [m for m in said if "retracing" in m], said


def test_unknown_layer_lists_candidates(models, images):
    with pytest.raises(ValueError) as err:
        ke.grad_cam(models[0], images, "conv_2")
    message = str(err.value)
    assert "'conv2'" in message and "4-D" in message and "shortcut" in message
    with pytest.raises(ValueError, match="4-D"):
        ke.grad_cam(models[0], images, "pool")


def test_all_zero_map_is_zeros_with_a_warning(images):
    """Negative weights for class 0 on non-negative activations: no positive evidence."""
    model = nested_model(toy_parts(seed=1))
    kernel = model.get_layer("logits").kernel
    kernel.assign(np.where(np.arange(K) == 0, -np.abs(kernel.numpy()), kernel.numpy()))
    with pytest.warns(UserWarning, match=r"cero para la\(s\) imagen\(es\) \[0, 1, 2, 3, 4\]"):
        cams = ke.grad_cam(model, images, "out", 0)
    assert np.isfinite(cams).all() and not cams.any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ke.grad_cam(model, images, "out", 1).max() > 0


def test_last_conv_layer_looks_inside_nested_models(models):
    nested, flat, _ = models
    assert ke.last_conv_layer(nested) == "out" == ke.last_conv_layer(flat)
    classifier = km.build_classifier("mobilenet", 4, weights=None, input_size=64)
    assert ke.last_conv_layer(classifier) == "conv_pw_13_relu"
    dense_only = keras.Sequential([keras.Input((4,)), L.Dense(2)])
    with pytest.raises(ValueError, match="4-D"):
        ke.last_conv_layer(dense_only)


def test_sequential_classifier_around_a_nested_backbone(models, images):
    nested = models[0]
    backbone, scale = nested.get_layer("backbone"), nested.get_layer("scale")
    head = [nested.get_layer(n) for n in ("pool", "dropout", "logits")]
    seq = keras.Sequential([keras.Input((S, S, 3)), scale, backbone, *head])
    np.testing.assert_allclose(ke.grad_cam(seq, images, "conv2"),
                               ke.grad_cam(nested, images, "conv2"), rtol=1e-4, atol=1e-7)


def flatten_into(backbone, x):
    """Call the backbone's layers one by one on ``x`` (its own graph, now inlined)."""
    tensors = {id(backbone.inputs[0]): x}
    for layer in backbone.layers[1:]:
        node = layer._inbound_nodes[0]  # the node of the backbone's own graph
        args = [tensors[id(t)] for t in node.input_tensors]
        tensors[id(node.output_tensors[0])] = layer(args[0] if len(args) == 1 else args)
    return tensors[id(backbone.outputs[0])]


def test_mobilenet_v2_nested_equals_flattened_inside_a_residual_block():
    """Real architecture, layers whose outputs feed skip connections (block_2_add)."""
    keras.utils.set_random_seed(0)
    size = 64
    model = km.build_classifier("mobilenet_v2", 5, weights=None, input_size=size)
    inp = keras.Input((size, size, 3))
    x = flatten_into(model.get_layer("backbone"), model.get_layer("preprocess")(inp))
    for name in ("pool", "dropout", "logits"):
        x = model.get_layer(name)(x)
    flat = keras.Model(inp, x)
    assert "backbone" not in [lyr.name for lyr in flat.layers]
    images = np.random.default_rng(1).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    expected = np.asarray(model(images))
    np.testing.assert_allclose(np.asarray(flat(images)), expected, rtol=1e-5, atol=0)
    layer = "block_2_project_BN"  # its output feeds block_2_add
    a, b = ke.grad_cam(model, images, layer), ke.grad_cam(flat, images, layer)
    assert a.shape == (2, size, size) and a.max() > 0
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * a.max())


# ----------------------------------------------------------------- Integrated Gradients

def linear_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((S, S, 3))
    return keras.Model(inp, L.Dense(K, name="linear")(L.Flatten()(inp)))


@pytest.mark.parametrize("method", ["gausslegendre", "trapezoid"])
def test_ig_on_a_linear_model_is_input_times_weight(images, method):
    model = linear_model()
    w = model.get_layer("linear").kernel.numpy().reshape(S, S, 3, K)
    baseline = np.full((S, S, 3), 40.0, np.float32)
    for t, ref in ((1, None), (2, baseline)):
        attr = ke.integrated_gradients(model, images, t, baseline=ref, steps=5, method=method)
        x_ref = 0 if ref is None else ref
        np.testing.assert_allclose(attr, (images - x_ref) * w[..., t], rtol=1e-4, atol=1e-4)


def test_ig_accepts_the_same_named_baselines_as_the_pytorch_track(images):
    from helpers.core.attribution import BASELINES
    from helpers.core.filters import gaussian_blur

    model = linear_model()
    w = model.get_layer("linear").kernel.numpy().reshape(S, S, 3, K)[..., 1]
    expected = {"black": np.zeros_like(images), "gray": np.full_like(images, 127.5),
                "mean": np.broadcast_to(images.mean(axis=(1, 2), keepdims=True), images.shape),
                "blur": gaussian_blur(images, S / 8, channels_last=True),
                "noise": ke.make_reference("noise", images, seed=3)}
    assert set(expected) == set(BASELINES)
    for name, ref in expected.items():
        attr = ke.integrated_gradients(model, images, 1, baseline=name, steps=3, seed=3)
        np.testing.assert_allclose(attr, (images - ref) * w, rtol=1e-4, atol=1e-3, err_msg=name)
    noise = expected["noise"]
    assert noise.min() >= 0 and noise.max() <= 255 and noise.std() > 50
    np.testing.assert_array_equal(noise, ke.make_reference("noise", images, seed=3))
    assert not np.array_equal(noise, ke.make_reference("noise", images, seed=4))
    with pytest.raises(ValueError, match="baseline must be one of"):
        ke.integrated_gradients(model, images, 1, baseline="white")
    with pytest.raises(ValueError, match="broadcast"):
        ke.integrated_gradients(model, images, 1, baseline=np.zeros((2, 3)))


def smooth_model():
    keras.utils.set_random_seed(2)
    inp = keras.Input((S, S, 3))
    x = L.Rescaling(1 / 127.5, -1)(inp)
    x = L.Conv2D(8, 3, padding="same", activation="softplus")(x)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="tanh")(x)
    x = L.Dense(K, kernel_initializer=keras.initializers.RandomNormal(stddev=3.0))(
        L.GlobalAveragePooling2D()(x))
    return keras.Model(inp, x)


def test_ig_completeness_gap(models, images):
    """Smooth model: Gauss-Legendre converges fast, the gap is tiny. ReLU model: the path
    crosses kinks, the gap is larger but shrinks with more steps."""
    model = smooth_model()
    attr, gap = ke.integrated_gradients(model, images, steps=16, return_gap=True)
    logits = np.asarray(model(images))
    t = logits.argmax(axis=1)
    delta = logits[np.arange(5), t] - np.asarray(model(np.zeros_like(images)))[0, t]
    np.testing.assert_allclose(gap, attr.reshape(5, -1).sum(1) - delta, rtol=1e-4, atol=1e-6)
    assert np.abs(delta).min() > 0.05
    assert np.all(np.abs(gap) < 1e-3 * np.abs(delta))
    relu = models[0]
    coarse = ke.integrated_gradients(relu, images, steps=16, return_gap=True)[1]
    fine = ke.integrated_gradients(relu, images, steps=256, return_gap=True)[1]
    assert np.abs(fine).mean() < 0.25 * np.abs(coarse).mean()


def test_ig_chunks_and_batch_do_not_change_the_result(models, images):
    nested = models[0]
    whole = ke.integrated_gradients(nested, images, [0, 1, 2, 0, 1], steps=8, batch_size=1000)
    chunked = ke.integrated_gradients(nested, images, [0, 1, 2, 0, 1], steps=8, batch_size=3)
    single = np.concatenate([ke.integrated_gradients(nested, images[i:i + 1], t, steps=8)
                             for i, t in enumerate([0, 1, 2, 0, 1])])
    assert whole.shape == images.shape and whole.dtype == np.float32
    np.testing.assert_allclose(chunked, whole, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(single, whole, rtol=1e-4, atol=1e-6)


def test_layers_by_resolution_deepest_first_without_padding_layers():
    model = km.build_classifier("mobilenet", 3, weights=None, input_size=64)
    found = ke.layers_by_resolution(model)
    sizes = list(found)
    assert sizes == sorted(sizes, key=lambda hw: hw[0] * hw[1])
    assert found[sizes[0]] == ke.last_conv_layer(model) == "conv_pw_13_relu"
    assert found[(4, 4)] == "conv_pw_11_relu" and found[(8, 8)] == "conv_pw_5_relu"
    assert not any("pad" in name for name in found.values())


def test_non_finite_images_and_baselines_are_rejected(models, images):
    model = linear_model()
    bad = images.copy()
    bad[0, 1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"images has 1 non-finite value\(s\)"):
        ke.grad_cam(models[0], bad, layer="conv2")
    with pytest.raises(ValueError, match=r"images has 1 non-finite value\(s\)"):
        ke.integrated_gradients(model, bad, 0, steps=2)
    with pytest.raises(ValueError, match="baseline has"):
        ke.integrated_gradients(model, images, 0, baseline=np.full((S, S, 3), np.inf), steps=2)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        ke.integrated_gradients(model, images, 0, steps=2, batch_size=0)


def test_models_with_several_outputs_are_rejected_not_half_explained(images):
    from helpers.keras import metrics as kmetrics

    inp = keras.Input((S, S, 3))
    conv = L.Conv2D(4, 3, name="conv")(inp)
    pooled = L.GlobalAveragePooling2D()(conv)
    two = keras.Model(inp, [L.Dense(K)(pooled), L.Dense(2)(pooled)], name="two_heads")
    for call in (lambda: ke.grad_cam(two, images, layer="conv"),
                 lambda: ke.integrated_gradients(two, images, steps=2),
                 lambda: kmetrics.probability_fn(two, 0),
                 lambda: kmetrics.deletion_insertion(two, images, np.ones((S, S)))):
        with pytest.raises(ValueError, match=r"one output of class scores.*'two_heads' has "
                                             r"outputs \[\(None, 3\), \(None, 2\)\]"):
            call()
    one = keras.Model(inp, two.outputs[0])
    assert ke.grad_cam(one, images, layer="conv").shape == (len(images), S, S)
