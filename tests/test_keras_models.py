"""build_classifier: structure, preprocessing inside, weights, freezing, cached-feature head."""

import os
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers.data import DataNotFoundError, resolve
from helpers.keras import models as km

SIZE = 96
WEIGHTS = Path(os.environ.get("XAI_DATA_DIR", "/work/shared/data")) / "weights"
MOBILENET_H5 = WEIGHTS / "mobilenet_2_5_224_tf_no_top.h5"


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(0).uniform(0, 255, (4, SIZE, SIZE, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def mobilenet():
    keras.utils.set_random_seed(0)
    return km.build_classifier("mobilenet", 6, weights=None, input_size=SIZE)


def pooled(backbone, x):
    return np.asarray(backbone(x, training=False)).mean(axis=(1, 2))


@pytest.mark.parametrize("name", ["mobilenet_v2", "efficientnet_b0", "mobilenet"])
def test_structure_and_own_preprocessing_inside(name, pixels):
    model = km.build_classifier(name, 7, weights=None, input_size=SIZE)
    assert [layer.name for layer in model.layers] == [
        "image", "preprocess", "backbone", "pool", "dropout", "logits"]
    assert isinstance(model.get_layer("backbone"), keras.Model)
    assert model(pixels).shape == (4, 7)
    assert model.get_layer("logits").activation is keras.activations.linear  # logits
    module = km.BACKBONES[name].module
    manual = getattr(keras.applications, module).preprocess_input(pixels.copy())
    expected = pooled(model.get_layer("backbone"), manual)
    got = np.asarray(km.feature_extractor(model)(pixels))
    # random backbones give tiny features (~1e-15 for MobileNet): compare relatively
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=0)
    assert np.abs(expected).max() > 0
    if name != "efficientnet_b0":  # these need [-1, 1]: raw pixels would give other features
        raw = pooled(model.get_layer("backbone"), pixels)
        assert np.abs(raw - expected).max() > 1e-2 * np.abs(expected).max()


def test_seed_course_bug_feeds_raw_pixels(pixels):
    model = km.build_classifier("mobilenet_v2", 3, weights=None, input_size=SIZE,
                                preprocessing="efficientnet")
    got = np.asarray(km.feature_extractor(model)(pixels))
    np.testing.assert_allclose(got, pooled(model.get_layer("backbone"), pixels), rtol=1e-4,
                               atol=0)
    with pytest.raises(ValueError, match="preprocessing"):
        km.build_classifier("mobilenet", 3, weights=None, preprocessing="torch")
    with pytest.raises(ValueError, match="backbone"):
        km.build_classifier("resnet50", 3, weights=None)


def test_uint8_input_gives_the_same_logits(mobilenet, pixels):
    x = np.rint(pixels).astype(np.uint8)
    np.testing.assert_allclose(np.asarray(mobilenet(x)), np.asarray(mobilenet(x.astype("f4"))),
                               rtol=1e-4, atol=0)


def test_trainable_flag_and_batchnorm():
    frozen = km.build_classifier("mobilenet", 3, weights=None, input_size=SIZE)
    assert frozen.get_layer("backbone").trainable is False
    assert [w.path.split("/")[-1] for w in frozen.trainable_weights] == ["kernel", "bias"]
    scratch = km.build_classifier("mobilenet", 3, weights=None, input_size=SIZE, trainable=True)
    bns = [lyr for lyr in km.all_layers(scratch)
           if isinstance(lyr, keras.layers.BatchNormalization)]
    assert bns and all(bn.trainable for bn in bns)  # random weights: BatchNorm trains too
    km.set_backbone_trainable(scratch, True)  # fine-tuning: BatchNorm stays frozen
    assert scratch.get_layer("backbone").trainable and not any(bn.trainable for bn in bns)
    assert len(scratch.trainable_weights) > 2


def test_frozen_batchnorm_runs_in_inference_mode_while_fine_tuning(pixels):
    model = km.build_classifier("mobilenet", 3, weights=None, input_size=SIZE, dropout=0.0,
                                trainable=True)
    # trainable BatchNorm: training=True uses the batch statistics
    assert np.abs(np.asarray(model(pixels, training=True) - model(pixels))).max() > 1e-3
    km.set_backbone_trainable(model, True)
    np.testing.assert_allclose(np.asarray(model(pixels, training=True)),
                               np.asarray(model(pixels)), atol=1e-5)


@pytest.mark.skipif(not MOBILENET_H5.exists(), reason="no local MobileNet weights")
def test_imagenet_weights_are_loaded_from_the_local_file(monkeypatch):
    monkeypatch.setenv("XAI_DATA_DIR", str(MOBILENET_H5.parents[1]))
    monkeypatch.setattr(resolve, "reachable", lambda *a, **k: False)
    model = km.build_classifier("mobilenet", 4, weights="imagenet", input_size=SIZE)
    backbone = model.get_layer("backbone")
    with h5py.File(MOBILENET_H5) as f:
        for name in ("conv1", "conv_pw_13"):
            np.testing.assert_array_equal(backbone.get_layer(name).kernel.numpy(),
                                          f[name][f"{name}/kernel:0"][()])
        bn = f["conv_pw_13_bn"]
        np.testing.assert_array_equal(backbone.get_layer("conv_pw_13_bn").moving_mean.numpy(),
                                      bn["conv_pw_13_bn/moving_mean:0"][()])


def test_missing_weights_raise_data_not_found(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("XAI_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XAI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(resolve, "reachable", lambda *a, **k: False)
    for name in ("mobilenet", "mobilenet_v2", "efficientnet_b0"):
        with pytest.raises(DataNotFoundError, match="not found"):
            km.build_classifier(name, 3, weights="imagenet", input_size=SIZE)
    with pytest.raises(FileNotFoundError):
        km.build_classifier("mobilenet", 3, weights=tmp_path / "none.h5", input_size=SIZE)


def test_head_on_cached_features_equals_the_full_model(mobilenet, pixels):
    ds = tf.data.Dataset.from_tensor_slices((pixels, np.arange(4))).batch(3)
    features, labels = km.extract_features(mobilenet, ds)
    assert features.shape == (4, mobilenet.get_layer("pool").output.shape[-1])
    np.testing.assert_array_equal(labels, np.arange(4))
    head = km.head_from(mobilenet)
    logits = np.asarray(mobilenet(pixels))
    assert np.abs(logits).max() > 0
    np.testing.assert_allclose(np.asarray(head(features)), logits, rtol=1e-4, atol=0)
    only_images, none = km.extract_features(mobilenet, ds.map(lambda x, y: x))
    assert none is None and np.allclose(only_images, features)


def test_training_the_head_trains_the_model_itself():
    keras.utils.set_random_seed(1)
    model = km.build_classifier("mobilenet", 4, weights=None, input_size=SIZE, dropout=0.0)
    features = np.random.default_rng(0).normal(size=(4, 256)).astype(np.float32)
    before = model.get_layer(km.LOGITS).kernel.numpy().copy()
    labels = np.arange(4)
    head = km.head_from(model)
    head.compile(optimizer=keras.optimizers.Adam(1e-2), loss=keras.losses.
                 SparseCategoricalCrossentropy(from_logits=True))
    history = head.fit(features, labels, epochs=40, batch_size=4, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert np.abs(model.get_layer(km.LOGITS).kernel.numpy() - before).max() > 1e-3
    np.testing.assert_array_equal(np.asarray(km.head_from(model)(features)).argmax(1), labels)


def test_save_and_load_keep_the_preprocessing(mobilenet, pixels, tmp_path):
    path = tmp_path / "model.keras"
    mobilenet.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer("preprocess"), km.Preprocess)
    assert loaded.get_layer("preprocess").module == "mobilenet"
    np.testing.assert_allclose(np.asarray(loaded(pixels)), np.asarray(mobilenet(pixels)),
                               rtol=1e-5, atol=0)
    weights = tmp_path / "model.weights.h5"
    mobilenet.save_weights(weights)
    fresh = km.build_classifier("mobilenet", 6, weights=None, input_size=SIZE)
    fresh.load_weights(weights)
    np.testing.assert_allclose(np.asarray(fresh(pixels)), np.asarray(mobilenet(pixels)),
                               rtol=1e-5, atol=0)


def test_fits_on_a_mixed_pipeline_and_evaluates_on_one_hot_labels():
    """End to end: augmented + CutMix training batches and one-hot validation batches feed one
    model compiled with CategoricalCrossentropy(from_logits=True)."""
    import functools

    from helpers.keras import augment, pipeline

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 40, 50, 3), dtype=np.uint8)
    ds = tf.data.Dataset.from_tensor_slices((images, np.arange(12, dtype=np.int64) % 3))
    kw = {"batch_size": 4, "size": 32, "one_hot": 3}
    train = pipeline.make_pipeline(ds, training=True, augment=augment.augmentation_block(),
                                   mix=functools.partial(augment.cutmix, alpha=1.0), **kw)
    valid = pipeline.make_pipeline(ds, **kw)
    model = km.build_classifier("mobilenet", 3, weights=None, input_size=32)
    model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(train, validation_data=valid, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0]) and "val_accuracy" in history.history


