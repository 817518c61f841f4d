"""TransformerXLBackbone: exact counts, a NumPy transcription of the original forward (mem_transformer.py),
memory equivalence, memory validity, same_length and clamp_len, untie_r, and the config round trip."""

import keras
import numpy as np
import pytest

import zoo
from zoo.errors import ZooError
from zoo.models.transformer_xl import TransformerXLBackbone
from zoo.models.transformer_xl.transformer_xl_backbone import attention_mask
from zoo.registry import trainable_params

V, L, H, HEADS, D, INNER = 30, 2, 16, 2, 8, 32


def _backbone(seed=0, **overrides):
    keras.utils.set_random_seed(seed)
    config = dict(cutoffs=[10, 20], div_val=2, embedding_dim=16, dropout=0.0, mem_len=8)
    return TransformerXLBackbone(V, L, H, HEADS, D, INNER, **{**config, **overrides})


def _ids(batch=2, length=8, seed=0):
    return np.random.default_rng(seed).integers(0, V, size=(batch, length)).astype("int32")


# === Counts ===

@pytest.mark.parametrize("name,count", [
    ("transformer_xl_enwik8_base", 41_055_436),
    ("transformer_xl_tiny", 2_147_090),
    pytest.param("transformer_xl_wt103_base", 151_107_538, marks=pytest.mark.slow),
    pytest.param("transformer_xl_wt103_large", 285_205_322, marks=pytest.mark.slow),
    pytest.param("transformer_xl_enwik8_large", 277_231_820, marks=pytest.mark.slow),
])
def test_preset_counts(name, count):
    assert zoo.model_info(name).params == count
    assert trainable_params(zoo.create_model(name)) == count


def test_untie_r_bias_variables():
    tied, untied = _backbone(untie_r=False), _backbone(untie_r=True)
    bias_names = lambda m: [w.path for w in m.trainable_weights if "attention_bias" in w.path]  # noqa: E731
    assert [n.split("/")[-1] for n in bias_names(tied)] == ["content_attention_bias", "positional_attention_bias"]
    assert not any("transformer_layer_" in n for n in bias_names(tied))
    assert len(bias_names(untied)) == 2 * L and all("transformer_layer_" in n for n in bias_names(untied))
    assert trainable_params(untied) - trainable_params(tied) == (L - 1) * 2 * HEADS * D


# === The original's forward in NumPy ===

def _layer_norm(x, gamma, beta, eps=1e-5):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _reference_forward(backbone, ids, memories=None):
    """mem_transformer.py RelPartialLearnableDecoderLayer stack (dropout 0), mems of equal length per row."""
    w = lambda v: np.asarray(v)  # noqa: E731
    h = np.asarray(backbone.word_embedding(ids))
    q_len = ids.shape[1]
    m_len = 0 if memories is None else memories[0].shape[1]
    k_len = m_len + q_len
    pos = np.arange(k_len - 1, -1, -1.0)
    inv_freq = 1 / (10000 ** (np.arange(0.0, H, 2.0) / H))
    r = np.concatenate([np.sin(pos[:, None] * inv_freq), np.cos(pos[:, None] * inv_freq)], -1)
    for i, block in enumerate(backbone.transformer_layers):
        p = {wt.path.split("/", 1)[1]: np.asarray(wt) for wt in block.weights}  # keras-hub XLNetEncoder names
        u = w(backbone.content_attention_bias) if not backbone.untie_r else p["content_attention_bias"]
        v = w(backbone.positional_attention_bias) if not backbone.untie_r else p["positional_attention_bias"]
        cat = h if memories is None else np.concatenate([memories[i], h], 1)
        q = np.einsum("bth,hnd->btnd", h, p["rel_attn/query/kernel"])
        k = np.einsum("bth,hnd->btnd", cat, p["rel_attn/key/kernel"])
        val = np.einsum("bth,hnd->btnd", cat, p["rel_attn/value/kernel"])
        rk = np.einsum("rh,hnd->rnd", r, p["rel_attn/encoding/kernel"])
        ac = np.einsum("bind,bjnd->bnij", q + u, k)
        bd = np.zeros_like(ac)
        for qi in range(q_len):
            for kj in range(k_len):
                if kj <= m_len + qi:  # distance m_len + qi - kj sits at row k_len - 1 - distance of r
                    bd[:, :, qi, kj] = np.einsum("bnd,nd->bn", q[:, qi] + v, rk[k_len - 1 - (m_len + qi - kj)])
        score = (ac + bd) / np.sqrt(D)
        causal = np.arange(k_len)[None, :] <= m_len + np.arange(q_len)[:, None]
        score = np.where(causal, score, -np.inf)
        prob = np.exp(score - score.max(-1, keepdims=True))
        prob /= prob.sum(-1, keepdims=True)
        out = np.einsum("bind,hnd->bih", np.einsum("bnij,bjnd->bind", prob, val), p["rel_attn/attention_output/kernel"])
        h = _layer_norm(h + out, p["layer_norm_rel_attn/gamma"], p["layer_norm_rel_attn/beta"])
        inner = np.maximum(h @ p["feedforward_intermediate_dense/kernel"] + p["feedforward_intermediate_dense/bias"], 0)
        ff = inner @ p["feedforward_output_dense/kernel"] + p["feedforward_output_dense/bias"]
        h = _layer_norm(h + ff, p["layer_norm_ff/gamma"], p["layer_norm_ff/beta"])
    return h


