"""Masked-language-model head with the output projection tied to the word embeddings."""

import keras
from keras import ops

from zoo.layers.activations import gelu_approximate
from zoo.layers.config import Configurable


@keras.saving.register_keras_serializable(package="zoo")
class MaskedLMHead(Configurable, keras.layers.Layer):
    """Gathers `mask_positions`, then Dense(hidden, activation) -> LayerNorm -> embeddingsᵀ + bias.

    As in BERT's `get_masked_lm_output`: the decoder is the word-embedding table of `token_embedding`
    (a `keras.layers.ReversibleEmbedding`), plus a separate output bias per vocabulary entry. Its config
    holds a copy of the embedding; deserialised alone it is untied, so models rebuild the tie from theirs.

    Example:
        embedding = keras.layers.ReversibleEmbedding(100, 16)
        head = MaskedLMHead(embedding, activation=gelu_approximate, layer_norm_epsilon=1e-12)
        logits = head(keras.ops.ones((2, 8, 16)), mask_positions=keras.ops.zeros((2, 3), "int32"))  # (2, 3, 100)
    """

    def __init__(self, token_embedding, activation=gelu_approximate, layer_norm_epsilon=1e-12,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.token_embedding = token_embedding
        self.activation = keras.activations.get(activation)
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, inputs_shape, mask_positions_shape=None):
        hidden_dim = inputs_shape[-1]
        self.intermediate_dense = keras.layers.Dense(
            hidden_dim, activation=self.activation, kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy, name="intermediate_dense")
        self.intermediate_dense.build((None, None, hidden_dim))
        self.intermediate_layer_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name="intermediate_layer_norm")
        self.intermediate_layer_norm.build((None, None, hidden_dim))
        self.output_bias = self.add_weight(
            name="output_bias", shape=(self.token_embedding.input_dim,), initializer="zeros")
        self.built = True

    def call(self, inputs, mask_positions):
        index = ops.cast(mask_positions, "int32")[:, :, None]
        x = ops.take_along_axis(inputs, ops.broadcast_to(index, (*ops.shape(index)[:2], ops.shape(inputs)[-1])),
                                axis=1)
        x = self.intermediate_layer_norm(self.intermediate_dense(x))
        logits = self.token_embedding(x, reverse=True)
        return logits + ops.cast(self.output_bias, logits.dtype)

    def compute_output_shape(self, inputs_shape, mask_positions_shape=None):
        positions = mask_positions_shape[1] if mask_positions_shape else None
        return (inputs_shape[0], positions, self.token_embedding.input_dim)
