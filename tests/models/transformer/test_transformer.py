import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.layers.cached_attention import CachedMultiHeadAttention
from zoo.layers.transformer_decoder import TransformerDecoder
from zoo.models.transformer import Translator
from zoo.models.transformer.transformer_presets import SMALL, example_inputs

TINY = dict(SMALL, vocabulary_size=30)


def _batch(batch=4, source=7, target=6, vocab=30, seed=0):
    """Right-padded sources and EOS-terminated targets with uneven lengths."""
    rng = np.random.default_rng(seed)
    src = np.zeros((batch, source), "int32")
    tgt = np.zeros((batch, target), "int32")
    for i in range(batch):
        n, m = rng.integers(2, source + 1), rng.integers(1, target)
        src[i, :n] = rng.integers(4, vocab, n)
        tgt[i, :m] = rng.integers(4, vocab, m)
        tgt[i, m] = 3
    return {"source_ids": src, "target_ids": tgt}


def _ported_keras_hub_decoder(ours, normalize_first):
    """keras-hub's TransformerDecoder with our layer's weights, copied by path."""
    theirs = keras_hub.layers.TransformerDecoder(64, 4, normalize_first=normalize_first, layer_norm_epsilon=1e-6)
    theirs(keras.ops.zeros((1, 3, 16)), keras.ops.zeros((1, 4, 16)))
    mine = {v.path.split("/", 1)[1]: v for v in ours.weights}
    for v in theirs.weights:
        v.assign(mine[v.path.split("/", 1)[1]])
    assert len(theirs.weights) == len(ours.weights)
    return theirs


@pytest.mark.parametrize("normalize_first", [False, True])
def test_decoder_matches_keras_hub(normalize_first):
    keras.utils.set_random_seed(1)
    ours = TransformerDecoder(4, 64, normalize_first=normalize_first)
    x, enc = keras.random.normal((2, 5, 16)), keras.random.normal((2, 6, 16))
    dec_mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    enc_mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]])
    got = ours(x, enc, decoder_padding_mask=dec_mask, encoder_padding_mask=enc_mask)
    theirs = _ported_keras_hub_decoder(ours, normalize_first)
    want = theirs(x, enc, decoder_padding_mask=dec_mask, encoder_padding_mask=enc_mask)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5)


def test_cached_attention_equals_keras_attention():
    keras.utils.set_random_seed(2)
    layer = CachedMultiHeadAttention(num_heads=2, key_dim=4)
    q, v = keras.random.normal((2, 3, 8)), keras.random.normal((2, 5, 8))
    plain = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    plain(q, v)
    layer(q, v)
    for a, b in zip(plain.weights, layer.weights):
        a.assign(b)
    np.testing.assert_allclose(np.asarray(layer(q, v)), np.asarray(plain(q, v)), atol=1e-6)
    np.testing.assert_allclose(np.asarray(layer(q, None, cache=layer.project_cache(v))), np.asarray(plain(q, v)),
                               atol=1e-6)


@pytest.mark.parametrize("normalize_first", [False, True])
def test_cached_decoding_equals_full_forward(normalize_first):
    keras.utils.set_random_seed(3)
    backbone = zoo.create_model("transformer_tiny", **TINY, normalize_first=normalize_first)
    x = example_inputs(backbone, batch_size=3)
    ids = x["decoder_token_ids"].copy()
    ids[:, 0] = 2
    full = np.asarray(backbone({**x, "decoder_token_ids": ids, "decoder_padding_mask": np.ones_like(ids)})["logits"])
    cache = backbone.init_cache(x["encoder_token_ids"], x["encoder_padding_mask"], 12)
    step = tf.function(backbone.decode_step)
    for i in range(ids.shape[1]):
        logits, cache = step(tf.constant(ids[:, i]), cache, tf.constant(i))
        np.testing.assert_allclose(np.asarray(logits), full[:, i], atol=2e-5, err_msg=f"position {i}")


def test_outputs_do_not_depend_on_padding_or_batch():
    keras.utils.set_random_seed(4)
    backbone = zoo.create_model("transformer_tiny", **TINY)
    x = example_inputs(backbone, batch_size=3, seed=5)
    both = np.asarray(backbone(x)["logits"])
    for i in range(3):
        n, m = x["encoder_padding_mask"][i].sum(), x["decoder_padding_mask"][i].sum()
        one = {k: v[i:i + 1, :(n if k.startswith("encoder") else m)] for k, v in x.items()}
        np.testing.assert_allclose(np.asarray(backbone(one)["logits"])[0], both[i, :m], atol=2e-5)


def test_shared_embedding_and_paper_counts_arithmetic():
    backbone = zoo.create_model("transformer_tiny", **TINY)
    embeddings = [v for v in backbone.trainable_variables if "embedding" in v.path]
    assert [tuple(v.shape) for v in embeddings] == [(30, 16)]  # one matrix: source, target and softmax
    d, ff, V = 512, 2048, 37000  # base, per sequence_search.md §3.2
    encoder = 4 * d * d + 4 * d + 2 * d * ff + ff + d + 4 * d
    decoder = 2 * (4 * d * d + 4 * d) + 2 * d * ff + ff + d + 6 * d
    assert V * d + 6 * encoder + 6 * decoder == zoo.model_info("transformer_base").params == 63_082_496


def _translator(vocab=30, seed=0):
    keras.utils.set_random_seed(seed)
    model = Translator(zoo.create_model("transformer_tiny", **TINY))
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    return model


def test_loss_is_smoothed_mean_over_real_target_tokens():
    model = _translator()
    batch = _batch()
    logs = model.train_step({k: tf.constant(v) for k, v in batch.items()})
    logits = np.asarray(model(batch)["logits"], "float64")
    log_p = logits - logits.max(-1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
    labels, weights = batch["target_ids"], (batch["target_ids"] > 0)
    nll = -np.take_along_axis(log_p, labels[..., None], -1)[..., 0]
    smoothed = 0.9 * nll + 0.1 * -log_p.mean(-1)
    np.testing.assert_allclose(float(logs["loss"]), (smoothed * weights).sum() / weights.sum(), rtol=1e-5)
    np.testing.assert_allclose(float(logs["nll"]), (nll * weights).sum() / weights.sum(), rtol=1e-5)
    hits = (logits.argmax(-1) == labels) * weights
    np.testing.assert_allclose(float(logs["token_accuracy"]), hits.sum() / weights.sum(), rtol=1e-6)


@pytest.mark.slow
def test_train_step_learns_a_copy_task_with_xla():
    model = _translator(seed=1)
    model.optimizer.learning_rate.assign(0.5)
    batch = _batch(batch=8, source=6, target=6, seed=2)
    batch["target_ids"] = np.concatenate([batch["source_ids"][:, :5], np.zeros((8, 1), "int32")], 1)
    for i, n in enumerate((batch["target_ids"] > 0).sum(1)):
        batch["target_ids"][i, n] = 3
    step = tf.function(model.train_step, jit_compile=True)
    data = {k: tf.constant(v) for k, v in batch.items()}
    first = float(step(data)["loss"])
    for _ in range(30):
        last = float(step(data)["loss"])
    assert last < 0.7 * first


@pytest.mark.slow
@pytest.mark.distributed
def test_two_replicas_train_like_one_device(mirrored):
    batch = _batch(batch=8, seed=3)
    batch["target_ids"][:4, 2:] = 0  # replica 0 has fewer real target tokens than replica 1
    batch["target_ids"][:4, 1] = 3
    results = []
    for strategy in (tf.distribute.get_strategy(), mirrored):
        with strategy.scope():
            model = _translator(seed=5)
            model.optimizer.learning_rate.assign(0.3)
        replicas = strategy.num_replicas_in_sync
        step = tf.function(lambda d: strategy.run(model.train_step, args=(d,)))
        for _ in range(2):
            data = strategy.experimental_distribute_values_from_function(
                lambda ctx: {k: tf.constant(np.split(v, replicas)[ctx.replica_id_in_sync_group])
                             for k, v in batch.items()})
            logs = step(data)
        loss = strategy.experimental_local_results(logs["loss"])[0]
        results.append((float(loss), [np.asarray(v) for v in model.trainable_variables]))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, atol=2e-6)


def test_test_step_reports_global_token_means():
    model = _translator(seed=6)
    batches = [_batch(seed=7), _batch(batch=3, seed=8)]
    for metric in model.metrics:
        metric.reset_state()
    for batch in batches:
        logs = model.test_step({k: tf.constant(v) for k, v in batch.items()})
    total = hits = 0.0
    for batch in batches:
        logits = np.asarray(model(batch)["logits"])
        w = batch["target_ids"] > 0
        hits += ((logits.argmax(-1) == batch["target_ids"]) * w).sum()
        total += w.sum()
    assert set(logs) == {"loss", "nll", "token_accuracy"}
    np.testing.assert_allclose(float(logs["token_accuracy"]), hits / total, rtol=1e-6)


def test_mixed_precision_logits_are_float32():
    backbone = zoo.create_model("transformer_tiny", **TINY, dtype="mixed_float16")
    x = example_inputs(backbone)
    assert backbone(x)["logits"].dtype == "float32"
    cache = backbone.init_cache(x["encoder_token_ids"], x["encoder_padding_mask"], 8)
    logits, cache = backbone.decode_step(x["decoder_token_ids"][:, 0], cache, 0)
    assert logits.dtype == "float32" and cache["self_attention_0"].dtype == "float16"


@pytest.mark.slow
def test_translate_sizes_the_cache_to_the_source_and_runs_on_any_shape():
    keras.utils.set_random_seed(7)
    model = Translator(zoo.create_model("transformer_tiny", **TINY))
    source = _batch(batch=3, source=5, seed=9)["source_ids"]
    eager = model.translate(source, beam_size=2, extra_length=4)
    assert eager["ids"].shape == (3, 9)  # width 5 + 4, not max_sequence_length
    assert int(np.max(eager["lengths"])) <= 9
    any_shape = tf.function(lambda s: model.translate(s, beam_size=2, extra_length=4),
                            input_signature=[tf.TensorSpec([None, None], tf.int32)])
    traced = any_shape(tf.constant(source))
    np.testing.assert_array_equal(np.asarray(traced["ids"]), np.asarray(eager["ids"]))
    np.testing.assert_allclose(np.asarray(traced["scores"]), np.asarray(eager["scores"]), atol=1e-5)
    greedy = model.translate(source, beam_size=1, extra_length=4)
    assert greedy["ids"].shape == (3, 9)