@pytest.mark.parametrize("untie_r", [False, True])
def test_forward_matches_the_original_with_memory(untie_r):
    backbone = _backbone(untie_r=untie_r)
    ids = _ids(length=5)
    memories = [np.random.default_rng(i).normal(size=(2, 3, H)).astype("float32") for i in range(L)]
    hidden, _, _ = backbone.run(ids, memories, np.array([3, 3]))
    np.testing.assert_allclose(np.asarray(hidden), _reference_forward(backbone, ids, memories), atol=2e-5)
    np.testing.assert_allclose(np.asarray(backbone(ids)), _reference_forward(backbone, ids), atol=2e-5)


def test_segments_with_memory_equal_one_pass():
    backbone = _backbone(mem_len=8)
    ids = _ids(length=12)
    full = np.asarray(backbone(ids))
    memories, length, outputs = None, None, []
    for start in (0, 4, 8):  # mem_len 8 >= everything before the last segment
        hidden, memories, length = backbone.run(ids[:, start:start + 4], memories, length)
        outputs.append(np.asarray(hidden))
    np.testing.assert_allclose(outputs[1], full[:, 4:8], atol=1e-5)
    np.testing.assert_allclose(outputs[2], full[:, 8:], atol=1e-5)
    np.testing.assert_array_equal(np.asarray(length), [8, 8])
    # the new memory of layer 0 is the embedding of the last 8 tokens (layer 0's input)
    np.testing.assert_allclose(np.asarray(memories[0]), np.asarray(backbone.word_embedding(ids[:, 4:])), atol=1e-6)


def test_invalid_memory_slots_are_masked_and_rows_are_independent():
    backbone = _backbone()
    ids = _ids(length=4)
    garbage = [np.random.default_rng(i).normal(size=(2, 6, H)).astype("float32") * 5 for i in range(L)]
    hidden, memories, length = backbone.run(ids, garbage, np.array([0, 2]))
    np.testing.assert_allclose(np.asarray(hidden[0]), np.asarray(backbone(ids[:1]))[0], atol=1e-5)
    expected = _reference_forward(backbone, ids[1:], [g[1:, -2:] for g in garbage])
    np.testing.assert_allclose(np.asarray(hidden[1]), expected[0], atol=2e-5)
    np.testing.assert_array_equal(np.asarray(length), [4, 6])
    assert memories[0].shape == (2, 8, H)
    np.testing.assert_array_equal(np.asarray(memories[0])[:, :4], garbage[0][:, 2:])  # last 8 of concat(6 + 4)


def _torch_same_length_mask(q_len, m_len, mem_len):
    """pytorch mem_transformer.py: 1 = masked."""
    k_len = m_len + q_len
    ones = np.ones((q_len, k_len))
    mask_len = k_len - mem_len
    shift = q_len - mask_len if mask_len > 0 else q_len
    return (np.triu(ones, 1 + m_len) + np.tril(ones, -shift)) > 0


@pytest.mark.parametrize("q_len,m_len,mem_len", [(4, 0, 2), (4, 3, 6), (4, 6, 6), (3, 2, 8), (5, 5, 5)])
def test_same_length_mask_is_the_originals(q_len, m_len, mem_len):
    slots = 7  # a fixed buffer: the first slots - m_len are empty
    mask = np.asarray(attention_mask(q_len, slots, np.array([m_len]), mem_len=mem_len, same_length=True))[0]
    np.testing.assert_array_equal(mask[:, slots - m_len:], ~_torch_same_length_mask(q_len, m_len, mem_len))
    assert not mask[:, :slots - m_len].any()
    plain = np.asarray(attention_mask(q_len, slots, np.array([m_len]), mem_len=mem_len, same_length=False))[0]
    np.testing.assert_array_equal(plain[:, slots - m_len:], np.triu(np.ones((q_len, m_len + q_len)), 1 + m_len) == 0)


