"""SaddleFreeNewton: escapes saddles Newton falls into, is exact in a large enough Krylov space, and trains
Keras models that opt in (`SecondOrderSequential`, `SecondOrderTraining`) through `fit`,
`zoo.training.Trainer` and a 2-replica MirroredStrategy alike, without touching any Keras class."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.errors import ZooError
from zoo.optimizers import SaddleFreeNewton, SecondOrderSequential, SecondOrderTraining
from zoo.training.trainer import Trainer


def exact(**kwargs):
    return SaddleFreeNewton(damping=kwargs.pop("damping", 0.0), damping_search=None, **kwargs)


def test_newton_converges_to_the_saddle_sfn_leaves_it():
    start = np.array([1.0, 0.5])  # f = x² − y², saddle at 0
    hessian = np.diag([2.0, -2.0])
    newton = start - np.linalg.solve(hessian, hessian @ start)
    np.testing.assert_allclose(newton, [0.0, 0.0])

    v = keras.Variable(start, dtype="float64")
    optimizer = exact(krylov_dim=2)
    losses = [float(optimizer.minimize(lambda: v[0] ** 2 - v[1] ** 2, [v])) for _ in range(3)]
    np.testing.assert_allclose(losses, [0.75, -1.0, -4.0], atol=1e-12)  # (1, .5) → (0, 1) → (0, 2) → (0, 4)
    np.testing.assert_allclose(v.numpy(), [0.0, 4.0], atol=1e-12)


def test_monkey_saddle_escape_under_xla():
    v = keras.Variable([0.5, 0.2], dtype="float64")
    optimizer = exact(krylov_dim=2)
    step = tf.function(lambda: optimizer.minimize(lambda: v[0] ** 3 - 3 * v[0] * v[1] ** 2, [v]), jit_compile=True)
    for _ in range(6):
        step()
    x, y = v.numpy()
    assert x**3 - 3 * x * y**2 == pytest.approx(-48.8436, abs=1e-3)  # Newton halves toward (0, 0) instead


@pytest.mark.parametrize("krylov_dim", [1, 2, 3])
def test_krylov_step_is_exact_once_it_spans_the_distinct_eigenvalues(krylov_dim):
    rng = np.random.default_rng(0)
    eigenvalues = np.where(np.arange(50) % 2 == 0, 2.0, -1.0)
    basis, _ = np.linalg.qr(rng.standard_normal((50, 50)))
    hessian = basis @ np.diag(eigenvalues) @ basis.T
    x0 = rng.standard_normal(50)
    h = tf.constant(hessian)
    for damping, multipliers in ((0.0, (0.0, 2.0)), (0.5, (0.2, 1 + 1 / 1.5))):
        v = keras.Variable(x0, dtype="float64")
        exact(krylov_dim=krylov_dim, damping=damping).minimize(
            lambda: 0.5 * tf.tensordot(v.value, tf.linalg.matvec(h, v.value), 1), [v])
        expected = x0 - basis @ ((basis.T @ hessian @ x0) / (np.abs(eigenvalues) + damping))
        error = np.linalg.norm(v.numpy() - expected) / np.linalg.norm(expected - x0)
        if krylov_dim == 1:
            assert error > 0.1
            continue
        assert error < 1e-9
        # per eigen-direction: positive curvature × 1 − λ/(|λ|+γ), negative × 1 + |λ|/(|λ|+γ)
        ratio = (basis.T @ v.numpy()) / (basis.T @ x0)
        np.testing.assert_allclose(ratio[eigenvalues > 0], multipliers[0], atol=1e-9)
        np.testing.assert_allclose(ratio[eigenvalues < 0], multipliers[1], atol=1e-9)


def test_damping_line_search_on_rosenbrock():
    v = keras.Variable([-1.2, 1.0], dtype="float64")
    optimizer = SaddleFreeNewton(krylov_dim=2, damping=1e-3)
    step = tf.function(lambda: optimizer.minimize(lambda: 100 * (v[1] - v[0] ** 2) ** 2 + (1 - v[0]) ** 2, [v]))
    losses = [float(step()) for _ in range(40)]
    assert np.all(np.diff(losses) <= 0)  # a step is only taken when it lowers the loss
    np.testing.assert_allclose(v.numpy(), [1.0, 1.0], atol=1e-6)


def _data():
    rng = np.random.RandomState(0)
    x = rng.randn(32, 3).astype("float32")
    return x, (x @ rng.randn(3, 1) + 0.3 * np.sin(2 * x[:, :1])).astype("float32")


def _model(strategy=None, dtype=None, **compile_kwargs):
    with (strategy or tf.distribute.get_strategy()).scope():
        keras.utils.set_random_seed(1)
        model = SecondOrderSequential([
            keras.Input((3,)), keras.layers.Dense(6, activation="tanh", dtype=dtype), keras.layers.Dense(1, dtype=dtype)
        ])
        model.compile(optimizer=SaddleFreeNewton(krylov_dim=4, damping=1e-2), loss="mse", metrics=["mae"],
                      **compile_kwargs)
    return model


def test_compile_and_fit_just_work():
    x, y = _data()
    model = _model()
    history = model.fit(x, y, batch_size=32, epochs=12, verbose=0).history
    assert history["loss"][-1] < 0.1 * history["loss"][0]
    assert "mae" in history
    assert model.optimizer.iterations.numpy() == 12


def test_state_updates_happen_once_per_step_as_in_keras():
    # BatchNorm statistics and dropout seeds move exactly as in Keras' own train step, although SFN
    # evaluates the loss many times per step (each evaluation sees the same seeds, hence the same masks).
    x, y = _data()
    states = []
    for optimizer in (keras.optimizers.SGD(0.0), SaddleFreeNewton(krylov_dim=3, damping=1e-2)):
        keras.utils.set_random_seed(2)
        model = SecondOrderSequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.BatchNormalization(momentum=0.5),
                                       keras.layers.Dropout(0.5), keras.layers.Dense(1)])
        model.compile(optimizer=optimizer, loss="mse")
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)  # one step: the statistics see the same weights
        states.append([np.asarray(v.numpy()) for v in model.non_trainable_variables])
    assert len(states[0]) == 3  # moving mean, moving variance, dropout seed
    for keras_state, sfn_state in zip(*states):
        np.testing.assert_allclose(keras_state, sfn_state, rtol=1e-6)


def _dataset_fn(x, y, batch):
    def dataset_fn(ctx):
        ds = tf.data.Dataset.from_tensor_slices((x, y)).repeat().shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
        return ds.batch(ctx.get_per_replica_batch_size(batch), drop_remainder=True)

    return dataset_fn


@pytest.mark.slow
@pytest.mark.distributed
def test_two_replicas_take_the_same_steps_as_one(tmp_path, mirrored):
    x, y = _data()
    strategy = mirrored
    # float64: in float32 the two summation orders differ in the last bit, which Lanczos amplifies to ~1e-5
    single, replicated, trained = _model(dtype="float64"), _model(strategy, dtype="float64"), _model(strategy, "float64")
    for model in (single, replicated):
        model.fit(x, y, batch_size=32, epochs=4, shuffle=False, verbose=0)
    Trainer(trained, strategy=strategy, model_dir=str(tmp_path), dataset_fn=_dataset_fn(x, y, 32), global_batch_size=32,
            train_steps=4, verbose=False).train()
    for model in (replicated, trained):
        for a, b in zip(single.trainable_variables, model.trainable_variables):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
        assert model.optimizer.current_damping.numpy() == pytest.approx(single.optimizer.current_damping.numpy())


@pytest.mark.slow
def test_works_in_the_shared_trainer_and_resumes(tmp_path):
    x, y = _data()
    args = dict(strategy=tf.distribute.get_strategy(), model_dir=str(tmp_path), dataset_fn=_dataset_fn(x, y, 32),
                global_batch_size=32, log_every=1, verbose=False)
    Trainer(_model(dtype="float64"), train_steps=3, **args).train()
    resumed = _model(dtype="float64")
    logs = Trainer(resumed, train_steps=5, **args).train()
    assert resumed.optimizer.iterations.numpy() == 5 and np.isfinite(logs["loss"])
    straight = _model(dtype="float64")
    straight.fit(x, y, batch_size=32, epochs=5, shuffle=False, verbose=0)
    for a, b in zip(resumed.trainable_variables, straight.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(resumed.optimizer.current_damping.numpy(), straight.optimizer.current_damping.numpy())


def test_trainer_step_compiles_with_xla(tmp_path):
    x, y = _data()
    with tf.distribute.get_strategy().scope():
        keras.utils.set_random_seed(1)
        model = SecondOrderSequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer=SaddleFreeNewton(krylov_dim=2, damping=1e-2), loss="mse")
    logs = Trainer(model, strategy=tf.distribute.get_strategy(), model_dir=str(tmp_path),
                   dataset_fn=_dataset_fn(x, y, 32), global_batch_size=32, train_steps=3, log_every=1, verbose=False,
                   jit_compile=True).train()
    assert model.optimizer.iterations.numpy() == 3 and np.isfinite(logs["loss"])


def test_gradients_alone_are_refused():
    v = keras.Variable([1.0])
    with pytest.raises(ZooError, match="needs the loss"):
        SaddleFreeNewton().apply([tf.ones(1)], [v])


def test_mixed_float16_loss_scaling_is_refused():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        x, y = _data()
        model = _model()
        with pytest.raises(ZooError, match="auto_scale_loss=False"):
            model.fit(x, y, epochs=1, verbose=0)
    finally:
        keras.mixed_precision.set_global_policy("float32")


class SubclassedNet(SecondOrderTraining, keras.Model):
    def __init__(self, dtype=None, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(6, activation="tanh", dtype=dtype)
        self.out = keras.layers.Dense(1, dtype=dtype)

    def call(self, x):
        return self.out(self.hidden(x))


class FunctionalNet(SecondOrderTraining, keras.Model):
    pass


def test_subclassed_and_functional_models_opt_in_with_the_mixin():
    x, y = _data()
    reference = _model(dtype="float64")
    reference.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
    for build in (lambda: SubclassedNet(dtype="float64"),
                  lambda: FunctionalNet(*_functional_graph())):
        keras.utils.set_random_seed(1)
        model = build()
        model.compile(optimizer=SaddleFreeNewton(krylov_dim=4, damping=1e-2), loss="mse", metrics=["mae"])
        model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0)
        for a, b in zip(reference.trainable_variables, model.trainable_variables):
            np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


def _functional_graph():
    inputs = keras.Input((3,))
    hidden = keras.layers.Dense(6, activation="tanh", dtype="float64")(inputs)
    return inputs, keras.layers.Dense(1, dtype="float64")(hidden)


def test_other_optimizers_keep_keras_train_step():
    x, y = _data()
    weights = []
    for cls in (keras.Sequential, SecondOrderSequential):
        keras.utils.set_random_seed(1)
        model = cls([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        weights.append([v.numpy() for v in model.trainable_variables])
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def _keras_classes():
    return [c for c in keras.Sequential.__mro__ if c.__module__.startswith("keras")]


def test_plain_keras_model_fails_in_one_line_saying_how_to_opt_in():
    before = {c: dict(vars(c)) for c in _keras_classes()}
    x, y = _data()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=SaddleFreeNewton(krylov_dim=2, damping=1e-2), loss="mse")
    with pytest.raises(ZooError, match="SecondOrderSequential") as error:
        model.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert "\n" not in str(error.value) and "SecondOrderTraining" in str(error.value)
    assert {c: dict(vars(c)) for c in _keras_classes()} == before  # no Keras class was modified


def test_second_order_sequential_saves_and_loads(tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, batch_size=32, epochs=2, verbose=0)
    path = str(tmp_path / "sfn.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is SecondOrderSequential and isinstance(loaded.optimizer, SaddleFreeNewton)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.optimizer.current_damping.numpy() == model.optimizer.current_damping.numpy() != 1e-2
