"""Transformer encoder block (Vaswani et al. 2017), post- or pre-layer-norm."""

import itertools

import keras
from keras import ops

from zoo.layers.activations import gelu_approximate
from zoo.layers.config import Configurable
from zoo.layers.initializers import clone_initializer


@keras.saving.register_keras_serializable(package="zoo")
class TransformerEncoder(Configurable, keras.layers.Layer):
    """Self-attention and feed-forward sub-layers, each with dropout, a residual and layer norm.

    Post-LN (`normalize_first=False`, BERT and the original Transformer): x = LN(x + Dropout(Sublayer(x))).
    Weight names follow keras-hub's `TransformerEncoder`, so weights port one to one.

    Args:
        num_heads: attention heads; `hidden_dim` must divide by it.
        intermediate_dim: feed-forward inner width.
        dropout: dropout on both residual branches, and on attention probabilities unless `attention_dropout`
            is given.
        attention_dropout: dropout on attention probabilities (`None`: `dropout`, as BERT; the original
            Transformer applies none).
        activation: feed-forward activation (BERT: "gelu_approximate").
        layer_norm_epsilon: layer norm epsilon (BERT: 1e-12).
        kernel_initializer: initializer for every kernel.
        normalize_first: pre-LN instead of post-LN.

    Example:
        layer = TransformerEncoder(num_heads=2, intermediate_dim=256)
        y = layer(keras.ops.ones((2, 8, 64)), padding_mask=keras.ops.ones((2, 8), "int32"))
    """

    def __init__(self, num_heads, intermediate_dim, dropout=0.0, activation=gelu_approximate,
                 layer_norm_epsilon=1e-5, kernel_initializer="glorot_uniform", normalize_first=False,
                 attention_dropout=None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation = keras.activations.get(activation)
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.normalize_first = normalize_first
        self.supports_masking = True

    def build(self, input_shape):
        hidden_dim = input_shape[-1]
        if hidden_dim % self.num_heads:
            raise ValueError(f"hidden size {hidden_dim} must divide by num_heads={self.num_heads}")
        index = itertools.count()   # one fresh copy per sublayer; an int seed offset by its index
        init = lambda: clone_initializer(self.kernel_initializer, next(index))  # noqa: E731
        common = dict(dtype=self.dtype_policy)
        self._self_attention_layer = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads, key_dim=hidden_dim // self.num_heads,
            dropout=self.dropout if self.attention_dropout is None else self.attention_dropout,
            kernel_initializer=init(), name="self_attention_layer", **common)
        self._self_attention_layer.build(input_shape, input_shape)
        self._self_attention_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="self_attention_layer_norm", **common)
        self._self_attention_layer_norm.build(input_shape)
        self._self_attention_dropout = keras.layers.Dropout(self.dropout, name="self_attention_dropout", **common)
        self._feedforward_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="feedforward_layer_norm", **common)
        self._feedforward_layer_norm.build(input_shape)
        self._feedforward_intermediate_dense = keras.layers.Dense(
            self.intermediate_dim, activation=self.activation, kernel_initializer=init(),
            name="feedforward_intermediate_dense", **common)
        self._feedforward_intermediate_dense.build(input_shape)
        self._feedforward_output_dense = keras.layers.Dense(
            hidden_dim, kernel_initializer=init(), name="feedforward_output_dense", **common)
        self._feedforward_output_dense.build((*input_shape[:-1], self.intermediate_dim))
        self._feedforward_dropout = keras.layers.Dropout(self.dropout, name="feedforward_dropout", **common)
        self.built = True

    def call(self, inputs, padding_mask=None, attention_mask=None, training=None):
        mask = attention_mask
        if padding_mask is not None:
            keys = ops.cast(padding_mask, "bool")[:, None, :]
            mask = keys if mask is None else ops.logical_and(ops.cast(mask, "bool"), keys)
        x, residual = inputs, inputs
        if self.normalize_first:
            x = self._self_attention_layer_norm(x)
        x = self._self_attention_layer(query=x, value=x, attention_mask=mask, training=training)
        x = self._self_attention_dropout(x, training=training) + residual
        if not self.normalize_first:
            x = self._self_attention_layer_norm(x)
        residual = x
        if self.normalize_first:
            x = self._feedforward_layer_norm(x)
        x = self._feedforward_output_dense(self._feedforward_intermediate_dense(x))
        x = self._feedforward_dropout(x, training=training) + residual
        if not self.normalize_first:
            x = self._feedforward_layer_norm(x)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape
