"""What every zoo optimizer shares: argument checks, config round trips, checkpoints mid-run with
learning-rate schedules, 16-bit variables, mixed precision and XLA."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.errors import ZooError
from zoo.optimizers import OGM, HeavyBall, Nesterov, SaddleFreeNewton, SecondOrderSequential


schedules = keras.optimizers.schedules
TARGET = np.linspace(-1.0, 2.0, 6)

FACTORIES = {
    "heavy_ball": lambda: HeavyBall(schedules.ExponentialDecay(0.05, 4, 0.8), momentum=0.7),
    "nesterov": lambda: Nesterov(schedules.PiecewiseConstantDecay([3], [0.05, 0.03])),
    "nesterov_constant": lambda: Nesterov(0.05, momentum=0.6),
    "ogm": lambda: OGM(schedules.CosineDecay(0.08, 10), total_steps=6),
    "sfn": lambda: SaddleFreeNewton(schedules.PiecewiseConstantDecay([2], [1.0, 0.5]), krylov_dim=3, damping=0.1),
}


def loss(v):  # smooth, non-quadratic, minimum at TARGET
    d = tf.cast(v, tf.float32) - TARGET
    return tf.reduce_sum(d**2 + 0.1 * d**4)


def step(optimizer, v):
    if isinstance(optimizer, SaddleFreeNewton):
        optimizer.minimize(lambda: tf.cast(loss(v.value), v.dtype), [v])
        return
    with tf.GradientTape() as tape:
        value = loss(v.value)
    optimizer.apply([tape.gradient(value, v.value)], [v])


def run(optimizer, steps, v):
    optimizer.build([v])
    for _ in range(steps):
        step(optimizer, v)
    return v


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: HeavyBall(-0.1), "learning_rate"),
        (lambda: HeavyBall(0.1, momentum=1.0), "momentum"),
        (lambda: HeavyBall(0.1, momentum=-0.5), "momentum"),
        (lambda: HeavyBall.from_curvature(0.0, 1.0), "mu"),
        (lambda: HeavyBall.from_curvature(2.0, 1.0), "mu"),
        (lambda: HeavyBall.from_curvature(1.0, -1.0), "L"),
        (lambda: Nesterov("fast"), "learning_rate"),
        (lambda: Nesterov(0.1, momentum=1.5), "momentum"),
        (lambda: Nesterov.from_curvature(-1.0, 1.0), "mu"),
        (lambda: OGM(-1.0, total_steps=5), "learning_rate"),
        (lambda: OGM(0.1, total_steps=0), "total_steps"),
        (lambda: OGM(0.1, total_steps=2.5), "total_steps"),
        (lambda: SaddleFreeNewton(krylov_dim=0), "krylov_dim"),
        (lambda: SaddleFreeNewton(damping=-1e-3), "damping"),
        (lambda: SaddleFreeNewton(damping=0.0), "damping"),
        (lambda: SaddleFreeNewton(damping_search=(0.5, 0.0)), "damping_search"),
        (lambda: SaddleFreeNewton(learning_rate=-1.0), "learning_rate"),
        (lambda: SaddleFreeNewton(gradient_accumulation_steps=2), "gradient_accumulation_steps"),
    ],
)
def test_bad_hyper_parameters_name_the_argument(make, argument):
    with pytest.raises(ValueError, match=argument):
        make()


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_config_round_trip(name):
    optimizer = FACTORIES[name]()
    config = optimizer.get_config()
    assert type(optimizer).from_config(dict(config)).get_config() == config  # Keras edits the dict
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is type(optimizer) and restored.get_config() == config


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_checkpoint_mid_run_resumes_exactly(name, tmp_path):
    straight = run(FACTORIES[name](), 6, keras.Variable(np.zeros(6), dtype="float64")).numpy()
    optimizer, v = FACTORIES[name](), keras.Variable(np.zeros(6), dtype="float64")
    run(optimizer, 3, v)
    path = tf.train.Checkpoint(optimizer=optimizer, v=v).save(str(tmp_path / "ckpt"))
    optimizer, v = FACTORIES[name](), keras.Variable(np.ones(6), dtype="float64")
    optimizer.build([v])  # as the shared Trainer does: slots exist before the restore
    tf.train.Checkpoint(optimizer=optimizer, v=v).restore(path).assert_consumed()
    assert optimizer.iterations.numpy() == 3
    np.testing.assert_allclose(run(optimizer, 3, v).numpy(), straight, rtol=1e-12, atol=1e-12)
    assert loss(straight) < 0.5 * loss(np.zeros(6))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_16_bit_variables(name, dtype):
    reference = run(FACTORIES[name](), 5, keras.Variable(np.zeros(6), dtype="float32")).numpy()
    optimizer = FACTORIES[name]()
    v = run(optimizer, 5, keras.Variable(np.zeros(6), dtype=dtype))
    assert v.dtype == dtype
    assert all(s.dtype == dtype for s in optimizer.variables if s.shape == v.shape)
    np.testing.assert_allclose(np.asarray(v.numpy(), np.float32), reference, atol=0.05, rtol=0.05)


@pytest.mark.parametrize("name", ["heavy_ball", "nesterov", "ogm"])
def test_xla_step_matches_eager(name):
    eager = run(FACTORIES[name](), 4, keras.Variable(np.zeros(6), dtype="float32")).numpy()
    optimizer, v = FACTORIES[name](), keras.Variable(np.zeros(6), dtype="float32")
    optimizer.build([v])
    compiled = tf.function(lambda: step(optimizer, v), jit_compile=True)
    for _ in range(4):
        compiled()
    np.testing.assert_allclose(v.numpy(), eager, rtol=1e-5, atol=1e-6)


def test_ogm_refuses_to_step_past_total_steps():
    optimizer, v = OGM(0.1, total_steps=2), keras.Variable(np.zeros(6), dtype="float32")
    run(optimizer, 2, v)
    with pytest.raises(ZooError, match="total_steps=2"):
        step(optimizer, v)
    with pytest.raises(tf.errors.InvalidArgumentError, match="total_steps=2"):
        tf.function(lambda: step(optimizer, v))()
    held = v.numpy()
    tf.function(lambda: step(optimizer, v), jit_compile=True)()  # XLA cannot raise: the weights hold y_N
    np.testing.assert_array_equal(v.numpy(), held)


@pytest.mark.parametrize("name", ["heavy_ball", "nesterov", "ogm", "sfn"])
def test_fit_under_mixed_precision(name):
    policy = "mixed_bfloat16" if name == "sfn" else "mixed_float16"  # mixed_float16 wraps a LossScaleOptimizer
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        x = np.random.RandomState(0).randn(32, 4).astype("float32")
        y = x @ np.ones((4, 1), "float32")
        cls = SecondOrderSequential if name == "sfn" else keras.Sequential  # SFN needs the opt-in train step
        model = cls([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
        model.compile(optimizer=FACTORIES[name](), loss="mse")
        history = model.fit(x, y, batch_size=32, epochs=5, verbose=0).history["loss"]
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.trainable_variables[0].dtype == "float32"
    assert np.all(np.isfinite(history)) and history[-1] < history[0]


@pytest.mark.parametrize("make", [lambda **kw: Nesterov(0.05, **kw), lambda **kw: OGM(0.08, total_steps=4, **kw)])
def test_theta_advances_once_per_accumulated_step(make):
    # constant rates: Keras schedules count micro-steps under gradient accumulation
    plain, accumulating = make(), make(gradient_accumulation_steps=2)
    a, b = keras.Variable(np.zeros(6), dtype="float64"), keras.Variable(np.zeros(6), dtype="float64")
    for i in range(4):
        with tf.GradientTape(persistent=True) as tape:
            la, lb = loss(a.value), loss(b.value)
        ga, gb = tape.gradient(la, a.value), tape.gradient(lb, b.value)
        plain.apply([ga + i / 2], [a])  # the mean of the two micro-batch gradients below
        accumulating.apply([gb], [b])
        accumulating.apply([gb + i], [b])
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12)
    assert plain._theta.numpy() == accumulating._theta.numpy()


@pytest.mark.slow
@pytest.mark.distributed
def test_slots_and_theta_stay_in_step_across_two_replicas(mirrored):
    rng = np.random.RandomState(0)
    x, strategy = rng.randn(32, 3), mirrored
    y = x @ rng.randn(3, 1) + 0.3 * np.sin(2 * x[:, :1])
    for name in ("heavy_ball", "nesterov", "ogm"):
        weights = []
        for scope in (tf.distribute.get_strategy(), strategy):
            with scope.scope():
                keras.utils.set_random_seed(1)
                model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(6, activation="tanh", dtype="float64"),
                                          keras.layers.Dense(1, dtype="float64")])
                model.compile(optimizer=FACTORIES[name](), loss="mse")
            model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
            weights.append([v.numpy() for v in model.trainable_variables])
        for a, b in zip(*weights):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
