"""XLNet encoder (Yang et al. 2019, arXiv 1906.08237) as zihangdai/xlnet `modeling.transformer_xl`.

Word embedding (no scaling, no absolute positions, no embedding layer norm) -> post-LN relative-attention
blocks (`zoo.layers.relative_attention.RelativeTransformerBlock`: XLNet's relative shift, per-layer segment
encoding, GELU (tanh) feed-forward, layer norm 1e-12) with dropout on the embeddings, the positional
encoding and the output. The content stream h is the output; `run` also gives the query stream g of the
two-stream permutation LM (g starts from the learned `mask_emb`), memories and the layer inputs to cache.

Everything is batch-major and batch-invariant (keras-hub's `XLNetBackbone` reshapes [L, B, d] into
[B, L, d] and scrambles rows when B > 1). Weight paths equal keras-hub's where the structure matches
(`content_query_embedding/word_embedding/embeddings`, `encoder_block_attn_mask_layer/mask_emb`,
`xlnet_encoder_{i}/...`), so `xlnet_checkpoints.load_keras_hub_weights` copies by path.

    backbone = XLNetBackbone(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=16,
                             intermediate_dim=32, dropout=0.0, attention_dropout=0.0)
    ids = np.array([[5, 5, 7, 9, 4, 3]])                     # left padding (id 5), "... <sep> <cls>"
    h = backbone({"token_ids": ids, "segment_ids": np.array([[4, 4, 0, 0, 0, 2]]),
                  "padding_mask": np.array([[0, 0, 1, 1, 1, 1]])})               # [1, 6, 16]
    out = backbone.run(ids, perm_mask=np.zeros((1, 6, 6)), target_mapping=np.eye(6)[None, -2:],
                       two_stream=True)                                          # out["query"]: [1, 2, 16]
    memories, length = cache_memories(None, out["layer_inputs"], reuse_len=4, mem_len=4)  # zoo.layers.segment_memory
"""

import keras
from keras import ops

from zoo.errors import ZooError
from zoo.layers import Configurable, normal_initializer
from zoo.layers.activations import gelu_approximate
from zoo.layers.relative_attention import RelativeTransformerBlock, relative_positions, sinusoid_encoding

# Feed-forward activations of the original `positionwise_ffn` (its "gelu" is the tanh approximation).
ACTIVATIONS = {"gelu": gelu_approximate, "relu": keras.activations.relu}
ATTN_TYPES = {"bi": "xlnet_bi", "uni": "xlnet_uni"}


