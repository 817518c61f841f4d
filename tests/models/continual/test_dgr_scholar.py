"""Scholar training steps: which weights move, replay, coupled weight decay, XLA, and replica equivalence."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
import zoo.ops
from zoo.data import digits
from zoo.errors import ZooError

TINY = dict(preset="digits", generator=dict(channels=4, noise_dim=8), critic=dict(channels=4),
            solver=dict(depth=4, channels=16))


def _scholar(previous=None, with_generator=True, sgd=False, **kwargs):
    replay = dict(replay_generator=previous.generator, replay_solver=previous.solver) if previous else {}
    scholar = zoo.create_model("dgr", with_generator=with_generator, **TINY, **replay, **kwargs)
    if sgd:  # linear in the gradients, so equal weights mean equal gradients (Adam's first step is sign-like)
        scholar.compile(*[keras.optimizers.SGD(0.1) for _ in range(3 if with_generator else 1)])
    else:
        scholar.compile(learning_rate=1e-3)
    scholar.build_optimizer_state()
    return scholar


def _batch(size=8, seed=0, replay=False):
    rng = np.random.default_rng(seed)
    batch = {"image": rng.uniform(size=(size, 8, 8, 1)).astype("float32"),
             "label": rng.integers(0, 10, size).astype("int32")}
    if replay:
        batch.update(replay_image=rng.uniform(size=(size, 8, 8, 1)).astype("float32"),
                     replay_label=rng.integers(0, 10, size).astype("int32"))
    return {k: tf.constant(v) for k, v in batch.items()}


def _snapshot(model):
    """Network name -> copies of its weights (moving statistics included)."""
    nets = [n for n in ("solver", "generator", "critic") if getattr(model, n, None) is not None]
    return {n: [v.numpy().copy() for v in getattr(model, n).weights] for n in nets}


def _moved(before, model):
    """Network name -> whether any of its weights changed."""
    return {n: any(not np.array_equal(b, v.numpy()) for b, v in zip(values, getattr(model, n).weights))
            for n, values in before.items()}


@pytest.fixture(scope="module")
def previous():
    keras.utils.set_random_seed(1)
    return _scholar()


def test_each_role_changes_only_its_networks(previous):
    keras.utils.set_random_seed(0)
    scholar = _scholar(previous, critic_steps=2)
    replay_before = _snapshot(previous)

    scholar.role = "generator"
    before = _snapshot(scholar)
    logs = scholar.train_step(_batch())
    moved = _moved(before, scholar)
    assert moved == {"generator": True, "critic": True, "solver": False}
    assert set(logs) == {"wasserstein_distance", "gradient_penalty", "critic_loss", "generator_loss"}
    assert int(scholar.critic_optimizer.iterations) == 2 and int(scholar.generator_optimizer.iterations) == 1
    assert scholar.optimizer is scholar.generator_optimizer  # the once-per-step optimizer of the role
    assert int(zoo.ops.global_step(scholar)) == 1

    scholar.role = "solver"
    before = _snapshot(scholar)
    logs = scholar.train_step(_batch())
    moved = _moved(before, scholar)
    assert moved == {"generator": False, "critic": False, "solver": True}
    assert set(logs) == {"loss", "accuracy", "replay_accuracy"}
    assert scholar.optimizer is scholar.solver_optimizer and int(zoo.ops.global_step(scholar)) == 1
    assert not any(_moved(replay_before, previous).values())  # the previous scholar stays frozen
    assert not scholar.replay_generator.trainable_variables and not scholar.replay_solver.trainable_variables


def test_generative_replay_is_labelled_by_the_previous_solver(previous):
    scholar = _scholar(previous)
    images, labels = scholar._replay(_batch(6), tf.constant(3, tf.int64), 1022)
    assert images.shape == (6, 8, 8, 1)
    np.testing.assert_array_equal(labels, np.argmax(previous.solver(images, training=False), -1))
    again, _ = scholar._replay(_batch(6), tf.constant(3, tf.int64), 1022)
    np.testing.assert_array_equal(images, again)  # stateless noise: a function of the step
    samples, sample_labels = previous.sample(5, seed=1)
    assert samples.shape == (5, 8, 8, 1) and sample_labels.dtype == tf.int32


def test_replay_ratio_weighs_the_losses():
    keras.utils.set_random_seed(0)
    scholar = _scholar(with_generator=False, replay_ratio=0.25)
    batch = _batch(replay=True)
    logits = scholar.solver(batch["image"], training=True)
    replay_logits = scholar.solver(batch["replay_image"], training=True)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    expected = 0.25 * ce(batch["label"], logits) + 0.75 * ce(batch["replay_label"], replay_logits)
    logs = scholar.train_step(batch)  # exact replay: replay data in the batch
    np.testing.assert_allclose(float(logs["loss"]), float(expected), rtol=1e-5)


def test_weight_decay_is_coupled_l2():
    def step(weight_decay):
        keras.utils.set_random_seed(0)
        scholar = zoo.create_model("dgr", with_generator=False, weight_decay=weight_decay, **TINY)
        scholar.compile(optimizer=keras.optimizers.SGD(0.1))
        before = [v.numpy() for v in scholar.solver.trainable_variables]
        scholar.train_step(_batch())
        return before, [v.numpy() for v in scholar.solver.trainable_variables]

    before, plain = step(0.0)
    _, decayed = step(0.5)
    for w, a, b in zip(before, plain, decayed):  # SGD: the decayed step moves further by lr·wd·w
        np.testing.assert_allclose(a - b, 0.1 * 0.5 * w, atol=1e-5)


def test_bad_batches_give_clear_errors(previous):
    scholar = _scholar(previous)
    with pytest.raises(ZooError, match="use one replay mode"):
        scholar.train_step(_batch(replay=True))
    with pytest.raises(ZooError, match=r"'image' has images of shape \(16, 16, 1\) .* take \(8, 8, 1\)"):
        scholar.train_step({"image": tf.zeros((2, 16, 16, 1)), "label": tf.zeros((2,), tf.int32)})
    with pytest.raises(ZooError, match="dict batches with 'image' and 'label'"):
        scholar.train_step((tf.zeros((2, 8, 8, 1)), tf.zeros((2,), tf.int32)))


@pytest.mark.slow
def test_train_steps_compile_with_xla(previous):
    keras.utils.set_random_seed(0)
    scholar = _scholar(previous, critic_steps=1)
    for role in ("generator", "solver"):
        scholar.role = role
        logs = tf.function(scholar.train_step, jit_compile=True)(_batch())
        assert all(np.isfinite(float(v)) for v in logs.values())


def _copy_weights(source, target):
    for a, b in zip(source.weights, target.weights):
        b.assign(a)


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("role", ["generator", "solver"])
def test_two_replicas_equal_one_device(role, mirrored):
    keras.utils.set_random_seed(0)
    reference_previous = _scholar()
    reference = _scholar(reference_previous, sgd=True, critic_steps=2, role=role)
    with mirrored.scope():
        previous = _scholar()
        scholar = _scholar(previous, sgd=True, critic_steps=2, role=role)
    _copy_weights(reference_previous, previous)
    _copy_weights(reference, scholar)
    batch = _batch(8)

    expected = tf.function(reference.train_step)(batch)
    halves = mirrored.experimental_distribute_values_from_function(
        lambda ctx: {k: v[4 * ctx.replica_id_in_sync_group:4 * ctx.replica_id_in_sync_group + 4]
                     for k, v in batch.items()})
    logs = tf.function(lambda b: mirrored.run(scholar.train_step, args=(b,)))(halves)
    for k, v in expected.items():
        for replica_value in mirrored.experimental_local_results(logs[k]):
            np.testing.assert_allclose(float(replica_value), float(v), rtol=1e-4, atol=1e-5)
    for a, b in zip(reference.weights, scholar.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)


@pytest.mark.slow
def test_generative_replay_keeps_the_first_task_where_fine_tuning_forgets():
    """Split digits 0-4 then 5-9 with one 10-way solver: fine-tuning forgets task 1, replay keeps most of it."""
    keras.utils.set_random_seed(0)
    tasks = digits.split_digits(2)
    test_images, test_labels = digits.test_arrays(tasks[0])

    def train(scholar, role, task, steps):
        scholar.role = role
        batches = iter(digits.train_dataset(task, tf.distribute.InputContext(), 64, seed=0))
        step = tf.function(scholar.train_step)
        for _ in range(steps):
            step(next(batches))

    def task_1_accuracy(scholar):
        return float(np.mean(np.argmax(scholar.solver(test_images), -1) == test_labels))

    first = zoo.create_model("dgr", preset="digits", seed=0)
    first.compile(learning_rate=1e-3)
    train(first, "generator", tasks[0], 100)
    train(first, "solver", tasks[0], 100)
    assert task_1_accuracy(first) > 0.9
    accuracy = {}
    for method in ("none", "generative"):
        replay = dict(replay_generator=first.generator, replay_solver=first.solver) if method == "generative" else {}
        scholar = zoo.create_model("dgr", preset="digits", with_generator=False, seed=1, **replay)
        scholar.compile(learning_rate=1e-3)
        scholar.continue_from(first)
        train(scholar, "solver", tasks[1], 100)
        accuracy[method] = task_1_accuracy(scholar)
    assert accuracy["none"] < 0.1, accuracy  # class-incremental fine-tuning forgets the old classes
    assert accuracy["generative"] > accuracy["none"] + 0.5, accuracy
