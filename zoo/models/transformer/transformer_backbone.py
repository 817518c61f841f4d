"""The Transformer encoder-decoder (Vaswani et al. 2017, arXiv 1706.03762), with incremental decoding."""

import math

import keras
import keras_hub
from keras import ops

from zoo.layers import Configurable, TransformerDecoder, TransformerEncoder

INPUTS = ("encoder_token_ids", "encoder_padding_mask", "decoder_token_ids", "decoder_padding_mask")


@keras.saving.register_keras_serializable(package="zoo")
class TransformerBackbone(Configurable, keras.Model):
    """Encoder and decoder stacks over one shared subword vocabulary.

    As the paper: token embeddings scaled by √d_model plus sinusoidal positions, dropout on their sum; post-LN
    blocks with ReLU feed-forward networks; ONE embedding matrix shared by the source, the target and the
    pre-softmax projection (logits = x · Eᵀ, no output bias). `normalize_first=True` gives the pre-LN variant
    (tensor2tensor's later default), with a final layer norm on each stack.

    Inputs (dict of int32 [batch, length]): `encoder_token_ids`, `encoder_padding_mask` (1 = token),
    `decoder_token_ids` (BOS then the target shifted right), `decoder_padding_mask`.
    Output: `{"logits": float32 [batch, target length, vocabulary]}`.

    Decoding reuses the keys and values of earlier positions (see `zoo.decoding`):
    `cache = init_cache(encoder_token_ids, encoder_padding_mask, max_length)`, then
    `logits, cache = decode_step(token_ids, cache, index)` per position; every cache leaf has the batch as its
    leading dimension.

    Args:
        vocabulary_size: shared subword vocabulary (the paper: ~37,000 BPE for WMT'14 En-De).
        num_layers: layers of each stack (N = 6).
        num_heads: attention heads (h = 8 base, 16 big).
        hidden_dim: d_model (512 base, 1024 big).
        intermediate_dim: d_ff (2048 base, 4096 big).
        dropout: P_drop on the embedding sums and every residual branch (0.1 base; 0.3 big En-De).
        attention_dropout: dropout on attention probabilities (the paper: none).
        max_sequence_length: longest source or target sequence (in tokens) the model takes, so also the decoding
            cache's capacity; sinusoids have no table, this is a limit checked by serving and the recipe.
        layer_norm_epsilon: layer norm epsilon (1e-6 as tensor2tensor).
        normalize_first: pre-LN instead of the paper's post-LN.
        dtype: dtype policy of every layer; logits are float32.

    Example:
        backbone = zoo.create_model("transformer_tiny", vocabulary_size=100)
        ids = np.array([[5, 6, 7, 3]]); mask = np.ones_like(ids)
        out = backbone({"encoder_token_ids": ids, "encoder_padding_mask": mask,
                        "decoder_token_ids": ids, "decoder_padding_mask": mask})
        out["logits"].shape  # (1, 4, 100)
    """

    def __init__(self, vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim, dropout=0.1,
                 attention_dropout=0.0, max_sequence_length=256, layer_norm_epsilon=1e-6, normalize_first=False,
                 dtype=None, **kwargs):
        # === Layers ===
        self.token_embedding = keras.layers.ReversibleEmbedding(
            vocabulary_size, hidden_dim, tie_weights=True,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=hidden_dim ** -0.5), dtype=dtype,
            name="token_embedding")
        # float32 always: sin(position · rate) in float16 loses the position beyond a few hundred.
        self.position_encoding = keras_hub.layers.SinePositionEncoding(dtype="float32", name="position_encoding")
        self.embedding_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embedding_dropout")
        blocks = dict(num_heads=num_heads, intermediate_dim=intermediate_dim, dropout=dropout,
                      attention_dropout=attention_dropout, activation="relu", layer_norm_epsilon=layer_norm_epsilon,
                      normalize_first=normalize_first, dtype=dtype)
        self.encoder_layers = [TransformerEncoder(**blocks, name=f"encoder_layer_{i}") for i in range(num_layers)]
        self.decoder_layers = [TransformerDecoder(**blocks, name=f"decoder_layer_{i}") for i in range(num_layers)]
        self.encoder_layer_norm = self.decoder_layer_norm = None
        if normalize_first:
            self.encoder_layer_norm = keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=dtype, name="encoder_layer_norm")
            self.decoder_layer_norm = keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=dtype, name="decoder_layer_norm")
        self.embedding_scale = math.sqrt(hidden_dim)

        # === Functional Model ===
        inputs = {name: keras.Input((None,), dtype="int32", name=name) for name in INPUTS}
        encoded = self._encode(inputs["encoder_token_ids"], inputs["encoder_padding_mask"])
        x = self._embed(inputs["decoder_token_ids"])
        for layer in self.decoder_layers:
            x = layer(x, encoded, decoder_padding_mask=inputs["decoder_padding_mask"],
                      encoder_padding_mask=inputs["encoder_padding_mask"])
        logits = self._logits(x)
        super().__init__(inputs=inputs, outputs={"logits": logits}, dtype=dtype, **kwargs)

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.max_sequence_length = max_sequence_length
        self.layer_norm_epsilon = layer_norm_epsilon
        self.normalize_first = normalize_first

    # === Pieces shared by training and decoding ===

    def _embed(self, token_ids, start_index=0, training=None):
        x = self.token_embedding(token_ids) * ops.cast(self.embedding_scale, self.token_embedding.compute_dtype)
        positions = self.position_encoding(ops.cast(x, "float32"), start_index=start_index)
        return self.embedding_dropout(x + ops.cast(positions, x.dtype), training=training)

    def _encode(self, token_ids, padding_mask, training=None):
        x = self._embed(token_ids, training=training)
        for layer in self.encoder_layers:
            x = layer(x, padding_mask=padding_mask, training=training)
        return x if self.encoder_layer_norm is None else self.encoder_layer_norm(x)

    def _logits(self, x):
        if self.decoder_layer_norm is not None:
            x = self.decoder_layer_norm(x)
        return ops.cast(self.token_embedding(x, reverse=True), "float32")

    # === Incremental decoding ===

    def encode(self, encoder_token_ids, encoder_padding_mask):
        """The encoder output [batch, source length, hidden_dim] (inference mode)."""
        return self._encode(encoder_token_ids, encoder_padding_mask, training=False)

    def init_cache(self, encoder_token_ids, encoder_padding_mask, max_length):
        """The decoding state for a batch of sources: the source's padding mask, every decoder layer's
        cross-attention keys/values, and empty self-attention caches of capacity `max_length` positions."""
        encoded = self.encode(encoder_token_ids, encoder_padding_mask)
        batch = ops.shape(encoder_token_ids)[0]
        head_dim = self.hidden_dim // self.num_heads
        empty = ops.zeros((batch, 2, max_length, self.num_heads, head_dim), encoded.dtype)
        cache = {"encoder_padding_mask": ops.cast(encoder_padding_mask, "int32")}
        for i, layer in enumerate(self.decoder_layers):
            cache[f"cross_attention_{i}"] = layer.cross_attention_cache_of(encoded)
            cache[f"self_attention_{i}"] = empty
        return cache

    def decode_step(self, token_ids, cache, index):
        """Feeds decoder input `token_ids` [batch] at position `index`; returns the float32 logits [batch,
        vocabulary] of the next token and the cache with this position's keys and values written."""
        x = self._embed(ops.cast(token_ids, "int32")[:, None], start_index=index, training=False)
        cache = dict(cache)
        for i, layer in enumerate(self.decoder_layers):
            x, cache[f"self_attention_{i}"] = layer(
                x, encoder_padding_mask=cache["encoder_padding_mask"],
                self_attention_cache=cache[f"self_attention_{i}"], cache_index=index,
                cross_attention_cache=cache[f"cross_attention_{i}"], training=False)
        return self._logits(x)[:, 0], cache
