"""Transformer-XL (Dai et al. 2019): segment-level recurrence with relative positional attention, adaptive input
and adaptive softmax, as kimiyoung/transformer-xl pytorch/mem_transformer.py `MemTransformerLM` (attn_type 0).

    backbone = TransformerXLBackbone(vocabulary_size=100, num_layers=2, hidden_dim=16, num_heads=2, head_dim=8,
                                     intermediate_dim=32, cutoffs=[20, 60], div_val=2, mem_len=6, dropout=0.0)
    ids = np.random.randint(0, 100, (2, 4))
    hidden, memories, memory_length = backbone.run(ids)                       # memories: 2 x [2, 6, 16]
    more, memories, memory_length = backbone.run(ids, memories, memory_length)  # the next segment
    log_probs = backbone.adaptive_softmax.log_probs(more)                      # [2, 4, 100]
    nll = backbone.adaptive_softmax.nll(more, ids)                             # [2, 4]

Exactly the original's computation: embedding x sqrt(d_model) -> dropout (the same for the positional encoding,
distances klen-1 ... 0 clamped at clamp_len) -> `num_layers` post-LN blocks (ReLU FFN, LayerNorm eps 1e-5 as
PyTorch) whose keys/values also see the memory -> dropout. The memory of layer i is the input of layer i
(hids[i]; hids[0] is the embedding output after dropout), and the new memory is the last `mem_len` steps of
concat(memory, hids[i]) without gradient. u/v (r_w_bias/r_r_bias) are one pair for the model (PyTorch) or one
per layer with `untie_r` (the released TF wt103 model). Initialisation as pytorch/train.py `weights_init`:
N(0, init_std) for kernels, tables, cluster weights and u/v, N(0, proj_init_std) for projections, LayerNorm
gamma N(1, init_std), biases 0.

Memories have a fixed number of slots M (static shapes): `memory_length` [B] counts the real ones, which are
right-aligned (the last memory_length slots); the others are masked out, so zero-initialised memory behaves
as the original's empty memory, and a row with memory_length 0 starts a new stream.
"""

import keras
import tensorflow as tf

from zoo.errors import ZooError
from zoo.layers.config import Configurable
from zoo.layers.relative_attention import RelativeTransformerBlock, relative_positions, sinusoid_encoding
from zoo.layers.segment_memory import cache_memories
from zoo.models.transformer_xl.adaptive_embedding import AdaptiveEmbedding
from zoo.models.transformer_xl.adaptive_softmax import AdaptiveSoftmax


def attention_mask(query_length, memory_slots, valid, *, mem_len, same_length):
    """May-attend mask [B, Q, M+Q] (bool) for keys = [memory slots | current segment].

    Query i sees the `valid` [B] last memory slots and current keys j <= i (causal). With `same_length` every
    query sees the same number of keys as the original: with mlen = valid and klen = mlen + Q, the original
    masks keys more than `mask_shift_len` behind (mask_shift_len = mem_len - mlen when klen > mem_len, else Q).
    """
    q = tf.range(query_length)[:, None]
    j = tf.range(memory_slots + query_length)[None, :]
    valid = tf.cast(valid, tf.int32)[:, None, None]
    mask = tf.logical_and((j <= memory_slots + q)[None], j[None] >= memory_slots - valid)
    if same_length:
        shift = tf.where(valid + query_length > mem_len, mem_len - valid, query_length)
        mask = tf.logical_and(mask, j[None] >= memory_slots - valid + q[None] - shift + 1)
    return mask


