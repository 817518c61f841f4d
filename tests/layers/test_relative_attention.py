"""zoo.layers.relative_attention against a NumPy oracle of the original formulas (Transformer-XL
RelPartialLearnableMultiHeadAttn, XLNet rel_attn_core / two_stream_rel_attn): every score computed directly
for every (query, key) pair from its distance, no shift trick."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.layers.policy_helpers import global_policy
from zoo.errors import ZooError
from zoo.layers.initializers import clone_initializer
from zoo.layers.relative_attention import (RelativeMultiHeadAttention, RelativeTransformerBlock, rel_shift,
                                           relative_positions, sinusoid_encoding)

B, Q, M, H, N, D = 2, 5, 3, 16, 2, 8
RNG = np.random.default_rng(0)


def rand(*shape):
    return RNG.normal(size=shape).astype("float32")


# ---------------------------------------------------------------- NumPy oracle (the math, written once here)
def np_sinusoid(distance, dim):
    inv_freq = 1.0 / 10000 ** (np.arange(0, dim, 2.0) / dim)
    angles = np.asarray(distance, "float64")[..., None] * inv_freq
    return np.concatenate([np.sin(angles), np.cos(angles)], -1)


def np_distances(q_len, k_len, clamp_len=-1, signs=None):
    """[B, Q, K] distance of query i (absolute position K-Q+i) to key j; backward rows (sign -1) negated."""
    d = (k_len - q_len + np.arange(q_len)[:, None]) - np.arange(k_len)[None, :]
    d = np.stack([s * d for s in (signs if signs is not None else [1] * B)])
    return np.clip(d, -clamp_len, clamp_len) if clamp_len > 0 else d


def np_attention(layer, content, memory, u, v, mask, query=None, distances=None, seg_mat=None, seg_bias=None,
                 seg_enc=None):
    """Original-formula attention for queries from `query` (default content), K/V from [memory, content]."""
    wq, wk, wv, wo, wr = [w.numpy().astype("float64") for w in
                          (layer._query_dense.kernel, layer._key_dense.kernel, layer._value_dense.kernel,
                           layer._output_dense.kernel, layer._encoding_dense.kernel)]
    cat = content if memory is None else np.concatenate([memory, content], 1)
    q = np.einsum("bih,hnd->bind", content if query is None else query, wq)
    k, val = np.einsum("bjh,hnd->bjnd", cat, wk), np.einsum("bjh,hnd->bjnd", cat, wv)
    if distances is None:
        distances = np_distances(content.shape[1], cat.shape[1])
    r = np.einsum("bijh,hnd->bijnd", np_sinusoid(distances, cat.shape[-1]), wr)   # every pair, directly
    score = np.einsum("bind,bjnd->bnij", q + u, k) + np.einsum("bind,bijnd->bnij", q + v, r)
    if seg_mat is not None:   # XLNet: ef = einsum(ibnd,snd->ibns); ef = einsum(ijbs,ibns->ijbn) on one_hot(seg_mat)
        ef = np.einsum("bind,snd->bins", q + seg_bias, seg_enc)
        score = score + np.einsum("bijs,bins->bnij", np.eye(2)[seg_mat], ef)
    score = score / np.sqrt(q.shape[-1])
    score = np.where(np.asarray(mask, bool)[:, None], score, -1e30)
    prob = np.exp(score - score.max(-1, keepdims=True))
    prob /= prob.sum(-1, keepdims=True)
    return np.einsum("bnij,bjnd,hnd->bih", prob, val, wo)


def causal(q_len, k_len, batch=B):
    return np.tril(np.ones((q_len, k_len), "float32"), k=k_len - q_len)[None].repeat(batch, 0)


def position_for(kind, q_len, k_len, **kwargs):
    return sinusoid_encoding(relative_positions(q_len, k_len, kind=kind, **kwargs), H)


def make_layer(kind, **kwargs):
    layer = RelativeMultiHeadAttention(N, D, shift=kind, kernel_initializer="glorot_normal", **kwargs)
    layer.build((None, None, H))
    return layer


U, V = rand(N, D), rand(N, D)


# ---------------------------------------------------------------- positions, encoding, shift
def test_relative_positions_match_the_originals():
    np.testing.assert_array_equal(relative_positions(3, 5, kind="transformer_xl"), [4, 3, 2, 1, 0])
    np.testing.assert_array_equal(relative_positions(3, 5, kind="xlnet_bi"), [5, 4, 3, 2, 1, 0, -1, -2])
    np.testing.assert_array_equal(relative_positions(3, 5, kind="xlnet_uni"), [5, 4, 3, 2, 1, 0])
    np.testing.assert_array_equal(relative_positions(3, 5, kind="xlnet_bi", clamp_len=2),
                                  [2, 2, 2, 2, 1, 0, -1, -2])
    np.testing.assert_array_equal(relative_positions(3, 5, kind="transformer_xl", clamp_len=2), [2, 2, 2, 1, 0])
    for kind in ("transformer_xl", "xlnet_bi", "xlnet_uni"):   # clamp_len 0 or -1: no clipping (both originals)
        np.testing.assert_array_equal(relative_positions(3, 5, kind=kind, clamp_len=0),
                                      relative_positions(3, 5, kind=kind))
    bi = relative_positions(3, 5, kind="xlnet_bi", clamp_len=3, bi_data=True, batch_size=4).numpy()
    forward = np.clip(np.arange(5, -3, -1), -3, 3)
    np.testing.assert_array_equal(bi, [forward, forward, -forward, -forward])   # second half = backward
    with pytest.raises(ZooError, match="batch_size"):
        relative_positions(3, 5, kind="xlnet_bi", bi_data=True, batch_size=3)
    with pytest.raises(ZooError, match="kind="):
        relative_positions(3, 5, kind="bert")

    @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.int32)], autograph=False)
    def dynamic_batch(token_ids):
        return relative_positions(3, 5, kind="xlnet_bi", clamp_len=3, bi_data=True, batch_size=tf.shape(token_ids)[0])

    np.testing.assert_array_equal(dynamic_batch(tf.zeros((4, 3), tf.int32)).numpy(), bi)   # a dynamic batch too


def test_sinusoid_encoding_formula():
    positions = np.array([[3.0, -1.0, 0.0], [7.0, 2.0, 5.0]])
    np.testing.assert_allclose(sinusoid_encoding(positions, 6), np_sinusoid(positions, 6), atol=1e-6)


@pytest.mark.parametrize("kind", ["transformer_xl", "xlnet_bi", "xlnet_uni"])
@pytest.mark.parametrize("clamp_len", [-1, 2])
def test_rel_shift_equals_brute_force_scores(kind, clamp_len):
    """(q_i + v)·W_R r(i - j) for every pair vs the shifted [Q, R] scores; M memory slots in front."""
    k_len = M + Q
    q_v, w_r = rand(B, Q, N, D), rand(H, N, D)
    r = np.einsum("rh,hnd->rnd", position_for(kind, Q, k_len, clamp_len=clamp_len).numpy(), w_r)
    shifted = rel_shift(np.einsum("bqnd,rnd->bnqr", q_v, r), kind=kind, key_length=k_len).numpy()
    brute = np.einsum("bind,bijnd->bnij", q_v, np.einsum("bijh,hnd->bijnd",
                      np_sinusoid(np_distances(Q, k_len, clamp_len), H), w_r))
    valid = np.ones((Q, k_len), bool) if kind == "xlnet_bi" else causal(Q, k_len, 1)[0].astype(bool)
    assert shifted.shape == (B, N, Q, k_len)
    np.testing.assert_allclose(shifted[..., valid], brute[..., valid], atol=1e-4)
    if kind == "transformer_xl":   # the upper triangle is garbage by design (the causal mask hides it)
        assert not np.allclose(shifted[..., ~valid], brute[..., ~valid], atol=1e-3)


# ---------------------------------------------------------------- the layer vs the oracle
@pytest.mark.parametrize("kind", ["transformer_xl", "xlnet_bi", "xlnet_uni"])
def test_attention_with_memory_matches_oracle(kind):
    layer = make_layer(kind)
    content, memory = rand(B, Q, H), rand(B, M, H)
    mask = causal(Q, M + Q)
    out = layer(content, position_for(kind, Q, M + Q)[None], content_bias=U, position_bias=V, memory=memory,
                attention_mask=mask)
    np.testing.assert_allclose(out, np_attention(layer, content, memory, U, V, mask), atol=2e-4)


def test_xlnet_bi_every_pair_segment_term_bi_data_and_clamp():
    layer = make_layer("xlnet_bi")
    content, memory = rand(B, Q, H), rand(B, M, H)
    mask = (RNG.random((B, Q, M + Q)) > 0.3).astype("float32")
    mask[:, :, M:] = np.maximum(mask[:, :, M:], np.eye(Q))   # no empty row
    seg_ids = np.array([[0, 0, 1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0, 0, 2]])
    seg_mat = (seg_ids[:, M:, None] != seg_ids[:, None, :]).astype("int32")   # [B, Q, M+Q], 1 = different
    seg_bias, seg_enc = rand(N, D), rand(2, N, D)
    position = position_for("xlnet_bi", Q, M + Q, clamp_len=3, bi_data=True, batch_size=B)   # [B, R, H]
    out = layer(content, position, content_bias=U, position_bias=V, memory=memory, attention_mask=mask,
                segment_matrix=seg_mat, segment_bias=seg_bias, segment_encoding=seg_enc)
    expected = np_attention(layer, content, memory, U, V, mask, distances=np_distances(Q, M + Q, 3, [1, -1]),
                            seg_mat=seg_mat, seg_bias=seg_bias, seg_enc=seg_enc)
    np.testing.assert_allclose(out, expected, atol=2e-4)


@pytest.mark.parametrize("kind", ["transformer_xl", "xlnet_uni", "xlnet_bi"])
def test_memory_equals_the_concatenated_context(kind):
    """Two blocks: segment 2 with segment 1's layer inputs as memory == both segments at once (causal)."""
    blocks = [RelativeTransformerBlock(N, D, 32, shift=kind, bias_initializer="glorot_uniform") for _ in "ab"]
    x1, x2 = rand(B, Q, H), rand(B, Q, H)

    def stack(x, memories=None):
        k_len = x.shape[1] + (0 if memories is None else memories[0].shape[1])
        position, inputs = position_for(kind, x.shape[1], k_len)[None], []
        for i, block in enumerate(blocks):
            inputs.append(x)
            x = block(x, position, memory=None if memories is None else memories[i],
                      attention_mask=causal(x.shape[1], k_len))
        return x, inputs

    full, _ = stack(np.concatenate([x1, x2], 1))
    _, memories = stack(x1)
    second, _ = stack(x2, memories)
    np.testing.assert_allclose(second, full[:, Q:], atol=1e-4)


