"""The image-classification task model shared by NASNet-A, PNASNet-5 and RandWire networks.

`ImageClassifier` wraps any network of the image-classifier contract (float images [batch, S, S, 3] in,
`{"logits": [batch, K]}` out, plus `"aux_logits"` with an auxiliary head) and trains it as TF-slim's
`train_image_classifier.py` / `nasnet` train scripts do:

    loss = CE_smoothed(logits) + aux_weight · CE_smoothed(aux_logits) + weight_decay · Σ‖w‖² / 2

- label smoothing `ε` (0.1): targets (1 - ε)·onehot + ε / K, as `tf.losses.softmax_cross_entropy`;
- the auxiliary head's loss weighted by `aux_weight` (0.4 in NASNet/PNASNet), with the same smoothing;
- weight decay as slim's `l2_regularizer(scale)` (scale 4e-5 for the NASNet/PNASNet ImageNet models, 5e-4
  for CIFAR NASNet): `scale · Σ w² / 2` over every convolution (plain, depthwise and pointwise kernels) and
  dense KERNEL, never BatchNorm parameters or biases. In Keras terms this is `kernel_regularizer=
  keras.regularizers.L2(scale / 2)` on each of those layers (Keras' L2 has no 1/2), or, for plain SGD,
  a coupled decay of `scale · w` added to each kernel's gradient; it is not AdamW's decoupled decay.
- drop path: `progress = min(1, global_step / total_steps)` is made visible to every `ScheduledDropPath`
  of the network (`zoo.layers.drop_path.drop_path_progress`), so the drop rate ramps up linearly over
  `total_steps` (slim's `total_training_steps`) as slim's "v3" schedule does.

The cross-entropies are means over the GLOBAL batch (`zoo.ops.weighted_mean`) and the decay is counted once
over all replicas, so any replica count gives the same update. Under mixed precision the loss is scaled
by the optimizer (`LossScaleOptimizer`) and an overflow on any replica skips the step everywhere.
"""

import keras
import tensorflow as tf
from keras import ops

from zoo.layers.config import Configurable
from zoo.layers.drop_path import drop_path_progress
from zoo.ops import apply_gradients, global_step, num_replicas, weighted_mean

FAMILIES = ("nasnet", "pnasnet", "randwire")
DECAYED = ("kernel", "depthwise_kernel", "pointwise_kernel")  # variable names that weight decay applies to


def image_classifier_names():
    """The registered names whose family is NASNet-A, PNASNet-5 or RandWire (networks of the contract)."""
    from zoo.registry import families

    return sorted(info.name for family, infos in families().items() if family in FAMILIES for info in infos)


def decayed_variables(network):
    """The kernels of `network` that weight decay applies to: convolution (plain, depthwise, pointwise) and
    dense kernels; not BatchNorm's gamma/beta, not biases."""
    return [v for v in network.trainable_variables if v.name in DECAYED]


@keras.saving.register_keras_serializable(package="zoo")
class ConfusionMatrix(keras.metrics.Metric):
    """Counts [true class, predicted class] pairs in a [K, K] int state summed over batches and replicas;
    `result()` is the matrix (rows: true class, columns: predicted)."""

    def __init__(self, num_classes, name="confusion_matrix", **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.counts = self.add_variable((num_classes, num_classes), initializer="zeros", dtype="float32",
                                        aggregation="sum", name="counts")

    def update_state(self, labels, predictions):
        counts = tf.math.confusion_matrix(tf.reshape(labels, [-1]), tf.reshape(predictions, [-1]),
                                          num_classes=self.num_classes, dtype=tf.float32)
        self.counts.assign_add(counts)

    def result(self):
        return ops.convert_to_tensor(self.counts)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name}


