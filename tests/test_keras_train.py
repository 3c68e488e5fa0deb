"""keras_train: early stopping that keeps the best epoch, feature shortcuts, cached checkpoints."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from helpers import profile as prof
from helpers.data.flowers102 import FlowersInfo
from helpers.keras import models as km
from helpers.keras import pipeline
from helpers.keras import train as kt

SIZE, K, PER_CLASS = 32, 3, 4
TINY = dataclasses.replace(prof.FAST, flowers_epochs=2, flowers_finetune_epochs=1,
                           flowers_batch_size=4)


def fake_splits(seed: int = 0) -> dict:
    """Tiny (uint8 image, label) datasets of variable size, classes told apart by colour."""
    rng = np.random.default_rng(seed)
    out = {}
    for split in ("train", "validation", "test"):
        labels = np.repeat(np.arange(K), PER_CLASS)
        images = rng.integers(0, 60, (len(labels), 40, 48, 3)).astype(np.uint8)
        images[np.arange(len(labels)), ..., labels] += 150  # class k: bright channel k
        ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int64)))
        info = FlowersInfo(split, len(labels), len(labels), ("a", "b", "c"), "synthetic", "")
        out[split] = (ds, info)
    return out


@pytest.fixture
def data():
    return kt.FlowersSplits(TINY, size=SIZE, splits=fake_splits())


@pytest.fixture
def random_backbone(monkeypatch):
    """build_for without ImageNet weights (no file needed, faster)."""
    original = kt.build_for
    monkeypatch.setattr(kt, "build_for", lambda config, k, weights=None: original(config, k, None))


def test_backbone_by_profile_and_config():
    assert kt.backbone_for(prof.FAST) == "mobilenet"
    assert kt.backbone_for(prof.FULL) == "mobilenet_v2"
    config = kt.config_for(prof.FULL, "cutmix")
    assert (config.backbone, config.epochs, config.batch_size) == ("mobilenet_v2", 30, 64)
    with pytest.raises(ValueError, match="variant"):
        kt.TrainConfig("dropout", "mobilenet", 1, 1)


def test_early_stopping_restores_the_best_epoch_on_features():
    """Validation labels are the opposite of training labels: validation accuracy falls as the
    head learns, so the best epoch is an early one and the final weights must be restored."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-0.1, 1, (40, 256)), rng.normal(0.1, 1, (40, 256))]).astype("f4")
    y = np.eye(2, dtype="f4")[np.repeat([0, 1], 40)]
    keras.utils.set_random_seed(0)
    # the head (dropout + logits) of a classifier is what trains on features of its width
    model = km.build_classifier("mobilenet", 2, weights=None, input_size=SIZE, dropout=0.0)
    head = km.head_from(model)
    train, val = kt.Features(x, y, 0.0), kt.Features(x, y[:, ::-1].copy(), 0.0)
    result = kt.train_classifier(model, train, val, epochs=8, learning_rate=1e-3, patience=20,
                                 batch_size=16, verbose=0)
    acc = result.history["val_accuracy"]
    assert result.epochs_run == 8 and result.best_epoch == int(np.argmax(acc)) + 1
    assert acc[-1] < max(acc)  # the last epoch is worse: restoring matters
    _, restored = kt.soft_label_metrics(head, val.x, val.y)
    assert restored == pytest.approx(result.val_accuracy) == pytest.approx(max(acc))
    assert result.seconds > 0 and set(result.history) >= {"loss", "accuracy", "val_loss"}


def test_a_keras_epoch_that_stalls_is_announced_while_it_runs(monkeypatch):
    import time

    from helpers.core.training import EpochWatch

    rng = np.random.default_rng(0)
    x, y = rng.normal(0, 1, (16, 256)).astype("f4"), np.eye(2, dtype="f4")[np.arange(16) % 2]
    model = km.build_classifier("mobilenet", 2, weights=None, input_size=SIZE, dropout=0.0)
    scored, real = [], kt.soft_label_metrics

    def slow_second_validation(*args):
        scored.append(1)
        if len(scored) == 2:
            time.sleep(0.6)
        return real(*args)

    monkeypatch.setattr(kt, "soft_label_metrics", slow_second_validation)
    said = []
    watch = EpochWatch(0.05, "la cabeza", said.append, factor=2, min_seconds=0.2)
    features = kt.Features(x, y, 0.0)
    kt.train_classifier(model, features, features, epochs=3, patience=5, verbose=0, watch=watch)
    late = [line for line in said if "la época 2/3 de la cabeza lleva más de" in line]
    assert len(late) == 1 and not any("época 3/3" in line for line in said)  # epoch 1 traces


