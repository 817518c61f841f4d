"""XLNetPretrainer: the tied-softmax loss, the query stream not seeing its own token, memories (reuse_len
truncation, reset), 2 replicas == 1, XLA == eager, resume through the Trainer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.models.xlnet.xlnet_backbone import XLNetBackbone
from zoo.models.xlnet.xlnet_pretrainer import XLNetPretrainer
from zoo.training.trainer import Trainer

V, L, H, T, P, ROWS, MEM, REUSE = 37, 2, 16, 8, 3, 4, 6, 4


def _backbone(dropout=0.0, seed=0):
    keras.utils.set_random_seed(seed)
    return XLNetBackbone(V, num_layers=L, num_heads=2, hidden_dim=H, intermediate_dim=32, dropout=dropout,
                         attention_dropout=dropout, kernel_initializer_range=0.3)


def _model(rows=ROWS, mem_len=MEM, reuse_len=REUSE, lr=0.1, clip_norm=1.0, dropout=0.0, seed=0):
    model = XLNetPretrainer(_backbone(dropout, seed), per_replica_batch_size=rows, mem_len=mem_len,
                            reuse_len=reuse_len, clip_norm=clip_norm)
    model.lm_bias.assign(np.random.default_rng(seed).normal(size=V).astype("float32"))
    model.compile(optimizer=keras.optimizers.SGD(lr))
    return model


def permutation_features(rng, targets, order=None):
    """`perm_mask` [T,T] (1 = cannot attend) and `target_mapping` [P,T] as the original `_local_perm` for a
    segment whose predicted positions are `targets`, predicted in `order` (a permutation of them): non-targets
    see every non-target and no target; a target sees non-targets and the targets before it, never itself."""
    order = list(rng.permutation(targets)) if order is None else list(order)
    rank = np.full(T, -1)
    rank[order] = np.arange(len(order))
    is_target = rank >= 0
    perm_mask = (is_target[None, :] & (rank[None, :] >= rank[:, None])).astype("float32")
    mapping = np.zeros((P, T), "float32")
    mapping[np.arange(len(targets)), sorted(targets)] = 1.0
    return perm_mask, mapping


def _batch(seed=0, rows=ROWS, reset=None):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=(rows, T)).astype("int32")
    masks, mappings, targets, weights = [], [], [], []
    for _ in range(rows):
        positions = sorted(rng.choice(T, size=P, replace=False))
        perm_mask, mapping = permutation_features(rng, positions)
        masks.append(perm_mask), mappings.append(mapping)
        targets.append(rng.integers(0, V, size=P)), weights.append([1.0, 1.0, 1.0])
    weights[0][-1] = 0.0  # an unused prediction slot
    return {"token_ids": ids, "segment_ids": (np.arange(T) >= T // 2).astype("int32")[None].repeat(rows, 0),
            "perm_mask": np.stack(masks), "target_mapping": np.stack(mappings),
            "targets": np.stack(targets).astype("int32"), "target_weights": np.array(weights, "float32"),
            "reset": np.zeros(rows, "float32") if reset is None else np.asarray(reset, "float32")}


def _run(model, batch, memories=None, memory_length=None):
    return model.backbone.run(batch["token_ids"], segment_ids=batch["segment_ids"], perm_mask=batch["perm_mask"],
                              target_mapping=batch["target_mapping"], memories=memories,
                              memory_length=memory_length, two_stream=True, training=False)


def _memory(model):
    return [np.asarray(v) for v in model.memory.memories], np.asarray(model.memory.length)


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_loss_is_the_tied_softmax_over_weighted_targets():
    model, batch = _model(), _batch()
    query = np.asarray(_run(model, batch)["query"])  # [B, P, H]
    table = np.asarray(model.backbone.token_embedding.embeddings)  # [V, H]
    logits = query @ table.T + np.asarray(model.lm_bias)
    nll = -np.take_along_axis(_log_softmax(logits), batch["targets"][..., None], -1)[..., 0]
    w = batch["target_weights"]
    expected = float((nll * w).sum() / w.sum())
    hits = float(((logits.argmax(-1) == batch["targets"]) * w).sum() / w.sum())
    logs = model.test_step(batch)
    assert float(logs["loss"]) == pytest.approx(expected, rel=1e-5)
    assert float(logs["perplexity"]) == pytest.approx(np.exp(expected), rel=1e-5)
    assert float(logs["accuracy"]) == pytest.approx(hits, abs=1e-6)
    logs = _model().train_step(batch)  # the loss before the update, from empty memory
    assert float(logs["loss"]) == pytest.approx(expected, rel=1e-5)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == \
        model.backbone.count_params() + V  # the task adds only the [V] lm_bias


def test_query_stream_never_sees_its_own_token():
    model = _model(rows=1)
    rng = np.random.default_rng(4)
    ids = rng.integers(0, V, size=(1, T)).astype("int32")
    perm_mask, mapping = permutation_features(rng, [1, 4, 6], order=[4, 1, 6])  # 4 first, then 1, then 6
    batch = {"token_ids": ids, "segment_ids": np.zeros((1, T), "int32"), "perm_mask": perm_mask[None],
             "target_mapping": mapping[None]}
    changed = dict(batch, token_ids=ids.copy())
    changed["token_ids"][0, 1] = (ids[0, 1] + 1) % V  # the target at position 1 (slot 0, second in order)
    before, after = np.asarray(model(batch)), np.asarray(model(changed))
    np.testing.assert_allclose(after[0, 0], before[0, 0], atol=1e-5)  # its own prediction does not change
    np.testing.assert_allclose(after[0, 1], before[0, 1], atol=1e-5)  # position 4 comes before it
    assert np.abs(after[0, 2] - before[0, 2]).max() > 1e-3  # position 6, predicted after it, sees it


def test_memory_after_steps_is_the_reuse_truncated_layer_inputs():
    model, first, second = _model(), _batch(seed=1), _batch(seed=2)
    inputs = [np.asarray(x) for x in _run(model, first)["layer_inputs"]]
    model.train_step(first)  # the layer inputs come from the weights before the update
    memories, length = _memory(model)
    np.testing.assert_array_equal(length, REUSE)
    for memory, x in zip(memories, inputs):
        np.testing.assert_allclose(memory[:, MEM - REUSE:], x[:, :REUSE], atol=1e-5)
        np.testing.assert_array_equal(memory[:, :MEM - REUSE], 0.0)
    inputs = [np.asarray(x) for x in _run(model, second, [tf.constant(m) for m in memories],
                                          tf.constant(length.astype("int32")))["layer_inputs"]]
    model.test_step(second)
    new, length = _memory(model)
    np.testing.assert_array_equal(length, MEM)  # min(4 + 4, 6)
    for n, m, x in zip(new, memories, inputs):
        np.testing.assert_allclose(n, np.concatenate([m, x[:, :REUSE]], 1)[:, -MEM:], atol=1e-5)


def test_reset_drops_exactly_the_flagged_rows_memory():
    model = _model()
    rng = np.random.default_rng(3)
    for v in model.memory.memories:
        v.assign(rng.normal(size=v.shape).astype("float32"))
    model.memory.length.assign(np.full(ROWS, MEM, "float32"))
    memories, _ = _memory(model)
    batch = _batch(seed=5, reset=[1, 0, 1, 0])
    logits = np.asarray(model.lm_logits(_run(model, batch)["query"]))
    kept = _run(model, {k: v[[1, 3]] for k, v in batch.items()}, [tf.constant(m[[1, 3]]) for m in memories],
                tf.constant([MEM, MEM]))
    model.test_step(batch)
    new, length = _memory(model)
    np.testing.assert_array_equal(length, [REUSE, MEM, REUSE, MEM])
    fresh = _run(model, {k: v[[0, 2]] for k, v in batch.items()})
    for n, f, k, m in zip(new, fresh["layer_inputs"], kept["layer_inputs"], memories):
        np.testing.assert_allclose(n[[0, 2], MEM - REUSE:], np.asarray(f)[:, :REUSE], atol=1e-5)
        np.testing.assert_allclose(n[[1, 3]], np.concatenate([m[[1, 3]], np.asarray(k)[:, :REUSE]], 1)[:, -MEM:],
                                   atol=1e-5)
    assert np.abs(np.asarray(model.lm_logits(kept["query"])) - logits[[1, 3]]).max() > 1e-3  # memory matters


def test_config_round_trip():
    model = _model()
    clone = XLNetPretrainer.from_config(model.get_config())
    assert (clone.mem_len, clone.reuse_len, clone.per_replica_batch_size, clone.clip_norm) == (MEM, REUSE, ROWS, 1.0)
    assert clone.backbone.num_layers == L and len(clone.memory.memories) == L


def test_mixed_precision_step_keeps_float32_memory():
    reference = _model()
    keras.utils.set_random_seed(0)
    backbone = XLNetBackbone(V, num_layers=L, num_heads=2, hidden_dim=H, intermediate_dim=32, dropout=0.0,
                             attention_dropout=0.0, kernel_initializer_range=0.3, dtype="mixed_float16")
    for a, b in zip(reference.backbone.weights, backbone.weights):
        b.assign(a)
    model = XLNetPretrainer(backbone, per_replica_batch_size=ROWS, mem_len=MEM, reuse_len=REUSE)
    model.lm_bias.assign(reference.lm_bias)
    model.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1)))
    batch = _batch()
    assert float(model.train_step(batch)["loss"]) == pytest.approx(float(reference.train_step(batch)["loss"]), rel=1e-2)
    assert all(v.dtype == "float32" for v in model.memory.memories + [model.memory.length])
    for a, b in zip(_memory(model)[0], _memory(reference)[0]):  # the same memory, to fp16 accuracy
        np.testing.assert_allclose(a, b, atol=2e-2)


# === Distributed, compiled and resumed training ===

def _per_replica(strategy, batch):
    replicas = strategy.num_replicas_in_sync
    rows = ROWS // replicas
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: {k: tf.constant(v[ctx.replica_id_in_sync_group * rows:(ctx.replica_id_in_sync_group + 1) * rows])
                     for k, v in batch.items()})


def _steps_on(strategy, steps=2):
    with strategy.scope():
        model = _model(rows=ROWS // strategy.num_replicas_in_sync, clip_norm=0.5)
    step = tf.function(lambda b: strategy.run(model.train_step, args=(b,)))
    losses = []
    for seed in range(steps):
        logs = step(_per_replica(strategy, _batch(seed=seed, reset=[seed == 1, 0, 0, 0])))
        losses.append(float(strategy.reduce("MEAN", logs["loss"], axis=None)))
    memories = [np.concatenate([np.asarray(x) for x in strategy.experimental_local_results(v.value)])
                for v in model.memory.memories]
    return model, losses, memories


@pytest.mark.distributed
def test_two_replicas_equal_one(mirrored):
    one, one_losses, one_memories = _steps_on(tf.distribute.get_strategy())
    two, two_losses, two_memories = _steps_on(mirrored)
    np.testing.assert_allclose(one_losses, two_losses, rtol=1e-5)
    for a, b in zip(one_memories, two_memories):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for a, b in zip(one.trainable_variables, two.trainable_variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


@pytest.mark.slow  # XLA compilation, ~10 s on 2 cores
def test_xla_train_step_equals_eager():
    eager, xla = _model(), _model()
    step = tf.function(xla.train_step, jit_compile=True)
    for seed in range(3):
        batch = {k: tf.constant(v) for k, v in _batch(seed=seed, reset=[seed == 2, 0, 0, 0]).items()}
        a, b = eager.train_step(batch), step(batch)
        assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-4)
    for a, b in zip(eager.weights, xla.weights):  # weights and memories
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4)


GLOBAL_BATCH, STEPS = 4, 4


def _dataset_fn(ctx):
    rows = GLOBAL_BATCH // ctx.num_replicas_in_sync
    batches = [_batch(seed=s, reset=[s == 0] * ROWS) for s in range(STEPS)]
    elements = [{k: v[r * rows:(r + 1) * rows] for k, v in b.items()} for b in batches
                for r in range(ctx.num_replicas_in_sync)]
    return tf.data.Dataset.from_tensor_slices({k: np.stack([e[k] for e in elements]) for k in elements[0]}).repeat()


def _train(strategy, model_dir, steps):
    with strategy.scope():
        model = _model(rows=GLOBAL_BATCH // strategy.num_replicas_in_sync, dropout=0.2)
    logs = Trainer(model, strategy=strategy, model_dir=str(model_dir), dataset_fn=_dataset_fn,
                   global_batch_size=GLOBAL_BATCH, train_steps=steps, checkpoint_every=2, log_every=1,
                   verbose=False).train()
    memories = [np.concatenate([np.asarray(x) for x in strategy.experimental_local_results(v.value)])
                for v in model.memory.memories]
    return model, logs, memories


@pytest.mark.slow
@pytest.mark.distributed
def test_resume_equals_uninterrupted(tmp_path, mirrored):
    straight, straight_logs, straight_memories = _train(mirrored, tmp_path / "straight", STEPS)
    _train(mirrored, tmp_path / "resumed", STEPS // 2)
    resumed, resumed_logs, resumed_memories = _train(mirrored, tmp_path / "resumed", STEPS)
    assert straight_logs["loss"] == pytest.approx(resumed_logs["loss"], rel=1e-6)
    for a, b in zip(straight_memories, resumed_memories):
        np.testing.assert_allclose(a, b, atol=1e-6)
    for a, b in zip(straight.trainable_variables, resumed.trainable_variables):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