@keras.saving.register_keras_serializable(package="zoo")
class TransformerXLBackbone(Configurable, keras.Model):
    """Token ids [B, T] -> hidden states [B, T, hidden_dim] (the adaptive softmax's input).

    Args:
        vocabulary_size: V.
        num_layers, hidden_dim, num_heads, head_dim, intermediate_dim: n_layer, d_model, n_head, d_head, d_inner.
        embedding_dim: d_embed (None: hidden_dim).
        cutoffs, div_val: adaptive input/softmax clusters (empty: one plain, tied softmax with a bias).
        tie_weight: output tables = input tables. tie_projs: per cluster, share the input projection (None:
            [False, True, ...], the released wt103 setting; see `AdaptiveSoftmax`).
        untie_r: one u/v per layer (True) or one pair for the model (False, PyTorch's default).
        dropout, attention_dropout: dropout and dropatt.
        mem_len, clamp_len, same_length: defaults of `run` (training settings; the LM task overrides them
            for evaluation).
        layer_norm_epsilon: 1e-5 (PyTorch's nn.LayerNorm; the TF code uses 1e-12).
        init_std, proj_init_std: initialisation (see the module docstring).
        dtype: dtype policy; the softmax is float32.

    `run(token_ids, memories=None, memory_length=None, *, mem_len=None, clamp_len=None, same_length=None,
    training=False)` -> (hidden [B,T,H], new_memories (num_layers x [B, mem_len, H] float32),
    new_memory_length [B] int32). `memories`: num_layers x [B, M, H] (any M), layer i's input; memory_length
    [B] real slots (None: all M). At most `mem_len` of them are attended. `call(token_ids)` runs from empty
    memory. `adaptive_softmax` gives `log_probs(hidden)` and `nll(hidden, targets)`.
    """

    def __init__(self, vocabulary_size, num_layers, hidden_dim, num_heads, head_dim, intermediate_dim, *,
                 embedding_dim=None, cutoffs=(), div_val=1, tie_weight=True, tie_projs=None, untie_r=False,
                 dropout=0.1, attention_dropout=0.0, mem_len=0, clamp_len=-1, same_length=False,
                 layer_norm_epsilon=1e-5, init_std=0.02, proj_init_std=0.01, dtype=None, **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        if num_layers < 1 or hidden_dim < 2 or hidden_dim % 2 or num_heads < 1 or head_dim < 1:
            raise ZooError(f"Transformer-XL needs num_layers >= 1, an even hidden_dim and heads >= 1, got "
                           f"{num_layers}, {hidden_dim}, {num_heads}x{head_dim}; pass an even --hidden_dim")
        if mem_len < 0:
            raise ZooError(f"mem_len must be >= 0, got {mem_len}; pass --mem_len >= 0")
        # === Config ===
        self.vocabulary_size = int(vocabulary_size)
        self.num_layers = int(num_layers)
        self.hidden_dim = int(hidden_dim)
        self.num_heads = int(num_heads)
        self.head_dim = int(head_dim)
        self.intermediate_dim = int(intermediate_dim)
        self.embedding_dim = None if embedding_dim is None else int(embedding_dim)
        self.cutoffs = [int(c) for c in cutoffs]
        self.div_val = int(div_val)
        self.tie_weight = bool(tie_weight)
        self.tie_projs = None if tie_projs is None else [bool(t) for t in tie_projs]
        self.untie_r = bool(untie_r)
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.mem_len = int(mem_len)
        self.clamp_len = int(clamp_len)
        self.same_length = bool(same_length)
        self.layer_norm_epsilon = layer_norm_epsilon
        self.init_std = init_std
        self.proj_init_std = proj_init_std

        # === Layers ===
        normal = lambda mean, std: keras.initializers.RandomNormal(mean, std)  # noqa: E731
        d_embed = hidden_dim if embedding_dim is None else embedding_dim
        adaptive = dict(cutoffs=self.cutoffs, div_val=div_val, init_std=init_std, proj_init_std=proj_init_std,
                        dtype=dtype)
        self.word_embedding = AdaptiveEmbedding(vocabulary_size, d_embed, hidden_dim, name="word_embedding",
                                                **adaptive)
        self.word_embedding.build()
        self.adaptive_softmax = AdaptiveSoftmax(vocabulary_size, d_embed, hidden_dim, tie_weight=tie_weight,
                                                tie_projs=tie_projs, embedding=self.word_embedding,
                                                name="adaptive_softmax", **adaptive)
        self.adaptive_softmax.build()
        if not self.untie_r:
            shape = (num_heads, head_dim)
            self.content_attention_bias = self.add_weight(shape=shape, initializer=normal(0.0, init_std),
                                                          name="content_attention_bias")
            self.positional_attention_bias = self.add_weight(shape=shape, initializer=normal(0.0, init_std),
                                                             name="positional_attention_bias")
        self.transformer_layers = []
        for i in range(num_layers):
            block = RelativeTransformerBlock(
                num_heads, head_dim, intermediate_dim, activation="relu", dropout=dropout,
                attention_dropout=attention_dropout, layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=normal(0.0, init_std), bias_initializer=normal(0.0, init_std),
                shift="transformer_xl", own_biases=self.untie_r, use_segment=False,
                layer_norm_gamma_initializer=normal(1.0, init_std), dtype=dtype, name=f"transformer_layer_{i}")
            block.build((None, None, hidden_dim))
            self.transformer_layers.append(block)
        self.embedding_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="embedding_dropout")
        self.position_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="position_dropout")
        self.output_dropout = keras.layers.Dropout(dropout, dtype=dtype, name="output_dropout")
        self.built = True

    def build(self, input_shape=None):
        """Every weight is created in `__init__`; nothing to do."""
        self.built = True

    def call(self, token_ids, training=False):
        """Hidden states [B, T, H] from empty memory."""
        return self.run(token_ids, training=training)[0]

    def run(self, token_ids, memories=None, memory_length=None, *, mem_len=None, clamp_len=None,
            same_length=None, training=False):
        """(hidden, new_memories, new_memory_length); see the class docstring."""
        mem_len = self.mem_len if mem_len is None else int(mem_len)
        clamp_len = self.clamp_len if clamp_len is None else int(clamp_len)
        same_length = self.same_length if same_length is None else bool(same_length)
        if same_length and mem_len < 1:
            raise ZooError("same_length needs a memory (every query would see no key); pass --mem_len >= 1 or "
                           "--same_length=false")
        ids = tf.cast(token_ids, tf.int32)
        batch, query_length = tf.shape(ids)[0], tf.shape(ids)[1]
        if memories is not None and len(memories) != self.num_layers:
            raise ZooError(f"memories must hold {self.num_layers} tensors (one per layer), got {len(memories)}")
        slots = 0 if memories is None else tf.shape(memories[0])[1]
        if memory_length is None:
            valid = tf.fill([batch], tf.minimum(slots, mem_len))
        else:
            valid = tf.minimum(tf.minimum(tf.cast(memory_length, tf.int32), slots), mem_len)
        mask = attention_mask(query_length, slots, valid, mem_len=mem_len, same_length=same_length)

        positions = relative_positions(query_length, slots + query_length, kind="transformer_xl",
                                       clamp_len=clamp_len)
        position = sinusoid_encoding(positions, self.hidden_dim, dtype=self.compute_dtype)[None]
        position = self.position_dropout(position, training=training)
        h = self.embedding_dropout(self.word_embedding(ids), training=training)
        tied = {} if self.untie_r else dict(content_bias=self.content_attention_bias,
                                            position_bias=self.positional_attention_bias)
        layer_inputs = []
        for i, block in enumerate(self.transformer_layers):
            memory = None if memories is None else memories[i]
            layer_inputs.append(h)
            h = block(h, position, memory=memory, attention_mask=mask, training=training, **tied)
        hidden = self.output_dropout(h, training=training)
        # The last mem_len steps of concat(memory, layer input), left-padded with zeros, float32, no gradient.
        new_memories, new_length = cache_memories(memories, layer_inputs, mem_len=mem_len, memory_length=valid,
                                                  pad=True, dtype=tf.float32)
        return hidden, new_memories, new_length

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.hidden_dim,)