def test_no_gradient_into_memory_but_keys_and_values_learn():
    layer = make_layer("transformer_xl")
    content, memory = tf.constant(rand(B, Q, H)), tf.constant(rand(B, M, H))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(memory)
        out = layer(content, position_for("transformer_xl", Q, M + Q)[None], content_bias=U, position_bias=V,
                    memory=memory, attention_mask=causal(Q, M + Q))
        loss = tf.reduce_sum(out ** 2)
    grad = tape.gradient(loss, memory)
    assert grad is None or not np.any(grad.numpy())
    for kernel in (layer._key_dense.kernel, layer._value_dense.kernel):
        assert np.abs(tape.gradient(loss, kernel).numpy()).sum() > 0


# ---------------------------------------------------------------- two streams
def _two_stream_inputs():
    content, memory, g = rand(B, Q, H), rand(B, M, H), rand(B, Q, H)
    mask_h = np.ones((B, Q, M + Q), "float32")
    mask_g = mask_h.copy()
    mask_g[:, :, M:] -= np.eye(Q, dtype="float32")   # the query stream may not see itself
    return content, memory, g, mask_h, mask_g


def test_query_stream_never_sees_its_own_content():
    layer = make_layer("xlnet_bi")
    content, memory, g, mask_h, mask_g = _two_stream_inputs()
    position = position_for("xlnet_bi", Q, M + Q)[None]

    def run(c, g_in=g):
        return [t.numpy() for t in layer(c, position, content_bias=U, position_bias=V, memory=memory,
                                         attention_mask=mask_h, query_stream=g_in, query_attention_mask=mask_g)]

    h, q_out = run(content)
    np.testing.assert_allclose(h, np_attention(layer, content, memory, U, V, mask_h), atol=2e-4)
    np.testing.assert_allclose(q_out, np_attention(layer, content, memory, U, V, mask_g, query=g), atol=2e-4)
    changed = content.copy()
    changed[:, 2] += 1.0                        # new key/value at position 2 only
    h2, q2 = run(changed)
    np.testing.assert_allclose(q2[:, 2], q_out[:, 2], atol=1e-5)   # zero weight on itself
    assert np.abs(h2[:, 2] - h[:, 2]).max() > 1e-3                 # the content stream does see it
    assert np.abs(q2[:, 0] - q_out[:, 0]).max() > 1e-3
    h3, q3 = run(content, g + 1.0)             # K/V come from content only
    np.testing.assert_allclose(h3, h, atol=1e-6)
    assert np.abs(q3 - q_out).max() > 1e-3


