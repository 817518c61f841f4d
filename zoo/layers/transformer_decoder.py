"""Transformer decoder block (Vaswani et al. 2017): causal self-attention, cross-attention, feed-forward."""

import itertools

import keras
from keras import ops

from zoo.layers.cached_attention import CachedMultiHeadAttention
from zoo.layers.config import Configurable
from zoo.layers.initializers import clone_initializer


def causal_mask(query_length, key_length, start=0):
    """bool [query_length, key_length]: query i (at position `start + i`) may see keys at positions <= its own."""
    queries = ops.arange(query_length)[:, None] + ops.cast(start, "int32")
    return ops.arange(key_length)[None, :] <= queries


@keras.saving.register_keras_serializable(package="zoo")
class TransformerDecoder(Configurable, keras.layers.Layer):
    """Masked self-attention, attention over the encoder output and a feed-forward network, each with dropout,
    a residual and layer norm: post-LN as the paper (x = LN(x + Dropout(Sublayer(x)))), or pre-LN.

    Weight names follow keras-hub's `TransformerDecoder` (self_attention, self_attention_layer_norm,
    cross_attention, cross_attention_layer_norm, feedforward_{intermediate,output}_dense,
    feedforward_layer_norm), so weights port one to one.

    Call: `layer(decoder_sequence, encoder_sequence, decoder_padding_mask=None, encoder_padding_mask=None)`
    for teacher forcing (causal). For incremental decoding pass `self_attention_cache` [batch, 2, capacity,
    heads, head_dim] and `cache_index` (the position of the first query); it returns `(output, new_cache)`.
    `cross_attention_cache` (from `cross_attention_cache_of(encoder_sequence)`, computed once per source)
    replaces `encoder_sequence`.

    Args:
        num_heads: attention heads; the hidden size must divide by it.
        intermediate_dim: feed-forward inner width (d_ff).
        dropout: dropout on the three residual branches (P_drop), and on attention probabilities unless
            `attention_dropout` is given.
        attention_dropout: dropout on attention probabilities (`None`: `dropout`).
        activation: feed-forward activation (the paper: ReLU).
        layer_norm_epsilon: layer norm epsilon.
        kernel_initializer: initializer for every kernel.
        normalize_first: pre-LN instead of post-LN.

    Example:
        layer = TransformerDecoder(num_heads=2, intermediate_dim=64)
        y = layer(keras.ops.ones((2, 5, 16)), keras.ops.ones((2, 7, 16)))    # (2, 5, 16)
    """

    def __init__(self, num_heads, intermediate_dim, dropout=0.0, attention_dropout=None, activation="relu",
                 layer_norm_epsilon=1e-6, kernel_initializer="glorot_uniform", normalize_first=False, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation = keras.activations.get(activation)
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.normalize_first = normalize_first

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        hidden_dim = decoder_sequence_shape[-1]
        if hidden_dim % self.num_heads:
            raise ValueError(f"hidden size {hidden_dim} must divide by num_heads={self.num_heads}")
        encoder_sequence_shape = encoder_sequence_shape or decoder_sequence_shape
        index = itertools.count()   # one fresh copy per sublayer; an int seed offset by its index
        init = lambda: clone_initializer(self.kernel_initializer, next(index))  # noqa: E731
        common = dict(dtype=self.dtype_policy)
        attention_dropout = self.dropout if self.attention_dropout is None else self.attention_dropout
        head_dim = hidden_dim // self.num_heads

        def attention(name, value_shape):
            layer = CachedMultiHeadAttention(num_heads=self.num_heads, key_dim=head_dim, dropout=attention_dropout,
                                             kernel_initializer=init(), name=name, **common)
            layer.build(decoder_sequence_shape, value_shape)
            return layer

        def layer_norm(name):
            layer = keras.layers.LayerNormalization(epsilon=self.layer_norm_epsilon, name=name, **common)
            layer.build(decoder_sequence_shape)
            return layer

        self._self_attention_layer = attention("self_attention", decoder_sequence_shape)
        self._self_attention_layer_norm = layer_norm("self_attention_layer_norm")
        self._cross_attention_layer = attention("cross_attention", encoder_sequence_shape)
        self._cross_attention_layer_norm = layer_norm("cross_attention_layer_norm")
        self._feedforward_intermediate_dense = keras.layers.Dense(
            self.intermediate_dim, activation=self.activation, kernel_initializer=init(),
            name="feedforward_intermediate_dense", **common)
        self._feedforward_intermediate_dense.build(decoder_sequence_shape)
        self._feedforward_output_dense = keras.layers.Dense(
            hidden_dim, kernel_initializer=init(), name="feedforward_output_dense", **common)
        self._feedforward_output_dense.build((*decoder_sequence_shape[:-1], self.intermediate_dim))
        self._feedforward_layer_norm = layer_norm("feedforward_layer_norm")
        self._dropouts = [keras.layers.Dropout(self.dropout, name=f"{part}_dropout", **common)
                          for part in ("self_attention", "cross_attention", "feedforward")]
        self.built = True

    def cross_attention_cache_of(self, encoder_sequence):
        """The cross-attention keys and values of `encoder_sequence`, [batch, 2, source, heads, head_dim]."""
        return self._cross_attention_layer.project_cache(encoder_sequence)

    def _sublayer(self, x, norm, dropout, fn, training):
        residual = x
        if self.normalize_first:
            x = norm(x)
        x = dropout(fn(x), training=training) + residual
        return x if self.normalize_first else norm(x)

    def call(self, decoder_sequence, encoder_sequence=None, decoder_padding_mask=None, encoder_padding_mask=None,
             self_attention_cache=None, cache_index=None, cross_attention_cache=None, training=None):
        if encoder_sequence is None and cross_attention_cache is None:
            raise ValueError("TransformerDecoder needs encoder_sequence or cross_attention_cache")
        length = ops.shape(decoder_sequence)[1]
        if self_attention_cache is None:
            self_mask = causal_mask(length, length)[None]
            if decoder_padding_mask is not None:
                self_mask = ops.logical_and(self_mask, ops.cast(decoder_padding_mask, "bool")[:, None, :])
        else:
            self_mask = causal_mask(length, ops.shape(self_attention_cache)[2], cache_index)[None]
        cross_mask = None if encoder_padding_mask is None else ops.cast(encoder_padding_mask, "bool")[:, None, :]
        new_cache = []

        def self_attention(x):
            if self_attention_cache is None:
                return self._self_attention_layer(x, x, attention_mask=self_mask, training=training)
            out, cache = self._self_attention_layer(x, x, attention_mask=self_mask, cache=self_attention_cache,
                                                    cache_index=cache_index, training=training)
            new_cache.append(cache)
            return out

        def cross_attention(x):
            return self._cross_attention_layer(x, encoder_sequence, attention_mask=cross_mask,
                                               cache=cross_attention_cache, training=training)

        def feedforward(x):
            return self._feedforward_output_dense(self._feedforward_intermediate_dense(x))

        x = self._sublayer(decoder_sequence, self._self_attention_layer_norm, self._dropouts[0], self_attention,
                           training)
        x = self._sublayer(x, self._cross_attention_layer_norm, self._dropouts[1], cross_attention, training)
        x = self._sublayer(x, self._feedforward_layer_norm, self._dropouts[2], feedforward, training)
        return (x, new_cache[0]) if new_cache else x

    def compute_output_shape(self, decoder_sequence_shape, encoder_sequence_shape=None):
        return decoder_sequence_shape
