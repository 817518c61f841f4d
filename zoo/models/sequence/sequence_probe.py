"""A small sequence model for the long-term-dependency tasks of `zoo.data.synthetic_sequences`: a simple RNN,
LSTM, GRU or Transformer encoder at a given parameter budget, and the gradient norm through time.

    hidden, ffn = solve_hidden_size("adding", "lstm", param_budget=4000)       # 30, None
    probe = SequenceProbe(task="adding", cell="lstm", hidden_size=hidden)
    probe.compile(optimizer=keras.optimizers.Adam(1e-2))
    x, y = adding_problem(np.arange(8), length=50)
    norms = gradient_norms(probe, x, y)                                        # ||dL/dx_t||, shape (50,)
"""

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from keras import ops

from zoo.errors import ZooError
from zoo.layers import Configurable, TransformerEncoder
from zoo.ops import apply_gradients, weighted_mean

CELLS = ("simple_rnn", "lstm", "gru", "transformer")
TASKS = ("adding", "copy")


def probe_parameters(task, cell, hidden_size, num_symbols=8, ffn_size=None):
    """The trainable parameter count of `SequenceProbe(task, cell, hidden_size, ...)`, in closed form."""
    h = hidden_size
    vocabulary = num_symbols + 2
    embedding, inputs = (vocabulary * h, h) if task == "copy" else (0, 2)
    head = h + 1 if task == "adding" else (h + 1) * vocabulary
    if cell == "simple_rnn":
        core = inputs * h + h * h + h
    elif cell == "lstm":
        core = 4 * (inputs * h + h * h + h)
    elif cell == "gru":  # Keras' reset_after=True: two bias vectors
        core = 3 * (inputs * h + h * h + 2 * h)
    elif cell == "transformer":
        f = 2 * h if ffn_size is None else ffn_size
        projection = (inputs + 1) * h if task == "adding" else 0
        core = projection + 4 * (h * h + h) + 4 * h + (h + 1) * f + (f + 1) * h
    else:
        raise ZooError(f"unknown cell {cell!r}; choose one of: {', '.join(CELLS)}")
    return embedding + core + head


def solve_hidden_size(task, cell, param_budget, num_symbols=8):
    """`(hidden_size, ffn_size)` that bring `cell`'s count closest to `param_budget`. RNN cells: the hidden
    size with the nearest count (`ffn_size` None); the Transformer: hidden size with a feed-forward width of
    about 2x, then the feed-forward width that fine-tunes the count (at least 1)."""
    if cell not in CELLS:
        raise ZooError(f"unknown cell {cell!r}; choose one of: {', '.join(CELLS)}")
    if probe_parameters(task, cell, 1, num_symbols, ffn_size=1) > param_budget:
        raise ZooError(f"--param_budget={param_budget} is too small for a {cell} on the {task} task; raise it")
    best, h = 1, 1
    while h <= 4096:
        count = probe_parameters(task, cell, h, num_symbols)
        if abs(count - param_budget) < abs(probe_parameters(task, cell, best, num_symbols) - param_budget):
            best = h
        if count > param_budget:
            break
        h += 1
    if cell != "transformer":
        return best, None
    rest = probe_parameters(task, cell, best, num_symbols, ffn_size=0)
    ffn = max(1, round((param_budget - rest) / (2 * best + 1)))
    return best, ffn


