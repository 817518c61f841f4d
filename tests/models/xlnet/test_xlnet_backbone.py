"""XLNetBackbone: exact counts, batch invariance, two-stream semantics, memories, bi_data, XLA, config."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.errors import ZooError
from zoo.models.xlnet import XLNetBackbone, cache_memories
from zoo.registry import trainable_params

TINY = dict(vocabulary_size=40, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32, dropout=0.0,
            attention_dropout=0.0)


def _backbone(seed=0, std=0.5, **overrides):
    """A tiny backbone with every weight ~N(0, std) (large enough for a wrong mask or position to show)."""
    backbone = XLNetBackbone(**{**TINY, **overrides})
    rng = np.random.default_rng(seed)
    for w in backbone.weights:
        w.assign(rng.normal(0.0, std, w.shape).astype("float32"))
    return backbone


def _run(backbone, ids, **kwargs):
    out = backbone.run(ids, **kwargs)
    return {k: (None if v is None else [np.asarray(x) for x in v] if isinstance(v, list) else np.asarray(v))
            for k, v in out.items()}


def _layer_count(hidden, intermediate):
    # q, k, v, o, r kernels + u, v, s biases + segment encoding + 2 layer norms + feed-forward
    return 5 * hidden * hidden + (3 + 2 + 4) * hidden + 2 * hidden * intermediate + intermediate + hidden


@pytest.mark.parametrize("name, hidden, intermediate, layers, expected", [
    ("xlnet_base", 768, 3072, 12, 116_718_336), ("xlnet_large", 1024, 4096, 24, 360_268_800)])
def test_full_width_layer_count_gives_the_exact_preset_count(name, hidden, intermediate, layers, expected):
    # One full-width layer (cheap to build) measures the per-layer count; the preset is V·H + H + L·layer.
    one = zoo.create_model(name, num_layers=1, vocabulary_size=1)
    per_layer = trainable_params(one) - hidden - hidden
    assert per_layer == _layer_count(hidden, intermediate)  # base 7,678,464; large 13,645,824
    assert 32000 * hidden + hidden + layers * per_layer == expected == zoo.model_info(name).params
    assert zoo.model_info("xlnet_tiny").params == trainable_params(zoo.create_model("xlnet_tiny")) == 4_525_696


@pytest.mark.slow
@pytest.mark.parametrize("name", ["xlnet_base", "xlnet_large"])
def test_full_size_preset_counts(name):
    assert trainable_params(zoo.create_model(name)) == zoo.model_info(name).params


def test_untied_biases_option_shares_one_set():
    tied = XLNetBackbone(**TINY, untie_r=False)
    untied = XLNetBackbone(**TINY)
    assert trainable_params(untied) - trainable_params(tied) == (TINY["num_layers"] - 1) * 3 * TINY["hidden_dim"]
    ids = np.array([[3, 4, 5, 6]])
    assert np.isfinite(np.asarray(tied({"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": 1 + 0 * ids}))).all()


def _padded_batch():
    ids = np.array([[5, 5, 5, 7, 9, 4, 3], [8, 9, 10, 11, 12, 4, 3], [5, 5, 13, 14, 15, 4, 3]])
    mask = (ids != 5).astype("int32")
    segments = np.where(mask == 1, np.array([[0, 0, 0, 0, 1, 1, 2]] * 3), 4)
    return {"token_ids": ids, "segment_ids": segments, "padding_mask": mask}


def test_batch_invariance_with_left_padding():
    backbone = _backbone()
    batch = _padded_batch()
    together = np.asarray(backbone(batch))
    for row in range(3):
        alone = np.asarray(backbone({k: v[row:row + 1] for k, v in batch.items()}))
        np.testing.assert_allclose(together[row], alone[0], atol=1e-5)
    # Padding is masked as a key: the real tokens' outputs do not depend on how much padding precedes them.
    short = {k: v[:1, 3:] for k, v in batch.items()}
    np.testing.assert_allclose(np.asarray(backbone(short))[0], together[0, 3:], atol=1e-5)


def _permutation_mask(order):
    """Original polarity: 1 where i may not attend j, i.e. j does not come before i in the factorization."""
    order = np.asarray(order)
    return (order[None, :] >= order[:, None]).astype("float32")[None]


def test_query_stream_never_sees_its_own_token():
    backbone = _backbone()
    ids = np.array([[3, 8, 9, 10, 11, 12]])
    # position 1 is a non-target (rank -1, as the original's): everyone sees it, its own query row is empty.
    perm = _permutation_mask([2, -1, 5, 1, 4, 3])
    targets = [0, 2, 3, 4, 5]
    out = _run(backbone, ids, perm_mask=perm, two_stream=True)
    for position in targets:
        changed = ids.copy()
        changed[0, position] = 20
        again = _run(backbone, changed, perm_mask=perm, two_stream=True)
        np.testing.assert_allclose(again["query"][0, position], out["query"][0, position], atol=1e-5)
        assert np.abs(again["content"][0, position] - out["content"][0, position]).max() > 1e-2  # h sees itself
    # the last token in the order never reaches another target's query stream
    later = ids.copy()
    later[0, 2] = 21
    again = _run(backbone, later, perm_mask=perm, two_stream=True)
    np.testing.assert_allclose(again["query"][0, [0, 3, 4, 5]], out["query"][0, [0, 3, 4, 5]], atol=1e-5)
    # (position 1's query row sees no key at all; no loss reads it, so its value is not pinned here)


def test_query_row_with_no_visible_key_does_not_see_its_own_token():
    # First step (memory_length 0) with every position a target: position 0, first in the order, has no
    # visible key. Masking by -1e30 alone gives it a uniform softmax over every key, itself included.
    backbone = _backbone()
    ids = np.array([[3, 8, 9, 10, 11, 12]])
    memories = [np.zeros((1, 4, TINY["hidden_dim"]), "float32")] * TINY["num_layers"]
    kwargs = dict(perm_mask=_permutation_mask([0, 1, 2, 3, 4, 5]), memories=memories, memory_length=np.array([0]),
                  two_stream=True)
    out = _run(backbone, ids, **kwargs)
    changed = ids.copy()
    changed[0, 0] = 20
    again = _run(backbone, changed, **kwargs)
    np.testing.assert_allclose(again["query"][0, 0], out["query"][0, 0], atol=1e-5)
    assert np.abs(again["query"][0, 1:] - out["query"][0, 1:]).max() > 1e-2  # later targets do see token 0


def test_target_mapping_gathers_query_rows_and_all_visible_equals_content_only():
    backbone = _backbone()
    ids = np.array([[3, 8, 9, 10, 11, 12], [4, 5, 6, 7, 8, 9]])
    segments = np.array([[0, 0, 0, 1, 1, 2]] * 2)
    perm = np.concatenate([_permutation_mask([2, 0, 5, 1, 4, 3]), _permutation_mask([0, 1, 2, 3, 4, 5])])
    full = _run(backbone, ids, segment_ids=segments, perm_mask=perm, two_stream=True)
    targets = np.array([[2, 4], [5, 0]])
    mapping = np.eye(6, dtype="float32")[targets]  # [B, P, T]
    mapped = _run(backbone, ids, segment_ids=segments, perm_mask=perm, target_mapping=mapping, two_stream=True)
    np.testing.assert_allclose(mapped["query"], np.take_along_axis(full["query"], targets[..., None], 1), atol=1e-5)
    np.testing.assert_allclose(mapped["content"], full["content"], atol=1e-6)
    all_q = _run(backbone, ids, segment_ids=segments, perm_mask=perm, input_q=np.ones((2, 6)), two_stream=True)
    np.testing.assert_allclose(all_q["query"], full["query"], atol=1e-6)  # input_q 1: g starts from mask_emb
    visible = _run(backbone, ids, segment_ids=segments, perm_mask=0 * perm, two_stream=True)
    content_only = _run(backbone, ids, segment_ids=segments)
    np.testing.assert_allclose(visible["content"], content_only["content"], atol=1e-6)
    assert content_only["query"] is None and len(content_only["layer_inputs"]) == 2


def test_memory_equals_the_concatenation_under_causal_attention():
    backbone = _backbone(attn_type="uni")
    rng = np.random.default_rng(1)
    first, second = rng.integers(1, 40, (2, 5)), rng.integers(1, 40, (2, 4))
    whole = _run(backbone, np.concatenate([first, second], 1))
    one = backbone.run(first)
    two = _run(backbone, second, memories=one["layer_inputs"])
    np.testing.assert_allclose(two["content"], whole["content"][:, 5:], atol=1e-5)
    # Zero slots in front of the memory are ignored once memory_length says they are not filled yet.
    padded = [tf.concat([tf.zeros((2, 3, 16)), m], axis=1) for m in one["layer_inputs"]]
    masked = _run(backbone, second, memories=padded, memory_length=np.array([5, 5]))
    np.testing.assert_allclose(masked["content"], whole["content"][:, 5:], atol=1e-5)
    # cache_memories: the last mem_len of concat(old, input[:, :reuse_len]), the valid-slot count capped.
    memories, length = cache_memories(padded, two["layer_inputs"], reuse_len=2, mem_len=8, memory_length=[5, 1])
    np.testing.assert_allclose(np.asarray(memories[1]), np.concatenate(
        [np.asarray(padded[1])[:, 2:], two["layer_inputs"][1][:, :2]], 1))
    assert np.asarray(length).tolist() == [7, 3]


def test_bi_data_uses_backward_positions_for_the_second_half_and_needs_an_even_batch():
    backbone = _backbone(bi_data=True)
    ids = np.array([[3, 8, 9, 10]] * 2)
    both = _run(backbone, ids)["content"]
    forward = _run(_backbone(), ids[:1])["content"]
    np.testing.assert_allclose(both[0], forward[0], atol=1e-5)
    assert np.abs(both[1] - both[0]).max() > 1e-2
    with pytest.raises(ZooError, match="--bi_data"):
        backbone.run(ids[:1])


def test_bi_data_with_a_dynamic_batch_equals_the_static_one_and_the_layer_rows():
    from zoo.layers.relative_attention import relative_positions, sinusoid_encoding

    backbone = _backbone(bi_data=True, clamp_len=3)
    ids = np.array([[3, 8, 9, 10, 11]] * 2 + [[5, 6, 7, 8, 9]] * 2)
    dynamic = tf.function(lambda x: backbone.run(x)["content"],
                          input_signature=[tf.TensorSpec([None, 5], tf.int32)])  # the trainer's evaluation batch
    np.testing.assert_allclose(np.asarray(dynamic(ids)), _run(backbone, ids)["content"], atol=1e-5)
    encode = tf.function(lambda x: backbone._position_encoding(tf.shape(x)[0], 5, 7, False),
                         input_signature=[tf.TensorSpec([None, 5], tf.int32)])
    want = sinusoid_encoding(relative_positions(5, 7, kind="xlnet_bi", clamp_len=3, bi_data=True, batch_size=4), 16)
    np.testing.assert_allclose(np.asarray(encode(ids)), np.asarray(want), atol=1e-6)
    assert np.abs(np.asarray(want)[2] - np.asarray(want)[1]).max() > 0.1  # the halves differ


def test_clamp_len_only_changes_long_distances():
    ids = np.array([[3, 8, 9, 10, 11, 12]])
    plain, clamped = _run(_backbone(), ids)["content"], _run(_backbone(clamp_len=2), ids)["content"]
    assert np.abs(plain - clamped).max() > 1e-3
    np.testing.assert_allclose(_run(_backbone(clamp_len=6), ids)["content"], plain, atol=1e-6)


def test_xla_equals_eager_two_stream_with_memory():
    backbone = _backbone()
    ids = tf.constant([[3, 8, 9, 10], [4, 5, 6, 7]])
    segments = tf.constant([[0, 0, 1, 2]] * 2)
    perm = tf.constant(np.concatenate([_permutation_mask([1, 0, 3, 2])] * 2))
    mapping = tf.constant(np.eye(4, dtype="float32")[[[0, 2], [1, 3]]])
    memories = [tf.random.normal((2, 3, 16), seed=i) for i in range(2)]

    def step(ids, segments, perm, mapping, memories):
        out = backbone.run(ids, segment_ids=segments, perm_mask=perm, target_mapping=mapping, memories=memories,
                           memory_length=tf.constant([3, 2]), two_stream=True)
        return out["content"], out["query"]

    eager = step(ids, segments, perm, mapping, memories)
    compiled = tf.function(step, jit_compile=True)(ids, segments, perm, mapping, memories)
    for a, b in zip(eager, compiled):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def test_get_config_and_keras_file_round_trip_and_errors(tmp_path):
    backbone = _backbone(untie_r=False, attn_type="uni", clamp_len=3)
    clone = XLNetBackbone.from_config(backbone.get_config())
    assert clone.get_config() == backbone.get_config()
    clone.set_weights(backbone.get_weights())
    batch = _padded_batch()
    np.testing.assert_array_equal(np.asarray(clone(batch)), np.asarray(backbone(batch)))
    backbone.save(tmp_path / "xlnet.keras")
    loaded = keras.saving.load_model(tmp_path / "xlnet.keras")
    for ours, theirs in zip(backbone.weights, loaded.weights):  # mask_emb and the shared biases included
        assert ours.path == theirs.path
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    with pytest.raises(ZooError, match="attn_type"):
        XLNetBackbone(**TINY, attn_type="left")
    with pytest.raises(ZooError, match="activation"):
        XLNetBackbone(**TINY, activation="swish")
    keras.backend.clear_session()