@keras.saving.register_keras_serializable(package="zoo")
class XLNetBackbone(Configurable, keras.Model):
    """XLNet encoder: token ids -> content stream [batch, seq, hidden].

    `call(inputs)` takes keras-hub's inputs, a dict of int [batch, seq] `token_ids`, `segment_ids` (A 0, B 1,
    CLS 2, PAD 4: only equality matters) and `padding_mask` (1 = real token), and returns the content stream.
    `run` exposes the rest of the original `transformer_xl` (see its docstring).

    Args:
        vocabulary_size: SentencePiece vocabulary (32,000 for the released models).
        num_layers, num_heads, hidden_dim, intermediate_dim: base 12, 12, 768, 3072; large 24, 16, 1024, 4096.
        head_dim: per-head width (default hidden_dim // num_heads).
        dropout: on the word embedding, mask embedding, positional encoding, attention and feed-forward
            outputs and the final output (original `dropout`, 0.1).
        attention_dropout: on the attention probabilities (original `dropatt`, 0.1).
        activation: feed-forward "gelu" (tanh approximation, the original's) or "relu".
        layer_norm_epsilon: 1e-12.
        untie_r: per-layer u, v and segment biases (True, the released models); False: one set held by the
            backbone and shared by every layer. The segment encoding is per layer either way.
        attn_type: "bi" (bidirectional, pretraining and fine-tuning) or "uni" (causal over the current
            segment and all memory).
        clamp_len: clip relative distances to [-clamp_len, clamp_len]; -1: no clipping.
        bi_data: the first half of each batch uses forward, the second half backward relative positions
            (pretraining); needs an even per-replica batch (a dynamic one is split by its run-time size).
        kernel_initializer_range: stddev of the N(0, s) initializer of every weight but the layer norms, the
            feed-forward biases (zeros) and mask_emb (Glorot uniform), as the original's `init_std`.
        dtype: dtype policy of every layer.
    """

    def __init__(self, vocabulary_size, num_layers, num_heads, hidden_dim, intermediate_dim, *, head_dim=None,
                 dropout=0.1, attention_dropout=0.1, activation="gelu", layer_norm_epsilon=1e-12, untie_r=True,
                 attn_type="bi", clamp_len=-1, bi_data=False, kernel_initializer_range=0.02, dtype=None, **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        if activation not in ACTIVATIONS:
            raise ZooError(f"XLNet activation {activation!r} is not supported; use one of: {', '.join(ACTIVATIONS)}")
        if attn_type not in ATTN_TYPES:
            raise ZooError(f"attn_type {attn_type!r} is not supported; pass attn_type='bi' or 'uni'")
        if head_dim is None and hidden_dim % num_heads:
            raise ZooError(f"hidden_dim {hidden_dim} is not divisible by num_heads {num_heads}; pass head_dim")

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.head_dim = head_dim
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.activation = activation
        self.layer_norm_epsilon = layer_norm_epsilon
        self.untie_r = untie_r
        self.attn_type = attn_type
        self.clamp_len = clamp_len
        self.bi_data = bi_data
        self.kernel_initializer_range = kernel_initializer_range
        heads = head_dim or hidden_dim // num_heads
        std = kernel_initializer_range

        # === Layers (built here; scopes named as keras-hub's so the weight paths are its) ===
        with keras.name_scope("content_query_embedding"):
            self.token_embedding = keras.layers.Embedding(vocabulary_size, hidden_dim, dtype=dtype,
                                                          embeddings_initializer=normal_initializer(std),
                                                          name="word_embedding")
            self.token_embedding.build((None, None))
        with keras.name_scope("encoder_block_attn_mask_layer"):  # tf.get_variable's default init, as the original
            self.mask_emb = keras.Variable(keras.initializers.GlorotUniform(), shape=(1, 1, hidden_dim),
                                           dtype=self.variable_dtype, name="mask_emb")
        if not untie_r:  # one u / v / segment bias shared by every layer
            self.content_attention_bias, self.positional_attention_bias, self.segment_attention_bias = [
                self.add_weight(shape=(num_heads, heads), initializer=normal_initializer(std), name=name)
                for name in ("content_attention_bias", "positional_attention_bias", "segment_attention_bias")]
        self.embedding_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embedding_dropout")
        self.position_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="position_dropout")
        self.output_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="dropout")
        self.transformer_layers = []
        for i in range(num_layers):
            block = RelativeTransformerBlock(
                num_heads, heads, intermediate_dim, activation=ACTIVATIONS[activation], dropout=dropout,
                attention_dropout=attention_dropout, layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=normal_initializer(std), bias_initializer=normal_initializer(std),
                shift=ATTN_TYPES[attn_type], own_biases=untie_r, use_segment=True, dtype=dtype,
                name=f"xlnet_encoder_{i}")
            block.build((None, None, hidden_dim))
            self.transformer_layers.append(block)
        self.built = True

    def build(self, input_shape=None):
        """Every weight is created in `__init__`; nothing to do."""
        self.built = True

    def call(self, inputs, training=False):
        """Content stream [batch, seq, hidden] for keras-hub's inputs (see the class docstring)."""
        return self.run(inputs["token_ids"], inputs.get("segment_ids"), inputs.get("padding_mask"),
                        training=training)["content"]

    def compute_output_shape(self, input_shape):
        return (*input_shape["token_ids"], self.hidden_dim)

    def run(self, token_ids, segment_ids=None, padding_mask=None, *, perm_mask=None, target_mapping=None,
            input_q=None, memories=None, memory_length=None, two_stream=False, training=False):
        """The original `transformer_xl`, batch-major.

        Args:
            token_ids: int [B, T].
            segment_ids: int [B, T] or None (no segment term); memory slots count as segment 0.
            padding_mask: [B, T], 1 = real token (the original `input_mask` is 1 for padding).
            perm_mask: [B, T, T] in the ORIGINAL polarity, 1 = query i may NOT attend to key j (converted
                here, once); memory is always visible. The content stream always sees itself.
            target_mapping: [B, P, T] one-hot rows: the P predicted positions of the query stream.
            input_q: [B, T], 1 = predicted position; without `target_mapping`, g starts from mask_emb there
                and from the word embedding elsewhere (default: mask_emb everywhere).
            memories: list of num_layers [B, M, H], layer i's input from earlier segments (no gradient).
            memory_length: int [B], the last memory_length slots of each row are real (default: all M).
            two_stream: also run the query stream g.
            training: dropout on.

        Returns:
            {"content": [B, T, H], "query": [B, P, H] (P = T without target_mapping) or None,
             "layer_inputs": num_layers [B, T, H], h before each layer (what the original caches)}.
        """
        token_ids = ops.convert_to_tensor(token_ids, "int32")
        batch, length = token_ids.shape[0], token_ids.shape[1]
        batch = ops.shape(token_ids)[0] if batch is None else batch
        length = ops.shape(token_ids)[1] if length is None else length
        mem = 0 if not memories else (memories[0].shape[1] or ops.shape(memories[0])[1])
        word = self.token_embedding(token_ids)
        h = self.embedding_dropout(word, training=training)
        g = self._query_start(word, batch, length, target_mapping, input_q, training) if two_stream else None
        may_g, may_h = self._attention_masks(batch, length, mem, padding_mask, perm_mask, memory_length)
        segments = self._segment_matrix(segment_ids, batch, mem)
        position = self._position_encoding(batch, length, mem + length, training)
        shared = {} if self.untie_r else dict(content_bias=self.content_attention_bias,
                                              position_bias=self.positional_attention_bias,
                                              segment_bias=self.segment_attention_bias)
        mapping = None if target_mapping is None else ops.cast(target_mapping, self.compute_dtype)
        layer_inputs = []
        for i, block in enumerate(self.transformer_layers):
            layer_inputs.append(h)
            out = block(h, position, memory=memories[i] if memories else None, attention_mask=may_h,
                        segment_matrix=segments, query_stream=g, query_attention_mask=may_g,
                        target_mapping=mapping if g is not None else None, training=training, **shared)
            h, g = out if g is not None else (out, None)
        return {"content": self.output_dropout(h, training=training),
                "query": None if g is None else self.output_dropout(g, training=training),
                "layer_inputs": layer_inputs}

    # === Pieces of `run` ===

    def _query_start(self, word, batch, length, target_mapping, input_q, training):
        """g before the first layer: mask_emb tiled to the P predictions (or mixed with the word embedding
        by input_q), dropped out."""
        mask_emb = ops.cast(self.mask_emb, self.compute_dtype)
        if target_mapping is not None:
            rows = target_mapping.shape[1] or ops.shape(target_mapping)[1]
            g = ops.broadcast_to(mask_emb, (batch, rows, self.hidden_dim))
        elif input_q is not None:
            q = ops.cast(input_q, self.compute_dtype)[:, :, None]
            g = q * mask_emb + (1.0 - q) * word
        else:
            g = ops.broadcast_to(mask_emb, (batch, length, self.hidden_dim))
        return self.embedding_dropout(g, training=training)

    def _attention_masks(self, batch, length, mem, padding_mask, perm_mask, memory_length):
        """(query-stream mask, content-stream mask), [B, T, M+T] bool, True = may attend; (None, None) when
        every key is visible. The content stream also sees itself (the original `non_tgt_mask`)."""
        if self.attn_type == "bi" and padding_mask is None and perm_mask is None and memory_length is None:
            return None, None
        may = ops.ones((batch, length, length), "bool")
        if self.attn_type == "uni":
            rows, cols = ops.arange(length)[:, None], ops.arange(length)[None, :]
            may = ops.logical_and(may, (cols <= rows)[None])
        if padding_mask is not None:
            may = ops.logical_and(may, ops.cast(padding_mask, "bool")[:, None, :])
        if perm_mask is not None:  # original polarity: 1 = may not attend
            may = ops.logical_and(may, ops.logical_not(ops.cast(perm_mask, "bool")))
        itself = ops.cast(ops.eye(length), "bool")[None]
        may_h = ops.logical_or(may, itself)
        if mem:
            slots = ops.broadcast_to(ops.arange(mem)[None, :], (batch, mem))
            valid = ops.ones((batch, mem), "bool") if memory_length is None else (
                slots >= mem - ops.cast(memory_length, "int32")[:, None])
            valid = ops.broadcast_to(valid[:, None, :], (batch, length, mem))
            may, may_h = (ops.concatenate([valid, m], axis=2) for m in (may, may_h))
        return may, may_h

    def _segment_matrix(self, segment_ids, batch, mem):
        """[B, T, M+T] bool, True where query and key segments differ (memory counts as segment 0)."""
        if segment_ids is None:
            return None
        segment_ids = ops.cast(segment_ids, "int32")
        keys = segment_ids
        if mem:
            keys = ops.concatenate([ops.zeros((batch, mem), "int32"), segment_ids], axis=1)
        return ops.not_equal(segment_ids[:, :, None], keys[:, None, :])

    def _position_encoding(self, batch, length, key_length, training):
        """Sinusoid encoding of the relative distances, [1 or B, R, H], dropped out (per row in training)."""
        kind = ATTN_TYPES[self.attn_type]
        if self.bi_data:  # rows [forward half | backward half]; the batch may be dynamic (evaluation, serving)
            positions = relative_positions(length, key_length, kind=kind, clamp_len=self.clamp_len, bi_data=True,
                                           batch_size=batch)
            encoding = sinusoid_encoding(positions, self.hidden_dim, self.compute_dtype)
        else:
            positions = relative_positions(length, key_length, kind=kind, clamp_len=self.clamp_len)
            encoding = sinusoid_encoding(positions, self.hidden_dim, self.compute_dtype)[None]
        if not self.bi_data and training and self.dropout > 0:  # the original tiles to the batch before its dropout
            encoding = ops.broadcast_to(encoding, (batch, ops.shape(encoding)[1], self.hidden_dim))
        return self.position_dropout(encoding, training=training)
