"""Adaptive input embedding (Baevski & Auli 2019) as Transformer-XL uses it (kimiyoung/transformer-xl
pytorch/mem_transformer.py `AdaptiveEmbedding`).

The vocabulary is split by `cutoffs` into clusters [0, c0), [c0, c1), ..., [c_last, V). With `div_val` 1 there
is one table [V, embedding_dim], projected to `hidden_dim` only when the two widths differ. With `div_val` > 1
cluster i has its own table of width embedding_dim // div_val**i and its own projection to hidden_dim. The
output is scaled by sqrt(hidden_dim) (the original's `emb_scale = d_proj ** 0.5`).

    embedding = AdaptiveEmbedding(100, 32, 16, cutoffs=[20, 60], div_val=2)
    x = embedding(np.array([[1, 25, 99]]))        # [1, 3, 16]
    [w.shape for w in embedding.tables]           # [(20, 32), (40, 16), (40, 8)]

Weights keep PyTorch's layout, so tied softmax weights are the same variables: tables [cluster size, d_i],
projections [hidden_dim, d_i] (the embedding applies P^T, the softmax P).
"""

import math

import keras
from keras import ops

from zoo.errors import ZooError
from zoo.layers.config import Configurable


def cluster_bounds(vocabulary_size, cutoffs):
    """[(start, end), ...] of each cluster; refuses cutoffs that are not increasing inside (0, V)."""
    cutoffs = [int(c) for c in cutoffs]
    edges = [0] + cutoffs + [int(vocabulary_size)]
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise ZooError(f"cutoffs must increase strictly inside (0, {vocabulary_size}), got {cutoffs}; pass "
                       "--cutoffs below --vocabulary_size (or none for a plain softmax)")
    return list(zip(edges, edges[1:]))


def cluster_widths(embedding_dim, num_clusters, div_val):
    """Width of each cluster's table: embedding_dim // div_val**i (all embedding_dim when div_val is 1)."""
    widths = [embedding_dim // (div_val ** i) for i in range(num_clusters)]
    if min(widths) < 1:
        raise ZooError(f"embedding_dim {embedding_dim} // div_val^i reaches 0 for {num_clusters} clusters; pass a "
                       "smaller --div_val or fewer --cutoffs")
    return widths


@keras.saving.register_keras_serializable(package="zoo")
class AdaptiveEmbedding(Configurable, keras.layers.Layer):
    """Token ids [...] -> embeddings [..., hidden_dim], scaled by sqrt(hidden_dim).

    Args:
        vocabulary_size: V.
        embedding_dim: d_embed, the width of the first (or only) table.
        hidden_dim: d_model, the output width (d_proj).
        cutoffs: cluster boundaries (wt103: [20000, 40000, 200000]); empty: one cluster.
        div_val: width divisor per cluster (1: one table of width embedding_dim for the whole vocabulary).
        init_std: tables ~ N(0, init_std) (the original's `init_weight`).
        proj_init_std: projections ~ N(0, proj_init_std).

    `tables[i]` and `projections[i]` (None where the original has none) are the weights of cluster i (one
    table and at most one projection when div_val is 1).
    """

    def __init__(self, vocabulary_size, embedding_dim, hidden_dim, *, cutoffs=(), div_val=1, init_std=0.02,
                 proj_init_std=0.01, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = int(vocabulary_size)
        self.embedding_dim = int(embedding_dim)
        self.hidden_dim = int(hidden_dim)
        self.cutoffs = [int(c) for c in cutoffs]
        self.div_val = int(div_val)
        self.init_std = init_std
        self.proj_init_std = proj_init_std
        self.bounds = cluster_bounds(self.vocabulary_size, self.cutoffs)
        if self.div_val < 1:
            raise ZooError(f"div_val must be at least 1, got {div_val}; pass --div_val >= 1")
        self.widths = ([self.embedding_dim] if self.div_val == 1
                       else cluster_widths(self.embedding_dim, len(self.bounds), self.div_val))
        self.emb_scale = math.sqrt(self.hidden_dim)

    def build(self, input_shape=None):
        normal = lambda std: keras.initializers.RandomNormal(0.0, std)  # noqa: E731
        self.tables, self.projections = [], []
        if self.div_val == 1:
            sizes = [self.vocabulary_size]
        else:
            sizes = [end - start for start, end in self.bounds]
        for i, (size, width) in enumerate(zip(sizes, self.widths)):
            self.tables.append(self.add_weight(shape=(size, width), initializer=normal(self.init_std),
                                               name=f"embeddings_{i}"))
            if self.div_val > 1 or width != self.hidden_dim:
                self.projections.append(self.add_weight(shape=(self.hidden_dim, width),
                                                        initializer=normal(self.proj_init_std),
                                                        name=f"projection_{i}"))
            else:
                self.projections.append(None)
        self.built = True

    def _lookup(self, i, ids):
        x = ops.cast(ops.take(self.tables[i], ids, axis=0), self.compute_dtype)
        if self.projections[i] is not None:
            x = ops.matmul(x, ops.transpose(ops.cast(self.projections[i], self.compute_dtype)))
        return x

    def call(self, token_ids):
        ids = ops.cast(token_ids, "int32")
        if self.div_val == 1:
            x = self._lookup(0, ids)
        else:
            x = None
            for i, (start, end) in enumerate(self.bounds):
                inside = ops.cast(ops.logical_and(ids >= start, ids < end), self.compute_dtype)
                local = ops.clip(ids - start, 0, end - start - 1)
                # The mask zeroes the rows (and their gradients) of tokens outside this cluster.
                embedded = ops.cast(ops.take(self.tables[i], local, axis=0), self.compute_dtype) * inside[..., None]
                # (ops.einsum with "..." is wrong in float16 on the TF backend of Keras 3.15; matmul is not)
                part = ops.matmul(embedded, ops.transpose(ops.cast(self.projections[i], self.compute_dtype)))
                x = part if x is None else x + part
        return x * ops.cast(self.emb_scale, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.hidden_dim,)
