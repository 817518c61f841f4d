"""XLNet sequence classification / regression fine-tuning (zihangdai/xlnet `run_classifier.py`:
`summarize_sequence(summary_type="last", use_proj=True)` then `classification_loss` / `regression_loss`).

    model = XLNetClassifier(zoo.create_model("xlnet_tiny"), num_classes=2)
    model.compile(optimizer=keras.optimizers.Adam(2e-5))
    inputs = {"token_ids": np.array([[5, 5, 17, 18, 4, 3]]),      # <pad> <pad> A A <sep> <cls>: left padding
              "segment_ids": np.array([[4, 4, 0, 0, 0, 2]]), "padding_mask": np.array([[0, 0, 1, 1, 1, 1]])}
    logits = model(inputs)                                      # [1, 2]
    logs = model.train_step({**inputs, "labels": np.array([1])})   # or zoo.training.Trainer(model, ...)
"""

import keras
import tensorflow as tf
from keras import ops

from zoo.layers import Configurable, normal_initializer
from zoo.ops import apply_used_gradients, weighted_mean

FEATURES = ("token_ids", "segment_ids", "padding_mask")
# Fine-tuning runs the content stream only: the query stream's start vector gets no gradient.
UNUSED_IN_FINE_TUNING = ("mask_emb",)
LEFT_PADDED = "XLNet inputs are LEFT-padded: the last position must be the real <cls> token"


@keras.saving.register_keras_serializable(package="zoo")
class XLNetClassifier(Configurable, keras.Model):
    """An `XLNetBackbone`'s content stream summarised by its LAST token, then Dense(H, tanh) named `summary`,
    dropout, and Dense(num_classes) named `logits` (the original's "summary" and "logit" layers).

    Inputs: int32 [batch, seq] `token_ids`, `segment_ids` (A=0, B=1, CLS=2, PAD=4 as the original
    classifier_utils) and `padding_mask` (1 = real token; the original `input_mask` is the opposite and is
    converted by the data pipeline). Sequences are LEFT-padded and end with `<sep> <cls>`, so the last
    position is always the real `<cls>` (`train_step`/`test_step` and the serving endpoints check it in-graph:
    an InvalidArgumentError for a right-padded row of nonzero weight); padding is masked as keys in every
    layer, so the logits do not depend on how much padding there is. No memories are used in fine-tuning.
    Output: float32 logits [batch, num_classes]; with `num_classes=1` (regression, e.g. STS-B) the single
    column is the prediction.

    `train_step` takes the inputs plus `labels` (int32 class ids, or float32 targets for regression) and an
    optional `weights` [batch] (0 for padding rows of a short last batch); the loss is the softmax
    cross-entropy (or the squared error for regression) averaged over the GLOBAL batch, with the global
    gradient norm clipped to `clip_norm` (original: 1.0). It returns `loss` and `accuracy` (classification).
    `test_step` updates the metrics `loss` and `accuracy` (classification) or `loss` (mean squared error)
    and `pearson` (regression; exact over all batches and replicas).

    Args:
        backbone: an `XLNetBackbone`.
        num_classes: classes; 1 = regression.
        dropout: dropout after the summary projection (original: the model's dropout, 0.1).
        initializer_range: stddev of the N(0, σ²) head initializers (original `init_std` 0.02).
        clip_norm: global gradient-norm clip (None: none).
    """

    def __init__(self, backbone, num_classes, *, dropout=0.1, initializer_range=0.02, clip_norm=1.0, **kwargs):
        # === Layers ===
        self.backbone = backbone
        dtype = backbone.dtype_policy
        self.summary_dense = keras.layers.Dense(backbone.hidden_dim, activation="tanh", dtype=dtype, name="summary",
                                                kernel_initializer=normal_initializer(initializer_range))
        self.summary_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="summary_dropout")
        self.logits_dense = keras.layers.Dense(num_classes, dtype=dtype, name="logits",
                                               kernel_initializer=normal_initializer(initializer_range))

        # === Functional Model ===
        inputs = {name: keras.Input((None,), dtype="int32", name=name) for name in FEATURES}
        hidden = backbone(inputs)
        summary = self.summary_dropout(self.summary_dense(hidden[:, -1, :]))
        logits = keras.layers.Activation("linear", dtype="float32", name="float_logits")(self.logits_dense(summary))
        kwargs.setdefault("name", "xlnet_classifier")
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

        # === Config ===
        self.num_classes = num_classes
        self.dropout = dropout
        self.initializer_range = initializer_range
        self.clip_norm = clip_norm

        # === Evaluation metrics ===
        self.loss_metric = keras.metrics.Mean(name="loss")
        self.accuracy_metric = keras.metrics.Mean(name="accuracy")
        self.pearson_metric = PearsonCorrelation(name="pearson")

    @property
    def regression(self):
        return self.num_classes == 1

    @property
    def eval_metrics(self):
        """The metrics `test_step` updates."""
        return [self.loss_metric, self.pearson_metric if self.regression else self.accuracy_metric]

    def losses_and_hits(self, labels, logits):
        """Per-example float32 losses and hits (hits None for regression)."""
        if self.regression:
            return ops.square(logits[:, 0] - ops.cast(labels, "float32")), None
        labels = ops.cast(labels, "int32")
        ce = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        return ce, ops.cast(ops.equal(ops.cast(ops.argmax(logits, -1), "int32"), labels), "float32")

    def train_step(self, data):
        weights = data.get("weights")
        with tf.GradientTape() as tape:
            logits = self(left_padded(data), training=True)
            losses, hits = self.losses_and_hits(data["labels"], logits)
            share, loss = weighted_mean(losses, weights)
            scaled = self.optimizer.scale_loss(share)
        variables = self.trainable_variables
        apply_used_gradients(self.optimizer, tape.gradient(scaled, variables), variables, self.clip_norm,
                             unused=UNUSED_IN_FINE_TUNING)
        logs = {"loss": loss}
        if hits is not None:
            logs["accuracy"] = weighted_mean(hits, weights)[1]
        return logs

    def test_step(self, data):
        """Updates the evaluation metrics on one batch (inference mode); returns their results so far."""
        logits = self(left_padded(data), training=False)
        losses, hits = self.losses_and_hits(data["labels"], logits)
        weights = data.get("weights")
        weights = ops.ones_like(losses) if weights is None else ops.cast(weights, "float32")
        self.loss_metric.update_state(losses, sample_weight=weights)
        if self.regression:
            self.pearson_metric.update_state(ops.cast(data["labels"], "float32"), logits[:, 0], weights)
        else:
            self.accuracy_metric.update_state(hits, sample_weight=weights)
        return {m.name: m.result() for m in self.eval_metrics}