def test_the_keras_epoch_estimates_add_up_to_the_run_estimate(data):
    for variant in kt.VARIANTS:
        config = kt.config_for(TINY, variant, size=SIZE)
        epochs = [kt.epoch_seconds(config, data, 0.01, stage) for stage in (1, 2)]
        extract = 0.01 * data.infos["train"].num_examples * (variant not in ("augment",
                                                                             "mixup", "cutmix"))
        fine = config.fine_tune_epochs * epochs[1] if variant in kt.FINE_TUNED else 0.0
        assert kt.estimate_seconds(config, data, 0.01) == pytest.approx(
            extract + config.epochs * epochs[0] + fine), variant


def test_feature_validation_equals_evaluating_the_image_pipeline(data):
    keras.utils.set_random_seed(0)
    model = km.build_classifier("mobilenet", K, weights=None, input_size=SIZE)
    val_features = data.features("validation", model)
    result = kt.train_classifier(model, data.pipeline("train", training=True), val_features,
                                 epochs=1, verbose=0)
    kt.compile_classifier(model, 1e-3)
    loss, acc = model.evaluate(data.pipeline("validation"), verbose=0)
    assert result.history["val_accuracy"][0] == pytest.approx(acc, abs=1e-6)
    assert result.history["val_loss"][0] == pytest.approx(loss, rel=1e-4)
    with pytest.raises(ValueError, match="validation features"):
        kt.train_classifier(model, val_features, data.pipeline("validation"), epochs=1)


def test_predict_proba_from_features_equals_the_model_on_images(data):
    model = km.build_classifier("mobilenet", K, weights=None, input_size=SIZE)
    probs = kt.predict_proba(model, data, "test")
    images = np.concatenate([x.numpy() for x, _ in data.pipeline("test")])
    expected = tf.nn.softmax(model(images, training=False)).numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-4, atol=1e-6)


def test_features_are_cached_by_backbone_fingerprint(data):
    a = km.build_classifier("mobilenet", K, weights=None, input_size=SIZE)
    b = km.build_classifier("mobilenet", K, weights=None, input_size=SIZE)
    b.set_weights(a.get_weights())
    assert km.backbone_fingerprint(a) == km.backbone_fingerprint(b)
    assert data.features("train", a) is data.features("train", b)
    assert data.features("train", a).x.shape == (K * PER_CLASS, 256)
    np.testing.assert_array_equal(data.features("train", a).labels, data.labels("train"))
    wrong = km.build_classifier("mobilenet", K, weights=None, input_size=SIZE,
                                preprocessing="efficientnet")
    wrong.get_layer("backbone").set_weights(a.get_layer("backbone").get_weights())
    assert km.backbone_fingerprint(wrong) != km.backbone_fingerprint(a)
    kernel = b.get_layer("backbone").weights[0]
    kernel.assign(kernel + 1.0)
    assert km.backbone_fingerprint(b) != km.backbone_fingerprint(a)


def test_a_pipeline_over_chosen_indices_keeps_those_images_in_order(data):
    full = [(x.numpy(), y.numpy()) for x, y in data.pipeline("test").unbatch()]
    part = [(x.numpy(), y.numpy()) for x, y in data.pipeline("test", indices=[7, 2, 9]).unbatch()]
    assert len(part) == 3
    for (x, y), i in zip(part, [2, 7, 9], strict=True):
        np.testing.assert_array_equal(x, full[i][0])
        np.testing.assert_array_equal(y, full[i][1])
    assert data.robustness_indices() is None or len(data.robustness_indices()) <= len(full)


def test_images_come_back_in_the_requested_order(data):
    resized = [x.numpy() for x, _ in data.datasets["test"].map(
        lambda x, y: pipeline.resize(x, y, SIZE))]
    got = data.images("test", [5, 1, 5])
    assert got.shape == (3, SIZE, SIZE, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, np.stack([resized[5], resized[1], resized[5]]))


