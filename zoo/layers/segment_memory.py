"""Segment-level recurrence memories (Transformer-XL's `mems`, XLNet's `mems`), written once for both models:
`cache_memories` (the next memory of every layer) and `SegmentMemory` (the per-replica carried variables that
hold it between train or evaluation steps).

Memories have a fixed number of slots M (static shapes); `memory_length` [B] counts the real ones, which are
right-aligned (the last memory_length slots), so zero slots are masked out until filled and a row with length 0
starts a new stream.

    memory = SegmentMemory(model, num_layers=2, rows=4, slots=6, hidden_dim=16)   # in the model's __init__
    memories, length = memory.read(rows=4, reset=batch["reset"])                  # constants, reset rows dropped
    layer_inputs = ...                                                             # h before each layer [4, T, 16]
    new, new_length = cache_memories(memories, layer_inputs, mem_len=6, memory_length=length)
    memory.write(new, new_length)                                                  # into the first rows
"""

import keras
import tensorflow as tf

from zoo.layers.carried_state import carried_state


def cache_memories(old, new_inputs, *, mem_len, reuse_len=None, memory_length=None, pad=False, dtype=None):
    """Per layer, the last `mem_len` positions of concat(old, input[:, :reuse_len]) without gradient (the
    originals' `_update_mems` / `_cache_mem`).

    Args:
        old: list of [B, M, H] memories, or None (no memory yet).
        new_inputs: list (one per layer) of [B, T, H]: the input of each layer for the current segment.
        mem_len: slots kept (0: none).
        reuse_len: leading positions of the segment cached (XLNet's reuse_len); 0 or None: all T.
        memory_length: int [B] real slots of `old` (None: all M; 0 without `old`).
        pad: left-pad with zeros to exactly `mem_len` slots (a static shape, e.g. for carried variables);
            else [B, min(M + reused, mem_len), H].
        dtype: the memories' dtype (None: old's, else the inputs').

    Returns:
        (memories: list of [B, S, H], memory_length int32 [B] = min(memory_length + reused, mem_len)).
    """
    new = []
    for i, current in enumerate(new_inputs):
        if reuse_len:
            current = current[:, :reuse_len]
        kind = dtype or (old[i].dtype if old is not None else current.dtype)
        current = tf.cast(current, kind)
        if old is not None:
            current = tf.concat([tf.cast(old[i], kind), current], axis=1)
        if pad:
            current = tf.pad(current, [[0, 0], [tf.maximum(mem_len - tf.shape(current)[1], 0), 0], [0, 0]])
        kept = tf.stop_gradient(current[:, tf.maximum(tf.shape(current)[1] - mem_len, 0):])
        if pad:
            kept.set_shape([None, mem_len, None])
        new.append(kept)
    steps = tf.shape(new_inputs[0])[1]
    added = tf.minimum(reuse_len, steps) if reuse_len else steps
    if memory_length is None:
        memory_length = tf.fill([tf.shape(new_inputs[0])[0]], 0 if old is None else tf.shape(old[0])[1])
    return new, tf.minimum(tf.cast(memory_length, tf.int32) + added, mem_len)


class SegmentMemory(keras.layers.Layer):
    """One model's carried memories: `memories` (num_layers x [rows, slots, hidden_dim] float32) and `length`
    ([rows] float32 count of real, right-aligned slots), `carried_state` variables (one copy per replica).

    `checkpoint=False` (e.g. evaluation memories sized for another protocol): the variables are zeroed by
    `zoo.training.Trainer` for evaluation like any carried state, but neither this layer nor the trainer saves
    or restores them, so their size may change between runs. With `slots=0` there is no memory: `read`
    returns (None, None) and `write` does nothing.

    Args:
        layer: the model that owns the memory (the variables are named under it).
        num_layers, rows, slots, hidden_dim: the shape (rows: the per-replica batch).
        checkpoint: whether checkpoints hold the variables.
        name: this layer's name (the variables' scope).
    """

    def __init__(self, layer, *, num_layers, rows, slots, hidden_dim, checkpoint=True, name="memory", **kwargs):
        super().__init__(name=name, dtype="float32", **kwargs)
        self.rows, self.slots, self.checkpoint = int(rows), int(slots), bool(checkpoint)
        state = dict(checkpoint=self.checkpoint)
        self.memories = [carried_state(self, f"memory_{i}", (self.rows, self.slots, hidden_dim), **state)
                         for i in range(num_layers)] if self.slots else []
        self.length = carried_state(self, "memory_length", (self.rows,), **state) if self.slots else None
        self.built = True

    def read(self, rows, reset=None):
        """(memories: the first `rows` rows, as constants, zeroed where `reset` [rows] is 1; memory_length
        int32 [rows], 0 where reset), or (None, None) without memory."""
        if not self.slots:
            return None, None
        memories = [tf.convert_to_tensor(v)[:rows] for v in self.memories]
        length = tf.convert_to_tensor(self.length)[:rows]
        if reset is not None:
            keep = 1.0 - tf.cast(reset, tf.float32)
            memories = [m * tf.cast(keep, m.dtype)[:, None, None] for m in memories]
            length = length * keep
        return [tf.stop_gradient(m) for m in memories], tf.cast(length, tf.int32)

    def write(self, memories, length):
        """Stores memories ([r, slots, H] each, r <= rows) and their length [r] into the first r rows."""
        if not self.slots:
            return
        for variable, value in zip(self.memories + [self.length], list(memories) + [length]):
            old = tf.convert_to_tensor(variable)
            variable.assign(tf.concat([tf.cast(value, variable.dtype), old[tf.shape(value)[0]:]], axis=0))

    def reset(self):
        """Zeroes every memory (this replica's copy)."""
        for variable in self.memories + ([self.length] if self.slots else []):
            variable.assign(tf.zeros(variable.shape, variable.dtype))

    def _trackable_children(self, save_type="checkpoint", **kwargs):
        if not self.checkpoint and save_type == "checkpoint":
            return {}
        return super()._trackable_children(save_type, **kwargs)

    def save_own_variables(self, store):
        if self.checkpoint:
            super().save_own_variables(store)

    def load_own_variables(self, store):
        if self.checkpoint:
            super().load_own_variables(store)