@keras.saving.register_keras_serializable(package="zoo")
class ImageClassifier(Configurable, keras.Model):
    """An image-classifier network with slim's training losses and a distributed-exact `train_step`.

    Args:
        network: a network of the contract (e.g. `zoo.create_model("nasnet_a_cifar")`): attributes
            `image_size`, `num_classes`; outputs `{"logits"}` (and `"aux_logits"` with an aux head).
        label_smoothing: ε of the smoothed one-hot targets (0.1 in NASNet/PNASNet/RandWire).
        aux_weight: weight of the auxiliary head's loss (0.4), used when the network returns `aux_logits`.
        weight_decay: slim's L2 scale: the loss gains `weight_decay · Σ w² / 2` over conv and dense kernels.
        total_steps: length of the drop-path schedule in steps (slim's `total_training_steps`).
        clip_norm: clip the global gradient norm across replicas to this (slim: 5 for CIFAR, 10 mobile);
            None: no clipping.

    `train_step` takes `(images, labels)` batches (float images [batch, S, S, 3], int labels [batch]) and
    returns `loss` (the total above), `cross_entropy` (smoothed CE of the main head) and `accuracy` (top-1 on
    the training batch). `test_step` (inference mode) updates the metrics `loss` (cross-entropy without
    smoothing), `top1`, `top5` (top-min(5, K)) and `confusion` (a `ConfusionMatrix`, [K, K] counts) and
    returns all four; their results over all evaluation batches and replicas are exact global means and
    counts (`eval_metrics`), so `Trainer.train()` returns them as `eval/loss`, ..., `eval/confusion` (an array).

    Example:
        network = zoo.create_model("nasnet_a_cifar", num_classes=10)
        model = ImageClassifier(network, total_steps=1000)
        model.compile(optimizer=keras.optimizers.SGD(0.025, momentum=0.9, nesterov=True))
        logs = model.train_step((images, labels))   # or zoo.training.Trainer(model, ...).train()
    """

    def __init__(self, network, label_smoothing=0.1, aux_weight=0.4, weight_decay=4e-5, total_steps=250_000,
                 clip_norm=None, **kwargs):
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if total_steps < 1:
            raise ValueError(f"total_steps must be at least 1, got {total_steps}")
        # === Layers ===
        self.network = network

        # === Functional Model ===
        size = network.image_size
        images = keras.Input((size, size, 3), name="images")
        super().__init__(inputs=images, outputs=network(images), **kwargs)

        # === Config ===
        self.label_smoothing = label_smoothing
        self.aux_weight = aux_weight
        self.weight_decay = weight_decay
        self.total_steps = total_steps
        self.clip_norm = clip_norm
        self.num_classes = network.num_classes
        self.top_k = min(5, self.num_classes)

        # === Evaluation metrics ===
        self.loss_metric = keras.metrics.Mean(name="loss")
        self.top1 = keras.metrics.Mean(name="top1")
        self.top5 = keras.metrics.Mean(name="top5")
        self.confusion = ConfusionMatrix(self.num_classes, name="confusion")

    @property
    def eval_metrics(self):
        """The metrics `test_step` updates (`confusion` last)."""
        return [self.loss_metric, self.top1, self.top5, self.confusion]

    def _cross_entropy(self, labels, logits, smoothing):
        """Per-example softmax cross-entropy against (1 - ε)·onehot + ε/K targets, float32."""
        logits = ops.cast(logits, "float32")
        targets = ops.one_hot(ops.cast(labels, "int32"), self.num_classes, dtype="float32")
        if smoothing:
            targets = targets * (1.0 - smoothing) + smoothing / self.num_classes
        return keras.losses.categorical_crossentropy(targets, logits, from_logits=True)

    def decay_loss(self):
        """`weight_decay · Σ w² / 2` over the network's conv and dense kernels (float32 scalar)."""
        if not self.weight_decay:
            return tf.constant(0.0)
        squares = [tf.reduce_sum(tf.square(tf.cast(v, tf.float32))) for v in decayed_variables(self.network)]
        return self.weight_decay * 0.5 * tf.add_n(squares) if squares else tf.constant(0.0)

    def train_step(self, data):
        images, labels = data
        labels = tf.reshape(labels, [-1])
        progress = tf.minimum(tf.cast(global_step(self), tf.float32) / float(self.total_steps), 1.0)
        with tf.GradientTape() as tape:
            with drop_path_progress(progress):
                outputs = self.network(images, training=True)
            ce = self._cross_entropy(labels, outputs["logits"], self.label_smoothing)
            ce_share, ce_total = weighted_mean(ce)
            share, loss = ce_share, ce_total
            if "aux_logits" in outputs and self.aux_weight:
                aux_share, aux_total = weighted_mean(
                    self._cross_entropy(labels, outputs["aux_logits"], self.label_smoothing))
                share, loss = share + self.aux_weight * aux_share, loss + self.aux_weight * aux_total
            decay = self.decay_loss()
            share = share + decay / float(num_replicas())  # the replicas' gradients are summed: once in all
            loss = loss + decay
            scaled = self.optimizer.scale_loss(share)
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        apply_gradients(self.optimizer, grads, variables, self.clip_norm)

        hits = ops.cast(ops.equal(ops.argmax(ops.cast(outputs["logits"], "float32"), -1),
                                  ops.cast(labels, "int64")), "float32")
        _, accuracy = weighted_mean(hits)
        return {"loss": loss, "cross_entropy": ce_total, "accuracy": accuracy}

    def test_step(self, data):
        """Updates the evaluation metrics on one batch (inference mode); returns their results so far
        (`loss`, `top1`, `top5` scalars and the `confusion` matrix)."""
        images, labels = data
        labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
        # A replica may get an empty last batch (TF's convolutions reject those on CPU): skip the network.
        logits = tf.cond(
            tf.shape(images)[0] > 0,
            lambda: tf.cast(self.network(images, training=False)["logits"], tf.float32),
            lambda: tf.zeros([0, self.num_classes], tf.float32))
        self.loss_metric.update_state(self._cross_entropy(labels, logits, 0.0))
        predictions = tf.argmax(logits, -1, output_type=tf.int32)
        self.top1.update_state(tf.cast(tf.equal(predictions, labels), tf.float32))
        self.top5.update_state(tf.cast(tf.math.in_top_k(labels, logits, self.top_k), tf.float32))
        self.confusion.update_state(labels, predictions)
        return {m.name: m.result() for m in self.eval_metrics}

    def predict_top_k(self, images, k=None):
        """Inference: `(probabilities [batch, K], top-k classes int32 [batch, k], their scores [batch, k])`."""
        logits = tf.cast(self.network(images, training=False)["logits"], tf.float32)
        probabilities = tf.nn.softmax(logits, -1)
        scores, classes = tf.math.top_k(probabilities, k=min(k or self.top_k, self.num_classes))
        return probabilities, classes, scores