def test_same_length_and_clamp_len_change_what_is_seen():
    backbone = _backbone(init_std=0.3)  # position terms large enough to see
    ids = _ids(length=6)
    base = np.asarray(backbone.run(ids, mem_len=8)[0])
    # clamp_len beyond every distance changes nothing; a short one changes the far positions only
    np.testing.assert_allclose(np.asarray(backbone.run(ids, clamp_len=100)[0]), base, atol=1e-6)
    clamped = np.asarray(backbone.run(ids, clamp_len=2)[0])
    np.testing.assert_allclose(clamped[:, :3], base[:, :3], atol=1e-6)  # distances <= 2 only
    assert not np.allclose(clamped[:, 3:], base[:, 3:], atol=1e-4)
    # same_length with mem_len 3: query i sees keys i-2 .. i (one layer, so its output is that window's)
    keras.utils.set_random_seed(0)
    one = TransformerXLBackbone(V, 1, H, HEADS, D, INNER, dropout=0.0, init_std=0.3)
    same = np.asarray(one.run(ids, mem_len=3, same_length=True)[0])
    np.testing.assert_allclose(same[:, :3], np.asarray(one(ids[:, :3])), atol=1e-5)
    for i in range(3, 6):
        window = np.asarray(one(ids[:, i - 2:i + 1]))[:, -1]
        np.testing.assert_allclose(same[:, i], window, atol=1e-5)
    with pytest.raises(ZooError, match="--mem_len"):
        backbone.run(ids, mem_len=0, same_length=True)


def test_dropout_only_in_training_and_config_round_trip():
    backbone = _backbone(dropout=0.5, untie_r=True)
    ids = _ids()
    np.testing.assert_array_equal(np.asarray(backbone(ids)), np.asarray(backbone(ids)))
    assert not np.allclose(np.asarray(backbone(ids, training=True)), np.asarray(backbone(ids)))
    clone = TransformerXLBackbone.from_config(backbone.get_config())
    assert clone.get_config() == backbone.get_config()
    clone.set_weights(backbone.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(ids)), np.asarray(backbone(ids)))
    assert clone.adaptive_softmax.tables[0] is clone.word_embedding.tables[0]


def test_mixed_precision_hidden_and_float32_softmax():
    keras.utils.set_random_seed(0)
    backbone = _backbone(dtype="mixed_float16")
    hidden, memories, _ = backbone.run(_ids())
    assert hidden.dtype == "float16" and memories[0].dtype == "float32"
    assert backbone.adaptive_softmax.log_probs(hidden).dtype == "float32"
    assert np.isfinite(np.asarray(backbone.adaptive_softmax.nll(hidden, _ids()))).all()


def test_paper_training_protocol():
    from zoo.models.transformer_xl import PAPER_TRAINING

    assert set(PAPER_TRAINING) == set(zoo.list_models("transformer_xl_*"))
    protocol = lambda n: tuple(PAPER_TRAINING[n][k] for k in ("eval_tgt_len", "eval_mem_len", "eval_clamp_len",  # noqa
                                                                 "eval_same_length"))
    assert protocol("transformer_xl_wt103_base") == (64, 640, 400, True)
    assert protocol("transformer_xl_wt103_large") == (128, 1600, 1000, True)
    assert protocol("transformer_xl_enwik8_base") == (80, 2100, 820, True)
    assert protocol("transformer_xl_enwik8_large") == (128, 3800, 1000, True)
    assert all(p["clip_norm"] == 0.25 and p["clamp_len"] == -1 for p in PAPER_TRAINING.values())
    # The train.py flags of pytorch/run_{wt103,enwik8}_{base,large}.sh.
    training = lambda n: tuple(PAPER_TRAINING[n][k] for k in ("tgt_len", "mem_len", "global_batch_size",  # noqa
                                                                 "learning_rate", "warmup_step", "max_step"))
    assert training("transformer_xl_wt103_base") == (150, 150, 60, 2.5e-4, 0, 200000)
    assert training("transformer_xl_wt103_large") == (384, 384, 128, 2.5e-4, 16000, 4000000)
    assert training("transformer_xl_enwik8_base") == (512, 512, 22, 2.5e-4, 0, 400000)
    assert training("transformer_xl_enwik8_large") == (768, 768, 64, 2.5e-4, 4000, 400000)
    assert training("transformer_xl_tiny") == (32, 64, 16, 1e-3, 40, 400)