def test_equal_budgets_and_seeds_per_variant():
    long, fine = kt.config_for(prof.FAST, "baseline_long"), kt.config_for(prof.FAST, "finetune")
    assert long.epochs == fine.epochs + fine.fine_tune_epochs  # the fine-tuning's total budget
    assert kt.config_for(prof.FAST, "augment_finetune").epochs == fine.epochs
    assert kt.seeds_for(prof.FAST, "baseline") == kt.seeds_for(prof.FAST, "baseline_long") == [
        0, 1, 2]
    assert kt.seeds_for(prof.FAST, "cutmix") == kt.seeds_for(prof.FAST, "finetune") == [0, 1]
    assert all(len(kt.seeds_for(prof.FULL, v)) >= 3 for v in kt.VARIANTS)
    assert kt.checkpoint_stem(prof.FAST, "mixup") == "flowers_fast_mixup"
    assert kt.checkpoint_stem(prof.FAST, "mixup", seed=1) == "flowers_fast_mixup_s1"


def test_seeds_give_different_reproducible_runs(data, random_backbone, tmp_path, monkeypatch):
    monkeypatch.setenv("XAI_CACHE_DIR", str(tmp_path))
    images = next(iter(data.pipeline("test")))[0]
    _, meta0 = kt.load_or_train("mixup", data, verbose=0)
    model1, meta1 = kt.load_or_train("mixup", data, verbose=0, seed=1)
    assert meta1["key"]["seed"] == 1 and meta0["sha256"] != meta1["sha256"]
    keras.utils.set_random_seed(999)  # whatever the caller's RNG state was
    again, meta1b = kt.load_or_train("mixup", data, verbose=0, seed=1, force=True)
    assert meta1b["history"]["loss"] == meta1["history"]["loss"]  # the same run, bit for bit
    for a, b in zip(model1.weights, again.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    np.testing.assert_array_equal(np.asarray(again(images)), np.asarray(model1(images)))


@pytest.mark.parametrize("variant", ["baseline", "finetune", "augment_finetune", "baseline_long"])
# (the image-batch variants' cache and reload: test_seeds_give_different_reproducible_runs)
def test_load_or_train_caches_and_reloads(variant, data, random_backbone, tmp_path,
                                          monkeypatch):
    monkeypatch.setenv("XAI_CACHE_DIR", str(tmp_path))
    model, meta = kt.load_or_train(variant, data, verbose=0)
    two_stages = variant in ("finetune", "augment_finetune", "baseline_long")
    epochs = TINY.flowers_epochs + (TINY.flowers_finetune_epochs if two_stages else 0)
    assert not meta["from_cache"] and meta["epochs_run"] == epochs
    stem = kt.checkpoint_stem(TINY, variant)
    saved = json.loads((tmp_path / "checkpoints" / f"{stem}.json").read_text())
    assert saved["key"] == kt.run_key(kt.config_for(TINY, variant, size=SIZE), data)
    images = next(iter(data.pipeline("test")))[0]
    again, meta2 = kt.load_or_train(variant, data, verbose=0)
    assert meta2["from_cache"] and meta2["history"] == meta["history"]
    np.testing.assert_allclose(np.asarray(again(images)), np.asarray(model(images)), rtol=1e-5,
                               atol=1e-6)


def test_force_or_another_configuration_retrains(data, random_backbone, tmp_path, monkeypatch):
    # one variant: the key comparison and force are the same code for all of them
    monkeypatch.setenv("XAI_CACHE_DIR", str(tmp_path))
    _, meta = kt.load_or_train("baseline", data, verbose=0)
    _, forced = kt.load_or_train("baseline", data, force=True, verbose=0)
    assert not forced["from_cache"]
    longer = kt.FlowersSplits(dataclasses.replace(TINY, flowers_epochs=1), size=SIZE,
                              splits=fake_splits())
    said = []
    _, other = kt.load_or_train("baseline", longer, verbose=0, say=said.append)
    assert not other["from_cache"]  # another config: retrained
    assert other["key"]["epochs"] == meta["key"]["epochs"] - 1
    assert "difiere en: epochs" in said[0]


def test_fine_tuning_unfreezes_the_top_convolutions_only():
    model = km.build_classifier("mobilenet", K, weights=None, input_size=SIZE)
    names = km.unfreeze_top(model, 2)
    assert names == ["conv_dw_13", "conv_pw_13"]
    base = model.get_layer(km.BACKBONE)
    trainable = {layer.name for layer in base.layers if layer.trainable and layer.weights}
    assert trainable == {"conv_dw_13", "conv_pw_13"}
    assert not any(layer.trainable for layer in base.layers
                   if isinstance(layer, keras.layers.BatchNormalization))
    assert model.get_layer(km.LOGITS).trainable
    km.set_backbone_trainable(model, False)
    assert not base.trainable_weights


def test_fine_tuning_keeps_the_head_when_it_does_not_help(data, random_backbone, monkeypatch):
    config = kt.config_for(TINY, "finetune", size=SIZE)
    model = kt.build_for(config, K)
    head = kt.train_classifier(model, data.features("train", model),
                               data.features("validation", model), epochs=2, verbose=0)
    before = {v.path: v.numpy().copy() for v in model.weights}
    worse = kt.TrainResult({"loss": [9.0], "val_accuracy": [0.0], "accuracy": [0.0],
                            "val_loss": [9.0]}, 1, 1, 0.0, 0.1)
    monkeypatch.setattr(kt, "train_classifier", lambda *a, **k: worse)
    result = kt.fine_tune(model, config, data, head, verbose=0)
    assert result.epochs_run == head.epochs_run + 1 and result.best_epoch <= head.epochs_run
    for var in model.weights:
        np.testing.assert_array_equal(var.numpy(), before[var.path])


def test_bad_or_foreign_keras_checkpoints_are_skipped(data, random_backbone, tmp_path,
                                                      monkeypatch):
    monkeypatch.setenv("XAI_CACHE_DIR", str(tmp_path))
    kt.load_or_train("baseline", data, verbose=0)
    folder = tmp_path / "checkpoints"
    base = kt.checkpoint_stem(TINY, "baseline")
    stem = kt.checkpoint_stem(TINY, "mixup")  # another variant's files under mixup's name
    for suffix in (".weights.h5", ".json"):
        (folder / f"{stem}{suffix}").write_bytes((folder / f"{base}{suffix}").read_bytes())
    said = []
    _, meta = kt.load_or_train("mixup", data, verbose=0, say=said.append)
    assert not meta["from_cache"] and "difiere en: variant" in said[0]
    weights = folder / f"{base}.weights.h5"
    weights.write_bytes(weights.read_bytes()[:1000])
    _, meta = kt.load_or_train("baseline", data, verbose=0, say=said.append)
    assert not meta["from_cache"] and "sha256" in said[2] and str(weights) in said[2]
    assert said[1].startswith("Entrenamiento de «Mixup»")  # each training says how long


def test_the_bug_variant_has_its_own_checkpoint(data, random_backbone, tmp_path, monkeypatch):
    monkeypatch.setenv("XAI_CACHE_DIR", str(tmp_path))
    model, meta = kt.load_or_train("baseline", data, preprocessing="efficientnet", verbose=0)
    assert model.get_layer("preprocess").module == "efficientnet"
    assert meta["key"]["preprocessing"] == "efficientnet"
    assert kt.checkpoint_stem(TINY, "baseline", "efficientnet") != kt.checkpoint_stem(
        TINY, "baseline")


def test_real_flowers_splits_follow_the_profile():
    from helpers.data import sources

    if not sources.flowers_npz("train").exists():
        pytest.skip("no local Flowers102 copy")
    data = kt.FlowersSplits(prof.FAST)
    assert data.num_classes == 102
    for split, n in [("train", prof.FAST.flowers_train_size),
                     ("validation", prof.FAST.flowers_val_size),
                     ("test", prof.FAST.flowers_test_size)]:
        labels = data.labels(split)
        n = data.infos[split].official_num_examples if n is None else n  # None: the whole split
        assert len(labels) == data.infos[split].num_examples == n
        assert np.bincount(labels, minlength=102).min() == n // 102  # class-balanced
    assert "2040 de las 6149" in data.infos["test"].note


@pytest.mark.parametrize("failure", ["full disk", "h5py writer"])
def test_a_failed_keras_save_keeps_the_model_and_leaves_no_file(data, random_backbone, tmp_path,
                                                                monkeypatch, failure):
    from faults import full_disk_after

    monkeypatch.setenv("XAI_CACHE_DIR", str(tmp_path))
    working = kt.weights_bytes
    if failure == "full disk":
        monkeypatch.setattr("builtins.open", full_disk_after(5000))
    else:
        def broken(model):
            raise OSError("Unable to synchronously write data (file write failed: errno = 28)")
        monkeypatch.setattr(kt, "weights_bytes", broken)
    said = []
    model, meta = kt.load_or_train("baseline", data, verbose=0, say=said.append)
    assert "checkpoint" not in meta and not meta["from_cache"] and model.built
    estimate, *resume, final = said
    assert estimate.startswith("Entrenamiento de «modelo base»")
    assert "sigue en memoria" in final and "XAI_CACHE_DIR" in final
    folder = tmp_path / "checkpoints"
    if failure == "full disk":  # the per-epoch state could not be saved either: said once
        assert len(resume) == 1 and "reanudar" in resume[0] and "sigue" in resume[0]
        assert list(folder.iterdir()) == []
        return
    # the last epoch's state was saved: the next run resumes after it, with nothing left to train
    assert resume == [] and sorted(p.suffix for p in folder.iterdir()) == [".json", ".npz"]
    monkeypatch.setattr(kt, "weights_bytes", working)
    said.clear()
    again, meta2 = kt.load_or_train("baseline", data, verbose=0, say=said.append)
    assert any(f"{TINY.flowers_epochs} de {TINY.flowers_epochs} épocas" in line for line in said)
    assert meta2["history"] == meta["history"] and "checkpoint" in meta2
    for a, b in zip(model.variables, again.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_keras_weights_bytes_are_a_weights_file_keras_loads(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5, 5, 3)), keras.layers.Conv2D(2, 3),
                              keras.layers.BatchNormalization(), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    path = tmp_path / "m.weights.h5"
    path.write_bytes(kt.weights_bytes(model))
    keras.utils.set_random_seed(1)
    other = keras.models.clone_model(model)  # new random weights
    other.load_weights(path)
    for a, b in zip(model.weights, other.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_augmented_runs_repeat_bit_for_bit(data, random_backbone, tmp_path, monkeypatch):
    """Augmentation, shuffling, dropout and initialization all follow the run's seed."""
    monkeypatch.setenv("XAI_CACHE_DIR", str(tmp_path))
    runs = []
    for caller_seed in (1, 2):
        keras.utils.set_random_seed(caller_seed)
        runs.append(kt.load_or_train("augment", data, verbose=0, force=True))
    (m1, meta1), (m2, meta2) = runs
    assert meta1["history"]["loss"] == meta2["history"]["loss"]
    for a, b in zip(m1.weights, m2.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_a_long_keras_run_on_the_cpu_needs_an_opt_in(data, random_backbone, tmp_path,
                                                      monkeypatch):
    from helpers.core import training as core_training

    monkeypatch.setenv("XAI_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(core_training.LONG_ENV, raising=False)
    monkeypatch.setattr(kt, "estimate_seconds", lambda *a: 2 * 3600.0)
    monkeypatch.setattr(kt, "train_classifier", lambda *a, **k: pytest.fail("a long run started"))
    said = []
    with pytest.raises(core_training.LongRunError, match="XAI_ALLOW_LONG"):
        kt.load_or_train("augment", data, verbose=0, say=said.append)
    assert "120 min" in said[0] and "XAI_PROFILE=fast" in said[1]
    with pytest.raises(pytest.fail.Exception, match="a long run started"):  # opted in
        kt.load_or_train("augment", data, verbose=0, say=said.append, allow_long=True)


def test_the_keras_estimate_scales_with_what_each_variant_runs(data):
    cost = {v: kt.estimate_seconds(kt.config_for(TINY, v, size=SIZE), data, 0.01)
            for v in kt.VARIANTS}
    n = data.infos["train"].num_examples
    assert cost["baseline"] == pytest.approx(0.01 * n)  # one pass to extract the features
    assert cost["augment"] == pytest.approx(2 * 0.01 * n * TINY.flowers_epochs)
    assert cost["augment_finetune"] > cost["finetune"] > cost["baseline"]


@pytest.mark.parametrize("variant, interrupted_at", [("mixup", 2), ("augment_finetune", 4)])
def test_an_interrupted_keras_training_resumes_and_ends_as_an_uninterrupted_one(
        variant, interrupted_at, random_backbone, tmp_path, monkeypatch):
    """Ctrl-C during an epoch's validation (the 4th: the second epoch of fine-tuning): the next
    load_or_train goes on from the last finished epoch and ends bit for bit where an
    uninterrupted run ends."""
    monkeypatch.setenv("XAI_CACHE_DIR", str(tmp_path))
    longer = dataclasses.replace(TINY, flowers_epochs=3, flowers_finetune_epochs=2)
    data = kt.FlowersSplits(longer, size=SIZE, splits=fake_splits())
    monkeypatch.setattr(kt, "estimate_seconds", lambda *args: 600.0)  # 10 min for a whole run
    announced = []
    real_announce = kt.announce_duration
    monkeypatch.setattr(kt, "announce_duration",
                        lambda seconds, *args: announced.append(seconds) or real_announce(
                            seconds, *args))
    whole, meta = kt.load_or_train(variant, data, verbose=0)
    folder = tmp_path / "checkpoints"
    stem = kt.checkpoint_stem(longer, variant)
    assert sorted(p.name for p in folder.iterdir()) == [f"{stem}.json", f"{stem}.weights.h5"]
    real_metrics, calls = kt.soft_label_metrics, []

    def interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == interrupted_at:
            raise KeyboardInterrupt
        return real_metrics(*args, **kwargs)

    monkeypatch.setattr(kt, "soft_label_metrics", interrupt)
    with pytest.raises(KeyboardInterrupt):
        kt.load_or_train(variant, data, verbose=0, force=True)
    monkeypatch.setattr(kt, "soft_label_metrics", real_metrics)
    assert (folder / f"{stem}.resume.npz").exists()
    (folder / f"{stem}.weights.h5").unlink()  # as if no finished model had been saved
    said = []
    resumed, meta2 = kt.load_or_train(variant, data, verbose=0, say=said.append)
    total = 3 + (2 if variant == "augment_finetune" else 0)
    done = interrupted_at - 1
    assert any("Se reanuda" in line and f"{done} de {total}" in line for line in said), said
    assert announced[0] == 600.0 and announced[-1] == pytest.approx(600.0 * (total - done) / total)
    assert meta2["history"] == meta["history"] and meta2["best_epoch"] == meta["best_epoch"]
    for a, b in zip(whole.variables, resumed.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert not (folder / f"{stem}.resume.npz").exists()  # finished: state removed


def test_a_training_state_round_trips_without_pickle(tmp_path):
    state = {"epoch": 2, "variables": [np.arange(3, dtype="f4"), np.int64(7)],
             "optimizer": [np.zeros((2, 2), "f4")], "best": None, "wait": 1,
             "history": {"loss": [1.5, 0.5]}, "seconds": 3.25, "stage": 2,
             "head": [np.ones(12, "f4").reshape(3, 4)] * 11}
    path = tmp_path / "s.npz"
    path.write_bytes(kt.state_bytes(state))
    again = kt.read_state(path)
    assert again["best"] is None and again["wait"] == 1 and again["history"] == state["history"]
    for name in ("variables", "optimizer", "head"):  # order kept past 10 entries
        assert len(again[name]) == len(state[name])
        for a, b in zip(again[name], state[name], strict=True):
            np.testing.assert_array_equal(a, b)
    np.load(path, allow_pickle=False)  # nothing in it needs pickle


def test_every_epoch_pipeline_reads_the_training_images_once(data):
    """Each epoch builds its own seeded pipeline; the resized images are cached once for all."""
    reads = tf.Variable(0, dtype=tf.int64)

    def counted(image, label):
        reads.assign_add(1)
        return image, label

    data.datasets["train"] = data.datasets["train"].map(counted)
    n = data.infos["train"].num_examples
    firsts = []
    for epoch in range(3):
        batches = kt.training_batches(data, 0, True, None, epoch)
        firsts.append(np.concatenate([y.numpy().argmax(1) for _, y in batches]))
    assert int(reads.numpy()) == n
    assert not np.array_equal(firsts[0], firsts[1])  # a new order every epoch...
    again = kt.training_batches(data, 0, True, None, 1)
    np.testing.assert_array_equal(np.concatenate([y.numpy().argmax(1) for _, y in again]),
                                  firsts[1])  # ...that depends on the epoch alone
