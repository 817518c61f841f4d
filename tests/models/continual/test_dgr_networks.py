"""DGR networks: exact sizes of the reference configs, layer details, configs and bad options."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from tests.layers.policy_helpers import assert_policy_round_trip
from zoo.errors import ZooError
from zoo.models.continual import DgrSolver, Scholar, WganCritic, WganGenerator


def _count(variables):
    return sum(int(np.prod(v.shape)) for v in variables)


def test_reference_parameter_counts():
    # kuc2477/pytorch-deep-generative-replay at 32×32: WGAN generator and the 5-deep CNN solver.
    generator = zoo.create_model("dgr_generator")
    assert _count(generator.trainable_variables) == 3_582_849
    assert _count(generator.weights) == 3_582_849 + 2 * (512 + 256 + 128 + 64)  # + BN moving statistics
    solver = zoo.create_model("dgr_solver")
    assert _count(solver.trainable_variables) == 6_363_658
    critic = zoo.create_model("dgr_critic")
    # The reference's Linear(4096, 1) reads a 3×3×512 map through view(-1, 4096); the true flatten is 4608.
    assert _count(critic.trainable_variables) == 2_758_593 - 4_097 + 4_609
    assert critic.get_layer("flatten").output.shape[-1] == 3 * 3 * 512
    assert generator(tf.zeros((2, 100))).shape == (2, 32, 32, 1)
    assert solver(tf.zeros((2, 32, 32, 1))).shape == (2, 10)
    assert critic(tf.zeros((2, 32, 32, 1))).shape == (2, 1)
    # Three channels (MNIST coloured, SVHN): only the first and last convs grow.
    assert _count(zoo.create_model("dgr_generator", preset="svhn").trainable_variables) == 3_582_849 + 2 * 64 * 9 + 2
    assert _count(zoo.create_model("dgr_solver", preset="svhn").trainable_variables) == 6_363_658 + 2 * 128 * 9
    assert _count(zoo.create_model("dgr_critic", preset="svhn").trainable_variables) == 2_759_105 + 2 * 64 * 16


def test_layer_details_follow_the_reference():
    generator = WganGenerator(image_size=16, channels=4, noise_dim=8)
    bns = [l for l in generator.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert len(bns) == 4 and all(l.momentum == 0.9 and l.epsilon == 1e-5 and l.synchronized for l in bns)
    assert [l.output.shape[1:] for l in generator.layers if isinstance(l, keras.layers.Conv2DTranspose)] == [
        (4, 4, 16), (8, 8, 8), (16, 16, 4), (16, 16, 1)]
    out = generator(np.random.default_rng(0).normal(size=(4, 8)).astype("float32"))
    assert 0.0 <= float(tf.reduce_min(out)) and float(tf.reduce_max(out)) <= 1.0  # sigmoid
    critic = WganCritic(image_size=16, channels=4)
    assert all(l.negative_slope == 0.01 for l in critic.layers if isinstance(l, keras.layers.LeakyReLU))
    assert not any(isinstance(l, keras.layers.BatchNormalization) for l in critic.layers)
    assert critic.get_layer("conv4").output.shape[1:] == (1, 1, 32)  # 4×4 stride 1 padding 1 on 2×2
    solver = DgrSolver(image_size=8, depth=4, channels=16, reducing_layers=2)
    # torch's Conv(3, stride 2, padding 1): an explicit 1-pixel pad on every side, then a valid conv.
    assert solver.get_layer("pad1").output.shape[1:3] == (10, 10)
    assert [solver.get_layer(f"conv{i}").output.shape[1:] for i in range(3)] == [(8, 8, 4), (4, 4, 8), (2, 2, 16)]
    inner = keras.Model(solver.input, [solver.get_layer("conv0").output, solver.get_layer("conv1").output])
    x0, x1 = inner(np.random.default_rng(0).uniform(size=(2, 8, 8, 1)).astype("float32"))
    kernel, bias = solver.get_layer("conv1").weights
    torch_style = tf.nn.conv2d(x0, kernel, strides=2, padding=[[0, 0], [1, 1], [1, 1], [0, 0]]) + bias
    np.testing.assert_allclose(x1, torch_style, atol=1e-5)


def test_configs_round_trip():
    keras.utils.set_random_seed(0)
    scholar = zoo.create_model("dgr", preset="digits", replay_ratio=0.4, critic_steps=2, seed=7)
    previous = zoo.create_model("dgr", preset="digits")
    scholar = Scholar(scholar.solver, scholar.generator, scholar.critic, previous.generator, previous.solver,
                      replay_ratio=0.4, critic_steps=2, seed=7, role="generator")
    clone = Scholar.from_config(scholar.get_config())
    assert (clone.replay_ratio, clone.critic_steps, clone.seed, clone.role) == (0.4, 2, 7, "generator")
    assert clone.generative_replay and not clone.replay_generator.trainable
    for net in ("solver", "generator", "critic"):
        a, b = getattr(scholar, net), getattr(clone, net)
        assert type(a) is type(b) and a.get_config() == b.get_config() and _count(a.weights) == _count(b.weights)
    generator = WganGenerator.from_config(scholar.generator.get_config())
    generator.set_weights(scholar.generator.get_weights())
    z = np.random.default_rng(0).normal(size=(3, 32)).astype("float32")
    np.testing.assert_allclose(generator(z), scholar.generator(z), atol=1e-6)


def test_bad_options_give_clear_errors():
    with pytest.raises(ZooError, match="unknown DGR preset 'cifar'"):
        zoo.create_model("dgr_solver", preset="cifar")
    with pytest.raises(ZooError, match="image_size=12 must be a positive multiple of 2\\*\\*num_upsamples=8"):
        zoo.create_model("dgr_generator", image_size=12)
    with pytest.raises(ZooError, match="at least a 2×2 map"):
        zoo.create_model("dgr_critic", image_size=8)
    with pytest.raises(ZooError, match="image_size=28 must divide by 2\\*\\*reducing_layers=8"):
        zoo.create_model("dgr_solver", image_size=28)
    with pytest.raises(ZooError, match="unknown scholar role 'critic'"):
        zoo.create_model("dgr", preset="digits", role="critic")
    with pytest.raises(ZooError, match="needs a scholar built with a generator"):
        zoo.create_model("dgr", preset="digits", with_generator=False, role="generator")
    with pytest.raises(ZooError, match="replay_ratio=0.0 must be in \\(0, 1\\]"):
        zoo.create_model("dgr", preset="digits", with_generator=False, replay_ratio=0.0)
    with pytest.raises(ZooError, match="both replay_generator and replay_solver"):
        solver = zoo.create_model("dgr_solver", preset="digits")
        Scholar(solver, replay_solver=solver)
    with pytest.raises(ZooError, match="unknown model 'dgr_vae'"):
        zoo.create_model("dgr_vae")


def test_mixed_float16_policy_round_trips():
    clone = assert_policy_round_trip(lambda: zoo.create_model("dgr", preset="digits"))
    assert clone.solver.get_layer("conv1").compute_dtype == "float16"
    assert clone.solver.get_layer("logits").compute_dtype == "float32"  # logits stay float32


def test_solver_starts_from_torch_defaults():
    solver = DgrSolver(image_size=8, depth=4, channels=16, reducing_layers=2)
    for name, fan_in in (("conv0", 9 * 1), ("conv1", 9 * 4), ("logits", 2 * 2 * 16)):
        kernel, bias = (np.asarray(w) for w in solver.get_layer(name).weights)
        bound = 1 / np.sqrt(fan_in)  # torch's Conv2d / Linear: U(±1/sqrt(fan_in)) for weight and bias
        assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound and np.abs(bias).max() > 0
