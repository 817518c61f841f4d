"""Relative-position multi-head attention of Transformer-XL (Dai et al. 2019) and XLNet (Yang et al. 2019).

The score of query i for key j is, per head (q, k, r already projected; u, v, s the learned biases):

    score[i, j] = ((q_i + u)·k_j  +  (q_i + v)·W_R r(d_ij)  +  [(q_i + s)·e_{seg(i,j)}]) / sqrt(head_dim)

with d_ij = (M + i) - j the distance from the query's absolute position to key j over memory (M slots) and
content, and r(d) the sinusoid encoding. The position term is computed once for every encoded distance
([Q, R]) and moved to [Q, K] by `rel_shift`, the originals' reshape trick:

* `kind="transformer_xl"` (kimiyoung/transformer-xl `_rel_shift`): distances K-1 ... 0; the zero-pad variant.
  Only j <= M + i (the causal part) is meaningful; the rest is garbage by design and must be masked.
* `kind="xlnet_bi"` / `"xlnet_uni"` (zihangdai/xlnet `rel_shift`): distances K ... -Q+1 (bi) or K ... 0
  (uni); the drop-first-row variant. Every (i, j) is exact for "xlnet_bi"; the causal part for "xlnet_uni".

Masks are "1/True = may attend"; shifts other than "xlnet_bi" need one (a ZooError without it). Softmax runs
in float32 (mixed precision safe); masked logits are -1e30, and a row that may attend to nothing gets zero
probabilities (output 0), so an XLNet target never sees itself even where no other key is visible.

Example:
    import numpy as np
    attention = RelativeMultiHeadAttention(num_heads=2, head_dim=8, shift="transformer_xl")
    content = np.random.rand(2, 4, 16).astype("float32")
    memory = np.random.rand(2, 3, 16).astype("float32")
    position = sinusoid_encoding(relative_positions(4, 7, kind="transformer_xl"), 16)[None]  # [1, 7, 16]
    causal = np.tril(np.ones((4, 7)), k=3)[None].repeat(2, 0)                               # j <= 3 + i
    out = attention(content, position, content_bias=np.zeros((2, 8), "float32"),
                    position_bias=np.zeros((2, 8), "float32"), memory=memory, attention_mask=causal)
    # out: [2, 4, 16]
"""

import math
import numbers

import keras
from keras import ops

from zoo.errors import ZooError
from zoo.layers.config import Configurable
from zoo.layers.initializers import clone_initializer

SHIFTS = ("transformer_xl", "xlnet_bi", "xlnet_uni")
_MASKED_LOGIT = -1e30   # applied in float32


def _check_kind(kind, argument="kind"):
    if kind not in SHIFTS:
        raise ZooError(f"unknown relative shift {kind!r}; pass {argument}= one of {', '.join(SHIFTS)}")


def relative_positions(query_length, key_length, *, kind, clamp_len=-1, bi_data=False, batch_size=None):
    """Float32 distances encoded for one segment: key_length = memory length + query_length.

    kind="transformer_xl": key_length-1 ... 0 (key_length values); "xlnet_bi": key_length ... -query_length+1
    (key_length+query_length values); "xlnet_uni": key_length ... 0 (key_length+1 values). clamp_len > 0
    clips to [-clamp_len, clamp_len] (as both originals, -1 or 0: no clipping). bi_data (XLNet) returns
    [batch_size, R]: the first batch_size/2 rows forward, the rest the backward sequence (-positions;
    batch_size may be a dynamic tensor); otherwise [R].

    Example:
        relative_positions(2, 3, kind="xlnet_bi")   # [3., 2., 1., 0., -1.]
    """
    _check_kind(kind)
    start = key_length - 1 if kind == "transformer_xl" else key_length
    stop = {"transformer_xl": -1, "xlnet_bi": -query_length, "xlnet_uni": -1}[kind]
    forward = ops.arange(start, stop, -1, dtype="float32")
    clip = (lambda x: ops.clip(x, -float(clamp_len), float(clamp_len))) if clamp_len > 0 else (lambda x: x)
    if not bi_data:
        return clip(forward)
    if batch_size is None or (isinstance(batch_size, numbers.Integral) and batch_size % 2):
        raise ZooError(f"--bi_data needs an even per-replica batch, got {batch_size}; make "
                       "--global_batch_size an even multiple of the replica count (or pass --nobi_data)")
    half = batch_size // 2   # may be a tensor (a dynamic evaluation or serving batch)
    rows = [ops.broadcast_to(clip(forward)[None], (batch_size - half, ops.shape(forward)[0])),
            ops.broadcast_to(clip(-forward)[None], (half, ops.shape(forward)[0]))]
    return ops.concatenate(rows, axis=0)


