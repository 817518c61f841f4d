"""State a model carries from one train step to the next, one copy per replica.

Transformer-XL/XLNet memories and stateful RNN hidden states live between steps. Under `tf.distribute`
each replica streams its own rows of the global batch, so each keeps its own state: nothing is averaged
or synchronised across replicas. Create such state with `carried_state` in the layer's `build` or
`__init__` (inside `strategy.scope()`, like every variable), sized for the *per-replica* batch, then read
and `assign` it in `call`/`train_step` like any variable:

    class RunningMean(keras.layers.Layer):
        def __init__(self, per_replica_batch, units, **kwargs):
            super().__init__(**kwargs)
            self.state = carried_state(self, "state", (per_replica_batch, units))

        def call(self, x):
            new = 0.5 * self.state + 0.5 * x
            self.state.assign(new)
            return new

`zoo.training.Trainer` finds these variables by themselves (see `is_carried_state`) and:
- saves every replica's copy with each checkpoint and gives each replica its own copy back on resume, so a
  resumed run equals an uninterrupted one; resuming on another replica count is refused (the per-replica
  shapes differ);
- runs evaluation from zero state and puts the training state back afterwards.
State made with `checkpoint=False` (e.g. evaluation-only memories, sized by an evaluation flag) is zeroed for
evaluation too, but never saved or restored (neither the trainer nor the layer's checkpoint holds it: keep it
out of the checkpoint graph, as `zoo.layers.segment_memory.SegmentMemory(checkpoint=False)` does), so its
shape may change between a run and its resume.
A plain `model.fit` or a direct `train_step` call sees an ordinary variable.
"""

import keras

_MARK = "_zoo_carried_state"
_CHECKPOINT = "_zoo_carried_state_checkpoint"


def carried_state(layer, name, shape, dtype="float32", initializer="zeros", checkpoint=True):
    """A non-trainable per-replica state variable of `layer`; assign it to an attribute of the layer
    (`self.memory = carried_state(self, "memory", ...)`), which tracks it as Keras tracks any weight.

    On several replicas it is a sync-on-read variable: each replica reads and writes its own copy, and a
    checkpoint saves all of them through the trainer (not only the replica-0 value Keras would save).
    `checkpoint=False`: the trainer zeroes it for evaluation but never saves or restores it (see above).
    """
    with keras.name_scope(layer.name, caller=layer):
        variable = keras.Variable(
            keras.initializers.get(initializer), shape=tuple(shape), dtype=dtype, trainable=False, name=name,
            synchronization="on_read", aggregation="only_first_replica",
        )
    setattr(variable, _MARK, True)
    setattr(variable, _CHECKPOINT, bool(checkpoint))
    return variable


def is_carried_state(variable):
    """True for variables made by `carried_state`."""
    return bool(getattr(variable, _MARK, False))


def is_checkpointed(variable):
    """True for carried state that checkpoints hold (made without `checkpoint=False`)."""
    return is_carried_state(variable) and bool(getattr(variable, _CHECKPOINT, True))
