"""The language-modelling task: an `RNNLMBackbone` trained by truncated backpropagation through time, its hidden
state carried from one batch to the next on every replica (Zaremba et al.; the TF PTB tutorial).

    with strategy.scope():
        model = LanguageModel(zoo.create_model("lstm_lm_small", vocabulary_size=V), per_replica_batch_size=10,
                              clip_norm=5.0)
        model.compile(optimizer=keras.optimizers.SGD(1.0))
    logs = model.train_step({"token_ids": x, "targets": y, "weights": w, "reset": r})  # or zoo.training.Trainer
"""

import keras
import tensorflow as tf
from keras import ops

from zoo.errors import ZooError
from zoo.layers.carried_state import carried_state
from zoo.ops import apply_gradients, weighted_mean

LN2 = 0.6931471805599453


class NLLMean(keras.metrics.Mean):
    """A weighted mean of per-token negative log-likelihoods, reported as itself ("nll"), its exponential
    ("perplexity") or in bits ("bits"). The state is Keras' (sums), so the result is exact across replicas."""

    def __init__(self, name, kind="nll", **kwargs):
        super().__init__(name=name, **kwargs)
        if kind not in ("nll", "perplexity", "bits"):
            raise ValueError(f"kind must be nll, perplexity or bits, got {kind!r}")
        self.kind = kind

    def result(self):
        mean = super().result()
        if self.kind == "perplexity":
            return ops.exp(mean)
        if self.kind == "bits":
            return mean / LN2
        return mean

    def get_config(self):
        return {**super().get_config(), "kind": self.kind}


class LanguageModel(keras.Model):
    """Next-token prediction over streams of text with state carried across batches (truncated BPTT).

    Batches (one replica's, a dict): `token_ids` int32 [b, T], `targets` int32 [b, T] (the next tokens),
    `weights` float32 [b, T] (0 on padding; optional, default ones), `reset` float32 [b] (1: this row starts a
    new stream, its carried state is zeroed first; optional, default none). Row i of every batch continues
    row i of the previous batch unless reset. Padding positions still advance the state, so a row that
    follows padding must be reset.

    The carried state is one `carried_state` variable per state tensor of the backbone (`h` and `c` of each
    LSTM layer, `h` otherwise), [per_replica_batch_size, H], float32; `zoo.training.Trainer` checkpoints each
    replica's copy and restores it on resume, zeroes it for evaluation and puts it back afterwards. Gradients
    stop at the start of each segment (the carried state is a constant). A batch may have fewer rows than
    `per_replica_batch_size` (a short last evaluation batch): it uses and updates the first rows of the state.

    `train_step` returns `loss` (the mean NLL per real token over the GLOBAL batch: `zoo.ops.weighted_mean`,
    so any replica count gives the same update) and `perplexity` = exp(loss), after clipping the global
    gradient norm to `clip_norm` (None: no clipping). `test_step` updates the metrics `loss` (NLL per token),
    `perplexity`, `bits_per_token` (NLL / ln 2: bits per character at char level) and `token_accuracy`,
    weighted by `weights`, and carries the state too. Logits and the loss are float32 under mixed precision.

    Args:
        backbone: an `RNNLMBackbone`.
        per_replica_batch_size: rows of one replica's batch (global batch / replicas).
        clip_norm: global gradient-norm clip (Zaremba: 5, 10 for large).
    """

    def __init__(self, backbone, per_replica_batch_size, clip_norm=None, **kwargs):
        super().__init__(**kwargs)
        if per_replica_batch_size < 1:
            raise ZooError(f"per_replica_batch_size must be at least 1, got {per_replica_batch_size}")
        self.backbone = backbone
        self.per_replica_batch_size = per_replica_batch_size
        self.clip_norm = clip_norm
        self.carried = [carried_state(self, f"state_{i}", (per_replica_batch_size, backbone.hidden_dim))
                        for i in range(backbone.state_size)]
        self.loss_metric = NLLMean("loss")
        self.perplexity_metric = NLLMean("perplexity", kind="perplexity")
        self.bits_metric = NLLMean("bits_per_token", kind="bits")
        self.accuracy_metric = keras.metrics.Mean(name="token_accuracy")

    def call(self, token_ids, training=False):
        """Logits [batch, T, V] from the zero state (stateless; the train and test steps carry the state)."""
        return self.backbone(token_ids, training=training)

    # === Carried state ===

    def read_state(self, rows, reset=None):
        """The carried state's first `rows` rows, zeroed where `reset` is 1, as constants (truncated BPTT)."""
        state = [tf.convert_to_tensor(v)[:rows] for v in self.carried]
        if reset is not None:
            keep = 1.0 - tf.cast(reset, tf.float32)[:, None]
            state = [s * keep for s in state]
        return [tf.stop_gradient(s) for s in state]

    def write_state(self, state):
        """Stores `state` (possibly fewer rows than the variables) into the first rows of the carried state."""
        for v, s in zip(self.carried, state):
            s = tf.cast(s, v.dtype)
            old = tf.convert_to_tensor(v)
            v.assign(tf.concat([s, old[tf.shape(s)[0]:]], axis=0))

    def reset_state(self):
        """Zeroes the carried state (this replica's copy)."""
        for v in self.carried:
            v.assign(tf.zeros(v.shape, v.dtype))

    # === Steps ===

    def _forward(self, data, training):
        token_ids = tf.cast(data["token_ids"], tf.int32)
        rows = token_ids.shape[0]
        if rows is not None and rows > self.per_replica_batch_size:
            raise ZooError(f"a batch of {rows} rows per replica is larger than per_replica_batch_size="
                           f"{self.per_replica_batch_size}; build the LanguageModel for that batch")
        rows = tf.shape(token_ids)[0]
        state = self.read_state(rows, data.get("reset"))
        logits, new_state = self.backbone.run(token_ids, initial_state=state, training=training)
        targets = tf.cast(data["targets"], tf.int32)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=tf.cast(logits, tf.float32))
        weights = data.get("weights")
        weights = tf.ones_like(nll) if weights is None else tf.cast(weights, tf.float32)
        return logits, nll, weights, new_state

    def train_step(self, data):
        with tf.GradientTape() as tape:
            _, nll, weights, new_state = self._forward(data, training=True)
            share, loss = weighted_mean(nll, weights)
            scaled = self.optimizer.scale_loss(share)
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        apply_gradients(self.optimizer, grads, variables, self.clip_norm)
        self.write_state(new_state)
        return {"loss": loss, "perplexity": tf.exp(loss)}

    def test_step(self, data):
        """Updates `loss`, `perplexity`, `bits_per_token` and `token_accuracy` over the weighted tokens."""
        logits, nll, weights, new_state = self._forward(data, training=False)
        self.write_state(new_state)
        targets = tf.cast(data["targets"], tf.int32)
        hits = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), targets), tf.float32)
        flat = lambda x: tf.reshape(x, (-1,))  # noqa: E731
        for metric in (self.loss_metric, self.perplexity_metric, self.bits_metric):
            metric.update_state(flat(nll), sample_weight=flat(weights))
        self.accuracy_metric.update_state(flat(hits), sample_weight=flat(weights))
        return {m.name: m.result() for m in self.metrics}

    @property
    def metrics(self):
        return [self.loss_metric, self.perplexity_metric, self.bits_metric, self.accuracy_metric]
