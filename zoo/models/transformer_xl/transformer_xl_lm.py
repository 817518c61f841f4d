"""The Transformer-XL language-model task: next-token NLL through the adaptive softmax, with every layer's
memory carried from one batch to the next on every replica (the original's `mems`), and the paper's evaluation
protocol (its own mem_len / clamp_len / same_length) in `test_step`.

    with strategy.scope():
        backbone = zoo.create_model("transformer_xl_tiny", vocabulary_size=V)
        model = TransformerXLLanguageModel(backbone, per_replica_batch_size=8, mem_len=64, eval_mem_len=128,
                                           eval_same_length=True)
        model.compile(optimizer=keras.optimizers.Adam(2.5e-4))
    logs = model.train_step({"token_ids": x, "targets": y, "weights": w, "reset": r})  # or zoo.training.Trainer
"""

import keras
import tensorflow as tf

from zoo.errors import ZooError
from zoo.layers.segment_memory import SegmentMemory
from zoo.models.sequence.language_model import NLLMean
from zoo.ops import apply_gradients, weighted_mean


class TransformerXLLanguageModel(keras.Model):
    """Next-token prediction over streams of text with Transformer-XL memories carried across batches.

    Batches (one replica's, a dict) as `zoo.models.sequence.LanguageModel`: `token_ids` int32 [b, T],
    `targets` int32 [b, T], `weights` float32 [b, T] (0 on padding; optional), `reset` float32 [b] (1: this row
    starts a new stream and its memory is dropped; optional). Row i of a batch continues row i of the previous.

    Carried state (`zoo.layers.segment_memory.SegmentMemory`, per replica, float32): `memory` holds each
    layer i's memory `memory_{i}` [per_replica_batch_size, mem_len, H] (its input, as the original caches
    hids[i]) and `memory_length` [per_replica_batch_size], the number of real (right-aligned) slots; training
    reads and writes it with the training clamp_len/same_length, and checkpoints hold it. Evaluation
    (`test_step`, the paper's protocol) has its own `eval_memory` [per_replica_batch_size, eval_mem_len, H]
    with eval_clamp_len/eval_same_length, made with `checkpoint=False`: `zoo.training.Trainer` zeroes it before
    each evaluation but never saves it, so a resumed run may change eval_mem_len. A batch may have fewer rows
    than per_replica_batch_size: it uses the first rows.

    `train_step` returns `loss` (NLL per real token over the GLOBAL batch, `zoo.ops.weighted_mean`, so any
    replica count gives the same update) and `perplexity`, after clipping the global gradient norm to
    `clip_norm` (the original's 0.25; None: no clipping). `test_step` updates `loss`, `perplexity` and
    `bits_per_token` (bits per character at char level), weighted by `weights`.

    Args:
        backbone: a `TransformerXLBackbone`.
        per_replica_batch_size: rows of one replica's batch.
        mem_len, clamp_len, same_length: the training settings.
        eval_mem_len, eval_clamp_len, eval_same_length: evaluation's (None: the training value).
        clip_norm: global gradient-norm clip.
    """

    def __init__(self, backbone, per_replica_batch_size, *, mem_len, clamp_len=-1, same_length=False,
                 eval_mem_len=None, eval_clamp_len=None, eval_same_length=None, clip_norm=0.25, **kwargs):
        super().__init__(**kwargs)
        if per_replica_batch_size < 1:
            raise ZooError(f"per_replica_batch_size must be at least 1, got {per_replica_batch_size}")
        if mem_len < 0 or (eval_mem_len is not None and eval_mem_len < 0):
            raise ZooError(f"memory lengths must be >= 0, got mem_len={mem_len}, eval_mem_len={eval_mem_len}; "
                           "pass --mem_len/--eval_mem_len >= 0")
        self.backbone = backbone
        self.per_replica_batch_size = per_replica_batch_size
        self.mem_len = int(mem_len)
        self.clamp_len = int(clamp_len)
        self.same_length = bool(same_length)
        self.eval_mem_len = self.mem_len if eval_mem_len is None else int(eval_mem_len)
        self.eval_clamp_len = self.clamp_len if eval_clamp_len is None else int(eval_clamp_len)
        self.eval_same_length = self.same_length if eval_same_length is None else bool(eval_same_length)
        for length, same, flag in ((self.mem_len, self.same_length, "--same_length"),
                                   (self.eval_mem_len, self.eval_same_length, "--eval_same_length")):
            if same and length < 1:
                raise ZooError(f"{flag} needs a memory (every query would see no key); pass a memory length >= 1 "
                               f"or {flag}=false")
        self.clip_norm = clip_norm
        shape = dict(num_layers=backbone.num_layers, rows=per_replica_batch_size, hidden_dim=backbone.hidden_dim)
        self.memory = SegmentMemory(self, slots=self.mem_len, name="memory", **shape)
        self.eval_memory = SegmentMemory(self, slots=self.eval_mem_len, checkpoint=False, name="eval_memory", **shape)
        self.loss_metric = NLLMean("loss")
        self.perplexity_metric = NLLMean("perplexity", kind="perplexity")
        self.bits_metric = NLLMean("bits_per_token", kind="bits")

    def call(self, token_ids, training=False):
        """Log-probabilities [batch, T, V] from empty memory (stateless; the steps carry the memories)."""
        return self.backbone.adaptive_softmax.log_probs(self.backbone(token_ids, training=training))

    # === Carried memories ===

    def reset_state(self):
        """Drops every memory, training's and evaluation's (this replica's copy)."""
        self.memory.reset()
        self.eval_memory.reset()

    # === Steps ===

    def _forward(self, data, training):
        token_ids = tf.cast(data["token_ids"], tf.int32)
        rows = token_ids.shape[0]
        if rows is not None and rows > self.per_replica_batch_size:
            raise ZooError(f"a batch of {rows} rows per replica is larger than per_replica_batch_size="
                           f"{self.per_replica_batch_size}; build the model with per_replica_batch_size = "
                           "--global_batch_size / replicas")
        if training:
            memory, mem_len, clamp_len, same_length = self.memory, self.mem_len, self.clamp_len, self.same_length
        else:
            memory, mem_len = self.eval_memory, self.eval_mem_len
            clamp_len, same_length = self.eval_clamp_len, self.eval_same_length
        memories, length = memory.read(tf.shape(token_ids)[0], data.get("reset"))
        hidden, new_memories, new_length = self.backbone.run(
            token_ids, memories, length, mem_len=mem_len, clamp_len=clamp_len, same_length=same_length,
            training=training)
        nll = self.backbone.adaptive_softmax.nll(hidden, data["targets"])
        weights = data.get("weights")
        weights = tf.ones_like(nll) if weights is None else tf.cast(weights, tf.float32)
        memory.write(new_memories, new_length)
        return nll, weights

    def train_step(self, data):
        with tf.GradientTape() as tape:
            nll, weights = self._forward(data, training=True)
            share, loss = weighted_mean(nll, weights)
            scaled = self.optimizer.scale_loss(share)
        variables = self.trainable_variables
        grads = tape.gradient(scaled, variables)
        apply_gradients(self.optimizer, grads, variables, self.clip_norm)
        return {"loss": loss, "perplexity": tf.exp(loss)}

    def test_step(self, data):
        """Updates `loss`, `perplexity` and `bits_per_token` over the weighted tokens."""
        nll, weights = self._forward(data, training=False)
        flat = lambda x: tf.reshape(x, (-1,))  # noqa: E731
        for metric in self.metrics:
            metric.update_state(flat(nll), sample_weight=flat(weights))
        return {m.name: m.result() for m in self.metrics}

    @property
    def metrics(self):
        return [self.loss_metric, self.perplexity_metric, self.bits_metric]
