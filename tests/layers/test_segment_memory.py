"""zoo.layers.segment_memory: `cache_memories` == the originals' cache (numpy), and `SegmentMemory` reads, writes,
resets, and keeps `checkpoint=False` memories out of checkpoints while the Trainer still zeroes them."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.layers.carried_state import is_carried_state, is_checkpointed
from zoo.layers.segment_memory import SegmentMemory, cache_memories
from zoo.training.carried_state import CarriedState

H = 3


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize("reuse_len", [0, 2])
def test_cache_memories_keeps_the_last_mem_len_of_old_and_reused_inputs(reuse_len):
    old = [_rand(2, 3, H, seed=i) for i in range(2)]
    inputs = [_rand(2, 4, H, seed=10 + i) for i in range(2)]
    new, length = cache_memories(old, inputs, mem_len=4, reuse_len=reuse_len, memory_length=np.array([1, 3]))
    reused = 4 if not reuse_len else reuse_len
    for o, x, n in zip(old, inputs, new):
        np.testing.assert_array_equal(np.asarray(n), np.concatenate([o, x[:, :reused]], 1)[:, -4:])
    np.testing.assert_array_equal(np.asarray(length), np.minimum(np.array([1, 3]) + reused, 4))
    _, all_valid = cache_memories(old, inputs, mem_len=9, reuse_len=reuse_len)  # default: old fully valid
    np.testing.assert_array_equal(np.asarray(all_valid), [3 + reused] * 2)


def test_cache_memories_pads_to_mem_len_and_casts():
    inputs = [tf.constant(_rand(2, 2, H), tf.float16)]
    new, length = cache_memories(None, inputs, mem_len=4, pad=True, dtype=tf.float32)
    assert new[0].shape == (2, 4, H) and new[0].dtype == tf.float32
    np.testing.assert_array_equal(np.asarray(new[0])[:, :2], 0.0)
    np.testing.assert_allclose(np.asarray(new[0])[:, 2:], np.asarray(inputs[0], "float32"))
    np.testing.assert_array_equal(np.asarray(length), [2, 2])
    unpadded, _ = cache_memories(None, inputs, mem_len=4)
    assert unpadded[0].shape == (2, 2, H) and unpadded[0].dtype == tf.float16
    empty, zero = cache_memories(None, inputs, mem_len=0, pad=True)
    assert empty[0].shape == (2, 0, H) and not np.asarray(zero).any()


class _Owner(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.train_memory = SegmentMemory(self, num_layers=2, rows=3, slots=4, hidden_dim=H, name="memory")
        self.eval_memory = SegmentMemory(self, num_layers=2, rows=3, slots=5, hidden_dim=H, checkpoint=False,
                                         name="eval_memory")


def test_read_write_reset():
    memory = _Owner().train_memory
    values = [_rand(2, 4, H, seed=i) for i in range(2)]
    memory.write(values, np.array([4, 2]))  # 2 of 3 rows
    memories, length = memory.read(2, reset=np.array([0.0, 1.0]))
    np.testing.assert_array_equal(np.asarray(memories[0])[0], values[0][0])
    assert not np.asarray(memories[0])[1].any() and np.asarray(length).tolist() == [4, 0]
    assert np.asarray(memory.length).tolist() == [4, 2, 0]  # read does not change the state
    memory.reset()
    assert not any(np.asarray(v).any() for v in memory.weights)
    assert SegmentMemory(_Owner(), num_layers=2, rows=3, slots=0, hidden_dim=H).read(3) == (None, None)


def test_unsaved_memory_is_outside_checkpoints_but_reset_by_the_trainer(tmp_path):
    owner = _Owner()
    assert all(is_carried_state(v) for v in owner.weights)
    assert [v.path for v in owner.weights if not is_checkpointed(v)] == [
        "eval_memory/memory_0", "eval_memory/memory_1", "eval_memory/memory_length"]
    path = tf.train.Checkpoint(model=owner).write(str(tmp_path / "ckpt"))
    assert not [n for n, _ in tf.train.list_variables(path) if "eval" in n]
    carried = CarriedState(owner, tf.distribute.get_strategy())
    assert carried.variables == [v for v in owner.weights if is_checkpointed(v)]
    assert [tuple(c.shape) for c in carried.copies] == [(3, 4, H), (3, 4, H), (3,)]
    for v in owner.weights:
        v.assign(tf.ones(v.shape))
    carried.reset()
    assert not any(np.asarray(v).any() for v in owner.weights)
