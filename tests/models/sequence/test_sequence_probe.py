"""SequenceProbe: equal parameter budgets, config round trip, gradient norms through time, training step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.data.synthetic_sequences import adding_problem, copy_task
from zoo.errors import ZooError
from zoo.models.sequence.sequence_probe import (CELLS, SequenceProbe, gradient_norms, probe_parameters,
                                                solve_hidden_size)


def _inputs(task, length=6, n=3):
    if task == "adding":
        x, y = adding_problem(np.arange(n), length, seed=0)
        return x, y, np.ones_like(y)
    return copy_task(np.arange(n), length, seed=0, num_symbols=4, copy_length=2)


@pytest.mark.parametrize("task", ["adding", "copy"])
@pytest.mark.parametrize("budget", [4000, 10000])
def test_counts_within_a_few_percent_of_the_budget(task, budget):
    counts = {}
    for cell in CELLS:
        hidden, ffn = solve_hidden_size(task, cell, budget, num_symbols=4)
        counts[cell] = probe_parameters(task, cell, hidden, num_symbols=4, ffn_size=ffn)
        assert abs(counts[cell] - budget) <= 0.05 * budget, (cell, counts[cell])
    if budget == 4000:  # the closed form is Keras' own count
        for cell in CELLS if task == "adding" else ("simple_rnn", "transformer"):
            hidden, ffn = solve_hidden_size(task, cell, budget, num_symbols=4)
            model = SequenceProbe(task=task, cell=cell, hidden_size=hidden, ffn_size=ffn, num_symbols=4)
            model(_inputs(task)[0])
            assert model.count_params() == counts[cell], cell


def test_budget_too_small_and_bad_cell_are_zoo_errors():
    with pytest.raises(ZooError, match="too small"):
        solve_hidden_size("copy", "lstm", 20)
    with pytest.raises(ZooError, match="unknown cell"):
        SequenceProbe(cell="rnn")


def test_config_round_trip_and_outputs():
    model = SequenceProbe(task="copy", cell="transformer", hidden_size=8, num_symbols=4, num_heads=2, ffn_size=5,
                          clip_norm=1.0)
    tokens = _inputs("copy")[0]
    out = model(tokens)
    assert out.shape == (3, tokens.shape[1], 6)
    clone = SequenceProbe.from_config(model.get_config())
    clone(tokens)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone(tokens), out, atol=1e-6)
    assert clone.ffn_size == 5 and clone.num_heads == 2 and clone.clip_norm == 1.0
    adding = SequenceProbe(task="adding", cell="gru", hidden_size=5)
    assert adding(_inputs("adding")[0]).shape == (3, 1)


@pytest.mark.parametrize("task,cell", [("adding", "simple_rnn"), ("copy", "lstm"), ("adding", "transformer")])
def test_gradient_norms_equal_a_brute_force_tape(task, cell):
    keras.utils.set_random_seed(1)
    model = SequenceProbe(task=task, cell=cell, hidden_size=6, num_symbols=4)
    inputs, targets, weights = _inputs(task)
    model(inputs)
    got = gradient_norms(model, inputs, targets, weights)
    # Brute force: every step's input vectors a variable of their own, the loss written out by hand.
    x = model.embed(tf.convert_to_tensor(inputs))
    steps = [tf.Variable(x[:, t]) for t in range(x.shape[1])]
    with tf.GradientTape() as tape:
        out = model.call_embedded(tf.stack(steps, axis=1))
        if task == "adding":
            loss = tf.reduce_mean(tf.square(out - targets))
        else:
            ce = tf.keras.losses.sparse_categorical_crossentropy(targets, out, from_logits=True)
            loss = tf.reduce_sum(ce * weights) / tf.reduce_sum(weights)
    expected = [float(tf.norm(g)) for g in tape.gradient(loss, steps)]
    assert got.shape == (inputs.shape[1],)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)


def test_train_step_lowers_the_loss_and_test_step_reports_weighted_metrics():
    keras.utils.set_random_seed(0)
    model = SequenceProbe(task="copy", cell="simple_rnn", hidden_size=8, num_symbols=4, clip_norm=1.0)
    batch = tuple(tf.constant(a) for a in _inputs("copy", length=3, n=16))
    model(batch[0])
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    step = model.train_step  # eager: cheaper than tracing for a few steps
    first = float(step(batch)["loss"])
    for _ in range(8):
        logs = step(batch)
    assert float(logs["loss"]) < first and set(logs) == {"loss", "accuracy"}
    results = model.test_step(batch)
    out = model(batch[0])
    correct = (np.argmax(out, -1) == batch[1].numpy())[:, -2:]
    assert float(results["accuracy"]) == pytest.approx(correct.mean(), abs=1e-6)


def test_transformer_adds_the_sinusoidal_position_table():
    model = SequenceProbe(task="copy", cell="transformer", hidden_size=6, num_symbols=4)
    table = np.asarray(model.position_encoding(np.zeros((1, 5, 6), np.float32)))[0]
    positions, features = np.arange(5)[:, None], np.arange(6)[None, :]
    angles = positions / 10000.0 ** (2 * (features // 2) / 6)
    np.testing.assert_allclose(table, np.where(features % 2, np.cos(angles), np.sin(angles)), atol=1e-6)