def test_target_mapping_gathers_rows_of_the_full_query_stream():
    layer = make_layer("xlnet_bi")
    content, memory, g, mask_h, mask_g = _two_stream_inputs()
    position = position_for("xlnet_bi", Q, M + Q)[None]
    targets = np.array([[4, 1, 0], [2, 3, 1]])
    mapping = np.eye(Q, dtype="float32")[targets]   # [B, P, Q]
    kwargs = dict(content_bias=U, position_bias=V, memory=memory, attention_mask=mask_h,
                  query_attention_mask=mask_g)
    _, full = layer(content, position, query_stream=g, **kwargs)
    g_p = np.take_along_axis(g, targets[..., None], 1)
    _, picked = layer(content, position, query_stream=g_p, target_mapping=mapping, **kwargs)
    np.testing.assert_allclose(picked, np.take_along_axis(full.numpy(), targets[..., None], 1), atol=1e-5)


# ---------------------------------------------------------------- block: biases, config, masks, dtype, XLA
def test_tied_biases_passed_in_equal_owned_biases():
    owned = RelativeTransformerBlock(N, D, 32, shift="xlnet_bi", use_segment=True, activation="gelu",
                                     bias_initializer="glorot_uniform")
    tied = RelativeTransformerBlock(N, D, 32, shift="xlnet_bi", use_segment=True, own_biases=False,
                                    activation="gelu")
    x, seg = rand(B, Q, H), (RNG.random((B, Q, Q)) > 0.5).astype("int32")
    position = position_for("xlnet_bi", Q, Q)[None]
    y = owned(x, position, segment_matrix=seg)
    tied(x, position, content_bias=U, position_bias=V, segment_bias=U, segment_matrix=seg)
    by_path = {w.path.split("/", 1)[1]: w for w in owned.weights}
    for w in tied.weights:
        w.assign(by_path[w.path.split("/", 1)[1]])
    assert len(tied.weights) == len(owned.weights) - 3
    y2 = tied(x, position, content_bias=owned.content_attention_bias, segment_matrix=seg,
              position_bias=owned.positional_attention_bias, segment_bias=owned.segment_attention_bias)
    np.testing.assert_allclose(y2, y, atol=1e-6)
    with pytest.raises(ZooError, match="own_biases"):
        tied(x, position)


