"""The accuracy predictor of Progressive NAS: an ensemble of small Keras models over the cell encoding.

Each member embeds a cell's block tokens (inputs and ops with separate embeddings, as the paper) and is
either an LSTM over the block sequence ("lstm") or an MLP over the mean of per-block embeddings ("mlp");
a sigmoid gives the predicted score. All members live in ONE Keras model (one graph, one `fit`), each
trained with an L1 loss on its own 4/5 of the data (the paper's ensemble of folds); `predict` averages them.

Scores should lie in [0, 1] (the oracle scales validation accuracies to [0.05, 0.95] first: only the
ranking matters). Deterministic for a seed on CPU: seeded initializers, a numpy-shuffled order, no dropout.

Example:
    space = SearchSpace(ops=["identity", "sep_3x3", "max_pool_3x3"], max_blocks=2)
    cells = space.cells(1)
    model = Surrogate(space, num_models=5, kind="lstm", seed=0)
    model.fit(cells, [0.5] * len(cells))
    scores = model.predict(space.expand(cells[0]))          # numpy [n]
    state = model.get_state()                               # JSON-able; Surrogate.from_state(space, state)
"""

import json
import math

import keras
import numpy as np
from keras import ops

from zoo.errors import ZooError

KINDS = ("lstm", "mlp", "mixed")
_COMPILED = {}       # traced graphs per (space, config but seed), see Surrogate._compiled
_COMPILED_SEEDS = {}


def _l1_folds(y_true, y_pred):
    """Per-example L1 loss; y_true holds [targets (M) | fold weights (M)] for M members."""
    members = ops.shape(y_pred)[-1]
    target, weight = y_true[:, :members], y_true[:, members:]
    return ops.sum(ops.abs(y_pred - target) * weight, axis=-1) / ops.maximum(ops.sum(weight, axis=-1), 1.0)