def sinusoid_encoding(positions, dim, dtype="float32"):
    """concat[sin(p·f), cos(p·f)] with f_i = 1 / 10000^(2i/dim): [..., R] -> [..., R, dim] (both originals).

    Example:
        sinusoid_encoding(relative_positions(4, 4, kind="transformer_xl"), 16)   # [4, 16]
    """
    if dim % 2:
        raise ZooError(f"the sinusoid encoding needs an even hidden size, got {dim}; pass an even --hidden_dim")
    inv_freq = 1.0 / (10000.0 ** (ops.arange(0, dim, 2, dtype="float32") / float(dim)))
    angles = ops.cast(positions, "float32")[..., None] * inv_freq
    return ops.cast(ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1), dtype)


def rel_shift(scores, *, kind, key_length):
    """Position scores for every encoded distance [B, heads, Q, R] -> per key [B, heads, Q, K].

    See the module docstring for which entries are exact; result[..., i, j] is the score for distance
    (K - Q) + i - j.

    Example:
        rel_shift(keras.ops.ones((1, 1, 2, 3)), kind="xlnet_uni", key_length=2)   # [1, 1, 2, 2]
    """
    _check_kind(kind)
    # ops.slice (Slice, gradient Pad), not Python slicing (StridedSlice): its gradient is ~3x slower on CPU.
    batch, heads, q_len, r_len = ops.shape(scores)
    if kind == "transformer_xl":    # pad a zero column in front, view as [R+1, Q], drop the first row
        padded = ops.reshape(ops.pad(scores, [[0, 0], [0, 0], [0, 0], [1, 0]]), (batch, heads, -1))
        shifted = ops.reshape(ops.slice(padded, (0, 0, q_len), (batch, heads, q_len * r_len)),
                              (batch, heads, q_len, r_len))
    else:                            # view as [R, Q], drop the first row, view as [Q, R-1]
        flat = ops.reshape(scores, (batch, heads, -1))
        r_len = r_len - 1
        shifted = ops.reshape(ops.slice(flat, (0, 0, q_len), (batch, heads, q_len * r_len)),
                              (batch, heads, q_len, r_len))
    if isinstance(r_len, int) and isinstance(key_length, int) and r_len == key_length:
        return shifted
    return ops.slice(shifted, (0, 0, 0, 0), (batch, heads, q_len, key_length))