def test_block_weight_names_and_config_round_trip():
    block = RelativeTransformerBlock(N, D, 32, activation="gelu", dropout=0.1, layer_norm_epsilon=1e-12,
                                     shift="xlnet_bi", use_segment=True, name="layer_0")
    x, position = rand(B, Q, H), position_for("xlnet_bi", Q, Q)[None]
    y = block(x, position)
    names = {w.path for w in block.weights}
    for name in ["layer_0/content_attention_bias", "layer_0/positional_attention_bias",
                 "layer_0/segment_attention_bias", "layer_0/segment_encoding", "layer_0/rel_attn/query/kernel",
                 "layer_0/rel_attn/encoding/kernel", "layer_0/rel_attn/attention_output/kernel",
                 "layer_0/layer_norm_rel_attn/gamma", "layer_0/layer_norm_ff/beta",
                 "layer_0/feedforward_intermediate_dense/kernel", "layer_0/feedforward_output_dense/bias"]:
        assert name in names
    assert block.relative_attention._output_dense.kernel.shape == (H, N, D)
    clone = RelativeTransformerBlock.from_config(json.loads(json.dumps(block.get_config())))
    clone(x, position)
    clone.set_weights(block.get_weights())
    np.testing.assert_allclose(clone(x, position), y, atol=1e-6)
    assert clone.get_config() == block.get_config()
    attention = RelativeMultiHeadAttention.from_config(block.relative_attention.get_config())
    assert (attention.num_heads, attention.head_dim, attention.shift, attention.dropout) == (N, D, "xlnet_bi", 0.0)


