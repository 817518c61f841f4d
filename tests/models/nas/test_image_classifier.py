"""ImageClassifier: slim's losses (label smoothing, aux head, L2 kernel decay) against numpy, drop-path
progress, top-k and confusion metrics, and 2 replicas == 1 at the same global batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.layers.config import Configurable
from zoo.layers.drop_path import ScheduledDropPath, drop_path_progress
from zoo.models.nas.image_classifier import ImageClassifier, decayed_variables, image_classifier_names
from zoo.training.trainer import Trainer


@keras.saving.register_keras_serializable(package="zoo_tests")
class TinyNet(Configurable, keras.Model):
    """A stand-in network of the image-classifier contract: conv, BN, drop path, dense (+ aux head)."""

    def __init__(self, num_classes=4, image_size=8, aux_head=False, drop_path_rate=0.0, dropout=0.0, batch_norm=True,
                 dtype=None, **kwargs):
        images = keras.Input((image_size, image_size, 3))
        x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, dtype=dtype, name="conv")(images)
        if batch_norm:  # per-replica batch statistics: not the same with 2 replicas
            x = keras.layers.BatchNormalization(dtype=dtype, name="bn")(x)
        x = ScheduledDropPath(drop_path_rate, 1.0, seed=1, dtype=dtype, name="drop_path")(x)
        pooled = keras.layers.GlobalAveragePooling2D(dtype=dtype)(keras.layers.ReLU(dtype=dtype)(x))
        outputs = {"logits": keras.layers.Dense(num_classes, dtype=dtype, name="logits")(pooled)}
        if aux_head:
            outputs["aux_logits"] = keras.layers.Dense(num_classes, dtype=dtype, name="aux")(pooled)
        super().__init__(inputs=images, outputs=outputs, dtype=dtype, **kwargs)
        self.num_classes, self.image_size, self.aux_head = num_classes, image_size, aux_head
        self.drop_path_rate, self.dropout, self.batch_norm = drop_path_rate, dropout, batch_norm


def _batch(n=6, size=8, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-1, 1, (n, size, size, 3)).astype("float32"),
            rng.integers(0, classes, n).astype("int32"))


def _numpy_ce(logits, labels, smoothing, classes):
    targets = np.eye(classes)[labels] * (1 - smoothing) + smoothing / classes
    logits = logits - logits.max(-1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -(targets * log_softmax).sum(-1)


def _model(aux=True, **kwargs):
    keras.utils.set_random_seed(1)
    model = ImageClassifier(TinyNet(aux_head=aux), **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(0.0))  # lr 0: the weights stay, the step only reports
    return model


def test_train_loss_matches_numpy():
    model = _model(label_smoothing=0.1, aux_weight=0.4, weight_decay=1e-2)
    images, labels = _batch()
    outputs = {k: np.asarray(v) for k, v in model.network(images, training=True).items()}
    logs = model.train_step((tf.constant(images), tf.constant(labels)))
    ce = _numpy_ce(outputs["logits"], labels, 0.1, 4).mean()
    aux = _numpy_ce(outputs["aux_logits"], labels, 0.1, 4).mean()
    kernels = [model.network.get_layer(n).kernel.numpy() for n in ("conv", "logits", "aux")]
    decay = 1e-2 * sum((k ** 2).sum() for k in kernels) / 2
    assert sorted(v.path for v in decayed_variables(model.network)) == ["aux/kernel", "conv/kernel", "logits/kernel"]
    np.testing.assert_allclose(float(logs["cross_entropy"]), ce, rtol=1e-5)
    np.testing.assert_allclose(float(logs["loss"]), ce + 0.4 * aux + decay, rtol=1e-5)
    accuracy = (outputs["logits"].argmax(-1) == labels).mean()
    assert float(logs["accuracy"]) == pytest.approx(accuracy)


def test_gradient_of_decay_is_slims_l2():
    """With CE of a frozen network out of the way, one SGD step shrinks each kernel by lr·scale·w."""
    keras.utils.set_random_seed(2)
    model = ImageClassifier(TinyNet(), weight_decay=0.1, label_smoothing=0.0)
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    images, labels = _batch()
    with tf.GradientTape() as tape:
        decay = model.decay_loss()
    grads = tape.gradient(decay, decayed_variables(model.network))
    for v, g in zip(decayed_variables(model.network), grads):
        np.testing.assert_allclose(g.numpy(), 0.1 * v.numpy(), rtol=1e-6)
    bn = model.network.get_layer("bn")
    decayed = {v.path for v in decayed_variables(model.network)}
    assert bn.gamma.path not in decayed and bn.beta.path not in decayed


def test_drop_path_progress_follows_the_step(monkeypatch):
    import zoo.models.nas.image_classifier as module

    seen = []

    class Recording(drop_path_progress):
        def __enter__(self):
            seen.append(float(self.progress))
            return super().__enter__()

    monkeypatch.setattr(module, "drop_path_progress", Recording)
    model = _model(aux=False, total_steps=10)
    for step, progress in ((4, 0.4), (25, 1.0)):
        model.optimizer.iterations.assign(step)
        model.train_step(_batch())
        assert seen[-1] == pytest.approx(progress)


def test_eval_metrics_top_k_and_confusion():
    model = _model(aux=False)
    images, labels = _batch(n=12)
    logits = np.asarray(model.network(images, training=False)["logits"])
    for m in model.eval_metrics:
        m.reset_state()
    model.test_step((images[:7], labels[:7]))
    logs = model.test_step((images[7:], labels[7:]))
    order = np.argsort(-logits, -1)
    assert float(logs["top1"]) == pytest.approx((order[:, 0] == labels).mean())
    assert float(logs["top5"]) == pytest.approx(1.0)  # K = 4 < 5: top-4 always hits
    assert float(logs["loss"]) == pytest.approx(_numpy_ce(logits, labels, 0.0, 4).mean(), rel=1e-5)
    expected = np.zeros((4, 4))
    np.add.at(expected, (labels, order[:, 0]), 1)
    np.testing.assert_array_equal(model.confusion.result().numpy(), expected)
    np.testing.assert_array_equal(np.asarray(logs["confusion"]), expected)  # the trainer's eval/confusion


def test_config_round_trip():
    model = ImageClassifier(TinyNet(num_classes=3), label_smoothing=0.2, weight_decay=5e-4, total_steps=7,
                            clip_norm=5.0)
    clone = ImageClassifier.from_config(model.get_config())
    assert (clone.label_smoothing, clone.weight_decay, clone.total_steps, clone.clip_norm) == (0.2, 5e-4, 7, 5.0)
    assert clone.network.num_classes == 3 and clone.top_k == 3


def test_image_classifier_names_are_image_networks():
    names = image_classifier_names()
    assert "bert_tiny" not in names
    assert all(n.startswith(("nasnet", "pnasnet", "randwire")) for n in names)


def _dataset(ctx, batch):
    images, labels = _batch(n=64, seed=3)
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    return ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id).repeat().batch(
        ctx.get_per_replica_batch_size(batch), drop_remainder=True)


def _eval_dataset(ctx, batch):
    images, labels = _batch(n=13, seed=4)  # 13: the last batches are short and uneven over replicas
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(ctx.get_per_replica_batch_size(batch))


def _train(strategy, model_dir):
    with strategy.scope():
        keras.utils.set_random_seed(5)
        model = ImageClassifier(TinyNet(aux_head=True, batch_norm=False), weight_decay=1e-3, clip_norm=1.0,
                                total_steps=4)
        model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True))
    trainer = Trainer(model, strategy=strategy, model_dir=str(model_dir), dataset_fn=lambda c: _dataset(c, 8),
                      eval_dataset_fn=lambda c: _eval_dataset(c, 4), global_batch_size=8, train_steps=3, log_every=1,
                      verbose=False)
    logs = trainer.train()
    return logs, [v.numpy() for v in model.network.weights]


@pytest.mark.slow
def test_two_replicas_match_one(mirrored, tmp_path):
    single, weights_1 = _train(tf.distribute.get_strategy(), tmp_path / "one")
    double, weights_2 = _train(mirrored, tmp_path / "two")
    for key in ("loss", "cross_entropy", "accuracy", "eval/loss", "eval/top1", "eval/top5"):
        assert double[key] == pytest.approx(single[key], rel=1e-4, abs=1e-6), key
    assert single["eval/confusion"].shape == (4, 4) and single["eval/confusion"].sum() == 13  # every image once
    np.testing.assert_array_equal(double["eval/confusion"], single["eval/confusion"])
    for a, b in zip(weights_1, weights_2):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_mixed_float16_clips_the_unscaled_gradient():
    """Called eagerly before anything built the optimizer (the docstring's use), a mixed_float16 step clips
    the true gradient norm, not the loss-scaled one (which would shrink the update by the loss scale)."""
    images, labels = _batch()
    deltas = {}
    for policy in ("float32", "mixed_float16"):
        keras.mixed_precision.set_global_policy(policy)
        try:
            keras.utils.set_random_seed(3)
            model = ImageClassifier(TinyNet(batch_norm=False), weight_decay=0.0, clip_norm=1e-3)
            model.compile(optimizer=keras.optimizers.SGD(1.0))
            before = [v.numpy() for v in model.trainable_variables]
            model.train_step((tf.constant(images), tf.constant(labels)))
            deltas[policy] = np.sqrt(sum(((v.numpy() - b) ** 2).sum() for v, b in zip(model.trainable_variables,
                                                                                      before)))
        finally:
            keras.mixed_precision.set_global_policy("float32")
    assert deltas["float32"] == pytest.approx(1e-3, rel=1e-3)  # lr 1 x the clipped norm
    assert deltas["mixed_float16"] == pytest.approx(1e-3, rel=1e-2)
