"""XLNet's permutation language-model pretraining task (zihangdai/xlnet `two_stream_loss` / `lm_loss`), with the
memories carried from one step to the next on every replica.

    model = XLNetPretrainer(zoo.create_model("xlnet_tiny"), per_replica_batch_size=2, mem_len=8, reuse_len=4)
    model.compile(optimizer=keras.optimizers.Adam(1e-4))     # (under strategy.scope() when distributed)
    ids = np.random.randint(10, 100, size=(2, 8))
    perm_mask = np.zeros((2, 8, 8)); perm_mask[:, :, 6:] = 1  # nobody sees the targets at positions 6 and 7
    batch = {"token_ids": ids, "segment_ids": np.zeros((2, 8), "int32"), "perm_mask": perm_mask,
             "target_mapping": np.eye(8)[None, 6:].repeat(2, 0), "targets": ids[:, 6:],
             "target_weights": np.ones((2, 2))}
    logs = model.train_step(batch)   # {"loss", "accuracy", "perplexity"}; or zoo.training.Trainer(model, ...)
"""

import keras
import tensorflow as tf
from keras import ops

from zoo.errors import ZooError
from zoo.layers import Configurable
from zoo.layers.segment_memory import SegmentMemory, cache_memories
from zoo.models.sequence.language_model import NLLMean
from zoo.ops import apply_used_gradients, weighted_mean

FEATURES = ("token_ids", "segment_ids", "perm_mask", "target_mapping", "targets", "target_weights")