def test_fully_masked_rows_are_finite_and_mixed_float16_is_close():
    x, position = rand(B, Q, H) * 30, position_for("transformer_xl", Q, Q)[None]
    mask = causal(Q, Q)
    mask[0, 2] = 0.0                                 # a row that may attend to nothing
    block32 = RelativeTransformerBlock(N, D, 32)
    y32 = block32(x, position, attention_mask=mask).numpy()
    assert np.isfinite(y32).all()
    attention = block32.relative_attention
    out = attention(x, position, content_bias=block32.content_attention_bias,
                    position_bias=block32.positional_attention_bias, attention_mask=mask).numpy()
    np.testing.assert_array_equal(out[0, 2], 0.0)     # it attends to nothing (not a uniform mix)
    assert np.abs(out[0, 3]).max() > 1e-3
    with global_policy("mixed_float16"):
        block16 = RelativeTransformerBlock(N, D, 32)
        block16(x, position, attention_mask=mask)
    block16.set_weights(block32.get_weights())
    y16 = block16(x, position, attention_mask=mask)
    assert y16.dtype == "float16" and np.isfinite(y16.numpy()).all()
    np.testing.assert_allclose(y16.numpy().astype("float32"), y32, atol=5e-2)


def test_xla_equals_eager_and_batch_invariance():
    block = RelativeTransformerBlock(N, D, 32, shift="xlnet_bi", use_segment=True)
    x, g, memory = rand(B, Q, H), rand(B, Q, H), rand(B, M, H)
    seg = (RNG.random((B, Q, M + Q)) > 0.5).astype("int32")
    mask = np.ones((B, Q, M + Q), "float32")
    mask_g = mask.copy()
    mask_g[:, :, M:] -= np.eye(Q, dtype="float32")
    position = position_for("xlnet_bi", Q, M + Q)[None]

    def run(*args):
        return block(*args[:2], memory=args[2], segment_matrix=args[3], attention_mask=args[4],
                     query_stream=args[5], query_attention_mask=args[6])

    inputs = (x, position, memory, seg, mask, g, mask_g)
    eager = [t.numpy() for t in run(*inputs)]
    xla = tf.function(run, jit_compile=True)(*[tf.constant(t) for t in inputs])
    for a, b in zip(xla, eager):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for row in range(B):
        one = [t[row:row + 1] if t is not position else t for t in inputs]
        for a, b in zip(run(*one), eager):
            np.testing.assert_allclose(a[0], b[row], atol=1e-5)