@keras.saving.register_keras_serializable(package="zoo")
class SequenceProbe(Configurable, keras.Model):
    """One recurrent or attention layer between per-step inputs and a task head.

    Adding task: inputs [B, T, 2] float -> a prediction [B, 1] from the last step (the RNNs' final state, the
    Transformer's last position). Copy task: tokens [B, T] int (vocabulary `num_symbols` + 2) -> an embedding
    of `hidden_size` -> per-step logits [B, T, num_symbols + 2]. The Transformer is one post-LN
    `zoo.layers.TransformerEncoder` block (no dropout) after a dense projection (adding) or the embedding
    (copy), plus keras-hub's fixed `SinePositionEncoding` (no parameters, so the count does not depend on T).

    `embed(inputs)` gives the per-step vectors x_t the sequence layer reads (the raw inputs for adding, the
    embeddings for copy) and `call_embedded(x)` the rest, so `gradient_norms` can take dL/dx_t.

    Training (`train_step`, for `zoo.training.Trainer` and `fit`): adding, the MSE; copy, the cross-entropy on
    the weighted (copied) steps; logged as `loss` plus `mse` or `accuracy` (on the weighted steps). Batches are
    `(inputs, targets, weights)`.

    Args:
        task: "adding" or "copy".
        cell: "simple_rnn", "lstm", "gru" or "transformer".
        hidden_size: state (or model) width.
        num_symbols: copy task symbols (the vocabulary adds blank and delimiter).
        num_heads: attention heads of the Transformer; `hidden_size` must divide by it.
        ffn_size: the Transformer's feed-forward width (default 2 * hidden_size).
        clip_norm: clip the global gradient norm to this in `train_step` (None: off).
    """

    def __init__(self, task="adding", cell="lstm", hidden_size=32, num_symbols=8, num_heads=1, ffn_size=None,
                 clip_norm=None, dtype=None, **kwargs):
        if task not in TASKS:
            raise ZooError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
        if cell not in CELLS:
            raise ZooError(f"unknown cell {cell!r}; choose one of: {', '.join(CELLS)}")
        if cell == "transformer" and hidden_size % num_heads:
            raise ZooError(f"hidden_size={hidden_size} must divide by num_heads={num_heads}")
        super().__init__(dtype=dtype, **kwargs)
        self.task, self.cell, self.hidden_size, self.num_symbols = task, cell, hidden_size, num_symbols
        self.num_heads, self.ffn_size, self.clip_norm = num_heads, ffn_size, clip_norm
        vocabulary = num_symbols + 2
        sequences = task == "copy"
        common = dict(dtype=dtype)
        self.embedding = (keras.layers.Embedding(vocabulary, hidden_size, name="embedding", **common)
                          if task == "copy" else None)
        self.projection = (keras.layers.Dense(hidden_size, name="projection", **common)
                           if cell == "transformer" and task == "adding" else None)
        self.position_encoding = (keras_hub.layers.SinePositionEncoding(name="position_encoding", **common)
                                  if cell == "transformer" else None)
        if cell == "transformer":
            self.sequence_layer = TransformerEncoder(num_heads, ffn_size or 2 * hidden_size, activation="relu",
                                                     name="encoder", **common)
        else:
            layer = {"simple_rnn": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}[cell]
            self.sequence_layer = layer(hidden_size, return_sequences=sequences, name=cell, **common)
        self.head = keras.layers.Dense(1 if task == "adding" else vocabulary, dtype="float32", name="head")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.metric_tracker = keras.metrics.Mean(name="mse" if task == "adding" else "accuracy")

    @property
    def metric_name(self):
        """The reported metric: "mse" (adding, lower is better) or "accuracy" (copy, on the copied part)."""
        return self.metric_tracker.name

    def embed(self, inputs):
        """The per-step vectors x_t the sequence layer reads: [B, T, 2] (adding) or [B, T, hidden] (copy)."""
        if self.embedding is not None:
            return self.embedding(inputs)
        return ops.cast(inputs, self.compute_dtype)

    def call_embedded(self, x, training=None):
        """The model's output from the per-step vectors `x` (see `embed`)."""
        if self.cell == "transformer":
            if self.projection is not None:
                x = self.projection(x)
            x = x + self.position_encoding(x)
            x = self.sequence_layer(x, training=training)
            if self.task == "adding":
                x = x[:, -1]
        else:
            x = self.sequence_layer(x, training=training)
        return self.head(x)

    def call(self, inputs, training=None):
        return self.call_embedded(self.embed(inputs), training=training)

    def example_losses(self, outputs, targets):
        """Per-element losses and metric values: adding, (squared error, squared error) [B, 1]; copy,
        (cross-entropy, correct) [B, T]."""
        outputs = ops.cast(outputs, "float32")
        if self.task == "adding":
            error = ops.square(outputs - ops.cast(targets, "float32"))
            return error, error
        losses = keras.losses.sparse_categorical_crossentropy(targets, outputs, from_logits=True)
        correct = ops.cast(ops.equal(ops.cast(ops.argmax(outputs, axis=-1), "int32"), ops.cast(targets, "int32")),
                           "float32")
        return losses, correct

    def train_step(self, data):
        inputs, targets, weights = data
        with tf.GradientTape() as tape:
            losses, values = self.example_losses(self(inputs, training=True), targets)
            share, loss = weighted_mean(losses, weights)
        _, metric = weighted_mean(values, weights)
        variables = self.trainable_variables
        apply_gradients(self.optimizer, tape.gradient(share, variables), variables, clip_norm=self.clip_norm)
        return {"loss": loss, self.metric_name: metric}

    def test_step(self, data):
        inputs, targets, weights = data
        losses, values = self.example_losses(self(inputs, training=False), targets)
        self.loss_tracker.update_state(losses, sample_weight=weights)
        self.metric_tracker.update_state(values, sample_weight=weights)
        return {"loss": self.loss_tracker.result(), self.metric_name: self.metric_tracker.result()}


def gradient_norms(model, inputs, targets, weights=None):
    """||dL/dx_t|| for every step t (numpy [T]): the norm over the batch and features of the gradient of the
    batch's weighted mean loss L with respect to the per-step vectors x_t = `model.embed(inputs)`."""
    inputs = tf.convert_to_tensor(inputs)
    targets = tf.convert_to_tensor(targets)
    x = tf.convert_to_tensor(model.embed(inputs))
    with tf.GradientTape() as tape:
        tape.watch(x)
        losses, _ = model.example_losses(model.call_embedded(x, training=False), targets)
        weights = tf.ones_like(losses) if weights is None else tf.cast(weights, losses.dtype)
        loss = tf.reduce_sum(losses * weights) / tf.maximum(tf.reduce_sum(weights), 1e-5)
    grad = tf.cast(tape.gradient(loss, x), tf.float32)
    return np.sqrt(np.sum(np.square(grad.numpy()), axis=(0, 2)))