class Surrogate:
    """An ensemble accuracy predictor over cells of a `SearchSpace`.

    Args:
        space: the `SearchSpace` (its `max_blocks` fixes the sequence length, its ops the vocabulary).
        num_models: ensemble size (paper: 5).
        kind: "lstm" (paper's main predictor), "mlp" (mean of block embeddings then an MLP) or "mixed"
            (members alternate LSTM and MLP).
        embed_dim: size of each token embedding (a block is 4 tokens, so 4 × embed_dim per block).
        hidden: LSTM units / MLP hidden width (paper: 100).
        learning_rate: Adam learning rate.
        steps: gradient steps per `fit` (batches of up to `batch_size`).
        seed: makes initialization and data order reproducible.
    """

    def __init__(self, space, num_models=5, kind="lstm", embed_dim=16, hidden=32, learning_rate=0.01,
                 steps=300, batch_size=64, seed=0):
        if kind not in KINDS:
            raise ZooError(f"unknown surrogate kind {kind!r}; use one of {', '.join(KINDS)}")
        if num_models < 1:
            raise ZooError(f"the surrogate needs at least one model, got num_models={num_models}")
        self.space = space
        self.config = dict(num_models=int(num_models), kind=kind, embed_dim=int(embed_dim), hidden=int(hidden),
                           learning_rate=float(learning_rate), steps=int(steps), batch_size=int(batch_size),
                           seed=int(seed))
        self.weights = None  # this surrogate's fitted values of the (shared, cached) model's variables
        self.num_examples = 0

    # --- model ------------------------------------------------------------------------------------------
    def _member(self, m, input_tokens, op_tokens, mask):
        c, seed = self.config, self.config["seed"] * 1000 + 17 * m
        init = lambda k: keras.initializers.GlorotUniform(seed=seed + k)  # noqa: E731
        blocks = self.space.max_blocks
        e_in = keras.layers.Embedding(self.space.input_vocab, c["embed_dim"], name=f"m{m}_input_embedding",
                                      embeddings_initializer=keras.initializers.RandomUniform(-0.1, 0.1, seed=seed))
        e_op = keras.layers.Embedding(self.space.op_vocab, c["embed_dim"], name=f"m{m}_op_embedding",
                                      embeddings_initializer=keras.initializers.RandomUniform(-0.1, 0.1,
                                                                                           seed=seed + 1))
        x = ops.concatenate([ops.reshape(e_in(input_tokens), (-1, blocks, 2 * c["embed_dim"])),
                             ops.reshape(e_op(op_tokens), (-1, blocks, 2 * c["embed_dim"]))], axis=-1)
        kind = c["kind"] if c["kind"] != "mixed" else ("lstm", "mlp")[m % 2]
        if kind == "lstm":
            h = keras.layers.LSTM(c["hidden"], kernel_initializer=init(2), name=f"m{m}_lstm", unroll=True,
                                  recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 3))(x, mask=mask)
        else:
            weights = ops.expand_dims(ops.cast(mask, "float32"), -1)
            mean = ops.sum(x * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)
            h = keras.layers.Dense(c["hidden"], activation="relu", kernel_initializer=init(2),
                                   name=f"m{m}_hidden")(mean)
        return keras.layers.Dense(1, activation="sigmoid", kernel_initializer=init(4), name=f"m{m}_score")(h)

    def _build(self):
        blocks = self.space.max_blocks
        input_tokens = keras.Input((blocks, 2), dtype="int32", name="input_tokens")
        op_tokens = keras.Input((blocks, 2), dtype="int32", name="op_tokens")
        mask = ops.greater(input_tokens[:, :, 0], 0)
        outputs = [self._member(m, input_tokens, op_tokens, mask) for m in range(self.config["num_models"])]
        scores = ops.concatenate(outputs, axis=-1) if len(outputs) > 1 else outputs[0]
        model = keras.Model([input_tokens, op_tokens], scores, name="pnas_surrogate")
        return model

    def _compiled(self):
        """(model, train_fn, predict_fn, initial weights) for this space and config, built and traced once
        per process: tracing the graphs costs seconds, a refit only resets the weights."""
        graph = {k: v for k, v in self.config.items() if k not in ("steps", "batch_size", "seed")}
        key = json.dumps([self.space.get_config(), graph], sort_keys=True)
        if key not in _COMPILED:
            import tensorflow as tf
            model = self._build()
            optimizer = keras.optimizers.Adam(self.config["learning_rate"])
            optimizer.build(model.trainable_variables)

            tokens = tf.TensorSpec([None, self.space.max_blocks, 2], tf.int32)
            members = self.config["num_models"]

            @tf.function(input_signature=[tokens, tokens, tf.TensorSpec([None, 2 * members], tf.float32),
                                          tf.TensorSpec([None, None], tf.int32)])
            def train(inputs, op_ids, targets, batches):
                loss = tf.constant(0.0)
                for step in tf.range(tf.shape(batches)[0]):
                    index = batches[step]
                    with tf.GradientTape() as tape:
                        pred = model([tf.gather(inputs, index), tf.gather(op_ids, index)], training=True)
                        loss = tf.reduce_mean(_l1_folds(tf.gather(targets, index), pred))
                    grads = tape.gradient(loss, model.trainable_variables)
                    optimizer.apply_gradients(zip(grads, model.trainable_variables))
                return loss

            @tf.function(input_signature=[tokens, tokens])
            def predict(inputs, op_ids):
                return model([inputs, op_ids], training=False)

            initial = ([v.numpy() for v in model.variables], [v.numpy() for v in optimizer.variables])
            _COMPILED[key] = (model, optimizer, train, predict, initial)
            _COMPILED_SEEDS[id(model)] = self.config["seed"]
        return _COMPILED[key]

    def _reset(self):
        model, optimizer, train, predict, (weights, slots) = self._compiled()
        if self.config["seed"] != _COMPILED_SEEDS.get(id(model)):
            weights = [v.numpy() for v in self._build().variables]  # this seed's initial values, untraced
        for v, value in zip(model.variables, weights):
            v.assign(value)
        for v, value in zip(optimizer.variables, slots):
            v.assign(value)
        return model, train, predict

    def _train(self, inputs, op_ids, targets, batches):
        import tensorflow as tf
        model, train, _ = self._reset()
        self.last_loss = float(train(tf.constant(inputs), tf.constant(op_ids), tf.constant(targets),
                                     tf.constant(batches, tf.int32)))
        self.weights = [v.numpy() for v in model.variables]

    # --- API --------------------------------------------------------------------------------------------
    def fit(self, cells, scores):
        """Trains a fresh ensemble on `cells` (canonical tuples) and their `scores` (in [0, 1]); returns self."""
        scores = np.asarray(scores, np.float32).reshape(-1)
        if len(cells) != len(scores) or not len(cells):
            raise ZooError(f"the surrogate needs as many scores as cells (>0), got {len(cells)} and {len(scores)}")
        c, members = self.config, self.config["num_models"]
        rng = np.random.default_rng(c["seed"])
        order = rng.permutation(len(cells))
        inputs, op_ids = self.space.encode([cells[i] for i in order])
        folds = np.arange(len(cells)) % members
        weights = np.ones((len(cells), members), np.float32)
        if members > 1 and len(cells) >= 2 * members:
            weights[folds[:, None] == np.arange(members)[None, :]] = 0.0
        targets = np.concatenate([np.repeat(scores[order][:, None], members, axis=1), weights], axis=1)
        batch = min(c["batch_size"], len(cells))
        # One epoch over the data repeated in fresh random orders: one Keras `fit` call, no per-epoch cost.
        repeats = max(1, math.ceil(c["steps"] * batch / len(cells)))
        index = np.concatenate([rng.permutation(len(cells)) for _ in range(repeats)])[:c["steps"] * batch]
        self._train(inputs, op_ids, targets, index.reshape(c["steps"], batch))
        self.num_examples = len(cells)
        return self

    def predict_members(self, cells):
        """Scores [n, num_models] of each ensemble member."""
        if self.weights is None:
            raise ZooError("the surrogate is not fitted yet; call fit(cells, scores) first")
        if not len(cells):
            return np.zeros((0, self.config["num_models"]), np.float32)
        model, _, _, predict, _ = self._compiled()
        for v, value in zip(model.variables, self.weights):
            v.assign(value)
        inputs, op_ids = self.space.encode(cells)
        out = [np.asarray(predict(inputs[i:i + 8192], op_ids[i:i + 8192])) for i in range(0, len(cells), 8192)]
        return np.concatenate(out).reshape(len(cells), -1).astype(np.float32)

    def predict(self, cells):
        """Mean ensemble score of each cell (numpy [n])."""
        return self.predict_members(cells).mean(axis=1)

    def get_state(self):
        """A JSON-able dict: config, number of training examples and the weights as nested lists."""
        weights = None if self.weights is None else [w.tolist() for w in self.weights]
        return {"config": dict(self.config), "num_examples": self.num_examples, "weights": weights}

    def set_state(self, state):
        """Restores `get_state()`'s output (the same space and config)."""
        self.config = dict(state["config"])
        self.num_examples = state.get("num_examples", 0)
        self.weights = None
        if state.get("weights") is not None:
            self.weights = [np.asarray(w, np.float32) for w in state["weights"]]
            model = self._compiled()[0]
            if [tuple(v.shape) for v in model.variables] != [w.shape for w in self.weights]:
                raise ZooError("the saved surrogate does not match this search space or surrogate config")
        return self

    @classmethod
    def from_state(cls, space, state):
        return cls(space, **state["config"]).set_state(state)