@pytest.mark.parametrize("name", ["mobilenet", "mobilenet_v2"])
def test_head_above_a_cut_on_its_activations_equals_the_full_model(name, pixels):
    """Fine-tuning's fast path: the activations entering the first unfrozen layer, computed
    once, then the rest of the model (both backbones of the profiles, at the course's cut)."""
    keras.utils.set_random_seed(0)
    model = km.build_classifier(name, 5, weights=None, input_size=SIZE)
    cut = km.unfreeze_top(model, 4)[0]
    ds = tf.data.Dataset.from_tensor_slices((pixels, np.arange(4))).batch(3)
    activations, _ = km.extract_features(model, ds, cut)
    assert activations.ndim == 4 and len(activations) == 4
    logits = np.asarray(model(pixels))
    assert np.abs(logits).max() > 0
    np.testing.assert_allclose(np.asarray(km.head_from(model, cut)(activations)), logits,
                               rtol=1e-3, atol=0)  # relative: random backbones give tiny logits


def test_fingerprint_at_a_cut_sees_only_the_weights_below_it(mobilenet):
    cut = "conv_dw_12"
    before, whole = km.backbone_fingerprint(mobilenet, cut), km.backbone_fingerprint(mobilenet)
    above, below = km.find_layer(mobilenet, "conv_pw_13"), km.find_layer(mobilenet, "conv_pw_11")
    saved = [above.kernel.numpy(), below.kernel.numpy()]
    try:
        above.kernel.assign(saved[0] + 1)
        assert km.backbone_fingerprint(mobilenet, cut) == before
        assert km.backbone_fingerprint(mobilenet) != whole
        below.kernel.assign(saved[1] + 1)
        assert km.backbone_fingerprint(mobilenet, cut) != before
    finally:
        above.kernel.assign(saved[0])
        below.kernel.assign(saved[1])
    with pytest.raises(ValueError, match=r"not a layer of the backbone; valid: .*conv_dw_12"):
        km.head_from(mobilenet, "conv_dw_99")


def test_a_cut_crossed_by_a_skip_connection_is_refused():
    model = km.build_classifier("mobilenet_v2", 3, weights=None, input_size=SIZE)
    with pytest.raises(ValueError, match="cannot split the backbone at 'block_15_project'"):
        km.head_from(model, "block_15_project")
