"""Projected adaptive log-softmax (Grave et al. 2017) as Transformer-XL uses it (kimiyoung/transformer-xl
pytorch/utils/proj_adaptive_softmax.py), tied to an `AdaptiveEmbedding`.

The head scores the shortlist [0, cutoffs[0]) plus one logit per tail cluster; a word of tail cluster i
(1-based) has log p = head[cluster logit of i] + log_softmax(tail_i)[word]. As the original, tail cluster i
uses the head's column -i, i.e. `cluster_weight[n_clusters - i]` (the cluster rows run in reverse order).

    embedding = AdaptiveEmbedding(100, 32, 16, cutoffs=[20, 60], div_val=2)
    softmax = AdaptiveSoftmax(100, 32, 16, cutoffs=[20, 60], div_val=2, embedding=embedding)
    hidden = np.random.rand(2, 5, 16).astype("float32")
    log_probs = softmax.log_probs(hidden)                       # [2, 5, 100], rows sum to 1 in probability
    nll = softmax.nll(hidden, np.zeros((2, 5), "int32"))       # [2, 5], never builds [2, 5, 100] logits

`nll` scores each tail cluster only on the tokens whose target falls in it (a dynamic gather, as the
original's `index_select`), so eagerly and in a `tf.function` the loss costs the head plus the tails actually
hit, not a full softmax. Under XLA (`jit_compile`) the gathered rows get their static upper bound, every
token: each tail's logits are then as large as a full softmax over that cluster (wt103, 60 x 150 tokens:
f32[9000, 160000] for the 40k-200k cluster) — still never one [tokens, V] tensor, but no saving from the gather.
"""

import keras
import tensorflow as tf
from keras import ops

from zoo.errors import ZooError
from zoo.layers.config import Configurable
from zoo.models.transformer_xl.adaptive_embedding import AdaptiveEmbedding, cluster_bounds, cluster_widths


def default_tie_projs(cutoffs):
    """The released wt103 setting (pytorch/train.py): the head's projection untied, every tail's tied."""
    return [False] + [True] * len(cutoffs)


