"""The trainer's side of carried per-replica state (see `zoo.layers.carried_state`).

Each replica keeps its own copy of a carried-state variable. A checkpoint of the model alone would save
replica 0's copy only, so before every save the copies are gathered, in replica order, into one mirrored
variable per state ("the global copy", [replicas · per-replica rows, ...]) that the checkpoint holds; after a
restore each replica takes its own rows back. Replica order is the order of `replica_id_in_sync_group`,
which is also the order in which `distribute_datasets_from_function` hands out per-replica batches, so
the global copy lists the rows of the global batch in order. State made with `checkpoint=False` has no
global copy: it is only zeroed (`reset`), never saved or restored.
"""

import tensorflow as tf

from zoo.errors import ZooError
from zoo.layers.carried_state import is_carried_state, is_checkpointed

REPLICAS_KEY = "carried_state_replicas"


class CarriedState:
    """Gathers, scatters and resets a model's carried-state variables across replicas."""

    def __init__(self, model, strategy):
        self.strategy = strategy
        self.all_variables = [v for v in model.variables if is_carried_state(v)]  # reset for evaluation
        self.variables = [v for v in self.all_variables if is_checkpointed(v)]  # gathered, saved, scattered
        replicas = strategy.num_replicas_in_sync
        self.copies = []
        with strategy.scope():
            for v in self.variables:
                if not v.shape:
                    raise ZooError(f"carried state {v.path} must have a batch axis first (shape (batch, ...))")
                self.copies.append(tf.Variable(
                    tf.zeros((replicas * v.shape[0],) + tuple(v.shape[1:]), v.dtype), trainable=False,
                    aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA, name=f"global_{v.name}"))
            self.replicas = tf.Variable(replicas, dtype=tf.int64, trainable=False,
                                        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA, name=REPLICAS_KEY)
        self._functions = {}

    def __bool__(self):
        return bool(self.all_variables)

    def checkpoint_items(self):
        """What a `tf.train.Checkpoint` must hold besides the model."""
        return {"carried_state": self.copies, REPLICAS_KEY: self.replicas} if self.variables else {}

    def check_layout(self, checkpoint_path):
        """Refuses a checkpoint whose carried state was saved on another replica count."""
        if not self.variables:
            return
        names = [name for name, _ in tf.train.list_variables(checkpoint_path) if name.startswith(REPLICAS_KEY)]
        if not names:
            return
        saved = int(tf.train.load_variable(checkpoint_path, names[0]))
        replicas = self.strategy.num_replicas_in_sync
        if saved != replicas:
            raise ZooError(
                f"{checkpoint_path} carries per-replica state saved on {saved} replica(s), but this run has "
                f"{replicas}; resume with the same --strategy and device count (the per-replica batch differs), "
                "or start a new --model_dir")

    def gather(self):
        """Copies every replica's state into the global copies (all replicas and workers take part)."""
        self._run_on_replicas(self._gather_replica)

    def scatter(self):
        """Gives every replica its rows of the global copies."""
        self._run_on_replicas(self._scatter_replica)

    def reset(self):
        """Sets every replica's state to zero."""
        self._run_on_replicas(self._reset_replica)

    def _run_on_replicas(self, replica_fn):
        if not self:
            return
        name = replica_fn.__name__
        if name not in self._functions:  # traced once each
            self._functions[name] = tf.function(lambda: self.strategy.run(replica_fn))
        self._functions[name]()

    def _gather_replica(self):
        ctx = tf.distribute.get_replica_context()
        for v, copy in zip(self.variables, self.copies):
            copy.assign(ctx.all_gather(tf.convert_to_tensor(v), axis=0))

    def _scatter_replica(self):
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        for v, copy in zip(self.variables, self.copies):
            rows = v.shape[0]
            v.assign(tf.convert_to_tensor(copy)[replica * rows:(replica + 1) * rows])

    def _reset_replica(self):
        for v in self.all_variables:
            v.assign(tf.zeros(v.shape, v.dtype))
