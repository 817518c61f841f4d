"""A tiny model that carries per-replica state between train steps, for the trainer's state contract tests.

Each row of the batch is a stream: the model predicts y from x and a memory of that stream's past x
(memory ← 0.5·memory + x), so a replica that got another replica's memory, an averaged memory or a
reset memory would compute different losses and weights.
"""

import keras
import numpy as np
import tensorflow as tf

from zoo.layers.carried_state import carried_state
from zoo.ops import global_step, weighted_mean

FEATURES = 2
ROWS = 96


def stream_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(ROWS, FEATURES)).astype("float32")
    y = (x @ np.array([1.0, -1.0], "float32") + 0.3 * np.roll(x[:, 0], 8)).astype("float32")
    return x, y


class StreamModel(keras.Model):
    """Linear regression on [x, memory]; `memory` is carried state, `(per_replica_batch, FEATURES)`."""

    def __init__(self, per_replica_batch, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(1, kernel_initializer="ones")
        self.dense.build((None, 2 * FEATURES))
        self.memory = carried_state(self, "memory", (per_replica_batch, FEATURES))
        self.eval_loss = keras.metrics.Mean(name="loss")

    def call(self, x):
        memory = tf.convert_to_tensor(self.memory)[:tf.shape(x)[0]]  # evaluation batches may be smaller
        return self.dense(tf.concat([x, memory], axis=1))[:, 0]

    def train_step(self, data):
        x, y = data
        with tf.GradientTape() as tape:
            share, total = weighted_mean(tf.square(self(x) - y))
        grads = tape.gradient(share, self.trainable_variables)
        self.optimizer.apply_gradients(zip(grads, self.trainable_variables))
        self.memory.assign(0.5 * self.memory + x)
        return {"loss": total, "step": tf.cast(global_step(self), tf.float32)}

    def test_step(self, data):
        x, y = data
        self.eval_loss.update_state(tf.square(self(x) - y))
        self.memory.assign(self.memory * 0.0)  # evaluation's state must not leak into training
        return {"loss": self.eval_loss.result()}


def stream_dataset_fn(global_batch, seed=0):
    """Per-replica batches in row order: replica r of a step gets rows [r·b, (r+1)·b) of the global batch."""
    x, y = stream_data(seed)

    def fn(ctx):
        ds = tf.data.Dataset.from_tensor_slices((x, y)).repeat()
        ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
        return ds.batch(ctx.get_per_replica_batch_size(global_batch), drop_remainder=True)

    return fn