@keras.saving.register_keras_serializable(package="zoo")
class AdaptiveSoftmax(Configurable, keras.layers.Layer):
    """Hidden states [..., hidden_dim] -> log-probabilities over V words (`log_probs`) or the NLL of targets
    (`nll`); logits and results are float32 under any dtype policy.

    Args:
        vocabulary_size, embedding_dim, hidden_dim, cutoffs, div_val: as the `AdaptiveEmbedding`.
        tie_weight: use the embedding's tables as the output weights (the original's `tie_weight`).
        tie_projs: per cluster, use the embedding's projection (div_val 1: its only one) as this cluster's
            output projection; None: `default_tie_projs(cutoffs)` ([False, True, True, True] for wt103).
            Clusters past the list's end are untied, as the original's `enumerate(tie_projs)`.
        embedding: the `AdaptiveEmbedding` to tie to; None: every weight is this layer's own.
        init_std, proj_init_std: N(0, std) initialisation of own output weights / cluster weights and of own
            projections.

    Weights of its own: `output_bias` [V] (the original's per-cluster biases, concatenated), `cluster_weight`
    [n_clusters, embedding_dim] and `cluster_bias` [n_clusters] when there are tail clusters, untied output
    tables and untied projections ([hidden_dim, d_i]).
    """

    def __init__(self, vocabulary_size, embedding_dim, hidden_dim, *, cutoffs=(), div_val=1, tie_weight=True,
                 tie_projs=None, embedding=None, init_std=0.02, proj_init_std=0.01, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.embedding_dim = int(embedding_dim)
        self.hidden_dim = int(hidden_dim)
        self.cutoffs = [int(c) for c in cutoffs]
        self.div_val = int(div_val)
        self.tie_weight = bool(tie_weight)
        self.tie_projs = default_tie_projs(self.cutoffs) if tie_projs is None else [bool(t) for t in tie_projs]
        if embedding is not None and not isinstance(embedding, AdaptiveEmbedding):
            raise ZooError(f"embedding must be an AdaptiveEmbedding, got {type(embedding).__name__}")
        self.embedding = embedding
        self.init_std = init_std
        self.proj_init_std = proj_init_std
        self.bounds = cluster_bounds(self.vocabulary_size, self.cutoffs)
        self.shortlist = self.bounds[0][1]
        self.num_clusters = len(self.bounds) - 1
        self.widths = ([self.embedding_dim] * len(self.bounds) if self.div_val == 1
                       else cluster_widths(self.embedding_dim, len(self.bounds), self.div_val))

    def build(self, input_shape=None):
        normal = lambda std: keras.initializers.RandomNormal(0.0, std)  # noqa: E731
        emb = self.embedding
        if emb is not None and not emb.built:
            emb.build()
        self.output_bias = self.add_weight(shape=(self.vocabulary_size,), initializer="zeros", name="output_bias")
        if self.num_clusters:
            self.cluster_weight = self.add_weight(shape=(self.num_clusters, self.embedding_dim),
                                                  initializer=normal(self.init_std), name="cluster_weight")
            self.cluster_bias = self.add_weight(shape=(self.num_clusters,), initializer="zeros", name="cluster_bias")
        # Output tables: one [V, d] when div_val is 1 (sliced per cluster), else one per cluster.
        sizes = [self.vocabulary_size] if self.div_val == 1 else [end - start for start, end in self.bounds]
        self.tables = []
        for i, size in enumerate(sizes):
            if self.tie_weight and emb is not None:
                self.tables.append(emb.tables[i])
            else:
                self.tables.append(self.add_weight(shape=(size, self.widths[i]), initializer=normal(self.init_std),
                                                   name=f"output_table_{i}"))
        self.projections = []
        for i, width in enumerate(self.widths):
            if self.div_val == 1 and width == self.hidden_dim:
                self.projections.append(None)
            elif i < len(self.tie_projs) and self.tie_projs[i] and emb is not None:
                self.projections.append(emb.projections[0 if self.div_val == 1 else i])
            else:
                self.projections.append(self.add_weight(shape=(self.hidden_dim, width),
                                                        initializer=normal(self.proj_init_std),
                                                        name=f"output_projection_{i}"))
        self.built = True

    # === Pieces ===

    def _cluster(self, i):
        """(output table, bias, projection) of cluster i (0 = the shortlist, without the cluster rows)."""
        start, end = self.bounds[i]
        table = self.tables[0][start:end] if self.div_val == 1 else self.tables[i]
        return table, self.output_bias[start:end], self.projections[i]

    def _logits(self, hidden, table, bias, projection):
        dtype = self.compute_dtype
        h = ops.cast(hidden, dtype)
        if projection is not None:
            h = ops.matmul(h, ops.cast(projection, dtype))
        logits = ops.matmul(h, ops.transpose(ops.cast(table, dtype)))
        return ops.cast(logits, "float32") + ops.cast(bias, "float32")

    def _head_log_probs(self, hidden):
        if not self.built:
            self.build()
        table, bias, projection = self._cluster(0)
        if self.num_clusters:
            table = ops.concatenate([ops.cast(table, "float32"), ops.cast(self.cluster_weight, "float32")], axis=0)
            bias = ops.concatenate([bias, self.cluster_bias], axis=0)
        return ops.log_softmax(self._logits(hidden, table, bias, projection), axis=-1)

    # === Outputs ===

    def call(self, hidden):
        """`log_probs(hidden)`."""
        return self.log_probs(hidden)

    def log_probs(self, hidden):
        """Log-probabilities [..., V] (float32) of every word; exp sums to 1 over the last axis."""
        head = self._head_log_probs(hidden)
        if not self.num_clusters:
            return head
        parts = [head[..., :self.shortlist]]
        for i in range(1, self.num_clusters + 1):
            column = self.shortlist + self.num_clusters - i
            tail = ops.log_softmax(self._logits(hidden, *self._cluster(i)), axis=-1)
            parts.append(head[..., column:column + 1] + tail)
        return ops.concatenate(parts, axis=-1)

    def nll(self, hidden, targets):
        """-log p(targets) [...] (float32) for hidden [..., hidden_dim] and int targets [...]."""
        targets = tf.cast(targets, tf.int32)
        shape = tf.shape(targets)
        flat_targets = tf.reshape(targets, [-1])
        flat_hidden = tf.reshape(hidden, [-1, self.hidden_dim])
        head = self._head_log_probs(flat_hidden)
        if not self.num_clusters:
            return tf.reshape(-tf.gather(head, flat_targets, batch_dims=1), shape)
        # Which cluster each target is in (0 = shortlist) and its column in the head.
        cluster = tf.add_n([tf.cast(flat_targets >= start, tf.int32) for start, _ in self.bounds[1:]])
        column = tf.where(cluster == 0, flat_targets, self.shortlist + self.num_clusters - cluster)
        log_prob = tf.gather(head, column, batch_dims=1)
        for i in range(1, self.num_clusters + 1):
            start = self.bounds[i][0]
            rows = tf.where(cluster == i)[:, 0]
            tail = tf.nn.log_softmax(self._logits(tf.gather(flat_hidden, rows), *self._cluster(i)), axis=-1)
            picked = tf.gather(tail, tf.gather(flat_targets, rows) - start, batch_dims=1)
            log_prob += tf.scatter_nd(rows[:, None], picked, tf.shape(log_prob, out_type=tf.int64))
        return tf.reshape(-log_prob, shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.vocabulary_size,)