@keras.saving.register_keras_serializable(package="zoo")
class XLNetPretrainer(Configurable, keras.Model):
    """An `XLNetBackbone` trained by the two-stream permutation LM, as the original `train_gpu.py`.

    Batches (one replica's, batch-major, static shapes; `zoo.data`'s XLNet producer writes them):
    `token_ids` int32 [b, T], `segment_ids` int32 [b, T], `perm_mask` float32 [b, T, T] (the original
    polarity: 1 = query i may NOT attend to key j; converted inside the backbone), `target_mapping` float32
    [b, P, T] (one-hot: prediction slot p predicts position t), `targets` int32 [b, P], `target_weights`
    float32 [b, P] (0 for unused slots), and optionally `reset` float32 [b] (1: this row starts a new stream,
    its memory is dropped first) and `input_q`/`padding_mask` (`input_q` is implied by `target_mapping`).

    The loss is the original `lm_loss`: the query stream's output (dropout included in the backbone) times
    the transposed word embedding plus a [V] bias `lm_bias` (the only weights the task adds: +V parameters;
    no dense/LayerNorm transform, unlike Model Garden's), softmax cross-entropy averaged over
    `target_weights` across the GLOBAL batch (`zoo.ops.weighted_mean`, so any replica count gives the same
    update); the global gradient norm is clipped to `clip_norm` (original: 1.0).

    Memories: one `carried_state` variable [per_replica_batch_size, mem_len, H] per layer (layer i's memory =
    the input of layer i) plus `memory_length` [per_replica_batch_size] (float32 count of the valid,
    right-aligned slots; zero slots are masked until filled). After each step the new memory of a layer is
    the last `mem_len` positions of concat(old memory, its input over the first `reuse_len` positions)
    (the original `_cache_mem`), as constants. `zoo.training.Trainer` checkpoints each replica's copy and
    zeroes them for evaluation. Memory positions are always visible and count as segment 0 (backbone).
    A batch may have fewer rows than `per_replica_batch_size`: it uses the first rows of the memory.

    `train_step` returns `loss` (global mean NLL per target), `accuracy` (argmax hits over targets) and
    `perplexity` = exp(loss). `test_step` (no dropout, memories carried) updates the metrics `loss`,
    `perplexity` and `accuracy`, exact global means over all evaluation batches and replicas.

    Args:
        backbone: an `XLNetBackbone`.
        per_replica_batch_size: rows of one replica's batch (global batch / replicas).
        mem_len: memory length (XLNet-Large: 384); 0 = no memory.
        reuse_len: leading positions of each segment cached as memory (XLNet-Large: 256); 0 = all.
        clip_norm: global gradient-norm clip (None: none).
    """

    def __init__(self, backbone, per_replica_batch_size, *, mem_len, reuse_len, clip_norm=1.0, **kwargs):
        kwargs.setdefault("name", "xlnet_pretrainer")
        super().__init__(**kwargs)
        if per_replica_batch_size < 1:
            raise ZooError(f"per_replica_batch_size must be at least 1, got {per_replica_batch_size}")
        if mem_len < 0 or reuse_len < 0:
            raise ZooError(f"--mem_len ({mem_len}) and --reuse_len ({reuse_len}) must be >= 0")
        self.backbone = backbone
        self.per_replica_batch_size = per_replica_batch_size
        self.mem_len = mem_len
        self.reuse_len = reuse_len
        self.clip_norm = clip_norm
        self.lm_bias = self.add_weight(shape=(backbone.vocabulary_size,), initializer="zeros", name="lm_bias",
                                       dtype="float32")
        rows, hidden = per_replica_batch_size, backbone.hidden_dim
        self.memory = SegmentMemory(self, num_layers=backbone.num_layers, rows=rows, slots=mem_len,
                                    hidden_dim=hidden, name="memory")
        self.loss_metric = NLLMean("loss")
        self.perplexity_metric = NLLMean("perplexity", kind="perplexity")
        self.accuracy_metric = keras.metrics.Mean(name="accuracy")
        self.built = True  # every weight exists now

    # === Forward ===

    def lm_logits(self, hidden):
        """Float32 logits [..., V] of the tied softmax: hidden · word_embeddingᵀ + lm_bias."""
        table = ops.cast(self.backbone.token_embedding.embeddings, hidden.dtype)
        # matmul, not einsum("...d,vd->...v"): TF 2.21's float16 einsum with an ellipsis is wrong on CPU.
        logits = ops.matmul(hidden, ops.transpose(table))
        return ops.cast(logits, "float32") + self.lm_bias

    def call(self, inputs, training=False):
        """Logits [b, P, V] of the query stream from empty memory (stateless; the steps carry memory)."""
        _, logits, _ = self._forward(inputs, None, None, training)
        return logits

    def _forward(self, data, memories, memory_length, training):
        """`(outputs, logits [b,P,V] float32, layer_inputs)` of one two-stream pass."""
        outputs = self.backbone.run(
            tf.cast(data["token_ids"], tf.int32), segment_ids=_optional_int(data, "segment_ids"),
            padding_mask=_optional_int(data, "padding_mask"), perm_mask=data["perm_mask"],
            target_mapping=data["target_mapping"], memories=memories, memory_length=memory_length,
            two_stream=True, training=training)
        return outputs, self.lm_logits(outputs["query"]), outputs["layer_inputs"]

    # === Memories ===

    def reset_state(self):
        """Zeroes the memories (this replica's copy)."""
        self.memory.reset()

    def _rows(self, token_ids):
        rows = token_ids.shape[0]
        if rows is not None and rows > self.per_replica_batch_size:
            raise ZooError(f"a batch of {rows} rows per replica is larger than per_replica_batch_size="
                           f"{self.per_replica_batch_size}; build the XLNetPretrainer for that batch")
        return rows if rows is not None else tf.shape(token_ids)[0]

    def _step(self, data, training):
        memories, length = self.memory.read(self._rows(data["token_ids"]), data.get("reset"))
        outputs, logits, layer_inputs = self._forward(data, memories, length, training)
        targets = tf.cast(data["targets"], tf.int32)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
        hits = tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), targets), tf.float32)
        new_memory = None
        if self.mem_len:
            new_memory = cache_memories(memories, layer_inputs, reuse_len=self.reuse_len, mem_len=self.mem_len,
                                        memory_length=length)
        return nll, hits, tf.cast(data["target_weights"], tf.float32), new_memory

    # === Steps ===

    def train_step(self, data):
        with tf.GradientTape() as tape:
            nll, hits, weights, new_memory = self._step(data, training=True)
            share, loss = weighted_mean(nll, weights)
            scaled = self.optimizer.scale_loss(share)
        variables = self.trainable_variables
        # Every weight is used (the two-stream loss reaches mask_emb); a None gradient is an error.
        apply_used_gradients(self.optimizer, tape.gradient(scaled, variables), variables, self.clip_norm, unused=())
        if new_memory is not None:
            self.memory.write(*new_memory)
        _, accuracy = weighted_mean(hits, weights)
        return {"loss": loss, "accuracy": accuracy, "perplexity": tf.exp(loss)}

    def test_step(self, data):
        """Updates `loss`, `perplexity` and `accuracy` over the weighted targets; carries the memory."""
        nll, hits, weights, new_memory = self._step(data, training=False)
        if new_memory is not None:
            self.memory.write(*new_memory)
        flat = lambda x: tf.reshape(x, (-1,))  # noqa: E731
        for metric in (self.loss_metric, self.perplexity_metric):
            metric.update_state(flat(nll), sample_weight=flat(weights))
        self.accuracy_metric.update_state(flat(hits), sample_weight=flat(weights))
        return {m.name: m.result() for m in self.metrics}

    @property
    def metrics(self):
        return [self.loss_metric, self.perplexity_metric, self.accuracy_metric]


def _optional_int(data, key):
    return None if data.get(key) is None else tf.cast(data[key], tf.int32)


__all__ = ["XLNetPretrainer"]