def test_bad_arguments_raise_one_line_zoo_errors():
    with pytest.raises(ZooError, match="shift="):
        RelativeMultiHeadAttention(N, D, shift="rope")
    block = RelativeTransformerBlock(N, D, 32, shift="xlnet_bi")
    with pytest.raises(ZooError, match="use_segment=True"):
        block(rand(B, Q, H), position_for("xlnet_bi", Q, Q)[None], segment_matrix=np.zeros((B, Q, Q), "int32"))
    assert keras.ops.shape(rel_shift(np.ones((1, 1, 2, 3), "float32"), kind="xlnet_uni", key_length=2)) == (
        1, 1, 2, 2)


def test_block_equals_keras_hub_xlnet_encoder_with_the_same_weights():
    from keras_hub.src.models.xlnet.xlnet_encoder import XLNetEncoder

    theirs = XLNetEncoder(N, H, D, 32, activation="gelu", kernel_initializer_range=0.3,
                          bias_initializer="glorot_uniform", name="layer_0")
    ours = RelativeTransformerBlock(N, D, 32, activation="gelu", layer_norm_epsilon=1e-12, shift="xlnet_bi",
                                    use_segment=True, name="layer_0")
    content, memory, g, mask_h, mask_g = _two_stream_inputs()
    position = np.repeat(position_for("xlnet_bi", Q, M + Q)[None].numpy(), B, 0)
    seg = RNG.random((B, Q, M + Q)) > 0.5
    mapping = np.eye(Q, dtype="float32")[[[4, 1], [0, 2]]]
    theirs.build((B, Q, H))
    ours(content, position, memory=memory)
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]   # same names, same order
    ours.set_weights(theirs.get_weights())
    expected = theirs(content, mask_h, mask_g, position, seg, output_query=g[:, :2], mems=memory,
                      target_mapping=mapping)
    got = ours(content, position, memory=memory, attention_mask=mask_h, segment_matrix=seg,
               query_stream=g[:, :2], query_attention_mask=mask_g, target_mapping=mapping)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, atol=1e-5)


# ---------------------------------------------------------------- review follow-ups
@pytest.mark.parametrize("kind", ["transformer_xl", "xlnet_uni"])
def test_causal_shifts_without_a_mask_raise(kind):
    """Their rel_shift leaves garbage above the diagonal: no mask would attend to it silently."""
    layer, x = make_layer(kind), rand(B, Q, H)
    position = position_for(kind, Q, Q)[None]
    with pytest.raises(ZooError, match="attention_mask="):
        layer(x, position, content_bias=U, position_bias=V)
    with pytest.raises(ZooError, match="attention_mask="):   # the query stream needs its mask too
        layer(x, position, content_bias=U, position_bias=V, attention_mask=causal(Q, Q), query_stream=x)
    with pytest.raises(ZooError, match="attention_mask="):
        RelativeTransformerBlock(N, D, 32, shift=kind)(x, position)


