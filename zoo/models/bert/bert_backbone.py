"""BERT encoder (Devlin et al. 2018, arXiv 1810.04805), as in google-research/bert `modeling.py`."""

import keras

from zoo.errors import ZooError
from zoo.layers import Configurable, PositionEmbedding, TransformerEncoder, truncated_normal_initializer
from zoo.layers.activations import gelu_approximate

# The feed-forward (and masked-LM transform) activations BERT checkpoints use, by the name a config keeps.
ACTIVATIONS = {"gelu_approximate": gelu_approximate, "gelu": keras.activations.gelu}


def bert_activation(name):
    """The function for `activation` ("gelu_approximate": tanh approximation; "gelu": exact erf)."""
    if name not in ACTIVATIONS:
        raise ZooError(f"BERT activation {name!r} is not supported; use one of: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


@keras.saving.register_keras_serializable(package="zoo")
class BertBackbone(Configurable, keras.Model):
    """BERT encoder with pooler: token + position + segment embeddings, post-LN encoder blocks.

    Inputs (dict of int32 [batch, seq]): `token_ids`, `segment_ids`, `padding_mask` (1 = real token).
    Outputs (dict): `sequence_output` [batch, seq, hidden], `pooled_output` [batch, hidden] (tanh dense on
    the first token). By default GELU is the tanh approximation and layer norm epsilon 1e-12, as in the
    original; weight names match keras-hub's `BertBackbone`.

    Args:
        vocabulary_size: WordPiece vocabulary size.
        num_layers, num_heads, hidden_dim, intermediate_dim: encoder shape (base: 12, 12, 768, 3072).
        dropout: hidden and attention-probability dropout (0.1).
        max_sequence_length: rows of the position table (512).
        num_segments: segment types (2).
        activation: feed-forward GELU: "gelu_approximate" (tanh, google-research/bert, keras-hub) or "gelu"
            (exact erf: Hugging Face `hidden_act: "gelu"`, KoBERT).
        layer_norm_epsilon: epsilon of every layer norm (1e-12; Hugging Face `layer_norm_eps`).
        dtype: dtype policy of every layer (default: the global policy); kept in the config.

    Example:
        backbone = zoo.create_model("bert_tiny")
        ids = np.array([[2, 7, 9, 3, 0]])
        out = backbone({"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": (ids > 0).astype("int32")})
        out["pooled_output"].shape  # (1, 128)
    """

    def __init__(self, vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim, dropout=0.1,
                 max_sequence_length=512, num_segments=2, activation="gelu_approximate", layer_norm_epsilon=1e-12,
                 dtype=None, **kwargs):
        activation_fn = bert_activation(activation)
        # === Layers ===
        self.token_embedding = keras.layers.ReversibleEmbedding(
            vocabulary_size, hidden_dim, embeddings_initializer=truncated_normal_initializer(), dtype=dtype,
            name="token_embedding")
        self.position_embedding = PositionEmbedding(
            max_sequence_length, initializer=truncated_normal_initializer(), dtype=dtype, name="position_embedding")
        self.segment_embedding = keras.layers.Embedding(
            num_segments, hidden_dim, embeddings_initializer=truncated_normal_initializer(), dtype=dtype,
            name="segment_embedding")
        self.embeddings_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="embeddings_layer_norm")
        self.embeddings_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")
        self.transformer_layers = [
            TransformerEncoder(num_heads, intermediate_dim, dropout=dropout, activation=activation_fn,
                               layer_norm_epsilon=layer_norm_epsilon, kernel_initializer=truncated_normal_initializer(),
                               dtype=dtype, name=f"transformer_layer_{i}")
            for i in range(num_layers)
        ]
        self.pooled_dense = keras.layers.Dense(
            hidden_dim, activation="tanh", kernel_initializer=truncated_normal_initializer(), dtype=dtype,
            name="pooled_dense")

        # === Functional Model ===
        token_ids = keras.Input((None,), dtype="int32", name="token_ids")
        segment_ids = keras.Input((None,), dtype="int32", name="segment_ids")
        padding_mask = keras.Input((None,), dtype="int32", name="padding_mask")
        tokens = self.token_embedding(token_ids)
        x = keras.layers.Add(dtype=dtype, name="embeddings_add")(
            [tokens, self.position_embedding(tokens), self.segment_embedding(segment_ids)])
        x = self.embeddings_dropout(self.embeddings_layer_norm(x))
        for layer in self.transformer_layers:
            x = layer(x, padding_mask=padding_mask)
        pooled = self.pooled_dense(x[:, 0, :])
        super().__init__(
            inputs={"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask},
            outputs={"sequence_output": x, "pooled_output": pooled},
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