@keras.saving.register_keras_serializable(package="zoo")
class RelativeMultiHeadAttention(Configurable, keras.layers.Layer):
    """Multi-head attention with relative positions, memory, XLNet's segment term and two streams.

    Sublayers (keras-hub XLNet names, no biases): "query", "key", "value", "encoding" (kernels
    [H, heads, head_dim]) and "attention_output" (kernel [H, heads, head_dim], einsum "bqnd,hnd->bqh").

    Args:
        num_heads, head_dim: heads and their width.
        dropout: dropout on the attention probabilities (dropatt).
        kernel_initializer: for every kernel.
        shift: "transformer_xl", "xlnet_bi" or "xlnet_uni": how `position` lines up (see `rel_shift`).

    Call args:
        content: [B, Q, H]; position: sinusoid encoding [B or 1, R, H]; content_bias (u), position_bias (v):
        [heads, head_dim]; memory: [B, M, H] keys/values only, no gradient; attention_mask: [B, Q, M+Q] may
        attend; segment_matrix [B, Q, M+Q] (1 = different segment) with segment_bias [heads, head_dim] and
        segment_encoding [2, heads, head_dim]; query_stream g [B, P, H] with query_attention_mask
        [B, Q, M+Q] and target_mapping [B, P, Q] (P = Q without it).

    Returns content_out [B, Q, H], or (content_out, query_out [B, P, H]) given a query stream (after the
    output projection; no residual, layer norm or dropout).

    Example: see the module docstring.
    """

    def __init__(self, num_heads, head_dim, *, dropout=0.0, kernel_initializer="glorot_uniform",
                 shift="transformer_xl", **kwargs):
        super().__init__(**kwargs)
        _check_kind(shift, "shift")
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.shift = shift

    def _dense(self, equation, output_shape, name, input_shape, index):
        layer = keras.layers.EinsumDense(equation, output_shape=output_shape, dtype=self.dtype_policy, name=name,
                                         kernel_initializer=clone_initializer(self.kernel_initializer, index))
        layer.build(input_shape)
        return layer

    def build(self, content_shape, position_shape=None):
        hidden = content_shape[-1]
        heads = (None, self.num_heads, self.head_dim)
        # An int seed of kernel_initializer is offset by 0 ... 4 (else query == key kernels).
        self._query_dense = self._dense("bth,hnd->btnd", heads, "query", content_shape, 0)
        self._key_dense = self._dense("bth,hnd->btnd", heads, "key", content_shape, 1)
        self._value_dense = self._dense("bth,hnd->btnd", heads, "value", content_shape, 2)
        self._output_dense = self._dense("btnd,hnd->bth", (None, hidden), "attention_output",
                                         (None, None, self.num_heads, self.head_dim), 3)
        self._encoding_dense = self._dense("bth,hnd->btnd", heads, "encoding", content_shape, 4)
        self._dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def _scores(self, q, k, r, content_bias, position_bias, segment_matrix, segment_bias, segment_encoding,
                attention_mask, training):
        """Attention probabilities [B, heads, Q, K] for projected q [B,Q,N,D], k [B,K,N,D], r [1 or B,R,N,D]."""
        scale = 1.0 / math.sqrt(float(self.head_dim))
        cast = lambda x: ops.cast(x, q.dtype)  # noqa: E731
        key_length = ops.shape(k)[1]
        scores = ops.einsum("bqnd,bknd->bnqk", (q + cast(content_bias)) * scale, k)
        q_v = (q + cast(position_bias)) * scale
        if r.shape[0] == 1:
            position_scores = ops.einsum("bqnd,rnd->bnqr", q_v, ops.squeeze(r, 0))
        else:
            position_scores = ops.einsum("bqnd,brnd->bnqr", q_v, r)
        scores = scores + rel_shift(position_scores, kind=self.shift, key_length=key_length)
        if segment_matrix is not None:
            if segment_bias is None or segment_encoding is None:
                raise ZooError("segment_matrix needs segment_bias and segment_encoding; pass use_segment=True "
                               "to the block (or drop segment_ids)")
            segment = ops.einsum("bqnd,snd->bnqs", (q + cast(segment_bias)) * scale, cast(segment_encoding))
            different = ops.cast(segment_matrix, "bool")[:, None]
            same_term, different_term = ops.split(segment, 2, axis=-1)
            scores = scores + ops.where(different, different_term, same_term)
        scores = ops.cast(scores, "float32")
        if attention_mask is not None:
            mask = ops.cast(attention_mask, "bool")
            mask = mask[:, None] if len(mask.shape) == 3 else mask[None, None]
            scores = ops.where(mask, scores, _MASKED_LOGIT)
            # A row that may attend to nothing (an XLNet query-stream target first in the order with empty
            # memory) attends to nothing: its probabilities are zero, not a uniform mix that includes itself.
            probs = ops.softmax(scores, axis=-1) * ops.cast(ops.any(mask, axis=-1, keepdims=True), "float32")
        else:
            probs = ops.softmax(scores, axis=-1)
        probs = ops.cast(probs, q.dtype)
        return self._dropout_layer(probs, training=training)

    def call(self, content, position, *, content_bias, position_bias, memory=None, attention_mask=None,
             segment_matrix=None, segment_bias=None, segment_encoding=None, query_stream=None,
             query_attention_mask=None, target_mapping=None, training=None):
        if self.shift != "xlnet_bi" and (attention_mask is None or (
                query_stream is not None and query_attention_mask is None)):
            raise ZooError(f"shift={self.shift!r} needs a causal attention_mask (and query_attention_mask with a "
                           "query stream); pass attention_mask= (or shift='xlnet_bi')")
        compute = self.compute_dtype
        content = ops.cast(content, compute)
        keys_in = content
        if memory is not None:
            keys_in = ops.concatenate([ops.stop_gradient(ops.cast(memory, compute)), content], axis=1)
        k = self._key_dense(keys_in)
        v = self._value_dense(keys_in)
        r = self._encoding_dense(ops.cast(position, compute))
        terms = dict(content_bias=content_bias, position_bias=position_bias, segment_matrix=segment_matrix,
                     segment_bias=segment_bias, segment_encoding=segment_encoding, training=training)

        def attend(q, mask):
            probs = self._scores(q, k, r, attention_mask=mask, **terms)
            return ops.einsum("bnqk,bknd->bqnd", probs, v)

        content_out = self._output_dense(attend(self._query_dense(content), attention_mask))
        if query_stream is None:
            return content_out
        # Two streams as the original: K/V/R shared, a second pass for g (stacking both query sets on a
        # leading axis into one pass measured 1.2-2.4x slower on CPU: TF's 5-D einsums transpose).
        q_g = self._query_dense(ops.cast(query_stream, compute))
        if target_mapping is not None:   # scatter the P predictions to their positions, attend, gather back
            mapping = ops.cast(target_mapping, compute)
            q_g = ops.einsum("bpnd,bpq->bqnd", q_g, mapping)
            query_vec = ops.einsum("bqnd,bpq->bpnd", attend(q_g, query_attention_mask), mapping)
        else:
            query_vec = attend(q_g, query_attention_mask)
        return content_out, self._output_dense(query_vec)

    def compute_output_shape(self, content_shape, query_stream_shape=None):
        return _output_shapes(content_shape, query_stream_shape)