def test_symbolic_two_stream_call_returns_both_streams():
    block = RelativeTransformerBlock(N, D, 32, shift="xlnet_bi")
    content, g = keras.Input((Q, H)), keras.Input((2, H))
    position = keras.Input((2 * Q, H), batch_size=1)
    mapping = keras.Input((2, Q))
    h, q_out = block(content, position, query_stream=g, target_mapping=mapping)
    assert tuple(h.shape) == (None, Q, H) and tuple(q_out.shape) == (None, 2, H)
    assert tuple(block(content, position).shape) == (None, Q, H)
    attention = block.relative_attention
    h, q_out = attention(content, position, content_bias=U, position_bias=V, query_stream=g,
                         target_mapping=mapping)
    assert tuple(q_out.shape) == (None, 2, H)
    model = keras.Model([content, position, g, mapping], block(content, position, query_stream=g,
                                                                target_mapping=mapping))
    x, g_in = rand(B, Q, H), rand(B, 2, H)
    p_in, map_in = position_for("xlnet_bi", Q, Q)[None].numpy(), np.eye(Q, dtype="float32")[[[4, 1], [0, 2]]]
    for a, b in zip(model([x, p_in, g_in, map_in]), block(x, p_in, query_stream=g_in, target_mapping=map_in)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_a_seeded_initializer_gives_every_weight_its_own_values():
    seeded = keras.initializers.RandomNormal(0.0, 0.02, seed=1)
    block = RelativeTransformerBlock(N, D, H, shift="xlnet_bi", use_segment=True, kernel_initializer=seeded,
                                     bias_initializer=seeded)   # one seed for all
    block(rand(B, Q, H), position_for("xlnet_bi", Q, Q)[None])
    attention = block.relative_attention
    kernels = [layer.kernel.numpy().ravel()[:N * D] for layer in (
        attention._query_dense, attention._key_dense, attention._value_dense, attention._output_dense,
        attention._encoding_dense, block.feedforward_intermediate_dense, block.feedforward_output_dense)]
    kernels += [block.segment_encoding.numpy().ravel()[:N * D]] + [
        w.numpy().ravel() for w in (block.content_attention_bias, block.positional_attention_bias,
                                    block.segment_attention_bias)]
    for i in range(len(kernels)):
        for j in range(i):
            assert not np.allclose(kernels[i], kernels[j]), (i, j)
    again = RelativeTransformerBlock.from_config(block.get_config())   # the same seeds: the same weights
    again(rand(B, Q, H), position_for("xlnet_bi", Q, Q)[None])
    for a, b in zip(again.get_weights(), block.get_weights()):
        np.testing.assert_array_equal(a, b)
    clone = clone_initializer(seeded, index=3)
    assert clone is not seeded and clone.seed == 4 and seeded.seed == 1 and clone.stddev == 0.02
    assert clone_initializer("zeros") is not clone_initializer("zeros")


def test_dropout_placement():
    """attention_dropout 1 (dropout 0): the attention adds nothing, h = FFN-block(LN(x)); dropout 1: both the
    attention output and the FFN (after its output dense, whose bias is made non-zero) are dropped,
    h = LN_ff(LN(x))."""
    x, position = rand(B, Q, H), position_for("transformer_xl", Q, Q)[None]
    mask = causal(Q, Q)

    def block_with(**rates):
        block = RelativeTransformerBlock(N, D, 32, bias_initializer="glorot_uniform", **rates)
        block(x, position, attention_mask=mask)
        block.feedforward_output_dense.bias.assign(np.ones(H, "float32"))
        return block

    block = block_with(attention_dropout=1.0)
    h1 = block.layer_norm(x)
    ffn = block.feedforward_output_dense(keras.activations.relu(block.feedforward_intermediate_dense(h1)))
    np.testing.assert_allclose(block(x, position, attention_mask=mask, training=True),
                               block.layer_norm_ff(h1 + ffn), atol=1e-5)
    assert np.abs(block(x, position, attention_mask=mask) - block.layer_norm_ff(h1 + ffn)).max() > 1e-3
    block = block_with(dropout=1.0)
    np.testing.assert_allclose(block(x, position, attention_mask=mask, training=True),
                               block.layer_norm_ff(block.layer_norm(x)), atol=1e-5)


def test_xla_equals_eager_for_the_transformer_xl_shift_with_memory():
    block = RelativeTransformerBlock(N, D, 32, bias_initializer="glorot_uniform")
    x, memory, mask = rand(B, Q, H), rand(B, M, H), causal(Q, M + Q)
    position = position_for("transformer_xl", Q, M + Q)[None]

    def run(x, position, memory, mask):
        return block(x, position, memory=memory, attention_mask=mask)

    eager = run(x, position, memory, mask).numpy()
    xla = tf.function(run, jit_compile=True)(*[tf.constant(t) for t in (x, position, memory, mask)])
    np.testing.assert_allclose(xla, eager, atol=1e-5)
