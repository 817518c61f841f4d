"""Heavy ball, Nesterov (FGM / constant momentum) and OGM meet their theoretical rates (float64)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.optimizers import OGM, HeavyBall, Nesterov

EIGENVALUES = np.linspace(1.0, 100.0, 100)  # κ = 100


def theta_sequence(n, last_factor=8.0):
    """OGM's θ_0..θ_n (factor 4, `last_factor` at step n); `last_factor=4` gives Nesterov's t_k."""
    theta = [1.0]
    for i in range(1, n + 1):
        theta.append((1 + np.sqrt(1 + (last_factor if i == n else 4.0) * theta[-1] ** 2)) / 2)
    return theta


def nesterov_worst(t):
    """Nesterov's worst function for t steps, L = 1, size 2t+1: (A, b, x*) with f = ½xᵀAx − bᵀx."""
    k = 2 * t + 1
    A = (2 * np.eye(k) - np.eye(k, k=1) - np.eye(k, k=-1)) / 4
    return A, np.eye(k)[0] / 4, 1 - np.arange(1, k + 1) / (k + 1)


def run(optimizer, grad_fn, x0, steps):
    x = keras.Variable(np.asarray(x0, np.float64), dtype="float64")
    optimizer.build([x])

    @tf.function
    def loop():
        for _ in tf.range(steps):
            optimizer.apply([grad_fn(x.value)], [x])

    loop()
    return x


def steps_to(optimizer, x0, tol=1e-6, max_steps=2000):
    """Steps on ½xᵀdiag(EIGENVALUES)x until ‖x_k‖ <= tol·‖x_0‖."""
    x = keras.Variable(np.asarray(x0, np.float64), dtype="float64")
    optimizer.build([x])
    target = tol * np.linalg.norm(x0)

    @tf.function
    def loop():
        def body(k):
            optimizer.apply([tf.constant(EIGENVALUES) * x.value], [x])
            return (k + 1,)

        return tf.while_loop(lambda k: tf.logical_and(tf.norm(x.value) > target, k < max_steps), body, (0,))[0]

    return int(loop())


def test_heavy_ball_optimal_tuning():
    optimizer = HeavyBall.from_curvature(1.0, 100.0)
    assert optimizer.learning_rate.numpy() == pytest.approx(4 / 121)
    assert optimizer.momentum == pytest.approx((9 / 11) ** 2)
    # rate (√κ−1)/(√κ+1) = 9/11 against GD's 1 − 1/κ
    assert steps_to(optimizer, np.ones(100)) == 83
    assert steps_to(HeavyBall(1 / 100, momentum=0.0), np.ones(100)) == 1146


def test_nesterov_constant_momentum_rate():
    optimizer = Nesterov.from_curvature(1.0, 100.0)
    assert optimizer.momentum == pytest.approx(9 / 11)
    # per-step contraction 1 − 1/√κ = 0.9 on quadratics (the model variable leads y_k by one step)
    assert steps_to(optimizer, np.ones(100)) in (134, 135)


@pytest.mark.parametrize("t", [5, 20])
def test_fgm_and_ogm_bounds_on_nesterov_worst_function(t):
    A, b, x_star = nesterov_worst(t)
    f = lambda x: 0.5 * x @ A @ x - b @ x  # noqa: E731
    f_star, r2 = f(x_star), x_star @ x_star

    def grad(x):
        return tf.linalg.matvec(tf.constant(A), x) - b

    fgm = Nesterov(1.0)
    x = run(fgm, grad, np.zeros_like(x_star), t)
    fgm_gap = f(fgm.primary_iterate(x).numpy()) - f_star
    ogm_gap = f(run(OGM(1.0, total_steps=t), grad, np.zeros_like(x_star), t).numpy()) - f_star
    ogm_bound = r2 / (2 * theta_sequence(t)[t] ** 2)
    lower = 3 * r2 / (32 * (t + 1) ** 2)  # any Krylov method, Nesterov Thm 2.1.7
    assert lower <= fgm_gap <= r2 / (2 * theta_sequence(t - 1, 4.0)[t - 1] ** 2) <= 2 * r2 / (t + 1) ** 2
    assert lower <= ogm_gap <= ogm_bound < 0.5 * 2 * r2 / (t + 1) ** 2
    assert ogm_gap < fgm_gap
    assert ogm_gap == pytest.approx({5: 0.015519, 20: 0.005321}[t], abs=2e-6)


@pytest.mark.parametrize("n", [1, 4, 10])
def test_ogm_bound_is_attained_on_its_huber_worst_case(n):
    # 1-D Huber with threshold 1/θ_N², L = R = 1: f(y_N) = 1/(2θ_N²) exactly (Kim & Fessler).
    theta_n = theta_sequence(n)[n]
    d = 1 / theta_n**2

    def grad(x):
        return tf.clip_by_value(x, -d, d)

    y = abs(run(OGM(1.0, total_steps=n), grad, [1.0], n).numpy()[0])
    value = y * y / 2 if y <= d else d * y - d * d / 2
    assert value == pytest.approx(1 / (2 * theta_n**2), rel=1e-6)
    assert theta_n**2 >= (n + 1) * (n + 1 + np.sqrt(2)) / 2


def test_ogm_without_total_steps_uses_factor_4_throughout():
    optimizer = OGM(1.0)
    run(optimizer, lambda x: x, [1.0, -2.0], 6)
    assert optimizer._theta.numpy() == pytest.approx(theta_sequence(6, 4.0)[6], rel=1e-6)