def left_padded(data):
    """The model inputs of a batch, after an in-graph check that every row with a nonzero `weights` (all rows
    without weights) ends with a real token: the head summarises the last position, the `<cls>` only under
    left padding, so right-padded rows would train and score silently on padding. (XLA drops asserts: under
    --jit_compile the check is skipped.)"""
    last = tf.cast(data["padding_mask"], tf.int32)[:, -1]
    if data.get("weights") is not None:
        last = tf.where(tf.cast(data["weights"], tf.float32) > 0, last, 1)
    with tf.control_dependencies([tf.debugging.assert_equal(last, 1, message=LEFT_PADDED)]):
        return {k: tf.identity(data[k]) for k in FEATURES}


@keras.saving.register_keras_serializable(package="zoo")
class PearsonCorrelation(keras.metrics.Metric):
    """Weighted Pearson correlation of targets and predictions (STS-B's metric) from summed moments, so the
    result over several batches and replicas is exact (Keras sums the state variables across replicas)."""

    def __init__(self, name="pearson", **kwargs):
        super().__init__(name=name, **kwargs)
        self.moments = self.add_variable(shape=(6,), initializer="zeros", name="moments")  # n, x, y, xx, yy, xy

    def update_state(self, y_true, y_pred, sample_weight=None):
        x, y = ops.cast(ops.reshape(y_true, (-1,)), "float32"), ops.cast(ops.reshape(y_pred, (-1,)), "float32")
        w = ops.ones_like(x) if sample_weight is None else ops.cast(ops.reshape(sample_weight, (-1,)), "float32")
        terms = ops.stack([w, w * x, w * y, w * x * x, w * y * y, w * x * y])
        self.moments.assign_add(ops.sum(terms, axis=1))

    def result(self):
        n, sx, sy, sxx, syy, sxy = [self.moments[i] for i in range(6)]
        n = ops.maximum(n, 1e-12)
        cov = sxy / n - sx * sy / n ** 2
        var_x, var_y = sxx / n - (sx / n) ** 2, syy / n - (sy / n) ** 2
        return cov / ops.sqrt(ops.maximum(var_x * var_y, 1e-24))

    def reset_state(self):
        self.moments.assign(ops.zeros((6,), "float32"))


__all__ = ["PearsonCorrelation", "XLNetClassifier", "left_padded"]