def _output_shapes(content_shape, query_stream_shape):
    """content [B, Q, H] (and the query stream's [B, P, H]) for symbolic calls."""
    if query_stream_shape is None:
        return tuple(content_shape)
    return tuple(content_shape), (*query_stream_shape[:-1], content_shape[-1])


@keras.saving.register_keras_serializable(package="zoo")
class RelativeTransformerBlock(Configurable, keras.layers.Layer):
    """Post-LN relative-attention block of Transformer-XL and XLNet (keras-hub `XLNetEncoder` names).

    h = LN(h + dropout(attn(h))); h = LN(h + dropout(out(dropout(act(inter(h)))))); the same attention
    output projection, layer norms and feed-forward applied to the query stream g when given.
    Transformer-XL: activation "relu", layer_norm_epsilon 1e-5, shift "transformer_xl"; XLNet: tanh GELU
    (`zoo.layers.activations.gelu_approximate`; Keras' "gelu" is the exact erf one), 1e-12, "xlnet_bi",
    use_segment=True.

    Args:
        num_heads, head_dim, intermediate_dim: attention heads, their width, feed-forward width.
        activation, dropout, attention_dropout, layer_norm_epsilon: as named.
        kernel_initializer: every kernel; an int seed is offset per weight (`clone_initializer`).
        bias_initializer: for the u / v / segment attention biases (segment_encoding uses kernel_initializer).
        shift: see `rel_shift`.
        own_biases: the block owns "content_attention_bias" / "positional_attention_bias" (untied, XLNet's
            untie_r); else the caller passes content_bias / position_bias (and segment_bias) to `call`.
        use_segment: XLNet's segment term ("segment_encoding", plus "segment_attention_bias" if own_biases).
        layer_norm_gamma_initializer: the layer norms' scale (Transformer-XL: normal(1, init_std)).

    Example:
        import numpy as np
        block = RelativeTransformerBlock(2, 8, 32, activation="relu", shift="xlnet_bi")
        x = np.random.rand(2, 4, 16).astype("float32")
        position = sinusoid_encoding(relative_positions(4, 4, kind="xlnet_bi"), 16)[None]
        y = block(x, position)    # [2, 4, 16]
    """

    def __init__(self, num_heads, head_dim, intermediate_dim, *, activation="relu", dropout=0.0,
                 attention_dropout=0.0, layer_norm_epsilon=1e-5, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", shift="transformer_xl", own_biases=True, use_segment=False,
                 layer_norm_gamma_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.intermediate_dim = intermediate_dim
        self.activation = keras.activations.get(activation)
        self.dropout = dropout
        self.attention_dropout = attention_dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.shift = shift
        self.own_biases = own_biases
        self.use_segment = use_segment
        self.layer_norm_gamma_initializer = keras.initializers.get(layer_norm_gamma_initializer)

    def build(self, content_shape, position_shape=None):
        hidden = content_shape[-1]
        # A copy per weight, an int seed offset by a distinct index (kernels 0-7, biases 8-10, layer norms 11-12):
        # one seed shared by every initializer still gives every weight its own values.
        fresh = clone_initializer
        common = dict(dtype=self.dtype_policy)
        self.relative_attention = RelativeMultiHeadAttention(
            self.num_heads, self.head_dim, dropout=self.attention_dropout,
            kernel_initializer=fresh(self.kernel_initializer, 0), shift=self.shift, name="rel_attn", **common)
        self.relative_attention.build(content_shape)
        norm = dict(epsilon=self.layer_norm_epsilon, **common)
        self.layer_norm = keras.layers.LayerNormalization(
            gamma_initializer=fresh(self.layer_norm_gamma_initializer, 11), name="layer_norm_rel_attn", **norm)
        self.layer_norm.build(content_shape)
        self.layer_norm_ff = keras.layers.LayerNormalization(
            gamma_initializer=fresh(self.layer_norm_gamma_initializer, 12), name="layer_norm_ff", **norm)
        self.layer_norm_ff.build(content_shape)
        self.feedforward_intermediate_dense = keras.layers.Dense(
            self.intermediate_dim, kernel_initializer=fresh(self.kernel_initializer, 5),   # rel_attn: 0 ... 4
            name="feedforward_intermediate_dense", **common)
        self.feedforward_intermediate_dense.build(content_shape)
        self.feedforward_output_dense = keras.layers.Dense(
            hidden, kernel_initializer=fresh(self.kernel_initializer, 6), name="feedforward_output_dense", **common)
        self.feedforward_output_dense.build((*content_shape[:-1], self.intermediate_dim))
        self.dropout_attn = keras.layers.Dropout(self.dropout, **common)
        self.dropout_ff = keras.layers.Dropout(self.dropout, **common)
        shape = (self.num_heads, self.head_dim)
        if self.own_biases:
            self.content_attention_bias = self.add_weight(
                shape=shape, initializer=fresh(self.bias_initializer, 8), name="content_attention_bias")
            self.positional_attention_bias = self.add_weight(
                shape=shape, initializer=fresh(self.bias_initializer, 9), name="positional_attention_bias")
            if self.use_segment:
                self.segment_attention_bias = self.add_weight(
                    shape=shape, initializer=fresh(self.bias_initializer, 10), name="segment_attention_bias")
        if self.use_segment:
            self.segment_encoding = self.add_weight(
                shape=(2, *shape), initializer=fresh(self.kernel_initializer, 7), name="segment_encoding")
        self.built = True

    def _feedforward(self, x, training):
        y = self.dropout_ff(self.activation(self.feedforward_intermediate_dense(x)), training=training)
        return self.layer_norm_ff(x + self.dropout_ff(self.feedforward_output_dense(y), training=training))

    def call(self, content, position, *, memory=None, attention_mask=None, segment_matrix=None,
             query_stream=None, query_attention_mask=None, target_mapping=None, content_bias=None,
             position_bias=None, segment_bias=None, training=None):
        if self.own_biases:
            content_bias, position_bias = self.content_attention_bias, self.positional_attention_bias
            segment_bias = self.segment_attention_bias if self.use_segment else None
        elif content_bias is None or position_bias is None:
            raise ZooError(f"{self.name} has own_biases=False: pass content_bias and position_bias (tied u, v), "
                           "or build it with own_biases=True (untie_r)")
        segment_encoding = None
        if segment_matrix is not None:
            if not self.use_segment:
                raise ZooError(f"{self.name} got a segment_matrix but has no segment term; build it with "
                               "use_segment=True")
            segment_encoding = self.segment_encoding
        outputs = self.relative_attention(
            content, position, content_bias=content_bias, position_bias=position_bias, memory=memory,
            attention_mask=attention_mask, segment_matrix=segment_matrix, segment_bias=segment_bias,
            segment_encoding=segment_encoding, query_stream=query_stream,
            query_attention_mask=query_attention_mask, target_mapping=target_mapping, training=training)
        content_out, query_out = outputs if query_stream is not None else (outputs, None)
        h = self._feedforward(self.layer_norm(content + self.dropout_attn(content_out, training=training)),
                              training)
        if query_stream is None:
            return h
        g = self._feedforward(self.layer_norm(query_stream + self.dropout_attn(query_out, training=training)),
                              training)
        return h, g

    def compute_output_shape(self, content_shape, query_stream_shape=None):
        return _output_shapes(content_shape, query_stream_shape)
